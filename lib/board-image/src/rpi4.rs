//! The Raspberry Pi 4's SD card: an MBR with one FAT32 partition holding the firmware from
//! Debian's `raspi-firmware` package, a `config.txt` and the kernel as a flat binary.
//!
//! The Pi 4's boot EEPROM reads `start4.elf` and `fixup4.dat` from the first FAT partition;
//! the firmware reads `config.txt`, loads `kernel=` at `kernel_address=` and enters it at EL2
//! through its built-in armstub, with the secondary cores waiting on the spin table.

use std::path::{Path, PathBuf};

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
pub use crate::card::MIN_PARTITION;

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
    crate::card::fat32_card(files, PARTITION_LBA)
}

pub use crate::card::{Contents, read_image};
