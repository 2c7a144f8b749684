//! Untyped invocations: Retype (seL4 `decodeUntypedInvocation`, `invokeUntyped_Retype`). The
//! checks and the object creation themselves are kernel-core's `decode_retype` and
//! `invoke_retype`.

use axolotl_abi::Invocation;
use axolotl_kernel_core::SlotRef;
use axolotl_kernel_core::SyscallError;
use axolotl_kernel_core::untyped::{RetypeArgs, RetypePlan, decode_retype, invoke_retype};

use super::{Decoded, Done, Msg, refuse};
use crate::kobj::Kobj;
use crate::state::Kernel;

pub fn decode(m: &Msg, l: Invocation, untyped: SlotRef) -> Decoded<RetypePlan> {
    if l != Invocation::UntypedRetype {
        return Err(refuse!(
            SyscallError::IllegalOperation,
            "not an untyped invocation"
        ));
    }
    m.need(6)?;
    let (root, _) = m.extra_cap(0)?;
    let args = RetypeArgs {
        ty: m.mr(0),
        user_size_bits: m.mr(1),
        root,
        node_index: m.mr(2),
        node_depth: m.mr(3),
        node_offset: m.mr(4),
        node_window: m.mr(5),
    };
    Ok(decode_retype(untyped, &args)?)
}

pub fn perform(k: &mut Kernel, plan: RetypePlan) -> Done {
    invoke_retype(plan, &mut Kobj(k));
    Done::Reply(0)
}
