//! `cargo xtask image`: an SD-card image ready to flash (issue #18, docs/boards.md).

use std::path::{Path, PathBuf};

use axolotl_board_image::{amlogic, rpi4};
use axolotl_kernel_config::{Board, RPI4B};

/// Whether `board` has an SD-card image, and, for the ODROIDs, whether the boot loader it
/// needs (which Debian cannot provide) was given: checked before anything is built.
pub fn supported(board: &Board, bootloader: Option<&Path>) -> Result<(), String> {
    // Every Pi 4 (`rpi4b`, `rpi4b_1gb` to `rpi4b_8gb`) has the same card: the firmware
    // tells the kernel nothing, the board the kernel was built for says how much RAM it has.
    if board.family == RPI4B.family {
        if bootloader.is_some() {
            return Err(format!(
                "{} boots from the Pi firmware: no --bootloader",
                board.name
            ));
        }
        return Ok(());
    }
    if amlogic::supported(board) {
        return match bootloader {
            Some(_) => Ok(()),
            None => Err(format!(
                "no SD image for {} without a boot loader: {}",
                board.name,
                amlogic::bootloader_instructions(board)
            )),
        };
    }
    Err(format!(
        "no SD-card image for board {}: rpi4b (rpi4b_1gb to rpi4b_8gb), odroid-c4 and \
         odroid-c2 only (docs/boards.md)",
        board.name
    ))
}

/// The SD card of `board` booting the flat kernel `kernel`, checked by reading it back: the
/// Pi's with the firmware in `firmware`, the ODROIDs' with the boot loader `bootloader`.
pub fn sd_card(
    board: &Board,
    kernel: &[u8],
    firmware: &Path,
    bootloader: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    if amlogic::supported(board) {
        let bl = bootloader.ok_or_else(|| amlogic::bootloader_instructions(board))?;
        let files = amlogic::boot_files(board, kernel)?;
        let image = amlogic::sd_image(&files, bl)?;
        amlogic::check_image(&image, board, bl)?;
        return Ok(image);
    }
    supported(board, None)?;
    let files = rpi4::boot_files(firmware, kernel, board.kernel_load)?;
    let image = rpi4::sd_image(&files)?;
    let back = rpi4::read_image(&image)?;
    for (name, data) in &files {
        if back.files.get(name) != Some(data) {
            return Err(format!("{name} did not read back from the image"));
        }
    }
    Ok(image)
}

/// Builds `<image>.sd.img` (or `out`) beside the kernel image `elf` and says what is in it.
pub fn write(
    board: &Board,
    elf: &Path,
    out: Option<&Path>,
    bootloader: Option<&Path>,
) -> Result<PathBuf, String> {
    supported(board, bootloader)?;
    let raw = crate::images::raw_image(elf);
    let kernel = std::fs::read(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let image = match bootloader {
        Some(p) => {
            let bl = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            sd_card(board, &kernel, Path::new(""), Some(&bl))?
        }
        None => {
            let firmware = rpi4::cached_firmware().ok_or_else(|| {
                format!(
                    "the Pi firmware ({} {}) is not in {}: run `cargo xtask setup`",
                    rpi4::FIRMWARE_PACKAGE,
                    rpi4::FIRMWARE_VERSION,
                    rpi4::firmware_cache_dir().display()
                )
            })?;
            sd_card(board, &kernel, &firmware, None)?
        }
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| elf.with_extension("sd.img"));
    std::fs::write(&out, &image).map_err(|e| format!("{}: {e}", out.display()))?;
    let c = rpi4::read_image(&image)?;
    let p = c.partitions[0];
    if let Some(bl) = bootloader {
        println!(
            "sd image: boot loader {} at sector 1 (its first {} bytes in sector 0's boot code)",
            bl.display(),
            amlogic::SECTOR0_BOOT_CODE
        );
    }
    println!(
        "sd image: partition 1 FAT32 at sector {} ({} MiB): {}",
        p.first_lba,
        (p.sectors as u64 * 512) >> 20,
        c.files
            .iter()
            .map(|(n, d)| format!("{n} ({} bytes)", d.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image with the real firmware from Debian's package (when setup has fetched it):
    /// the partition table, the firmware files byte for byte, config.txt naming the kernel
    /// at the board's load address.
    #[test]
    fn rpi4b_sd_card_has_the_firmware_config_and_kernel() {
        let Some(fw) = rpi4::cached_firmware() else {
            eprintln!(
                "skipped: the Pi firmware is not in {} (run `cargo xtask setup`)",
                rpi4::firmware_cache_dir().display()
            );
            return;
        };
        let kernel: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let img = sd_card(&RPI4B, &kernel, &fw, None).unwrap();
        let c = rpi4::read_image(&img).unwrap();
        assert_eq!(c.partitions.len(), 1);
        let p = c.partitions[0];
        assert_eq!(p.kind, axolotl_board_image::mbr::FAT32_LBA);
        assert!(p.bootable);
        assert_eq!(p.first_lba, rpi4::PARTITION_LBA);
        assert_eq!(c.fat_type, "Fat32");
        for f in rpi4::FIRMWARE_FILES {
            let want = std::fs::read(fw.join(f)).unwrap();
            assert!(want.len() > 1000, "{f} is a real firmware file");
            assert_eq!(c.files.get(*f), Some(&want), "{f}");
        }
        // start4.elf is the VideoCore's ELF.
        assert_eq!(&c.files["start4.elf"][..4], b"\x7fELF");
        let config = String::from_utf8(c.files["config.txt"].clone()).unwrap();
        assert!(config.contains("kernel=axolotl.img\n"), "{config}");
        assert!(
            config.contains(&format!("kernel_address={:#x}\n", RPI4B.kernel_load)),
            "{config}"
        );
        assert_eq!(c.files.get(rpi4::KERNEL_FILE), Some(&kernel));
    }

    #[test]
    fn only_the_pi_and_the_odroids_have_an_sd_card() {
        let virt = axolotl_kernel_config::board_by_name("qemu-virt-aarch64", None).unwrap();
        let e = sd_card(&virt, b"k", Path::new("/nonexistent"), None).unwrap_err();
        assert!(
            e.contains("rpi4b (rpi4b_1gb to rpi4b_8gb), odroid-c4 and odroid-c2 only"),
            "{e}"
        );
    }

    /// Without a boot loader the ODROIDs' image is refused, saying where one comes from,
    /// rather than made unbootable.
    #[test]
    fn an_odroid_card_without_a_boot_loader_is_refused_with_instructions() {
        use axolotl_kernel_config::{ODROID_C2, ODROID_C4};
        for b in [ODROID_C4, ODROID_C2] {
            let e = supported(&b, None).unwrap_err();
            assert!(e.contains("--bootloader") && e.contains("BL31"), "{e}");
            assert!(sd_card(&b, b"k", Path::new(""), None).is_err());
            assert!(supported(&b, Some(Path::new("u-boot.bin.sd.bin"))).is_ok());
        }
        assert!(e_has(
            &supported(&ODROID_C2, None),
            "/usr/lib/u-boot/odroid-c2/u-boot.bin"
        ));
        assert!(supported(&RPI4B, Some(Path::new("x"))).is_err());
    }

    /// Every Pi 4 RAM size has the Pi's card (the same files: only the kernel differs).
    #[test]
    fn every_pi_4_has_the_pi_s_card() {
        for name in ["rpi4b", "rpi4b_1gb", "rpi4b_2gb", "rpi4b_4gb", "rpi4b_8gb"] {
            let b = axolotl_kernel_config::board_by_name(name, None).unwrap();
            assert!(supported(&b, None).is_ok(), "{name}");
            assert!(e_has(&supported(&b, Some(Path::new("x"))), name));
            assert!(!amlogic::supported(&b), "{name}");
        }
    }

    fn e_has(r: &Result<(), String>, s: &str) -> bool {
        r.as_ref().is_err_and(|e| e.contains(s))
    }
}
