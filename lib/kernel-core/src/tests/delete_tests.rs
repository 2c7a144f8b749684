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
