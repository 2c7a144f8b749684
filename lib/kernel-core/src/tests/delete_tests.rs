use super::*;
use crate::cnode::{CopyOp, copy_cap};
use crate::delete::{Preempted, delete};
use crate::revoke::revoke;
use ObjectType::*;
use axolotl_abi::Rights;

/// Retype one object of `ty` from the world's untyped into slot `i` of the CNode `node`.
fn make_in(w: &mut World, node: Cap, i: u64, ty: ObjectType, bits: u64) {
    let args = RetypeArgs {
        ty: ty as u64,
        user_size_bits: bits,
        root: node,
        node_index: 0,
        node_depth: 0,
        node_offset: i,
        node_window: 1,
    };
    crate::untyped::retype(w.ut, &args, &mut w.k).unwrap();
}

fn copy_to(from: SlotRef, to: SlotRef) {
    copy_cap(
        CopyOp::Copy {
            rights: Rights::ALL,
        },
        from,
        64,
        to,
    )
    .unwrap();
}

fn run_to_completion(f: &mut dyn FnMut() -> Result<(), Preempted>) -> u32 {
    let mut preemptions = 0;
    while f().is_err() {
        preemptions += 1;
        assert!(preemptions < 1_000_000);
    }
    preemptions
}

/// root[1] → CNode A; A[2] → CNode B; B[3] → CNode C; endpoints in A[0], B[0], C[0..2].
fn nested(w: &mut World) -> (Cap, Cap, Cap) {
    make_in(w, w.root, 1, CNode, 2);
    let a = w.s(1).cap();
    make_in(w, a, 2, CNode, 2);
    let b = slot(a, 2).cap();
    make_in(w, b, 3, CNode, 1);
    let c = slot(b, 3).cap();
    make_in(w, a, 0, Endpoint, 0);
    make_in(w, b, 0, Endpoint, 0);
    make_in(w, c, 0, Endpoint, 0);
    copy_to(slot(c, 0), slot(c, 1));
    (a, b, c)
}

fn all_slots(w: &World, cs: &[Cap]) -> Vec<SlotRef> {
    let mut v = slots(w.root);
    for c in cs {
        v.extend(slots(*c));
    }
    v
}

#[test]
fn deleting_last_cnode_cap_empties_nested_cnodes() {
    let mut w = World::new(8, 16);
    let (a, b, c) = nested(&mut w);
    check_mdb(&all_slots(&w, &[a, b, c]));
    delete(w.s(1), &mut w.k).unwrap();
    for s in all_slots(&w, &[a, b, c]).into_iter().skip(1) {
        assert!(s.cap().is_null(), "{s:?} survived");
        assert_eq!(s.mdb(), MdbNode::NULL);
    }
    // The three endpoints were finalised, each once as final (c's copy first, not final).
    let eps: Vec<bool> =
        w.k.finalised
            .iter()
            .filter(|f| matches!(f.0, Cap::Endpoint { .. }))
            .map(|f| f.1)
            .collect();
    assert_eq!(eps, vec![false, true, true, true]);
    assert!(!mdb::has_children(w.ut));
    check_mdb(&slots(w.root));
}

#[test]
fn a_non_final_cnode_cap_deletes_nothing_inside() {
    let mut w = World::new(8, 16);
    let (a, b, c) = nested(&mut w);
    copy_to(w.s(1), w.s(9));
    delete(w.s(1), &mut w.k).unwrap();
    assert!(!slot(a, 0).cap().is_null() && !slot(c, 1).cap().is_null());
    check_mdb(&all_slots(&w, &[a, b, c]));
    delete(w.s(9), &mut w.k).unwrap();
    assert!(slot(a, 0).cap().is_null() && slot(c, 1).cap().is_null());
}

#[test]
fn deep_chains_do_not_recurse() {
    let mut w = World::new(8, 20);
    let mut node = w.root;
    let mut all = vec![];
    let mut idx = 1;
    for _ in 0..500 {
        make_in(&mut w, node, idx, CNode, 1);
        node = slot(node, idx).cap();
        all.push(node);
        idx = 1;
    }
    make_in(&mut w, node, 0, Notification, 0);
    delete(w.s(1), &mut w.k).unwrap();
    for c in &all {
        assert!(slots(*c).iter().all(|s| s.cap().is_null()));
    }
    assert!(!mdb::has_children(w.ut));
}

#[test]
fn self_referencing_cnode_is_collected_by_untyped_revoke() {
    let mut w = World::new(8, 16);
    {
        let r = w.root;
        make_in(&mut w, r, 1, CNode, 3);
    }
    let a = w.s(1).cap();
    make_in(&mut w, a, 0, Endpoint, 0);
    make_in(&mut w, a, 7, Endpoint, 0);
    copy_to(w.s(1), slot(a, 3));
    delete(w.s(1), &mut w.k).unwrap();
    // A now holds the only cap to itself.
    assert!(mdb::is_final_capability(slot(a, 3)));
    check_mdb(&all_slots(&w, &[a]));
    revoke(w.ut, &mut w.k).unwrap();
    assert!(
        slots(a)
            .iter()
            .all(|s| s.cap().is_null() && s.mdb() == MdbNode::NULL)
    );
    assert!(!mdb::has_children(w.ut));
    // And the memory can be retyped again, from 0.
    let r = w.retype(w.ut, Endpoint, 0, 1, 1).unwrap();
    assert_eq!((r.reset, r.base), (true, w.ut_base));
}

#[test]
fn mutually_referencing_cnodes_are_collected() {
    let mut w = World::new(8, 16);
    {
        let r = w.root;
        make_in(&mut w, r, 1, CNode, 2);
    }
    {
        let r = w.root;
        make_in(&mut w, r, 2, CNode, 2);
    }
    let (a, b) = (w.s(1).cap(), w.s(2).cap());
    make_in(&mut w, a, 1, Endpoint, 0);
    make_in(&mut w, b, 3, Endpoint, 0);
    copy_to(w.s(1), slot(b, 0));
    copy_to(w.s(2), slot(a, 0));
    delete(w.s(1), &mut w.k).unwrap();
    delete(w.s(2), &mut w.k).unwrap();
    assert!(!slot(a, 1).cap().is_null());
    revoke(w.ut, &mut w.k).unwrap();
    for s in all_slots(&w, &[a, b]) {
        if s != w.ut {
            assert!(s.cap().is_null(), "{s:?}");
        }
    }
    assert!(!mdb::has_children(w.ut));
}

#[test]
fn preempted_delete_and_revoke_resume_to_the_same_result() {
    for every in [1, 2, 3, 7] {
        let mut w = World::new(8, 16);
        let (a, b, c) = nested(&mut w);
        w.k.preempt_every = every;
        let s1 = w.s(1);
        let mut k = std::mem::take(&mut w.k);
        let n = run_to_completion(&mut || delete(s1, &mut k));
        assert!(n > 0, "every={every}: was never preempted");
        assert!(
            all_slots(&w, &[a, b, c])
                .iter()
                .skip(1)
                .all(|s| s.cap().is_null())
        );
        assert!(!mdb::has_children(w.ut));

        let mut w = World::new(8, 16);
        let (a, b, c) = nested(&mut w);
        {
            let r = w.root;
            make_in(&mut w, r, 5, Tcb, 0);
        }
        let ut = w.ut;
        let mut k = Kernel {
            preempt_every: every,
            ..Kernel::default()
        };
        let n = run_to_completion(&mut || revoke(ut, &mut k));
        assert!(n > 0);
        assert!(
            all_slots(&w, &[a, b, c])
                .iter()
                .skip(1)
                .all(|s| s.cap().is_null())
        );
        assert!(!mdb::has_children(w.ut));
        check_mdb(&slots(w.root));
    }
}

#[test]
fn tcb_slots_are_emptied_with_its_last_cap() {
    let mut w = World::new(8, 16);
    w.k.tcb_slots = 4;
    {
        let r = w.root;
        make_in(&mut w, r, 1, Tcb, 0);
    }
    {
        let r = w.root;
        make_in(&mut w, r, 2, Endpoint, 0);
    }
    let Cap::Tcb { ptr } = w.s(1).cap() else {
        panic!()
    };
    // SAFETY: the first 4 slots of the (zeroed) TCB object hold caps, as the kernel lays out.
    let tslot = |i: u64| unsafe { SlotRef::from_addr(ptr + i * 32) }.unwrap();
    copy_to(w.s(2), tslot(0));
    copy_to(w.s(2), tslot(3));
    copy_to(w.s(1), w.s(3));
    delete(w.s(1), &mut w.k).unwrap();
    assert!(!tslot(0).cap().is_null(), "not final: the TCB lives");
    delete(w.s(3), &mut w.k).unwrap();
    assert!(tslot(0).cap().is_null() && tslot(3).cap().is_null());
    assert!(mdb::is_final_capability(w.s(2)));
    check_mdb(&slots(w.root));
}

#[test]
fn zombies_cannot_be_moved_or_copied() {
    let mut w = World::new(8, 16);
    let (_a, _b, _c) = nested(&mut w);
    w.k.preempt_every = 1;
    assert_eq!(delete(w.s(1), &mut w.k), Err(Preempted));
    assert!(matches!(w.s(1).cap(), Cap::Zombie { .. }));
    for op in [
        CopyOp::Move,
        CopyOp::Copy {
            rights: Rights::ALL,
        },
    ] {
        assert_eq!(
            copy_cap(op, w.s(1), 64, w.s(9)),
            Err(crate::SyscallError::IllegalOperation)
        );
    }
    // The untyped still has a child (the zombie), so its memory is not handed out again.
    assert!(mdb::has_children(w.ut));
    w.k.preempt_every = 0;
    delete(w.s(1), &mut w.k).unwrap();
    assert!(!mdb::has_children(w.ut));
}

/// The objects whose slots a test watches: base, size bits and slot count.
type Watched = Vec<(u64, u32, u64)>;

/// The memory of an object is reusable once no cap but its untyped's covers it: by then none
/// of its slots may hold a cap or a derivation-tree link, or the kernel would later write
/// through them into whatever the memory has become (docs/security.md).
fn assert_slots_only_in_covered_memory(universe: &[SlotRef], objects: &Watched, when: &str) {
    for &(base, _, count) in objects {
        let live = (0..count)
            .map(|i| SlotRef::nth(base, i))
            .find(|s| !s.cap().is_null() || s.mdb() != MdbNode::NULL);
        let Some(live) = live else { continue };
        let covered = universe.iter().any(|s| {
            let c = s.cap();
            !matches!(c, Cap::Untyped { .. }) && c.object_range().is_some_and(|(b, _)| b == base)
        });
        assert!(
            covered,
            "{when}: the object at {base:#x} is covered by no cap, but its slot {live:?} holds {:?}",
            live.cap()
        );
    }
}

/// A cycle of last caps through a TCB, as a thread that configures itself makes: the TCB's
/// CSPACE slot holds the only cap to CNode C, C's slot 2 the only cap to CNode F, F's slot 1
/// the only cap to the TCB. Returns the TCB's CSPACE slot, the watched objects and every slot.
fn tcb_cycle(w: &mut World) -> (SlotRef, Watched, Vec<SlotRef>) {
    w.k.tcb_slots = 5;
    let r = w.root;
    make_in(w, r, 1, Tcb, 0);
    make_in(w, r, 2, CNode, 4);
    make_in(w, r, 3, Endpoint, 0);
    let Cap::Tcb { ptr: t } = w.s(1).cap() else {
        panic!()
    };
    let c = w.s(2).cap();
    make_in(w, c, 2, CNode, 4);
    let f = slot(c, 2).cap();
    // A cap that survives the cycle, as the thread's new CSpace and VSpace do.
    copy_to(w.s(3), slot(c, 1));
    // SAFETY: the first slots of the (zeroed) TCB object are its slots, as the kernel lays out.
    let tslot = |i: u64| unsafe { SlotRef::from_addr(t + i * 32) }.unwrap();
    copy_to(w.s(1), slot(f, 1));
    copy_to(w.s(2), tslot(0));
    delete(w.s(1), &mut w.k).unwrap();
    delete(w.s(2), &mut w.k).unwrap();
    assert!(mdb::is_final_capability(slot(f, 1)) && mdb::is_final_capability(tslot(0)));
    let Cap::CNode { ptr: cp, .. } = c else {
        panic!()
    };
    let Cap::CNode { ptr: fp, .. } = f else {
        panic!()
    };
    let watched = vec![(t, 11, 5), (cp, 9, 16), (fp, 9, 16)];
    let mut universe = all_slots(w, &[c, f]);
    universe.extend((0..5).map(tslot));
    check_mdb(&universe);
    (tslot(0), watched, universe)
}

#[test]
fn a_cycle_through_a_tcb_keeps_its_memory_covered_at_every_preemption() {
    for every in 1..=40 {
        let mut w = World::new(8, 16);
        let (root, watched, universe) = tcb_cycle(&mut w);
        w.k.preempt_every = every;
        let mut k = std::mem::take(&mut w.k);
        while delete(root, &mut k).is_err() {
            assert_slots_only_in_covered_memory(
                &universe,
                &watched,
                &format!("delete preempted after {every} steps"),
            );
        }
        assert!(root.cap().is_null());
        check_mdb(&universe);
        // What the cycle leaves (if anything) its untyped's revoke collects.
        k.preempt_every = 0;
        revoke(w.ut, &mut k).unwrap();
        assert!(
            universe[1..].iter().all(|s| s.cap().is_null()),
            "every={every}"
        );
        assert!(!mdb::has_children(w.ut));
    }
}

/// The thread whose call deleted the cycle is gone when its call is preempted, so nothing
/// resumes that delete: the objects' untyped is revoked instead, its memory reused.
#[test]
fn a_cycle_through_a_tcb_left_preempted_is_collected_by_its_untypeds_revoke() {
    for every in 1..=40 {
        let mut w = World::new(8, 16);
        let (root, watched, universe) = tcb_cycle(&mut w);
        w.k.preempt_every = every;
        let mut k = std::mem::take(&mut w.k);
        if delete(root, &mut k).is_ok() {
            break;
        }
        assert_slots_only_in_covered_memory(&universe, &watched, "after the preemption");
        k.preempt_every = 0;
        revoke(w.ut, &mut k).unwrap();
        assert!(
            universe[1..].iter().all(|s| s.cap().is_null()),
            "every={every}"
        );
        assert!(universe[1..].iter().all(|s| s.mdb() == MdbNode::NULL));
        assert!(!mdb::has_children(w.ut));
    }
}

#[test]
fn mutually_referencing_cnodes_stay_covered_at_every_preemption() {
    for every in 1..=20 {
        let mut w = World::new(8, 16);
        let r = w.root;
        make_in(&mut w, r, 1, CNode, 2);
        make_in(&mut w, r, 2, CNode, 2);
        let (a, b) = (w.s(1).cap(), w.s(2).cap());
        make_in(&mut w, a, 1, Endpoint, 0);
        make_in(&mut w, b, 3, Endpoint, 0);
        copy_to(w.s(1), slot(b, 0));
        copy_to(w.s(2), slot(a, 0));
        delete(w.s(1), &mut w.k).unwrap();
        delete(w.s(2), &mut w.k).unwrap();
        let (Cap::CNode { ptr: ap, .. }, Cap::CNode { ptr: bp, .. }) = (a, b) else {
            panic!()
        };
        let watched = vec![(ap, 7, 4), (bp, 7, 4)];
        let universe = all_slots(&w, &[a, b]);
        w.k.preempt_every = every;
        let mut k = std::mem::take(&mut w.k);
        let ut = w.ut;
        while revoke(ut, &mut k).is_err() {
            assert_slots_only_in_covered_memory(&universe, &watched, "revoke preempted");
        }
        assert!(universe[1..].iter().all(|s| s.cap().is_null()));
        assert!(!mdb::has_children(w.ut));
    }
}
