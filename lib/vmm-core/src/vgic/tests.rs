extern crate std;
use super::*;
use crate::bus::Access;

mod lists;
mod regs_v2;
mod regs_v3;

pub(super) fn gic(version: GicVersion, nr_vcpus: usize) -> Vgic {
    Vgic::new(VgicConfig {
        version,
        nr_vcpus,
        nr_spis: 64,
        nr_lrs: 4,
    })
    .unwrap()
}

pub(super) fn rd(g: &mut Vgic, vcpu: usize, region: u8, offset: u64, size: u8) -> u64 {
    g.read(Access {
        vcpu,
        region,
        offset,
        size,
    })
    .unwrap()
}

pub(super) fn wr(g: &mut Vgic, vcpu: usize, region: u8, offset: u64, size: u8, v: u64) {
    g.write(
        Access {
            vcpu,
            region,
            offset,
            size,
        },
        v,
    )
    .unwrap()
}

#[test]
fn config_is_validated() {
    let ok = VgicConfig {
        version: GicVersion::V2,
        nr_vcpus: 2,
        nr_spis: 64,
        nr_lrs: 4,
    };
    assert!(Vgic::new(ok).is_ok());
    for (cfg, e) in [
        (VgicConfig { nr_vcpus: 0, ..ok }, ConfigError::BadVcpuCount),
        (
            VgicConfig {
                nr_vcpus: MAX_VCPUS + 1,
                ..ok
            },
            ConfigError::BadVcpuCount,
        ),
        (VgicConfig { nr_spis: 33, ..ok }, ConfigError::BadSpiCount),
        (
            VgicConfig {
                nr_spis: MAX_SPIS + 32,
                ..ok
            },
            ConfigError::BadSpiCount,
        ),
        (VgicConfig { nr_lrs: 0, ..ok }, ConfigError::BadLrCount),
        (
            VgicConfig {
                nr_lrs: MAX_LRS + 1,
                ..ok
            },
            ConfigError::BadLrCount,
        ),
    ] {
        assert_eq!(Vgic::new(cfg).err(), Some(e));
    }
    assert!(
        Vgic::new(VgicConfig {
            nr_spis: MAX_SPIS,
            nr_vcpus: MAX_VCPUS,
            nr_lrs: MAX_LRS,
            ..ok
        })
        .is_ok()
    );
}

#[test]
fn injection_api_rejects_bad_ids() {
    let mut g = gic(GicVersion::V2, 2);
    assert_eq!(g.set_level(0, 5, true), Err(IrqError::InvalidIntid(5)));
    assert_eq!(g.set_level(0, 96, true), Err(IrqError::InvalidIntid(96)));
    assert_eq!(
        g.set_level(0, u32::MAX, true),
        Err(IrqError::InvalidIntid(u32::MAX))
    );
    assert_eq!(g.set_level(2, 27, true), Err(IrqError::InvalidVcpu(2)));
    assert_eq!(g.pulse(0, 1020), Err(IrqError::InvalidIntid(1020)));
    assert_eq!(g.map_hw(0, 27, 1020), Err(IrqError::InvalidIntid(1020)));
    assert_eq!(g.map_hw(0, 27, 3), Err(IrqError::InvalidIntid(3)));
    assert_eq!(g.map_hw(9, 27, 27), Err(IrqError::InvalidVcpu(9)));
    assert!(g.irq(0, 96).is_none() && g.irq(2, 0).is_none());
    g.send_sgi(0, 0xFF, 16); // out of range SGI: ignored
    g.send_sgi(7, 0xFF, 1); // absent source: ignored
    assert!((0..2).all(|v| !g.irq(v, 1).unwrap().pending()));
    // Valid ones work.
    g.set_level(1, 27, true).unwrap();
    assert!(g.irq(1, 27).unwrap().pending() && !g.irq(0, 27).unwrap().pending());
    g.set_level(0, 95, true).unwrap();
    assert!(g.irq(1, 95).unwrap().pending());
}

#[test]
fn edge_and_level_pending_semantics() {
    let mut g = gic(GicVersion::V3, 1);
    wr(&mut g, 0, REGION_GICD, 0xC08, 4, 0b10 << 2); // INTID 33 edge
    g.set_level(0, 33, true).unwrap();
    g.set_level(0, 33, false).unwrap();
    assert!(g.irq(0, 33).unwrap().pending(), "edge latches");
    g.set_level(0, 34, true).unwrap();
    assert!(g.irq(0, 34).unwrap().pending());
    g.set_level(0, 34, false).unwrap();
    assert!(!g.irq(0, 34).unwrap().pending(), "level follows the line");
    g.pulse(0, 34).unwrap();
    assert!(g.irq(0, 34).unwrap().pending());
    // ICPENDR clears the latch but not a high line.
    g.set_level(0, 35, true).unwrap();
    wr(&mut g, 0, REGION_GICD, 0x284, 4, 0b1110);
    assert!(!g.irq(0, 33).unwrap().pending() && !g.irq(0, 34).unwrap().pending());
    assert!(g.irq(0, 35).unwrap().pending());
}

#[test]
fn next_pending_orders_and_filters() {
    let mut g = gic(GicVersion::V2, 2);
    wr(&mut g, 0, REGION_GICD, 0x000, 4, 1);
    // Enable SPIs 32..63 and PPI 27 on vCPU 0; target SPIs at CPU 0.
    wr(&mut g, 0, REGION_GICD, 0x104, 4, u32::MAX.into());
    wr(&mut g, 0, REGION_GICD, 0x100, 4, 1 << 27);
    for i in 0..32 {
        wr(&mut g, 0, REGION_GICD, 0x820 + i, 1, 1);
    }
    assert_eq!(g.next_pending(0), None);
    g.set_level(0, 40, true).unwrap();
    g.set_level(0, 36, true).unwrap();
    wr(&mut g, 0, REGION_GICD, 0x400 + 40, 1, 0x80);
    wr(&mut g, 0, REGION_GICD, 0x400 + 36, 1, 0x80);
    assert_eq!(
        g.next_pending(0),
        Some((36, 0x80)),
        "ties go to the lower INTID"
    );
    g.set_level(0, 27, true).unwrap();
    wr(&mut g, 0, REGION_GICD, 0x400 + 27, 1, 0x10);
    assert_eq!(g.next_pending(0), Some((27, 0x10)));
    assert_eq!(
        g.next_pending(1),
        None,
        "SPIs target CPU 0, PPI 27 is vCPU 0's"
    );
    // Active, disabled, or group-disabled interrupts are not candidates.
    wr(&mut g, 0, REGION_GICD, 0x300, 4, 1 << 27);
    wr(&mut g, 0, REGION_GICD, 0x184, 4, 1 << 4);
    assert_eq!(g.next_pending(0), Some((40, 0x80)));
    wr(&mut g, 0, REGION_GICD, 0x000, 4, 0);
    assert_eq!(g.next_pending(0), None);
    // Retarget 40 to CPU 1.
    wr(&mut g, 0, REGION_GICD, 0x000, 4, 1);
    wr(&mut g, 0, REGION_GICD, 0x800 + 40, 1, 2);
    assert_eq!(g.next_pending(0), None);
    assert_eq!(g.next_pending(1), Some((40, 0x80)));
    assert_eq!(g.next_pending(5), None);
}

/// `take_injection` remembers "nothing pending" until the next change; every kind of change
/// must drop that answer, or an interrupt would wait for an unrelated one.
#[test]
fn an_idle_answer_lasts_only_until_a_change() {
    for version in [GicVersion::V2, GicVersion::V3] {
        let mut g = gic(version, 2);
        // Distributor on, both groups; SPIs 32..63 and SGI 1 / PPI 27 enabled, SPIs to vCPU 0.
        wr(&mut g, 0, REGION_GICD, 0x000, 4, 3);
        wr(&mut g, 0, REGION_GICD, 0x104, 4, u32::MAX.into());
        wr(&mut g, 0, REGION_GICD, 0x100, 4, (1 << 27) | (1 << 1));
        if version == GicVersion::V3 {
            // Private interrupts are enabled in the redistributor on GICv3.
            wr(&mut g, 0, REGION_GICR, 0x1_0100, 4, (1 << 27) | (1 << 1));
        } else {
            for i in 0..32 {
                wr(&mut g, 0, REGION_GICD, 0x820 + i, 1, 1);
            }
        }
        let idle = |g: &mut Vgic| assert_eq!(g.take_injection(0), None, "{version:?}");
        idle(&mut g);
        // A line going high.
        g.set_level(0, 40, true).unwrap();
        assert_eq!(
            g.take_injection(0).map(|i| i.intid),
            Some(40),
            "{version:?}"
        );
        idle(&mut g);
        // The same level again is no change; an edge pulse is.
        g.set_level(0, 40, true).unwrap();
        idle(&mut g);
        g.pulse(0, 41).unwrap();
        assert_eq!(
            g.take_injection(0).map(|i| i.intid),
            Some(41),
            "{version:?}"
        );
        idle(&mut g);
        // A refused injection is pending again.
        g.pulse(0, 42).unwrap();
        let inj = g.take_injection(0).unwrap();
        idle(&mut g);
        g.refuse_injection(0, &inj);
        assert_eq!(
            g.take_injection(0).map(|i| i.intid),
            Some(42),
            "{version:?}"
        );
        // An SGI.
        idle(&mut g);
        g.send_sgi(1, 1, 1);
        assert_eq!(g.take_injection(0).map(|i| i.intid), Some(1), "{version:?}");
        // A register write: ISPENDR sets SPI 43 pending.
        idle(&mut g);
        wr(&mut g, 0, REGION_GICD, 0x204, 4, 1 << 11);
        assert_eq!(
            g.take_injection(0).map(|i| i.intid),
            Some(43),
            "{version:?}"
        );
        // Completing a level interrupt whose line is still high makes it deliverable again.
        idle(&mut g);
        g.complete_injection(0, 40);
        assert_eq!(
            g.take_injection(0).map(|i| i.intid),
            Some(40),
            "{version:?}"
        );
    }
}
