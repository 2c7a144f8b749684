//! ASID invocations (seL4 `decodeARMASIDControlInvocation`, `decodeARMASIDPoolInvocation`):
//! making pools, assigning a pool's ASIDs (= VMIDs) to VSpaces. The checks and the table are
//! kernel-core's `AsidTable`.

use axolotl_abi::Invocation;
use axolotl_kernel_core::asid::{Assign, MakePool};
use axolotl_kernel_core::cspace::lookup_slot_for_cnode_op;
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use super::{Decoded, Done, Msg, refuse};
use crate::state::Kernel;

pub enum AsidOp {
    MakePool(MakePool),
    Assign(Assign),
}

pub fn decode(k: &Kernel, m: &Msg, l: Invocation, cap: Cap, slot: SlotRef) -> Decoded<AsidOp> {
    Ok(match (l, cap) {
        (Invocation::AsidControlMakePool, Cap::AsidControl) => {
            m.need(2)?;
            let (root, _) = m.extra_cap(0)?;
            let dest = lookup_slot_for_cnode_op(false, root, m.mr(0), m.mr(1))?;
            AsidOp::MakePool(k.asids.decode_make_pool(slot, dest)?)
        }
        (Invocation::AsidPoolAssign, Cap::AsidPool { .. }) => {
            let (_, vspace) = m.extra_cap(0)?;
            AsidOp::Assign(k.asids.decode_assign(slot, vspace)?)
        }
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "not an invocation of this ASID cap"
            ));
        }
    })
}

pub fn perform(k: &mut Kernel, op: AsidOp) -> Done {
    match op {
        AsidOp::MakePool(p) => {
            k.asids.invoke_make_pool(p);
        }
        AsidOp::Assign(a) => {
            k.asids.invoke_assign(a);
        }
    }
    Done::Reply(0)
}
