//! The data disk of the gateway guest: one raw image with an MBR and two partitions.
//!
//! ```text
//! LBA 0                 MBR (disk signature 0x4158_4f4c, "AXOL")
//! 1 MiB   (vda1, 0x83)  ext2 filesystem, FS_SIZE: the web content, mounted read-only at /srv
//! 33 MiB  (vda2, 0x83)  raw area, RAW_SIZE, zero: the disk check's pattern, blk benchmarks
//! ```
//! One disk rather than two because a system then needs one virtio-blk device, one driver
//! and one transport. The filesystem is ext2 (the kernel's ext4 module mounts it) built by
//! `mke2fs -d` from e2fsprogs, with a fixed UUID, hash seed and time so the image is the same
//! on every host. The web files hold the [`crate::pattern`] stream of their own seed, so a
//! client can check every byte it fetched.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use crate::{Error, io_err, pattern, run};

const MIB: u64 = 1 << 20;
/// Byte offset of the filesystem partition (vda1), 1 MiB aligned as partitioning tools do.
pub const FS_OFFSET: u64 = MIB;
/// Size of the filesystem partition.
pub const FS_SIZE: u64 = 32 * MIB;
/// Byte offset of the raw partition (vda2).
pub const RAW_OFFSET: u64 = FS_OFFSET + FS_SIZE;
/// Size of the raw partition: room for a 64 MiB sequential benchmark.
pub const RAW_SIZE: u64 = 64 * MIB;
/// Size of the whole image.
pub const DISK_SIZE: u64 = RAW_OFFSET + RAW_SIZE;
// Partitions 1 MiB aligned (what partitioning tools do, and a multiple of any block size);
// the MBR counts sectors in 32 bits.
const _: () = assert!(FS_OFFSET.is_multiple_of(MIB) && RAW_OFFSET.is_multiple_of(MIB));
const _: () = assert!(DISK_SIZE / 512 <= u32::MAX as u64);

/// A file of the web content: its name under `/srv` and how it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebFile {
    pub name: &'static str,
    pub size: u64,
    /// Seed of its [`crate::pattern`] stream; `None` for `index.html`, which is text.
    pub seed: Option<u64>,
}

/// The files on vda1, sizes chosen to cross the boundaries a transfer path cuts at (a TCP
/// segment, a page, a descriptor's buffer) rather than to land on them.
pub const WEB_FILES: &[WebFile] = &[
    WebFile {
        name: "index.html",
        size: 0, // its text's length; see `web_file`
        seed: None,
    },
    WebFile {
        name: "small.bin",
        size: 1_000,
        seed: Some(0x5a11),
    },
    WebFile {
        name: "1m.bin",
        size: MIB + 3,
        seed: Some(0x0001_0000),
    },
    WebFile {
        name: "16m.bin",
        size: 16 * MIB,
        seed: Some(0x0016_0000),
    },
];

fn index_html() -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><title>axolotl gateway</title></head><body>\n\
         <h1>axolotl gateway guest</h1>\n<p>Served by busybox httpd from the data disk.</p>\n<ul>\n",
    );
    for f in WEB_FILES.iter().filter(|f| f.seed.is_some()) {
        s.push_str(&format!(
            "<li><a href=\"{0}\">{0}</a> {1} bytes</li>\n",
            f.name, f.size
        ));
    }
    s.push_str("</ul>\n</body></html>\n");
    s
}

/// The exact bytes of a web file, for clients to compare what they fetched.
pub fn web_file(name: &str) -> Option<Vec<u8>> {
    let f = WEB_FILES.iter().find(|f| f.name == name)?;
    Some(match f.seed {
        None => index_html().into_bytes(),
        Some(seed) => {
            let mut v = vec![0; f.size as usize];
            pattern::fill(seed, 0, &mut v);
            v
        }
    })
}

/// The MBR: two primary Linux (0x83) partitions, LBA addressing only (CHS fields say
/// "beyond CHS", as tools do for large disks).
pub fn mbr() -> [u8; 512] {
    let mut m = [0u8; 512];
    m[440..444].copy_from_slice(&0x4158_4f4cu32.to_le_bytes());
    for (i, (off, size)) in [(FS_OFFSET, FS_SIZE), (RAW_OFFSET, RAW_SIZE)]
        .into_iter()
        .enumerate()
    {
        let e = &mut m[446 + 16 * i..462 + 16 * i];
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[4] = 0x83;
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[8..12].copy_from_slice(&((off / 512) as u32).to_le_bytes());
        e[12..16].copy_from_slice(&((size / 512) as u32).to_le_bytes());
    }
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// What a made image depends on, for a cache to tell whether its copy is current. Bump the
/// version when the content changes in a way the numbers here do not show.
pub fn layout_description() -> String {
    let mut s = format!(
        "data disk v1: fs {FS_OFFSET}+{FS_SIZE} ext2 {FS_UUID}, raw {RAW_OFFSET}+{RAW_SIZE}\n"
    );
    for f in WEB_FILES {
        s.push_str(&format!("{} {} {:?}\n", f.name, f.size, f.seed));
    }
    s
}

/// Creation and file times of the filesystem (2023-11-14).
const FAKE_TIME: u64 = 1_700_000_000;

/// Fixed so that the same code makes the same image anywhere.
const FS_UUID: &str = "a7010710-0000-4000-8000-000000000015";

/// Writes the data disk to `out` (sparse where it is zero). Needs `mke2fs` and `debugfs`
/// (e2fsprogs).
pub fn make_data_disk(out: &Path) -> Result<(), Error> {
    let dir = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("disk");
    // Scratch names per process: two setups may make the cache's image at once.
    let pid = std::process::id();
    let staging = dir.join(format!(".{name}.{pid}.content"));
    let fsimg = dir.join(format!(".{name}.{pid}.fs"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(io_err(format!("creating {}", staging.display())))?;
    // mke2fs -d copies each file's mode (and times, which debugfs sets below).
    let mode = |p: &Path, m: u32| {
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m))
            .map_err(io_err(format!("chmod {}", p.display())))
    };
    for f in WEB_FILES {
        let p = staging.join(f.name);
        fs::write(&p, web_file(f.name).unwrap())
            .map_err(io_err(format!("writing {}", p.display())))?;
        mode(&p, 0o644)?;
    }
    mode(&staging, 0o755)?;
    let _ = fs::remove_file(&fsimg);
    let mke2fs = run(Command::new("mke2fs")
        .env("E2FSPROGS_FAKE_TIME", FAKE_TIME.to_string())
        .args([
            "-q",
            "-F",
            "-t",
            "ext2",
            "-b",
            "4096",
            "-m",
            "0",
            "-L",
            "axolotl-data",
            "-U",
        ])
        .arg(FS_UUID)
        .arg("-E")
        .arg(format!("root_owner=0:0,hash_seed={FS_UUID}"))
        .arg("-d")
        .arg(&staging)
        .arg(&fsimg)
        .arg(format!("{}k", FS_SIZE >> 10)));
    let _ = fs::remove_dir_all(&staging);
    // mke2fs takes the inodes' times from the host files (a change time no one can set, an
    // access time its own reading moves): debugfs sets them all.
    let mke2fs = mke2fs.and_then(|_| {
        let cmds = dir.join(format!(".{name}.{pid}.debugfs"));
        let mut script = String::new();
        for path in std::iter::once("").chain(WEB_FILES.iter().map(|f| f.name)) {
            for field in ["ctime", "atime", "mtime"] {
                script.push_str(&format!("sif /{path} {field} @{FAKE_TIME}\n"));
            }
        }
        fs::write(&cmds, script).map_err(io_err(format!("writing {}", cmds.display())))?;
        let r = run(Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(&fsimg));
        let _ = fs::remove_file(&cmds);
        r
    });
    if let Err(e) = mke2fs {
        let _ = fs::remove_file(&fsimg);
        return Err(match e {
            Error::Io { .. } => Error::Prerequisite(
                "the data disk needs mke2fs and debugfs: install e2fsprogs (`apt-get install e2fsprogs`, or `cargo xtask setup` as root)".into(),
            ),
            e => e,
        });
    }
    let fs_bytes = fs::read(&fsimg).map_err(io_err(format!("reading {}", fsimg.display())))?;
    let _ = fs::remove_file(&fsimg);
    if fs_bytes.len() as u64 != FS_SIZE {
        return Err(Error::Prerequisite(format!(
            "mke2fs made {} bytes, not {FS_SIZE}",
            fs_bytes.len()
        )));
    }
    let tmp = dir.join(format!(".{name}.{pid}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    let w = |f: &mut fs::File, at: u64, data: &[u8]| {
        f.seek(SeekFrom::Start(at))?;
        f.write_all(data)
    };
    f.set_len(DISK_SIZE)
        .and_then(|_| w(&mut f, 0, &mbr()))
        .and_then(|_| w(&mut f, FS_OFFSET, &fs_bytes))
        .and_then(|_| f.sync_all())
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, out).map_err(io_err(format!("renaming to {}", out.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_and_in_order() {
        let m = mbr();
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        let part = |i: usize| {
            let e = &m[446 + 16 * i..462 + 16 * i];
            let u = |o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap()) as u64;
            (e[4], u(8) * 512, u(12) * 512)
        };
        assert_eq!(part(0), (0x83, FS_OFFSET, FS_SIZE));
        assert_eq!(part(1), (0x83, RAW_OFFSET, RAW_SIZE));
        assert_eq!(part(2), (0, 0, 0));
    }

    #[test]
    fn web_files_have_their_sizes_and_differ() {
        let small = web_file("small.bin").unwrap();
        let big = web_file("1m.bin").unwrap();
        assert_eq!((small.len(), big.len()), (1000, (1 << 20) + 3));
        assert_ne!(&small[..64], &big[..64]);
        let index = String::from_utf8(web_file("index.html").unwrap()).unwrap();
        assert!(index.contains("16m.bin") && index.contains("16777216 bytes"));
        assert!(web_file("nope").is_none());
        // The total fits the filesystem with room for its metadata.
        let total: u64 = WEB_FILES.iter().map(|f| f.size).sum::<u64>() + index.len() as u64;
        assert!(total < FS_SIZE * 3 / 4);
    }

    /// Builds the real image and reads the files back with e2fsprogs' debugfs.
    #[test]
    fn disk_image_holds_the_files() {
        if Command::new("mke2fs").arg("-V").output().is_err()
            || Command::new("debugfs").arg("-V").output().is_err()
        {
            println!("skipped: e2fsprogs (mke2fs, debugfs) not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("axolotl-disk-{}", std::process::id()));
        let img = dir.join("data.img");
        make_data_disk(&img).unwrap();
        let disk = fs::read(&img).unwrap();
        assert_eq!(disk.len() as u64, DISK_SIZE);
        assert_eq!(&disk[..512], &mbr());
        assert!(disk[RAW_OFFSET as usize..].iter().all(|&b| b == 0));
        let fsimg = dir.join("fs.img");
        fs::write(&fsimg, &disk[FS_OFFSET as usize..RAW_OFFSET as usize]).unwrap();
        for f in WEB_FILES {
            let got = dir.join(f.name);
            let out = Command::new("debugfs")
                .arg("-R")
                .arg(format!("dump /{} {}", f.name, got.display()))
                .arg(&fsimg)
                .output()
                .unwrap();
            let bytes = fs::read(&got).unwrap_or_else(|e| {
                panic!("{}: {e}: {}", f.name, String::from_utf8_lossy(&out.stderr))
            });
            assert!(bytes == web_file(f.name).unwrap(), "{} differs", f.name);
        }
        // The same code makes the same image.
        let again = dir.join("again.img");
        make_data_disk(&again).unwrap();
        let again = fs::read(&again).unwrap();
        fs::remove_dir_all(&dir).ok();
        let diff = disk.iter().zip(&again).position(|(a, b)| a != b);
        assert_eq!(
            diff, None,
            "two builds of the data disk differ at this offset"
        );
    }
}
