//! Interrupts: IrqControl errors, and delivery of an interrupt the suite raises itself: the
//! PL031 RTC's alarm (SPI 2 = INTID 34 on QEMU virt), set to the next second. (The PL011 is
//! the kernel's console and is in no device untyped.)

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, expect_err};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, ObjectType as T, Rights};
use axolotl_sys::{
    Frame, IrqControl, IrqHandler, Notification, Untyped, debug_ticks, vm_attr, yield_now,
};

/// The PL061 GPIO's interrupt on QEMU virt: claimable, and nothing in the suite raises it.
/// (33, the PL011's, is the kernel console's and refused: `hostile_irq`.)
const GPIO_IRQ: u64 = 39;
pub(crate) const RTC_IRQ: u64 = 34;
pub(crate) const RTC_PADDR: u64 = 0x0901_0000;
const RTC_DR: u64 = 0x00;
const RTC_MR: u64 = 0x04;
const RTC_IMSC: u64 = 0x10;
const RTC_RIS: u64 = 0x14;
const RTC_ICR: u64 = 0x1c;

pub(crate) const IRQ_CONTROL: IrqControl = IrqControl(init_cap::IRQ_CONTROL);

fn rtc_reg(v: u64, off: u64) -> *mut u32 {
    (v + off) as *mut u32
}

/// Raises the PL031's alarm (mapped at `v`) at the next second boundary.
pub(crate) fn rtc_arm(v: u64) {
    // SAFETY: the PL031's registers, mapped as device memory by the caller.
    unsafe {
        rtc_reg(v, RTC_IMSC).write_volatile(1);
        let now = rtc_reg(v, RTC_DR).read_volatile();
        // QEMU arms the alarm (MR - now) seconds ahead, unsigned: the next second boundary
        // is the earliest alarm that cannot be missed (MR = now - 1 would be 2^32 s away).
        rtc_reg(v, RTC_MR).write_volatile(now.wrapping_add(1));
    }
}

/// Whether the alarm has gone off (the line is raised whatever the GIC does with it).
pub(crate) fn rtc_fired(v: u64) -> bool {
    // SAFETY: as in `rtc_arm`.
    unsafe { rtc_reg(v, RTC_RIS).read_volatile() & 1 != 0 }
}

/// Masks and clears the alarm so the line drops.
pub(crate) fn rtc_quiet(v: u64) {
    // SAFETY: as in `rtc_arm`.
    unsafe {
        rtc_reg(v, RTC_IMSC).write_volatile(0);
        rtc_reg(v, RTC_ICR).write_volatile(1);
    }
}

/// The RTC's registers mapped at a fresh address; returns them and the device untyped to
/// revoke afterwards.
pub(crate) fn rtc_mapped(env: &mut Env, top: &mut Option<Untyped>) -> Result<u64, Fail> {
    let (f, t) = device_frame(env, RTC_PADDR)?;
    *top = Some(t);
    let v = env.vaddr(1, 4096);
    env.map(f, v, Rights::RW, vm_attr::DEVICE)?;
    Ok(v)
}

pub fn control_errors(env: &mut Env) -> Result<(), Fail> {
    let (a, b) = (env.slot()?, env.slot()?);
    IRQ_CONTROL
        .get(GPIO_IRQ, false, ROOT_CNODE, a, D)
        .ctx("IrqControlGet 39")?;
    expect_err(
        IRQ_CONTROL.get(GPIO_IRQ, false, ROOT_CNODE, b, D),
        Error::RevokeFirst,
        "second handler for 39",
    )?;
    expect_err(
        IRQ_CONTROL.get(1 << 20, false, ROOT_CNODE, b, D),
        Error::RangeError,
        "IRQ 2^20",
    )?;
    let n = env.notification()?;
    expect_err(
        IRQ_CONTROL.get(GPIO_IRQ + 1, false, ROOT_CNODE, n.0, D),
        Error::DeleteFirst,
        "handler into a full slot",
    )?;
    expect_err(
        IrqHandler(a).set_notification(Notification(env.frame()?.0)),
        Error::InvalidCapability,
        "SetNotification with a frame",
    )?;
    ROOT_CNODE.delete(a, D).ctx("delete the handler")?;
    IRQ_CONTROL
        .get(GPIO_IRQ, false, ROOT_CNODE, b, D)
        .ctx("IrqControlGet 39 after delete")?;
    Ok(())
}

/// A frame for the 4 KiB of device memory at `paddr`, by halving the device untyped that
/// covers it; returns it with that untyped (to revoke afterwards).
pub(crate) fn device_frame(env: &mut Env, paddr: u64) -> Result<(Frame, Untyped), Fail> {
    let bi = env.bi;
    let i = (0..bi.num_untyped as usize)
        .find(|&i| {
            let u = &bi.untyped[i];
            u.is_device != 0 && (u.paddr..u.paddr + (1 << u.size_bits)).contains(&paddr)
        })
        .ok_or_else(|| fail!("no device untyped covers {paddr:#x}"))?;
    let top = Untyped(init_cap::FIRST_UNTYPED + i as u64);
    let (mut ut, mut base, mut bits) = (top, bi.untyped[i].paddr, bi.untyped[i].size_bits as u64);
    while bits > 12 {
        let s = env.slots_n(2)?;
        ut.retype(T::Untyped, bits - 1, ROOT_CNODE, 0, 0, s, 2)
            .ctx("halve device untyped")?;
        bits -= 1;
        if paddr >= base + (1 << bits) {
            base += 1 << bits;
            ut = Untyped(s + 1);
        } else {
            ut = Untyped(s);
        }
    }
    let f = env.slot()?;
    ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f, 1)
        .ctx("device frame")?;
    Ok((Frame(f), top))
}

fn rtc_case(env: &mut Env, top: &mut Option<Untyped>) -> Result<(), Fail> {
    let (f, t) = device_frame(env, RTC_PADDR)?;
    *top = Some(t);
    ensure_eq!(
        f.get_address().ctx("PageGetAddress")?,
        RTC_PADDR,
        "device frame address"
    );
    let v = env.vaddr(1, 4096);
    env.map(f, v, Rights::RW, vm_attr::DEVICE)?;
    let h = IrqHandler(env.slot()?);
    IRQ_CONTROL
        .get(RTC_IRQ, false, ROOT_CNODE, h.0, D)
        .ctx("IrqControlGet 34")?;
    let n = env.notification()?;
    let nb = Notification(env.mint(n.0, Rights::ALL, 0x100)?);
    h.set_notification(nb).ctx("SetNotification")?;
    rtc_arm(v);
    let deadline = debug_ticks() + 3 * crate::harness::tick_hz(env);
    let mut got = 0;
    while got == 0 && debug_ticks() < deadline {
        got = n.poll();
        yield_now();
    }
    // Mask and clear before acking so the line drops.
    rtc_quiet(v);
    h.ack().ctx("IrqHandlerAck")?;
    ensure_eq!(got, 0x100, "notification word after raising the RTC alarm");
    let deadline = debug_ticks() + crate::harness::tick_hz(env) / 10 + 1;
    while debug_ticks() < deadline {
        yield_now();
    }
    ensure_eq!(n.poll(), 0, "word after masking and acking");
    h.clear().ctx("IrqHandlerClear")?;
    Ok(())
}

pub fn rtc_alarm(env: &mut Env) -> Result<(), Fail> {
    let mut top = None;
    let r = rtc_case(env, &mut top);
    if let Some(t) = top {
        ROOT_CNODE.revoke(t.0, D).ctx("revoke the device untyped")?;
    }
    r
}
