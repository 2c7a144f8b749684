//! Kernel modules from the kernel package, in the order `insmod` must load them.
//!
//! Debian's package ships the `.ko` files but no `modules.dep` (`depmod` writes it when the
//! package is installed), so the dependencies are read where `depmod` reads them: the
//! `depends=` entry of each module's `.modinfo` ELF section.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::{Error, io_err};

/// A module to load: its name (as `lsmod` shows it) and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
}

/// `name` as the kernel spells module names (`-` and `_` are the same to it).
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// The NUL-separated `key=value` strings of the `.modinfo` section of a module's ELF.
pub fn modinfo(elf: &[u8]) -> Result<Vec<String>, String> {
    let u16_at = |o: usize| -> Result<u16, String> {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("truncated at {o:#x}"))
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| format!("truncated at {o:#x}"))
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err("not a little-endian ELF64 file".into());
    }
    let shoff = u64_at(0x28)? as usize;
    let shentsize = u16_at(0x3a)? as usize;
    let shnum = u16_at(0x3c)? as usize;
    let shstrndx = u16_at(0x3e)? as usize;
    if shentsize < 0x40 || shstrndx >= shnum {
        return Err("bad section header table".into());
    }
    let section = |i: usize| -> Result<(usize, &[u8]), String> {
        let h = shoff
            .checked_add(i.checked_mul(shentsize).ok_or("overflow")?)
            .ok_or("overflow")?;
        let name = u32::from_le_bytes(elf.get(h..h + 4).ok_or("truncated")?.try_into().unwrap());
        let off = u64_at(h + 0x18)? as usize;
        let size = u64_at(h + 0x20)? as usize;
        let data = off
            .checked_add(size)
            .and_then(|end| elf.get(off..end))
            .ok_or_else(|| format!("section {i} lies outside the file"))?;
        Ok((name as usize, data))
    };
    let (_, names) = section(shstrndx)?;
    for i in 0..shnum {
        let (name, data) = section(i)?;
        let n = names.get(name..).ok_or("bad section name")?;
        if n.split(|&b| b == 0).next() == Some(b".modinfo") {
            return Ok(data
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect());
        }
    }
    Err("no .modinfo section".into())
}

/// The modules named in `depends=` of a module's `.modinfo`.
pub fn depends(elf: &[u8]) -> Result<Vec<String>, String> {
    Ok(modinfo(elf)?
        .iter()
        .filter_map(|e| e.strip_prefix("depends="))
        .flat_map(|d| d.split(','))
        .filter(|d| !d.is_empty())
        .map(canonical)
        .collect())
}

/// Every `*.ko` under `dir`, by module name.
fn index(dir: &Path) -> Result<HashMap<String, PathBuf>, Error> {
    let mut found = HashMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).map_err(io_err(format!("listing {}", d.display())))? {
            let p = e
                .map_err(io_err(format!("listing {}", d.display())))?
                .path();
            if p.is_dir() {
                todo.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                found.insert(canonical(stem), p);
            }
        }
    }
    Ok(found)
}

/// `wanted` and everything they depend on, found under `modules_dir` (the package's
/// `lib/modules/<uname -r>`), each after its dependencies: the order to `insmod` them.
/// Modules the kernel has built in (`modules.builtin`) are left out. Soft dependencies
/// (`softdep=`) name aliases, not modules, and are not followed: list them in `wanted`.
pub fn resolve(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<Module>, Error> {
    let files = index(modules_dir)?;
    let builtin: Vec<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Path::new(l).file_stem()?.to_str().map(canonical))
        .collect();
    let mut order = Vec::new();
    // Depth-first, dependencies first; `visiting` catches a cycle, which the kernel's own
    // tools refuse too.
    fn visit(
        name: &str,
        files: &HashMap<String, PathBuf>,
        builtin: &[String],
        visiting: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<(), Error> {
        if order.iter().any(|m| m.name == name) || builtin.iter().any(|b| b == name) {
            return Ok(());
        }
        if visiting.iter().any(|v| v == name) {
            return Err(Error::Prerequisite(format!(
                "kernel modules depend on each other in a cycle: {} -> {name}",
                visiting.join(" -> ")
            )));
        }
        let path = files.get(name).ok_or_else(|| {
            Error::Prerequisite(format!("kernel module {name} is not in the kernel package"))
        })?;
        let elf = fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
        let deps = depends(&elf).map_err(|why| Error::BadImage {
            path: path.clone(),
            why,
        })?;
        visiting.push(name.to_string());
        for d in &deps {
            visit(d, files, builtin, visiting, order)?;
        }
        visiting.pop();
        order.push(Module {
            name: name.to_string(),
            path: path.clone(),
        });
        Ok(())
    }
    for w in wanted {
        visit(&canonical(w), &files, &builtin, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal relocatable ELF64 with a `.modinfo` section holding `entries`.
    pub(crate) fn fake_module(entries: &[&str]) -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let modinfo: Vec<u8> = entries.iter().flat_map(|e| e.bytes().chain([0])).collect();
        let mut elf = vec![0u8; 0x40];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let modinfo_off = elf.len();
        elf.extend_from_slice(&modinfo);
        let shstr_off = elf.len();
        elf.extend_from_slice(shstrtab);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        // Null section, .modinfo, .shstrtab.
        for (name, off, size) in [
            (0u32, 0usize, 0usize),
            (1, modinfo_off, modinfo.len()),
            (10, shstr_off, shstrtab.len()),
        ] {
            let mut h = [0u8; 0x40];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        }
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&0x40u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        elf
    }

    #[test]
    fn reads_depends_from_modinfo() {
        let m = fake_module(&["license=GPL", "depends=net_failover,crc-16", "name=x"]);
        assert_eq!(depends(&m).unwrap(), ["net_failover", "crc_16"]);
        assert_eq!(
            depends(&fake_module(&["depends="])).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rejects_what_is_not_a_module() {
        assert!(modinfo(b"#!/bin/sh\n").is_err());
        let mut m = fake_module(&["depends="]);
        // Section table pointing past the end of the file.
        m[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(modinfo(&m).is_err());
        // Cut inside the section headers.
        let mut m = fake_module(&["depends="]);
        m.truncate(m.len() - 0x40 - 0x30);
        assert!(modinfo(&m).is_err());
    }

    fn tree(tag: &str, mods: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("axolotl-mods-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, deps) in mods {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, fake_module(&[&format!("depends={deps}")])).unwrap();
        }
        fs::write(dir.join("modules.builtin"), "kernel/lib/builtin-one.ko\n").unwrap();
        dir
    }

    #[test]
    fn dependencies_come_first_once_each() {
        let dir = tree(
            "order",
            &[
                ("kernel/drivers/net/virtio_net.ko", "net_failover"),
                ("kernel/drivers/net/net_failover.ko", "failover"),
                ("kernel/net/core/failover.ko", ""),
                ("kernel/fs/ext4/ext4.ko", "jbd2,mbcache,builtin_one"),
                ("kernel/fs/jbd2/jbd2.ko", ""),
                ("kernel/fs/mbcache.ko", ""),
                ("kernel/drivers/block/virtio_blk.ko", ""),
            ],
        );
        let order = resolve(&dir, &["virtio_net", "virtio-blk", "ext4", "failover"]).unwrap();
        fs::remove_dir_all(&dir).ok();
        let names: Vec<&str> = order.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "failover",
                "net_failover",
                "virtio_net",
                "virtio_blk",
                "jbd2",
                "mbcache",
                "ext4"
            ]
        );
        assert!(order[3].path.ends_with("drivers/block/virtio_blk.ko"));
    }

    #[test]
    fn missing_modules_and_cycles_are_errors() {
        let dir = tree("bad", &[("a.ko", "b"), ("b.ko", "a"), ("c.ko", "nowhere")]);
        let cycle = resolve(&dir, &["a"]).unwrap_err().to_string();
        let missing = resolve(&dir, &["c"]).unwrap_err().to_string();
        fs::remove_dir_all(&dir).ok();
        assert!(cycle.contains("cycle"), "{cycle}");
        assert!(missing.contains("nowhere"), "{missing}");
    }
}
