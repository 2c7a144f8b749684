use super::mbr::{self, FAT32_LBA, Partition};
use super::rpi4::{self, KERNEL_FILE, PARTITION_LBA};
use super::*;
use super::{amlogic, uimage};

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

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Byte for byte what Debian's `mkimage` (u-boot-tools 2023.01, `SOURCE_DATE_EPOCH=0`)
/// makes of the same inputs: `-A arm64 -O linux -T script -C none -n "axolotl boot script"`
/// of "echo hi\n", and `-T kernel -a 0x20000000 -e 0x20000000 -n axolotl` of "KERNELBYTES".
#[test]
fn legacy_images_are_mkimage_s() {
    let scr = uimage::script("axolotl boot script", "echo hi\n").unwrap();
    assert_eq!(
        scr,
        unhex(
            "27051956e9bd176400000000000000100000000000000000d93401620516060061786f6c6f746c20\
             626f6f74207363726970740000000000000000000000000000000008000000006563686f2068690a"
        )
    );
    let k = uimage::encode(
        uimage::TYPE_KERNEL,
        0x2000_0000,
        0x2000_0000,
        "axolotl",
        b"KERNELBYTES",
    )
    .unwrap();
    assert_eq!(
        k,
        unhex(
            "27051956220aeb2e000000000000000b20000000200000006888bc260516020061786f6c6f746c00\
             0000000000000000000000000000000000000000000000004b45524e454c4259544553"
        )
    );
    assert_eq!(uimage::script_text(&scr).unwrap(), "echo hi\n");
    let (h, data) = uimage::decode(&k).unwrap();
    assert_eq!(
        (h.load, h.entry, h.kind, h.name.as_str()),
        (0x2000_0000, 0x2000_0000, 2, "axolotl")
    );
    assert_eq!(data, b"KERNELBYTES");
}

#[test]
fn damaged_legacy_images_are_refused() {
    let k = uimage::encode(uimage::TYPE_KERNEL, 0x1000, 0x1000, "k", b"0123456789").unwrap();
    for (what, at) in [("magic", 0), ("header", 17), ("data", 70)] {
        let mut bad = k.clone();
        bad[at] ^= 1;
        assert!(uimage::decode(&bad).is_err(), "a flipped {what} byte");
    }
    assert!(uimage::decode(&k[..k.len() - 1]).is_err(), "truncated data");
    assert!(uimage::decode(&k[..40]).is_err(), "truncated header");
    assert!(uimage::script_text(&k).is_err(), "a kernel is no script");
}

/// A stand-in for a `u-boot.bin.sd.bin`: recognisable bytes in every sector.
fn fake_bootloader(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 1).collect()
}

#[test]
fn odroid_cards_have_the_boot_loader_at_sector_1_and_keep_the_partition_table() {
    use axolotl_kernel_config::{ODROID_C2, ODROID_C4};
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let bl = fake_bootloader(700_000);
    for board in [ODROID_C4, ODROID_C2] {
        let files = amlogic::boot_files(&board, &kernel).unwrap();
        let img = amlogic::sd_image(&files, &bl).unwrap();
        let c = amlogic::check_image(&img, &board, &bl).unwrap();
        // The MBR: the boot loader's boot code, then our table and signature.
        assert_eq!(img[..444], bl[..444]);
        let parts = mbr::decode(&img[..512]).unwrap();
        assert_eq!(
            parts,
            [Partition {
                kind: FAT32_LBA,
                first_lba: amlogic::PARTITION_LBA,
                sectors: parts[0].sectors,
                bootable: true
            }]
        );
        // Sector 1 on is the boot loader's second sector on; then zeros to the partition.
        assert_eq!(img[512..bl.len()], bl[512..]);
        let part = amlogic::PARTITION_LBA as usize * 512;
        assert!(img[bl.len()..part].iter().all(|&b| b == 0));
        // The kernel's image: load and entry at the board's kernel_load, the flat binary.
        let (h, data) = uimage::decode(&c.files[amlogic::KERNEL_FILE]).unwrap();
        assert_eq!(u64::from(h.load), board.kernel_load);
        assert_eq!(h.entry, h.load);
        assert_eq!(data, &kernel[..]);
        // The script loads it inside RAM, above where the kernel will lie, and bootm's it.
        let text = uimage::script_text(&c.files[amlogic::SCRIPT_FILE]).unwrap();
        let stage = amlogic::staging_address(&board);
        assert!(stage >= board.kernel_load + kernel.len() as u64);
        assert!(board.ram_contains(stage, stage + kernel.len() as u64));
        assert!(
            text.contains(&format!("bootm {stage:#x} - ${{fdtcontroladdr}}\n")),
            "{text}"
        );
        assert_eq!(c.files.len(), 2);
        // The same inputs make the same bytes.
        assert_eq!(amlogic::sd_image(&files, &bl).unwrap(), img);
    }
}

#[test]
fn odroid_cards_refuse_what_cannot_boot() {
    use axolotl_kernel_config::{ODROID_C4, RPI4B};
    let kernel = vec![1u8; 4096];
    let files = amlogic::boot_files(&ODROID_C4, &kernel).unwrap();
    // No real boot loader: too small, or running into the partition.
    assert!(amlogic::sd_image(&files, &fake_bootloader(512)).is_err());
    assert!(amlogic::sd_image(&files, &fake_bootloader(amlogic::MAX_BOOTLOADER + 1)).is_err());
    assert!(amlogic::sd_image(&files, &fake_bootloader(amlogic::MAX_BOOTLOADER)).is_ok());
    // Not an ODROID; a kernel that would be overwritten by its own staged image.
    assert!(amlogic::boot_files(&RPI4B, &kernel).is_err());
    assert!(amlogic::boot_files(&ODROID_C4, &vec![0u8; (256 << 20) + 1]).is_err());
    assert!(amlogic::boot_files(&ODROID_C4, &[]).is_err());
    // Read back: a boot loader byte that did not land is caught, and so is a damaged kernel.
    let bl = fake_bootloader(100_000);
    let img = amlogic::sd_image(&files, &bl).unwrap();
    let mut bad = img.clone();
    bad[50_000] ^= 0xff;
    assert!(amlogic::check_image(&bad, &ODROID_C4, &bl).is_err());
    let mut other = bl.clone();
    other[3] ^= 0xff;
    assert!(amlogic::check_image(&img, &ODROID_C4, &other).is_err());
    // Nonsense read back is an error, not a panic.
    assert!(amlogic::check_image(&img, &ODROID_C4, b"short").is_err());
    assert!(amlogic::check_image(&img[..4096], &ODROID_C4, &bl).is_err());
    let mut huge = uimage::script("s", "x").unwrap();
    huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    huge[4..8].fill(0);
    let hcrc = crc32fast::hash(&huge[..uimage::HEADER]);
    huge[4..8].copy_from_slice(&hcrc.to_be_bytes());
    let e = uimage::decode(&huge).unwrap_err();
    assert!(e.contains("beyond"), "{e}");
}
