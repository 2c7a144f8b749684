use super::{CNode, Frame, IrqHandler, Notification, VSpace, cap_type, invoke_unit};
use crate::context::UserContext;
use crate::encode;
use crate::invoke::{InvocationError, invoke};
use axolotl_abi::{CPtr, USER_CONTEXT_WORDS};

cap_type!(
    /// A thread.
    Tcb
);

type R = Result<(), InvocationError>;

impl Tcb {
    /// `fault_ep` is resolved in the *caller's* CSpace (docs/abi.md); 0 = no fault handler.
    #[allow(clippy::too_many_arguments)]
    pub fn configure(
        self,
        fault_ep: CPtr,
        cspace_root: CNode,
        cspace_root_data: u64,
        vspace_root: VSpace,
        vspace_root_data: u64,
        buffer: u64,
        buffer_frame: Frame,
    ) -> R {
        let e = encode::tcb_configure(
            fault_ep,
            cspace_root.0,
            cspace_root_data,
            vspace_root.0,
            vspace_root_data,
            buffer,
            buffer_frame.0,
        );
        invoke_unit(self.0, &e)
    }

    pub fn set_space(
        self,
        fault_ep: CPtr,
        cspace_root: CNode,
        cspace_root_data: u64,
        vspace_root: VSpace,
        vspace_root_data: u64,
    ) -> R {
        let e = encode::tcb_set_space(
            fault_ep,
            cspace_root.0,
            cspace_root_data,
            vspace_root.0,
            vspace_root_data,
        );
        invoke_unit(self.0, &e)
    }

    pub fn set_ipc_buffer(self, buffer: u64, frame: Frame) -> R {
        invoke_unit(self.0, &encode::tcb_set_ipc_buffer(buffer, frame.0))
    }

    /// `authority`'s maximum controlled priority bounds `priority`.
    pub fn set_priority(self, authority: Tcb, priority: u64) -> R {
        invoke_unit(self.0, &encode::tcb_set_priority(authority.0, priority))
    }

    pub fn set_mc_priority(self, authority: Tcb, mcp: u64) -> R {
        invoke_unit(self.0, &encode::tcb_set_mc_priority(authority.0, mcp))
    }

    pub fn resume(self) -> R {
        invoke_unit(self.0, &encode::tcb_resume())
    }

    pub fn suspend(self) -> R {
        invoke_unit(self.0, &encode::tcb_suspend())
    }

    /// Writes the first `count` registers of `regs` (in `seL4_UserContext` order).
    pub fn write_registers(
        self,
        resume: bool,
        arch_flags: u64,
        count: usize,
        regs: &UserContext,
    ) -> R {
        invoke_unit(
            self.0,
            &encode::tcb_write_registers(resume, arch_flags, count, regs),
        )
    }

    /// Reads the first `count` registers; the rest of the result is 0.
    pub fn read_registers(
        self,
        suspend: bool,
        arch_flags: u64,
        count: usize,
    ) -> Result<UserContext, InvocationError> {
        let r = invoke(
            self.0,
            &encode::tcb_read_registers(suspend, arch_flags, count),
        )?;
        let n = r.len.min(USER_CONTEXT_WORDS);
        Ok(UserContext::from_words(&r.words[..n]))
    }

    /// The thread's CPU time and the kernel's (`TcbGetCpuTime`), in counter cycles.
    pub fn cpu_time(self) -> Result<CpuTime, InvocationError> {
        let r = invoke(self.0, &encode::tcb_get_cpu_time())?;
        let w = |i: usize| if i < r.len { r.words[i] } else { 0 };
        Ok(CpuTime {
            thread: w(0),
            kernel: w(1),
            idle: w(2),
            now: w(3),
        })
    }

    pub fn bind_notification(self, notification: Notification) -> R {
        invoke_unit(self.0, &encode::tcb_bind_notification(notification.0))
    }

    /// Lets the thread use the EL1 physical timer (CNTP_* and CNTPCT at EL0) or withdraws
    /// it; `authority` is the handler cap of the timer's interrupt
    /// (`axolotl_abi::PHYS_TIMER_PPI`).
    pub fn set_timer_access(self, enable: bool, authority: IrqHandler) -> R {
        invoke_unit(self.0, &encode::tcb_set_timer_access(enable, authority.0))
    }

    pub fn unbind_notification(self) -> R {
        invoke_unit(self.0, &encode::tcb_unbind_notification())
    }
}

/// What `TcbGetCpuTime` answers, in counter cycles (`axolotl_sys::time::frequency` a
/// second; under QEMU's `-icount shift=0` a cycle is 16 instructions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// The thread's own, at user level or as a guest, up to its last kernel entry.
    pub thread: u64,
    /// The kernel's own since boot (system calls, exits, interrupts, switches).
    pub kernel: u64,
    /// Idle since boot.
    pub idle: u64,
    /// The physical count when it was read.
    pub now: u64,
}
