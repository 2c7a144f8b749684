//! Hostile cases for the IRQ table (issue #13): what an attacker holding an IRQ handler and
//! some untyped memory would try. The kernel's binding of an interrupt to a notification must
//! never outlive the notification (delivery would write into reused memory) and must end
//! when either side goes (docs/security.md, "Cached kernel pointers").

use super::irq::{IRQ_CONTROL, RTC_IRQ, rtc_arm, rtc_fired, rtc_mapped, rtc_quiet};
use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, expect_err};
use axolotl_abi::{Error, ObjectType as T, Rights};
use axolotl_sys::{CNode, IrqHandler, Notification, Untyped, debug_ticks, yield_now};

/// Word 0 of an IrqControl cap (tag 10 in bits 63..59, lib/kernel-core cap.rs): the badge
/// an attacker picks so that OR-ing it into zeroed slot memory forges that cap.
const FORGED_IRQ_CONTROL: u64 = 10 << 59;
const CNODE_BITS: u64 = 4;

/// Binds the RTC's interrupt to a notification, deletes every cap to the notification, frees
/// and retypes its memory as a CNode, then raises the interrupt: no slot of the CNode may
/// change. (Before the IRQ node, the kernel kept the notification's address and OR-ed the
/// badge into slot 0: a forged IrqControl cap.)
pub fn ntfn_deleted_memory_retyped(env: &mut Env) -> Result<(), Fail> {
    let mut top = None;
    let r = ntfn_deleted_case(env, &mut top);
    if let Some(t) = top {
        ROOT_CNODE.revoke(t.0, D).ctx("revoke the device untyped")?;
    }
    r
}

fn ntfn_deleted_case(env: &mut Env, top: &mut Option<Untyped>) -> Result<(), Fail> {
    let v = rtc_mapped(env, top)?;
    // Memory the attacker owns: first a notification, later a CNode at the same address.
    let u = Untyped(env.alloc(T::Untyped, 12)?);
    let n = env.slot()?;
    u.retype(T::Notification, 0, ROOT_CNODE, 0, 0, n, 1)
        .ctx("notification from the small untyped")?;
    let nb = env.mint(n, Rights::ALL, FORGED_IRQ_CONTROL)?;
    let h = IrqHandler(env.slot()?);
    IRQ_CONTROL
        .get(RTC_IRQ, false, ROOT_CNODE, h.0, D)
        .ctx("IrqControlGet 34")?;
    h.set_notification(Notification(nb))
        .ctx("SetNotification")?;
    ROOT_CNODE.delete(nb, D).ctx("delete the badged cap")?;
    ROOT_CNODE.delete(n, D).ctx("delete the notification cap")?;
    ROOT_CNODE.revoke(u.0, D).ctx("revoke the small untyped")?;
    let c = env.slot()?;
    u.retype(T::CNode, CNODE_BITS, ROOT_CNODE, 0, 0, c, 1)
        .ctx("CNode over the notification's memory")?;
    rtc_arm(v);
    let hz = crate::harness::tick_hz(env);
    let deadline = debug_ticks() + 3 * hz;
    while !rtc_fired(v) && debug_ticks() < deadline {
        yield_now();
    }
    let fired = rtc_fired(v);
    // The kernel takes the interrupt as soon as the line rises; give it a few ticks anyway.
    let settle = debug_ticks() + hz / 20 + 1;
    while debug_ticks() < settle {
        yield_now();
    }
    rtc_quiet(v);
    h.ack().ctx("IrqHandlerAck")?;
    ensure!(fired, "the RTC alarm never went off");
    let scratch = env.slot()?;
    for i in 0..1u64 << CNODE_BITS {
        match ROOT_CNODE.copy(scratch, D, CNode(c), i, CNODE_BITS, Rights::ALL) {
            Err(e) if e.error == Error::FailedLookup => {}
            Ok(()) => {
                return Err(fail!(
                    "slot {i} of the new CNode holds a cap the interrupt wrote there"
                ));
            }
            Err(e) => {
                return Err(fail!(
                    "slot {i} of the new CNode is not empty after the interrupt: {e:?}"
                ));
            }
        }
    }
    h.clear().ctx("IrqHandlerClear")?;
    Ok(())
}

/// The binding is a cap the kernel holds: it keeps the notification alive, and deleting the
/// handler or IrqHandlerClear drops it. Observed through a bound thread: finalising a
/// notification (its last cap deleted) unbinds it, so the TCB's unbind then fails.
pub fn handler_deleted_or_cleared_unbinds(env: &mut Env) -> Result<(), Fail> {
    for clear in [false, true] {
        let n = env.notification()?;
        let t = env.thread(|_| {}, 0, 100, 0)?;
        t.tcb.bind_notification(n).ctx("BindNotification")?;
        let h = IrqHandler(env.slot()?);
        IRQ_CONTROL
            .get(RTC_IRQ, false, ROOT_CNODE, h.0, D)
            .ctx("IrqControlGet 34")?;
        h.set_notification(n).ctx("SetNotification")?;
        if clear {
            h.clear().ctx("IrqHandlerClear")?;
        } else {
            ROOT_CNODE.delete(h.0, D).ctx("delete the handler")?;
        }
        ROOT_CNODE
            .delete(n.0, D)
            .ctx("delete the notification's only user cap")?;
        expect_err(
            t.tcb.unbind_notification(),
            Error::IllegalOperation,
            if clear {
                "unbind after IrqHandlerClear and deleting the notification (a kernel-held cap kept it alive)"
            } else {
                "unbind after deleting handler and notification (a kernel-held cap kept it alive)"
            },
        )?;
        ROOT_CNODE.delete(h.0, D).ctx("delete the handler")?;
    }
    Ok(())
}

/// The kernel console's UART interrupt is the kernel's: no handler for it, as seL4 reserves
/// the interrupts it uses itself.
pub fn console_uart_refused(env: &mut Env) -> Result<(), Fail> {
    let uart_irq = 33;
    let s = env.slot()?;
    expect_err(
        IRQ_CONTROL.get(uart_irq, false, ROOT_CNODE, s, D),
        Error::RevokeFirst,
        "IrqControlGet of the console UART's interrupt",
    )?;
    ensure!(
        env.is_empty(s)?,
        "a handler cap appeared for the console UART"
    );
    Ok(())
}
