//! Kernel entry from user level (syscalls, faults, interrupts) and the way back out.

use crate::arch::context::UserContext;
use crate::arch::{cpu, fp_restore, fp_save, restore_user_context, timer};
use crate::esr::{Esr, ec};
use crate::state::{KERNEL, Kernel};
use crate::thread::Tcb;
use crate::{fault, kprintln, syscall};

#[unsafe(no_mangle)]
extern "C" fn handle_user_sync(ctx: *mut UserContext, esr: u64) -> ! {
    // SAFETY: sole kernel entry in progress (interrupts masked, one core).
    let k = unsafe { KERNEL.get() };
    let t = ctx as *mut Tcb;
    let esr = Esr(esr);
    let mut yielding = false;
    match esr.ec() {
        ec::SVC64 => yielding = syscall::handle(k, t),
        ec::WFX => {
            // WFI/WFE from a thread: give the CPU away rather than stall it.
            // SAFETY: t is the current thread.
            unsafe { (*t).ctx.elr += 4 };
            yielding = true;
        }
        _ => {
            // SAFETY: t is the current thread.
            let tcb = unsafe { &*t };
            fault::report(tcb, esr, esr.class_name());
            stop_thread(k, t, Some(fault::kind(esr)));
        }
    }
    schedule_and_return(k, yielding)
}

#[unsafe(no_mangle)]
extern "C" fn handle_user_irq(_ctx: *mut UserContext, _esr: u64) -> ! {
    // SAFETY: sole kernel entry in progress.
    let k = unsafe { KERNEL.get() };
    let preempt = handle_interrupts(k);
    schedule_and_return(k, preempt)
}

#[unsafe(no_mangle)]
extern "C" fn handle_user_serror(ctx: *mut UserContext, esr: u64) -> ! {
    // SAFETY: sole kernel entry in progress.
    let k = unsafe { KERNEL.get() };
    let t = ctx as *mut Tcb;
    // SAFETY: t is the current thread.
    fault::report(unsafe { &*t }, Esr(esr), "SError");
    stop_thread(k, t, Some("SError"));
    schedule_and_return(k, false)
}

/// Takes every pending interrupt; true when the running thread's timeslice ran out.
pub fn handle_interrupts(k: &mut Kernel) -> bool {
    let mut expired = false;
    let hyp_timer = crate::BOARD.hyp_timer_irq;
    while let Some(irq) = k.gic.as_mut().and_then(|g| g.ack()) {
        if irq >= 1020 {
            break;
        }
        if irq == hyp_timer {
            k.ticks += 1;
            timer::arm(k.tick_cycles);
            expired |= k.sched.tick();
        } else {
            // IRQ handler capabilities arrive with issue #3; until then nothing else is
            // enabled, so anything here is spurious.
            kprintln!("kernel: spurious interrupt {irq}");
        }
        if let Some(g) = k.gic.as_mut() {
            g.eoi(irq);
        }
    }
    expired
}

/// Stops a thread for good; a fault (`why` is `Some`) is reported. The kernel continues.
pub fn stop_thread(k: &mut Kernel, t: *mut Tcb, why: Option<&str>) {
    // SAFETY: t is a live TCB.
    let tcb = unsafe { &*t };
    if let Some(why) = why {
        kprintln!(
            "kernel: thread '{}' (id {}) stopped ({why}): it has no fault handler; the kernel continues",
            tcb.name(),
            tcb.id
        );
    }
    // SAFETY: as above.
    unsafe { k.sched.make_inactive(t) };
    k.live_threads -= 1;
    if k.live_threads == 0 {
        k.all_stopped_at = Some(k.ticks);
    }
}

/// Picks the next thread and enters it; idles while nothing is runnable.
pub fn schedule_and_return(k: &mut Kernel, yielding: bool) -> ! {
    loop {
        // SAFETY: every TCB in the scheduler is live.
        let next = unsafe { k.sched.choose(yielding) };
        if !next.is_null() {
            enter(k, next);
        }
        idle(k);
    }
}

fn enter(k: &mut Kernel, t: *mut Tcb) -> ! {
    if k.fpu_owner != t {
        // SAFETY: fpu_owner (if any) and t are live TCBs; the kernel never uses FP itself.
        unsafe {
            if !k.fpu_owner.is_null() {
                fp_save(&mut (*k.fpu_owner).fp);
            }
            fp_restore(&(*t).fp);
        }
        k.fpu_owner = t;
    }
    // SAFETY: t is live.
    let (root, vmid) = unsafe { ((*t).vspace_root, (*t).vmid) };
    if k.vspace != root {
        cpu::set_vspace(root, vmid);
        k.vspace = root;
    }
    // SAFETY: the context is the thread's own saved state; restore_user_context leaves
    // SP_EL2 just past it for the next entry.
    unsafe { restore_user_context(&(*t).ctx) }
}

/// Waits for interrupts with them masked (WFI still wakes), so the kernel is never
/// re-entered; returns once a thread may be runnable.
fn idle(k: &mut Kernel) {
    let before = k.ticks;
    cpu::wfi();
    handle_interrupts(k);
    if let Some(since) = k.all_stopped_at {
        // Liveness beacon while nothing runs: proves the kernel outlived its threads.
        let up = k.ticks - since;
        if k.ticks != before && (up == 100 || up.is_multiple_of(5000)) {
            kprintln!(
                "kernel: idle, all threads stopped; uptime {} ticks",
                k.ticks
            );
        }
    }
}
