//! CNode invocations once their slots are looked up: Copy, Mint, Move, Mutate, Rotate
//! (seL4 `decodeCNodeInvocation` after the lookups, and `invokeCNode*`). The kernel resolves
//! the destination first (`lookup_target_slot`, then `DeleteFirst` if occupied — done here),
//! then the source with `lookup_source_slot`. Delete and Revoke are `delete.rs`/`revoke.rs`.

use crate::cap::Cap;
use crate::cspace::LookupFault;
use crate::derive::{derive_cap, mask_cap_rights, update_cap_data};
use crate::error::SyscallError;
use crate::mdb;
use crate::slot::SlotRef;
use axolotl_abi::Rights;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyOp {
    Copy { rights: Rights },
    Mint { rights: Rights, data: u64 },
    Move,
    Mutate { data: u64 },
}

fn ensure_empty(slot: SlotRef) -> Result<(), SyscallError> {
    if slot.cap().is_null() {
        Ok(())
    } else {
        Err(SyscallError::DeleteFirst)
    }
}

fn ensure_present(slot: SlotRef, depth: u32, source: bool) -> Result<Cap, SyscallError> {
    match slot.cap() {
        Cap::Null => {
            Err(LookupFault::MissingCapability { bits_left: depth }.to_syscall_error(source))
        }
        c => Ok(c),
    }
}

/// A checked Copy/Mint/Move/Mutate (seL4's decode half): [`invoke_copy`] carries it out and
/// cannot fail. Only [`decode_copy`] makes one, and nothing may change the slots between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyPlan {
    src: SlotRef,
    dest: SlotRef,
    new: Cap,
    is_move: bool,
}

/// Checks Copy/Mint/Move/Mutate from `src` (looked up with `src_depth`) to `dest`.
pub fn decode_copy(
    op: CopyOp,
    src: SlotRef,
    src_depth: u32,
    dest: SlotRef,
) -> Result<CopyPlan, SyscallError> {
    ensure_empty(dest)?;
    let cap = ensure_present(src, src_depth, true)?;
    let (new, is_move) = match op {
        CopyOp::Copy { rights } => (derive_cap(src, mask_cap_rights(rights, cap))?, false),
        CopyOp::Mint { rights, data } => (
            derive_cap(
                src,
                update_cap_data(false, data, mask_cap_rights(rights, cap)),
            )?,
            false,
        ),
        // Zombies are mid-deletion state owned by `delete`; they never move.
        CopyOp::Move if matches!(cap, Cap::Zombie { .. }) => (Cap::Null, true),
        CopyOp::Move => (cap, true),
        CopyOp::Mutate { data } => (update_cap_data(true, data, cap), true),
    };
    if new.is_null() {
        return Err(SyscallError::IllegalOperation);
    }
    Ok(CopyPlan {
        src,
        dest,
        new,
        is_move,
    })
}

/// Carries out a [`CopyPlan`] (seL4 `invokeCNodeCopy`/`invokeCNodeMove`).
pub fn invoke_copy(p: CopyPlan) {
    if p.is_move {
        // SAFETY: `new` is the source cap, at most with new CNode guard data (decode_copy).
        unsafe { mdb::move_cap(p.src, p.dest, p.new) }
    } else {
        // SAFETY: `new` was derived from the cap in `src` (decode_copy).
        unsafe { mdb::insert_copy(p.src, p.dest, p.new) }
    }
}

/// [`decode_copy`] then [`invoke_copy`].
pub fn copy_cap(
    op: CopyOp,
    src: SlotRef,
    src_depth: u32,
    dest: SlotRef,
) -> Result<(), SyscallError> {
    invoke_copy(decode_copy(op, src, src_depth, dest)?);
    Ok(())
}

/// A checked Rotate: [`invoke_rotate`] carries it out and cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotatePlan {
    src: SlotRef,
    new_src: Cap,
    pivot: SlotRef,
    new_pivot: Cap,
    dest: SlotRef,
}

/// seL4 CNode Rotate, checked: `pivot` moves to `dest`, then `src` moves to `pivot`, each
/// with new data (badges cannot change: `preserve`). `dest == src` makes it a swap.
pub fn decode_rotate(
    src: SlotRef,
    src_depth: u32,
    src_data: u64,
    pivot: SlotRef,
    pivot_depth: u32,
    pivot_data: u64,
    dest: SlotRef,
) -> Result<RotatePlan, SyscallError> {
    if pivot == src || pivot == dest {
        return Err(SyscallError::IllegalOperation);
    }
    if src != dest {
        ensure_empty(dest)?;
    }
    let src_cap = ensure_present(src, src_depth, true)?;
    let pivot_cap = ensure_present(pivot, pivot_depth, false)?;
    let zombie = |c: &Cap| matches!(c, Cap::Zombie { .. });
    let new_src = update_cap_data(true, src_data, src_cap);
    let new_pivot = update_cap_data(true, pivot_data, pivot_cap);
    if new_src.is_null() || new_pivot.is_null() || zombie(&src_cap) || zombie(&pivot_cap) {
        return Err(SyscallError::IllegalOperation);
    }
    Ok(RotatePlan {
        src,
        new_src,
        pivot,
        new_pivot,
        dest,
    })
}

/// Carries out a [`RotatePlan`] (seL4 `invokeCNodeRotate`).
pub fn invoke_rotate(p: RotatePlan) {
    // SAFETY: both caps are the slots' own caps with at most new guard data (decode_rotate).
    unsafe {
        if p.src == p.dest {
            mdb::swap(p.new_src, p.src, p.new_pivot, p.pivot);
        } else {
            mdb::move_cap(p.pivot, p.dest, p.new_pivot);
            mdb::move_cap(p.src, p.pivot, p.new_src);
        }
    }
}

/// [`decode_rotate`] then [`invoke_rotate`].
pub fn rotate(
    src: SlotRef,
    src_depth: u32,
    src_data: u64,
    pivot: SlotRef,
    pivot_depth: u32,
    pivot_data: u64,
    dest: SlotRef,
) -> Result<(), SyscallError> {
    invoke_rotate(decode_rotate(
        src,
        src_depth,
        src_data,
        pivot,
        pivot_depth,
        pivot_data,
        dest,
    )?);
    Ok(())
}
