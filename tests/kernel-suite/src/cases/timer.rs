//! The EL1 physical timer at user level: a thread may program CNTP_* only once granted with
//! `TcbSetTimerAccess`, whose authority is the handler cap of the timer's PPI; the PPI then
//! reaches the thread through that handler's notification like any IRQ.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, expect_err, set_shared, shared};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, FaultLabel, MessageInfo, PHYS_TIMER_PPI, Rights, TIMEOUT_IRQ};
use axolotl_sys::time::{counter, frequency};
use axolotl_sys::{Endpoint, IrqControl, IrqHandler, Notification, syscall};

const IRQ_CONTROL: IrqControl = IrqControl(init_cap::IRQ_CONTROL);
/// Exception class of a trapped MSR/MRS.
const EC_SYSREG: u64 = 0x18;
const FAULT_BADGE: u64 = 0xfa;
const DONE_BADGE: u64 = 0xd0;
/// Shared words: the thread's done endpoint cap, its notification, results.
const DONE_EP: usize = 12;
const NTFN: usize = 13;

fn read_ctl() -> u64 {
    let v: u64;
    // SAFETY: a timer register read; traps unless the thread was granted the timer.
    unsafe { core::arch::asm!("mrs {}, cntp_ctl_el0", out(reg) v) };
    v
}

fn done() {
    syscall::send(shared(DONE_EP), MessageInfo::new(0, 0, 0, 0), [0; 4]);
}

/// Touches the physical timer twice (a read, then a write); each access faults without the
/// grant (the handler skips it).
fn ungranted(_: u64) {
    set_shared(0, read_ctl());
    // SAFETY: as in `read_ctl`; the value would disable the timer.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 0u64) };
    done();
}

/// Arms the timer 1 ms ahead, waits for its interrupt, records the badge and CNTP_CTL, then
/// disables the timer so the level interrupt drops.
fn granted(_: u64) {
    let frq: u64;
    // SAFETY: reading the counter frequency has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) frq) };
    // SAFETY: the timer is this thread's by grant.
    unsafe {
        core::arch::asm!(
            "msr cntp_tval_el0, {t}",
            "msr cntp_ctl_el0, {c}",
            "isb",
            t = in(reg) frq / 1000,
            c = in(reg) 1u64,
        )
    };
    set_shared(0, syscall::wait(shared(NTFN)));
    set_shared(1, read_ctl());
    // SAFETY: as above.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", "isb", in(reg) 0u64) };
    done();
}

fn setup(env: &mut Env) -> Result<(Endpoint, u64), Fail> {
    let ep = env.endpoint()?;
    let fep = env.mint(ep.0, Rights::ALL, FAULT_BADGE)?;
    set_shared(DONE_EP, env.mint(ep.0, Rights::ALL, DONE_BADGE)?);
    Ok((ep, fep))
}

/// Without the grant both a CNTP_* read and a write trap (MSR/MRS class), as user exceptions
/// to the fault endpoint.
pub fn el0_without_grant_faults(env: &mut Env) -> Result<(), Fail> {
    let (ep, fep) = setup(env)?;
    env.spawn(ungranted, 0, 100, fep)?;
    for _access in ["mrs cntp_ctl_el0", "msr cntp_ctl_el0"] {
        let m = ep.recv();
        ensure_eq!(
            (m.label(), m.badge),
            (FaultLabel::UserException as u64, FAULT_BADGE),
            "fault label, badge of a CNTP_CTL_EL0 access"
        );
        let [ip, sp, spsr, ec] = m.mrs;
        ensure_eq!(ec, EC_SYSREG, "exception class of a CNTP_CTL_EL0 access");
        syscall::reply(MessageInfo::new(0, 0, 0, 3), [ip + 4, sp, spsr, 0]);
    }
    let m = ep.recv();
    ensure_eq!((m.label(), m.badge), (0, DONE_BADGE), "thread finished");
    Ok(())
}

fn grant_case(env: &mut Env, h: IrqHandler) -> Result<(), Fail> {
    let (ep, fep) = setup(env)?;
    IRQ_CONTROL
        .get(PHYS_TIMER_PPI as u64, false, ROOT_CNODE, h.0, D)
        .ctx("IrqControlGet 30")?;
    let n = env.notification()?;
    set_shared(NTFN, n.0);
    h.set_notification(Notification(env.mint(n.0, Rights::ALL, 0x40)?))
        .ctx("SetNotification")?;
    let t = env.thread(granted, 0, 100, fep)?;
    // Only the timer PPI's handler is authority.
    expect_err(
        t.tcb.set_timer_access(true, IrqHandler(n.0)),
        Error::InvalidCapability,
        "grant with a notification cap",
    )?;
    let other = IrqHandler(env.slot()?);
    IRQ_CONTROL
        .get(34, false, ROOT_CNODE, other.0, D)
        .ctx("IrqControlGet 34")?;
    expect_err(
        t.tcb.set_timer_access(true, other),
        Error::InvalidCapability,
        "grant with another IRQ's handler",
    )?;
    ROOT_CNODE
        .delete(other.0, D)
        .ctx("delete IRQ 34's handler")?;
    t.tcb.set_timer_access(true, h).ctx("TcbSetTimerAccess")?;
    t.tcb.resume().ctx("TcbResume")?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.badge, m.mrs[3]),
        (0, DONE_BADGE, 0),
        "granted thread finished (label, badge, word 3: a fault's exception class)"
    );
    h.ack().ctx("IrqHandlerAck")?;
    ensure_eq!(shared(0), 0x40, "notification word from PPI 30");
    // ENABLE and ISTATUS: the timer had fired when its interrupt arrived.
    ensure_eq!(shared(1) & 0b101, 0b101, "CNTP_CTL_EL0 after the interrupt");

    // Withdrawn, the same accesses trap again.
    let u = env.thread(ungranted, 0, 100, fep)?;
    u.tcb.set_timer_access(true, h).ctx("grant")?;
    u.tcb.set_timer_access(false, h).ctx("withdraw")?;
    u.tcb.resume().ctx("TcbResume")?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.mrs[3]),
        (FaultLabel::UserException as u64, EC_SYSREG),
        "access after the grant was withdrawn"
    );
    u.tcb.suspend().ctx("TcbSuspend")?;
    Ok(())
}

/// A granted thread programs the timer and gets PPI 30 through its handler's notification.
pub fn el0_grant_delivers_ppi(env: &mut Env) -> Result<(), Fail> {
    let h = IrqHandler(env.slot()?);
    let r = grant_case(env, h);
    // The next case (or a rerun) may claim PPI 30 again.
    let _ = ROOT_CNODE.delete(h.0, D);
    r
}

/// Yields until the counter passes `until`: a deadline that was going to fire has had its
/// chance.
fn sit_until(until: u64) {
    while counter() < until {
        axolotl_sys::yield_now();
    }
}

const TIMEOUT_BADGE: u64 = 0x80;

/// Sets a deadline and withdraws it (`withdraw`), then checks nothing is signalled after the
/// deadline has passed. QEMU without -icount runs on host time: a host that preempts the
/// vCPU between the two calls can let the deadline pass before it is withdrawn, and then its
/// signal is right. Such a try proves nothing and is made again with a wider margin; a
/// withdrawal in time that still signals fails at once.
fn withdrawn(
    n: Notification,
    ms: u64,
    what: &str,
    mut withdraw: impl FnMut(u64) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let mut margin = 2 * ms;
    for _ in 0..6 {
        let at = counter() + margin;
        withdraw(at)?;
        let done = counter();
        sit_until(at + 3 * ms);
        let word = syscall::poll(n.0);
        if done < at {
            ensure_eq!(word, 0, what);
            return Ok(());
        }
        margin *= 4;
    }
    Err(fail!(
        "{what}: the host never let the deadline be withdrawn before it passed"
    ))
}

fn timeout_case(env: &mut Env, h: IrqHandler) -> Result<(), Fail> {
    // A deadline belongs to the kernel timeout's handler alone.
    let other = IrqHandler(env.slot()?);
    IRQ_CONTROL
        .get(34, false, ROOT_CNODE, other.0, D)
        .ctx("IrqControlGet 34")?;
    expect_err(
        other.set_deadline(Some(1)),
        Error::IllegalOperation,
        "a deadline on IRQ 34's handler",
    )?;
    ROOT_CNODE
        .delete(other.0, D)
        .ctx("delete IRQ 34's handler")?;
    IRQ_CONTROL
        .get(TIMEOUT_IRQ as u64, false, ROOT_CNODE, h.0, D)
        .ctx("IrqControlGet of the kernel timeout")?;
    let again = env.slot()?;
    expect_err(
        IRQ_CONTROL.get(TIMEOUT_IRQ as u64, false, ROOT_CNODE, again, D),
        Error::RevokeFirst,
        "a second handler of the kernel timeout",
    )?;
    let n = env.notification()?;
    h.set_notification(Notification(env.mint(n.0, Rights::ALL, TIMEOUT_BADGE)?))
        .ctx("SetNotification")?;
    let ms = frequency() / 1000;
    let ticks = axolotl_sys::debug_ticks();

    // Fires at its deadline, not before; 3 ms is shorter than a tick (2 ms) plus the wait of
    // a tick-granular timer could hide.
    let at = counter() + 3 * ms;
    h.set_deadline(Some(at)).ctx("IrqHandlerSetDeadline")?;
    let w = syscall::wait(n.0);
    let woke = counter();
    ensure_eq!(
        w,
        TIMEOUT_BADGE,
        "notification word from the kernel timeout"
    );
    ensure!(woke >= at, "woken {} counts before the deadline", at - woke);

    // Cancelled (0), it does not fire.
    withdrawn(n, ms, "a cancelled deadline's signal", |at| {
        h.set_deadline(Some(at)).ctx("set")?;
        h.set_deadline(None).ctx("cancel")
    })?;

    // A deadline already past fires at once; a new one replaces the last.
    h.set_deadline(Some(counter() + 1000 * ms)).ctx("far")?;
    h.set_deadline(Some(1)).ctx("past")?;
    ensure_eq!(syscall::wait(n.0), TIMEOUT_BADGE, "a past deadline");

    // Cleared, the handler drops its deadline and no GIC line is touched: the kernel's tick,
    // which carries the timeout, goes on.
    withdrawn(n, ms, "a cleared handler's deadline", |at| {
        h.set_deadline(Some(at)).ctx("set before clear")?;
        h.clear().ctx("IrqHandlerClear")
    })?;
    let later = axolotl_sys::debug_ticks();
    sit_until(counter() + 10 * ms);
    ensure!(
        axolotl_sys::debug_ticks() > later && later > ticks,
        "the kernel's tick stopped ({ticks} -> {later} -> {})",
        axolotl_sys::debug_ticks()
    );
    Ok(())
}

/// The kernel timeout (`TIMEOUT_IRQ`): a deadline served by the kernel's own timer, so that a
/// thread needing wake-ups leaves the EL1 physical timer to others.
pub fn kernel_timeout(env: &mut Env) -> Result<(), Fail> {
    let h = IrqHandler(env.slot()?);
    let r = timeout_case(env, h);
    let _ = ROOT_CNODE.delete(h.0, D);
    r
}
