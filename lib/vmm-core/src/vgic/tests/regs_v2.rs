use super::*;
use crate::vgic::v2::*;

const D: u8 = REGION_GICD;

#[test]
fn id_registers() {
    let mut g = gic(GicVersion::V2, 2);
    // 96 INTIDs -> ITLinesNumber 2; 2 CPUs -> CPUNumber 1; no security extensions.
    assert_eq!(rd(&mut g, 0, D, GICD_TYPER, 4), 0x22);
    assert_eq!(rd(&mut g, 0, D, GICD_IIDR, 4), 0x5800_043B);
    assert_eq!(rd(&mut g, 0, D, GICD_ICPIDR2, 4) >> 4 & 0xF, 2);
    wr(&mut g, 0, D, GICD_TYPER, 4, 0);
    assert_eq!(rd(&mut g, 0, D, GICD_TYPER, 4), 0x22);
}

#[test]
fn ctlr_keeps_both_group_enables() {
    let mut g = gic(GicVersion::V2, 1);
    wr(&mut g, 0, D, GICD_CTLR, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, D, GICD_CTLR, 4), 3);
}

#[test]
fn enable_set_clear_and_banking() {
    let mut g = gic(GicVersion::V2, 2);
    wr(&mut g, 0, D, 0x100, 4, 0x8000_0001);
    wr(&mut g, 1, D, 0x100, 4, 0x2);
    assert_eq!(
        rd(&mut g, 0, D, 0x100, 4),
        0x8000_0001,
        "SGI/PPI enables are banked"
    );
    assert_eq!(rd(&mut g, 1, D, 0x180, 4), 0x2);
    wr(&mut g, 0, D, 0x180, 4, 1);
    assert_eq!(rd(&mut g, 0, D, 0x100, 4), 0x8000_0000);
    wr(&mut g, 0, D, 0x104, 4, 0xF0);
    assert_eq!(rd(&mut g, 1, D, 0x104, 4), 0xF0, "SPIs are shared");
    wr(&mut g, 1, D, 0x184, 4, 0x30);
    assert_eq!(rd(&mut g, 0, D, 0x184, 4), 0xC0);
    // Writing 0 to a set/clear register changes nothing.
    wr(&mut g, 0, D, 0x104, 4, 0);
    wr(&mut g, 0, D, 0x184, 4, 0);
    assert_eq!(rd(&mut g, 0, D, 0x104, 4), 0xC0);
}

#[test]
fn group_pending_active_registers() {
    let mut g = gic(GicVersion::V2, 1);
    wr(&mut g, 0, D, 0x084, 4, 0xA5);
    assert_eq!(rd(&mut g, 0, D, 0x084, 4), 0xA5);
    wr(&mut g, 0, D, 0x204, 4, 0x3);
    assert_eq!(rd(&mut g, 0, D, 0x284, 4), 0x3);
    wr(&mut g, 0, D, 0x284, 4, 0x1);
    assert_eq!(rd(&mut g, 0, D, 0x204, 4), 0x2);
    wr(&mut g, 0, D, 0x300, 4, 0x0800_0000);
    assert_eq!(rd(&mut g, 0, D, 0x380, 4), 0x0800_0000);
    wr(&mut g, 0, D, 0x380, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, D, 0x300, 4), 0);
    // ISPENDR/ICPENDR bits of SGIs are WI (SPENDSGIR is the way).
    wr(&mut g, 0, D, 0x200, 4, 0xFFFF);
    assert_eq!(rd(&mut g, 0, D, 0x200, 4), 0);
}

#[test]
fn priority_bytes_and_words() {
    let mut g = gic(GicVersion::V2, 1);
    wr(&mut g, 0, D, 0x421, 1, 0xFF);
    assert_eq!(rd(&mut g, 0, D, 0x421, 1), 0xF8, "3 low bits RAZ/WI");
    assert_eq!(rd(&mut g, 0, D, 0x420, 4), 0xF800);
    wr(&mut g, 0, D, 0x424, 4, 0x1122_3344);
    assert_eq!(rd(&mut g, 0, D, 0x424, 4), 0x1020_3040);
    assert_eq!(g.irq(0, 39).unwrap().priority, 0x10);
    // Priority of an unimplemented INTID (96+) is RAZ/WI.
    wr(&mut g, 0, D, 0x400 + 96, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, D, 0x400 + 96, 4), 0);
}

#[test]
fn targets() {
    let mut g = gic(GicVersion::V2, 3);
    assert_eq!(
        rd(&mut g, 2, D, 0x800, 4),
        0x0404_0404,
        "SGI targets read own CPU"
    );
    assert_eq!(rd(&mut g, 1, D, 0x81B, 1), 0x02);
    wr(&mut g, 0, D, 0x800, 4, 0);
    assert_eq!(rd(&mut g, 0, D, 0x800, 1), 0x01, "read-only");
    wr(&mut g, 0, D, 0x820, 4, 0xFF03_0201);
    assert_eq!(
        rd(&mut g, 0, D, 0x820, 4),
        0x0703_0201,
        "masked to existing CPUs"
    );
    let mut u = gic(GicVersion::V2, 1);
    wr(&mut u, 0, D, 0x820, 1, 1);
    assert_eq!(rd(&mut u, 0, D, 0x820, 4), 0, "uniprocessor: RAZ/WI");
    assert_eq!(rd(&mut u, 0, D, 0x800, 4), 0);
}

#[test]
fn config_register() {
    let mut g = gic(GicVersion::V2, 1);
    assert_eq!(rd(&mut g, 0, D, 0xC00, 4), 0xAAAA_AAAA, "SGIs edge");
    wr(&mut g, 0, D, 0xC00, 4, 0);
    assert_eq!(rd(&mut g, 0, D, 0xC00, 4), 0xAAAA_AAAA, "read-only");
    assert_eq!(rd(&mut g, 0, D, 0xC04, 4), 0, "PPIs level at reset");
    wr(&mut g, 0, D, 0xC08, 4, 0xFFFF_FFFF);
    assert_eq!(
        rd(&mut g, 0, D, 0xC08, 4),
        0xAAAA_AAAA,
        "bit 0 of each field reserved"
    );
    assert!(g.irq(0, 47).unwrap().edge);
    wr(&mut g, 0, D, 0xC08, 4, 0x8);
    assert!(g.irq(0, 33).unwrap().edge && !g.irq(0, 32).unwrap().edge);
}

#[test]
fn sgir_filters() {
    let mut g = gic(GicVersion::V2, 3);
    wr(&mut g, 0, D, GICD_SGIR, 4, (0b110 << 16) | 5);
    assert_eq!(g.irq(1, 5).unwrap().sgi_sources, 1);
    assert_eq!(g.irq(2, 5).unwrap().sgi_sources, 1);
    assert!(!g.irq(0, 5).unwrap().pending());
    wr(&mut g, 1, D, GICD_SGIR, 4, (1 << 24) | 3);
    assert_eq!([0, 2].map(|v| g.irq(v, 3).unwrap().sgi_sources), [2, 2]);
    assert!(!g.irq(1, 3).unwrap().pending());
    wr(&mut g, 2, D, GICD_SGIR, 4, (2 << 24) | 0xFF_0000 | 15);
    assert_eq!(g.irq(2, 15).unwrap().sgi_sources, 4);
    assert!(!g.irq(0, 15).unwrap().pending());
    wr(&mut g, 0, D, GICD_SGIR, 4, (3 << 24) | 0xFF_0000 | 7);
    assert!(
        (0..3).all(|v| !g.irq(v, 7).unwrap().pending()),
        "reserved filter"
    );
    assert_eq!(rd(&mut g, 0, D, GICD_SGIR, 4), 0, "write-only");
}

#[test]
fn spendsgir_cpendsgir() {
    let mut g = gic(GicVersion::V2, 2);
    wr(&mut g, 0, D, GICD_SPENDSGIR + 1, 1, 0xFF);
    assert_eq!(
        rd(&mut g, 0, D, GICD_SPENDSGIR, 4),
        0x0300,
        "sources masked to CPUs"
    );
    assert!(g.irq(0, 1).unwrap().pending());
    assert_eq!(
        rd(&mut g, 0, D, 0x200, 4),
        0x2,
        "ISPENDR reflects SGI pending"
    );
    wr(&mut g, 0, D, GICD_CPENDSGIR, 4, 0x0100);
    assert_eq!(rd(&mut g, 0, D, GICD_CPENDSGIR + 1, 1), 0x2);
    wr(&mut g, 0, D, GICD_CPENDSGIR + 1, 1, 0x2);
    assert!(!g.irq(0, 1).unwrap().pending());
    assert_eq!(rd(&mut g, 1, D, GICD_SPENDSGIR, 4), 0, "banked");
}

#[test]
fn bad_widths_alignment_offsets_are_raz_wi() {
    let mut g = gic(GicVersion::V2, 2);
    let before = g.ctlr;
    for (off, size) in [
        (0x104u64, 2u8), // halfword
        (0x104, 1),      // byte to a bit register
        (0x104, 8),      // doubleword
        (0x106, 4),      // misaligned word
        (0x421, 4),      // misaligned priority word
        (0x420, 2),      // halfword priority
        (GICD_CTLR, 1),
        (GICD_CTLR, 8),
        (GICD_SGIR, 2),
        (GICD_SPENDSGIR + 1, 4),
        (GICD_SPENDSGIR, 2),
        (0x00C, 4), // reserved
        (0xD00, 4), // reserved (no IGRPMODR in v2)
        (0xFFFC, 4),
        (0x1_0000, 4), // beyond the frame
        (u64::MAX - 3, 4),
    ] {
        wr(&mut g, 0, D, off, size, u64::MAX);
        assert_eq!(
            rd(&mut g, 0, D, off, size),
            0,
            "offset {off:#x} size {size}"
        );
    }
    assert_eq!(g.ctlr, before);
    assert!((32..96).all(|i| !g.irq(0, i).unwrap().enabled));
    assert!((0..16).all(|i| !g.irq(0, i).unwrap().pending() && !g.irq(1, i).unwrap().pending()));
    // Unknown vCPU or region: RAZ/WI.
    wr(&mut g, 9, D, 0x104, 4, u64::MAX);
    assert_eq!(rd(&mut g, 9, D, 0x104, 4), 0);
    wr(&mut g, 0, REGION_GICR, 0x104, 4, u64::MAX);
    assert_eq!(rd(&mut g, 0, REGION_GICR, 0x10100, 4), 0);
    assert!((32..96).all(|i| !g.irq(0, i).unwrap().enabled));
}

#[test]
fn words_spanning_unimplemented_intids() {
    let mut g = gic(GicVersion::V2, 1);
    // ISENABLER3 covers 96..127: none implemented with 64 SPIs.
    wr(&mut g, 0, D, 0x10C, 4, u64::MAX);
    assert_eq!(rd(&mut g, 0, D, 0x10C, 4), 0);
    wr(&mut g, 0, D, 0xC18, 4, u64::MAX);
    assert_eq!(rd(&mut g, 0, D, 0xC18, 4), 0);
}
