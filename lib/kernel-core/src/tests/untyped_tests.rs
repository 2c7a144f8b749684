use super::*;
use crate::cnode::{CopyOp, copy_cap};
use crate::cspace::LookupFault;
use crate::error::SyscallError;
use crate::revoke::revoke;
use ObjectType::*;
use axolotl_abi::Rights;

fn free_index(s: SlotRef) -> u64 {
    match s.cap() {
        Cap::Untyped { free_index, .. } => free_index,
        c => panic!("{c:?}"),
    }
}

#[test]
fn watermark_moves_forward_with_alignment() {
    let mut w = World::new(8, 16);
    let b = w.ut_base;
    let r = w.retype(w.ut, Endpoint, 0, 1, 2).unwrap();
    assert_eq!((r.base, r.size_bits, r.count, r.reset), (b, 4, 2, true));
    assert_eq!(r.objects().collect::<Vec<_>>(), vec![b, b + 16]);
    assert_eq!(free_index(w.ut), 32);
    let r = w.retype(w.ut, Endpoint, 0, 3, 1).unwrap();
    assert_eq!((r.base, r.reset), (b + 32, false));
    // A 32-byte notification after 48 bytes is aligned up to 64.
    let r = w.retype(w.ut, Notification, 0, 4, 1).unwrap();
    assert_eq!(r.base, b + 64);
    assert_eq!(free_index(w.ut), 96);
    // A 64-slot CNode (2 KiB) goes to the next 2 KiB boundary.
    let r = w.retype(w.ut, CNode, 6, 5, 1).unwrap();
    assert_eq!(r.base, b + 2048);
    assert_eq!(free_index(w.ut), 4096);
    for (i, (ty, addr, bits)) in w.k.inits.iter().enumerate() {
        assert_eq!(addr % (1 << bits), 0, "object {i} {ty:?} misaligned");
    }
    assert_eq!(
        w.s(5).cap(),
        Cap::CNode {
            ptr: b + 2048,
            radix_bits: 6,
            guard_bits: 0,
            guard: 0
        }
    );
    assert_eq!(
        w.s(1).cap(),
        Cap::Endpoint {
            ptr: b,
            badge: 0,
            rights: Rights::ALL
        }
    );
    // New caps are revocable children of the untyped.
    for i in 1..=5 {
        assert!(mdb::is_mdb_parent_of(w.ut, w.s(i)), "slot {i}");
        assert!(w.s(i).mdb().revocable);
    }
    check_mdb(&slots(w.root));
}

#[test]
fn untyped_resets_only_when_childless() {
    let mut w = World::new(8, 16);
    w.retype(w.ut, SmallFrame, 0, 1, 3).unwrap();
    assert_eq!(free_index(w.ut), 3 * 4096);
    assert!(w.k.resets.is_empty());
    // Children exist: no reset, the watermark keeps going.
    let r = w.retype(w.ut, SmallFrame, 0, 4, 1).unwrap();
    assert!(!r.reset);
    assert_eq!(r.base, w.ut_base + 3 * 4096);
    revoke(w.ut, &mut w.k).unwrap();
    assert!(!mdb::has_children(w.ut));
    for i in 1..=4 {
        assert!(w.s(i).cap().is_null());
    }
    // Freed memory is reused from the start after clearing what was used.
    let r = w.retype(w.ut, LargeFrame, 0, 1, 1).unwrap_err();
    assert_eq!(r, SyscallError::NotEnoughMemory { available: 1 << 16 });
    assert!(w.k.resets.is_empty(), "failed retype must not reset");
    let r = w.retype(w.ut, Tcb, 0, 1, 1).unwrap();
    assert!(r.reset);
    assert_eq!(r.base, w.ut_base);
    assert_eq!(w.k.resets, vec![(w.ut_base, 4 * 4096)]);
    assert_eq!(free_index(w.ut), 2048);
}

#[test]
fn nested_untyped_and_revoke_first() {
    let mut w = World::new(8, 16);
    w.retype(w.ut, Untyped, 12, 1, 2).unwrap();
    let child = w.s(1);
    w.retype(child, Endpoint, 0, 10, 4).unwrap();
    assert!(mdb::is_mdb_parent_of(child, w.s(10)));
    assert!(mdb::is_mdb_parent_of(w.ut, w.s(10)));
    assert!(!mdb::is_mdb_parent_of(w.s(2), w.s(10)));
    // Copying an untyped with children is refused (seL4 deriveCap).
    assert_eq!(
        copy_cap(
            CopyOp::Copy {
                rights: Rights::ALL
            },
            child,
            64,
            w.s(20)
        ),
        Err(SyscallError::RevokeFirst)
    );
    copy_cap(
        CopyOp::Copy {
            rights: Rights::ALL,
        },
        w.s(2),
        64,
        w.s(21),
    )
    .unwrap();
    assert!(mdb::is_mdb_parent_of(w.s(2), w.s(21)));
    // Objects of the child untyped lie inside it.
    let Cap::Untyped { ptr, .. } = child.cap() else {
        panic!()
    };
    let Cap::Endpoint { ptr: e, .. } = w.s(10).cap() else {
        panic!()
    };
    assert!(e >= ptr && e < ptr + 4096);
    revoke(w.ut, &mut w.k).unwrap();
    for i in 1..64 {
        assert!(w.s(i).cap().is_null(), "slot {i} survived");
    }
    check_mdb(&slots(w.root));
}

#[test]
fn retype_errors_in_sel4_order() {
    let mut w = World::new(8, 12);
    let base = RetypeArgs {
        ty: Endpoint as u64,
        user_size_bits: 0,
        root: w.root,
        node_index: 0,
        node_depth: 0,
        node_offset: 1,
        node_window: 1,
    };
    let ut = w.ut;
    let run = |f: &dyn Fn(&mut RetypeArgs)| {
        let mut a = base;
        f(&mut a);
        crate::untyped::retype(ut, &a, &mut Kernel::default()).map(|_| ())
    };
    use SyscallError as E;
    assert_eq!(run(&|a| a.ty = 10), Err(E::InvalidArgument { arg: 0 }));
    assert_eq!(
        run(&|a| a.ty = u64::MAX),
        Err(E::InvalidArgument { arg: 0 })
    );
    let range = Err(E::RangeError { min: 0, max: 47 });
    assert_eq!(run(&|a| a.user_size_bits = 64), range);
    assert_eq!(
        run(&|a| {
            a.ty = Untyped as u64;
            a.user_size_bits = 48
        }),
        range
    );
    assert_eq!(
        run(&|a| a.ty = CNode as u64),
        Err(E::InvalidArgument { arg: 1 })
    );
    assert_eq!(
        run(&|a| {
            a.ty = CNode as u64;
            a.user_size_bits = 25
        }),
        Err(E::RangeError { min: 1, max: 24 })
    );
    assert_eq!(
        run(&|a| {
            a.ty = Untyped as u64;
            a.user_size_bits = 3
        }),
        Err(E::InvalidArgument { arg: 1 })
    );
    // Type/size errors come before destination errors.
    assert_eq!(
        run(&|a| {
            a.ty = 99;
            a.node_window = 0
        }),
        Err(E::InvalidArgument { arg: 0 })
    );
    let not_cnode = Cap::Endpoint {
        ptr: 0x1000,
        badge: 0,
        rights: Rights::ALL,
    };
    assert_eq!(
        run(&|a| a.root = not_cnode),
        Err(E::FailedLookup {
            source: false,
            fault: LookupFault::MissingCapability { bits_left: 0 }
        })
    );
    // Index into the root: slot 0 holds the untyped, not a CNode.
    assert_eq!(
        run(&|a| a.node_depth = 64),
        Err(E::FailedLookup {
            source: false,
            fault: LookupFault::MissingCapability { bits_left: 64 }
        })
    );
    assert_eq!(
        run(&|a| a.node_depth = 65),
        Err(E::RangeError { min: 1, max: 64 })
    );
    assert_eq!(
        run(&|a| a.node_offset = 256),
        Err(E::RangeError { min: 0, max: 255 })
    );
    assert_eq!(
        run(&|a| a.node_window = 0),
        Err(E::RangeError { min: 1, max: 256 })
    );
    assert_eq!(
        run(&|a| a.node_window = 257),
        Err(E::RangeError { min: 1, max: 256 })
    );
    assert_eq!(
        run(&|a| {
            a.node_offset = 250;
            a.node_window = 10
        }),
        Err(E::RangeError { min: 1, max: 6 })
    );
    assert_eq!(run(&|a| a.node_offset = 0), Err(E::DeleteFirst));
    // Range errors come before occupancy.
    assert_eq!(
        run(&|a| {
            a.node_offset = 0;
            a.node_window = 300
        }),
        Err(E::RangeError { min: 1, max: 256 })
    );
    assert_eq!(
        run(&|a| {
            a.ty = SmallFrame as u64;
            a.node_window = 2
        }),
        Err(E::NotEnoughMemory { available: 4096 })
    );
    // Occupancy comes before memory.
    assert_eq!(
        run(&|a| {
            a.ty = SmallFrame as u64;
            a.node_offset = 0;
            a.node_window = 2
        }),
        Err(E::DeleteFirst)
    );
    assert_eq!(run(&|a| a.node_window = 255), Ok(()));
    // Nothing above changed the untyped except the last success.
    assert_eq!(free_index(w.ut), 255 * 16);
    assert_eq!(
        w.retype(w.s(1), Endpoint, 0, 0, 1),
        Err(E::IllegalOperation),
        "retype of a non-untyped"
    );
}

#[test]
fn device_untyped_only_makes_frames_and_untypeds() {
    let mut w = World::new(8, 16);
    let dev = w.s(100);
    // SAFETY: device memory is never touched by the test kernel; the buffer backs it anyway.
    unsafe {
        mdb::insert_root(
            dev,
            Cap::Untyped {
                ptr: w.ut_base,
                size_bits: 16,
                free_index: 0,
                is_device: true,
            },
        )
    };
    for ty in [Tcb, Endpoint, Notification, CNode, PageTable, VSpace, Vcpu] {
        assert_eq!(
            w.retype(dev, ty, 4, 1, 1),
            Err(SyscallError::InvalidArgument { arg: 1 }),
            "{ty:?}"
        );
    }
    w.retype(dev, SmallFrame, 0, 1, 1).unwrap();
    assert!(matches!(
        w.s(1).cap(),
        Cap::Frame {
            is_device: true,
            ..
        }
    ));
    w.retype(dev, Untyped, 12, 2, 1).unwrap();
    assert!(matches!(
        w.s(2).cap(),
        Cap::Untyped {
            is_device: true,
            ..
        }
    ));
    w.retype(w.s(2), SmallFrame, 0, 3, 1).unwrap();
    assert!(matches!(
        w.s(3).cap(),
        Cap::Frame {
            is_device: true,
            ..
        }
    ));
}

#[test]
fn retyped_cnode_is_empty_and_usable() {
    let mut w = World::new(8, 16);
    // Dirty the memory first, then reuse it for a CNode: its slots must come out empty.
    w.retype(w.ut, SmallFrame, 0, 1, 1).unwrap();
    // SAFETY: the frame lies in the test untyped buffer.
    unsafe { std::ptr::write_bytes(w.ut_base as *mut u8, 0xff, 4096) };
    revoke(w.ut, &mut w.k).unwrap();
    w.k.no_clear = true;
    w.retype(w.ut, CNode, 4, 1, 1).unwrap();
    assert_eq!(w.k.resets.len(), 1);
    let c = w.s(1).cap();
    for s in slots(c) {
        assert!(s.cap().is_null());
        assert_eq!(s.mdb(), MdbNode::NULL);
    }
    // Retype into the new CNode through a two-level path: root slot 1, then index 7.
    let args = RetypeArgs {
        ty: Endpoint as u64,
        user_size_bits: 0,
        root: w.root,
        node_index: 1,
        node_depth: 64,
        node_offset: 7,
        node_window: 2,
    };
    crate::untyped::retype(w.ut, &args, &mut w.k).unwrap();
    assert!(matches!(slot(c, 7).cap(), Cap::Endpoint { .. }));
    assert!(matches!(slot(c, 8).cap(), Cap::Endpoint { .. }));
    let mut all = slots(w.root);
    all.extend(slots(c));
    check_mdb(&all);
}
