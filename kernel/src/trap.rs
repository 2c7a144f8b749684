//! Kernel entry from user level (syscalls, faults, interrupts) and the way back out.

use axolotl_abi::Fault;
use axolotl_abi::syndrome::{Esr, ec};

use crate::arch::context::UserContext;
use crate::arch::{cpu, fp_restore, fp_save, restore_user_context, timer};
use crate::state::{KERNEL, Kernel};
use crate::thread::{Tcb, TcbRef};
use crate::{fault, kprintln, syscall};

/// A thread entered the kernel: its stretch at user level (or as a guest) ends now and is
/// charged to it (`CpuTime`; only in a kernel built with `cpu-time`).
#[inline(always)]
fn charge_thread(k: &mut Kernel, t: *mut Tcb) {
    if cfg!(feature = "cpu-time") {
        let now = timer::now_unordered();
        // SAFETY: t is the live thread whose registers entry.S just saved.
        unsafe { (*t).cpu_cycles += now.wrapping_sub(k.cpu.since) };
        k.cpu.since = now;
    }
}

/// The kernel's stretch ends now: charged to it.
#[inline(always)]
fn charge_kernel(k: &mut Kernel) {
    if cfg!(feature = "cpu-time") {
        let now = timer::now_unordered();
        k.cpu.kernel += now.wrapping_sub(k.cpu.since);
        k.cpu.since = now;
    }
}

#[unsafe(no_mangle)]
extern "C" fn handle_user_sync(ctx: *mut UserContext, esr: u64) -> ! {
    // SAFETY: sole kernel entry in progress (interrupts masked, one core).
    let k = unsafe { KERNEL.get() };
    let t = ctx as *mut Tcb;
    charge_thread(k, t);
    // SAFETY: the registers were saved into the current thread's TCB, which is live.
    let tr = unsafe { TcbRef::new(t) };
    let esr = Esr(esr);
    let mut yielding = false;
    if crate::vcpu::is_guest(tr) {
        crate::vcpu::handle_exit(k, tr, esr);
        schedule_and_return(k, false)
    }
    match esr.ec() {
        ec::SVC64 => yielding = syscall::handle(k, t),
        ec::WFX => {
            // WFI/WFE from a thread: give the CPU away rather than stall it.
            let mut tr = tr;
            tr.ctx.elr += 4;
            yielding = true;
        }
        _ => user_fault(k, tr, esr),
    }
    schedule_and_return(k, yielding)
}

/// A processor fault of a user thread: a message to its fault endpoint, or, without one, a
/// decoded report and the thread stops.
///
/// Out of line so that system calls pay nothing for it: inlined, LLVM tested the abort
/// classes that `esr.abort()` picks before the SVC class in `handle_user_sync`'s dispatch,
/// 9 instructions on every system call (docs/benchmarks.md, "Kernel IPC"). Not `#[cold]`:
/// that moved the dispatch back (measured: 2 more per system call).
#[inline(never)]
fn user_fault(k: &mut Kernel, t: TcbRef, esr: Esr) {
    let c = &t.ctx;
    let f = match esr.abort() {
        Some(a) => Fault::VmFault {
            ip: c.elr,
            addr: cpu::read_far(),
            prefetch: a.instruction,
            fsr: esr.0,
            stored: None,
        },
        None => Fault::UserException {
            ip: c.elr,
            sp: c.sp,
            spsr: c.spsr,
            ec: esr.ec() as u64,
            iss: esr.iss() as u64,
        },
    };
    if crate::ipc::send_fault(k, t, f) {
        return;
    }
    fault::report(&t, esr, esr.class_name());
    stop_thread(k, t.ptr(), Some(fault::kind(esr)));
}

#[unsafe(no_mangle)]
extern "C" fn handle_user_irq(ctx: *mut UserContext, _esr: u64) -> ! {
    // SAFETY: sole kernel entry in progress.
    let k = unsafe { KERNEL.get() };
    charge_thread(k, ctx as *mut Tcb);
    let preempt = handle_interrupts(k);
    schedule_and_return(k, preempt)
}

#[unsafe(no_mangle)]
extern "C" fn handle_user_serror(ctx: *mut UserContext, esr: u64) -> ! {
    // SAFETY: sole kernel entry in progress.
    let k = unsafe { KERNEL.get() };
    let t = ctx as *mut Tcb;
    charge_thread(k, t);
    // SAFETY: the registers were saved into the current thread's TCB, which is live.
    let tr = unsafe { TcbRef::new(t) };
    if crate::vcpu::is_guest(tr) {
        crate::vcpu::handle_serror(k, tr, Esr(esr));
        schedule_and_return(k, false)
    }
    fault::report(&tr, Esr(esr), "SError");
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
        if irq == crate::BOARD.virt_timer_irq || irq == crate::BOARD.vgic_maintenance_irq {
            let event = crate::vcpu::on_ppi(k, irq);
            if let Some(g) = k.gic.as_mut() {
                g.eoi(irq);
            }
            if event {
                break;
            }
            continue;
        }
        if irq == hyp_timer {
            // The timer serves the tick and the deadlines of guests waiting for an
            // interrupt: only the tick's moment is a tick.
            let now = timer::now();
            if now >= k.next_tick {
                k.ticks += 1;
                k.next_tick = now + k.tick_cycles;
                expired |= k.sched.tick();
            }
            crate::vcpu::wake_due(k, now);
            if k.timeout.is_some_and(|d| now >= d) {
                k.timeout = None;
                deliver(k, axolotl_abi::TIMEOUT_IRQ);
            }
            crate::vcpu::arm_timer(k);
        } else if (irq as usize) < crate::state::MAX_IRQS && k.irq_claimed[irq as usize] {
            // Masked until the handler acks it (IrqHandlerAck), so a level interrupt does
            // not fire again before its driver ran; without a notification to signal (its
            // caps were deleted) it stays masked, as seL4's undelivered IRQ.
            if let Some(g) = k.gic.as_mut() {
                g.mask(irq);
            }
            deliver(k, irq);
        } else {
            kprintln!("kernel: spurious interrupt {irq}");
        }
        if let Some(g) = k.gic.as_mut() {
            g.eoi(irq);
        }
    }
    expired
}

/// Signals the notification bound to interrupt `irq`'s handler (its IRQ-node slot).
fn deliver(k: &mut Kernel, irq: u32) {
    match crate::state::IRQ_NODE.slot(irq).cap() {
        axolotl_kernel_core::Cap::Notification { ptr, badge, rights }
            if rights.contains(axolotl_abi::Rights::WRITE) =>
        {
            crate::ipc::signal(k, ptr, badge)
        }
        _ => kprintln!("kernel: undelivered interrupt {irq}"),
    }
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
    k.stopped_at = Some(k.ticks);
}

/// Picks the next thread and enters it; idles while nothing is runnable.
pub fn schedule_and_return(k: &mut Kernel, yielding: bool) -> ! {
    loop {
        // SAFETY: every TCB in the scheduler is live.
        let next = unsafe { k.sched.choose(yielding) };
        if !next.is_null() {
            if let Some(vs) = valid_vspace(k, next) {
                enter(k, next, vs);
            }
            // Its address space is gone: the thread cannot run (as in seL4, where it would
            // fault at once in an empty VSpace). It stops; the kernel carries on.
            stop_thread(k, next, Some("no valid VSpace"));
            continue;
        }
        idle(k);
    }
}

/// The thread's VSpace root and VMID, if its VSPACE slot still holds a VSpace that owns its
/// ASID; revoking the VSpace must not leave a thread running on freed tables.
pub fn valid_vspace(k: &Kernel, t: *mut Tcb) -> Option<(u64, u8)> {
    // SAFETY: the slot belongs to t's live TCB object.
    let s = unsafe {
        axolotl_kernel_core::SlotRef::from_addr(Tcb::slot_addr(t, crate::thread::slot::VSPACE))?
    };
    match s.cap() {
        axolotl_kernel_core::Cap::VSpace { ptr, asid: Some(a) }
            if k.asids.lookup(a) == Some(ptr) =>
        {
            Some((ptr, a as u8))
        }
        _ => None,
    }
}

pub fn enter(k: &mut Kernel, t: *mut Tcb, (root, vmid): (u64, u8)) -> ! {
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
    // SAFETY: the scheduler (or the fast path) chose t, a live thread.
    let tr = unsafe { TcbRef::new(t) };
    crate::vcpu::switch_to(k, tr);
    // Whether it is a guest is asked only of a thread with the timer (the rare case).
    let ptimer = tr.ptimer && !crate::vcpu::is_guest(tr);
    if ptimer != k.el0_ptimer {
        cpu::set_el0_ptimer(ptimer, !crate::vcpu::is_guest(tr));
        k.el0_ptimer = ptimer;
    }
    if k.vspace.switch(root, vmid as axolotl_kernel_core::Asid) {
        cpu::set_vspace(root, vmid);
    }
    charge_kernel(k);
    // SAFETY: the context is the thread's own saved state; restore_user_context leaves
    // SP_EL2 just past it for the next entry.
    unsafe { restore_user_context(&(*t).ctx) }
}

/// Waits for interrupts with them masked (WFI still wakes), so the kernel is never
/// re-entered; returns once a thread may be runnable.
fn idle(k: &mut Kernel) {
    let before = k.ticks;
    // No guest state stays live while nothing runs: its interrupts would have no thread.
    crate::vcpu::unload(k);
    charge_kernel(k);
    cpu::wfi();
    if cfg!(feature = "cpu-time") {
        let now = timer::now();
        k.cpu.idle += now.wrapping_sub(k.cpu.since);
        k.cpu.since = now;
    }
    handle_interrupts(k);
    if let Some(since) = k.stopped_at {
        // Liveness beacon while nothing runs: proves the kernel outlived its threads.
        let up = k.ticks - since;
        if k.ticks != before && (up == 100 || up.is_multiple_of(5000)) {
            kprintln!(
                "kernel: idle, no runnable threads; uptime {} ticks",
                k.ticks
            );
        }
    }
}
