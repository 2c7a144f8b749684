use super::*;
use crate::cap::{FrameSize, Mapping};
use crate::cnode::{CopyOp, copy_cap, rotate};
use crate::delete::delete;
use crate::error::SyscallError;
use crate::revoke::revoke;
use axolotl_abi::Rights;
use std::collections::BTreeSet;

const ALL: Rights = Rights::ALL;

fn copy(w: &World, from: u64, to: u64) -> Result<(), SyscallError> {
    copy_cap(CopyOp::Copy { rights: ALL }, w.s(from), 64, w.s(to))
}
fn mint(w: &World, from: u64, to: u64, badge: u64) -> Result<(), SyscallError> {
    copy_cap(
        CopyOp::Mint {
            rights: ALL,
            data: badge,
        },
        w.s(from),
        64,
        w.s(to),
    )
}
fn desc(w: &World, i: u64) -> BTreeSet<u64> {
    mdb_descendants(w.s(i))
}
fn set(w: &World, is: &[u64]) -> BTreeSet<u64> {
    is.iter().map(|&i| w.s(i).addr()).collect()
}

/// s1 = original endpoint; s2 copy; s3 = badge 5 minted from s1; s4 copy of s3;
/// s5 = badge 5 minted from the plain copy s2; s6 = badge 7; s7 copy of s6.
fn badged_world() -> World {
    let mut w = World::new(8, 16);
    w.retype(w.ut, axolotl_abi::ObjectType::Endpoint, 0, 1, 1)
        .unwrap();
    copy(&w, 1, 2).unwrap();
    mint(&w, 1, 3, 5).unwrap();
    copy(&w, 3, 4).unwrap();
    mint(&w, 2, 5, 5).unwrap();
    mint(&w, 1, 6, 7).unwrap();
    copy(&w, 6, 7).unwrap();
    check_mdb(&slots(w.root));
    w
}

#[test]
fn badged_and_unbadged_parentage() {
    let w = badged_world();
    assert_eq!(w.s(3).cap().badge(), Some(5));
    assert_eq!(w.s(4).cap().badge(), Some(5));
    assert_eq!(desc(&w, 1), set(&w, &[2, 3, 4, 5, 6, 7]));
    assert_eq!(desc(&w, 2), set(&w, &[]), "a plain copy is not a parent");
    // s5 has the same badge but was minted separately: its own subtree, not s3's.
    assert_eq!(desc(&w, 3), set(&w, &[4]));
    assert_eq!(desc(&w, 5), set(&w, &[]));
    assert_eq!(desc(&w, 6), set(&w, &[7]));
    assert_eq!(desc(&w, 0), set(&w, &[1, 2, 3, 4, 5, 6, 7]));
    assert!(!mdb::is_mdb_parent_of(w.s(5), w.s(3)));
    // Badges are set once, and only by Mint.
    assert_eq!(mint(&w, 3, 20, 9), Err(SyscallError::IllegalOperation));
    assert_eq!(
        copy_cap(CopyOp::Mutate { data: 9 }, w.s(2), 64, w.s(20)),
        Err(SyscallError::IllegalOperation)
    );
    assert!(w.s(20).cap().is_null());
}

#[test]
fn revoke_badged_subtree_only() {
    let mut w = badged_world();
    revoke(w.s(3), &mut w.k).unwrap();
    assert!(w.s(4).cap().is_null());
    for i in [0, 1, 2, 3, 5, 6, 7] {
        assert!(!w.s(i).cap().is_null(), "slot {i}");
    }
    // Nothing was final: the endpoint is still named by other caps.
    assert_eq!(w.k.finalised.len(), 1);
    assert!(!w.k.finalised[0].1);
    revoke(w.s(1), &mut w.k).unwrap();
    for i in 2..8 {
        assert!(w.s(i).cap().is_null(), "slot {i}");
    }
    assert!(!w.s(1).cap().is_null());
    assert!(w.k.finalised.iter().all(|f| !f.1));
    check_mdb(&slots(w.root));
    delete(w.s(1), &mut w.k).unwrap();
    assert!(w.k.finalised.last().unwrap().1, "last cap is final");
    assert!(!mdb::has_children(w.ut));
}

#[test]
fn deleting_a_badged_head_keeps_its_copies_in_one_subtree() {
    let mut w = badged_world();
    copy(&w, 3, 8).unwrap();
    assert_eq!(desc(&w, 3), set(&w, &[4, 8]));
    delete(w.s(3), &mut w.k).unwrap();
    check_mdb(&slots(w.root));
    // The copies now hang off the original endpoint; s5's subtree is untouched.
    assert!(desc(&w, 1).is_superset(&set(&w, &[4, 8, 5])));
    assert_eq!(desc(&w, 5), set(&w, &[]));
    revoke(w.s(5), &mut w.k).unwrap();
    assert!(!w.s(4).cap().is_null() && !w.s(8).cap().is_null());

    // Two separately minted badge-9 subtrees, adjacent: 1, s12, s10, s11 (copy of s10).
    mint(&w, 1, 10, 9).unwrap();
    copy(&w, 10, 11).unwrap();
    mint(&w, 1, 12, 9).unwrap();
    assert_eq!(desc(&w, 12), set(&w, &[]));
    // Deleting s10 must not hand its copy to s12: first_badged passes on to s11.
    delete(w.s(10), &mut w.k).unwrap();
    assert!(w.s(11).mdb().first_badged);
    assert_eq!(desc(&w, 12), set(&w, &[]));
    revoke(w.s(12), &mut w.k).unwrap();
    assert!(!w.s(11).cap().is_null());
}

#[test]
fn finality_follows_neighbours() {
    let mut w = World::new(8, 16);
    w.retype(w.ut, axolotl_abi::ObjectType::Notification, 0, 1, 2)
        .unwrap();
    assert!(mdb::is_final_capability(w.s(1)));
    copy(&w, 1, 3).unwrap();
    assert!(!mdb::is_final_capability(w.s(1)));
    assert!(!mdb::is_final_capability(w.s(3)));
    assert!(mdb::is_final_capability(w.s(2)), "another object");
    delete(w.s(1), &mut w.k).unwrap();
    assert!(mdb::is_final_capability(w.s(3)));
    assert_eq!(w.k.finalised, vec![(w.k.finalised[0].0, false)]);
}

#[test]
fn moves_swaps_and_rotates_keep_the_tree() {
    let w = badged_world();
    let before: Vec<_> = (0..8).map(|i| (w.s(i).cap(), desc(&w, i).len())).collect();
    copy_cap(CopyOp::Move, w.s(3), 64, w.s(30)).unwrap();
    assert!(w.s(3).cap().is_null() && w.s(3).mdb() == MdbNode::NULL);
    assert_eq!(desc(&w, 30), set(&w, &[4]));
    // As seL4, Rotate/Mutate cannot carry endpoint caps (`updateCapData` with preserve).
    assert_eq!(
        rotate(w.s(30), 64, 0, w.s(4), 64, 0, w.s(30)),
        Err(SyscallError::IllegalOperation)
    );
    // Swap neighbours (s30 is right before s4 in the MDB).
    // SAFETY: the slots' own caps.
    unsafe { mdb::swap(w.s(30).cap(), w.s(30), w.s(4).cap(), w.s(4)) };
    check_mdb(&slots(w.root));
    assert_eq!(desc(&w, 4), set(&w, &[30]));
    // Swap them back the other way round (s4 is now before s30).
    // SAFETY: the slots' own caps.
    unsafe { mdb::swap(w.s(30).cap(), w.s(30), w.s(4).cap(), w.s(4)) };
    check_mdb(&slots(w.root));
    assert_eq!(desc(&w, 30), set(&w, &[4]));
    // Swap non-neighbours.
    // SAFETY: the slots' own caps.
    unsafe { mdb::swap(w.s(30).cap(), w.s(30), w.s(5).cap(), w.s(5)) };
    check_mdb(&slots(w.root));
    assert_eq!(desc(&w, 5), set(&w, &[4]));
    assert_eq!(desc(&w, 30), set(&w, &[]));
    assert_eq!(
        rotate(w.s(5), 64, 0, w.s(5), 64, 0, w.s(41)),
        Err(SyscallError::IllegalOperation)
    );
    assert_eq!(
        rotate(w.s(5), 64, 0, w.s(6), 64, 0, w.s(7)),
        Err(SyscallError::DeleteFirst)
    );
    // Moving into an occupied slot or from an empty one fails and changes nothing.
    assert_eq!(
        copy_cap(CopyOp::Move, w.s(5), 64, w.s(6)),
        Err(SyscallError::DeleteFirst)
    );
    assert!(matches!(
        copy_cap(CopyOp::Move, w.s(3), 7, w.s(50)),
        Err(SyscallError::FailedLookup {
            source: true,
            fault: crate::cspace::LookupFault::MissingCapability { bits_left: 7 }
        })
    ));
    let _ = before;
}

#[test]
fn rotate_cnode_caps() {
    let mut w = World::new(8, 16);
    w.retype(w.ut, axolotl_abi::ObjectType::CNode, 2, 1, 2)
        .unwrap();
    let (c1, c2) = (w.s(1).cap(), w.s(2).cap());
    copy(&w, 1, 5).unwrap();
    rotate(w.s(1), 64, 0, w.s(2), 64, 0, w.s(3)).unwrap();
    assert_eq!(
        (w.s(1).cap(), w.s(2).cap(), w.s(3).cap()),
        (Cap::Null, c1, c2)
    );
    assert_eq!(desc(&w, 2), set(&w, &[5]));
    rotate(w.s(2), 64, 1 << 6 | 1, w.s(3), 64, 0, w.s(2)).unwrap();
    assert!(matches!(
        w.s(3).cap(),
        Cap::CNode {
            guard_bits: 1,
            guard: 1,
            ..
        }
    ));
    assert_eq!(desc(&w, 3), set(&w, &[5]));
    check_mdb(&slots(w.root));
}

#[test]
fn derive_rules() {
    let mut w = World::new(8, 16);
    w.retype(w.ut, axolotl_abi::ObjectType::SmallFrame, 0, 1, 1)
        .unwrap();
    w.retype(w.ut, axolotl_abi::ObjectType::PageTable, 0, 2, 1)
        .unwrap();
    w.retype(w.ut, axolotl_abi::ObjectType::VSpace, 0, 3, 1)
        .unwrap();
    let m = Mapping {
        asid: 3,
        vaddr: 0x4000_0000,
    };
    assert!(w.s(1).set_mapping(Some(m)));
    copy_cap(
        CopyOp::Copy {
            rights: Rights::READ,
        },
        w.s(1),
        64,
        w.s(10),
    )
    .unwrap();
    let Cap::Frame { mapped, rights, .. } = w.s(10).cap() else {
        panic!()
    };
    assert_eq!(
        (mapped, rights),
        (None, Rights::READ),
        "copies start unmapped"
    );
    assert!(matches!(
        w.s(1).cap(),
        Cap::Frame {
            mapped: Some(_),
            ..
        }
    ));
    // Unmapped tables and VSpaces without an ASID cannot be copied.
    assert_eq!(copy(&w, 2, 11), Err(SyscallError::IllegalOperation));
    assert_eq!(copy(&w, 3, 11), Err(SyscallError::IllegalOperation));
    assert!(w.s(2).set_mapping(Some(m)));
    copy(&w, 2, 11).unwrap();
    assert!(matches!(
        w.s(11).cap(),
        Cap::PageTable {
            mapped: Some(_),
            ..
        }
    ));
    // Reply caps and IRQ control cannot be copied; IRQ handlers hang off IRQ control.
    // SAFETY: caps without memory, or naming a never-dereferenced TCB address.
    unsafe {
        mdb::insert_root(w.s(20), Cap::IrqControl);
        mdb::insert_root(
            w.s(21),
            Cap::Reply {
                tcb: 0x8000,
                can_grant: true,
            },
        );
        mdb::insert_copy(w.s(20), w.s(22), Cap::IrqHandler { irq: 33 });
    }
    assert_eq!(copy(&w, 20, 23), Err(SyscallError::IllegalOperation));
    assert_eq!(copy(&w, 21, 23), Err(SyscallError::IllegalOperation));
    copy(&w, 22, 23).unwrap();
    assert_eq!(desc(&w, 20), set(&w, &[22, 23]));
    assert!(!mdb::is_final_capability(w.s(22)));
    // Frames: containment by a large frame is same-region but not same-object.
    let big = Cap::Frame {
        ptr: 0x20_0000,
        size: FrameSize::Large,
        rights: ALL,
        is_device: false,
        mapped: None,
    };
    let small = Cap::Frame {
        ptr: 0x20_1000,
        size: FrameSize::Small,
        rights: ALL,
        is_device: false,
        mapped: None,
    };
    assert!(big.same_region_as(&small) && !big.same_object_as(&small));
    check_mdb(&slots(w.root));
}

#[test]
fn cnode_mint_sets_guard_and_copy_masks_rights() {
    let mut w = World::new(8, 16);
    w.retype(w.ut, axolotl_abi::ObjectType::CNode, 4, 1, 1)
        .unwrap();
    w.retype(w.ut, axolotl_abi::ObjectType::Endpoint, 0, 2, 1)
        .unwrap();
    copy_cap(
        CopyOp::Mint {
            rights: ALL,
            data: 0x3 << 6 | 2,
        },
        w.s(1),
        64,
        w.s(3),
    )
    .unwrap();
    assert!(matches!(
        w.s(3).cap(),
        Cap::CNode {
            guard_bits: 2,
            guard: 3,
            ..
        }
    ));
    assert!(mdb::is_mdb_parent_of(w.s(1), w.s(3)));
    copy_cap(
        CopyOp::Copy {
            rights: Rights::WRITE,
        },
        w.s(2),
        64,
        w.s(4),
    )
    .unwrap();
    copy_cap(CopyOp::Copy { rights: ALL }, w.s(4), 64, w.s(5)).unwrap();
    let Cap::Endpoint { rights, .. } = w.s(5).cap() else {
        panic!()
    };
    assert_eq!(rights, Rights::WRITE, "rights never grow back");
}
