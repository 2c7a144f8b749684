//! The ODROID-C2's (Amlogic S905, GXBB) and ODROID-C4's (S905X3, SM1) SD card.
//!
//! The SoC's boot ROM reads the boot loader from the card's sector 1 on (its first 444 bytes
//! may sit in sector 0's boot-code area, before the partition table): Amlogic's signed BL2,
//! then a FIP holding BL30/BL31 (Amlogic's, binary only) and U-Boot as BL33. That whole
//! `u-boot.bin.sd.bin` cannot be made from Debian: `u-boot-amlogic` ships `u-boot.bin` (BL33
//! alone) for the C2 and nothing for the C4, and Amlogic's blobs and signing tool are not
//! in Debian (docs/boards.md says how to get one). So the card takes the boot loader the
//! user gives and writes it where the ROM looks; the rest is ours:
//!
//! * an MBR with one bootable FAT32 partition at [`PARTITION_LBA`], past the boot loader;
//! * `boot.scr`, which U-Boot's distro boot finds and runs: it loads `axolotl.uimg` and
//!   `bootm`s it;
//! * `axolotl.uimg`: the kernel's flat binary in a legacy image whose load and entry address
//!   are the board's `kernel_load`: `bootm` copies it there, turns the MMU and caches off as
//!   it does for Linux, and enters it at EL2 (where U-Boot runs on these SoCs) on the boot
//!   core; the others are off until PSCI starts them, which the kernel never asks for.

use axolotl_kernel_config::Board;

use crate::mbr::SECTOR;
use crate::{card, uimage};

/// The boot partition starts 4 MiB in: the boot loader (BL2, the FIP, U-Boot) comes first.
pub const PARTITION_LBA: u32 = 8192;
/// How much of the boot loader may sit in sector 0: the boot-code area, up to the
/// partition table (what Amlogic's and U-Boot's instructions write, `bs=1 count=444`).
pub const SECTOR0_BOOT_CODE: usize = 444;
/// The largest boot loader that fits before the partition.
pub const MAX_BOOTLOADER: usize = PARTITION_LBA as usize * SECTOR as usize;
pub const SCRIPT_FILE: &str = "boot.scr";
pub const KERNEL_FILE: &str = "axolotl.uimg";

/// The boards this card is for.
pub fn supported(board: &Board) -> bool {
    board.name == "odroid-c4" || board.name == "odroid-c2"
}

/// Where the script has U-Boot load `axolotl.uimg` before `bootm` copies it to the kernel's
/// load address: 256 MiB above that, so a kernel up to 256 MiB is not overwritten.
pub fn staging_address(board: &Board) -> u64 {
    board.kernel_load + (256 << 20)
}

/// The boot script: U-Boot's distro boot (its default `bootcmd`) sets `devtype`, `devnum`
/// and `distro_bootpart` to the partition it found the script on; run by hand (`source`),
/// it takes the first SD card's first partition. `bootm` needs a device tree to enter a
/// kernel as Linux's: U-Boot's own (`fdtcontroladdr`); the kernel ignores it.
pub fn boot_script(board: &Board) -> String {
    let stage = staging_address(board);
    format!(
        "# axolotl on {name} (lib/board-image/src/amlogic.rs): load the kernel's legacy image\n\
         # and bootm it: copied to {load:#x}, MMU and caches off, entered at EL2.\n\
         if test -z \"${{devtype}}\"; then setenv devtype mmc; setenv devnum 0; setenv distro_bootpart 1; fi\n\
         echo \"axolotl: loading {KERNEL_FILE} from ${{devtype}} ${{devnum}}:${{distro_bootpart}}\"\n\
         load ${{devtype}} ${{devnum}}:${{distro_bootpart}} {stage:#x} {KERNEL_FILE}\n\
         bootm {stage:#x} - ${{fdtcontroladdr}}\n\
         echo \"axolotl: bootm returned: {KERNEL_FILE} missing or damaged\"\n",
        name = board.name,
        load = board.kernel_load,
    )
}

/// The boot partition's files for the flat kernel `kernel` (linked at `board.kernel_load`),
/// checked to fit the board's RAM as the script places them.
pub fn boot_files(board: &Board, kernel: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if !supported(board) {
        return Err(format!("{} is no ODROID-C2 or C4", board.name));
    }
    // U-Boot's copy and the kernel's place, in the RAM range the kernel runs in.
    let (ram_start, ram_end) = board.kernel_ram();
    let ram = ram_start..ram_end;
    let stage = staging_address(board);
    let image_len = (uimage::HEADER + kernel.len()) as u64;
    if kernel.is_empty() || kernel.len() as u64 > stage - board.kernel_load {
        return Err(format!(
            "a kernel of {} bytes does not fit below the staging address {stage:#x}",
            kernel.len()
        ));
    }
    if !ram.contains(&board.kernel_load) || stage + image_len > ram.end {
        return Err(format!(
            "the kernel at {:#x} or its image at {stage:#x}+{image_len:#x} is outside RAM {ram:x?}",
            board.kernel_load
        ));
    }
    let load = u32::try_from(board.kernel_load).map_err(|_| "legacy images load below 4 GiB")?;
    let uimg = uimage::encode(uimage::TYPE_KERNEL, load, load, "axolotl", kernel)?;
    let scr = uimage::script("axolotl boot script", &boot_script(board))?;
    Ok(vec![(SCRIPT_FILE.into(), scr), (KERNEL_FILE.into(), uimg)])
}

/// The whole card: the boot loader `bootloader` (a `u-boot.bin.sd.bin`: its sector 0 part
/// into sector 0's boot-code area, the rest from sector 1 on), the partition table, the FAT32
/// partition with `files`.
pub fn sd_image(files: &[(String, Vec<u8>)], bootloader: &[u8]) -> Result<Vec<u8>, String> {
    check_bootloader(bootloader)?;
    let mut image = card::fat32_card(files, PARTITION_LBA)?;
    image[..SECTOR0_BOOT_CODE].copy_from_slice(&bootloader[..SECTOR0_BOOT_CODE]);
    let rest = &bootloader[SECTOR as usize..];
    image[SECTOR as usize..SECTOR as usize + rest.len()].copy_from_slice(rest);
    Ok(image)
}

/// What can be checked of a boot loader without Amlogic's tools: that it has more than a
/// sector and fits before the partition.
pub fn check_bootloader(bootloader: &[u8]) -> Result<(), String> {
    if bootloader.len() <= SECTOR as usize {
        return Err(format!(
            "a boot loader of {} bytes: a u-boot.bin.sd.bin is BL2, the FIP and U-Boot (hundreds of KiB)",
            bootloader.len()
        ));
    }
    if bootloader.len() > MAX_BOOTLOADER {
        return Err(format!(
            "a boot loader of {} bytes does not fit before the partition at {} bytes",
            bootloader.len(),
            MAX_BOOTLOADER
        ));
    }
    Ok(())
}

/// An ODROID card read back: the partition, the files, the boot loader's bytes in place, the
/// script's addresses and the kernel image's header against `board`.
pub fn check_image(
    image: &[u8],
    board: &Board,
    bootloader: &[u8],
) -> Result<card::Contents, String> {
    check_bootloader(bootloader)?;
    let c = card::read_image(image)?;
    let p = *c.partitions.first().ok_or("no partition")?;
    if c.partitions.len() != 1 || p.first_lba != PARTITION_LBA || !p.bootable {
        return Err(format!("partition table {:?}", c.partitions));
    }
    if image[..SECTOR0_BOOT_CODE] != bootloader[..SECTOR0_BOOT_CODE] {
        return Err("sector 0's boot code is not the boot loader's".into());
    }
    let at = SECTOR as usize;
    if image.get(at..bootloader.len()) != Some(&bootloader[at..]) {
        return Err("the boot loader is not at sector 1".into());
    }
    let text = uimage::script_text(c.files.get(SCRIPT_FILE).ok_or("no boot.scr")?)?;
    let stage = staging_address(board);
    if !text.contains(&format!(
        "load ${{devtype}} ${{devnum}}:${{distro_bootpart}} {stage:#x} {KERNEL_FILE}\n"
    )) || !text.contains(&format!("bootm {stage:#x} - "))
    {
        return Err(format!(
            "boot.scr does not load and bootm {KERNEL_FILE} at {stage:#x}:\n{text}"
        ));
    }
    let (h, _) = uimage::decode(c.files.get(KERNEL_FILE).ok_or("no axolotl.uimg")?)?;
    let (ram_start, ram_end) = board.kernel_ram();
    let ram = ram_start..ram_end;
    if h.kind != uimage::TYPE_KERNEL
        || h.os != uimage::OS_LINUX
        || h.arch != uimage::ARCH_ARM64
        || h.comp != uimage::COMP_NONE
        || u64::from(h.load) != board.kernel_load
        || h.entry != h.load
        || !ram.contains(&(u64::from(h.load) + u64::from(h.size)))
        || !ram.contains(&(stage + u64::from(h.size)))
    {
        return Err(format!(
            "axolotl.uimg's header {h:?} is not {}'s",
            board.name
        ));
    }
    Ok(c)
}

/// What to tell a user who has no boot loader for `board` yet: where the pieces come from.
pub fn bootloader_instructions(board: &Board) -> String {
    let (debian, fip) = match board.name {
        "odroid-c2" => (
            "Debian's u-boot-amlogic has U-Boot for it (/usr/lib/u-boot/odroid-c2/u-boot.bin), \
             but as BL33 alone",
            "odroid-c2",
        ),
        _ => (
            "Debian's u-boot-amlogic (bookworm) has no U-Boot for it: build mainline U-Boot's \
             odroid-c4_defconfig (u-boot.bin)",
            "odroid-c4",
        ),
    };
    format!(
        "the {name}'s boot ROM needs Amlogic's signed BL2 and a FIP (BL30, BL31: Amlogic \
         binaries, not in Debian) around U-Boot. {debian}. Make the whole SD boot loader with \
         the FIP blobs and tools from https://github.com/LibreELEC/amlogic-boot-fip \
         (`./build-fip.sh {fip} u-boot.bin out/`, giving out/u-boot.bin.sd.bin) or take \
         Hardkernel's prebuilt one for the board, then pass it: --bootloader u-boot.bin.sd.bin \
         (docs/boards.md)",
        name = board.name
    )
}
