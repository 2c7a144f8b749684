//! Random guest input never panics and keeps the model's invariants.
extern crate std;

use proptest::prelude::*;
use std::vec::Vec;

use crate::bus::{Access, Bus, MmioDevice, MmioOutcome};
use crate::pl011::Pl011;
use crate::vgic::{
    GicVersion, MAX_SPIS, PRIORITY_MASK, REGION_GICD, REGION_GICR, Vgic, VgicConfig,
};
use crate::{MAX_VCPUS, mmio};

#[derive(Debug, Clone)]
enum Op {
    Read {
        vcpu: usize,
        region: u8,
        offset: u64,
        size: u8,
    },
    Write {
        vcpu: usize,
        region: u8,
        offset: u64,
        size: u8,
        value: u64,
    },
    Level {
        vcpu: usize,
        intid: u32,
        level: bool,
    },
    Sgi1r {
        vcpu: usize,
        value: u64,
    },
    Fill {
        vcpu: usize,
    },
    Sync {
        vcpu: usize,
        values: Vec<u64>,
    },
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..0x1000,
        0x6000u64..0x8000,
        0xFF00u64..0x1_0000,
        0u64..0x4_0000,
        0x1_0000u64..0x1_1000,
        any::<u64>(),
    ]
}

fn size() -> impl Strategy<Value = u8> {
    prop_oneof![Just(1u8), Just(2), Just(4), Just(8), 0u8..=9]
}

fn op() -> impl Strategy<Value = Op> {
    let vcpu = 0usize..MAX_VCPUS + 2;
    prop_oneof![
        1 => (vcpu.clone(), 0u8..3, offset(), size()).prop_map(|(vcpu, region, offset, size)| Op::Read { vcpu, region, offset, size }),
        4 => (vcpu.clone(), 0u8..3, offset(), size(), any::<u64>())
            .prop_map(|(vcpu, region, offset, size, value)| Op::Write { vcpu, region, offset, size, value }),
        1 => (vcpu.clone(), prop_oneof![0u32..128, any::<u32>()], any::<bool>())
            .prop_map(|(vcpu, intid, level)| Op::Level { vcpu, intid, level }),
        1 => (vcpu.clone(), any::<u64>()).prop_map(|(vcpu, value)| Op::Sgi1r { vcpu, value }),
        1 => vcpu.clone().prop_map(|vcpu| Op::Fill { vcpu }),
        1 => (vcpu, proptest::collection::vec(any::<u64>(), 0..6)).prop_map(|(vcpu, values)| Op::Sync { vcpu, values }),
    ]
}

fn check_invariants(g: &Vgic) {
    let cfg = *g.config();
    let cpus = ((1u32 << cfg.nr_vcpus) - 1) as u8;
    assert_eq!(g.ctlr & !3, 0);
    for v in 0..cfg.nr_vcpus {
        for intid in 0..g.nr_irqs() {
            let q = g.irq(v, intid).unwrap();
            assert_eq!(q.priority & !PRIORITY_MASK, 0);
            assert_eq!(q.targets & !cpus, 0);
            assert_eq!(q.route & !0xFF_00FF_FFFF, 0);
            if intid < 16 {
                assert!(q.edge, "SGIs are edge");
                match cfg.version {
                    GicVersion::V2 => {
                        assert_eq!(q.pending_latch, q.sgi_sources != 0);
                        assert_eq!(q.sgi_sources & !cpus, 0);
                    }
                    GicVersion::V3 => assert_eq!(q.sgi_sources, 0),
                }
            }
            if let Some(owner) = q.listed_on {
                assert!((owner as usize) < cfg.nr_vcpus);
                assert!(g.listed(owner as usize).any(|i| i == intid));
            }
        }
        let listed: Vec<u32> = g.listed(v).collect();
        assert!(listed.len() <= cfg.nr_lrs);
        let mut dedup = listed.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), listed.len(), "an interrupt is listed once");
    }
    // Unimplemented SPIs and vCPUs never change.
    assert!(
        g.spis[cfg.nr_spis..MAX_SPIS]
            .iter()
            .all(|q| *q == Default::default())
    );
    assert!(
        g.private[cfg.nr_vcpus..]
            .iter()
            .flatten()
            .all(|q| *q == Default::default())
    );
    if let Some((intid, prio)) = (0..cfg.nr_vcpus).find_map(|v| g.next_pending(v)) {
        assert!(intid < g.nr_irqs());
        assert_eq!(prio & !PRIORITY_MASK, 0);
    }
}

fn run(version: GicVersion, nr_vcpus: usize, nr_lrs: usize, ops: &[Op]) {
    let mut g = Vgic::new(VgicConfig {
        version,
        nr_vcpus,
        nr_spis: 64,
        nr_lrs,
    })
    .unwrap();
    for op in ops {
        match op.clone() {
            Op::Read {
                vcpu,
                region,
                offset,
                size,
            } => {
                let v = g
                    .read(Access {
                        vcpu,
                        region,
                        offset,
                        size,
                    })
                    .unwrap();
                assert_eq!(
                    v & !mmio::size_mask(size.min(8)),
                    0,
                    "read wider than access"
                );
            }
            Op::Write {
                vcpu,
                region,
                offset,
                size,
                value,
            } => g
                .write(
                    Access {
                        vcpu,
                        region,
                        offset,
                        size,
                    },
                    value,
                )
                .unwrap(),
            Op::Level { vcpu, intid, level } => {
                let _ = g.set_level(vcpu, intid, level);
            }
            Op::Sgi1r { vcpu, value } => g.write_sgi1r(vcpu, value),
            Op::Fill { vcpu } => {
                let f = g.fill_lrs(vcpu);
                assert!(f.used <= nr_lrs);
                assert!(f.values[f.used..].iter().all(|v| *v == 0));
                if version == GicVersion::V2 {
                    assert!(f.values.iter().all(|v| *v >> 32 == 0));
                }
            }
            Op::Sync { vcpu, values } => g.sync_lrs(vcpu, &values),
        }
        check_invariants(&g);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn vgic_v2_random_input(nr_vcpus in 1usize..=MAX_VCPUS, nr_lrs in 1usize..5, ops in proptest::collection::vec(op(), 1..64)) {
        run(GicVersion::V2, nr_vcpus, nr_lrs, &ops);
    }

    #[test]
    fn vgic_v3_random_input(nr_vcpus in 1usize..=MAX_VCPUS, nr_lrs in 1usize..5, ops in proptest::collection::vec(op(), 1..64)) {
        run(GicVersion::V3, nr_vcpus, nr_lrs, &ops);
    }

    /// Whole exits: any ESR/IPA/register value through decode and a bus with a
    /// PL011 and a GIC never panics, and loads never set XZR.
    #[test]
    fn exits_never_panic(exits in proptest::collection::vec((any::<u32>(), prop_oneof![0x0800_0000u64..0x0810_0000, 0x0900_0000u64..0x0900_2000, any::<u64>()], any::<u64>()), 1..32)) {
        let mut out = Vec::new();
        let mut uart = Pl011::new(|b: u8| out.push(b));
        let mut gic = Vgic::new(VgicConfig { version: GicVersion::V3, nr_vcpus: 2, nr_spis: 64, nr_lrs: 4 }).unwrap();
        let mut bus: Bus<'_, 4> = Bus::new();
        let u = bus.add_device(&mut uart).unwrap();
        let gid = bus.add_device(&mut gic).unwrap();
        bus.map(u, 0, 0x0900_0000, 0x1000).unwrap();
        bus.map(gid, REGION_GICD, 0x0800_0000, 0x1_0000).unwrap();
        bus.map(gid, REGION_GICR, 0x080A_0000, 0x4_0000).unwrap();
        for (iss, ipa, reg) in exits {
            // Force a data-abort EC so most inputs get past the first check.
            let esr = (0x24u64 << 26) | (1 << 25) | u64::from(iss & 0x01FF_FFFF);
            match mmio::decode(esr, ipa) {
                Ok(acc) => match bus.dispatch(1, &acc, reg) {
                    MmioOutcome::Load { reg, value } => {
                        prop_assert!(reg < 31);
                        if !acc.sixty_four { prop_assert!(value >> 32 == 0); }
                    }
                    MmioOutcome::Done | MmioOutcome::ExternalAbort => {}
                },
                Err(e) => { let _ = e.action(); }
            }
        }
    }
}
