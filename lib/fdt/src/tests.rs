extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;

fn be32_at(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn small_tree(buf: &mut [u8]) -> Result<usize> {
    let mut w = FdtWriter::new(buf)?;
    w.add_reservation(0x4800_0000, 0x1000)?;
    w.begin_node("")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.begin_node_at("node", 0x1234)?;
    w.property_string("compatible", "x,y")?;
    w.property_u64s("reg", &[0x1234, 0x10])?;
    w.property_empty("flag")?;
    w.end_node()?;
    w.begin_node("other")?;
    w.property_string("compatible", "a,b")?;
    w.property("odd", &[1, 2, 3])?;
    w.end_node()?;
    w.end_node()?;
    w.finish()
}

#[test]
fn header_and_alignment() {
    let mut buf = [0u8; 1024];
    let n = small_tree(&mut buf).unwrap();
    let b = &buf[..n];
    assert_eq!(be32_at(b, 0), FDT_MAGIC);
    assert_eq!(be32_at(b, 4) as usize, n);
    let off_struct = be32_at(b, 8) as usize;
    let off_strings = be32_at(b, 12) as usize;
    let off_rsv = be32_at(b, 16) as usize;
    assert_eq!(be32_at(b, 20), 17);
    assert_eq!(be32_at(b, 24), 16);
    assert_eq!(off_rsv % 8, 0);
    assert_eq!(off_struct % 4, 0);
    // One entry + terminator.
    assert_eq!(off_struct, off_rsv + 32);
    assert_eq!(off_strings, off_struct + be32_at(b, 36) as usize);
    assert_eq!(off_strings + be32_at(b, 32) as usize, n);
    // Structure block ends with FDT_END.
    assert_eq!(be32_at(b, off_strings - 4), FDT_END);
}

#[test]
fn parses_with_independent_reader() {
    let mut buf = [0u8; 1024];
    let n = small_tree(&mut buf).unwrap();
    let f = fdt::Fdt::new(&buf[..n]).unwrap();
    assert_eq!(f.total_size(), n);
    let rsv: Vec<_> = f.memory_reservations().collect();
    assert_eq!(rsv.len(), 1);
    assert_eq!(rsv[0].address() as usize, 0x4800_0000);
    assert_eq!(rsv[0].size(), 0x1000);
    let node = f.find_node("/node@1234").unwrap();
    assert_eq!(node.compatible().unwrap().first(), "x,y");
    assert!(node.property("flag").unwrap().value.is_empty());
    let reg = node.reg().unwrap().next().unwrap();
    assert_eq!(reg.starting_address as usize, 0x1234);
    assert_eq!(reg.size, Some(0x10));
    let other = f.find_node("/other").unwrap();
    assert_eq!(other.property("odd").unwrap().value, &[1, 2, 3]);
    assert_eq!(other.compatible().unwrap().first(), "a,b");
}

#[test]
fn strings_are_deduplicated() {
    let mut buf = [0u8; 1024];
    let n = small_tree(&mut buf).unwrap();
    let b = &buf[..n];
    let strings = &b[be32_at(b, 12) as usize..n];
    let count = |s: &[u8]| strings.windows(s.len()).filter(|w| *w == s).count();
    assert_eq!(count(b"compatible\0"), 1);
    assert_eq!(count(b"#address-cells\0"), 1);
    // "cells" suffix sharing: "#size-cells" is its own string, stored once.
    assert_eq!(count(b"#size-cells\0"), 1);
    let expected = b"#address-cells\0#size-cells\0compatible\0reg\0flag\0odd\0".len();
    assert_eq!(strings.len(), expected);
}

#[test]
fn suffix_of_existing_string_is_shared() {
    let mut buf = [0u8; 256];
    let mut w = FdtWriter::new(&mut buf).unwrap();
    w.begin_node("").unwrap();
    w.property_u32("linux,phandle", 1).unwrap();
    w.property_u32("phandle", 1).unwrap();
    w.end_node().unwrap();
    let n = w.finish().unwrap();
    assert_eq!(be32_at(&buf, 32) as usize, b"linux,phandle\0".len());
    let f = fdt::Fdt::new(&buf[..n]).unwrap();
    let root = f.find_node("/").unwrap();
    assert_eq!(root.property("phandle").unwrap().as_usize(), Some(1));
    assert_eq!(root.property("linux,phandle").unwrap().as_usize(), Some(1));
}

#[test]
fn no_space_is_an_error_at_every_size() {
    let mut big = [0u8; 1024];
    let need = small_tree(&mut big).unwrap();
    for len in 0..need {
        let mut buf = vec![0u8; len];
        assert_eq!(small_tree(&mut buf), Err(Error::NoSpace), "len {len}");
    }
    let mut buf = vec![0u8; need];
    assert_eq!(small_tree(&mut buf), Ok(need));
}

#[test]
fn state_errors() {
    let mut buf = [0u8; 256];
    let mut w = FdtWriter::new(&mut buf).unwrap();
    assert_eq!(w.property_u32("x", 1), Err(Error::NoOpenNode));
    assert_eq!(w.end_node(), Err(Error::NoOpenNode));
    assert_eq!(w.begin_node("notroot"), Err(Error::BadName));
    w.begin_node("").unwrap();
    assert_eq!(w.add_reservation(0, 1), Err(Error::ReservationAfterNodes));
    assert_eq!(w.begin_node(""), Err(Error::BadName));
    assert_eq!(w.begin_node("a/b"), Err(Error::BadName));
    assert_eq!(w.begin_node("a\0b"), Err(Error::BadName));
    assert_eq!(w.property_u32("", 1), Err(Error::BadName));
    assert_eq!(w.property_string("s", "a\0"), Err(Error::BadName));
    w.begin_node("child").unwrap();
    w.end_node().unwrap();
    w.end_node().unwrap();
    assert_eq!(w.begin_node("again"), Err(Error::RootClosed));
    assert_eq!(w.end_node(), Err(Error::NoOpenNode));
    assert!(w.finish().is_ok());

    let mut buf = [0u8; 256];
    let w = FdtWriter::new(&mut buf).unwrap();
    assert_eq!(w.finish(), Err(Error::Unbalanced));
    let mut buf = [0u8; 256];
    let mut w = FdtWriter::new(&mut buf).unwrap();
    w.begin_node("").unwrap();
    w.begin_node("open").unwrap();
    w.end_node().unwrap();
    assert_eq!(w.finish(), Err(Error::Unbalanced));
    assert_eq!(FdtWriter::new(&mut [0u8; 55]).err(), Some(Error::NoSpace));
}

#[test]
fn unit_address_formatting() {
    let mut h = [0u8; 17];
    assert_eq!(hex_u64(0, &mut h), b"0");
    assert_eq!(hex_u64(0x4000_0000, &mut h), b"40000000");
    assert_eq!(hex_u64(u64::MAX, &mut h), b"ffffffffffffffff");
}

const MEM: [Region; 1] = [Region::new(0x4000_0000, 0x4000_0000)];

fn guest_tree(gic: Gic, cpus: u32) -> Vec<u8> {
    let virtio = [
        VirtioMmio {
            regs: Region::new(0x0a00_0000, 0x200),
            spi: 16,
        },
        VirtioMmio {
            regs: Region::new(0x0a00_0200, 0x200),
            spi: 17,
        },
    ];
    let mut cfg = GuestFdt::qemu_virt(&MEM, cpus);
    cfg.gic = gic;
    cfg.virtio_mmio = &virtio;
    cfg.bootargs = Some("console=ttyAMA0 rdinit=/init");
    cfg.initrd = Some((0x4820_0000, 0x4840_0000));
    let mut buf = vec![0u8; 8192];
    let n = cfg.write(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn guest_tree_gicv3() {
    let b = guest_tree(Gic::qemu_virt_v3(2), 2);
    let f = fdt::Fdt::new(&b).unwrap();
    let mem: Vec<_> = f.memory().regions().collect();
    assert_eq!(mem.len(), 1);
    assert_eq!(mem[0].starting_address as usize, 0x4000_0000);
    assert_eq!(mem[0].size, Some(0x4000_0000));
    assert_eq!(f.cpus().count(), 2);
    for (i, c) in f.cpus().enumerate() {
        assert_eq!(c.ids().first(), i);
        assert_eq!(c.property("enable-method").unwrap().as_str(), Some("psci"));
    }
    let psci = f.find_node("/psci").unwrap();
    assert!(
        psci.compatible()
            .unwrap()
            .all()
            .any(|c| c == "arm,psci-1.0")
    );
    assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));

    let gic = f.find_node("/intc@8000000").unwrap();
    assert_eq!(gic.compatible().unwrap().first(), "arm,gic-v3");
    let regs: Vec<_> = gic.reg().unwrap().collect();
    assert_eq!(regs[0].starting_address as usize, 0x0800_0000);
    assert_eq!(regs[1].starting_address as usize, 0x080a_0000);
    assert_eq!(regs[1].size, Some(0x40000));
    assert!(gic.property("interrupt-controller").is_some());
    assert_eq!(gic.property("phandle").unwrap().as_usize(), Some(1));
    assert_eq!(
        f.root().property("interrupt-parent").unwrap().as_usize(),
        Some(1)
    );

    let timer = f.find_node("/timer").unwrap();
    assert_eq!(timer.compatible().unwrap().first(), "arm,armv8-timer");
    let irqs: Vec<u32> = timer
        .property("interrupts")
        .unwrap()
        .value
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(irqs, [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);

    let uart = f.find_node("/pl011@9000000").unwrap();
    let compat: Vec<_> = uart.compatible().unwrap().all().collect();
    assert_eq!(compat, ["arm,pl011", "arm,primecell"]);
    let clk = f.find_phandle(PHANDLE_APB_CLOCK).unwrap();
    assert_eq!(clk.name, "apb-pclk");
    assert_eq!(
        clk.property("clock-frequency").unwrap().as_usize(),
        Some(24_000_000)
    );

    let v: Vec<_> = f.find_all_nodes("/virtio_mmio").collect();
    assert_eq!(v.len(), 2);
    assert!(f.find_node("/virtio_mmio@a000200").is_some());

    let chosen = f.chosen();
    assert_eq!(chosen.bootargs(), Some("console=ttyAMA0 rdinit=/init"));
    assert_eq!(chosen.stdout().unwrap().name, "pl011@9000000");
    let node = f.find_node("/chosen").unwrap();
    assert_eq!(
        node.property("linux,initrd-start").unwrap().as_usize(),
        Some(0x4820_0000)
    );
    assert_eq!(
        node.property("linux,initrd-end").unwrap().as_usize(),
        Some(0x4840_0000)
    );
}

#[test]
fn guest_tree_gicv2_cpu_mask() {
    let b = guest_tree(Gic::qemu_virt_v2(), 4);
    let f = fdt::Fdt::new(&b).unwrap();
    let gic = f.find_node("/intc@8000000").unwrap();
    assert_eq!(gic.compatible().unwrap().first(), "arm,cortex-a15-gic");
    let regs: Vec<_> = gic.reg().unwrap().collect();
    assert_eq!(regs[1].starting_address as usize, 0x0801_0000);
    assert!(gic.property("#redistributor-regions").is_none());
    let timer = f.find_node("/timer").unwrap();
    let v = timer.property("interrupts").unwrap().value;
    assert_eq!(u32::from_be_bytes(v[8..12].try_into().unwrap()), 0xf04);
}

/// Second opinion from dtc when Debian's device-tree-compiler is installed.
#[test]
fn dtc_accepts_guest_tree() {
    use std::process::Command;
    let b = guest_tree(Gic::qemu_virt_v3(1), 1);
    let dir = std::env::temp_dir().join(std::format!("axolotl-fdt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("guest.dtb");
    std::fs::write(&path, &b).unwrap();
    let out = match Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            std::println!("skipped: dtc not installed (apt-get install device-tree-compiler)");
            return;
        }
    };
    std::fs::remove_dir_all(&dir).ok();
    let warnings = std::string::String::from_utf8_lossy(&out.stderr);
    assert!(!warnings.contains("Warning"), "{warnings}");
    assert!(
        out.status.success(),
        "{}",
        std::string::String::from_utf8_lossy(&out.stderr)
    );
    let dts = std::string::String::from_utf8(out.stdout).unwrap();
    assert!(dts.contains("compatible = \"arm,gic-v3\";"), "{dts}");
    assert!(dts.contains("stdout-path = \"/pl011@9000000\";"), "{dts}");
    assert!(
        dts.contains("linux,initrd-start = <0x00 0x48200000>;"),
        "{dts}"
    );
}
