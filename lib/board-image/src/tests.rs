use super::mbr::{self, FAT32_LBA, Partition};
use super::rpi4::{self, KERNEL_FILE, PARTITION_LBA};
use super::*;

/// A little ELF64 (AArch64) with the given `(paddr, bytes)` PT_LOAD segments and entry.
fn elf(entry: u64, segs: &[(u64, &[u8])]) -> Vec<u8> {
    let phoff = 64u64;
    let data_off = phoff + 56 * segs.len() as u64;
    let mut out = vec![0u8; data_off as usize];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little endian
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    let mut off = data_off;
    for (i, (addr, bytes)) in segs.iter().enumerate() {
        let ph = &mut out[(phoff as usize + 56 * i)..(phoff as usize + 56 * (i + 1))];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes());
        ph[8..16].copy_from_slice(&off.to_le_bytes());
        ph[16..24].copy_from_slice(&addr.to_le_bytes());
        ph[24..32].copy_from_slice(&addr.to_le_bytes());
        ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&(bytes.len() as u64 + 0x1000).to_le_bytes());
        ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
        off += bytes.len() as u64;
    }
    for (_, bytes) in segs {
        out.extend_from_slice(bytes);
    }
    out
}

#[test]
fn flat_binary_places_segments_at_their_addresses() {
    let e = elf(0x8_0000, &[(0x8_0000, b"text"), (0x8_2000, b"data")]);
    let b = flat_binary(&e, 0x8_0000).unwrap();
    assert_eq!(b.len(), 0x2004);
    assert_eq!(&b[..4], b"text");
    assert!(b[4..0x2000].iter().all(|&x| x == 0));
    assert_eq!(&b[0x2000..], b"data");
}

#[test]
fn flat_binary_refuses_what_the_firmware_cannot_enter() {
    let below = elf(0x8_0000, &[(0x7_f000, b"x"), (0x8_0000, b"y")]);
    assert!(flat_binary(&below, 0x8_0000).unwrap_err().contains("below"));
    let entry = elf(0x8_0004, &[(0x8_0000, b"text")]);
    assert!(flat_binary(&entry, 0x8_0000).unwrap_err().contains("entry"));
    let overlap = elf(0x8_0000, &[(0x8_0000, b"text"), (0x8_0002, b"xx")]);
    assert!(
        flat_binary(&overlap, 0x8_0000)
            .unwrap_err()
            .contains("overlap")
    );
    assert!(flat_binary(b"not an elf", 0).is_err());
}

#[test]
fn mbr_round_trips_and_rejects_garbage() {
    let p = Partition {
        kind: FAT32_LBA,
        first_lba: 2048,
        sectors: 131072,
        bootable: true,
    };
    let m = mbr::encode(&[p], 7);
    assert_eq!(mbr::decode(&m).unwrap(), vec![p]);
    let mut bad = m;
    bad[511] = 0;
    assert!(mbr::decode(&bad).is_err());
    let mut bad = m;
    bad[446] = 0x12;
    assert!(mbr::decode(&bad).is_err());
}

#[test]
fn sd_image_holds_a_fat32_boot_partition_with_every_file() {
    let kernel: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let files = vec![
        ("start4.elf".to_string(), b"firmware".to_vec()),
        ("fixup4.dat".to_string(), b"fixup".to_vec()),
        (
            "config.txt".to_string(),
            rpi4::config_txt(0x8_0000).into_bytes(),
        ),
        (KERNEL_FILE.to_string(), kernel.clone()),
    ];
    let img = rpi4::sd_image(&files).unwrap();
    let c = rpi4::read_image(&img).unwrap();
    assert_eq!(c.partitions.len(), 1);
    let p = c.partitions[0];
    assert_eq!(
        (p.kind, p.first_lba, p.bootable),
        (FAT32_LBA, PARTITION_LBA, true)
    );
    assert_eq!(
        img.len() as u64,
        (p.first_lba as u64 + p.sectors as u64) * 512
    );
    assert!(p.sectors as u64 * 512 >= rpi4::MIN_PARTITION);
    assert_eq!(c.fat_type, "Fat32");
    assert_eq!(c.files.len(), 4, "{:?}", c.files.keys());
    for (name, data) in &files {
        assert_eq!(c.files.get(name), Some(data), "{name}");
    }
    // Deterministic: the same files, the same bytes.
    assert!(rpi4::sd_image(&files).unwrap() == img);
}

#[test]
fn config_txt_boots_the_kernel_64_bit_at_its_address() {
    let c = rpi4::config_txt(0x8_0000);
    let lines: Vec<&str> = c.lines().filter(|l| !l.starts_with('#')).collect();
    for want in [
        "arm_64bit=1",
        "kernel=axolotl.img",
        "kernel_address=0x80000",
        "enable_uart=1",
        "init_uart_clock=48000000",
    ] {
        assert!(lines.contains(&want), "{want} in {c}");
    }
}

#[test]
fn a_truncated_image_is_refused() {
    let files = vec![("config.txt".to_string(), b"x".to_vec())];
    let img = rpi4::sd_image(&files).unwrap();
    assert!(rpi4::read_image(&img[..img.len() / 2]).is_err());
    assert!(rpi4::read_image(&img[..100]).is_err());
}
