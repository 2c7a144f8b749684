//! Starting a thread in the root task's own address space (the standby refresher, the
//! self-checks' and benchmarks' threads): a TCB and an IPC buffer frame from untyped, the
//! given stack and entry.

use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{ObjectType, Rights, USER_CONTEXT_WORDS};
use axolotl_sys::alloc::ObjectAlloc;
use axolotl_sys::{CNode, Frame, Tcb, UserContext, VSpace, vm_attr};

/// A thread stack.
#[cfg(any(feature = "selftest-ipc", feature = "selftest-bench"))]
#[repr(C, align(16))]
pub struct Stack(pub [u8; 16384]);

#[cfg(any(feature = "selftest-ipc", feature = "selftest-bench"))]
impl Stack {
    pub const fn new() -> Self {
        Stack([0; 16384])
    }
}

#[cfg(any(feature = "selftest-ipc", feature = "selftest-bench"))]
pub fn stack_top(s: *mut Stack) -> u64 {
    s as u64 + core::mem::size_of::<Stack>() as u64
}

/// Creates and resumes a thread at `prio` running `entry` on `sp`, with its IPC buffer
/// mapped at `ipc_buffer` (skipped when something is mapped there already) and `fault_ep`
/// (0: none) as its fault handler.
pub fn spawn(
    a: &mut ObjectAlloc,
    entry: extern "C" fn() -> !,
    sp: u64,
    ipc_buffer: u64,
    prio: u64,
    fault_ep: u64,
) -> Result<Tcb, &'static str> {
    let tcb = Tcb(a.alloc(ObjectType::Tcb, 0).map_err(|_| "retype TCB")?);
    let frame = Frame(
        a.alloc(ObjectType::SmallFrame, 0)
            .map_err(|_| "retype frame")?,
    );
    let vspace = VSpace(init_cap::VSPACE);
    let _ = frame.map(vspace, ipc_buffer, Rights::RW, vm_attr::CACHEABLE);
    tcb.configure(
        fault_ep,
        CNode(init_cap::CNODE),
        0,
        vspace,
        0,
        ipc_buffer,
        frame,
    )
    .map_err(|_| "configure")?;
    tcb.set_priority(Tcb(init_cap::TCB), prio)
        .map_err(|_| "set priority")?;
    let ctx = UserContext {
        pc: entry as usize as u64,
        sp,
        tpidr_el0: ipc_buffer,
        ..Default::default()
    };
    tcb.write_registers(true, 0, USER_CONTEXT_WORDS, &ctx)
        .map_err(|_| "write registers")?;
    Ok(tcb)
}
