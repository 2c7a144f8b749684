//! VCPU objects, after seL4's ARM hypervisor design: a VCPU bound to a TCB makes that thread
//! a guest, running at EL1 in its VSpace (stage 2 with its VMID). Its exits become fault
//! messages to the thread's fault endpoint; the reply says how the guest resumes. The
//! invocations are `invoke/vcpu.rs`; this is the object logic.
//!
//! Switching: the CPU holds at most one VCPU's EL1 registers and virtual GIC interface
//! (`Kernel::loaded_vcpu`). Entering a thread loads its VCPU if another (or none) is loaded;
//! entering a native thread, or idling, saves the loaded one and puts back native settings.
//! So native threads, and with them every invocation, always find VCPU state in memory, and
//! a guest that exits to its VMM and is resumed is switched twice — simple and correct; a
//! guest preempted by an interrupt and resumed directly is not switched at all.

use axolotl_abi::syndrome::{Esr, ec, fault_ipa, pstate};
use axolotl_abi::vcpu::reg;
use axolotl_abi::{Fault, Resume};
use axolotl_kernel_config::GicLayout;

use axolotl_kernel_core::vtimer::{VtimerWake, vtimer_wake};

use crate::arch::vcpu::{self as hw, MAX_LRS, Vgic, VgicState};
use crate::arch::{cpu, timer};
use crate::state::Kernel;
use crate::thread::{Tcb, TcbRef, ThreadState};
use crate::{BOARD, fault, trap};

/// A VCPU object (4 KiB, retyped from untyped).
#[repr(C)]
pub struct Vcpu {
    /// The bound thread (null: none).
    pub tcb: *mut Tcb,
    pub regs: [u64; reg::COUNT as usize],
    pub vgic: VgicState,
    /// The guest's virtual timer interrupt fired and awaits `VcpuAckVppi`.
    pub vppi_masked: bool,
    /// FAR_EL2 of the last abort exit: the guest's virtual address, for an injected abort.
    pub exit_far: u64,
    /// Exits delivered so far: the number of the one the thread is in, or last took. A
    /// re-sent exit (`ipc::abort_reply`) keeps its number, so a restarted VMM tells the exit
    /// its predecessor committed from a new one (`reg::EXIT`).
    pub exits: u64,
    /// While its thread waits for an interrupt: the physical count at which its virtual
    /// timer fires (`u64::MAX`: it cannot).
    pub wfi_deadline: u64,
}

const _: () = assert!(core::mem::size_of::<Vcpu>() <= 4096);

impl Vcpu {
    /// # Safety
    /// `ptr` is a live VCPU object.
    pub unsafe fn at(ptr: u64) -> *mut Vcpu {
        ptr as *mut Vcpu
    }

    /// Initialises a zeroed VCPU object: MMU off, FP/SIMD allowed, nothing pending.
    ///
    /// # Safety
    /// `ptr` is a zeroed, kernel-owned 4 KiB VCPU object.
    pub unsafe fn init_object(ptr: u64) {
        // SAFETY: forwarded to the caller.
        let v = unsafe { &mut *(ptr as *mut Vcpu) };
        v.tcb = core::ptr::null_mut();
        v.regs[reg::SCTLR_EL1 as usize] = hw::SCTLR_EL1_DEFAULT;
        v.regs[reg::CPACR_EL1 as usize] = hw::CPACR_FP;
        v.regs[reg::VMPIDR_EL2 as usize] = VMPIDR_RES1;
        v.vppi_masked = false;
    }
}

/// MPIDR_EL1 bit 31 is RES1.
pub const VMPIDR_RES1: u64 = 1 << 31;

/// The board's virtual GIC interface.
pub fn vgic() -> Vgic {
    match BOARD.gic {
        GicLayout::V2 { gich, .. } => Vgic::V2 { gich },
        GicLayout::V3 { .. } => Vgic::V3,
    }
}

/// Boot: how many list registers there are; maintenance interrupts on; the guest timer's
/// PPI configured but off until a guest is loaded; debug/PMU registers trapped for guests.
pub fn init(k: &mut Kernel) {
    k.nr_lrs = vgic().nr_lrs();
    hw::init_mdcr();
    if let Some(g) = k.gic.as_mut() {
        g.enable(BOARD.vgic_maintenance_irq, true);
        g.enable(BOARD.virt_timer_irq, true);
        g.mask(BOARD.virt_timer_irq);
    }
}

fn save(k: &mut Kernel, v: *mut Vcpu) {
    // SAFETY: v is the live loaded VCPU.
    let v = unsafe { &mut *v };
    hw::save_el1(&mut v.regs);
    vgic().save(&mut v.vgic, k.nr_lrs);
}

fn restore(k: &mut Kernel, v: *mut Vcpu) {
    // SAFETY: v is a live VCPU bound to the thread being entered.
    let v = unsafe { &*v };
    vgic().restore(&v.vgic, k.nr_lrs);
    hw::restore_el1(&v.regs);
    if let Some(g) = k.gic.as_mut() {
        g.unmask(BOARD.vgic_maintenance_irq);
        if v.vppi_masked {
            g.mask(BOARD.virt_timer_irq);
        } else {
            g.unmask(BOARD.virt_timer_irq);
        }
    }
}

/// Saves the loaded VCPU (if any) and returns the CPU to native settings.
pub fn unload(k: &mut Kernel) {
    let v = k.loaded_vcpu;
    if v.is_null() {
        return;
    }
    save(k, v);
    hw::set_native();
    // Native CNTKCTL_EL1 again, EL0 timer access off until `trap::enter` grants it.
    crate::arch::cpu::set_el0_ptimer(false, true);
    k.el0_ptimer = false;
    if let Some(g) = k.gic.as_mut() {
        g.mask(BOARD.virt_timer_irq);
    }
    k.loaded_vcpu = core::ptr::null_mut();
}

/// Makes sure `v`'s state is in memory, not in the CPU, before it is read or changed.
pub fn sync(k: &mut Kernel, v: *mut Vcpu) {
    if k.loaded_vcpu == v {
        unload(k);
    }
}

/// Puts the CPU in the mode thread `t` runs in: its VCPU loaded, or native.
pub fn switch_to(k: &mut Kernel, t: TcbRef) {
    let want = t.vcpu;
    if k.loaded_vcpu == want {
        return;
    }
    if want.is_null() {
        unload(k);
        return;
    }
    if !k.loaded_vcpu.is_null() {
        save(k, k.loaded_vcpu);
    }
    restore(k, want);
    k.loaded_vcpu = want;
}

/// Breaks the binding of `v` (both directions).
pub fn dissociate(k: &mut Kernel, v: *mut Vcpu) {
    sync(k, v);
    // A guest waiting for an interrupt its VCPU can no longer take runs on (a native thread
    // now), as a ready one would.
    end_wait(k, v);
    // SAFETY: v is live; a bound thread is live (deleting either side dissociates first).
    unsafe {
        let t = (*v).tcb;
        if !t.is_null() {
            (*t).vcpu = core::ptr::null_mut();
            // A native thread runs under TGE, where an eret to EL1 is illegal and would
            // leave the CPU at EL2 with the thread's pc: back to EL0t.
            (*t).ctx.spsr = pstate::sanitise_spsr((*t).ctx.spsr, false);
        }
        (*v).tcb = core::ptr::null_mut();
    }
}

/// VcpuSetTcb: binds `v` and `t`, undoing any earlier binding of either.
pub fn bind(k: &mut Kernel, v: *mut Vcpu, mut t: TcbRef) {
    dissociate(k, v);
    // Its VCPU, if any, is live: deleting either side dissociates first.
    let old = t.vcpu;
    if !old.is_null() {
        dissociate(k, old);
    }
    // SAFETY: v is live.
    unsafe { (*v).tcb = t.ptr() };
    t.vcpu = v;
}

/// Whether thread `t` is a guest.
#[inline(always)]
pub fn is_guest(t: TcbRef) -> bool {
    !t.vcpu.is_null()
}

/// The stack pointer of the mode guest `t` resumes in.
pub fn read_sp(k: &mut Kernel, t: TcbRef) -> u64 {
    if pstate::uses_sp_el1(t.ctx.spsr) {
        sync(k, t.vcpu);
        // SAFETY: a guest's VCPU is live (deleting it unbinds the thread first).
        unsafe { (*t.vcpu).regs[reg::SP_EL1 as usize] }
    } else {
        t.ctx.sp
    }
}

pub fn write_sp(k: &mut Kernel, mut t: TcbRef, sp: u64) {
    if pstate::uses_sp_el1(t.ctx.spsr) {
        sync(k, t.vcpu);
        // SAFETY: as in `read_sp`.
        unsafe { (*t.vcpu).regs[reg::SP_EL1 as usize] = sp };
    } else {
        t.ctx.sp = sp;
    }
}

/// Sends a guest event to the thread's fault endpoint; without one the thread stops with a
/// report, as any faulting thread.
fn deliver(k: &mut Kernel, t: TcbRef, f: Fault, esr: Esr) {
    let v = t.vcpu;
    // SAFETY: t is a guest; its VCPU is live.
    unsafe { (*v).exits = (*v).exits.wrapping_add(1) };
    if crate::ipc::send_fault(k, t, f) {
        return;
    }
    fault::report(&t, esr, "guest exit");
    trap::stop_thread(k, t.ptr(), Some("guest exit"));
}

/// A synchronous exit of guest `t` (every exception class: unknown ones are delivered too).
pub fn handle_exit(k: &mut Kernel, mut t: TcbRef, esr: Esr) {
    let c = &mut t.ctx;
    match esr.ec() {
        ec::DABT_LOWER | ec::IABT_LOWER => {
            let a = esr.abort().expect("an abort class");
            let far = cpu::read_far();
            let stored = match a.access {
                Some(acc) if a.write && acc.register < 31 => c.x[acc.register as usize],
                _ => 0,
            };
            let ip = c.elr;
            // SAFETY: t is a guest, its VCPU live.
            unsafe { (*t.vcpu).exit_far = far };
            let f = Fault::VmFault {
                ip,
                addr: fault_ipa(cpu::read_hpfar(), far),
                prefetch: a.instruction,
                fsr: esr.0,
                stored: Some(stored),
            };
            deliver(k, t, f, esr);
        }
        class => {
            if class == ec::HVC64 {
                // The hardware returns past an HVC; the VMM sees the instruction itself, as
                // for every other exit, and skips it with ADVANCE.
                c.elr = c.elr.wrapping_sub(4);
            }
            let rt_value = match esr.sysreg() {
                Some(s) if s.rt < 31 => c.x[s.rt as usize],
                _ => 0,
            };
            let f = vcpu_fault(c, esr, rt_value);
            deliver(k, t, f, esr);
        }
    }
}

/// An SError taken from a guest: its VMM decides (a VCPU fault with the SError syndrome).
pub fn handle_serror(k: &mut Kernel, t: TcbRef, esr: Esr) {
    deliver(k, t, vcpu_fault(&t.ctx, esr, 0), esr);
}

fn vcpu_fault(c: &crate::arch::context::UserContext, esr: Esr, rt_value: u64) -> Fault {
    Fault::VcpuFault {
        esr: esr.0,
        ip: c.elr,
        spsr: c.spsr,
        x: [c.x[0], c.x[1], c.x[2], c.x[3]],
        rt_value,
    }
}

/// The VMM's reply to a guest's exit `f`, decoded (`axolotl_abi::Resume`): skip the
/// instruction, write a register, or fail the access with an abort. Replies to
/// asynchronous events (VGIC maintenance, VPPI) only resume. True when the guest is then to
/// wait for an interrupt (`wait_for_interrupt`).
pub fn apply_reply(k: &mut Kernel, mut caller: TcbRef, f: Fault, r: Resume) -> bool {
    let esr = match f {
        Fault::VmFault { fsr, .. } => Esr(fsr),
        Fault::VcpuFault { esr, .. } => Esr(esr),
        _ => return false,
    };
    let (advance, write, wait) = match r {
        Resume::InjectAbort => {
            inject_abort(k, caller, esr);
            return false;
        }
        Resume::Guest {
            advance,
            write,
            wait,
        } => (advance, write, wait),
        Resume::Retry | Resume::Registers { .. } => return false,
    };
    let c = &mut caller.ctx;
    if let Some((r, v)) = write {
        c.x[r as usize] = v;
    }
    if advance {
        c.elr = c.elr.wrapping_add(esr.instruction_len());
    }
    wait
}

/// Guest `t`, just answered with `resume::WAIT`, waits in `Kernel::wfi` until an interrupt is
/// due for its VCPU: a list register made pending (`VcpuInjectIrq`), `VcpuAckVppi`, or its
/// virtual timer's deadline (`wake_due`). If one is due already — a list register pending
/// (its VMM injected before replying) or the timer's condition met — it is made ready at
/// once instead: an interrupt that came between the exit and the reply is not lost.
pub fn wait_for_interrupt(k: &mut Kernel, mut t: TcbRef) {
    let v = t.vcpu;
    sync(k, v);
    // SAFETY: t is a guest (its VMM's reply said so), its VCPU live.
    let vr = unsafe { &mut *v };
    let g = vgic();
    let pending = vr.vgic.lr[..k.nr_lrs.min(MAX_LRS)]
        .iter()
        .any(|&lr| g.lr_pending(lr));
    let r = &vr.regs;
    let wake = vtimer_wake(
        r[reg::CNTV_CTL_EL0 as usize],
        r[reg::CNTV_CVAL_EL0 as usize],
        r[reg::CNTVOFF_EL2 as usize],
        !vr.vppi_masked,
        timer::now(),
    );
    let deadline = match wake {
        VtimerWake::Now => None,
        VtimerWake::At(d) => Some(d),
        VtimerWake::Never => Some(u64::MAX),
    };
    match deadline {
        Some(d) if !pending => {
            vr.wfi_deadline = d;
            t.state = ThreadState::WaitingForInterrupt;
            // SAFETY: t was blocked on its reply, so in no queue; the members are live.
            unsafe { k.wfi.push(t) };
            if d != u64::MAX {
                arm_timer(k);
            }
        }
        // SAFETY: as above: in no queue.
        _ => unsafe { k.sched.enqueue(t.ptr()) },
    }
}

/// The thread of `v`, if it waits for an interrupt, runs again.
pub fn end_wait(k: &mut Kernel, v: *mut Vcpu) {
    // SAFETY: v is live; a bound thread is live.
    let t = unsafe { (*v).tcb };
    if t.is_null() {
        return;
    }
    // SAFETY: as above.
    let t = unsafe { TcbRef::new(t) };
    if t.state == ThreadState::WaitingForInterrupt {
        // SAFETY: a waiting thread is in `k.wfi` and no other queue.
        unsafe {
            k.wfi.remove(t);
            k.sched.enqueue(t.ptr());
        }
    }
}

/// The timer interrupt at physical count `now`: waiting guests whose virtual timer is due
/// run again (the timer itself then fires in hardware once they are loaded, as a VPPI).
pub fn wake_due(k: &mut Kernel, now: u64) {
    let mut p = k.wfi.head;
    while !p.is_null() {
        // SAFETY: members of `k.wfi` are live guests (they leave it before deletion).
        let t = unsafe { TcbRef::new(p) };
        p = t.next;
        // SAFETY: a waiting guest's VCPU is live (dissociating ends the wait).
        if unsafe { (*t.vcpu).wfi_deadline } <= now {
            // SAFETY: as above: in `k.wfi` only.
            unsafe {
                k.wfi.remove(t);
                k.sched.enqueue(t.ptr());
            }
        }
    }
}

/// Arms the kernel's timer for the next tick, the earliest waiting guest's deadline or the
/// kernel timeout's.
pub fn arm_timer(k: &mut Kernel) {
    let mut at = k.next_tick.min(k.timeout.unwrap_or(u64::MAX));
    let mut p = k.wfi.head;
    while !p.is_null() {
        // SAFETY: as in `wake_due`.
        let t = unsafe { TcbRef::new(p) };
        // SAFETY: as in `wake_due`.
        at = at.min(unsafe { (*t.vcpu).wfi_deadline });
        p = t.next;
    }
    timer::arm_at(at);
}

/// Enters the guest's EL1 abort handler as a synchronous external abort of the access that
/// exited would (Arm ARM's exception entry to AArch64 EL1).
fn inject_abort(k: &mut Kernel, mut t: TcbRef, exit: Esr) {
    sync(k, t.vcpu);
    // SAFETY: t is a guest blocked on its exit; its VCPU is live.
    let v = unsafe { &mut *t.vcpu };
    let c = &mut t.ctx;
    let from_el1 = pstate::el(c.spsr) == 1;
    let aarch32 = c.spsr & pstate::AARCH32 != 0;
    let instruction = exit.ec() == ec::IABT_LOWER;
    let class = match (instruction, from_el1) {
        (false, true) => ec::DABT_SAME,
        (false, false) => ec::DABT_LOWER,
        (true, true) => ec::IABT_SAME,
        (true, false) => ec::IABT_LOWER,
    };
    let r = &mut v.regs;
    r[reg::ESR_EL1 as usize] = Esr::sync_external_abort(class, !instruction && exit.wnr()).0;
    r[reg::FAR_EL1 as usize] = v.exit_far;
    r[reg::ELR_EL1 as usize] = c.elr;
    r[reg::SPSR_EL1 as usize] = c.spsr;
    let offset = match (from_el1, c.spsr & pstate::SP_ELX != 0, aarch32) {
        (true, true, _) => 0x200,
        (true, false, _) => 0x000,
        (false, _, false) => 0x400,
        (false, _, true) => 0x600,
    };
    c.elr = (r[reg::VBAR_EL1 as usize] & !0x7ff) + offset;
    c.spsr = pstate::EL1H_DAIF_MASKED;
}

/// A private interrupt that belongs to the loaded guest (its virtual timer, or the virtual
/// GIC's maintenance interrupt). True when it became an event for the guest's VMM; the
/// caller then stops taking interrupts, since the guest can carry one event at a time (the
/// rest stay pending at the GIC until the guest runs again).
pub fn on_ppi(k: &mut Kernel, irq: u32) -> bool {
    let v = k.loaded_vcpu;
    // SAFETY: the current thread, if any, is live.
    let t = (!k.sched.current.is_null()).then(|| unsafe { TcbRef::new(k.sched.current) });
    let t = match t {
        Some(t) if !v.is_null() && t.vcpu == v && t.state == ThreadState::Running => {
            t.fault.is_none().then_some(t)
        }
        _ => None,
    };
    if irq == BOARD.virt_timer_irq {
        // Masked until the VMM acks it (seL4's VPPI design): the guest's timer is
        // level-triggered and stays asserted until the guest itself handles it.
        if let Some(g) = k.gic.as_mut() {
            g.mask(irq);
        }
        let Some(t) = t else {
            return false;
        };
        // SAFETY: v is live.
        unsafe { (*v).vppi_masked = true };
        deliver(k, t, Fault::VppiEvent { irq: irq as u64 }, Esr(0));
        return true;
    }
    let eisr = if t.is_some() { vgic().eoi_status() } else { 0 };
    let (Some(t), false) = (t, eisr == 0) else {
        // Not a completion the kernel can report: keep it from firing again while this
        // guest stays loaded (loading a guest unmasks it).
        if let Some(g) = k.gic.as_mut() {
            g.mask(irq);
        }
        return false;
    };
    let idx = eisr.trailing_zeros() as usize;
    // Clearing the entry ends the maintenance condition and frees it for the next injection.
    vgic().write_lr(idx, 0);
    deliver(k, t, Fault::VgicMaintenance { lr: idx as u64 }, Esr(0));
    true
}
