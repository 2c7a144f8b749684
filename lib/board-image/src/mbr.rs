//! The MBR partition table of an SD card: what the Pi's boot ROM and firmware read.

/// One primary partition: `(type, first sector, sectors, bootable)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub kind: u8,
    pub first_lba: u32,
    pub sectors: u32,
    pub bootable: bool,
}

/// FAT32 with LBA addressing.
pub const FAT32_LBA: u8 = 0x0c;
pub const SECTOR: u64 = 512;

/// A sector-0 MBR with up to four primary partitions, LBA only (the CHS fields say "beyond
/// CHS", as partitioning tools write for large disks).
pub fn encode(parts: &[Partition], disk_id: u32) -> [u8; 512] {
    assert!(parts.len() <= 4);
    let mut m = [0u8; 512];
    m[440..444].copy_from_slice(&disk_id.to_le_bytes());
    for (i, p) in parts.iter().enumerate() {
        let e = &mut m[446 + 16 * i..462 + 16 * i];
        e[0] = if p.bootable { 0x80 } else { 0 };
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[4] = p.kind;
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[8..12].copy_from_slice(&p.first_lba.to_le_bytes());
        e[12..16].copy_from_slice(&p.sectors.to_le_bytes());
    }
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// The used entries of an MBR, checked: the signature, and every entry's status byte.
pub fn decode(sector0: &[u8]) -> Result<Vec<Partition>, String> {
    if sector0.len() < 512 || sector0[510..512] != [0x55, 0xaa] {
        return Err("no MBR signature".into());
    }
    let mut out = Vec::new();
    for i in 0..4 {
        let e = &sector0[446 + 16 * i..462 + 16 * i];
        if e[4] == 0 {
            continue;
        }
        if e[0] != 0 && e[0] != 0x80 {
            return Err(format!("partition {i}: status {:#x}", e[0]));
        }
        out.push(Partition {
            kind: e[4],
            first_lba: u32::from_le_bytes(e[8..12].try_into().unwrap()),
            sectors: u32::from_le_bytes(e[12..16].try_into().unwrap()),
            bootable: e[0] == 0x80,
        });
    }
    Ok(out)
}
