//! Hostile cases for the pointers the kernel caches outside capability slots (issue #13,
//! docs/security.md "Cached kernel pointers"). Each does what an attacker would: delete the
//! object while the kernel remembers it, let the memory be retyped as a frame the case maps
//! and reads (filled with a known pattern, so even a write of zeroes shows), then make the
//! kernel use what it remembered. The frame must stay as it was, and the kernel must answer
//! as if the object had never been there.

use crate::harness::{
    Ctx, D, Env, Fail, ROOT_CNODE, ROOT_TCB, ROOT_VSPACE, expect_err, set_shared, shared,
};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::vcpu::reg;
use axolotl_abi::{Error, FaultLabel, MSG_MAX_LENGTH, MessageInfo, ObjectType as T, Rights};
use axolotl_sys::{
    AsidControl, AsidPool, Frame, Notification, PageTable, Tcb, Untyped, UserContext, VSpace, Vcpu,
    ipc, syscall, vm_attr, yield_now,
};

/// Word 0 of an IrqControl cap (lib/kernel-core cap.rs): what an attacker sends where the
/// kernel might write it into reused memory.
const FORGED_IRQ_CONTROL: u64 = 10 << 59;
/// What reused memory is filled with before the kernel gets its chance to write there.
const PATTERN: u64 = 0x5a5a_5a5a_5a5a_5a5a;
/// Shared words: the caps and results the case's threads use.
const OBJ: usize = 14;
const RESULT: usize = 1;
const RAN: usize = 0;

/// An untyped of its own for one object, so that object's memory can be freed and retyped
/// alone: 16 KiB, room for a thread's TCB, its IPC buffer and a page table.
fn own_untyped(env: &mut Env) -> Result<Untyped, Fail> {
    env.alloc(T::Untyped, 14).map(Untyped)
}

/// Runs `f` with `u` as the case's untyped: the first object it makes lies at `u`'s base.
fn allocating_from<R>(env: &mut Env, u: Untyped, f: impl FnOnce(&mut Env) -> R) -> R {
    let (ut, bits) = (env.ut, env.ut_bits);
    env.ut = u;
    env.ut_bits = 14;
    let r = f(env);
    env.ut = ut;
    env.ut_bits = bits;
    r
}

/// Frees everything made from `u` and retypes its first page as a frame the case maps: the
/// memory of the object that was at `u`'s base. Returns where it is mapped, filled with
/// `fill`.
fn reuse_as_frame(env: &mut Env, u: Untyped, fill: u64) -> Result<u64, Fail> {
    ROOT_CNODE
        .revoke(u.0, D)
        .ctx("revoke the object's untyped")?;
    let f = Frame(env.slot()?);
    u.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f.0, 1)
        .ctx("frame over the freed object's memory")?;
    let v = env.vaddr(1, 4096);
    env.map(f, v, Rights::RW, vm_attr::CACHEABLE)?;
    for i in 0..512 {
        // SAFETY: the frame is mapped read-write at v.
        unsafe { core::ptr::write_volatile((v as *mut u64).add(i), fill) };
    }
    Ok(v)
}

/// The reused memory at `v` must still hold only `fill`.
fn untouched(v: u64, fill: u64, what: &str) -> Result<(), Fail> {
    for i in 0..512 {
        // SAFETY: mapped by `reuse_as_frame`.
        let w = unsafe { core::ptr::read_volatile((v as *const u64).add(i)) };
        ensure!(
            w == fill,
            "{what}: the kernel wrote into the freed object's memory (now a frame): offset {:#x} holds {w:#x}, not {fill:#x}",
            i * 8
        );
    }
    Ok(())
}

/// A thread made from `u` (so its TCB is at `u`'s base), not resumed.
fn thread_from(
    env: &mut Env,
    u: Untyped,
    f: fn(u64),
    prio: u64,
    fault_ep: u64,
) -> Result<Tcb, Fail> {
    allocating_from(env, u, |env| env.thread(f, 0, prio, fault_ep)).map(|t| t.tcb)
}

/// Maps `f` at `v` of `vs`, making page tables as needed.
fn map_in(env: &mut Env, vs: VSpace, f: Frame, v: u64) -> Result<(), Fail> {
    for _ in 0..4 {
        match f.map(vs, v, Rights::RW, vm_attr::CACHEABLE) {
            Ok(()) => return Ok(()),
            Err(e) if e.error == Error::FailedLookup => {
                let pt = PageTable(env.alloc(T::PageTable, 0)?);
                pt.map(vs, v, 0).ctx("PageTableMap")?;
            }
            Err(e) => return Err(fail!("frame map at {v:#x}: {e:?}")),
        }
    }
    Err(fail!("frame map at {v:#x}: still no page table"))
}

/// `k.asids`: the last cap of a VSpace is deleted while a frame is still mapped in it. Its
/// ASID must be freed at once: a frame's unmap walks whatever VSpace its recorded ASID
/// names, and the dead VSpace's memory may hold another VSpace by then.
pub fn asid_freed_with_vspace(env: &mut Env) -> Result<(), Fail> {
    const V: u64 = 0x4000_3000;
    let u = own_untyped(env)?;
    let vs = VSpace(env.slot()?);
    u.retype(T::VSpace, 0, ROOT_CNODE, 0, 0, vs.0, 1)
        .ctx("VSpace from its own untyped")?;
    let pool = AsidPool(init_cap::ASID_POOL);
    pool.assign(vs).ctx("assign an ASID")?;
    let f = env.frame()?;
    map_in(env, vs, f, V)?;
    ROOT_CNODE.delete(vs.0, D).ctx("delete the VSpace")?;
    // Its ASID, once free, is the lowest free one and goes to this VSpace ...
    pool.assign(VSpace(env.alloc(T::VSpace, 0)?))
        .ctx("assign the freed ASID")?;
    // ... and the dead VSpace's memory becomes another VSpace, with another ASID, where a
    // copy of the same frame is mapped at the same address.
    ROOT_CNODE
        .revoke(u.0, D)
        .ctx("revoke the VSpace's untyped")?;
    let vs2 = VSpace(env.slot()?);
    u.retype(T::VSpace, 0, ROOT_CNODE, 0, 0, vs2.0, 1)
        .ctx("VSpace over the dead one's memory")?;
    pool.assign(vs2).ctx("assign an ASID to the new VSpace")?;
    let f2 = Frame(env.slot()?);
    ROOT_CNODE
        .copy(f2.0, D, ROOT_CNODE, f.0, D, Rights::ALL)
        .ctx("copy of the frame")?;
    map_in(env, vs2, f2, V)?;
    // The frame's cap still records the dead VSpace's ASID: its unmap must find nothing.
    f.unmap().ctx("unmap the frame of the dead VSpace")?;
    let f3 = env.frame()?;
    expect_err(
        f3.map(vs2, V, Rights::RW, vm_attr::CACHEABLE),
        Error::DeleteFirst,
        "a frame's unmap through its dead VSpace's ASID must leave the VSpace now in that memory alone; mapping over its entry",
    )?;
    Ok(())
}

/// `k.asids` and `trap::valid_vspace`: a thread's VSpace loses its ASID when the pool is
/// deleted, and the ASID goes to another VSpace. The thread must not run (it would run
/// under the other VSpace's VMID); here it would fault at once, its VSpace being empty.
pub fn pool_deleted_thread_stops(env: &mut Env) -> Result<(), Fail> {
    let control = AsidControl(init_cap::ASID_CONTROL);
    let pool = AsidPool(env.slot()?);
    control
        .make_pool(ROOT_CNODE, pool.0, D)
        .ctx("AsidControlMakePool")?;
    let vs = VSpace(env.alloc(T::VSpace, 0)?);
    pool.assign(vs).ctx("assign an ASID")?;
    let ep = env.endpoint()?;
    let t = Tcb(env.alloc(T::Tcb, 0)?);
    t.set_space(ep.0, ROOT_CNODE, 0, vs, 0).ctx("TcbSetSpace")?;
    t.set_priority(ROOT_TCB, 255).ctx("priority")?;
    let regs = UserContext {
        pc: 0x1000,
        ..Default::default()
    };
    t.write_registers(false, 0, axolotl_abi::USER_CONTEXT_WORDS, &regs)
        .ctx("registers")?;
    ROOT_CNODE.delete(pool.0, D).ctx("delete the pool")?;
    let pool2 = AsidPool(env.slot()?);
    control
        .make_pool(ROOT_CNODE, pool2.0, D)
        .ctx("AsidControlMakePool again")?;
    pool2
        .assign(VSpace(env.alloc(T::VSpace, 0)?))
        .ctx("assign the freed ASID again")?;
    t.resume().ctx("resume")?;
    for _ in 0..20 {
        yield_now();
    }
    let m = ep.nb_recv();
    let label = m.label();
    t.suspend().ctx("suspend")?;
    ROOT_CNODE
        .delete(pool2.0, D)
        .ctx("delete the second pool")?;
    ensure!(
        label != FaultLabel::VmFault as u64,
        "a thread ran in a VSpace whose ASID pool was deleted (its ASID now another VSpace's): it faulted at {:#x}",
        m.mrs[0]
    );
    Ok(())
}

fn receiver(_: u64) {
    let m = syscall::recv(shared(OBJ));
    set_shared(RESULT, m.info.length());
    set_shared(RAN, 1);
}

/// `tcb.ipc_buffer_pa`: a waiting receiver's IPC buffer frame is deleted and its memory
/// reused. A long message to it must not be written where the buffer was.
pub fn ipc_buffer_frame_deleted(env: &mut Env) -> Result<(), Fail> {
    let ep = env.endpoint()?;
    set_shared(OBJ, ep.0);
    let u = own_untyped(env)?;
    let fb = Frame(env.slot()?);
    u.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, fb.0, 1)
        .ctx("buffer frame from its own untyped")?;
    let t = env.thread(receiver, 0, 255, 0)?;
    // The kernel's view of the buffer only: the thread's own code keeps its first one.
    t.tcb
        .set_ipc_buffer(env.vaddr(1, 4096), fb)
        .ctx("TcbSetIpcBuffer")?;
    t.tcb.resume().ctx("resume")?;
    yield_now();
    let g = reuse_as_frame(env, u, PATTERN)?;
    for i in 4..MSG_MAX_LENGTH {
        ipc::set_mr(i, FORGED_IRQ_CONTROL);
    }
    syscall::send(
        ep.0,
        MessageInfo::new(0, 0, 0, MSG_MAX_LENGTH as u64),
        [FORGED_IRQ_CONTROL; 4],
    );
    yield_now();
    untouched(
        g,
        PATTERN,
        "long message to a thread whose buffer frame was deleted",
    )?;
    ensure_eq!(shared(RAN), 1, "the receiver got the message");
    ensure_eq!(
        shared(RESULT),
        4,
        "words delivered to a receiver without a buffer"
    );
    Ok(())
}

fn endpoint_receiver(_: u64) {
    let m = syscall::recv(shared(OBJ));
    set_shared(RESULT, m.badge);
    set_shared(RAN, 1);
}

/// `Notification.bound`: a thread bound to a notification is deleted and a new thread made
/// in its memory, waiting on an endpoint. A signal must not reach it.
pub fn bound_thread_deleted(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    let ep = env.endpoint()?;
    set_shared(OBJ, ep.0);
    let u = own_untyped(env)?;
    let old = thread_from(env, u, endpoint_receiver, 255, 0)?;
    old.bind_notification(n).ctx("BindNotification")?;
    ROOT_CNODE.delete(old.0, D).ctx("delete the bound thread")?;
    ROOT_CNODE.revoke(u.0, D).ctx("revoke its untyped")?;
    let new = thread_from(env, u, endpoint_receiver, 255, 0)?;
    new.resume().ctx("resume the new thread")?;
    yield_now();
    let b = env.mint(n.0, Rights::ALL, 0x5a)?;
    syscall::signal(b);
    yield_now();
    let (ran, got) = (shared(RAN), shared(RESULT));
    new.suspend().ctx("suspend the new thread")?;
    ensure!(
        ran == 0,
        "a signal to the deleted thread's notification woke the thread now in its memory (badge {got:#x})"
    );
    ensure_eq!(n.poll(), 0x5a, "the signal stays pending");
    Ok(())
}

fn notification_waiter(_: u64) {
    let w = syscall::wait(shared(OBJ));
    set_shared(RESULT, w);
    set_shared(RAN, 1);
}

/// Endpoint and notification queues, the thread's side: a waiting thread is deleted and its
/// memory reused. A message or signal must not be delivered to what was queued.
pub fn queued_thread_deleted(env: &mut Env) -> Result<(), Fail> {
    for on_ntfn in [false, true] {
        let obj = if on_ntfn {
            env.notification()?.0
        } else {
            env.endpoint()?.0
        };
        set_shared(OBJ, obj);
        let u = own_untyped(env)?;
        let f = if on_ntfn {
            notification_waiter
        } else {
            endpoint_receiver
        };
        let t = thread_from(env, u, f, 255, 0)?;
        t.resume().ctx("resume")?;
        yield_now();
        ROOT_CNODE.delete(t.0, D).ctx("delete the waiting thread")?;
        let g = reuse_as_frame(env, u, PATTERN)?;
        let b = env.mint(obj, Rights::ALL, FORGED_IRQ_CONTROL)?;
        if on_ntfn {
            syscall::signal(b);
        } else {
            syscall::nb_send(b, MessageInfo::new(0, 0, 0, 4), [FORGED_IRQ_CONTROL; 4]);
        }
        untouched(
            g,
            PATTERN,
            if on_ntfn {
                "signal after the waiting thread was deleted"
            } else {
                "send after the receiving thread was deleted"
            },
        )?;
        if on_ntfn {
            ensure_eq!(
                Notification(obj).poll(),
                FORGED_IRQ_CONTROL,
                "the signal stays pending"
            );
        }
    }
    Ok(())
}

fn restarted_waiter(_: u64) {
    if shared(2) == 1 {
        syscall::wait(shared(OBJ));
    } else {
        syscall::recv(shared(OBJ));
    }
    set_shared(RAN, 1);
}

/// Endpoint and notification queues, the object's side: the object a thread waits on is
/// deleted and its memory reused. The thread must have been taken out of its queue (it
/// restarts its call and takes a cap fault); suspending it later must not touch the memory.
pub fn waited_object_deleted(env: &mut Env) -> Result<(), Fail> {
    let fault = env.endpoint()?;
    let fep = env.mint(fault.0, Rights::ALL, 0xfa)?;
    for on_ntfn in [false, true] {
        let u = own_untyped(env)?;
        let obj = env.slot()?;
        let ty = if on_ntfn {
            T::Notification
        } else {
            T::Endpoint
        };
        u.retype(ty, 0, ROOT_CNODE, 0, 0, obj, 1)
            .ctx("object from its own untyped")?;
        set_shared(OBJ, obj);
        set_shared(2, on_ntfn as u64);
        let t = env.spawn(restarted_waiter, 0, 255, fep)?;
        yield_now();
        ROOT_CNODE
            .delete(obj, D)
            .ctx("delete the waited-on object")?;
        yield_now();
        let m = fault.nb_recv();
        let g = reuse_as_frame(env, u, PATTERN)?;
        t.tcb.suspend().ctx("suspend the waiter")?;
        untouched(
            g,
            PATTERN,
            if on_ntfn {
                "suspending a thread whose notification was deleted"
            } else {
                "suspending a thread whose endpoint was deleted"
            },
        )?;
        ensure_eq!(
            (m.label(), m.mrs[1]),
            (FaultLabel::CapFault as u64, obj),
            "the waiter restarts its call and finds the cap gone"
        );
        ensure_eq!(shared(RAN), 0, "the waiter went on");
    }
    Ok(())
}

/// Takes one call and never answers it.
fn silent_server(_: u64) {
    let _ = syscall::recv(shared(OBJ));
    let _ = syscall::recv(shared(OBJ));
}

fn caller(_: u64) {
    let r = syscall::call(shared(OBJ), MessageInfo::new(1, 0, 0, 0), [0; 4]);
    set_shared(RESULT, r.label());
    set_shared(RAN, 1);
}

/// `tcb.reply_holder`: the thread holding a caller's reply cap is deleted and its memory
/// reused. The caller must be answered (`CALL_ABORTED`), and nothing it does afterwards may
/// reach the memory its holder had.
pub fn reply_holder_deleted(env: &mut Env) -> Result<(), Fail> {
    let ep = env.endpoint()?;
    set_shared(OBJ, ep.0);
    let u = own_untyped(env)?;
    let h = thread_from(env, u, silent_server, 255, 0)?;
    h.resume().ctx("resume the server")?;
    yield_now();
    let c = env.spawn(caller, 0, 255, 0)?;
    yield_now();
    yield_now();
    ROOT_CNODE.delete(h.0, D).ctx("delete the server")?;
    let g = reuse_as_frame(env, u, PATTERN)?;
    yield_now();
    let (ran, label) = (shared(RAN), shared(RESULT));
    c.tcb.suspend().ctx("suspend the caller")?;
    untouched(g, PATTERN, "the caller of a deleted server")?;
    ensure!(
        ran == 1,
        "the caller of a deleted server was never answered"
    );
    ensure_eq!(label, axolotl_abi::CALL_ABORTED, "the caller's reply");
    Ok(())
}

fn answering_server(_: u64) {
    let _ = syscall::recv(shared(OBJ));
    // Answers once told to, after its caller is gone.
    syscall::wait(shared(3));
    syscall::reply(MessageInfo::new(0, 0, 0, 1), [FORGED_IRQ_CONTROL, 0, 0, 0]);
    set_shared(RAN, 1);
}

/// `Cap::Reply` in the holder's slot: the caller is deleted while it waits for the reply
/// and its memory reused. The holder's reply must go nowhere.
pub fn reply_caller_deleted(env: &mut Env) -> Result<(), Fail> {
    let ep = env.endpoint()?;
    set_shared(OBJ, ep.0);
    let go = env.notification()?;
    set_shared(3, go.0);
    env.spawn(answering_server, 0, 255, 0)?;
    yield_now();
    let u = own_untyped(env)?;
    let c = thread_from(env, u, caller, 255, 0)?;
    c.resume().ctx("resume the caller")?;
    yield_now();
    yield_now();
    ROOT_CNODE.delete(c.0, D).ctx("delete the caller")?;
    let g = reuse_as_frame(env, u, PATTERN)?;
    go.signal();
    yield_now();
    untouched(g, PATTERN, "a reply to a deleted caller")?;
    ensure_eq!(shared(RAN), 1, "the server's reply returned");
    Ok(())
}

fn native_reporter(_: u64) {
    set_shared(RAN, 1);
}

/// `tcb.vcpu` and `k.loaded_vcpu`: a thread's VCPU is deleted and its memory reused. The
/// thread is native again: it must run as such, and no guest state may be loaded from or
/// saved to that memory.
pub fn vcpu_deleted_under_thread(env: &mut Env) -> Result<(), Fail> {
    let fault = env.endpoint()?;
    let fep = env.mint(fault.0, Rights::ALL, 0xfa)?;
    let u = own_untyped(env)?;
    let v = Vcpu(env.slot()?);
    u.retype(T::Vcpu, 0, ROOT_CNODE, 0, 0, v.0, 1)
        .ctx("VCPU from its own untyped")?;
    let t = env.thread(native_reporter, 0, 255, fep)?;
    v.set_tcb(t.tcb).ctx("VcpuSetTcb")?;
    ROOT_CNODE.delete(v.0, D).ctx("delete the VCPU")?;
    let g = reuse_as_frame(env, u, 0)?;
    t.tcb.resume().ctx("resume")?;
    yield_now();
    let m = fault.nb_recv();
    let _ = t.tcb.suspend();
    untouched(g, 0, "running a thread whose VCPU was deleted")?;
    ensure!(
        shared(RAN) == 1,
        "the thread did not run natively after its VCPU went (exit label {:#x})",
        m.label()
    );
    Ok(())
}

/// `vcpu.tcb`: a VCPU's thread is deleted and its memory reused. The VCPU must have no
/// thread: writing the thread's TPIDR_EL0 through it is refused.
pub fn tcb_deleted_under_vcpu(env: &mut Env) -> Result<(), Fail> {
    let u = own_untyped(env)?;
    let t = Tcb(env.slot()?);
    u.retype(T::Tcb, 0, ROOT_CNODE, 0, 0, t.0, 1)
        .ctx("TCB from its own untyped")?;
    let v = Vcpu(env.alloc(T::Vcpu, 0)?);
    v.set_tcb(t).ctx("VcpuSetTcb")?;
    ROOT_CNODE.delete(t.0, D).ctx("delete the thread")?;
    let g = reuse_as_frame(env, u, PATTERN)?;
    let r = v.write_reg(reg::TPIDR_EL0, FORGED_IRQ_CONTROL);
    let other = Tcb(env.alloc(T::Tcb, 0)?);
    let r2 = v.set_tcb(other);
    untouched(g, PATTERN, "VCPU invocations after its thread was deleted")?;
    expect_err(
        r,
        Error::IllegalOperation,
        "VcpuWriteReg TPIDR_EL0 of a VCPU whose thread was deleted",
    )?;
    r2.ctx("VcpuSetTcb of another thread")?;
    Ok(())
}

/// Puts a known value in FP registers, then deletes its own TCB (it never returns).
fn self_deleter(_: u64) {
    // SAFETY: writes FP registers only, declared clobbered.
    unsafe {
        core::arch::asm!(
            "fmov d8, {x}",
            "fmov d9, {x}",
            x = in(reg) FORGED_IRQ_CONTROL,
            out("d8") _,
            out("d9") _,
        )
    };
    let _ = ROOT_CNODE.delete(shared(OBJ), D);
    set_shared(RAN, 1);
}

fn fp_reader(_: u64) {
    let v: u64;
    // SAFETY: reads an FP register.
    unsafe { core::arch::asm!("fmov {x}, d8", x = out(reg) v) };
    set_shared(RESULT, v);
}

/// `k.sched.current` and `k.fpu_owner`: a running thread deletes its own TCB, so it is both
/// the current thread and the owner of the FP registers when it goes. Its memory is reused
/// before any other thread could touch it; the threads that run next must leave that memory
/// alone and start with FP registers of their own.
pub fn thread_deletes_itself(env: &mut Env) -> Result<(), Fail> {
    let u = own_untyped(env)?;
    let t = thread_from(env, u, self_deleter, 255, 0)?;
    set_shared(OBJ, t.0);
    t.resume().ctx("resume")?;
    yield_now();
    ensure_eq!(shared(RAN), 0, "the thread went on after deleting itself");
    let g = reuse_as_frame(env, u, PATTERN)?;
    env.spawn(fp_reader, 0, 255, 0)?;
    yield_now();
    untouched(g, PATTERN, "threads running after one deleted itself")?;
    ensure_eq!(
        shared(RESULT),
        0,
        "FP register d8 of a new thread (the deleted one left 0x5000000000000000 there)"
    );
    Ok(())
}

/// Shared words of `tcb_configures_itself`: the attacker's cptrs (in its own CSpace).
const SELF_TCB: usize = 2;
const SELF_CSPACE: usize = 3;
const SELF_VSPACE: usize = 4;

fn self_configurer(_: u64) {
    set_shared(RAN, 1);
    let r = Tcb(shared(SELF_TCB)).set_space(
        0,
        axolotl_sys::CNode(shared(SELF_CSPACE)),
        0,
        VSpace(shared(SELF_VSPACE)),
        0,
    );
    // Only reached if the thread still has a VSpace to return to (it should not).
    set_shared(RESULT, if r.is_ok() { 1 } else { 2 });
}

/// Where a cap of the self-configuration cases lies in the thread's CSpace C: in E (C's
/// slot 1, which survives C) or in F (C's slot 2, which dies with it).
#[derive(Clone, Copy)]
enum In {
    E,
    F,
}

impl In {
    /// The top 4 bits of an address, which C resolves.
    fn prefix(self) -> u64 {
        match self {
            In::E => 1 << 60,
            In::F => 2 << 60,
        }
    }
}

/// The self-configuration cases' setup. C (16 slots, no guard) resolves the top 4 bits of
/// an address; slot 1 gets E and slot 2 F, both 16 slots behind a 56-bit guard. E survives
/// C (the case keeps a cap to it), F dies with it (C holds its only cap). A fresh CSpace D
/// and VSpace, which the case keeps caps to, go into slots 2 and 3 of `sources`, the thread's
/// TCB cap into slot `tcb.1` of `tcb.0`; the thread learns their addresses and gets C as
/// its CSpace, and the case's cap to C goes. Returns E, D and the VSpace.
fn self_config_setup(
    env: &mut Env,
    t: Tcb,
    (c, e_raw, f_raw): (axolotl_sys::CNode, axolotl_sys::CNode, axolotl_sys::CNode),
    sources: In,
    tcb: (In, u64),
) -> Result<(axolotl_sys::CNode, axolotl_sys::CNode, VSpace), Fail> {
    use axolotl_sys::CNode;
    let of = |i: In| match i {
        In::E => e_raw,
        In::F => f_raw,
    };
    let d_raw = env.alloc(T::CNode, 4)?;
    let d = CNode(env.slot()?);
    ROOT_CNODE
        .mutate(d.0, D, ROOT_CNODE, d_raw, D, 60)
        .ctx("guard the new CSpace")?;
    let vs = VSpace(env.alloc(T::VSpace, 0)?);
    AsidPool(init_cap::ASID_POOL)
        .assign(vs)
        .ctx("assign an ASID")?;
    of(sources)
        .copy(2, 4, ROOT_CNODE, d.0, D, Rights::ALL)
        .ctx("new CSpace into its CNode")?;
    of(sources)
        .copy(3, 4, ROOT_CNODE, vs.0, D, Rights::ALL)
        .ctx("new VSpace into its CNode")?;
    of(tcb.0)
        .copy(tcb.1, 4, ROOT_CNODE, t.0, D, Rights::ALL)
        .ctx("TCB into its CNode")?;
    let e = CNode(env.slot()?);
    ROOT_CNODE
        .mutate(e.0, D, ROOT_CNODE, e_raw.0, D, 56)
        .ctx("guard E")?;
    c.copy(1, 4, ROOT_CNODE, e.0, D, Rights::ALL)
        .ctx("E into C")?;
    c.mutate(2, 4, ROOT_CNODE, f_raw.0, D, 56)
        .ctx("F (guarded) into C")?;
    set_shared(SELF_TCB, tcb.0.prefix() | tcb.1);
    set_shared(SELF_CSPACE, sources.prefix() | 2);
    set_shared(SELF_VSPACE, sources.prefix() | 3);
    set_shared(RAN, 0);
    set_shared(RESULT, 0);
    t.set_space(0, c, 0, ROOT_VSPACE, 0)
        .ctx("the thread's CSpace C")?;
    ROOT_CNODE
        .delete(c.0, D)
        .ctx("delete the case's cap to C")?;
    Ok((e, d, vs))
}

/// A thread configures itself (TcbSetSpace on its own TCB) while the only cap to its CSpace
/// is the one in its TCB. Clearing that slot deletes the CNode, and with it the slots the new
/// caps were looked up from (and, in the first round, the TCB cap the call was made
/// through). The new caps must not be linked into the derivation tree from those dead slots
/// (seL4 `invokeTCB_ThreadControl` checks `sameObjectAs` first): the dead CNodes' memory is
/// reused as a frame, the thread is deleted, and neither the frame nor the objects the
/// thread was given may change.
pub fn tcb_configures_itself(env: &mut Env) -> Result<(), Fail> {
    use axolotl_sys::CNode;
    // Round 0: the TCB cap lies in the CNode that dies; round 1: in one that survives, so
    // only the new caps' source slots are gone.
    for round in 0..2u64 {
        let u = own_untyped(env)?;
        let t = env.thread(self_configurer, 0, 255, 0)?;
        // C and F at u's base, so their memory is reused below.
        let c = CNode(env.slot()?);
        let f_raw = CNode(env.slot()?);
        u.retype(T::CNode, 4, ROOT_CNODE, 0, 0, c.0, 1)
            .ctx("C from its own untyped")?;
        u.retype(T::CNode, 4, ROOT_CNODE, 0, 0, f_raw.0, 1)
            .ctx("F from the same untyped")?;
        let e_raw = CNode(env.alloc(T::CNode, 4)?);
        let tcb_at = if round == 0 { (In::F, 1) } else { (In::E, 0) };
        let (e, _, vs) = self_config_setup(env, t.tcb, (c, e_raw, f_raw), In::F, tcb_at)?;
        t.tcb.resume().ctx("resume")?;
        yield_now();
        ensure_eq!(shared(RAN), 1, "round {round}: the thread ran");
        ensure_eq!(
            shared(RESULT),
            0,
            "round {round}: the thread returned from configuring itself out of its CSpace"
        );
        let g = reuse_as_frame(env, u, PATTERN)?;
        // E goes first, and the TCB cap in it, so the case's cap is the thread's last.
        ROOT_CNODE.delete(e.0, D).ctx("delete E")?;
        ROOT_CNODE.delete(t.tcb.0, D).ctx("delete the thread")?;
        untouched(
            g,
            PATTERN,
            if round == 0 {
                "deleting a thread that configured itself through a TCB cap in its dying CSpace"
            } else {
                "deleting a thread that configured itself from caps in its dying CSpace"
            },
        )?;
        // The VSpace it was given is still the case's: a copy linked to nothing would have
        // been final when the thread went, and taken the VSpace's ASID with it.
        let f = env.frame()?;
        map_in(env, vs, f, 0x4000_3000).map_err(|e| {
            fail!(
                "round {round}: the new VSpace after the thread was deleted: {}",
                e.as_str()
            )
        })?;
    }
    Ok(())
}

/// The priority of the threads of the `tcb_configures_itself_last_tcb_cap*` cases: below the
/// case's (255), so neither a `resume` nor a timer tick lets them run before the case says.
const BELOW_CASE: u64 = 254;

/// Lets the case's threads of priority [`BELOW_CASE`] run until none is runnable: the case
/// drops below them (the kernel switches on the call's return) and comes back up once they
/// have stopped or blocked.
fn let_threads_run() -> Result<(), Fail> {
    ROOT_TCB
        .set_priority(ROOT_TCB, BELOW_CASE - 1)
        .ctx("the case below its thread")?;
    ROOT_TCB
        .set_priority(ROOT_TCB, 255)
        .ctx("the case back at 255")
}

/// [`tcb_configures_itself`] where the CNode that dies holds the last cap to the thread
/// itself: deleting the old CSpace finalises the thread in the middle of its own call. The
/// new caps' sources (in E) survive, so only the TCB cap's absence stops the installs: caps
/// put into the slots of a thread already finalised would never be deleted, and their
/// derivation-tree neighbours would keep pointing into its memory once that is reused. The
/// thread runs below the case, so it runs only once the case's cap to it is gone, whatever
/// the timer does.
pub fn tcb_configures_itself_last_tcb_cap(env: &mut Env) -> Result<(), Fail> {
    tcb_configures_itself_last_cap_in_f(env, false, false)
}

/// [`tcb_configures_itself_last_tcb_cap`] with a long tail: C's slot 0 holds the last cap to
/// a CNode of 2^16 empty slots, which the deletion empties after the thread (found through
/// C's slot 2) has died, taking several timer ticks, so the call is all but surely preempted
/// with the deletion unfinished and nothing left to resume it. The TCB's memory, reused
/// below, held the zombie of C in its CSPACE slot: it must not be reusable while that is
/// there (lib/kernel-core delete.rs, Cycles). The tick decides where the preemption falls;
/// the host tests of kernel-core try every point.
pub fn tcb_configures_itself_last_tcb_cap_preempted(env: &mut Env) -> Result<(), Fail> {
    tcb_configures_itself_last_cap_in_f(env, false, true)
}

/// [`tcb_configures_itself_last_tcb_cap`] in the other order: the thread configures itself
/// (and so deletes the CNode holding a cap to itself) while the case still holds a cap to
/// it, which the case deletes afterwards. The TCB then dies outside the thread's call.
pub fn tcb_configures_itself_then_last_tcb_cap_goes(env: &mut Env) -> Result<(), Fail> {
    tcb_configures_itself_last_cap_in_f(env, true, false)
}

/// The two orders of the self-configuring thread and the case's deletion of its cap to the
/// thread (`case_cap_last`: the case's cap goes after the thread has run); `long_tail`: C's
/// slot 0 holds the last cap to a large CNode.
fn tcb_configures_itself_last_cap_in_f(
    env: &mut Env,
    case_cap_last: bool,
    long_tail: bool,
) -> Result<(), Fail> {
    use axolotl_sys::CNode;
    let u = own_untyped(env)?;
    // The TCB at u's base, so its slots are in the page reused below.
    let t = allocating_from(env, u, |env| env.thread(self_configurer, 0, BELOW_CASE, 0))?;
    let c = CNode(env.alloc(T::CNode, 4)?);
    let f_raw = CNode(env.alloc(T::CNode, 4)?);
    let e_raw = CNode(env.alloc(T::CNode, 4)?);
    if long_tail {
        let g = env.alloc(T::CNode, 16)?;
        c.move_(0, 4, ROOT_CNODE, g, D)
            .ctx("a CNode of 2^16 slots into C's slot 0")?;
    }
    let (e, d, vs) = self_config_setup(env, t.tcb, (c, e_raw, f_raw), In::E, (In::F, 1))?;
    t.tcb.resume().ctx("resume")?;
    let delete_case_cap = || {
        ROOT_CNODE
            .delete(t.tcb.0, D)
            .ctx("delete the case's cap to the thread")
    };
    if !case_cap_last {
        delete_case_cap()?;
    }
    ensure_eq!(shared(RAN), 0, "the thread ran before the case let it");
    let_threads_run()?;
    ensure_eq!(shared(RAN), 1, "the thread ran");
    ensure_eq!(
        shared(RESULT),
        0,
        "the thread returned from a call that took its CSpace and VSpace"
    );
    if case_cap_last {
        delete_case_cap()?;
    }
    let g = reuse_as_frame(env, u, PATTERN)?;
    // E's slots, the new caps' sources, go: copies of them in the dead thread's slots
    // would be their derivation-tree neighbours.
    ROOT_CNODE.delete(e.0, D).ctx("delete E")?;
    ROOT_CNODE.delete(vs.0, D).ctx("delete the new VSpace")?;
    ROOT_CNODE.delete(d.0, D).ctx("delete the new CSpace")?;
    untouched(
        g,
        PATTERN,
        if case_cap_last {
            "deleting the caps a thread configured itself with, after its last cap went"
        } else {
            "deleting the caps a thread configured itself with, after the call deleted it"
        },
    )
}
