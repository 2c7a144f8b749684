use super::*;

const RAM: u64 = 0x4000_0000;
const NEG: fn(i32) -> Option<u64> = |c| Some(c as i64 as u64);

fn psci() -> Psci {
    Psci::new(2, RAM, 0x1000_0000)
}

fn call(p: &mut Psci, caller: usize, x: [u64; 4]) -> PsciReply {
    p.handle(caller, 0, x)
}

#[test]
fn versions_and_migrate_type() {
    let mut p = psci();
    assert_eq!(call(&mut p, 0, [0x8400_0000, 0, 0, 0]).x0, Some(0x1_0000));
    assert_eq!(call(&mut p, 0, [0x8000_0000, 0, 0, 0]).x0, Some(0x1_0001));
    assert_eq!(call(&mut p, 0, [0x8400_0006, 0, 0, 0]).x0, Some(2));
    // The constants from the smccc crate match DEN 0022 table 6.
    assert_eq!(
        (PSCI_CPU_ON_64, PSCI_SYSTEM_RESET, PSCI_FEATURES),
        (0xC400_0003, 0x8400_0009, 0x8400_000A)
    );
}

#[test]
fn unknown_and_unimplemented_ids_are_not_supported() {
    let mut p = psci();
    for fid in [
        0x8400_0005u64,
        0xC400_0007,
        0x8400_0012,
        0x8400_00FF,
        0x0400_0000,
        0xC200_0000,
        0xFFFF_FFFF,
        0x8000_8000,
    ] {
        let r = call(&mut p, 0, [fid, 0, 0, 0]);
        assert_eq!(
            r,
            PsciReply {
                x0: NEG(-1),
                action: PsciAction::None
            },
            "fid {fid:#x}"
        );
    }
    // SMCCC_ARCH_FEATURES for a workaround: none offered.
    assert_eq!(
        call(&mut p, 0, [0x8000_0001, 0x8000_8000, 0, 0]).x0,
        NEG(-1)
    );
}

#[test]
fn nonzero_immediate_is_not_a_call() {
    let mut p = psci();
    let r = p.handle(0, 1, [0x8400_0009, 0, 0, 0]);
    assert_eq!(
        r,
        PsciReply {
            x0: NEG(-1),
            action: PsciAction::None
        }
    );
}

#[test]
fn features() {
    let mut p = psci();
    for fid in [
        0x8400_0000u64,
        0x8400_0002,
        0xC400_0003,
        0x8400_0003,
        0xC400_0004,
        0x8400_0008,
        0x8400_0009,
        0x8400_000A,
        0x8000_0000,
        0xC400_0001,
    ] {
        assert_eq!(
            call(&mut p, 0, [0x8400_000A, fid, 0, 0]).x0,
            Some(0),
            "fid {fid:#x}"
        );
    }
    for fid in [0x8400_0005u64, 0x8400_0012, 0x1234] {
        assert_eq!(
            call(&mut p, 0, [0x8400_000A, fid, 0, 0]).x0,
            NEG(-1),
            "fid {fid:#x}"
        );
    }
}

#[test]
fn cpu_on_powers_on_once() {
    let mut p = psci();
    let r = call(
        &mut p,
        0,
        [0xC400_0003, 1, RAM + 0x8_0000, 0xDEAD_BEEF_0000],
    );
    assert_eq!(
        r,
        PsciReply {
            x0: Some(0),
            action: PsciAction::PowerOn {
                vcpu: 1,
                entry: RAM + 0x8_0000,
                context_id: 0xDEAD_BEEF_0000
            }
        }
    );
    assert!(p.is_on(1));
    assert_eq!(
        call(&mut p, 0, [0xC400_0003, 1, RAM, 0]),
        PsciReply {
            x0: NEG(-4),
            action: PsciAction::None
        }
    );
    assert_eq!(call(&mut p, 1, [0xC400_0003, 0, RAM, 0]).x0, NEG(-4));
}

#[test]
fn cpu_on_bad_targets_and_entries() {
    let mut p = psci();
    // Non-existent vCPU, another cluster, stray high bits.
    for t in [2u64, 0xFF, 0x100, 0x1_0000_0001, 1 << 31] {
        assert_eq!(
            call(&mut p, 0, [0xC400_0003, t, RAM, 0]).x0,
            NEG(-2),
            "target {t:#x}"
        );
    }
    for e in [0u64, RAM - 4, RAM + 0x1000_0000, RAM + 2, u64::MAX] {
        assert_eq!(
            call(&mut p, 0, [0xC400_0003, 1, e, 0]).x0,
            NEG(-9),
            "entry {e:#x}"
        );
    }
    assert!(!p.is_on(1));
}

#[test]
fn cpu_on_32_uses_w_registers() {
    let mut p = psci();
    let r = call(
        &mut p,
        0,
        [
            0xFFFF_FFFF_8400_0003,
            0xFFFF_FFFF_0000_0001,
            0x1_4000_0000,
            0xAAAA_0000_0000_0007,
        ],
    );
    assert_eq!(
        r.action,
        PsciAction::PowerOn {
            vcpu: 1,
            entry: RAM,
            context_id: 7
        }
    );
}

#[test]
fn cpu_off_and_affinity_info() {
    let mut p = psci();
    assert_eq!(call(&mut p, 0, [0xC400_0004, 1, 0, 0]).x0, Some(1));
    assert_eq!(call(&mut p, 0, [0xC400_0004, 0, 0, 0]).x0, Some(0));
    call(&mut p, 0, [0xC400_0003, 1, RAM, 0]);
    assert_eq!(call(&mut p, 0, [0x8400_0004, 1, 0, 0]).x0, Some(0));
    let r = call(&mut p, 1, [0x8400_0002, 0, 0, 0]);
    assert_eq!(
        r,
        PsciReply {
            x0: None,
            action: PsciAction::CpuOff { vcpu: 1 }
        }
    );
    assert_eq!(call(&mut p, 0, [0xC400_0004, 1, 0, 0]).x0, Some(1));
    // Level 1: the one cluster is on because vCPU 0 is.
    assert_eq!(call(&mut p, 0, [0xC400_0004, 0x7, 1, 0]).x0, Some(0));
    assert_eq!(
        call(&mut p, 0, [0xC400_0004, 0x1_0000_0000, 3, 0]).x0,
        NEG(-2)
    );
    assert_eq!(call(&mut p, 0, [0xC400_0004, 5, 0, 0]).x0, NEG(-2));
    assert_eq!(call(&mut p, 0, [0xC400_0004, 0, 4, 0]).x0, NEG(-2));
    // Powered off again, so CPU_ON works again.
    assert_eq!(call(&mut p, 0, [0xC400_0003, 1, RAM, 0]).x0, Some(0));
}

#[test]
fn system_calls_and_suspend() {
    let mut p = psci();
    assert_eq!(
        call(&mut p, 0, [0x8400_0008, 0, 0, 0]),
        PsciReply {
            x0: None,
            action: PsciAction::SystemOff
        }
    );
    assert_eq!(
        call(&mut p, 0, [0x8400_0009, 0, 0, 0]),
        PsciReply {
            x0: None,
            action: PsciAction::Reset
        }
    );
    assert_eq!(
        call(&mut p, 0, [0xC400_0001, 0x1_0000, RAM, 0]),
        PsciReply {
            x0: Some(0),
            action: PsciAction::WaitForInterrupt
        }
    );
    call(&mut p, 0, [0xC400_0003, 1, RAM, 0]);
    p.reset();
    assert!(p.is_on(0) && !p.is_on(1));
    p.set_off(99);
    assert!(!p.is_on(99));
}

#[test]
fn conduit_pc_advance() {
    assert_eq!(Conduit::Hvc.pc_advance(), 0);
    assert_eq!(Conduit::Smc.pc_advance(), 4);
}
