//! Images ready to flash, built on the host without root: the kernel in the form its board's
//! boot chain loads ([`flat_binary`]), the Raspberry Pi 4's SD card ([`rpi4`]) and the
//! ODROID-C2's and C4's ([`amlogic`], with U-Boot's legacy images, [`uimage`]).

pub mod amlogic;
pub mod card;
pub mod mbr;
pub mod rpi4;
pub mod uimage;

use object::{Object, ObjectSegment};

/// The flat binary of a kernel ELF linked at `load`: every loadable segment's file bytes at
/// its physical address minus `load` (what `objcopy -O binary` makes). The boot chains that
/// load it (the Pi firmware's `kernel8.img`, QEMU `raspi4b`'s `-kernel`) enter its first
/// byte, so the ELF's entry must be `load`.
pub fn flat_binary(elf: &[u8], load: u64) -> Result<Vec<u8>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF: {e}"))?;
    if file.entry() != load {
        return Err(format!(
            "entry {:#x} is not the load address {load:#x}: the boot chain enters the first byte",
            file.entry()
        ));
    }
    let mut out = Vec::new();
    for seg in file.segments() {
        let data = seg.data().map_err(|e| format!("segment data: {e}"))?;
        if data.is_empty() {
            continue;
        }
        let addr = seg.address();
        let off = addr
            .checked_sub(load)
            .ok_or_else(|| format!("segment at {addr:#x} below the load address {load:#x}"))?;
        let off = usize::try_from(off).map_err(|_| "segment offset".to_string())?;
        let end = off
            .checked_add(data.len())
            .filter(|&e| e <= 1 << 30)
            .ok_or_else(|| format!("segment at {addr:#x} more than 1 GiB past the load address"))?;
        if out.len() < end {
            out.resize(end, 0);
        }
        if out[off..end].iter().any(|&b| b != 0) {
            return Err(format!("segments overlap at {addr:#x}"));
        }
        out[off..end].copy_from_slice(data);
    }
    if out.is_empty() {
        return Err("no loadable bytes".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
