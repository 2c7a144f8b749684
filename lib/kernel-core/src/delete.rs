//! Deleting a cap (seL4 `cteDelete`), with object finalisation delegated to the kernel.
//!
//! # Zombies, without recursion
//!
//! Deleting the last cap to a CNode (or to a TCB, whose slots sit at the start of the object)
//! must first delete every cap in its slots, and those may be last caps of further CNodes,
//! nested without bound. seL4 bounds its recursion by swapping zombies around; here the
//! pending work is kept *in the slots themselves*:
//!
//! * the final cap is replaced in place by `Cap::Zombie { ptr, size_bits, remaining, parent }`.
//!   It keeps its MDB position, so the object's memory stays a child of its untyped (no reset
//!   or revoke can reuse it while slots are still live);
//! * the loop always works on the zombie `cur`: it empties `ptr[remaining - 1]` and counts
//!   down. If that slot holds another final CNode/TCB cap (or a zombie left behind by a
//!   preempted deletion), it becomes a zombie whose `parent` is `cur`, and the loop descends;
//! * at `remaining == 0` the zombie's slot is emptied and the loop returns to `parent`.
//!
//! So the "stack" is the chain of `parent` links, stored in caps: constant kernel stack, and
//! every iteration does a bounded amount of work followed by a preemption check. On preemption
//! the zombies stay where they are; calling `delete` (or `revoke`) on the same slot again
//! descends the same chain (re-linking `parent`s) and continues.
//!
//! Cycles: a zombie's object may contain a slot of the chain itself (a CNode holding the last
//! cap to itself, CNodes holding each other's last caps, a thread whose CSPACE slot holds the
//! last cap to a CNode tree that holds the last cap to the thread). Such a slot holds a zombie
//! that is an ancestor of `cur`. Skipping it would be wrong: `cur`'s object would be freed
//! when `cur` finishes while that slot, inside it, still held a zombie linked into the MDB,
//! and a preemption before the ancestor finished would let the memory be retyped (a frame
//! the user writes) with the kernel still writing MDB links into it. So the two slots swap
//! their caps and MDB positions (seL4's `capSwapForDelete`): `cur`'s zombie moves into its
//! own object, where it is the last slot to go and keeps the memory covered until then, and
//! the ancestor's zombie moves out into the slot `cur` left, in its parent's object, where
//! the same happens when the loop returns there. Every slot with a cap thus lies in memory
//! some zombie or cap still covers, at every preemption point. A zombie found in its own
//! object's slot is that case's end: it is skipped and emptied last, with its object.
//!
//! The chain's root (the zombie with no `parent`) finishes last; the slot `delete` was asked
//! to empty may by then have been emptied earlier, holding a zombie swapped in.

use crate::cap::Cap;
use crate::mdb::{empty_slot, is_final_capability};
use crate::slot::{SLOT_BITS, SlotRef};

/// What remains to be done once the kernel has finalised a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalised {
    /// Nothing: the slot can be emptied.
    Done,
    /// The object (a TCB) starts with `count` slots that must be emptied before its memory is
    /// free. Only valid for the final cap of a TCB.
    Slots { count: u32 },
}

/// The kernel's part of deletion.
pub trait Finalise {
    /// The cap in a slot is about to be deleted. `is_final`: no other cap keeps its object
    /// alive, so e.g. cancel IPC on an endpoint, suspend a TCB, unbind a notification,
    /// disable an IRQ's handler, free an ASID pool. Frame/page-table caps must be unmapped
    /// whether final or not (the mapping belongs to the cap). Not called for CNode caps or
    /// zombies, which this crate handles.
    fn finalise(&mut self, cap: &Cap, is_final: bool) -> Finalised;

    /// Polled after each slot emptied by a long operation; `true` stops it with
    /// [`Preempted`]. Re-invoking the same delete/revoke continues where it stopped.
    fn should_preempt(&mut self) -> bool {
        false
    }
}

/// A delete or revoke stopped early; its state is kept in the slots, so restart it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preempted;

/// Finalises the cap in `slot`: `None` when the slot can simply be emptied, otherwise the
/// zombie that must replace it.
fn finalise_slot(slot: SlotRef, cap: Cap, fin: &mut impl Finalise) -> Option<Cap> {
    let is_final = is_final_capability(slot);
    let (ptr, size_bits, count) = match cap {
        Cap::CNode {
            ptr, radix_bits, ..
        } if is_final => (ptr, radix_bits as u32 + SLOT_BITS, 1u32 << radix_bits),
        Cap::CNode { .. } => return None,
        Cap::Zombie { .. } => unreachable!("zombies are resumed, not finalised"),
        _ => match fin.finalise(&cap, is_final) {
            Finalised::Done => return None,
            Finalised::Slots { count } => {
                let (ptr, bits) = cap.object_range().expect("slots in a physical object");
                assert!(is_final && matches!(cap, Cap::Tcb { .. }));
                assert!((count as u64) << SLOT_BITS <= 1 << bits);
                (ptr, bits, count)
            }
        },
    };
    Some(Cap::Zombie {
        ptr,
        size_bits: size_bits as u8,
        remaining: count,
        parent: 0,
    })
}

fn with_parent(z: Cap, parent: u64) -> Cap {
    match z {
        Cap::Zombie {
            ptr,
            size_bits,
            remaining,
            ..
        } => Cap::Zombie {
            ptr,
            size_bits,
            remaining,
            parent,
        },
        _ => unreachable!(),
    }
}

/// Whether `slot` is `cur` or one of the zombies `cur` is (transitively) working for.
fn in_chain(slot: SlotRef, mut cur: SlotRef) -> bool {
    loop {
        if slot == cur {
            return true;
        }
        match cur.cap() {
            Cap::Zombie { parent, .. } if parent != 0 => {
                cur = SlotRef::from_stored(parent).expect("nonzero");
            }
            _ => return false,
        }
    }
}

/// Deletes the cap in `slot` (seL4 `cteDelete(slot, true)`): finalises it and, if it was the
/// last cap to a CNode or TCB, everything in that object's slots. On `Err(Preempted)` the slot
/// holds a zombie; call again to continue.
pub fn delete(slot: SlotRef, fin: &mut impl Finalise) -> Result<(), Preempted> {
    match slot.cap() {
        Cap::Null => return Ok(()),
        z @ Cap::Zombie { .. } => slot.set_cap(with_parent(z, 0)),
        cap => match finalise_slot(slot, cap, fin) {
            None => {
                empty_slot(slot);
                return Ok(());
            }
            Some(z) => slot.set_cap(z),
        },
    }
    let mut cur = slot;
    loop {
        let Cap::Zombie {
            ptr,
            remaining,
            parent,
            ..
        } = cur.cap()
        else {
            unreachable!("the loop only visits zombies")
        };
        if remaining == 0 {
            empty_slot(cur);
            if parent == 0 {
                return Ok(());
            }
            // The parent's end slot is empty now, or holds an ancestor swapped into it: the
            // next turn looks at it again.
            cur = SlotRef::from_stored(parent).expect("inner zombie has a parent");
        } else {
            let end = SlotRef::nth(ptr, remaining as u64 - 1);
            match end.cap() {
                Cap::Null => count_down(cur),
                // `cur` lives in its own object: emptied last, when it finishes.
                Cap::Zombie { .. } if end == cur => count_down(cur),
                z @ Cap::Zombie { .. } => {
                    if in_chain(end, cur) {
                        cur = swap_out_ancestor(cur, end);
                        continue;
                    } else {
                        end.set_cap(with_parent(z, cur.addr()));
                        cur = end;
                        continue;
                    }
                }
                cap => match finalise_slot(end, cap, fin) {
                    None => {
                        empty_slot(end);
                        count_down(cur);
                    }
                    Some(z) => {
                        end.set_cap(with_parent(z, cur.addr()));
                        cur = end;
                        continue;
                    }
                },
            }
        }
        if fin.should_preempt() {
            return Err(Preempted);
        }
    }
}

/// `cur`'s object holds, in slot `end`, the zombie of an ancestor of `cur` in the chain:
/// `cur`'s zombie moves into `end` and the ancestor's into `cur`'s slot (module doc, Cycles),
/// and the `parent` links follow the zombies. Returns where `cur`'s zombie is now.
fn swap_out_ancestor(cur: SlotRef, end: SlotRef) -> SlotRef {
    let (mine, ancestor) = (cur.cap(), end.cap());
    // The chain's zombie whose parent is the ancestor (`cur` itself, or one between).
    let mut child = cur;
    loop {
        let Cap::Zombie { parent, .. } = child.cap() else {
            unreachable!("the chain holds zombies")
        };
        if parent == end.addr() {
            break;
        }
        child = SlotRef::from_stored(parent).expect("the ancestor is in the chain");
    }
    let Cap::Zombie { parent: up, .. } = mine else {
        unreachable!("the loop only visits zombies")
    };
    // SAFETY: both slots are live (chain slots inside live objects) and keep their caps, so
    // the MDB stays as it was but for which slot each node lives in.
    unsafe { crate::mdb::swap(mine, cur, ancestor, end) };
    if child == cur {
        // `cur`'s parent was the ancestor, which now lives where `cur` was.
        end.set_cap(with_parent(mine, cur.addr()));
    } else {
        end.set_cap(with_parent(mine, up));
        child.set_cap(with_parent(child.cap(), cur.addr()));
    }
    end
}

fn count_down(zombie: SlotRef) {
    if let Cap::Zombie {
        ptr,
        size_bits,
        remaining,
        parent,
    } = zombie.cap()
    {
        zombie.set_cap(Cap::Zombie {
            ptr,
            size_bits,
            remaining: remaining - 1,
            parent,
        });
    }
}
