extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;

const RAM: u64 = 0x4000_0000;
const MIB: u64 = 1 << 20;

/// A minimal valid Image: 4 KiB pages, place-anywhere, 16 MiB image size.
fn image() -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[0x10..0x18].copy_from_slice(&(16 * MIB).to_le_bytes());
    b[0x18..0x20].copy_from_slice(&0xAu64.to_le_bytes());
    b[0x38..0x3C].copy_from_slice(b"ARM\x64");
    b
}

fn spec<'a>(img: &'a [u8], gic: GicVersion) -> GuestSpec<'a> {
    GuestSpec {
        ram_base: RAM,
        ram_size: 256 * MIB,
        image: img,
        initrd_size: Some(MIB + 5),
        cmdline: "console=ttyAMA0 earlycon=pl011,0x9000000",
        nr_vcpus: 2,
        gic,
    }
}

#[test]
fn layout_and_entry() {
    let img = image();
    let mut buf = vec![0u8; 64 * 1024];
    let p = plan(&spec(&img, GicVersion::V2), &mut buf).unwrap();
    assert_eq!(
        p.layout.kernel,
        Range {
            addr: RAM,
            size: 16 * MIB
        }
    );
    assert_eq!(p.layout.dtb.addr, RAM + 16 * MIB);
    assert!(p.layout.dtb.size > 0 && p.layout.dtb.size < 64 * 1024);
    assert_eq!(
        p.layout.initrd,
        Some(Range {
            addr: RAM + 18 * MIB,
            size: MIB + 5
        })
    );
    assert_eq!(p.entry.x, [RAM + 16 * MIB, 0, 0, 0]);
    assert_eq!(p.entry.pc, RAM);
    assert_eq!(p.uart.regs.base, 0x0900_0000);
}

fn reg_of(f: &fdt::Fdt<'_>, path: &str) -> Vec<(usize, Option<usize>)> {
    f.find_node(path)
        .unwrap()
        .reg()
        .unwrap()
        .map(|r| (r.starting_address as usize, r.size))
        .collect()
}

#[test]
fn dtb_describes_our_devices_v2() {
    let img = image();
    let mut buf = vec![0u8; 64 * 1024];
    let p = plan(&spec(&img, GicVersion::V2), &mut buf).unwrap();
    let f = fdt::Fdt::new(&buf[..p.layout.dtb.size as usize]).unwrap();
    let chosen = f.chosen();
    assert_eq!(
        chosen.bootargs(),
        Some("console=ttyAMA0 earlycon=pl011,0x9000000")
    );
    let c = f.find_node("/chosen").unwrap();
    let start = c
        .property("linux,initrd-start")
        .unwrap()
        .as_usize()
        .unwrap() as u64;
    let end = c.property("linux,initrd-end").unwrap().as_usize().unwrap() as u64;
    assert_eq!((start, end), (RAM + 18 * MIB, RAM + 19 * MIB + 5));
    let gic = f.find_compatible(&["arm,cortex-a15-gic"]).unwrap();
    assert_eq!(gic.name, "intc@8000000");
    assert_eq!(
        reg_of(&f, "/intc@8000000"),
        [(0x0800_0000, Some(0x1_0000)), (0x0801_0000, Some(0x1_0000))]
    );
    assert_eq!(reg_of(&f, "/pl011@9000000"), [(0x0900_0000, Some(0x1000))]);
    let psci = f.find_node("/psci").unwrap();
    assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));
    assert_eq!(f.cpus().count(), 2);
    assert!(f.find_compatible(&["arm,armv8-timer"]).is_some());
    let mem: Vec<_> = f
        .memory()
        .regions()
        .map(|r| (r.starting_address as u64, r.size))
        .collect();
    assert_eq!(mem, [(RAM, Some(256 * MIB as usize))]);
}

#[test]
fn dtb_v3_redistributors_per_vcpu() {
    let img = image();
    let mut buf = vec![0u8; 64 * 1024];
    let mut s = spec(&img, GicVersion::V3);
    s.nr_vcpus = 3;
    s.initrd_size = None;
    let p = plan(&s, &mut buf).unwrap();
    assert_eq!(p.layout.initrd, None);
    let f = fdt::Fdt::new(&buf[..p.layout.dtb.size as usize]).unwrap();
    assert!(f.find_compatible(&["arm,gic-v3"]).is_some());
    assert_eq!(
        reg_of(&f, "/intc@8000000"),
        [
            (0x0800_0000, Some(0x1_0000)),
            (0x080A_0000, Some(3 * 0x2_0000))
        ]
    );
    assert!(
        f.find_node("/chosen")
            .unwrap()
            .property("linux,initrd-start")
            .is_none()
    );
    assert!(
        matches!(p.gic, Gic::V3 { redistributor, .. } if redistributor.size == 3 * GICR_STRIDE)
    );
}

#[test]
fn plan_errors() {
    let img = image();
    let mut buf = vec![0u8; 64 * 1024];
    let mut s = spec(&img, GicVersion::V2);
    s.nr_vcpus = 0;
    assert_eq!(plan(&s, &mut buf), Err(PlanError::BadVcpuCount));
    s.nr_vcpus = 9;
    assert_eq!(plan(&s, &mut buf), Err(PlanError::BadVcpuCount));
    let mut s = spec(&img, GicVersion::V2);
    s.ram_base = 0;
    assert_eq!(plan(&s, &mut buf), Err(PlanError::RamOverlapsDevices));
    let mut s = spec(&img, GicVersion::V2);
    s.ram_size = 17 * MIB;
    assert!(matches!(
        plan(&s, &mut buf),
        Err(PlanError::Layout(LayoutError::DtbDoesNotFit { .. }))
    ));
    s.ram_size = 8 * MIB;
    assert!(matches!(
        plan(&s, &mut buf),
        Err(PlanError::Layout(LayoutError::KernelDoesNotFit { .. }))
    ));
    let bad = vec![0u8; 64];
    let s = spec(&bad, GicVersion::V2);
    assert!(matches!(
        plan(&s, &mut buf),
        Err(PlanError::Header(HeaderError::BadMagic { .. }))
    ));
    let s = spec(&img, GicVersion::V2);
    let mut tiny = [0u8; 128];
    assert_eq!(
        plan(&s, &mut tiny),
        Err(PlanError::Fdt(axolotl_fdt::Error::NoSpace))
    );
}

/// The real Debian kernel, when `cargo xtask setup` has cached it.
#[test]
fn debian_kernel_plans() {
    let dir = axolotl_guest_artifacts::default_cache_dir();
    let Some(a) = axolotl_guest_artifacts::cached(&dir) else {
        std::eprintln!("guest artifacts not cached in {}; skipping", dir.display());
        return;
    };
    let img = std::fs::read(&a.image).unwrap();
    let initrd = std::fs::metadata(&a.initramfs).unwrap().len();
    let mut buf = vec![0u8; 64 * 1024];
    let mut s = spec(&img, GicVersion::V3);
    s.ram_size = 512 * MIB;
    s.initrd_size = Some(initrd);
    let p = plan(&s, &mut buf).unwrap();
    assert_eq!(p.layout.kernel.addr, RAM + p.header.text_offset);
    assert!(p.layout.initrd.unwrap().end() <= RAM + 512 * MIB);
    assert!(!p.layout.dtb.overlaps(&p.layout.kernel));
}

/// FNV-1a, to pin a DTB's bytes in a test.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A guest without virtio devices gets the DTB it got before they existed.
#[test]
fn dtb_without_virtio_is_unchanged() {
    let img = image();
    for (gic, want) in [
        (GicVersion::V2, 0xdb08_61dc_56fa_af09u64),
        (GicVersion::V3, 0x59b6_c2f7_d6c1_d9ab),
    ] {
        let mut buf = vec![0u8; 64 * 1024];
        let p = plan(&spec(&img, gic), &mut buf).unwrap();
        let dtb = &buf[..p.layout.dtb.size as usize];
        assert_eq!(fnv(dtb), want, "{gic:?}");
        let mut again = vec![0u8; 64 * 1024];
        let q = plan_with_virtio(&spec(&img, gic), &[], &mut again).unwrap();
        assert_eq!(q, p);
        assert_eq!(&again[..q.layout.dtb.size as usize], dtb);
    }
}

#[test]
fn dtb_describes_virtio_transports() {
    let img = image();
    let mut buf = vec![0u8; 64 * 1024];
    let virtio = [virtio_transport(0), virtio_transport(1)];
    let p = plan_with_virtio(&spec(&img, GicVersion::V3), &virtio, &mut buf).unwrap();
    let f = fdt::Fdt::new(&buf[..p.layout.dtb.size as usize]).unwrap();
    let nodes: Vec<_> = f.find_all_nodes("/virtio_mmio").collect();
    assert_eq!(nodes.len(), 2);
    for (i, base) in [(0u32, 0x0a00_0000usize), (1, 0x0a00_0200)] {
        let path = std::format!("/virtio_mmio@{base:x}");
        let n = f.find_node(&path).unwrap();
        assert_eq!(n.compatible().unwrap().first(), "virtio,mmio");
        assert_eq!(reg_of(&f, &path), [(base, Some(0x200))]);
        let irq: Vec<u32> = n
            .property("interrupts")
            .unwrap()
            .value
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        // SPI 16 + i, edge rising (as QEMU virt describes its transports).
        assert_eq!(irq, [0, 16 + i, 1]);
        assert!(n.property("dma-coherent").is_some());
    }
    // The rest of the tree is as without virtio.
    assert!(f.find_node("/pl011@9000000").is_some());
}

#[test]
fn bad_virtio_transports() {
    let img = image();
    let s = spec(&img, GicVersion::V2);
    let mut buf = vec![0u8; 64 * 1024];
    let t = virtio_transport;
    let with = |regs: Region, spi: u32| axolotl_fdt::VirtioMmio { regs, spi };
    let bad: [&[axolotl_fdt::VirtioMmio]; 7] = [
        &[t(0), t(0)],
        &[t(0), with(Region::new(0x0a00_0400, 0x200), 16)],
        &[with(Region::new(0x0900_0000, 0x200), 20)],
        &[with(Region::new(0x0801_0000, 0x200), 20)],
        &[with(Region::new(0x3fff_ff00, 0x200), 20)],
        &[with(Region::new(0x0a00_0000, 0x200), 1)],
        &[with(Region::new(0x0a00_0000, 0x100), 20)],
    ];
    for v in bad {
        assert_eq!(
            plan_with_virtio(&s, v, &mut buf),
            Err(PlanError::BadVirtio),
            "{v:?}"
        );
    }
    assert_eq!(
        plan_with_virtio(&s, &[t(48)], &mut buf),
        Err(PlanError::BadVirtio),
        "SPI 64 is past the vGIC's"
    );
    let many: Vec<_> = (0..33).map(t).collect();
    assert_eq!(
        plan_with_virtio(&s, &many, &mut buf),
        Err(PlanError::BadVirtio)
    );
    let ok: Vec<_> = (0..32).map(t).collect();
    assert!(plan_with_virtio(&s, &ok, &mut buf).is_ok());
}
