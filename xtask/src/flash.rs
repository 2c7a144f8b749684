//! `cargo xtask flash`: writes an SD-card image to a card, refusing what is likely not the
//! card. The checks read /sys and the mount and swap tables through [`Host`], so the tests
//! run them against a fake /sys tree.

use std::fs;
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// What the user allowed.
pub struct Policy {
    /// Take a device that is not removable or larger than `max_bytes`.
    pub force: bool,
    pub max_bytes: u64,
}

/// Where the facts about block devices come from.
pub struct Host {
    pub sys: PathBuf,
    /// /proc/self/mounts' text.
    pub mounts: String,
    /// /proc/swaps' text.
    pub swaps: String,
}

impl Host {
    pub fn real() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            mounts: fs::read_to_string("/proc/self/mounts").unwrap_or_default(),
            swaps: fs::read_to_string("/proc/swaps").unwrap_or_default(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (an image copy): written and truncated to the image.
    File,
    /// A whole disk, /sys/block/<name>.
    Disk { name: String },
}

/// A checked destination.
#[derive(Debug)]
pub struct Dest {
    pub path: PathBuf,
    pub kind: Kind,
    pub bytes: u64,
    pub model: String,
}

/// `device` if it may be written under `policy`, else why not.
pub fn check(device: &Path, policy: &Policy, host: &Host) -> Result<Dest, String> {
    let meta = fs::metadata(device).map_err(|e| format!("{}: {e}", device.display()))?;
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(Dest {
            path: device.to_path_buf(),
            kind: Kind::File,
            bytes: meta.len(),
            model: "a regular file".into(),
        });
    }
    if !ft.is_block_device() {
        return Err(format!(
            "{} is neither a block device nor a regular file",
            device.display()
        ));
    }
    // /dev/disk/by-id/... links to the node whose name /sys knows.
    let real = fs::canonicalize(device).map_err(|e| format!("{}: {e}", device.display()))?;
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no device name", real.display()))?;
    check_disk(device, name, policy, host)
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// The checks of the whole disk `name` (as /sys/block names it) that `path` is.
pub fn check_disk(path: &Path, name: &str, policy: &Policy, host: &Host) -> Result<Dest, String> {
    let disk = host.sys.join("block").join(name);
    if !disk.is_dir() {
        if host
            .sys
            .join("class/block")
            .join(name)
            .join("partition")
            .exists()
        {
            return Err(format!(
                "{} is a partition: give the whole card (/dev/sdX or /dev/mmcblkN, not /dev/sdX1)",
                path.display()
            ));
        }
        return Err(format!(
            "{name} is no disk in {}",
            host.sys.join("block").display()
        ));
    }
    // The disk and its partitions (sdb1, mmcblk0p1: subdirectories named after the disk).
    let mut parts = vec![name.to_string()];
    if let Ok(rd) = fs::read_dir(&disk) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(name) && e.path().join("partition").exists() {
                parts.push(n);
            }
        }
    }
    let in_use = |table: &str, what: &str| -> Result<(), String> {
        for line in table.lines() {
            let mut f = line.split_whitespace();
            let (Some(src), Some(on)) = (f.next(), f.next()) else {
                continue;
            };
            if !src.starts_with("/dev/") {
                continue;
            }
            let real = fs::canonicalize(src).unwrap_or_else(|_| PathBuf::from(src));
            let base = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if parts.iter().any(|p| p == base) {
                let on = if what == "mounted" {
                    format!(" on {on}")
                } else {
                    String::new()
                };
                return Err(format!(
                    "{src} is {what}{on}: {} is in use (unmount it first; --force does not override this)",
                    path.display()
                ));
            }
        }
        Ok(())
    };
    in_use(&host.mounts, "mounted")?;
    // /proc/swaps: a header line, then the swap device first on each line.
    in_use(&host.swaps, "a swap area")?;

    let sectors: u64 = read_trim(&disk.join("size"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{}: no size", disk.display()))?;
    let bytes = sectors * 512;
    if bytes == 0 {
        return Err(format!(
            "{}: no medium (a card reader without a card?)",
            path.display()
        ));
    }
    // A USB reader says removable; a laptop's built-in SD slot (mmcblk) says 0 but names
    // its card's type.
    let removable = read_trim(&disk.join("removable")).as_deref() == Some("1")
        || (name.starts_with("mmcblk")
            && read_trim(&disk.join("device/type")).as_deref() == Some("SD"));
    let model = read_trim(&disk.join("device/model")).unwrap_or_default();
    if !removable && !policy.force {
        return Err(format!(
            "{} ({model}) is not removable ({}/removable): a system disk? If it really is the \
             card, --force",
            path.display(),
            disk.display()
        ));
    }
    if bytes > policy.max_bytes && !policy.force {
        return Err(format!(
            "{} is {} GiB, more than an SD card's {} GiB: --force (or --max-gib) if it is the card",
            path.display(),
            bytes >> 30,
            policy.max_bytes >> 30
        ));
    }
    Ok(Dest {
        path: path.to_path_buf(),
        kind: Kind::Disk {
            name: name.to_string(),
        },
        bytes,
        model,
    })
}

/// Asks before writing `image` to `dest`; true only for the answer `yes`.
pub fn confirm(
    dest: &Dest,
    image: &Path,
    answer: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<bool, String> {
    let what = match &dest.kind {
        Kind::File => "a regular file".to_string(),
        Kind::Disk { name } => format!("{name}, {} MiB, {}", dest.bytes >> 20, dest.model),
    };
    write!(
        out,
        "write {} to {} ({what})? Everything on it is lost. Type yes: ",
        image.display(),
        dest.path.display()
    )
    .and_then(|_| out.flush())
    .map_err(|e| e.to_string())?;
    let mut line = String::new();
    answer.read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(line.trim() == "yes")
}

/// Writes `data` at the start of `dest`, syncs, and reads it back (through the page cache:
/// dropping it for the device needs an ioctl, and this crate has no libc binding).
pub fn write(dest: &Dest, data: &[u8]) -> Result<(), String> {
    let p = &dest.path;
    let err = |e: std::io::Error| format!("{}: {e}", p.display());
    if let Kind::Disk { .. } = dest.kind
        && data.len() as u64 > dest.bytes
    {
        return Err(format!(
            "the image ({} bytes) is larger than {} ({} bytes)",
            data.len(),
            p.display(),
            dest.bytes
        ));
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(dest.kind == Kind::File)
        .open(p)
        .map_err(err)?;
    for chunk in data.chunks(4 << 20) {
        f.write_all(chunk).map_err(err)?;
    }
    f.sync_all().map_err(err)?;
    drop(f);
    let mut back = fs::File::open(p).map_err(err)?;
    let mut buf = vec![0u8; 4 << 20];
    for (i, chunk) in data.chunks(4 << 20).enumerate() {
        back.read_exact(&mut buf[..chunk.len()]).map_err(err)?;
        if buf[..chunk.len()] != *chunk {
            return Err(format!(
                "{}: read back differs in the 4 MiB chunk at {} MiB",
                p.display(),
                i * 4
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn scratch() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "axolotl-flash-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A fake /sys with the disk `name` (`removable`, `gib` GiB) and its partitions `parts`.
    fn sys(name: &str, removable: &str, gib: u64, parts: &[&str]) -> Host {
        let root = scratch();
        let disk = root.join("block").join(name);
        fs::create_dir_all(disk.join("device")).unwrap();
        fs::write(disk.join("removable"), format!("{removable}\n")).unwrap();
        fs::write(disk.join("size"), format!("{}\n", (gib << 30) / 512)).unwrap();
        fs::write(disk.join("device/model"), "Card Reader     \n").unwrap();
        for p in parts {
            fs::create_dir_all(disk.join(p)).unwrap();
            fs::write(disk.join(p).join("partition"), "1\n").unwrap();
            let class = root.join("class/block").join(p);
            fs::create_dir_all(&class).unwrap();
            fs::write(class.join("partition"), "1\n").unwrap();
        }
        Host {
            sys: root,
            mounts: "sysfs /sys sysfs rw 0 0\n/dev/sda2 / ext4 rw 0 0\n".into(),
            swaps: "Filename Type Size Used Priority\n/dev/sda3 partition 1 0 -2\n".into(),
        }
    }

    const SD: Policy = Policy {
        force: false,
        max_bytes: 256 << 30,
    };
    const FORCE: Policy = Policy {
        force: true,
        max_bytes: 256 << 30,
    };

    fn disk(name: &str, p: &Policy, h: &Host) -> Result<Dest, String> {
        check_disk(Path::new(&format!("/dev/{name}")), name, p, h)
    }

    #[test]
    fn an_unmounted_removable_card_is_taken() {
        let h = sys("sdb", "1", 32, &["sdb1", "sdb2"]);
        let d = disk("sdb", &SD, &h).unwrap();
        assert_eq!(d.bytes, 32 << 30);
        assert_eq!(d.model, "Card Reader");
        assert_eq!(d.kind, Kind::Disk { name: "sdb".into() });
    }

    #[test]
    fn a_mounted_card_is_refused_even_with_force() {
        let mut h = sys("sdb", "1", 32, &["sdb1"]);
        h.mounts += "/dev/sdb1 /media/u/AXOLOTLBOOT vfat rw 0 0\n";
        for p in [&SD, &FORCE] {
            let e = disk("sdb", p, &h).unwrap_err();
            assert!(
                e.contains("/dev/sdb1 is mounted on /media/u/AXOLOTLBOOT"),
                "{e}"
            );
        }
        let mut h = sys("sdc", "1", 32, &[]);
        h.mounts += "/dev/sdc /mnt vfat rw 0 0\n";
        assert!(
            disk("sdc", &FORCE, &h).is_err(),
            "a partitionless card mounted whole"
        );
        let mut h = sys("sdd", "1", 32, &["sdd1"]);
        h.swaps += "/dev/sdd1 partition 1 0 -3\n";
        let e = disk("sdd", &FORCE, &h).unwrap_err();
        assert!(e.contains("swap"), "{e}");
        // Another disk's mounts do not matter.
        let mut h = sys("sde", "1", 32, &["sde1"]);
        h.mounts += "/dev/sdb1 /media/u/X vfat rw 0 0\n";
        assert!(disk("sde", &SD, &h).is_ok());
    }

    #[test]
    fn a_fixed_disk_needs_force() {
        let h = sys("nvme0n1", "0", 200, &["nvme0n1p1"]);
        let e = disk("nvme0n1", &SD, &h).unwrap_err();
        assert!(e.contains("not removable"), "{e}");
        assert!(disk("nvme0n1", &FORCE, &h).is_ok());
    }

    #[test]
    fn a_built_in_sd_slot_is_removable() {
        let h = sys("mmcblk0", "0", 16, &["mmcblk0p1"]);
        assert!(disk("mmcblk0", &SD, &h).is_err());
        fs::write(h.sys.join("block/mmcblk0/device/type"), "SD\n").unwrap();
        assert!(disk("mmcblk0", &SD, &h).is_ok());
        // An eMMC is not a card.
        fs::write(h.sys.join("block/mmcblk0/device/type"), "MMC\n").unwrap();
        assert!(disk("mmcblk0", &SD, &h).is_err());
    }

    #[test]
    fn a_large_disk_needs_force() {
        let h = sys("sdb", "1", 2048, &[]);
        let e = disk("sdb", &SD, &h).unwrap_err();
        assert!(e.contains("2048 GiB"), "{e}");
        assert!(disk("sdb", &FORCE, &h).is_ok());
        let small = Policy {
            force: false,
            max_bytes: 4 << 30,
        };
        assert!(disk("sdb", &small, &sys("sdb", "1", 8, &[])).is_err());
    }

    #[test]
    fn partitions_empty_readers_and_unknown_disks_are_refused() {
        let h = sys("sdb", "1", 32, &["sdb1"]);
        let e = disk("sdb1", &FORCE, &h).unwrap_err();
        assert!(e.contains("is a partition"), "{e}");
        assert!(disk("sdz", &FORCE, &h).is_err());
        let h = sys("sdb", "1", 0, &[]);
        let e = disk("sdb", &FORCE, &h).unwrap_err();
        assert!(e.contains("no medium"), "{e}");
    }

    #[test]
    fn a_regular_file_is_written_and_verified_and_a_directory_refused() {
        let dir = scratch();
        let h = sys("sdb", "1", 32, &[]);
        let f = dir.join("card.img");
        fs::write(&f, vec![0xaa; 10 << 20]).unwrap();
        let d = check(&f, &SD, &h).unwrap();
        assert_eq!(d.kind, Kind::File);
        let data: Vec<u8> = (0..(5u32 << 20) + 7).map(|i| (i % 249) as u8).collect();
        write(&d, &data).unwrap();
        assert_eq!(fs::read(&f).unwrap(), data, "truncated to the image");
        assert!(check(&dir, &FORCE, &h).is_err());
        assert!(check(&dir.join("missing"), &FORCE, &h).is_err());
        // A character device is no card.
        assert!(check(Path::new("/dev/null"), &FORCE, &h).is_err());
    }

    #[test]
    fn only_yes_writes() {
        let d = Dest {
            path: "/dev/sdb".into(),
            kind: Kind::Disk { name: "sdb".into() },
            bytes: 32 << 30,
            model: "Card Reader".into(),
        };
        let img = Path::new("x.sd.img");
        for (answer, want) in [("yes\n", true), ("y\n", false), ("\n", false), ("", false)] {
            let mut out = Vec::new();
            let got = confirm(&d, img, &mut answer.as_bytes(), &mut out).unwrap();
            assert_eq!(got, want, "{answer:?}");
            let asked = String::from_utf8(out).unwrap();
            assert!(
                asked.contains("/dev/sdb (sdb, 32768 MiB, Card Reader)"),
                "{asked}"
            );
        }
    }

    #[test]
    fn an_image_larger_than_the_card_is_refused() {
        let d = Dest {
            path: "/nonexistent/sdb".into(),
            kind: Kind::Disk { name: "sdb".into() },
            bytes: 1024,
            model: String::new(),
        };
        let e = write(&d, &[0; 2048]).unwrap_err();
        assert!(e.contains("larger"), "{e}");
    }
}
