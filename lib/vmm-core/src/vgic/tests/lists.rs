use super::*;

const D: u8 = REGION_GICD;

fn lr(
    vintid: u32,
    pintid: Option<u32>,
    priority: u8,
    state: LrState,
    group1: bool,
    eoi: bool,
    source: u8,
) -> Lr {
    Lr {
        vintid,
        pintid,
        priority,
        state,
        group1,
        eoi,
        source,
    }
}

// Hand-computed from the field layouts in lr.rs (IHI 0048B 5.3.9, IHI 0069 ICH_LR<n>_EL2).
#[test]
fn v2_encodings() {
    // HW[31]=1, State[29:28]=01, Priority[27:23]=0xA0>>3=0x14, PhysicalID[19:10]=27, VirtualID=27.
    let timer = lr(27, Some(27), 0xA0, LrState::Pending, false, false, 0);
    assert_eq!(timer.encode_v2(), 0x9A00_6C1B);
    // State 01, CPUID[12:10]=2, VirtualID 1.
    let sgi = lr(1, None, 0, LrState::Pending, false, false, 2);
    assert_eq!(sgi.encode_v2(), 0x1000_0801);
    // State 01, Priority 0x14, EOI[19], VirtualID 33.
    let level = lr(33, None, 0xA0, LrState::Pending, false, true, 0);
    assert_eq!(level.encode_v2(), 0x1A08_0021);
    // Grp1[30], State 11, Priority 0x1F.
    let pa = lr(1019, None, 0xF8, LrState::PendingActive, true, false, 7);
    assert_eq!(pa.encode_v2(), 0x7F80_1FFB);
    for l in [timer, sgi, level, pa] {
        assert_eq!(Lr::decode_v2(l.encode_v2()), l);
    }
    // Priority bits [2:0] cannot be represented.
    assert_eq!(
        Lr::decode_v2(lr(40, None, 0xA7, LrState::Active, false, false, 0).encode_v2()).priority,
        0xA0
    );
}

#[test]
fn v3_encodings() {
    // State[63:62]=01, HW[61], Group[60], Priority[55:48]=0xA0, pINTID[44:32]=27, vINTID=27.
    let timer = lr(27, Some(27), 0xA0, LrState::Pending, true, false, 0);
    assert_eq!(timer.encode_v3(), 0x70A0_001B_0000_001B);
    // State 01, Group, Priority 0x80, EOI[41], vINTID 33.
    let level = lr(33, None, 0x80, LrState::Pending, true, true, 0);
    assert_eq!(level.encode_v3(), 0x5080_0200_0000_0021);
    // State 11, Group, vINTID 40.
    let pa = lr(40, None, 0, LrState::PendingActive, true, false, 0);
    assert_eq!(pa.encode_v3(), 0xD000_0000_0000_0028);
    // Active, Group 0, priority 0xA7 kept whole.
    let act = lr(1019, None, 0xA7, LrState::Active, false, false, 0);
    assert_eq!(act.encode_v3(), 0x80A7_0000_0000_03FB);
    for l in [timer, level, pa, act] {
        assert_eq!(Lr::decode_v3(l.encode_v3()), l);
    }
    // Source has no v3 field.
    assert_eq!(
        lr(1, None, 0, LrState::Pending, true, false, 3).encode_v3(),
        0x5000_0000_0000_0001
    );
}

#[test]
fn state_helpers() {
    for b in 0..4u64 {
        let s = LrState::from_bits(b);
        assert_eq!(s.bits(), b);
        assert_eq!(LrState::new(s.pending(), s.active()), s);
    }
}

fn v3_one_cpu() -> Vgic {
    let mut g = gic(GicVersion::V3, 1);
    wr(&mut g, 0, D, 0x000, 4, 2); // EnableGrp1
    g
}

#[test]
fn hw_timer_lifecycle_v3() {
    let mut g = v3_one_cpu();
    g.map_vtimer();
    let sgi0 = v3::GICR_SGI_BASE;
    wr(&mut g, 0, REGION_GICR, sgi0 + 0x100, 4, 1 << 27);
    wr(&mut g, 0, REGION_GICR, sgi0 + 0x41B, 1, 0xA0);
    g.set_level(0, 27, true).unwrap();
    let f = g.fill_lrs(0);
    assert_eq!((f.used, f.underflow), (1, false));
    assert_eq!(f.values[0], 0x70A0_001B_0000_001B);
    assert_eq!(f.values[1..], [0; MAX_LRS - 1]);
    assert_eq!(g.listed(0).collect::<std::vec::Vec<_>>(), [27]);
    assert_eq!(
        g.next_pending(0),
        None,
        "listed interrupts are not offered again"
    );
    // Guest acknowledges: hardware sets the LR to Active.
    g.sync_lrs(0, &[0xB0A0_001B_0000_001B]);
    assert!(g.irq(0, 27).unwrap().active);
    let f = g.fill_lrs(0);
    assert_eq!(
        f.values[0], 0xB0A0_001B_0000_001B,
        "HW LRs are never pending+active"
    );
    // Guest deactivates: state cleared, physical side deactivated too.
    g.sync_lrs(0, &[0x30A0_001B_0000_001B]);
    let t = g.irq(0, 27).unwrap();
    assert!(!t.active && !t.pending());
    assert_eq!(g.fill_lrs(0).used, 0);
}

#[test]
fn level_spi_with_eoi_maintenance_v2() {
    let mut g = gic(GicVersion::V2, 2);
    wr(&mut g, 0, D, 0x000, 4, 1);
    wr(&mut g, 0, D, 0x104, 4, 2); // enable 33
    wr(&mut g, 0, D, 0x400 + 33, 1, 0xA0);
    wr(&mut g, 0, D, 0x800 + 33, 1, 3); // 1-of-N over both CPUs
    g.set_level(0, 33, true).unwrap();
    let f = g.fill_lrs(0);
    assert_eq!(f.values[0], 0x1A08_0021);
    assert_eq!(g.fill_lrs(1).used, 0, "never listed on two vCPUs");
    assert_eq!(g.next_pending(1), None);
    // EOIed while the device still asserts: pending again, listed again.
    let f = g.on_maintenance(0, &[0x0A08_0021]);
    assert_eq!(f.values[0], 0x1A08_0021);
    g.set_level(0, 33, false).unwrap();
    let f = g.on_maintenance(0, &[0x0A08_0021]);
    assert_eq!(f.used, 0);
    // Active when synced: listed as active; vCPU 1 still cannot take it.
    g.set_level(0, 33, true).unwrap();
    g.fill_lrs(0);
    g.sync_lrs(0, &[0x2A08_0021]);
    assert_eq!(
        g.fill_lrs(0).values[0],
        0x3A08_0021,
        "line still high: pending+active"
    );
    assert_eq!(g.fill_lrs(1).used, 0);
}

#[test]
fn edge_pending_survives_sync() {
    let mut g = v3_one_cpu();
    wr(&mut g, 0, D, 0xC08, 4, 0b10 << 16); // INTID 40 edge
    wr(&mut g, 0, D, 0x104, 4, 1 << 8);
    g.pulse(0, 40).unwrap();
    let f = g.fill_lrs(0);
    assert_eq!(f.values[0], 0x5000_0000_0000_0028);
    assert!(
        !g.irq(0, 40).unwrap().pending_latch,
        "the LR owns the pending state"
    );
    g.pulse(0, 40).unwrap(); // second edge while listed
    g.sync_lrs(0, &[0x5000_0000_0000_0028]);
    assert!(g.irq(0, 40).unwrap().pending());
    let f = g.fill_lrs(0);
    assert_eq!(f.used, 1, "two edges while pending collapse into one");
    g.sync_lrs(0, &[0]);
    assert_eq!(g.fill_lrs(0).used, 0);
}

#[test]
fn underflow_priority_order_and_active_first() {
    let mut g = v3_one_cpu();
    wr(&mut g, 0, D, 0x104, 4, 0x3F);
    for (i, p) in [0x50u8, 0x40, 0x30, 0x20, 0x10, 0x60].iter().enumerate() {
        wr(&mut g, 0, D, 0x420 + i as u64, 1, (*p).into());
        g.set_level(0, 32 + i as u32, true).unwrap();
    }
    // INTID 37 (lowest priority) is active.
    wr(&mut g, 0, D, 0x304, 4, 1 << 5);
    let f = g.fill_lrs(0);
    assert_eq!((f.used, f.underflow), (4, true));
    let ids: std::vec::Vec<u32> = f.values[..4]
        .iter()
        .map(|v| Lr::decode_v3(*v).vintid)
        .collect();
    assert_eq!(ids, [37, 36, 35, 34]);
    assert_eq!(Lr::decode_v3(f.values[0]).state, LrState::PendingActive);
    // Underflow maintenance after the guest handled everything listed.
    for i in 32..38 {
        if i >= 34 {
            g.set_level(0, i, false).unwrap();
        }
    }
    let f = g.on_maintenance(0, &[0; 4]);
    let ids: std::vec::Vec<u32> = f.values[..f.used]
        .iter()
        .map(|v| Lr::decode_v3(*v).vintid)
        .collect();
    assert_eq!((ids.as_slice(), f.underflow), ([33, 32].as_slice(), false));
}

#[test]
fn v2_sgi_sources_listed_one_at_a_time() {
    let mut g = gic(GicVersion::V2, 2);
    wr(&mut g, 0, D, 0x000, 4, 1);
    wr(&mut g, 1, D, 0x100, 4, 1 << 3);
    g.send_sgi(0, 0b10, 3);
    g.send_sgi(1, 0b10, 3);
    let f = g.fill_lrs(1);
    assert_eq!((f.used, f.values[0]), (1, 0x1000_0003));
    assert_eq!(g.irq(1, 3).unwrap().sgi_sources, 0b10);
    g.sync_lrs(1, &[0x2000_0003]); // acked
    assert_eq!(
        g.fill_lrs(1).values[0],
        0x2000_0003,
        "active instance keeps CPUID 0"
    );
    g.sync_lrs(1, &[0]); // EOIed
    assert_eq!(
        g.fill_lrs(1).values[0],
        0x1000_0403,
        "then the one from CPU 1"
    );
    g.sync_lrs(1, &[0x1000_0403]); // still pending at exit
    assert_eq!(g.irq(1, 3).unwrap().sgi_sources, 0b10);
}

#[test]
fn fill_is_idempotent_and_sync_is_robust() {
    let mut g = v3_one_cpu();
    wr(&mut g, 0, D, 0x104, 4, 3);
    g.set_level(0, 32, true).unwrap();
    wr(&mut g, 0, D, 0xC08, 4, 0b1000);
    g.pulse(0, 33).unwrap();
    let a = g.fill_lrs(0);
    let b = g.fill_lrs(0);
    assert_eq!(a, b);
    // Fewer values than listed: the rest count as unchanged.
    g.sync_lrs(0, &[]);
    assert_eq!(g.fill_lrs(0), a);
    // Garbage from hardware only influences state, never identity.
    g.sync_lrs(0, &[u64::MAX, u64::MAX]);
    assert!(g.irq(0, 32).unwrap().active && g.irq(0, 33).unwrap().active);
    assert_eq!(g.fill_lrs(0).used, 2);
    // Out-of-range vCPUs are ignored.
    g.sync_lrs(5, &[0]);
    assert_eq!(g.fill_lrs(5).used, 0);
    assert_eq!(g.listed(5).count(), 0);
}

#[test]
fn distributor_disable_keeps_active_listed() {
    let mut g = v3_one_cpu();
    wr(&mut g, 0, D, 0x104, 4, 1);
    g.set_level(0, 32, true).unwrap();
    g.fill_lrs(0);
    g.sync_lrs(0, &[0x9000_0000_0000_0020]); // active
    wr(&mut g, 0, D, 0x000, 4, 0);
    let f = g.fill_lrs(0);
    assert_eq!(
        f.values[0], 0x9000_0200_0000_0020,
        "active (level: EOI), no longer pending"
    );
}
