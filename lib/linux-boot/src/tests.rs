extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;

const MIB: u64 = 1 << 20;

fn header(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
    let mut h = vec![0u8; len.max(HEADER_SIZE)];
    h[0..4].copy_from_slice(b"MZ\x40\xfa");
    h[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
    h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
    h[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
    h[0x38..0x3c].copy_from_slice(&ARM64_IMAGE_MAGIC.to_le_bytes());
    h
}

#[test]
fn parses_a_good_header() {
    // 4K pages, place anywhere: flags 0b1010.
    let img = header(0, 0x0240_0000, 0b1010, 4096);
    let h = parse_image_header(&img).unwrap();
    assert_eq!(h.text_offset, 0);
    assert_eq!(h.image_size, 0x0240_0000);
    assert_eq!(h.page_size, PageSize::K4);
    assert!(h.place_anywhere);
    assert_eq!(h.file_len, 4096);
    let h = parse_image_header(&header(0x8_0000, MIB, 0b0100, 64)).unwrap();
    assert_eq!(h.page_size, PageSize::K16);
    assert!(!h.place_anywhere);
    let h = parse_image_header(&header(0, MIB, 0b0110, 64)).unwrap();
    assert_eq!(h.page_size, PageSize::K64);
    let h = parse_image_header(&header(0, MIB, 0, 64)).unwrap();
    assert_eq!(h.page_size, PageSize::Unspecified);
}

#[test]
fn header_errors() {
    let good = header(0, MIB, 2, 64);
    assert_eq!(
        parse_image_header(&good[..63]),
        Err(HeaderError::Truncated { len: 63 })
    );
    assert_eq!(
        parse_image_header(&[]),
        Err(HeaderError::Truncated { len: 0 })
    );
    let mut bad = good.clone();
    bad[0x38] = 0x1f;
    assert!(matches!(
        parse_image_header(&bad),
        Err(HeaderError::BadMagic { .. })
    ));
    // A gzip file has no magic at 0x38 either.
    let mut gz = vec![0u8; 128];
    gz[..2].copy_from_slice(&[0x1f, 0x8b]);
    assert_eq!(
        parse_image_header(&gz),
        Err(HeaderError::BadMagic { found: 0 })
    );
    assert_eq!(
        parse_image_header(&header(0, MIB, 3, 64)),
        Err(HeaderError::BigEndian)
    );
    assert_eq!(
        parse_image_header(&header(0x8_0000, 0, 0, 64)),
        Err(HeaderError::LegacyHeader)
    );
    assert_eq!(
        parse_image_header(&header(0x100, MIB, 2, 64)),
        Err(HeaderError::MisalignedTextOffset { text_offset: 0x100 })
    );
    assert_eq!(
        parse_image_header(&header(0, 100, 2, 128)),
        Err(HeaderError::FileLargerThanImage {
            file_len: 128,
            image_size: 100
        })
    );
}

fn hdr(text_offset: u64, image_size: u64) -> ImageHeader {
    parse_image_header(&header(text_offset, image_size, 2, 64)).unwrap()
}

#[test]
fn layout_arithmetic() {
    let ram = Range {
        addr: 0x4000_0000,
        size: 1 << 30,
    };
    let l = plan_layout(ram, &hdr(0, 0x0250_0000), 0x1234, Some(0x20_0123)).unwrap();
    assert_eq!(l.kernel.addr, 0x4000_0000);
    assert_eq!(l.kernel_entry, 0x4000_0000);
    assert_eq!(l.kernel.end(), 0x4250_0000);
    assert_eq!(l.dtb.addr, 0x4260_0000);
    assert_eq!(l.dtb.size, 0x1234);
    let i = l.initrd.unwrap();
    assert_eq!(i.addr, 0x4280_0000);
    assert_eq!(i.end(), 0x4280_0000 + 0x20_0123);
    assert!(!l.dtb.overlaps(&l.kernel) && !i.overlaps(&l.dtb) && !i.overlaps(&l.kernel));
    assert_eq!(l.dtb.addr % DTB_ALIGN, 0);
    // The DTB never crosses a 2 MiB boundary.
    assert_eq!(l.dtb.addr / DTB_MAX_SIZE, (l.dtb.end() - 1) / DTB_MAX_SIZE);

    // text_offset is honoured, exact 2 MiB kernel end.
    let l = plan_layout(ram, &hdr(0x8_0000, 0x0178_0000), DTB_MAX_SIZE, None).unwrap();
    assert_eq!(l.kernel.addr, 0x4008_0000);
    assert_eq!(l.kernel.end(), 0x4180_0000);
    assert_eq!(l.dtb.addr, 0x4180_0000);
    assert_eq!(l.initrd, None);
}

#[test]
fn unaligned_ram_base_rounds_up_to_2mib() {
    let ram = Range {
        addr: 0x4000_1000,
        size: 64 * MIB,
    };
    let l = plan_layout(ram, &hdr(0, 4 * MIB), 100, None).unwrap();
    assert_eq!(l.kernel.addr, 0x4020_0000);
    assert_eq!(l.kernel.addr % KERNEL_BASE_ALIGN, 0);
}

#[test]
fn layout_errors() {
    let ram = Range {
        addr: 0x4000_0000,
        size: 16 * MIB,
    };
    let h = hdr(0, 8 * MIB);
    assert_eq!(
        plan_layout(ram, &h, DTB_MAX_SIZE + 1, None),
        Err(LayoutError::DtbTooLarge {
            size: DTB_MAX_SIZE + 1
        })
    );
    assert_eq!(
        plan_layout(ram, &hdr(0, 17 * MIB), 8, None),
        Err(LayoutError::KernelDoesNotFit {
            end: 0x4110_0000,
            ram_end: 0x4100_0000
        })
    );
    let tight = Range {
        addr: 0x4000_0000,
        size: 9 * MIB,
    };
    assert_eq!(
        plan_layout(tight, &h, 2 * MIB, None),
        Err(LayoutError::DtbDoesNotFit {
            end: 0x40a0_0000,
            ram_end: 0x4090_0000
        })
    );
    assert_eq!(
        plan_layout(ram, &h, 8, Some(6 * MIB + 1)),
        Err(LayoutError::InitrdDoesNotFit {
            end: 0x4100_0001,
            ram_end: 0x4100_0000
        })
    );
    // Fits exactly.
    assert!(plan_layout(ram, &h, 8, Some(6 * MIB)).is_ok());
    let small = Range {
        addr: 0x4000_1000,
        size: 0x1000,
    };
    assert_eq!(
        plan_layout(small, &h, 8, None),
        Err(LayoutError::NoAlignedBase)
    );
    let top = Range {
        addr: u64::MAX - 0xfff,
        size: 0x1000,
    };
    assert_eq!(plan_layout(top, &h, 8, None), Err(LayoutError::Overflow));
}

#[test]
fn entry_registers() {
    let ram = Range {
        addr: 0x4000_0000,
        size: 1 << 30,
    };
    let l = plan_layout(ram, &hdr(0, 0x0250_0000), 0x1000, None).unwrap();
    let e = entry_state(&l);
    assert_eq!(e.x, [0x4260_0000, 0, 0, 0]);
    assert_eq!(e.pc, 0x4000_0000);
    // M[3:0] = EL1h, D A I F = bits 9..6.
    assert_eq!(e.pstate & 0xf, 0b0101);
    assert_eq!(e.pstate & (0xf << 6), 0xf << 6);
    assert_eq!(e.pstate, 0x3c5);
}

/// The Debian Image fetched by axolotl-guest-artifacts, if any is cached.
fn cached_debian_image() -> Option<std::path::PathBuf> {
    let root = match std::env::var_os("AXOLOTL_GUEST_CACHE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/axolotl/guest"),
    };
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("Image")))
        .find(|p| p.is_file())
}

#[test]
fn real_debian_image_header() {
    let Some(path) = cached_debian_image() else {
        std::println!(
            "skipped: no cached Debian Image (run axolotl-guest-artifacts' ensure to fetch one)"
        );
        return;
    };
    let img = std::fs::read(&path).unwrap();
    let h = parse_image_header(&img).unwrap();
    std::println!("{}: {h:?}", path.display());
    assert_eq!(h.text_offset, 0);
    assert_eq!(h.page_size, PageSize::K4);
    assert!(h.place_anywhere);
    assert!(h.image_size >= h.file_len);
    let ram = Range {
        addr: 0x4000_0000,
        size: 1 << 30,
    };
    let l = plan_layout(ram, &h, 0x2000, Some(4 * MIB)).unwrap();
    assert_eq!(l.kernel.addr, 0x4000_0000);
    assert!(l.dtb.addr >= l.kernel.end());
}
