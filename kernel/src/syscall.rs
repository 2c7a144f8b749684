//! System call dispatch. Returns true when the caller gives up the CPU.

use axolotl_abi::{Error, Fault, Rights, Syscall};
use axolotl_kernel_core::Cap;

use crate::state::Kernel;
use crate::thread::{Tcb, TcbRef};
use crate::{console, fault, invoke, ipc, kprintln, stage2};

/// Longest string one DebugPuts call prints.
const PUTS_MAX: u64 = 256;

pub fn handle(k: &mut Kernel, t: *mut Tcb) -> bool {
    // SAFETY: t is the current, live thread.
    let mut tcb = unsafe { TcbRef::new(t) };
    let nr = tcb.ctx.x[7];
    let cptr = tcb.ctx.x[0];
    let Some(sys) = Syscall::from_number(nr) else {
        unknown_syscall(k, tcb, nr);
        return false;
    };
    match sys {
        Syscall::DebugPuts => {
            let r = match debug_puts(k, tcb, tcb.ctx.x[0], tcb.ctx.x[1]) {
                Ok(()) => 0,
                Err(e) => e as u64,
            };
            tcb.ctx.x[0] = r;
        }
        Syscall::DebugTicks => tcb.ctx.x[0] = k.ticks,
        Syscall::Yield => return true,
        Syscall::ThreadExit => {
            kprintln!("kernel: thread '{}' (id {}) exited", tcb.name(), tcb.id);
            crate::trap::stop_thread(k, t, None);
        }
        Syscall::Reply => ipc::reply(k, tcb),
        Syscall::ReplyRecv => {
            crate::fastpath::reply_recv(k, tcb);
            ipc::reply(k, tcb);
            receive(k, tcb, cptr, true);
        }
        Syscall::Recv | Syscall::Wait => receive(k, tcb, cptr, true),
        Syscall::NBRecv | Syscall::Poll => receive(k, tcb, cptr, false),
        Syscall::Call | Syscall::Send | Syscall::NBSend | Syscall::Signal => {
            let call = sys == Syscall::Call;
            match invoke::lookup_cap(tcb, cptr) {
                Err(f) => cap_fault(k, tcb, cptr, false, f),
                Ok((Cap::Endpoint { ptr, badge, rights }, _)) if rights.contains(Rights::WRITE) => {
                    if call {
                        crate::fastpath::call(k, tcb, ptr, badge, rights);
                    }
                    ipc::send(k, tcb, ptr, badge, rights, sys != Syscall::NBSend, call)
                }
                Ok((Cap::Notification { ptr, badge, rights }, _))
                    if rights.contains(Rights::WRITE) =>
                {
                    ipc::signal(k, ptr, badge)
                }
                // seL4: a send without the write right, or on a cap that cannot be invoked,
                // is an InvalidCapability error (silent for Send); only failed lookups fault.
                Ok((
                    cap @ (Cap::Endpoint { .. }
                    | Cap::Notification { .. }
                    | Cap::Reply { .. }
                    | Cap::Null),
                    _,
                )) => invoke::refused(
                    tcb,
                    axolotl_abi::MessageInfo::from_word(tcb.ctx.x[1]).label(),
                    cap,
                    invoke::refuse!(
                        axolotl_kernel_core::SyscallError::InvalidCapability { arg: 0 },
                        "a send without the write right, or to a cap that takes no message"
                    ),
                    call,
                ),
                Ok((cap, slot)) => invoke::invoke(k, tcb, cap, slot, call),
            }
        }
    }
    false
}

fn receive(k: &mut Kernel, t: TcbRef, cptr: u64, blocking: bool) {
    match invoke::lookup_cap(t, cptr) {
        Ok((Cap::Endpoint { ptr, rights, .. }, _)) if rights.contains(Rights::READ) => {
            ipc::recv(k, t, ptr, blocking)
        }
        Ok((Cap::Notification { ptr, rights, .. }, _)) if rights.contains(Rights::READ) => {
            ipc::wait(k, t, ptr, blocking)
        }
        Ok(_) => cap_fault(
            k,
            t,
            cptr,
            true,
            axolotl_kernel_core::cspace::LookupFault::InvalidRoot,
        ),
        Err(f) => cap_fault(k, t, cptr, true, f),
    }
}

/// A capability lookup failed on a send or receive: a cap fault to the thread's handler.
///
/// Cold and out of line, as `unknown_syscall`: told so, LLVM tests the SVC class before
/// WFx in `handle_user_sync` and keeps `receive`'s registers where the Wait path wants
/// them, 2 or 3 instructions off every system call (docs/benchmarks.md, "Kernel IPC").
#[cold]
#[inline(never)]
fn cap_fault(
    k: &mut Kernel,
    mut t: TcbRef,
    cptr: u64,
    in_recv: bool,
    f: axolotl_kernel_core::cspace::LookupFault,
) {
    // The syscall restarts once the handler replies (seL4), so the PC goes back to it
    // (ELR points past the `svc`).
    t.ctx.elr -= 4;
    let ip = t.ctx.elr;
    let fault = Fault::CapFault {
        ip,
        cptr,
        in_receive_phase: in_recv,
        lookup: f.into(),
    };
    deliver_fault(k, t, fault, "capability fault");
}

#[cold]
#[inline(never)]
fn unknown_syscall(k: &mut Kernel, mut t: TcbRef, nr: u64) {
    // As seL4, the fault IP is the `svc` itself: a handler that emulates the call writes
    // back a PC past it, one that does nothing makes the thread retry (ELR points past it).
    t.ctx.elr -= 4;
    let c = t.ctx;
    let mut x = [0; 8];
    x.copy_from_slice(&c.x[..8]);
    let fault = Fault::UnknownSyscall {
        x,
        ip: c.elr,
        sp: c.sp,
        lr: c.x[30],
        spsr: c.spsr,
        syscall: nr,
    };
    deliver_fault(k, t, fault, "unknown syscall");
}

/// Sends a fault to the thread's fault endpoint, or reports it and stops the thread.
pub fn deliver_fault(k: &mut Kernel, tcb: TcbRef, f: Fault, what: &str) {
    if ipc::send_fault(k, tcb, f) {
        return;
    }
    kprintln!(
        "kernel: FAULT in thread '{}' (id {}): {what}",
        tcb.name(),
        tcb.id
    );
    fault::dump_registers(&tcb.ctx);
    crate::trap::stop_thread(k, tcb.ptr(), Some(what));
}

/// Copies a string out of the thread's VSpace, page by page, through its stage-2 tables:
/// the kernel never dereferences a user address directly.
fn debug_puts(k: &Kernel, t: TcbRef, ptr: u64, len: u64) -> Result<(), Error> {
    if len > PUTS_MAX {
        return Err(Error::RangeError);
    }
    let end = ptr.checked_add(len).ok_or(Error::InvalidArgument)?;
    let mut buf = [0u8; PUTS_MAX as usize];
    let (root, _) = crate::trap::valid_vspace(k, t.ptr()).ok_or(Error::InvalidArgument)?;
    // SAFETY: valid_vspace found the thread's VSpace root, a live stage-2 table.
    let root = unsafe { stage2::Table::at(root) };
    let mut va = ptr;
    while va < end {
        let (pa, attrs) = root.lookup(va).ok_or(Error::InvalidArgument)?;
        if !attrs.read || attrs.kind == stage2::MemKind::Device {
            return Err(Error::InvalidArgument);
        }
        let n = (stage2::PAGE_SIZE - (va % stage2::PAGE_SIZE)).min(end - va);
        let off = (va - ptr) as usize;
        // SAFETY: [pa, pa + n) lies in one mapped RAM page, identity mapped in the kernel.
        unsafe {
            core::ptr::copy_nonoverlapping(pa as *const u8, buf[off..].as_mut_ptr(), n as usize)
        };
        va += n;
    }
    console::print_user_bytes(&buf[..len as usize]);
    Ok(())
}
