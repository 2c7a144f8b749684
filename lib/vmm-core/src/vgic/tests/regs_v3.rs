use super::*;
use crate::vgic::v3::*;

const D: u8 = REGION_GICD;
const R: u8 = REGION_GICR;

#[test]
fn dist_id_and_ctlr() {
    let mut g = gic(GicVersion::V3, 2);
    // ITLines 2, CPUNumber 1, IDbits 9, No1N.
    assert_eq!(
        rd(&mut g, 0, D, GICD_TYPER, 4),
        0x2 | (1 << 5) | (9 << 19) | (1 << 25)
    );
    assert_eq!(
        rd(&mut g, 0, D, GICD_PIDR2, 4) >> 4 & 0xF,
        3,
        "Linux checks ArchRev"
    );
    assert_eq!(
        rd(&mut g, 0, D, GICD_CTLR, 4),
        0x50,
        "ARE and DS read as one"
    );
    wr(&mut g, 0, D, GICD_CTLR, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, D, GICD_CTLR, 4), 0x53);
    wr(&mut g, 0, D, GICD_CTLR, 4, 0);
    assert_eq!(rd(&mut g, 0, D, GICD_CTLR, 4), 0x50, "ARE/DS are RAO/WI");
}

#[test]
fn dist_private_bits_are_raz_wi_with_are() {
    let mut g = gic(GicVersion::V3, 1);
    wr(&mut g, 0, D, 0x100, 4, u32::MAX.into());
    wr(&mut g, 0, D, 0x400, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, D, 0x100, 4), 0);
    assert_eq!(rd(&mut g, 0, D, 0x400, 4), 0);
    assert!(!g.irq(0, 0).unwrap().enabled);
    // ITARGETSR is RAZ/WI under affinity routing.
    wr(&mut g, 0, D, 0x820, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, D, 0x820, 4), 0);
    // SPIs work.
    wr(&mut g, 0, D, 0x104, 4, 1);
    assert!(g.irq(0, 32).unwrap().enabled);
    assert_eq!(
        rd(&mut g, 0, D, 0x084, 4),
        u32::MAX.into(),
        "Group 1 at reset"
    );
}

#[test]
fn irouter_widths() {
    let mut g = gic(GicVersion::V3, 2);
    let r33 = GICD_IROUTER + 8 * 33;
    wr(&mut g, 0, D, r33, 8, 0xFFFF_FFFF_FFFF_FFFF);
    assert_eq!(
        rd(&mut g, 0, D, r33, 8),
        0xFF_00FF_FFFF,
        "IRM and reserved bits RAZ"
    );
    wr(&mut g, 0, D, r33, 4, 1);
    assert_eq!(rd(&mut g, 0, D, r33, 8), 0xFF_0000_0001);
    wr(&mut g, 0, D, r33 + 4, 4, 0);
    assert_eq!(rd(&mut g, 0, D, r33, 8), 1);
    assert_eq!(rd(&mut g, 0, D, r33 + 4, 4), 0);
    assert_eq!(rd(&mut g, 0, D, r33, 4), 1);
    // Bad widths/offsets and IROUTER of SGIs/PPIs/unimplemented SPIs: RAZ/WI.
    wr(&mut g, 0, D, r33, 2, 0);
    wr(&mut g, 0, D, r33 + 2, 4, 0);
    wr(&mut g, 0, D, r33 + 4, 8, 0);
    assert_eq!(rd(&mut g, 0, D, r33, 8), 1);
    for off in [
        GICD_IROUTER,
        GICD_IROUTER + 8 * 31,
        GICD_IROUTER + 8 * 96,
        GICD_IROUTER + 8 * 1019,
    ] {
        wr(&mut g, 0, D, off, 8, 1);
        assert_eq!(rd(&mut g, 0, D, off, 8), 0, "{off:#x}");
    }
    // Routing decides delivery.
    wr(&mut g, 0, D, GICD_CTLR, 4, 2);
    wr(&mut g, 0, D, 0x104, 4, 2);
    g.set_level(0, 33, true).unwrap();
    assert_eq!(
        (g.next_pending(0), g.next_pending(1)),
        (None, Some((33, 0)))
    );
    wr(&mut g, 0, D, r33, 8, 0x1_0000_0000); // Aff3 = 1: nobody
    assert_eq!((g.next_pending(0), g.next_pending(1)), (None, None));
}

#[test]
fn redistributor_typer_and_waker() {
    let mut g = gic(GicVersion::V3, 3);
    for rd_i in 0..3u64 {
        let base = rd_i * GICR_STRIDE;
        let last = if rd_i == 2 { 1 << 4 } else { 0 };
        let typer = (rd_i << 32) | (rd_i << 8) | last;
        assert_eq!(rd(&mut g, 0, R, base + GICR_TYPER, 8), typer);
        assert_eq!(rd(&mut g, 1, R, base + GICR_TYPER, 4), typer & 0xFFFF_FFFF);
        assert_eq!(rd(&mut g, 1, R, base + GICR_TYPER + 4, 4), rd_i);
        assert_eq!(rd(&mut g, 0, R, base + GICR_TYPER + 2, 2), 0);
        assert_eq!(rd(&mut g, 0, R, base + GICR_PIDR2, 4) >> 4 & 0xF, 3);
        assert_eq!(rd(&mut g, 0, R, base + GICR_IIDR, 4), 0x5800_043B);
        assert_eq!(rd(&mut g, 0, R, base + GICR_WAKER, 4), 0b110);
    }
    wr(&mut g, 0, R, GICR_STRIDE + GICR_WAKER, 4, 0);
    assert_eq!(
        rd(&mut g, 0, R, GICR_STRIDE + GICR_WAKER, 4),
        0,
        "ChildrenAsleep follows"
    );
    assert_eq!(rd(&mut g, 0, R, GICR_WAKER, 4), 0b110, "per redistributor");
    wr(&mut g, 0, R, GICR_STRIDE + GICR_WAKER, 4, 2);
    assert_eq!(rd(&mut g, 0, R, GICR_STRIDE + GICR_WAKER, 4), 0b110);
    // A frame past the last vCPU and GICR_CTLR: RAZ/WI.
    assert_eq!(rd(&mut g, 0, R, 3 * GICR_STRIDE + GICR_TYPER, 8), 0);
    wr(&mut g, 0, R, GICR_CTLR, 4, 1);
    assert_eq!(rd(&mut g, 0, R, GICR_CTLR, 4), 0);
}

#[test]
fn sgi_frame_is_per_redistributor() {
    let mut g = gic(GicVersion::V3, 2);
    let sgi1 = GICR_STRIDE + GICR_SGI_BASE;
    wr(&mut g, 0, R, sgi1 + 0x100, 4, 1 << 27);
    assert!(g.irq(1, 27).unwrap().enabled && !g.irq(0, 27).unwrap().enabled);
    assert_eq!(rd(&mut g, 0, R, GICR_SGI_BASE + 0x100, 4), 0);
    wr(&mut g, 1, R, sgi1 + 0x41B, 1, 0xA7);
    assert_eq!(g.irq(1, 27).unwrap().priority, 0xA0);
    assert_eq!(rd(&mut g, 0, R, sgi1 + 0x418, 4), 0xA000_0000);
    // ICFGR0 read-only edge, ICFGR1 PPIs writable.
    assert_eq!(rd(&mut g, 0, R, sgi1 + 0xC00, 4), 0xAAAA_AAAA);
    wr(&mut g, 0, R, sgi1 + 0xC04, 4, 0x2);
    assert!(g.irq(1, 16).unwrap().edge);
    // ISPENDR0 works for SGIs in GICv3.
    wr(&mut g, 0, R, sgi1 + 0x200, 4, 1 << 3);
    assert!(g.irq(1, 3).unwrap().pending());
    // Second words (INTID 32+) and other offsets of the SGI frame are RAZ/WI.
    wr(&mut g, 0, R, sgi1 + 0x104, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, R, sgi1 + 0x104, 4), 0);
    assert!(!g.irq(0, 32).unwrap().enabled);
    wr(&mut g, 0, R, sgi1 + 0x420, 4, u32::MAX.into());
    assert_eq!(rd(&mut g, 0, R, sgi1 + 0x420, 4), 0);
    assert_eq!(rd(&mut g, 0, R, sgi1 + 0x800, 4), 0, "no ITARGETSR");
    assert_eq!(rd(&mut g, 0, R, sgi1 + 0x100, 2), 0, "halfword RAZ");
}

#[test]
fn sgi1r() {
    let mut g = gic(GicVersion::V3, 3);
    // INTID 5 to TargetList {1, 2}.
    g.write_sgi1r(0, (5 << 24) | 0b110);
    assert!(g.irq(1, 5).unwrap().pending() && g.irq(2, 5).unwrap().pending());
    assert!(!g.irq(0, 5).unwrap().pending());
    assert_eq!(
        g.irq(1, 5).unwrap().sgi_sources,
        0,
        "no per-source state in v3"
    );
    // IRM: everyone but self.
    g.write_sgi1r(1, (1 << 40) | (6 << 24));
    assert_eq!(
        [0, 1, 2].map(|v| g.irq(v, 6).unwrap().pending()),
        [true, false, true]
    );
    // Non-zero Aff1/Aff2/Aff3/RS or absent Aff0: nobody.
    for v in [
        (1 << 16) | 1,
        (1 << 32) | 1,
        (1 << 48) | 1,
        (1 << 44) | 1,
        0b1000,
    ] {
        g.write_sgi1r(0, v | (7 << 24));
    }
    assert!((0..3).all(|v| !g.irq(v, 7).unwrap().pending()));
    g.write_sgi1r(9, 0xFFFF);
    let mut v2 = gic(GicVersion::V2, 2);
    v2.write_sgi1r(0, (1 << 24) | 2);
    assert!(!v2.irq(1, 1).unwrap().pending(), "v2 has no ICC_SGI1R");
}

#[test]
fn bad_accesses_are_raz_wi() {
    let mut g = gic(GicVersion::V3, 1);
    for (off, size) in [
        (GICD_CTLR, 8u8),
        (GICD_CTLR + 1, 1),
        (0x104, 2),
        (0x104, 8),
        (0xD04, 4),
        (0x0F00, 4),
        (0xF20, 1),
        (0x10, 4),
        (0xFFFC, 4),
        (u64::MAX - 7, 8),
    ] {
        wr(&mut g, 0, D, off, size, u64::MAX);
        assert_eq!(rd(&mut g, 0, D, off, size), 0, "{off:#x}/{size}");
    }
    assert_eq!(g.ctlr, 0);
    assert!((32..96).all(|i| !g.irq(0, i).unwrap().enabled));
    wr(&mut g, 0, R, GICR_WAKER, 8, 0);
    wr(&mut g, 0, R, GICR_WAKER, 2, 0);
    assert_eq!(rd(&mut g, 0, R, GICR_WAKER, 4), 0b110);
    assert_eq!(rd(&mut g, 0, R, u64::MAX - 3, 4), 0);
    assert_eq!(rd(&mut g, 0, 7, 0, 4), 0, "unknown region");
}
