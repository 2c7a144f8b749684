//! The rejection paths of invocation arguments no other case exercises (issue #13). The table
//! in docs/security.md, "Invocation checks", names for every check of every invocation the
//! case that makes it fail.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, ROOT_TCB, ROOT_VSPACE, expect_err};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, ObjectType as T, Rights};
use axolotl_sys::encode::{self, Encoded};
use axolotl_sys::invoke::{InvocationError, invoke};
use axolotl_sys::{
    AsidControl, AsidPool, CNode, Frame, IrqControl, IrqHandler, Notification, PageTable, Tcb,
    VSpace, Vcpu, vm_attr,
};

const IRQ_CONTROL: IrqControl = IrqControl(init_cap::IRQ_CONTROL);
/// An SPI nothing else in the suite claims.
const FREE_SPI: u64 = 44;

/// seL4's `CONFIG_RETYPE_FAN_OUT_LIMIT`, as lib/kernel-core has it.
const FAN_OUT_LIMIT: u64 = 256;

fn detail(e: InvocationError, want: &[u64], what: &str) -> Result<(), Fail> {
    ensure_eq!(e.details(), want, what);
    Ok(())
}

/// `e` cut to `len` words and `caps` extra caps must be refused with TruncatedMessage.
fn short<const N: usize>(
    cap: u64,
    e: Encoded<N>,
    len: usize,
    caps: usize,
    what: &str,
) -> Result<(), Fail> {
    expect_err(
        invoke(cap, &e.truncated(len, caps)),
        Error::TruncatedMessage,
        what,
    )
    .map(|_| ())
}

/// Every invocation that takes words or extra caps, one short: TruncatedMessage, nothing done.
/// (UntypedRetype, CNodeCopy and PageMap: `errors_truncated_message`.)
pub fn truncated(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    let n = env.notification()?;
    let cn = ROOT_CNODE.0;
    let e = encode::cnode_mint(s, D, cn, n.0, D, Rights::ALL, 1);
    short(cn, e, 5, 1, "CNodeMint, 5 words")?;
    let e = encode::cnode_move(s, D, cn, n.0, D);
    short(cn, e, 3, 1, "CNodeMove, 3 words")?;
    short(cn, e, 4, 0, "CNodeMove without src root")?;
    let e = encode::cnode_mutate(s, D, cn, n.0, D, 0);
    short(cn, e, 4, 1, "CNodeMutate, 4 words")?;
    let e = encode::cnode_rotate(s, D, cn, n.0, D, 0, cn, n.0, D, 0);
    short(cn, e, 7, 2, "CNodeRotate, 7 words")?;
    short(cn, e, 8, 1, "CNodeRotate without src root")?;
    short(cn, encode::cnode_delete(s, D), 1, 0, "CNodeDelete, 1 word")?;
    short(cn, encode::cnode_revoke(s, D), 1, 0, "CNodeRevoke, 1 word")?;
    ensure!(
        env.is_empty(s)?,
        "a truncated CNode invocation filled the slot"
    );

    let t = Tcb(env.alloc(T::Tcb, 0)?);
    let f = env.frame()?;
    let e = encode::tcb_configure(0, cn, 0, ROOT_VSPACE.0, 0, 0, f.0);
    short(t.0, e, 3, 3, "TcbConfigure, 3 words")?;
    short(t.0, e, 4, 2, "TcbConfigure without buffer frame")?;
    let e = encode::tcb_set_space(0, cn, 0, ROOT_VSPACE.0, 0);
    short(t.0, e, 2, 2, "TcbSetSpace, 2 words")?;
    short(t.0, e, 3, 1, "TcbSetSpace without VSpace")?;
    let e = encode::tcb_set_ipc_buffer(0, f.0);
    short(t.0, e, 0, 1, "TcbSetIpcBuffer without address")?;
    short(t.0, e, 1, 0, "TcbSetIpcBuffer without frame")?;
    let e = encode::tcb_set_priority(ROOT_TCB.0, 1);
    short(t.0, e, 0, 1, "TcbSetPriority without priority")?;
    short(t.0, e, 1, 0, "TcbSetPriority without authority")?;
    let e = encode::tcb_set_mc_priority(ROOT_TCB.0, 1);
    short(t.0, e, 0, 1, "TcbSetMcPriority without MCP")?;
    let e = encode::tcb_set_timer_access(true, n.0);
    short(t.0, e, 0, 1, "TcbSetTimerAccess without grant word")?;
    short(t.0, e, 1, 0, "TcbSetTimerAccess without authority")?;
    let e = encode::tcb_read_registers(false, 0, 3);
    short(t.0, e, 2, 0, "TcbReadRegisters, 2 words")?;
    let ctx = axolotl_sys::UserContext::default();
    let e = encode::tcb_write_registers(false, 0, 3, &ctx);
    short(t.0, e, 2, 0, "TcbWriteRegisters, 2 words")?;
    let e = encode::tcb_bind_notification(n.0);
    short(t.0, e, 0, 0, "TcbBindNotification without notification")?;

    let pt = PageTable(env.alloc(T::PageTable, 0)?);
    let v = env.vaddr(512, 1 << 21);
    let e = encode::page_table_map(ROOT_VSPACE.0, v, 0);
    short(pt.0, e, 1, 1, "PageTableMap, 1 word")?;
    short(pt.0, e, 2, 0, "PageTableMap without VSpace")?;
    let e = encode::vspace_clean_data(v, v + 4096);
    short(ROOT_VSPACE.0, e, 1, 0, "VSpaceCleanData, 1 word")?;
    let e = encode::vspace_unify_instruction(v, v + 4096);
    short(ROOT_VSPACE.0, e, 1, 0, "VSpaceUnifyInstruction, 1 word")?;
    let e = encode::asid_control_make_pool(cn, s, D);
    short(
        init_cap::ASID_CONTROL,
        e,
        1,
        1,
        "AsidControlMakePool, 1 word",
    )?;
    short(init_cap::ASID_CONTROL, e, 2, 0, "MakePool without root")?;
    let vs = env.alloc(T::VSpace, 0)?;
    let e = encode::asid_pool_assign(vs);
    short(
        init_cap::ASID_POOL,
        e,
        0,
        0,
        "AsidPoolAssign without VSpace",
    )?;
    ensure!(env.is_empty(s)?, "a truncated MakePool filled the slot");

    let e = encode::irq_control_get(FREE_SPI, false, cn, s, D);
    short(IRQ_CONTROL.0, e, 3, 1, "IrqControlGet, 3 words")?;
    short(IRQ_CONTROL.0, e, 4, 0, "IrqControlGet without root")?;
    ensure!(
        env.is_empty(s)?,
        "a truncated IrqControlGet filled the slot"
    );
    IRQ_CONTROL
        .get(FREE_SPI, false, ROOT_CNODE, s, D)
        .ctx("IrqControlGet after the refusals (the IRQ stayed free)")?;
    let e = encode::irq_handler_set_notification(n.0);
    let r = short(s, e, 0, 0, "IrqHandlerSetNotification without notification");
    ROOT_CNODE.delete(s, D).ctx("delete the handler")?;
    r?;

    let vc = Vcpu(env.alloc(T::Vcpu, 0)?);
    short(
        vc.0,
        encode::vcpu_set_tcb(t.0),
        0,
        0,
        "VcpuSetTcb without TCB",
    )?;
    let e = encode::vcpu_inject_irq(40, 0, 0, 0);
    short(vc.0, e, 3, 0, "VcpuInjectIrq, 3 words")?;
    short(vc.0, encode::vcpu_read_reg(0), 0, 0, "VcpuReadReg, no word")?;
    let e = encode::vcpu_write_reg(0, 0);
    short(vc.0, e, 1, 0, "VcpuWriteReg, 1 word")?;
    short(
        vc.0,
        encode::vcpu_ack_vppi(27),
        0,
        0,
        "VcpuAckVppi, no word",
    )?;
    Ok(())
}

/// CNode invocations: lookups of each slot argument, caps that cannot be copied, Rotate's own
/// checks, and the invocation the kernel does not implement.
pub fn cnode(env: &mut Env) -> Result<(), Fail> {
    // The root CNode's guard covers the high bits: an address with bit 63 set mismatches it.
    let bad = 1u64 << 63;
    let n = env.notification()?;
    let s = env.slot()?;
    let e = expect_err(
        ROOT_CNODE.copy(bad, D, ROOT_CNODE, n.0, D, Rights::ALL),
        Error::FailedLookup,
        "copy to an address outside the CSpace",
    )?;
    ensure_eq!(e.details().first().copied(), Some(0), "not the source");
    let e = expect_err(
        ROOT_CNODE.copy(s, D, CNode(n.0), n.0, D, Rights::ALL),
        Error::FailedLookup,
        "copy with a notification as src root",
    )?;
    ensure_eq!(
        e.details().get(..2),
        Some(&[1u64, 1][..]),
        "source, invalid root"
    );
    expect_err(
        ROOT_CNODE.delete(bad, D),
        Error::FailedLookup,
        "delete outside the CSpace",
    )?;
    expect_err(
        ROOT_CNODE.revoke(bad, D),
        Error::FailedLookup,
        "revoke outside the CSpace",
    )?;
    // An extra cap that does not resolve: InvalidCapability naming it (1 = the first).
    let e = expect_err(
        ROOT_CNODE.copy(s, D, CNode(bad), n.0, D, Rights::ALL),
        Error::InvalidCapability,
        "copy with an unresolvable src root",
    )?;
    detail(e, &[1], "argument")?;
    // More objects than one retype may make.
    let limit = FAN_OUT_LIMIT;
    let e = expect_err(
        env.ut
            .retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, s, limit + 1),
        Error::RangeError,
        "retype past the fan-out limit",
    )?;
    detail(e, &[1, limit], "window range")?;
    // Caps a copy may not hold: IRQ control (one per system), an unmapped page table and a
    // VSpace without ASID (each could then be mapped or assigned twice).
    expect_err(
        ROOT_CNODE.copy(s, D, ROOT_CNODE, init_cap::IRQ_CONTROL, D, Rights::ALL),
        Error::IllegalOperation,
        "copy of IRQ control",
    )?;
    let pt = env.alloc(T::PageTable, 0)?;
    expect_err(
        ROOT_CNODE.copy(s, D, ROOT_CNODE, pt, D, Rights::ALL),
        Error::IllegalOperation,
        "copy of an unmapped page table",
    )?;
    let vs = env.alloc(T::VSpace, 0)?;
    expect_err(
        ROOT_CNODE.mint(s, D, ROOT_CNODE, vs, D, Rights::ALL, 0),
        Error::IllegalOperation,
        "mint of a VSpace without ASID",
    )?;
    ensure!(env.is_empty(s)?, "a refused copy filled the slot");

    // Rotate: the pivot must differ from both ends, the destination be empty (unless it is
    // the source: a swap), the pivot be present, and badges cannot change.
    let a = Frame(env.alloc(T::SmallFrame, 0)?);
    let b = Frame(env.alloc(T::SmallFrame, 0)?);
    let c = Frame(env.alloc(T::SmallFrame, 0)?);
    let rot = |dest: u64, pivot: u64, src: u64| {
        ROOT_CNODE.rotate(dest, D, ROOT_CNODE, pivot, D, 0, ROOT_CNODE, src, D, 0)
    };
    expect_err(rot(s, a.0, a.0), Error::IllegalOperation, "pivot == src")?;
    expect_err(rot(a.0, a.0, b.0), Error::IllegalOperation, "pivot == dest")?;
    expect_err(rot(c.0, b.0, a.0), Error::DeleteFirst, "dest full")?;
    let empty = env.slot()?;
    let e = expect_err(rot(s, empty, a.0), Error::FailedLookup, "empty pivot")?;
    ensure_eq!(
        e.details().first().copied(),
        Some(0),
        "pivot is not the source"
    );
    let m = env.notification()?;
    expect_err(
        rot(s, m.0, n.0),
        Error::IllegalOperation,
        "rotate of notifications (data would change a badge)",
    )?;
    ensure!(
        env.is_empty(s)? && !env.is_empty(a.0)? && !env.is_empty(b.0)?,
        "a refused rotate moved a cap"
    );

    // CNodeCancelBadgedSends is in the ABI but not implemented: refused, never half done.
    expect_err(
        invoke(ROOT_CNODE.0, &encode::cnode_cancel_badged_sends(n.0, D)),
        Error::IllegalOperation,
        "CNodeCancelBadgedSends",
    )?;
    Ok(())
}

/// TCB invocations: each cap argument of the wrong kind, misaligned IPC buffers, a CSpace
/// guard that does not fit, register counts, notification binding states.
pub fn tcb(env: &mut Env) -> Result<(), Fail> {
    let t = Tcb(env.alloc(T::Tcb, 0)?);
    let f = env.frame()?;
    let n = env.notification()?;
    let ep = env.endpoint()?;
    let unassigned = VSpace(env.alloc(T::VSpace, 0)?);
    let cfg = |fault: u64, cs: CNode, data: u64, vs: VSpace, buf: u64, frame: Frame| {
        t.configure(fault, cs, data, vs, 0, buf, frame)
    };
    let e = expect_err(
        cfg(0, CNode(n.0), 0, ROOT_VSPACE, 0, f),
        Error::InvalidCapability,
        "Configure with a notification as CSpace",
    )?;
    detail(e, &[1], "argument")?;
    let e = expect_err(
        cfg(0, ROOT_CNODE, 0, VSpace(n.0), 0, f),
        Error::InvalidCapability,
        "Configure with a notification as VSpace",
    )?;
    detail(e, &[2], "argument")?;
    let e = expect_err(
        cfg(0, ROOT_CNODE, 0, unassigned, 0, f),
        Error::InvalidCapability,
        "Configure with a VSpace without ASID",
    )?;
    detail(e, &[2], "argument")?;
    let e = expect_err(
        cfg(n.0, ROOT_CNODE, 0, ROOT_VSPACE, 0, f),
        Error::InvalidCapability,
        "Configure with a notification as fault endpoint",
    )?;
    detail(e, &[0], "argument")?;
    let e = expect_err(
        cfg(0, ROOT_CNODE, 0, ROOT_VSPACE, 0, Frame(n.0)),
        Error::InvalidCapability,
        "Configure with a notification as IPC buffer",
    )?;
    detail(e, &[3], "argument")?;
    expect_err(
        cfg(0, ROOT_CNODE, 0, ROOT_VSPACE, 8, f),
        Error::AlignmentError,
        "Configure with an IPC buffer off 512 bytes",
    )?;
    expect_err(
        cfg(ep.0, ROOT_CNODE, 63, ROOT_VSPACE, 0, f),
        Error::IllegalOperation,
        "Configure with a CSpace guard past 64 bits",
    )?;
    let e = expect_err(
        t.set_space(0, CNode(n.0), 0, ROOT_VSPACE, 0),
        Error::InvalidCapability,
        "SetSpace with a notification as CSpace",
    )?;
    detail(e, &[1], "argument")?;
    expect_err(
        t.set_space(0, ROOT_CNODE, 0, unassigned, 0),
        Error::InvalidCapability,
        "SetSpace with a VSpace without ASID",
    )?;
    expect_err(
        t.set_ipc_buffer(8, f),
        Error::AlignmentError,
        "SetIpcBuffer off 512 bytes",
    )?;
    expect_err(
        t.set_ipc_buffer(0, Frame(n.0)),
        Error::InvalidCapability,
        "SetIpcBuffer with a notification",
    )?;
    for count in [0, axolotl_abi::USER_CONTEXT_WORDS + 1] {
        let e = expect_err(
            t.read_registers(false, 0, count),
            Error::RangeError,
            "ReadRegisters count",
        )?;
        detail(
            e,
            &[1, axolotl_abi::USER_CONTEXT_WORDS as u64],
            "count range",
        )?;
    }
    expect_err(
        t.bind_notification(Notification(ep.0)),
        Error::InvalidCapability,
        "BindNotification with an endpoint",
    )?;
    expect_err(
        t.unbind_notification(),
        Error::IllegalOperation,
        "Unbind without a bound notification",
    )?;
    t.bind_notification(n).ctx("BindNotification")?;
    let m = env.notification()?;
    expect_err(
        t.bind_notification(m),
        Error::IllegalOperation,
        "a second bound notification",
    )?;
    let t2 = Tcb(env.alloc(T::Tcb, 0)?);
    expect_err(
        t2.bind_notification(n),
        Error::IllegalOperation,
        "a notification bound to another thread",
    )?;
    t.unbind_notification().ctx("Unbind")?;
    t2.bind_notification(n)
        .ctx("bind once the first thread let go")?;
    Ok(())
}

/// VSpace, page, ASID invocations: caps of the wrong kind or state, rights, addresses.
pub fn vm(env: &mut Env) -> Result<(), Fail> {
    let f = env.frame()?;
    let n = env.notification()?;
    let unassigned = VSpace(env.alloc(T::VSpace, 0)?);
    let v = env.vaddr(1, 4096);
    let e = expect_err(
        f.map(unassigned, v, Rights::RW, vm_attr::CACHEABLE),
        Error::InvalidCapability,
        "PageMap into a VSpace without ASID",
    )?;
    detail(e, &[1], "argument")?;
    let e = expect_err(
        f.map(ROOT_VSPACE, v, Rights::WRITE, vm_attr::CACHEABLE),
        Error::InvalidArgument,
        "PageMap without the read right",
    )?;
    detail(e, &[1], "argument")?;
    let (mapped, v2) = env.mapped_frame()?;
    let e = expect_err(
        mapped.map(ROOT_VSPACE, v2 + 4096, Rights::RW, vm_attr::CACHEABLE),
        Error::InvalidCapability,
        "PageMap of a mapped frame cap",
    )?;
    detail(e, &[0], "argument")?;
    expect_err(
        f.map(ROOT_VSPACE, v2, Rights::RW, vm_attr::CACHEABLE),
        Error::DeleteFirst,
        "PageMap where a page is mapped",
    )?;

    let pt = PageTable(env.alloc(T::PageTable, 0)?);
    expect_err(
        pt.map(VSpace(n.0), env.vaddr(512, 1 << 21), 0),
        Error::InvalidCapability,
        "PageTableMap into a notification",
    )?;
    expect_err(
        pt.map(unassigned, env.vaddr(512, 1 << 21), 0),
        Error::InvalidCapability,
        "PageTableMap into a VSpace without ASID",
    )?;
    let e = expect_err(
        pt.map(ROOT_VSPACE, 1 << 40, 0),
        Error::InvalidArgument,
        "PageTableMap past the 39-bit address space",
    )?;
    detail(e, &[0], "argument")?;

    expect_err(
        unassigned.clean_data(0, 4096),
        Error::IllegalOperation,
        "VSpaceCleanData on a VSpace without ASID",
    )?;
    expect_err(
        invoke(pt.0, &encode::page_get_address()),
        Error::IllegalOperation,
        "PageGetAddress on a page table",
    )?;

    let full = env.notification()?;
    expect_err(
        AsidControl(init_cap::ASID_CONTROL).make_pool(ROOT_CNODE, full.0, D),
        Error::DeleteFirst,
        "MakePool into a full slot",
    )?;
    expect_err(
        AsidControl(init_cap::ASID_CONTROL).make_pool(ROOT_CNODE, 1 << 63, D),
        Error::FailedLookup,
        "MakePool outside the CSpace",
    )?;
    let e = expect_err(
        AsidPool(init_cap::ASID_POOL).assign(VSpace(n.0)),
        Error::InvalidCapability,
        "Assign of a notification",
    )?;
    detail(e, &[0], "argument")?;
    Ok(())
}

/// VCPU and IRQ invocations not covered by their own cases.
pub fn vcpu_irq(env: &mut Env) -> Result<(), Fail> {
    let vc = Vcpu(env.alloc(T::Vcpu, 0)?);
    let n = env.notification()?;
    let e = expect_err(
        vc.set_tcb(Tcb(n.0)),
        Error::InvalidCapability,
        "VcpuSetTcb with a notification",
    )?;
    detail(e, &[1], "argument")?;
    let e = expect_err(
        vc.inject_irq(40, 256, 0, 0),
        Error::RangeError,
        "inject at priority 256",
    )?;
    detail(e, &[0, 255], "priority range")?;

    let s = env.slot()?;
    // 26, the kernel's timer PPI, is the kernel timeout's number: `timer_kernel_timeout`.
    for irq in [0, 16, 25, 27] {
        expect_err(
            IRQ_CONTROL.get(irq, false, ROOT_CNODE, s, D),
            Error::RangeError,
            "IrqControlGet of an SGI or a kernel PPI",
        )?;
    }
    expect_err(
        IRQ_CONTROL.get(FREE_SPI, false, ROOT_CNODE, 1 << 63, D),
        Error::FailedLookup,
        "IrqControlGet outside the CSpace",
    )?;
    IRQ_CONTROL
        .get(FREE_SPI, false, ROOT_CNODE, s, D)
        .ctx("IrqControlGet")?;
    let ro = Notification(env.mint(n.0, Rights::READ, 0)?);
    let r = expect_err(
        IrqHandler(s).set_notification(ro),
        Error::InvalidCapability,
        "SetNotification without the write right",
    );
    ROOT_CNODE.delete(s, D).ctx("delete the handler")?;
    r?;
    Ok(())
}

/// Reads an unmapped address (`v`): a VM fault to the thread's fault endpoint.
fn fault_at(v: u64) {
    // SAFETY: deliberately unmapped; the fault is the point.
    unsafe { core::ptr::read_volatile(v as *const u64) };
}

/// A refused TcbConfigure changes nothing (seL4 checks every argument first): a device frame
/// as IPC buffer is refused before the new fault endpoint, CSpace or VSpace is installed, so
/// the thread's fault still goes to its old fault endpoint.
pub fn tcb_configure_refused_whole(env: &mut Env) -> Result<(), Fail> {
    let bi = env.bi;
    let Some(i) = (0..bi.num_untyped as usize).find(|&i| bi.untyped[i].is_device != 0) else {
        return Err(fail!("BootInfo lists no device untyped"));
    };
    let dev = axolotl_sys::Untyped(init_cap::FIRST_UNTYPED + i as u64);
    let df = Frame(env.slot()?);
    dev.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, df.0, 1)
        .ctx("device frame")?;
    let r = configure_refused(env, df);
    ROOT_CNODE
        .revoke(dev.0, D)
        .ctx("revoke the device untyped")?;
    r
}

fn configure_refused(env: &mut Env, device_frame: Frame) -> Result<(), Fail> {
    let ep = env.endpoint()?;
    let old = env.mint(ep.0, Rights::ALL, 1)?;
    let new = env.mint(ep.0, Rights::ALL, 2)?;
    let v = env.vaddr(1, 4096);
    let t = env.thread(fault_at, v, 100, old)?;
    let e = expect_err(
        t.tcb
            .configure(new, ROOT_CNODE, 0, ROOT_VSPACE, 0, 0, device_frame),
        Error::InvalidCapability,
        "Configure with a device frame as IPC buffer",
    )?;
    t.tcb.resume().ctx("resume")?;
    let m = ep.recv();
    let r = ensure_fault(m);
    t.tcb.suspend().ctx("suspend")?;
    r?;
    detail(e, &[3], "argument")
}

fn ensure_fault(m: axolotl_sys::syscall::Msg) -> Result<(), Fail> {
    ensure_eq!(
        (m.label(), m.badge),
        (axolotl_abi::FaultLabel::VmFault as u64, 1),
        "fault label and badge (2: the refused Configure installed its fault endpoint)"
    );
    Ok(())
}
