//! The capability derivation tree, stored as seL4's MDB: one doubly linked list through the
//! slots in which every cap is followed by its descendants. Parenthood is not stored; it is
//! recomputed from neighbours by [`is_mdb_parent_of`], so a subtree is the maximal run after
//! a slot of caps it is the parent of. All caps to one object are therefore adjacent, which
//! is why finality only looks at the two neighbours.

use crate::cap::Cap;
use crate::slot::{MdbNode, SlotRef};

/// seL4 `isCapRevocable`: whether a cap derived from `src` starts its own subtree.
pub fn is_cap_revocable(derived: &Cap, src: &Cap) -> bool {
    match derived {
        Cap::Endpoint { .. } | Cap::Notification { .. } => derived.badge() != src.badge(),
        Cap::IrqHandler { .. } => matches!(src, Cap::IrqControl),
        Cap::AsidPool { .. } => matches!(src, Cap::AsidControl),
        Cap::Untyped { .. } => true,
        _ => false,
    }
}

/// seL4 `isMDBParentOf`. A badged endpoint/notification cap is the parent only of later caps
/// with the same badge that do not start a new badged subtree (`first_badged`); an unbadged
/// original is the parent of every cap to its object.
pub fn is_mdb_parent_of(a: SlotRef, b: SlotRef) -> bool {
    if !a.mdb().revocable {
        return false;
    }
    let (ca, cb) = (a.cap(), b.cap());
    if !ca.same_region_as(&cb) {
        return false;
    }
    match ca.badge() {
        None | Some(0) => true,
        Some(badge) => cb.badge() == Some(badge) && !b.mdb().first_badged,
    }
}

/// Whether any cap was derived from the cap in `slot` (seL4 `ensureNoChildren` fails).
pub fn has_children(slot: SlotRef) -> bool {
    slot.next().is_some_and(|n| is_mdb_parent_of(slot, n))
}

/// seL4 `isFinalCapability`: no other cap keeps this slot's object alive. Caps to one object
/// are adjacent in the MDB, so the neighbours decide.
pub fn is_final_capability(slot: SlotRef) -> bool {
    let cap = slot.cap();
    let m = slot.mdb();
    let prev_same = m.prev.is_some_and(|p| p.cap().same_object_as(&cap));
    let next_same = m.next.is_some_and(|n| cap.same_object_as(&n.cap()));
    !(prev_same || next_same)
}

/// Places a boot-time cap (no parent) in an empty slot, as an original: the kernel's initial
/// untyped, IRQ and ASID control caps, and the root task's objects.
///
/// # Safety
/// `cap` must name only live objects of its type, not already named by any other cap.
pub unsafe fn insert_root(dest: SlotRef, cap: Cap) {
    debug_assert!(dest.cap().is_null());
    dest.set_cap(cap);
    dest.set_mdb(MdbNode {
        revocable: true,
        first_badged: true,
        ..MdbNode::NULL
    });
}

/// seL4 `insertNewCap`: a cap to a newly created object, as a revocable child of `parent`.
///
/// # Safety
/// `cap` must name a live object inside the object named by `parent`'s cap.
pub unsafe fn insert_new_child(parent: SlotRef, dest: SlotRef, cap: Cap) {
    debug_assert!(dest.cap().is_null());
    let next = parent.next();
    dest.set_cap(cap);
    dest.set_mdb(MdbNode {
        prev: Some(parent),
        next,
        revocable: true,
        first_badged: true,
    });
    if let Some(n) = next {
        n.set_prev(Some(dest));
    }
    parent.set_next(Some(dest));
}

/// seL4 `cteInsert`: `cap` was derived from the cap in `src`. It goes right after `src`, so it
/// is `src`'s child if `src` is revocable and a sibling otherwise.
///
/// # Safety
/// `cap` must have been derived from `src`'s cap (see `derive.rs`) or otherwise name only
/// objects covered by it (e.g. an IRQ handler from IRQ control).
pub unsafe fn insert_copy(src: SlotRef, dest: SlotRef, cap: Cap) {
    debug_assert!(dest.cap().is_null() && dest.mdb() == MdbNode::NULL);
    let src_cap = src.cap();
    let revocable = is_cap_revocable(&cap, &src_cap);
    // seL4 `setUntypedCapAsFull`: an untyped and its copy have separate watermarks, so the
    // source may not hand out this memory again while the copy (its child) exists.
    if let (
        Cap::Untyped {
            ptr,
            size_bits,
            is_device,
            ..
        },
        Cap::Untyped {
            ptr: p2,
            size_bits: s2,
            ..
        },
    ) = (src_cap, cap)
        && (ptr, size_bits) == (p2, s2)
    {
        src.set_cap(Cap::Untyped {
            ptr,
            size_bits,
            free_index: 1 << size_bits,
            is_device,
        });
    }
    let next = src.next();
    dest.set_cap(cap);
    dest.set_mdb(MdbNode {
        prev: Some(src),
        next,
        revocable,
        first_badged: revocable,
    });
    if let Some(n) = next {
        n.set_prev(Some(dest));
    }
    src.set_next(Some(dest));
}

/// seL4 `cteMove`: the cap (possibly updated to `cap`) and its MDB position move to `dest`.
///
/// # Safety
/// `cap` must be the cap in `src` or that cap with only its data (guard) changed.
pub unsafe fn move_cap(src: SlotRef, dest: SlotRef, cap: Cap) {
    debug_assert!(dest.cap().is_null() && dest.mdb() == MdbNode::NULL);
    let m = src.mdb();
    dest.set_cap(cap);
    dest.set_mdb(m);
    src.set_cap(Cap::Null);
    src.set_mdb(MdbNode::NULL);
    if let Some(p) = m.prev {
        p.set_next(Some(dest));
    }
    if let Some(n) = m.next {
        n.set_prev(Some(dest));
    }
}

/// seL4 `cteSwap`: exchanges two slots' caps and MDB positions. The link updates are done in
/// seL4's order, which also handles the two slots being neighbours.
///
/// # Safety
/// As [`move_cap`], for each of the two caps.
pub unsafe fn swap(cap1: Cap, slot1: SlotRef, cap2: Cap, slot2: SlotRef) {
    if slot1 == slot2 {
        slot1.set_cap(cap1);
        return;
    }
    slot1.set_cap(cap2);
    slot2.set_cap(cap1);
    let m1 = slot1.mdb();
    if let Some(p) = m1.prev {
        p.set_next(Some(slot2));
    }
    if let Some(n) = m1.next {
        n.set_prev(Some(slot2));
    }
    let m2 = slot2.mdb();
    slot1.set_mdb(m2);
    slot2.set_mdb(m1);
    if let Some(p) = m2.prev {
        p.set_next(Some(slot1));
    }
    if let Some(n) = m2.next {
        n.set_prev(Some(slot1));
    }
}

/// seL4 `emptySlot`: unlinks the slot and clears it. Its children become children of its
/// parent; `first_badged` passes to the next cap so that a badged subtree keeps its head.
pub(crate) fn empty_slot(slot: SlotRef) {
    if slot.cap().is_null() {
        return;
    }
    let m = slot.mdb();
    if let Some(p) = m.prev {
        p.set_next(m.next);
    }
    if let Some(n) = m.next {
        let nm = n.mdb();
        n.set_mdb(MdbNode {
            prev: m.prev,
            first_badged: nm.first_badged || m.first_badged,
            ..nm
        });
    }
    slot.set_cap(Cap::Null);
    slot.set_mdb(MdbNode::NULL);
}
