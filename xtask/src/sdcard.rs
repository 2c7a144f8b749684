//! `cargo xtask image`: an SD-card image ready to flash (issue #18, docs/boards.md).

use std::path::{Path, PathBuf};

use axolotl_board_image::rpi4;
use axolotl_kernel_config::{Board, RPI4B};

/// Whether `board` has an SD-card image.
pub fn supported(board: &Board) -> Result<(), String> {
    if *board != RPI4B {
        return Err(format!(
            "no SD-card image for board {} yet: rpi4b only (docs/boards.md)",
            board.name
        ));
    }
    Ok(())
}

/// The SD card of `board` booting the flat kernel `kernel`, checked by reading it back.
pub fn sd_card(board: &Board, kernel: &[u8], firmware: &Path) -> Result<Vec<u8>, String> {
    supported(board)?;
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
pub fn write(board: &Board, elf: &Path, out: Option<&Path>) -> Result<PathBuf, String> {
    let firmware = rpi4::cached_firmware().ok_or_else(|| {
        format!(
            "the Pi firmware ({} {}) is not in {}: run `cargo xtask setup`",
            rpi4::FIRMWARE_PACKAGE,
            rpi4::FIRMWARE_VERSION,
            rpi4::firmware_cache_dir().display()
        )
    })?;
    let raw = crate::images::raw_image(elf);
    let kernel = std::fs::read(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let image = sd_card(board, &kernel, &firmware)?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| elf.with_extension("sd.img"));
    std::fs::write(&out, &image).map_err(|e| format!("{}: {e}", out.display()))?;
    let c = rpi4::read_image(&image)?;
    let p = c.partitions[0];
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
        let img = sd_card(&RPI4B, &kernel, &fw).unwrap();
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
    fn only_rpi4b_has_an_sd_card() {
        let virt = axolotl_kernel_config::board_by_name("qemu-virt-aarch64", None).unwrap();
        let e = sd_card(&virt, b"k", Path::new("/nonexistent")).unwrap_err();
        assert!(e.contains("rpi4b only"), "{e}");
    }
}
