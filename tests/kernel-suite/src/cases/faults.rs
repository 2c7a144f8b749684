//! Faults delivered to a fault endpoint and resumed by the reply; cancelled IPC.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, set_shared, shared};
use axolotl_abi::{
    FaultLabel, MessageInfo, Rights, UNKNOWN_SYSCALL_LENGTH, USER_EXCEPTION_LENGTH, VM_FAULT_LENGTH,
};
use axolotl_sys::{Endpoint, Notification, ipc, syscall, vm_attr, yield_now};

const EXTRA: usize = 13;
const DONE: usize = 15;

const SVC0: u32 = 0xd400_0001;
const WNR: u64 = 1 << 6;
const EC_DABT_LOWER: u64 = 0x24;

/// A fault endpoint with badge 0xfa and a done notification, shared with the thread.
fn setup(env: &mut Env) -> Result<(Endpoint, u64, Notification), Fail> {
    let ep = env.endpoint()?;
    let fep = env.mint(ep.0, Rights::ALL, 0xfa)?;
    let d = env.notification()?;
    set_shared(DONE, env.mint(d.0, Rights::ALL, 1)?);
    Ok((ep, fep, d))
}

fn reader(v: u64) {
    // SAFETY: deliberately unmapped until the fault handler maps it.
    let x = unsafe { core::ptr::read_volatile(v as *const u64) };
    set_shared(0, x);
    syscall::signal(shared(DONE));
}

fn writer(v: u64) {
    // SAFETY: as in `reader`.
    unsafe { core::ptr::write_volatile(v as *mut u64, 0xfeed) };
    syscall::signal(shared(DONE));
}

fn vm_case(env: &mut Env, write: bool) -> Result<(), Fail> {
    let (ep, fep, d) = setup(env)?;
    let v = env.vaddr(1, 4096) + 0x18;
    env.spawn(if write { writer } else { reader }, v, 100, fep)?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.info.length(), m.badge),
        (FaultLabel::VmFault as u64, VM_FAULT_LENGTH, 0xfa),
        "fault label, length, badge"
    );
    ensure_eq!((m.mrs[1], m.mrs[2]), (v, 0), "fault address, prefetch");
    ensure_eq!(m.mrs[3] >> 26, EC_DABT_LOWER, "ESR exception class");
    ensure_eq!(m.mrs[3] & WNR, if write { WNR } else { 0 }, "ESR WnR");
    let f = env.frame()?;
    env.map(f, v & !0xfff, Rights::RW, vm_attr::CACHEABLE)?;
    // SAFETY: just mapped, shared with the thread.
    unsafe { core::ptr::write_volatile(v as *mut u64, 0x1234_5678) };
    syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
    d.wait();
    if write {
        // SAFETY: mapped above.
        let x = unsafe { core::ptr::read_volatile(v as *const u64) };
        ensure_eq!(x, 0xfeed, "word the resumed thread wrote");
    } else {
        ensure_eq!(shared(0), 0x1234_5678, "word the resumed thread read");
    }
    Ok(())
}

pub fn vm_read(env: &mut Env) -> Result<(), Fail> {
    vm_case(env, false)
}

pub fn vm_write(env: &mut Env) -> Result<(), Fail> {
    vm_case(env, true)
}

fn undefined(_: u64) {
    // SAFETY: a deliberate undefined instruction; the handler skips it.
    unsafe { core::arch::asm!("udf #0x42") };
    set_shared(0, 1);
    syscall::signal(shared(DONE));
}

fn insn_at(ip: u64) -> u32 {
    // SAFETY: ip is in our own text, which is mapped readable.
    unsafe { core::ptr::read_volatile(ip as *const u32) }
}

pub fn user_exception(env: &mut Env) -> Result<(), Fail> {
    let (ep, fep, d) = setup(env)?;
    env.spawn(undefined, 0, 100, fep)?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.info.length(), m.badge),
        (
            FaultLabel::UserException as u64,
            USER_EXCEPTION_LENGTH,
            0xfa
        ),
        "fault label, length, badge"
    );
    let [ip, sp, spsr, ec] = m.mrs;
    ensure_eq!(insn_at(ip), 0x42, "instruction at the fault ip (udf #0x42)");
    ensure_eq!(ec, 0, "exception class (unknown reason)");
    ensure!(sp != 0 && spsr & 0xf == 0, "sp {sp:#x} / spsr {spsr:#x}");
    syscall::reply(MessageInfo::new(0, 0, 0, 3), [ip + 4, sp, spsr, 0]);
    d.wait();
    ensure_eq!(shared(0), 1, "thread ran past the skipped instruction");
    Ok(())
}

fn bad_syscall(_: u64) {
    let r = syscall::raw_syscall(0x99, 0x11, 0x22, [0x33, 0x44, 0x55, 0x66]);
    set_shared(0, r.badge);
    syscall::signal(shared(DONE));
}

pub fn unknown_syscall(env: &mut Env) -> Result<(), Fail> {
    let (ep, fep, d) = setup(env)?;
    env.spawn(bad_syscall, 0, 100, fep)?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.info.length(), m.badge),
        (
            FaultLabel::UnknownSyscall as u64,
            UNKNOWN_SYSCALL_LENGTH,
            0xfa
        ),
        "fault label, length, badge"
    );
    ensure_eq!(m.mrs, [0x11, 0x22, 0x33, 0x44], "x0..x3");
    ensure_eq!(
        (ipc::get_mr(4), ipc::get_mr(5), ipc::get_mr(7)),
        (0x55, 0x66, 0x99),
        "x4, x5, x7"
    );
    ensure_eq!(ipc::get_mr(12), 0x99, "syscall number word");
    let ip = ipc::get_mr(8);
    ensure_eq!(
        insn_at(ip),
        SVC0,
        "instruction at the reported ip (the svc)"
    );
    // Write back x0 (MR4..7 still hold x4..x7) and the ip past the svc.
    ipc::set_mr(8, ip + 4);
    syscall::reply(MessageInfo::new(0, 0, 0, 9), [0xaa, 0x22, 0x33, 0x44]);
    d.wait();
    ensure_eq!(shared(0), 0xaa, "x0 the handler wrote back");
    Ok(())
}

/// A receive on an empty slot is a cap fault in seL4 (a Send/Call on one is an
/// InvalidCapability error instead).
fn recv_empty(slot: u64) {
    syscall::recv(slot);
    set_shared(0, 1);
}

pub fn cap_fault(env: &mut Env) -> Result<(), Fail> {
    let (ep, fep, _) = setup(env)?;
    let empty = env.slot()?;
    let t = env.spawn(recv_empty, empty, 100, fep)?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.badge),
        (FaultLabel::CapFault as u64, 0xfa),
        "fault label, badge"
    );
    ensure!(
        m.info.length() >= axolotl_abi::CAP_FAULT_LENGTH,
        "cap fault length {}",
        m.info.length()
    );
    ensure_eq!((m.mrs[1], m.mrs[2]), (empty, 1), "cptr, in receive phase");
    ensure_eq!(insn_at(m.mrs[0]), SVC0, "instruction at the fault ip");
    t.tcb.suspend().ctx("suspend")?;
    ensure_eq!(shared(0), 0, "thread went on after its cap fault");
    Ok(())
}

fn blocked_receiver(_: u64) {
    set_shared(1, 1);
    let m = syscall::recv(shared(EXTRA));
    crate::harness::log(m.mrs[0]);
}

pub fn cancel_on_delete(env: &mut Env) -> Result<(), Fail> {
    let (fault, fep, _) = setup(env)?;
    let ep = env.endpoint()?;
    set_shared(EXTRA, ep.0);
    env.spawn(blocked_receiver, 0, 255, fep)?;
    yield_now();
    ensure_eq!(shared(1), 1, "receiver started");
    ROOT_CNODE.delete(ep.0, D).ctx("delete the endpoint")?;
    // The receiver restarts its Recv on a now empty slot: a cap fault.
    let m = fault.recv();
    ensure_eq!(
        m.label(),
        FaultLabel::CapFault as u64,
        "fault after the endpoint went"
    );
    ensure_eq!(m.mrs[1], ep.0, "cptr of the cap fault");
    Ok(())
}

fn logging_receiver(_: u64) {
    set_shared(1, 1);
    loop {
        let m = syscall::recv(shared(EXTRA));
        crate::harness::log(m.mrs[0]);
        syscall::signal(shared(DONE));
    }
}

pub fn cancel_on_suspend(env: &mut Env) -> Result<(), Fail> {
    let (_, _, d) = setup(env)?;
    let ep = env.endpoint()?;
    set_shared(EXTRA, ep.0);
    let t = env.spawn(logging_receiver, 0, 255, 0)?;
    yield_now();
    ensure_eq!(shared(1), 1, "receiver started");
    t.tcb.suspend().ctx("suspend")?;
    ep.nb_send(MessageInfo::new(0, 0, 0, 1), [1, 0, 0, 0]);
    t.tcb.resume().ctx("resume")?;
    yield_now();
    ep.send(MessageInfo::new(0, 0, 0, 1), [2, 0, 0, 0]);
    d.wait();
    let mut l = [0; 64];
    let n = crate::harness::log_contents(&mut l);
    ensure_eq!(
        &l[..n],
        &[2][..],
        "messages the receiver got (1 was sent while it was suspended)"
    );
    Ok(())
}
