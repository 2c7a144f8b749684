//! TCB invocations (seL4 `decodeTCBInvocation`, `invokeTCB_*`), and suspension, which
//! deleting a TCB uses too.

use axolotl_abi::{Invocation, USER_CONTEXT_WORDS};
use axolotl_kernel_core::derive::{derive_cap, update_cap_data};
use axolotl_kernel_core::{Cap, Preempted, SlotRef, SyscallError};

use super::{Decoded, Done, Msg, lookup_cap, refuse, slot_of};
use crate::arch::context::UserContext;
use crate::ipc;
use crate::kobj::Kobj;
use crate::notification::Notification;
use crate::state::Kernel;
use crate::thread::{TcbRef, ThreadState, slot};

/// A cap to put in one of the thread's own slots: already derived from the cap in `src`.
#[derive(Clone, Copy)]
pub struct Install {
    cap: Cap,
    src: SlotRef,
}

/// A checked IPC buffer: a RAM frame, the buffer's address in the thread's VSpace and where
/// the kernel reaches it (0: it does not fit in the frame).
#[derive(Clone, Copy)]
pub struct Buffer {
    vaddr: u64,
    pa: u64,
    frame: Install,
}

pub enum TcbOp {
    Suspend,
    Resume,
    SetPriority(u8),
    SetMcPriority(u8),
    /// TcbConfigure (with a buffer) and TcbSetSpace; `tcb` is the slot of the TCB cap
    /// invoked.
    SetSpace {
        tcb: SlotRef,
        cspace: Install,
        vspace: Install,
        fault: Option<Install>,
        buffer: Option<Buffer>,
    },
    SetTimerAccess(bool),
    SetIpcBuffer(Buffer),
    ReadRegisters {
        suspend: bool,
        count: usize,
    },
    WriteRegisters {
        resume: bool,
        count: usize,
    },
    BindNotification(u64),
    UnbindNotification,
    GetCpuTime,
}

/// A derived copy of `cap` (from `src`) for one of the thread's slots.
fn install_of(cap: Cap, src: SlotRef) -> Decoded<Install> {
    let derived = derive_cap(src, cap)?;
    if derived.is_null() {
        return Err(refuse!(
            SyscallError::IllegalOperation,
            "the cap cannot be copied into a TCB"
        ));
    }
    Ok(Install { cap: derived, src })
}

/// An IPC buffer at `vaddr` in the frame `cap`; `arg` is the frame's argument number.
fn buffer_of(vaddr: u64, cap: Cap, src: SlotRef, arg: u32) -> Decoded<Buffer> {
    let Cap::Frame {
        ptr,
        size,
        is_device: false,
        ..
    } = cap
    else {
        return Err(refuse!(
            SyscallError::InvalidCapability { arg },
            "the IPC buffer is not a RAM frame"
        ));
    };
    let off = vaddr & ((1u64 << size.bits()) - 1);
    Ok(Buffer {
        vaddr,
        pa: if off + 4096 <= (1 << size.bits()) {
            ptr + off
        } else {
            0
        },
        frame: install_of(cap, src)?,
    })
}

fn misaligned() -> super::Refusal {
    refuse!(
        SyscallError::AlignmentError,
        "the IPC buffer is not 512-byte aligned"
    )
}

pub fn decode(m: &Msg, l: Invocation, t: TcbRef, tcb: SlotRef) -> Decoded<TcbOp> {
    let mr = |i| m.mr(i);
    Ok(match l {
        Invocation::TcbSuspend => TcbOp::Suspend,
        Invocation::TcbResume => TcbOp::Resume,
        Invocation::TcbSetPriority | Invocation::TcbSetMcPriority => {
            m.need(1)?;
            let (auth, _) = m.extra_cap(0)?;
            let Cap::Tcb { ptr } = auth else {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "the authority is not a TCB"
                ));
            };
            let prio = mr(0);
            let mcp = TcbRef::of_cap(ptr).mcp as u64;
            if prio > mcp {
                return Err(refuse!(
                    SyscallError::RangeError { min: 0, max: mcp },
                    "above the authority's maximum controlled priority"
                ));
            }
            if l == Invocation::TcbSetMcPriority {
                TcbOp::SetMcPriority(prio as u8)
            } else {
                TcbOp::SetPriority(prio as u8)
            }
        }
        Invocation::TcbConfigure | Invocation::TcbSetSpace => {
            let configure = l == Invocation::TcbConfigure;
            m.need(if configure { 4 } else { 3 })?;
            let (cspace, cspace_slot) = m.extra_cap(0)?;
            let (vspace, vspace_slot) = m.extra_cap(1)?;
            let buffer = if configure {
                Some(m.extra_cap(2)?)
            } else {
                None
            };
            if !matches!(cspace, Cap::CNode { .. }) {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "the CSpace root is not a CNode"
                ));
            }
            if !matches!(vspace, Cap::VSpace { asid: Some(_), .. }) {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 2 },
                    "the VSpace is not one with an ASID"
                ));
            }
            let fault_ep = mr(0);
            let fault = if fault_ep == 0 {
                None
            } else {
                match lookup_cap(m.caller, fault_ep) {
                    Ok((c @ Cap::Endpoint { .. }, s)) => Some((c, s)),
                    _ => {
                        return Err(refuse!(
                            SyscallError::InvalidCapability { arg: 0 },
                            "the fault endpoint is not an endpoint"
                        ));
                    }
                }
            };
            // The buffer is checked here with everything else: nothing may change before
            // the last refusal.
            let buffer = match buffer {
                Some((bcap, bslot)) => {
                    let Cap::Frame {
                        is_device: false, ..
                    } = bcap
                    else {
                        return Err(refuse!(
                            SyscallError::InvalidCapability { arg: 3 },
                            "the IPC buffer is not a RAM frame"
                        ));
                    };
                    if mr(3) % 512 != 0 {
                        return Err(misaligned());
                    }
                    Some(buffer_of(mr(3), bcap, bslot, 3)?)
                }
                None => None,
            };
            // As seL4: zero data leaves the root's guard as it is.
            let cspace = if mr(1) == 0 {
                cspace
            } else {
                update_cap_data(false, mr(1), cspace)
            };
            if cspace.is_null() {
                return Err(refuse!(
                    SyscallError::IllegalOperation,
                    "the CSpace data is not a valid guard"
                ));
            }
            TcbOp::SetSpace {
                tcb,
                cspace: install_of(cspace, cspace_slot)?,
                vspace: install_of(vspace, vspace_slot)?,
                fault: match fault {
                    Some((c, s)) => Some(install_of(c, s)?),
                    None => None,
                },
                buffer,
            }
        }
        Invocation::TcbSetTimerAccess => {
            // The EL1 physical timer is one per CPU: whoever holds its interrupt's handler
            // cap decides who may program it (MR0: 1 grant, 0 withdraw).
            m.need(1)?;
            let (auth, _) = m.extra_cap(0)?;
            if !matches!(auth, Cap::IrqHandler { irq } if irq == crate::BOARD.phys_timer_irq) {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "the authority is not the EL1 physical timer's handler"
                ));
            }
            TcbOp::SetTimerAccess(mr(0) != 0)
        }
        Invocation::TcbSetIpcBuffer => {
            m.need(1)?;
            let (bcap, bslot) = m.extra_cap(0)?;
            if mr(0) % 512 != 0 {
                return Err(misaligned());
            }
            TcbOp::SetIpcBuffer(buffer_of(mr(0), bcap, bslot, 1)?)
        }
        Invocation::TcbReadRegisters => {
            m.need(3)?;
            let count = mr(2) as usize;
            if count == 0 || count > USER_CONTEXT_WORDS {
                return Err(refuse!(
                    SyscallError::RangeError {
                        min: 1,
                        max: USER_CONTEXT_WORDS as u64,
                    },
                    "register count"
                ));
            }
            TcbOp::ReadRegisters {
                suspend: mr(0) & 1 != 0 && t != m.caller,
                count,
            }
        }
        Invocation::TcbWriteRegisters => {
            m.need(3)?;
            TcbOp::WriteRegisters {
                resume: mr(0) & 1 != 0 && t != m.caller,
                count: (mr(2) as usize)
                    .min(USER_CONTEXT_WORDS)
                    .min(m.info.length() as usize - 3),
            }
        }
        Invocation::TcbBindNotification => {
            let (n, _) = m.extra_cap(0)?;
            let Cap::Notification { ptr, .. } = n else {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "not a notification"
                ));
            };
            // SAFETY: the cap names a live notification.
            let no = unsafe { Notification::at(ptr) };
            if t.bound_ntfn != 0 || !no.bound().is_null() || !no.waiters.is_empty() {
                return Err(refuse!(
                    SyscallError::IllegalOperation,
                    "the thread or the notification is bound already, or it has waiters"
                ));
            }
            TcbOp::BindNotification(ptr)
        }
        Invocation::TcbGetCpuTime => {
            if !cfg!(feature = "cpu-time") {
                return Err(refuse!(
                    SyscallError::IllegalOperation,
                    "the kernel was built without CPU time (its `cpu-time` feature)"
                ));
            }
            TcbOp::GetCpuTime
        }
        Invocation::TcbUnbindNotification => {
            if t.bound_ntfn == 0 {
                return Err(refuse!(
                    SyscallError::IllegalOperation,
                    "no notification is bound"
                ));
            }
            TcbOp::UnbindNotification
        }
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "not a TCB invocation"
            ));
        }
    })
}

pub fn perform(k: &mut Kernel, m: &Msg, mut t: TcbRef, op: TcbOp) -> Done {
    match op {
        TcbOp::Suspend => suspend(k, t),
        TcbOp::Resume => {
            if t.state == ThreadState::Inactive {
                // SAFETY: an inactive thread is in no queue.
                unsafe { k.sched.enqueue(t.ptr()) };
            }
        }
        TcbOp::SetMcPriority(mcp) => t.mcp = mcp,
        TcbOp::SetPriority(prio) => {
            // A ready thread is requeued, so its queue matches its priority.
            let ready = t.state == ThreadState::Ready;
            // SAFETY: a ready thread is in its priority's queue; out of it, in none.
            unsafe {
                if ready {
                    k.sched.dequeue(t.ptr());
                }
                t.priority = prio;
                if ready {
                    k.sched.enqueue(t.ptr());
                }
            }
        }
        TcbOp::SetSpace {
            tcb,
            cspace,
            vspace,
            fault,
            buffer,
        } => {
            // The old CSpace cap, possibly the last to a CNode tree of any size, goes first
            // and preemptibly (seL4's cteDelete in ThreadControl); the restarted call decodes
            // again and goes on.
            if clear_slot(k, t, slot::CSPACE).is_err() {
                return Done::Preempted;
            }
            // That deletion may have emptied the slots this call's caps were found in, the
            // TCB cap's too: a thread configuring itself while its TCB holds the only cap
            // to its CSpace deletes that CNode. Each install checks its source again.
            install(k, t, Some(tcb), slot::CSPACE, cspace);
            install(k, t, Some(tcb), slot::VSPACE, vspace);
            match fault {
                Some(f) => {
                    install(k, t, Some(tcb), slot::FAULT_EP, f);
                }
                None => clear_short_slot(k, t, slot::FAULT_EP),
            }
            if let Some(b) = buffer {
                set_ipc_buffer(k, t, Some(tcb), b);
            }
        }
        // The CPU setting follows at the next entry to user level.
        TcbOp::SetTimerAccess(on) => t.ptimer = on,
        // Only the old buffer's frame cap is deleted first, which empties no other slot:
        // the TCB cap is still there.
        TcbOp::SetIpcBuffer(b) => set_ipc_buffer(k, t, None, b),
        TcbOp::ReadRegisters {
            suspend: stop,
            count,
        } => {
            if stop {
                suspend(k, t);
            }
            let mut c = t.ctx;
            if crate::vcpu::is_guest(t) {
                c.sp = crate::vcpu::read_sp(k, t);
            }
            for i in 0..count {
                m.mrs.set(i, context_word(&c, i));
            }
            return Done::Reply(count);
        }
        TcbOp::GetCpuTime => {
            // The caller's own stretch up to this call is charged already (`trap`); the
            // kernel's current one is not yet: the figures run up to this entry.
            let c = k.cpu;
            let words = [t.cpu_cycles, c.kernel, c.idle, crate::arch::timer::now()];
            for (i, w) in words.into_iter().enumerate() {
                m.mrs.set(i, w);
            }
            return Done::Reply(words.len());
        }
        TcbOp::WriteRegisters { resume, count } => {
            write_registers(k, m, t, count);
            if resume && t.state == ThreadState::Inactive {
                // SAFETY: inactive threads are in no queue.
                unsafe { k.sched.enqueue(t.ptr()) };
            }
        }
        TcbOp::BindNotification(ptr) => {
            // SAFETY: the cap named a live notification (decode); nothing deleted it since.
            unsafe { Notification::at(ptr) }.set_bound(t.ptr());
            t.bound_ntfn = ptr;
        }
        TcbOp::UnbindNotification => {
            // SAFETY: a bound notification is live while bound.
            unsafe { Notification::at(t.bound_ntfn) }.set_bound(core::ptr::null_mut());
            t.bound_ntfn = 0;
        }
    }
    Done::Reply(0)
}

/// Words `0..count` of the message after the three argument words, into the context in
/// seL4_UserContext order.
fn write_registers(k: &mut Kernel, m: &Msg, mut t: TcbRef, count: usize) {
    let guest = crate::vcpu::is_guest(t);
    let mut w = [0u64; USER_CONTEXT_WORDS];
    m.mrs.read_into(3, &mut w[..count]);
    let mut sp = None;
    let c = &mut t.ctx;
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
        Some(v) if guest => crate::vcpu::write_sp(k, t, v),
        Some(v) => t.ctx.sp = v,
        None => {}
    }
}

/// Stops a thread. One blocked in a syscall has its PC rewound to the `svc`, so resuming it
/// re-executes the call (seL4's restart) rather than returning stale registers. A caller
/// waiting for its reply is released with `CALL_ABORTED` (`ipc::abort_reply`).
pub fn suspend(k: &mut Kernel, mut t: TcbRef) {
    ipc::abort_reply(k, t);
    let in_syscall = matches!(
        t.state,
        ThreadState::BlockedOnSend { .. }
            | ThreadState::BlockedOnRecv { .. }
            | ThreadState::BlockedOnReply
            | ThreadState::BlockedOnNotification { .. }
    );
    if in_syscall && t.fault.is_none() {
        t.ctx.elr -= 4;
    }
    ipc::cancel_ipc(k, t);
}

/// Register `i` in seL4_UserContext order: pc, sp, spsr, x0..=x30, tpidr_el0.
fn context_word(c: &UserContext, i: usize) -> u64 {
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
fn clear_slot(k: &mut Kernel, t: TcbRef, i: usize) -> Result<(), Preempted> {
    axolotl_kernel_core::delete(slot_of(t, i), &mut Kobj(k))
}

/// [`clear_slot`] run to the end, for the slots whose caps are never long to delete (a VSpace,
/// a frame, an endpoint: deletion finalises one object and stops at no preemption point), and
/// for a CSPACE slot already emptied preemptibly.
fn clear_short_slot(k: &mut Kernel, t: TcbRef, i: usize) {
    while clear_slot(k, t, i).is_err() {}
}

/// Puts a derived cap into one of the thread's own slots, in place of what was there, and
/// says whether it did. Emptying the slot first may delete other caps (the CSPACE slot's
/// deletion, before, even more): as seL4's `invokeTCB_ThreadControl`, the cap goes in only
/// if its source slot still holds its object and `tcb`, the slot of the TCB cap invoked
/// (when a deletion could have emptied it), still holds a cap to `t`. Otherwise the slot
/// stays empty: a cap linked into the derivation tree from an emptied slot would keep that
/// slot's address, written through once the memory is retyped (docs/security.md), and a
/// cap put into a TCB whose last cap went would never be deleted.
fn install(k: &mut Kernel, t: TcbRef, tcb: Option<SlotRef>, i: usize, c: Install) -> bool {
    clear_short_slot(k, t, i);
    let tcb_there =
        tcb.is_none_or(|s| matches!(s.cap(), Cap::Tcb { ptr } if TcbRef::of_cap(ptr) == t));
    if !tcb_there || !c.src.cap().same_object_as(&c.cap) {
        return false;
    }
    // SAFETY: `c.cap` was derived from the cap in `c.src` (`install_of`), which still holds
    // that object, so `c.src` is a live slot in the derivation tree.
    unsafe { axolotl_kernel_core::mdb::insert_copy(c.src, slot_of(t, i), c.cap) };
    true
}

fn set_ipc_buffer(k: &mut Kernel, mut t: TcbRef, tcb: Option<SlotRef>, b: Buffer) {
    // The frame is kept alive by the cap installed; without it the thread has no buffer
    // the kernel may reach (seL4 keeps the address either way).
    let installed = install(k, t, tcb, slot::IPC_BUFFER, b.frame);
    t.ipc_buffer = b.vaddr;
    t.ipc_buffer_pa = if installed { b.pa } else { 0 };
}
