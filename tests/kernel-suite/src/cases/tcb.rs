//! Threads: created from untyped, running in the suite's own VSpace; registers, suspend and
//! resume, priorities and the MCP, SetSpace/SetIpcBuffer.

use crate::harness::{
    Ctx, D, Env, Fail, ROOT_CNODE, ROOT_TCB, ROOT_VSPACE, expect_err, set_shared, shared,
};
use axolotl_abi::{Error, MessageInfo, ObjectType as T, Rights, USER_CONTEXT_WORDS};
use axolotl_sys::{Tcb, UserContext, ipc, syscall, yield_now};

/// Slot of the case's notification that threads signal when done.
const NTFN: usize = 15;

fn record_and_signal(arg: u64) {
    set_shared(0, arg * 2);
    set_shared(1, ipc::ipc_buffer_addr());
    // The IPC buffer is ours and writable.
    ipc::set_mr(100, 0xabc);
    set_shared(2, ipc::get_mr(100));
    let mut local = [0u64; 8];
    local[3] = arg;
    set_shared(3, core::hint::black_box(&local)[3]);
    syscall::signal(shared(NTFN));
}

pub fn shared_vspace(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    set_shared(NTFN, n.0);
    let t = env.spawn(record_and_signal, 21, 100, 0)?;
    n.wait();
    ensure_eq!(shared(0), 42, "word the thread wrote");
    ensure_eq!(
        shared(1),
        t.ipc_buffer,
        "thread's IPC buffer address (TPIDR_EL0)"
    );
    ensure_eq!(shared(2), 0xabc, "thread's IPC buffer word");
    ensure_eq!(shared(3), 21, "word through the thread's stack");
    // The root task's own IPC buffer was not touched.
    ensure!(
        ipc::get_mr(100) != 0xabc || ipc::ipc_buffer_addr() == t.ipc_buffer,
        "root IPC buffer shared"
    );
    Ok(())
}

pub fn registers(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    set_shared(NTFN, n.0);
    let t = env.thread(record_and_signal, 5, 100, 0)?;
    let r = t
        .tcb
        .read_registers(false, 0, USER_CONTEXT_WORDS)
        .ctx("ReadRegisters")?;
    ensure_eq!(r.x[1], 5, "x1 read back");
    ensure_eq!(r.tpidr_el0, t.ipc_buffer, "tpidr_el0 read back");
    ensure!(
        r.pc != 0 && r.sp != 0 && r.sp % 16 == 0,
        "pc {:#x} / sp {:#x} read back",
        r.pc,
        r.sp
    );
    let r3 = t
        .tcb
        .read_registers(false, 0, 3)
        .ctx("ReadRegisters of 3")?;
    ensure_eq!(
        (r3.pc, r3.sp, r3.x[1]),
        (r.pc, r.sp, 0),
        "3 registers read back"
    );
    // Ask for EL1 with interrupts masked: the kernel must keep the thread at EL0.
    let mut w = r;
    w.spsr = 0x3c5;
    w.x[1] = 8;
    for i in 2..31 {
        w.x[i] = 0x1000 + i as u64;
    }
    t.tcb
        .write_registers(false, 0, USER_CONTEXT_WORDS, &w)
        .ctx("WriteRegisters")?;
    let r2 = t
        .tcb
        .read_registers(false, 0, USER_CONTEXT_WORDS)
        .ctx("ReadRegisters")?;
    ensure_eq!(r2.x, w.x, "x0..x30 read back");
    ensure_eq!(
        (r2.pc, r2.sp, r2.tpidr_el0),
        (w.pc, w.sp, w.tpidr_el0),
        "pc, sp, tpidr read back"
    );
    ensure_eq!(r2.spsr & 0xf, 0, "spsr mode (must stay EL0t)");
    // Resume through WriteRegisters: the thread runs with the new argument.
    let mut w2 = UserContext { ..r2 };
    w2.spsr = 0;
    w2.x[1] = 9;
    t.tcb
        .write_registers(true, 0, USER_CONTEXT_WORDS, &w2)
        .ctx("WriteRegisters with resume")?;
    n.wait();
    ensure_eq!(shared(0), 18, "word the thread wrote with x1 = 9");
    Ok(())
}

fn spin_counter(_: u64) {
    loop {
        SPIN.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        yield_now();
    }
}
static SPIN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn spins() -> u64 {
    SPIN.load(core::sync::atomic::Ordering::SeqCst)
}

pub fn suspend_resume(env: &mut Env) -> Result<(), Fail> {
    // Same priority as the root task: each yield lets it run once.
    let t = env.spawn(spin_counter, 0, 255, 0)?;
    let c0 = spins();
    for _ in 0..5 {
        yield_now();
    }
    let c1 = spins();
    ensure!(c1 > c0, "thread did not run ({c0} -> {c1})");
    t.tcb.suspend().ctx("Suspend")?;
    let c2 = spins();
    for _ in 0..5 {
        yield_now();
    }
    ensure_eq!(spins(), c2, "counter of a suspended thread");
    t.tcb.resume().ctx("Resume")?;
    for _ in 0..5 {
        yield_now();
    }
    let c3 = spins();
    ensure!(c3 > c2, "resumed thread did not run");
    // ReadRegisters with suspend stops it too.
    t.tcb
        .read_registers(true, 0, 3)
        .ctx("ReadRegisters with suspend")?;
    let c4 = spins();
    for _ in 0..5 {
        yield_now();
    }
    ensure_eq!(spins(), c4, "counter after ReadRegisters(suspend)");
    Ok(())
}

pub fn priority_mcp(env: &mut Env) -> Result<(), Fail> {
    let t = Tcb(env.alloc(T::Tcb, 0)?);
    let u = Tcb(env.alloc(T::Tcb, 0)?);
    t.set_priority(ROOT_TCB, 100)
        .ctx("priority 100 by the root task")?;
    t.set_mc_priority(ROOT_TCB, 50)
        .ctx("MCP 50 by the root task")?;
    u.set_priority(t, 50)
        .ctx("priority 50 with an MCP-50 authority")?;
    let e = expect_err(
        u.set_priority(t, 51),
        Error::RangeError,
        "priority 51 with an MCP-50 authority",
    )?;
    ensure_eq!(e.details(), &[0, 50][..], "range of allowed priorities");
    expect_err(
        u.set_mc_priority(t, 51),
        Error::RangeError,
        "MCP 51 with an MCP-50 authority",
    )?;
    expect_err(
        u.set_priority(ROOT_TCB, 256),
        Error::RangeError,
        "priority 256",
    )?;
    u.set_priority(ROOT_TCB, 255)
        .ctx("priority 255 by the root task")?;
    Ok(())
}

fn long_send_then_fault(ep: u64) {
    ipc::set_mr(10, 0x1010);
    syscall::send(ep, MessageInfo::new(0x77, 0, 0, 11), [1, 2, 3, 4]);
    // SAFETY: a deliberate undefined instruction; the fault handler ends this thread.
    unsafe { core::arch::asm!("udf #1") };
}

pub fn set_space_ipc_buffer(env: &mut Env) -> Result<(), Fail> {
    let ep = env.endpoint()?;
    let fault_ep = env.mint(ep.0, Rights::ALL, 0xf)?;
    let t = env.thread(long_send_then_fault, ep.0, 100, 0)?;
    t.tcb
        .set_space(fault_ep, ROOT_CNODE, 0, ROOT_VSPACE, 0)
        .ctx("SetSpace with a fault endpoint")?;
    // Move the IPC buffer: the kernel must read MR10 from the new one.
    let (f2, v2) = env.mapped_frame()?;
    t.tcb.set_ipc_buffer(v2, f2).ctx("SetIpcBuffer")?;
    let mut r = t
        .tcb
        .read_registers(false, 0, USER_CONTEXT_WORDS)
        .ctx("ReadRegisters")?;
    r.tpidr_el0 = v2;
    t.tcb
        .write_registers(true, 0, USER_CONTEXT_WORDS, &r)
        .ctx("WriteRegisters")?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.info.length(), m.badge),
        (0x77, 11, 0),
        "message label/length/badge"
    );
    ensure_eq!(m.mrs, [1, 2, 3, 4], "MR0..3");
    ensure_eq!(ipc::get_mr(10), 0x1010, "MR10 (from the new IPC buffer)");
    let f = ep.recv();
    ensure_eq!(
        (f.label(), f.badge),
        (axolotl_abi::FaultLabel::UserException as u64, 0xf),
        "fault label and badge"
    );
    t.tcb.suspend().ctx("suspend")?;
    // The fault endpoint is a copy: deleting ours does not take it from the thread.
    ROOT_CNODE
        .delete(fault_ep, D)
        .ctx("delete our fault ep cap")?;
    Ok(())
}
