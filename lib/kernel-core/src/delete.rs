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
//! cap to itself, or CNodes holding each other's last caps). Such a slot already holds a zombie
//! that is an ancestor of `cur`; it is skipped here and emptied when the loop returns to it.
//! Its memory is not reused meanwhile because the ancestor zombie is still in the MDB.

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
            if cur == slot {
                return Ok(());
            }
            cur = SlotRef::from_stored(parent).expect("inner zombie has a parent");
            count_down(cur);
        } else {
            let end = SlotRef::nth(ptr, remaining as u64 - 1);
            match end.cap() {
                Cap::Null => count_down(cur),
                z @ Cap::Zombie { .. } => {
                    if in_chain(end, cur) {
                        count_down(cur);
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
