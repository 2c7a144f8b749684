extern crate std;

use std::vec::Vec;

use axolotl_boot_plan::model::{BootPlan, Pd, Resilience, RestartPolicy, Vm};
use axolotl_control_proto::name;

use super::*;
use crate::{Cause, HoldReason};

const DRIVER: u8 = 0;
const PARENT: u8 = 1;
const CHILD: u8 = 2;
const MONITOR: u8 = 3;
const CONTROL: u8 = 4;

fn plan() -> BootPlan {
    let mut plan = BootPlan::default();
    for (i, n) in ["serial_driver", "parent", "child", "monitor", "control"]
        .iter()
        .enumerate()
    {
        let mut pd = Pd {
            name: (*n).try_into().unwrap(),
            resilience: Resilience {
                restart: RestartPolicy::OnFailure,
                restart_limit: 3,
                restart_window_ms: 1000,
                heartbeat_ms: (i as u8 == DRIVER).then_some(250),
                ..Default::default()
            },
            ..Default::default()
        };
        if i as u8 == CHILD {
            pd.parent = Some(PARENT);
        }
        if i as u8 == PARENT {
            pd.vm = Some(0);
        }
        pd.totals.small_frames = 3;
        plan.pds.push(pd).unwrap();
    }
    plan.monitor = Some(MONITOR);
    for vm in ["guest", "orphan"] {
        plan.vms
            .push(Vm {
                name: vm.try_into().unwrap(),
                ..Default::default()
            })
            .unwrap();
    }
    plan
}

fn req_restart(pd: &str) -> Request {
    Request::Restart {
        pd: name(pd).unwrap(),
        if_generation: None,
    }
}

#[test]
fn every_request_needs_its_grant() {
    let plan = plan();
    let inject = Request::Inject {
        pd: name("serial_driver").unwrap(),
        kind: FaultKind::Crash,
        at: None,
    };
    let vm = Request::Vm {
        name: name("guest").unwrap(),
        op: VmOp::Reboot,
    };
    let cases = [
        (Request::Status { index: 0 }, Grant::STATUS),
        (Request::Log { seq: 0 }, Grant::STATUS),
        (req_restart("serial_driver"), Grant::MANAGE),
        (
            Request::Hold {
                pd: name("serial_driver").unwrap(),
            },
            Grant::MANAGE,
        ),
        (
            Request::Release {
                pd: name("serial_driver").unwrap(),
            },
            Grant::MANAGE,
        ),
        (vm, Grant::VM),
        (inject.clone(), Grant::INJECT),
    ];
    for (req, needs) in cases {
        let all_but = Grant::from_bits(0xf & !needs.bits());
        assert_eq!(check(&plan, CONTROL, all_but, &req), Err(Error::NotGranted));
        assert!(check(&plan, CONTROL, needs, &req).is_ok(), "{req:?}");
    }
    // A PD without a `control` attribute (no bits) may ask nothing.
    for req in [
        Request::Status { index: 0 },
        Request::Log { seq: 0 },
        req_restart("serial_driver"),
        inject.clone(),
    ] {
        assert_eq!(
            check(&plan, DRIVER, Grant::from_bits(0), &req),
            Err(Error::NotGranted)
        );
    }
    // The default grant does not include injection.
    assert_eq!(
        check(&plan, CONTROL, Grant::DEFAULT, &inject),
        Err(Error::NotGranted)
    );
    assert_eq!(
        check(&plan, CONTROL, Grant::DEFAULT.union(Grant::INJECT), &inject),
        Ok(Checked::Inject {
            pd: DRIVER,
            kind: FaultKind::Crash,
            at: None,
        })
    );
    assert_eq!(Grant::from_bits(0xff), Grant::from_bits(0xf));
}

#[test]
fn only_managed_pds_can_be_acted_on() {
    let plan = plan();
    let g = Grant::from_bits(0xf);
    assert_eq!(
        check(&plan, CONTROL, g, &req_restart("serial_driver")),
        Ok(Checked::Command {
            pd: DRIVER,
            command: Command::Restart,
            if_generation: None,
        })
    );
    assert_eq!(
        check(
            &plan,
            CONTROL,
            g,
            &Request::Restart {
                pd: name("serial_driver").unwrap(),
                if_generation: Some(3),
            }
        ),
        Ok(Checked::Command {
            pd: DRIVER,
            command: Command::Restart,
            if_generation: Some(3),
        })
    );
    assert_eq!(
        check(&plan, CONTROL, g, &req_restart("parent")),
        Ok(Checked::Command {
            pd: PARENT,
            command: Command::Restart,
            if_generation: None,
        })
    );
    for pd in ["child", "monitor", "control"] {
        assert_eq!(
            check(&plan, CONTROL, g, &req_restart(pd)),
            Err(Error::NotManaged),
            "{pd}"
        );
        let inject = Request::Inject {
            pd: name(pd).unwrap(),
            kind: FaultKind::Hang,
            at: None,
        };
        assert_eq!(check(&plan, CONTROL, g, &inject), Err(Error::NotManaged));
    }
    assert_eq!(
        check(&plan, CONTROL, g, &req_restart("nobody")),
        Err(Error::UnknownName)
    );
    assert_eq!(
        check(
            &plan,
            CONTROL,
            g,
            &Request::Vm {
                name: name("serial_driver").unwrap(),
                op: VmOp::Stop
            }
        ),
        Err(Error::UnknownName)
    );
    let vm = |vm: &str| Request::Vm {
        name: name(vm).unwrap(),
        op: VmOp::Reboot,
    };
    assert_eq!(
        check(&plan, CONTROL, g, &vm("guest")),
        Ok(Checked::Vm {
            vm: 0,
            pd: PARENT,
            op: VmOp::Reboot
        })
    );
    // A VM no PD runs (a plan the builder would refuse) is nothing to act on.
    assert_eq!(
        check(&plan, CONTROL, g, &vm("orphan")),
        Err(Error::NotManaged)
    );
    assert_eq!(
        check(&plan, CONTROL, g, &Request::Status { index: 5 }),
        Err(Error::NoSuchIndex)
    );
    assert_eq!(
        check(&plan, CONTROL, g, &Request::Status { index: 4 }),
        Ok(Checked::Status { index: 4 })
    );
}

/// CPU time as the root task read it: the PD's own always, its guest's only for a PD that
/// runs a VM; none from a kernel that does not count it.
#[test]
fn status_rows_carry_cpu_time() {
    let plan = plan();
    let facts = Facts {
        cpu_us: Some((1_500, 70_000)),
        ..Facts::default()
    };
    let row = status(&plan, DRIVER, None, facts, 5).unwrap();
    assert_eq!((row.cpu_us, row.guest_cpu_us), (Some(1_500), None));
    let row = status(&plan, PARENT, None, facts, 5).unwrap();
    assert_eq!((row.cpu_us, row.guest_cpu_us), (Some(1_500), Some(70_000)));
    let row = status(&plan, PARENT, None, Facts::default(), 5).unwrap();
    assert_eq!((row.cpu_us, row.guest_cpu_us), (None, None));
}

#[test]
fn status_rows_say_what_the_tracker_knows() {
    let plan = plan();
    let mut t = Tracker::new(&plan.pds[0].resilience, 0);
    let row = status(&plan, DRIVER, Some(&t), Facts::default(), 5).unwrap();
    assert_eq!(row.name.as_str(), "serial_driver");
    assert_eq!(row.state, PdState::Running);
    assert_eq!((row.generation, row.restarts, row.last_cause), (0, 0, None));
    assert_eq!(row.heartbeat_ms, Some(250));
    assert_eq!(row.memory_bytes, 3 * 4096);
    assert!(row.managed);

    t.on_failure(
        100,
        Cause::VmFault {
            ip: 0x200040,
            addr: 0x7_0000_0000,
            access: crate::Access::Write,
            esr: 0,
        },
    );
    t.on_restarted(100);
    let facts = Facts {
        last_recovery_us: Some(42),
        last_heartbeat_ms: Some(90),
        cpu_us: None,
    };
    let row = status(&plan, DRIVER, Some(&t), facts, 150).unwrap();
    assert_eq!(
        (row.generation, row.restarts, row.restarts_in_window),
        (1, 1, 1)
    );
    assert_eq!(row.restart_limit, 3);
    assert!(
        row.last_cause
            .as_ref()
            .unwrap()
            .starts_with("vm-fault write at 0x700000000"),
        "{:?}",
        row.last_cause
    );
    assert_eq!(row.last_recovery_us, Some(42));
    assert_eq!(row.heartbeat_age_ms, Some(60));
    // Out of the window, the restart no longer counts against the limit.
    let row = status(&plan, DRIVER, Some(&t), facts, 1100).unwrap();
    assert_eq!(row.restarts_in_window, 0);

    t.command(200, Command::Hold).unwrap();
    let row = status(&plan, DRIVER, Some(&t), facts, 200).unwrap();
    assert_eq!(
        row.state,
        PdState::Held {
            reason: display(&HoldReason::Operator)
        }
    );
    let row = status(&plan, MONITOR, None, Facts::default(), 0).unwrap();
    assert!(!row.managed);
    assert_eq!(row.heartbeat_ms, None);
    assert!(status(&plan, 5, None, Facts::default(), 0).is_none());
}

#[test]
fn the_log_keeps_the_latest_entries_numbered() {
    let mut log = RecoveryLog::<3>::new();
    for i in 0..5u32 {
        assert_eq!(
            log.push(
                i as u64 * 10,
                "pd",
                Event::Restarted,
                i + 1,
                &"hang",
                Some(7)
            ),
            i
        );
    }
    assert_eq!(log.next_seq(), 5);
    // 0 and 1 were dropped: asking for 0 gives 2, which says so.
    let seqs: Vec<u32> = (0..6)
        .map(|s| log.at_or_after(s).map_or(u32::MAX, |e| e.seq))
        .collect();
    assert_eq!(seqs, [2, 2, 2, 3, 4, u32::MAX]);
    let e = log.at_or_after(4).unwrap();
    assert_eq!((e.at_ms, e.generation, e.cause.as_str()), (40, 5, "hang"));
}

/// The monitor's campaign, id 406: an entry of empty fields (its push half-skipped by a
/// flipped PC) went out on every read of the log. An entry naming no PD of the plan is
/// refused before it goes out (the monitor then fail-stops).
#[test]
fn a_log_entry_naming_no_pd_is_refused_before_it_goes_out() {
    let plan = plan();
    let mut log = RecoveryLog::<4>::new();
    log.push(10, "control", Event::Restarted, 1, &"hang", Some(8));
    log.push(20, "", Event::Restarted, 0, &"", None);
    log.push(30, "not_a_pd", Event::Held, 1, &"limit", None);
    assert_eq!(
        log.checked_at_or_after(0, &plan).map(|e| e.map(|e| e.seq)),
        Ok(Some(0))
    );
    assert_eq!(log.checked_at_or_after(1, &plan), Err(1));
    assert_eq!(log.checked_at_or_after(2, &plan), Err(2));
    assert_eq!(log.checked_at_or_after(3, &plan), Ok(None));
}

/// The monitor's campaign on main (ids 915, 1023): rows that disagree with the plan are
/// caught before they go out; every row `status` makes is sound.
#[test]
fn a_status_row_that_disagrees_with_the_plan_is_not_sound() {
    let plan = plan();
    for index in 0..plan.pds.len() as u8 {
        let row = status(&plan, index, None, Facts::default(), 0).unwrap();
        assert!(row_sound(&plan, &row), "{row:?}");
    }
    let good = status(&plan, DRIVER, None, Facts::default(), 0).unwrap();
    assert_eq!(good.heartbeat_ms, Some(250));
    let bad: [fn(&mut axolotl_control_proto::PdStatus); 7] = [
        |r| r.heartbeat_ms = Some(0),
        |r| r.name = "\u{18}s!".try_into().unwrap(),
        |r| r.index = 99,
        |r| r.memory_bytes += 4096,
        |r| r.managed = !r.managed,
        |r| r.vm = Some("vm".try_into().unwrap()),
        |r| r.restarts_in_window = r.restarts + 1,
    ];
    for (k, spoil) in bad.iter().enumerate() {
        let mut r = good.clone();
        spoil(&mut r);
        assert!(!row_sound(&plan, &r), "change {k} passed: {r:?}");
    }
}

/// The monitor's campaign on main, id 836: a status request answered `Done`.
#[test]
fn a_reply_of_another_kind_than_the_request_does_not_fit() {
    use axolotl_control_proto::{Error, Reply};
    let plan = plan();
    let row = status(&plan, DRIVER, None, Facts::default(), 0).unwrap();
    let pd_row = Reply::Pd {
        total: 5,
        status: row,
    };
    let status_req = Checked::Status { index: DRIVER };
    let log_req = Checked::Log { seq: 0 };
    let command = Checked::Command {
        pd: DRIVER,
        command: Command::Restart,
        if_generation: None,
    };
    assert!(reply_fits(&status_req, &pd_row));
    assert!(reply_fits(&status_req, &Reply::Error(Error::NoSuchIndex)));
    assert!(!reply_fits(&status_req, &Reply::Done));
    assert!(!reply_fits(&status_req, &Reply::Log(None)));
    assert!(!reply_fits(&status_req, &Reply::Error(Error::NotManaged)));
    assert!(reply_fits(&log_req, &Reply::Log(None)));
    assert!(!reply_fits(&log_req, &Reply::Done));
    assert!(!reply_fits(&log_req, &pd_row));
    assert!(reply_fits(&command, &Reply::Done));
    assert!(reply_fits(&command, &Reply::Error(Error::NotManaged)));
    assert!(!reply_fits(&command, &pd_row));
    assert!(!reply_fits(&command, &Reply::Log(None)));
}

#[test]
fn long_texts_are_cut_not_dropped() {
    let long: std::string::String = core::iter::repeat_n('x', 300).collect();
    assert_eq!(display(&long).len(), axolotl_control_proto::TEXT_LEN);
}

#[test]
fn command_replies() {
    assert_eq!(
        command_reply(Ok(Decision::Hold {
            reason: HoldReason::Operator
        })),
        Reply::Done
    );
    assert_eq!(
        command_reply(Err(CommandRefused::BadState)),
        Reply::Error(Error::BadState)
    );
}

#[test]
fn bit_flips_reach_every_register_and_bit() {
    let mut registers = [0u32; axolotl_abi::USER_CONTEXT_WORDS];
    let mut bits = [0u32; 64];
    for seed in 0..20_000u64 {
        let (r, b) = bit_flip_target(seed * 1_000);
        assert!(axolotl_root_service::register_name(r).is_some() && b < 64);
        registers[r as usize] += 1;
        bits[b as usize] += 1;
    }
    // Uniform: 571 expected per register, 312 per bit.
    assert!(
        registers.iter().all(|&n| (400..750).contains(&n)),
        "{registers:?}"
    );
    assert!(bits.iter().all(|&n| (200..430).contains(&n)), "{bits:?}");
}

#[test]
fn a_bit_flip_target_must_exist_and_be_for_a_bit_flip() {
    let plan = plan();
    let g = Grant::from_bits(0xf);
    let inject = |kind, register, bit| Request::Inject {
        pd: name("serial_driver").unwrap(),
        kind,
        at: Some(BitTarget { register, bit }),
    };
    assert_eq!(
        check(&plan, CONTROL, g, &inject(FaultKind::BitFlip, 34, 63)),
        Ok(Checked::Inject {
            pd: DRIVER,
            kind: FaultKind::BitFlip,
            at: BitTarget::new(34, 63),
        })
    );
    for (kind, register, bit) in [
        (FaultKind::BitFlip, 35, 0),
        (FaultKind::BitFlip, 0, 64),
        (FaultKind::BitFlip, 255, 255),
        (FaultKind::Crash, 0, 0),
        (FaultKind::WildWrite, 0, 0),
    ] {
        assert_eq!(
            check(&plan, CONTROL, g, &inject(kind, register, bit)),
            Err(Error::BadTarget),
            "{kind:?} {register} {bit}"
        );
    }
    // The grant is checked first: without it, nothing is said about the target.
    assert_eq!(
        check(
            &plan,
            CONTROL,
            Grant::DEFAULT,
            &inject(FaultKind::BitFlip, 35, 0)
        ),
        Err(Error::NotGranted)
    );
    // The root service's register numbering is the protocol's.
    for (k, r) in axolotl_control_proto::REGISTERS.iter().enumerate() {
        assert_eq!(axolotl_root_service::register_name(k as u8), Some(*r));
    }
    assert_eq!(
        axolotl_root_service::register_name(axolotl_control_proto::REGISTERS.len() as u8),
        None
    );
}

/// A plan of a server, two clients each with a rings region and a data region, a PD that
/// maps its own ring alone, and one with a peer but no dependency either way.
fn ring_plan() -> BootPlan {
    use axolotl_boot_plan::model::{Mapping, Perms, Region, Span};
    let mut plan = BootPlan::default();
    let regions = [
        ("a_rings", 0x1000, None),
        ("a_data", 0x1000, None),
        ("b_rings", 0x1000, None),
        ("lonely_rings", 0x1000, None),
        ("tiny_rings", 0x80, None),
        ("uart_rings", 0x1000, Some(0x900_0000)),
        ("c_rings", 0x1000, None),
    ];
    for (n, size, phys_addr) in regions {
        plan.regions
            .push(Region {
                name: n.try_into().unwrap(),
                size,
                page_size: 0x1000,
                phys_addr,
                prefill: 0,
            })
            .unwrap();
    }
    let rw = Perms {
        read: true,
        write: true,
        execute: false,
    };
    let r = Perms { write: false, ..rw };
    /// Its name, its mappings (region, perms) and what it depends on.
    type PdSpec<'a> = (&'a str, &'a [(u16, Perms)], &'a [u8]);
    let pds: [PdSpec; 6] = [
        (
            "server",
            &[(0, rw), (1, rw), (2, rw), (4, rw), (5, rw)],
            &[],
        ),
        ("client_a", &[(0, rw), (1, rw), (4, rw), (5, rw)], &[0]),
        ("client_b", &[(2, r), (1, rw)], &[0]),
        ("lonely", &[(3, rw)], &[]),
        ("left", &[(6, rw)], &[]),
        ("right", &[(6, rw)], &[]),
    ];
    for (n, maps, deps) in pds {
        let mappings = Span {
            start: plan.mappings.len() as u16,
            len: maps.len() as u16,
        };
        for &(region, perms) in maps {
            plan.mappings
                .push(Mapping {
                    region,
                    vaddr: 0x200_0000,
                    perms,
                    cached: true,
                })
                .unwrap();
        }
        let depends_on = Span {
            start: plan.depends.len() as u16,
            len: deps.len() as u16,
        };
        plan.depends.extend_from_slice(deps).unwrap();
        plan.pds
            .push(Pd {
                name: n.try_into().unwrap(),
                mappings,
                resilience: Resilience {
                    depends_on,
                    ..Default::default()
                },
                ..Default::default()
            })
            .unwrap();
    }
    plan
}

#[test]
fn a_ring_corruption_hits_an_index_the_pd_writes() {
    let plan = ring_plan();
    for seed in 0..200 {
        // client_a: its one ring region (a_data is no ring, tiny_rings too small, uart_rings
        // device memory); it depends on the server, so it is the client: the request tail.
        assert_eq!(
            ring_target(&plan, 1, seed),
            Ok(RingTarget {
                region: 0,
                offset: REQUEST_TAIL,
                word: RingWord::RequestTail
            })
        );
        // The server: a_rings or b_rings, whose clients depend on it: the request head.
        let t = ring_target(&plan, 0, seed).unwrap();
        assert!(t.region == 0 || t.region == 2, "{t:?}");
        assert_eq!((t.offset, t.word), (REQUEST_HEAD, RingWord::RequestHead));
        // Neither depends on the other: either index, by the seed.
        let t = ring_target(&plan, 4, seed).unwrap();
        assert_eq!(t.region, 6);
        assert_eq!(
            t.offset,
            match t.word {
                RingWord::RequestTail => REQUEST_TAIL,
                RingWord::RequestHead => REQUEST_HEAD,
            }
        );
    }
    let regions: std::collections::BTreeSet<u16> = (0..200)
        .map(|s| ring_target(&plan, 0, s).unwrap().region)
        .collect();
    assert_eq!(regions.into_iter().collect::<Vec<_>>(), [0, 2]);
    let words: std::collections::BTreeSet<u32> = (0..200)
        .map(|s| ring_target(&plan, 4, s).unwrap().offset)
        .collect();
    assert_eq!(words.len(), 2);
    // client_b maps its ring read-only; lonely shares its ring with nobody.
    assert_eq!(ring_target(&plan, 2, 0), Err(Error::NoRing));
    assert_eq!(ring_target(&plan, 3, 0), Err(Error::NoRing));
    assert_eq!(ring_target(&plan, 99, 0), Err(Error::UnknownName));
}

/// The offsets are lib/ring's: a connection's control lines, then the request queue's
/// header with its tail and head on their own lines.
#[test]
fn ring_index_offsets_are_lib_rings() {
    assert_eq!(
        core::mem::size_of::<axolotl_ring::ConnectionHeader>(),
        REQUEST_TAIL as usize
    );
    assert_eq!(core::mem::size_of::<axolotl_ring::QueueHeader>(), 128);
    assert_eq!(REQUEST_HEAD - REQUEST_TAIL, 64);
}

#[test]
fn a_restart_of_a_generation_is_done_once() {
    use super::restart_done_already as done;
    // Unconditional: always carried out.
    assert!(!done(None, 4, false));
    assert!(!done(None, 4, true));
    // Of generation 4, the PD at 4 and nothing pending: carry it out.
    assert!(!done(Some(4), 4, false));
    // Retried after it was carried out (5), or while its restart waits: done already.
    assert!(done(Some(4), 5, false));
    assert!(done(Some(4), 4, true));
    // A generation the client never saw (a lie, or older): nothing is restarted either.
    assert!(done(Some(9), 4, false));
}
