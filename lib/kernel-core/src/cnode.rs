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

/// Copy/Mint/Move/Mutate from `src` (looked up with `src_depth`) to `dest`.
pub fn copy_cap(
    op: CopyOp,
    src: SlotRef,
    src_depth: u32,
    dest: SlotRef,
) -> Result<(), SyscallError> {
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
    if is_move {
        // SAFETY: `new` is the source cap, at most with new CNode guard data.
        unsafe { mdb::move_cap(src, dest, new) }
    } else {
        // SAFETY: `new` was derived from the cap in `src`.
        unsafe { mdb::insert_copy(src, dest, new) }
    }
    Ok(())
}

/// seL4 CNode Rotate: `pivot` moves to `dest`, then `src` moves to `pivot`, each with new
/// data (badges cannot change: `preserve`). `dest == src` makes it a swap.
pub fn rotate(
    src: SlotRef,
    src_depth: u32,
    src_data: u64,
    pivot: SlotRef,
    pivot_depth: u32,
    pivot_data: u64,
    dest: SlotRef,
) -> Result<(), SyscallError> {
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
    // SAFETY: both caps are the slots' own caps with at most new guard data.
    unsafe {
        if src == dest {
            mdb::swap(new_src, src, new_pivot, pivot);
        } else {
            mdb::move_cap(pivot, dest, new_pivot);
            mdb::move_cap(src, pivot, new_src);
        }
    }
    Ok(())
}
