//! The Raspberry Pi 4's SD card: an MBR with one FAT32 partition holding the firmware from
//! Debian's `raspi-firmware` package, a `config.txt` and the kernel as a flat binary.
//!
//! The Pi 4's boot EEPROM reads `start4.elf` and `fixup4.dat` from the first FAT partition;
//! the firmware reads `config.txt`, loads `kernel=` at `kernel_address=` and enters it at EL2
//! through its built-in armstub, with the secondary cores waiting on the spin table.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use crate::mbr::{self, FAT32_LBA, Partition, SECTOR};

/// Debian's package of the Pi's boot firmware (bookworm, `non-free-firmware`), pinned.
pub const FIRMWARE_PACKAGE: &str = "raspi-firmware";
pub const FIRMWARE_VERSION: &str = "1.20220830+ds-1";
/// Where the package keeps the firmware.
pub const FIRMWARE_SUBDIR: &str = "usr/lib/raspi-firmware";
/// What a Pi 4 boots from (the `4` files; `bootcode.bin` is for the Pi 3 and older, whose
/// boot ROM has no EEPROM bootloader).
pub const FIRMWARE_FILES: &[&str] = &["start4.elf", "fixup4.dat"];
/// The kernel's file name on the boot partition.
pub const KERNEL_FILE: &str = "axolotl.img";
/// The boot partition starts 1 MiB in (sector 2048), as SD cards are laid out.
pub const PARTITION_LBA: u32 = 2048;
/// The smallest boot partition: FAT32 needs 65525 clusters (of 512 bytes here).
pub const MIN_PARTITION: u64 = 64 << 20;
const VOLUME_LABEL: [u8; 11] = *b"AXOLOTLBOOT";
/// Fixed, so the same inputs make the same image.
const DISK_ID: u32 = 0x4158_4f4c;
const VOLUME_ID: u32 = 0x0018_0004;

/// Every file's timestamp: fixed (the same inputs make the same image) and a valid FAT date,
/// 2025-01-01 (fatfs without a clock writes month and day 0).
#[derive(Debug)]
struct FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 2025,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FIXED_TIME: FixedTime = FixedTime;

/// The firmware's configuration: 64-bit, the kernel at the address it is linked at, the UART's
/// reference clock the kernel programs the PL011 from.
pub fn config_txt(kernel_load: u64) -> String {
    format!(
        "# axolotl (issue #18): the firmware enters {KERNEL_FILE} at EL2 on the boot core,\n\
         # the others wait on the spin table.\n\
         arm_64bit=1\n\
         kernel={KERNEL_FILE}\n\
         kernel_address={kernel_load:#x}\n\
         # The UARTs' clock: the kernel sets PL011 UART0 to 115200 baud from it and takes\n\
         # GPIO 14/15 (header pins 8 and 10) for it.\n\
         enable_uart=1\n\
         init_uart_clock=48000000\n"
    )
}

/// `$XDG_CACHE_HOME/axolotl/raspi-firmware/<version>` (else under `~/.cache`), where
/// `cargo xtask setup` extracts the package: outside the repository.
pub fn firmware_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("axolotl/raspi-firmware").join(FIRMWARE_VERSION)
}

/// The directory holding [`FIRMWARE_FILES`] if setup has extracted them.
pub fn cached_firmware() -> Option<PathBuf> {
    let dir = firmware_cache_dir().join(FIRMWARE_SUBDIR);
    FIRMWARE_FILES
        .iter()
        .all(|f| dir.join(f).is_file())
        .then_some(dir)
}

/// The files of the boot partition: the firmware from `firmware_dir`, `config.txt`, the kernel.
pub fn boot_files(
    firmware_dir: &Path,
    kernel: &[u8],
    kernel_load: u64,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for f in FIRMWARE_FILES {
        let p = firmware_dir.join(f);
        let data = std::fs::read(&p).map_err(|e| {
            format!(
                "{}: {e} (the Pi firmware comes from Debian's {FIRMWARE_PACKAGE}: run `cargo xtask setup`)",
                p.display()
            )
        })?;
        files.push((f.to_string(), data));
    }
    files.push(("config.txt".into(), config_txt(kernel_load).into_bytes()));
    files.push((KERNEL_FILE.into(), kernel.to_vec()));
    Ok(files)
}

/// A whole SD-card image: the MBR, then one bootable FAT32 partition at sector
/// [`PARTITION_LBA`] holding `files` in its root directory, sized for them with room to spare.
pub fn sd_image(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let payload: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    // Room for FAT's tables and cluster slack, and for a user's edits of config.txt.
    let want = (payload + payload / 4 + (16 << 20)).max(MIN_PARTITION);
    let size = want.div_ceil(1 << 20) << 20;
    let sectors = u32::try_from(size / SECTOR).map_err(|_| "boot partition too large")?;
    let mut part = Cursor::new(vec![0u8; size as usize]);
    fn io(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
        move |e| format!("{what}: {e}")
    }
    fatfs::format_volume(
        &mut part,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(512)
            .volume_label(VOLUME_LABEL)
            .volume_id(VOLUME_ID),
    )
    .map_err(io("formatting FAT32"))?;
    {
        let fs = fatfs::FileSystem::new(
            &mut part,
            fatfs::FsOptions::new().time_provider(&FIXED_TIME),
        )
        .map_err(io("opening the new FAT32"))?;
        for (name, data) in files {
            let mut f = fs.root_dir().create_file(name).map_err(io(name))?;
            f.truncate().map_err(io(name))?;
            f.write_all(data).map_err(io(name))?;
        }
        fs.unmount().map_err(io("unmounting"))?;
    }
    let table = mbr::encode(
        &[Partition {
            kind: FAT32_LBA,
            first_lba: PARTITION_LBA,
            sectors,
            bootable: true,
        }],
        DISK_ID,
    );
    let mut image = vec![0u8; PARTITION_LBA as usize * SECTOR as usize];
    image[..512].copy_from_slice(&table);
    image.extend_from_slice(&part.into_inner());
    Ok(image)
}

/// What an SD-card image holds: its partitions and the files in the first one's root
/// directory. Every field is checked: this reads images from anywhere.
pub struct Contents {
    pub partitions: Vec<Partition>,
    pub fat_type: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

pub fn read_image(image: &[u8]) -> Result<Contents, String> {
    let partitions = mbr::decode(image)?;
    let p = *partitions.first().ok_or("no partition")?;
    let start = p.first_lba as u64 * SECTOR;
    let end = start + p.sectors as u64 * SECTOR;
    if end > image.len() as u64 || p.sectors == 0 {
        return Err(format!(
            "partition {start:#x}..{end:#x} beyond the image's {:#x} bytes",
            image.len()
        ));
    }
    let slice = &image[start as usize..end as usize];
    let fs = fatfs::FileSystem::new(Cursor::new(slice.to_vec()), fatfs::FsOptions::new())
        .map_err(|e| format!("FAT: {e}"))?;
    let fat_type = format!("{:?}", fs.fat_type());
    let mut files = BTreeMap::new();
    for e in fs.root_dir().iter() {
        let e = e.map_err(|e| format!("FAT directory: {e}"))?;
        if e.is_file() {
            let mut data = Vec::new();
            e.to_file()
                .read_to_end(&mut data)
                .map_err(|err| format!("{}: {err}", e.file_name()))?;
            files.insert(e.file_name(), data);
        }
    }
    Ok(Contents {
        partitions,
        fat_type,
        files,
    })
}
