//! CNode invocations: Copy, Mint, Move, Mutate, Rotate, Delete, Revoke (seL4
//! `decodeCNodeInvocation`, `invokeCNode*`). The slot checks are kernel-core's
//! `decode_copy`/`decode_rotate`; Delete and Revoke have nothing to refuse once their slot is
//! found, and stop at preemption points.

use axolotl_abi::{Invocation, Rights};
use axolotl_kernel_core::cnode::{
    CopyOp, CopyPlan, RotatePlan, decode_copy, decode_rotate, invoke_copy, invoke_rotate,
};
use axolotl_kernel_core::cspace::lookup_slot_for_cnode_op;
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use super::{Decoded, Done, Msg, refuse};
use crate::kobj::Kobj;
use crate::state::Kernel;

pub enum CNodeOp {
    Copy(CopyPlan),
    Rotate(RotatePlan),
    Delete(SlotRef),
    Revoke(SlotRef),
}

pub fn decode(m: &Msg, l: Invocation, cnode: Cap) -> Decoded<CNodeOp> {
    let mr = |i| m.mr(i);
    Ok(match l {
        Invocation::CNodeCopy
        | Invocation::CNodeMint
        | Invocation::CNodeMove
        | Invocation::CNodeMutate => {
            m.need(match l {
                Invocation::CNodeCopy | Invocation::CNodeMutate => 5,
                Invocation::CNodeMint => 6,
                _ => 4,
            })?;
            let dest = lookup_slot_for_cnode_op(false, cnode, mr(0), mr(1))?;
            let (src_root, _) = m.extra_cap(0)?;
            let src = lookup_slot_for_cnode_op(true, src_root, mr(2), mr(3))?;
            let op = match l {
                Invocation::CNodeCopy => CopyOp::Copy {
                    rights: Rights::from_bits_truncate(mr(4)),
                },
                Invocation::CNodeMint => CopyOp::Mint {
                    rights: Rights::from_bits_truncate(mr(4)),
                    data: mr(5),
                },
                Invocation::CNodeMutate => CopyOp::Mutate { data: mr(4) },
                _ => CopyOp::Move,
            };
            CNodeOp::Copy(decode_copy(op, src, mr(3) as u32, dest)?)
        }
        Invocation::CNodeRotate => {
            m.need(8)?;
            let dest = lookup_slot_for_cnode_op(false, cnode, mr(0), mr(1))?;
            let (pivot_root, _) = m.extra_cap(0)?;
            let (src_root, _) = m.extra_cap(1)?;
            let pivot = lookup_slot_for_cnode_op(true, pivot_root, mr(2), mr(3))?;
            let src = lookup_slot_for_cnode_op(true, src_root, mr(5), mr(6))?;
            CNodeOp::Rotate(decode_rotate(
                src,
                mr(6) as u32,
                mr(7),
                pivot,
                mr(3) as u32,
                mr(4),
                dest,
            )?)
        }
        Invocation::CNodeDelete | Invocation::CNodeRevoke => {
            m.need(2)?;
            let s = lookup_slot_for_cnode_op(false, cnode, mr(0), mr(1))?;
            if l == Invocation::CNodeDelete {
                CNodeOp::Delete(s)
            } else {
                CNodeOp::Revoke(s)
            }
        }
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "not a CNode invocation"
            ));
        }
    })
}

pub fn perform(k: &mut Kernel, op: CNodeOp) -> Done {
    let done = match op {
        CNodeOp::Copy(p) => {
            invoke_copy(p);
            Ok(())
        }
        CNodeOp::Rotate(p) => {
            invoke_rotate(p);
            Ok(())
        }
        CNodeOp::Delete(s) => axolotl_kernel_core::delete(s, &mut Kobj(k)),
        CNodeOp::Revoke(s) => axolotl_kernel_core::revoke(s, &mut Kobj(k)),
    };
    match done {
        Ok(()) => Done::Reply(0),
        Err(_) => Done::Preempted,
    }
}
