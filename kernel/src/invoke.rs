//! Decoding of invocations on non-IPC capabilities (seL4's `decodeInvocation`), kept apart
//! from the object logic in `axolotl-kernel-core`.

use axolotl_abi::{Invocation, MessageInfo, Rights, USER_CONTEXT_WORDS};
use axolotl_kernel_core::cnode::{CopyOp, copy_cap, rotate};
use axolotl_kernel_core::cspace::{
    LookupFault, lookup_cap as core_lookup_cap, lookup_slot_for_cnode_op,
};
use axolotl_kernel_core::untyped::{RetypeArgs, retype};
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use crate::ipc::{self, set_mr};
use crate::kobj::Kobj;
use crate::state::Kernel;
use crate::thread::{Tcb, ThreadState, slot};
use crate::vcpu::{self, Vcpu};

fn slot_of(t: *mut Tcb, i: usize) -> SlotRef {
    // SAFETY: TCB slots lie at the start of the live TCB object.
    unsafe { SlotRef::from_addr(Tcb::slot_addr(t, i)).unwrap() }
}

pub fn cspace_root(t: *mut Tcb) -> Option<Cap> {
    let c = slot_of(t, slot::CSPACE).cap();
    matches!(c, Cap::CNode { .. }).then_some(c)
}

pub fn lookup_cap_in(root: Cap, cptr: u64) -> Result<(Cap, SlotRef), LookupFault> {
    core_lookup_cap(root, cptr)
}

/// Looks a capability address up in the thread's CSpace, to full depth.
pub fn lookup_cap(t: *mut Tcb, cptr: u64) -> Result<(Cap, SlotRef), LookupFault> {
    let root = cspace_root(t).ok_or(LookupFault::InvalidRoot)?;
    core_lookup_cap(root, cptr)
}

/// Replies to the caller with an invocation error.
pub fn reply_error(t: *mut Tcb, e: SyscallError) {
    reply(t, Err(e));
}

/// The reply to an invocation: label 0 and `len` result words, or the error and its details.
fn reply(t: *mut Tcb, r: Result<usize, SyscallError>) {
    let info = match r {
        Ok(len) => MessageInfo::new(0, 0, 0, len as u64),
        Err(e) => {
            let mut words = [0u64; 5];
            let n = e.detail_words(&mut words);
            for (i, w) in words[..n].iter().enumerate() {
                set_mr(t, i, *w);
            }
            MessageInfo::new(e.error() as u64, 0, 0, n as u64)
        }
    };
    // SAFETY: t is live.
    unsafe { (*t).ctx.x[1] = info.word() };
}

/// An extra cap of the message, looked up in the caller's CSpace.
fn extra_cap(t: *mut Tcb, info: MessageInfo, i: usize) -> Result<(Cap, SlotRef), SyscallError> {
    if (info.extra_caps() as usize) <= i {
        return Err(SyscallError::TruncatedMessage);
    }
    let cptr = ipc::ipc_buffer(t)
        .ok_or(SyscallError::TruncatedMessage)?
        .caps_or_badges[i];
    lookup_cap(t, cptr).map_err(|_| SyscallError::InvalidCapability { arg: i as u32 + 1 })
}

pub fn need(info: MessageInfo, n: u64) -> Result<(), SyscallError> {
    if info.length() < n {
        Err(SyscallError::TruncatedMessage)
    } else {
        Ok(())
    }
}

/// Invokes `cap` (found at `cap_slot`) for thread `t`; writes the reply into its registers
/// when `call`.
pub fn invoke(k: &mut Kernel, t: *mut Tcb, cap: Cap, cap_slot: SlotRef, call: bool) {
    // SAFETY: t is live.
    let info = MessageInfo::from_word(unsafe { (*t).ctx.x[1] });
    let mrs = ipc::Mrs::of(t);
    let mr = |i| mrs.get(i);
    let mut preempted = false;
    let r = match (Invocation::from_label(info.label()), cap) {
        (Some(Invocation::UntypedRetype), Cap::Untyped { .. }) => (|| {
            need(info, 6)?;
            let (root, _) = extra_cap(t, info, 0)?;
            let args = RetypeArgs {
                ty: mr(0),
                user_size_bits: mr(1),
                root,
                node_index: mr(2),
                node_depth: mr(3),
                node_offset: mr(4),
                node_window: mr(5),
            };
            retype(cap_slot, &args, &mut Kobj(k)).map(|_| 0)
        })(),
        (
            Some(
                l @ (Invocation::CNodeCopy
                | Invocation::CNodeMint
                | Invocation::CNodeMove
                | Invocation::CNodeMutate),
            ),
            Cap::CNode { .. },
        ) => (|| {
            need(
                info,
                match l {
                    Invocation::CNodeCopy | Invocation::CNodeMutate => 5,
                    Invocation::CNodeMint => 6,
                    _ => 4,
                },
            )?;
            let dest = lookup_slot_for_cnode_op(false, cap, mr(0), mr(1))?;
            let (src_root, _) = extra_cap(t, info, 0)?;
            let src = lookup_slot_for_cnode_op(true, src_root, mr(2), mr(3))?;
            let op = match l {
                Invocation::CNodeCopy => CopyOp::Copy {
                    rights: Rights::from_bits_truncate(mr(4)),
                },
                Invocation::CNodeMint => CopyOp::Mint {
                    rights: Rights::from_bits_truncate(mr(4)),
                    data: mr(5),
                },
                Invocation::CNodeMutate => CopyOp::Mutate { data: mr(4) },
                _ => CopyOp::Move,
            };
            copy_cap(op, src, mr(3) as u32, dest).map(|_| 0)
        })(),
        (Some(Invocation::CNodeRotate), Cap::CNode { .. }) => (|| {
            need(info, 8)?;
            let dest = lookup_slot_for_cnode_op(false, cap, mr(0), mr(1))?;
            let (pivot_root, _) = extra_cap(t, info, 0)?;
            let (src_root, _) = extra_cap(t, info, 1)?;
            let pivot = lookup_slot_for_cnode_op(true, pivot_root, mr(2), mr(3))?;
            let src = lookup_slot_for_cnode_op(true, src_root, mr(5), mr(6))?;
            rotate(src, mr(6) as u32, mr(7), pivot, mr(3) as u32, mr(4), dest).map(|_| 0)
        })(),
        (Some(l @ (Invocation::CNodeDelete | Invocation::CNodeRevoke)), Cap::CNode { .. }) => {
            (|| {
                need(info, 2)?;
                let s = lookup_slot_for_cnode_op(false, cap, mr(0), mr(1))?;
                let mut fin = Kobj(k);
                let done = if l == Invocation::CNodeDelete {
                    axolotl_kernel_core::delete(s, &mut fin)
                } else {
                    axolotl_kernel_core::revoke(s, &mut fin)
                };
                preempted = done.is_err();
                Ok(0)
            })()
        }
        (Some(l), Cap::Tcb { ptr }) => {
            invoke_tcb(k, t, &mrs, l, info, Tcb::of_object(ptr), &mut preempted)
        }
        (Some(l), Cap::Vcpu { ptr }) => {
            // SAFETY: the cap names a live VCPU object.
            invoke_vcpu(k, t, &mrs, l, info, unsafe { Vcpu::at(ptr) })
        }
        (Some(Invocation::IrqControlGet), Cap::IrqControl) => (|| {
            need(info, 4)?;
            let irq = mr(0);
            let timer = irq == crate::BOARD.phys_timer_irq as u64;
            if !timer && !(32..crate::state::MAX_IRQS as u64).contains(&irq) {
                return Err(SyscallError::RangeError {
                    min: 32,
                    max: crate::state::MAX_IRQS as u64 - 1,
                });
            }
            // The kernel console's interrupt is the kernel's own, as seL4 reserves its
            // timer's: no handler, whoever asks.
            if k.irq_claimed[irq as usize] || irq == crate::BOARD.uart_irq as u64 {
                return Err(SyscallError::RevokeFirst);
            }
            let (root, _) = extra_cap(t, info, 0)?;
            let dest = lookup_slot_for_cnode_op(false, root, mr(2), mr(3))?;
            if !dest.cap().is_null() {
                return Err(SyscallError::DeleteFirst);
            }
            // SAFETY: an IRQ handler cap derives from IRQ control.
            unsafe {
                axolotl_kernel_core::mdb::insert_copy(
                    cap_slot,
                    dest,
                    Cap::IrqHandler { irq: irq as u32 },
                )
            };
            k.irq_claimed[irq as usize] = true;
            k.irq_edge[irq as usize] = mr(1) == 1;
            Ok(0)
        })(),
        (Some(Invocation::IrqHandlerSetNotification), Cap::IrqHandler { irq }) => (|| {
            let (n, nslot) = extra_cap(t, info, 0)?;
            let Cap::Notification { rights, .. } = n else {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            };
            if !rights.contains(Rights::WRITE) {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            }
            // seL4 `invokeIRQHandler_SetIRQHandler`: replace the IRQ node's cap by a copy
            // of this one, an MDB child/sibling of it (docs/security.md).
            let derived = axolotl_kernel_core::derive::derive_cap(nslot, n)?;
            crate::kobj::clear_irq_binding(k, irq);
            // SAFETY: `derived` comes from the cap in `nslot`; the slot was just emptied.
            unsafe {
                axolotl_kernel_core::mdb::insert_copy(
                    nslot,
                    crate::state::IRQ_NODE.slot(irq),
                    derived,
                )
            };
            let edge = k.irq_edge[irq as usize];
            if let Some(g) = k.gic.as_mut() {
                g.enable(irq, !edge);
            }
            Ok(0)
        })(),
        (Some(Invocation::IrqHandlerAck), Cap::IrqHandler { irq }) => {
            if let Some(g) = k.gic.as_mut() {
                g.unmask(irq);
            }
            Ok(0)
        }
        (Some(Invocation::IrqHandlerClear), Cap::IrqHandler { irq }) => {
            crate::kobj::clear_irq_binding(k, irq);
            if let Some(g) = k.gic.as_mut() {
                g.disable(irq);
            }
            Ok(0)
        }
        (
            Some(l @ (Invocation::VSpaceCleanData | Invocation::VSpaceUnifyInstruction)),
            Cap::VSpace {
                ptr, asid: Some(_), ..
            },
        ) => (|| {
            need(info, 2)?;
            vspace_cache_op(ptr, mr(0), mr(1), l == Invocation::VSpaceUnifyInstruction)
        })(),
        (Some(Invocation::PageGetAddress), Cap::Frame { ptr, .. }) => {
            set_mr(t, 0, ptr);
            Ok(1)
        }
        (
            Some(
                l @ (Invocation::PageTableMap
                | Invocation::PageTableUnmap
                | Invocation::PageMap
                | Invocation::PageUnmap
                | Invocation::AsidControlMakePool
                | Invocation::AsidPoolAssign),
            ),
            _,
        ) => crate::vm::invoke(k, l, info, cap, cap_slot, &mr, &|i| extra_cap(t, info, i)),
        (None, _) => Err(SyscallError::IllegalOperation),
        _ => Err(SyscallError::IllegalOperation),
    };
    if preempted {
        restart(t);
    } else if call {
        reply(t, r);
    }
}

/// A long deletion stopped at a pending interrupt (seL4's preempted invocation): nothing is
/// replied and the caller's PC goes back to its `svc`. Returning to user level takes the
/// interrupt at once; when the caller runs again it re-executes the call, which finds the
/// zombies the deletion left in the slots and goes on from there.
fn restart(t: *mut Tcb) {
    // SAFETY: t is live; ELR points past the `svc`.
    unsafe { (*t).ctx.elr -= 4 };
}

fn invoke_vcpu(
    k: &mut Kernel,
    caller: *mut Tcb,
    mrs: &ipc::Mrs,
    l: Invocation,
    info: MessageInfo,
    v: *mut Vcpu,
) -> Result<usize, SyscallError> {
    let mr = |i| mrs.get(i);
    match l {
        Invocation::VcpuSetTcb => {
            let (tcb, _) = extra_cap(caller, info, 0)?;
            let Cap::Tcb { ptr } = tcb else {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            };
            vcpu::bind(k, v, Tcb::of_object(ptr));
            Ok(0)
        }
        Invocation::VcpuInjectIrq => {
            need(info, 4)?;
            vcpu::inject_irq(k, v, mr(0), mr(1), mr(2), mr(3)).map(|_| 0)
        }
        Invocation::VcpuReadReg => {
            need(info, 1)?;
            let value = vcpu::read_reg(k, v, mr(0))?;
            mrs.set(0, value);
            Ok(1)
        }
        Invocation::VcpuWriteReg => {
            need(info, 2)?;
            vcpu::write_reg(k, v, mr(0), mr(1)).map(|_| 0)
        }
        Invocation::VcpuAckVppi => {
            need(info, 1)?;
            vcpu::ack_vppi(k, v, mr(0)).map(|_| 0)
        }
        _ => Err(SyscallError::IllegalOperation),
    }
}

/// Stops a thread. One blocked in a syscall has its PC rewound to the `svc`, so resuming it
/// re-executes the call (seL4's restart) rather than returning stale registers. A caller
/// waiting for its reply is released with `CALL_ABORTED` (`ipc::abort_reply`).
pub fn suspend(k: &mut Kernel, t: *mut Tcb) {
    ipc::abort_reply(k, t);
    // SAFETY: t is live.
    unsafe {
        let in_syscall = matches!(
            (*t).state,
            ThreadState::BlockedOnSend { .. }
                | ThreadState::BlockedOnRecv { .. }
                | ThreadState::BlockedOnReply
                | ThreadState::BlockedOnNotification { .. }
        );
        if in_syscall && (*t).fault.is_none() {
            (*t).ctx.elr -= 4;
        }
    }
    ipc::cancel_ipc(k, t);
}

fn invoke_tcb(
    k: &mut Kernel,
    caller: *mut Tcb,
    mrs: &ipc::Mrs,
    l: Invocation,
    info: MessageInfo,
    t: *mut Tcb,
    preempted: &mut bool,
) -> Result<usize, SyscallError> {
    let mr = |i| mrs.get(i);
    match l {
        Invocation::TcbSuspend => {
            suspend(k, t);
            Ok(0)
        }
        Invocation::TcbResume => {
            // SAFETY: t is live.
            if unsafe { (*t).state } == ThreadState::Inactive {
                // SAFETY: an inactive thread is in no queue.
                unsafe { k.sched.enqueue(t) };
            }
            Ok(0)
        }
        Invocation::TcbSetPriority | Invocation::TcbSetMcPriority => {
            need(info, 1)?;
            let (auth, _) = extra_cap(caller, info, 0)?;
            let Cap::Tcb { ptr } = auth else {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            };
            let prio = mr(0);
            // SAFETY: the authority thread is live.
            let mcp = unsafe { (*Tcb::of_object(ptr)).mcp } as u64;
            if prio > mcp {
                return Err(SyscallError::RangeError { min: 0, max: mcp });
            }
            // SAFETY: t is live; requeue it if it is ready so the queue matches its priority.
            unsafe {
                if l == Invocation::TcbSetMcPriority {
                    (*t).mcp = prio as u8;
                } else {
                    let ready = (*t).state == ThreadState::Ready;
                    if ready {
                        k.sched.dequeue(t);
                    }
                    (*t).priority = prio as u8;
                    if ready {
                        k.sched.enqueue(t);
                    }
                }
            }
            Ok(0)
        }
        Invocation::TcbConfigure | Invocation::TcbSetSpace => {
            let configure = l == Invocation::TcbConfigure;
            need(info, if configure { 4 } else { 3 })?;
            let (cspace, cspace_slot) = extra_cap(caller, info, 0)?;
            let (vspace, vspace_slot) = extra_cap(caller, info, 1)?;
            let buffer = if configure {
                Some(extra_cap(caller, info, 2)?)
            } else {
                None
            };
            if !matches!(cspace, Cap::CNode { .. }) {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            }
            if !matches!(vspace, Cap::VSpace { asid: Some(_), .. }) {
                return Err(SyscallError::InvalidCapability { arg: 2 });
            }
            let fault_ep = mr(0);
            let fault = if fault_ep == 0 {
                None
            } else {
                match lookup_cap(caller, fault_ep) {
                    Ok((c @ Cap::Endpoint { .. }, s)) => Some((c, s)),
                    _ => return Err(SyscallError::InvalidCapability { arg: 0 }),
                }
            };
            if let Some((bcap, _)) = buffer {
                // A RAM frame, checked here with everything else: nothing may change before
                // the last refusal (set_ipc_buffer would refuse it after the installs).
                let Cap::Frame {
                    is_device: false, ..
                } = bcap
                else {
                    return Err(SyscallError::InvalidCapability { arg: 3 });
                };
                if mr(3) % 512 != 0 {
                    return Err(SyscallError::AlignmentError);
                }
            }
            // As seL4: zero data leaves the root's guard as it is.
            let cspace = if mr(1) == 0 {
                cspace
            } else {
                axolotl_kernel_core::derive::update_cap_data(false, mr(1), cspace)
            };
            if cspace.is_null() {
                return Err(SyscallError::IllegalOperation);
            }
            // Every check is done and nothing changed yet: the old CSpace cap, possibly the
            // last to a CNode tree of any size, goes first and preemptibly (seL4's cteDelete
            // in ThreadControl); the restarted call repeats the checks and goes on.
            if clear_slot(k, t, slot::CSPACE).is_err() {
                *preempted = true;
                return Ok(0);
            }
            install(k, t, slot::CSPACE, cspace_slot, cspace)?;
            install(k, t, slot::VSPACE, vspace_slot, vspace)?;
            match fault {
                Some((c, s)) => install(k, t, slot::FAULT_EP, s, c)?,
                None => clear_short_slot(k, t, slot::FAULT_EP),
            }
            if let Some((bcap, bslot)) = buffer {
                set_ipc_buffer(k, t, mr(3), bcap, bslot)?;
            }
            Ok(0)
        }
        Invocation::TcbSetTimerAccess => {
            // The EL1 physical timer is one per CPU: whoever holds its interrupt's handler
            // cap decides who may program it (MR0: 1 grant, 0 withdraw).
            need(info, 1)?;
            let (auth, _) = extra_cap(caller, info, 0)?;
            if !matches!(auth, Cap::IrqHandler { irq } if irq == crate::BOARD.phys_timer_irq) {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            }
            // SAFETY: t is live; the CPU setting follows at the next entry to user level.
            unsafe { (*t).ptimer = mr(0) != 0 };
            Ok(0)
        }
        Invocation::TcbSetIpcBuffer => {
            need(info, 1)?;
            let (bcap, bslot) = extra_cap(caller, info, 0)?;
            if mr(0) % 512 != 0 {
                return Err(SyscallError::AlignmentError);
            }
            set_ipc_buffer(k, t, mr(0), bcap, bslot).map(|_| 0)
        }
        Invocation::TcbReadRegisters => {
            need(info, 3)?;
            let count = mr(2) as usize;
            if count == 0 || count > USER_CONTEXT_WORDS {
                return Err(SyscallError::RangeError {
                    min: 1,
                    max: USER_CONTEXT_WORDS as u64,
                });
            }
            if mr(0) & 1 != 0 && t != caller {
                suspend(k, t);
            }
            // SAFETY: t is live.
            let mut c = unsafe { (*t).ctx };
            if vcpu::is_guest(t) {
                c.sp = vcpu::read_sp(k, t);
            }
            for i in 0..count {
                mrs.set(i, context_word(&c, i));
            }
            Ok(count)
        }
        Invocation::TcbWriteRegisters => {
            need(info, 3)?;
            let count = (mr(2) as usize)
                .min(USER_CONTEXT_WORDS)
                .min(info.length() as usize - 3);
            let guest = vcpu::is_guest(t);
            let mut w = [0u64; USER_CONTEXT_WORDS];
            mrs.read_into(3, &mut w[..count]);
            let mut sp = None;
            // SAFETY: t is live.
            let c = unsafe { &mut (*t).ctx };
            if count == USER_CONTEXT_WORDS {
                // The whole context (a restart's entry registers): no per-word dispatch.
                c.elr = w[0];
                sp = Some(w[1]);
                c.spsr = w[2];
                c.x.copy_from_slice(&w[3..34]);
                c.tpidr = w[34];
            } else {
                for (i, &v) in w[..count].iter().enumerate() {
                    match i {
                        0 => c.elr = v,
                        1 => sp = Some(v),
                        2 => c.spsr = v,
                        3..=33 => c.x[i - 3] = v,
                        _ => c.tpidr = v,
                    }
                }
            }
            if count > 2 {
                c.spsr = axolotl_abi::syndrome::pstate::sanitise_spsr(c.spsr, guest);
            }
            // A guest's `sp` is the stack pointer of the mode it resumes in (the new spsr's).
            match sp {
                Some(v) if guest => vcpu::write_sp(k, t, v),
                // SAFETY: t is live.
                Some(v) => unsafe { (*t).ctx.sp = v },
                None => {}
            }
            // SAFETY: t is live.
            if mr(0) & 1 != 0 && t != caller && unsafe { (*t).state } == ThreadState::Inactive {
                // SAFETY: inactive threads are in no queue.
                unsafe { k.sched.enqueue(t) };
            }
            Ok(0)
        }
        Invocation::TcbBindNotification => {
            let (n, _) = extra_cap(caller, info, 0)?;
            let Cap::Notification { ptr, .. } = n else {
                return Err(SyscallError::InvalidCapability { arg: 1 });
            };
            // SAFETY: t and the notification are live.
            unsafe {
                let no = crate::object::Notification::at(ptr);
                if (*t).bound_ntfn != 0 || !no.bound.is_null() || !no.waiters.is_empty() {
                    return Err(SyscallError::IllegalOperation);
                }
                no.bound = t;
                (*t).bound_ntfn = ptr;
            }
            Ok(0)
        }
        Invocation::TcbUnbindNotification => {
            // SAFETY: t is live, its bound notification too.
            unsafe {
                if (*t).bound_ntfn == 0 {
                    return Err(SyscallError::IllegalOperation);
                }
                crate::object::Notification::at((*t).bound_ntfn).bound = core::ptr::null_mut();
                (*t).bound_ntfn = 0;
            }
            Ok(0)
        }
        _ => Err(SyscallError::IllegalOperation),
    }
}

/// Register `i` in seL4_UserContext order: pc, sp, spsr, x0..=x30, tpidr_el0.
/// Most bytes one cache-maintenance invocation covers: the kernel is not preemptible, so the
/// work of one call is bounded (seL4 bounds it to one frame).
pub const MAX_CACHE_OP_BYTES: u64 = 2 << 20;

/// VSpaceCleanData / VSpaceUnifyInstruction on `[start, end)` of the VSpace rooted at `root`:
/// every page of the range must be mapped; device mappings are skipped (nothing of them is
/// cached), RAM is maintained through the kernel's identity map.
fn vspace_cache_op(root: u64, start: u64, end: u64, unify: bool) -> Result<usize, SyscallError> {
    if end <= start {
        return Err(SyscallError::InvalidArgument { arg: 1 });
    }
    if end - start > MAX_CACHE_OP_BYTES {
        return Err(SyscallError::RangeError {
            min: 1,
            max: MAX_CACHE_OP_BYTES,
        });
    }
    // SAFETY: the cap names a live VSpace root table.
    let table = unsafe { crate::stage2::Table::at(root) };
    let page = crate::stage2::PAGE_SIZE;
    let ram = crate::BOARD.ram_base..crate::BOARD.ram_base + crate::BOARD.ram_size;
    // Checked whole before any maintenance, so a failure changes nothing.
    let mut va = start & !(page - 1);
    while va < end {
        if table.lookup(va).is_none() {
            return Err(SyscallError::FailedLookup {
                source: false,
                fault: axolotl_kernel_core::cspace::LookupFault::MissingCapability { bits_left: 0 },
            });
        }
        va += page;
    }
    let mut va = start;
    while va < end {
        let n = (page - (va % page)).min(end - va);
        if let Some((pa, attrs)) = table.lookup(va)
            && attrs.kind != crate::stage2::MemKind::Device
            && ram.contains(&pa)
            && ram.contains(&(pa + n - 1))
        {
            if unify {
                crate::arch::cpu::clean_dcache_pou(pa, n);
            } else {
                crate::arch::cpu::clean_dcache_poc(pa, n);
            }
        }
        va += n;
    }
    if unify {
        crate::arch::cpu::invalidate_icache();
    }
    Ok(0)
}

fn context_word(c: &crate::arch::context::UserContext, i: usize) -> u64 {
    match i {
        0 => c.elr,
        1 => c.sp,
        2 => c.spsr,
        3..=33 => c.x[i - 3],
        _ => c.tpidr,
    }
}

/// Empties one of the thread's own slots. The last cap to a CNode (only the CSPACE slot can
/// hold one) takes the CNode's slots with it, without bound: that stops at a pending
/// interrupt with `Err`, and the invocation is restarted.
fn clear_slot(k: &mut Kernel, t: *mut Tcb, i: usize) -> Result<(), axolotl_kernel_core::Preempted> {
    axolotl_kernel_core::delete(slot_of(t, i), &mut Kobj(k))
}

/// [`clear_slot`] run to the end, for the slots whose caps are never long to delete (a VSpace,
/// a frame, an endpoint: deletion finalises one object and stops at no preemption point), and
/// for a CSPACE slot already emptied preemptibly.
fn clear_short_slot(k: &mut Kernel, t: *mut Tcb, i: usize) {
    while clear_slot(k, t, i).is_err() {}
}

/// Puts a derived copy of `cap` (from `src`) into one of the thread's own slots.
fn install(
    k: &mut Kernel,
    t: *mut Tcb,
    i: usize,
    src: SlotRef,
    cap: Cap,
) -> Result<(), SyscallError> {
    let derived = axolotl_kernel_core::derive::derive_cap(src, cap)?;
    if derived.is_null() {
        return Err(SyscallError::IllegalOperation);
    }
    clear_short_slot(k, t, i);
    // SAFETY: `derived` comes from the cap in `src`.
    unsafe { axolotl_kernel_core::mdb::insert_copy(src, slot_of(t, i), derived) };
    Ok(())
}

fn set_ipc_buffer(
    k: &mut Kernel,
    t: *mut Tcb,
    vaddr: u64,
    bcap: Cap,
    bslot: SlotRef,
) -> Result<usize, SyscallError> {
    let Cap::Frame {
        ptr,
        size,
        is_device: false,
        ..
    } = bcap
    else {
        return Err(SyscallError::InvalidCapability { arg: 1 });
    };
    install(k, t, slot::IPC_BUFFER, bslot, bcap)?;
    let off = vaddr & ((1u64 << size.bits()) - 1);
    // SAFETY: t is live; the frame is kept alive by the cap just installed.
    unsafe {
        (*t).ipc_buffer = vaddr;
        (*t).ipc_buffer_pa = if off + 4096 <= (1 << size.bits()) {
            ptr + off
        } else {
            0
        };
    }
    Ok(0)
}
