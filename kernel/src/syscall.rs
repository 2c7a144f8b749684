//! System call dispatch. Returns true when the caller gives up the CPU.

use axolotl_abi::{Error, Syscall};

use crate::state::Kernel;
use crate::thread::Tcb;
use crate::{console, fault, kprintln, stage2, trap};

/// Longest string one DebugPuts call prints.
const PUTS_MAX: u64 = 256;

pub fn handle(k: &mut Kernel, t: *mut Tcb) -> bool {
    // SAFETY: t is the current, live thread.
    let tcb = unsafe { &mut *t };
    let nr = tcb.ctx.x[7];
    match Syscall::from_number(nr) {
        Some(Syscall::DebugPuts) => {
            tcb.ctx.x[0] = match debug_puts(tcb, tcb.ctx.x[0], tcb.ctx.x[1]) {
                Ok(()) => 0,
                Err(e) => e as u64,
            };
            false
        }
        Some(Syscall::DebugTicks) => {
            tcb.ctx.x[0] = k.ticks;
            false
        }
        Some(Syscall::Yield) => true,
        Some(Syscall::ThreadExit) => {
            kprintln!("kernel: thread '{}' (id {}) exited", tcb.name(), tcb.id);
            trap::stop_thread(k, t, None);
            false
        }
        // IPC arrives with issue #3; until then these are as unknown as any other number.
        _ => {
            let esr = crate::esr::Esr((crate::esr::ec::SVC64 as u64) << 26);
            fault::report(tcb, esr, "unknown syscall");
            kprintln!("kernel:   syscall number {nr}");
            trap::stop_thread(k, t, Some("unknown syscall"));
            false
        }
    }
}

/// Copies a string out of the thread's VSpace, page by page, through its stage-2 tables:
/// the kernel never dereferences a user address directly.
fn debug_puts(t: &Tcb, ptr: u64, len: u64) -> Result<(), Error> {
    if len > PUTS_MAX {
        return Err(Error::RangeError);
    }
    let end = ptr.checked_add(len).ok_or(Error::InvalidArgument)?;
    let mut buf = [0u8; PUTS_MAX as usize];
    // SAFETY: the thread's VSpace root is a live stage-2 table.
    let root = unsafe { stage2::Table::at(t.vspace_root) };
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
