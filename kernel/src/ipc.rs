//! Message passing (seL4 non-MCS semantics): endpoint send/receive, call with a one-shot
//! reply cap, notifications, fault messages, and cancellation.

use axolotl_abi::syndrome::pstate::sanitise_spsr;
use axolotl_abi::{
    FAULT_MAX_WORDS, Fault, IpcBuffer, MSG_MAX_LENGTH, MSG_REGISTERS_IN_CPU, MessageInfo,
    RESUME_MAX_WORDS, Resume, Rights,
};
use axolotl_kernel_core::{Cap, SlotRef};

use crate::endpoint::{Endpoint, EpState};
use crate::notification::Notification;
use crate::state::Kernel;
use crate::thread::{Tcb, TcbRef, ThreadState, slot};

/// The thread's IPC buffer, if it has one. The cached address is trusted only while the
/// TCB's IPC_BUFFER slot still holds that frame: a revoke may have deleted it (as seL4,
/// which looks the buffer cap up on every use).
pub fn ipc_buffer<'a>(t: TcbRef) -> Option<&'a mut IpcBuffer> {
    let pa = t.ipc_buffer_pa;
    // SAFETY: the slot belongs to t's TCB object.
    let cap = unsafe { SlotRef::from_addr(Tcb::slot_addr(t.ptr(), slot::IPC_BUFFER))? }.cap();
    let Cap::Frame {
        ptr,
        size,
        is_device: false,
        ..
    } = cap
    else {
        return None;
    };
    let fits =
        pa >= ptr && pa + core::mem::size_of::<IpcBuffer>() as u64 <= ptr + (1 << size.bits());
    // SAFETY: the frame is live (its cap is in the slot) and the buffer lies inside it.
    (pa != 0 && fits).then(|| unsafe { &mut *(pa as *mut IpcBuffer) })
}

/// A thread's message registers with its IPC buffer looked up at most once per system call
/// (as seL4 does), and only when a word beyond the registers is touched: the lookup
/// validates the buffer's frame cap, which costs more than the word access itself, and most
/// invocations and messages fit in registers.
pub struct Mrs {
    t: TcbRef,
    buf: core::cell::Cell<Option<Option<*mut IpcBuffer>>>,
}

impl Mrs {
    pub fn of(t: TcbRef) -> Mrs {
        Mrs {
            t,
            buf: core::cell::Cell::new(None),
        }
    }

    fn buf(&self) -> Option<*mut IpcBuffer> {
        match self.buf.get() {
            Some(b) => b,
            None => {
                let b = ipc_buffer(self.t).map(|b| b as *mut IpcBuffer);
                self.buf.set(Some(b));
                b
            }
        }
    }

    pub fn get(&self, i: usize) -> u64 {
        if i < MSG_REGISTERS_IN_CPU {
            self.t.ctx.x[2 + i]
        } else {
            // SAFETY: looked up during this system call; frames outlive it.
            self.buf()
                .map_or(0, |b| unsafe { (*b).msg.get(i).copied().unwrap_or(0) })
        }
    }

    /// Words `start..start + out.len()` into `out` (0 past what the buffer holds), the
    /// buffer's part in one copy.
    pub fn read_into(&self, start: usize, out: &mut [u64]) {
        for (i, w) in out.iter_mut().enumerate() {
            if start + i >= MSG_REGISTERS_IN_CPU {
                let from = start + i;
                let rest = &mut out[i..];
                let mut n = 0;
                if let Some(b) = self.buf() {
                    // SAFETY: looked up during this system call; frames outlive it.
                    let msg = unsafe { &(*b).msg };
                    n = rest.len().min(msg.len().saturating_sub(from));
                    if let Some(src) = msg.get(from..from + n) {
                        rest[..n].copy_from_slice(src);
                    }
                }
                rest[n..].fill(0);
                return;
            }
            *w = self.get(start + i);
        }
    }

    /// Words `0..len` of `from` into these registers: the buffer part in one copy.
    pub fn copy_from(&self, from: &Mrs, len: usize) {
        let regs = len.min(MSG_REGISTERS_IN_CPU);
        for i in 0..regs {
            self.set(i, from.get(i));
        }
        if len <= regs {
            return;
        }
        match (from.buf(), self.buf()) {
            (Some(src), Some(dst)) => {
                let n = len.min(MSG_MAX_LENGTH) - regs;
                // SAFETY: looked up during this system call, frames outlive it; raw pointers
                // and a memmove, as two threads' buffers may overlap.
                unsafe {
                    core::ptr::copy(
                        (&raw const (*src).msg).cast::<u64>().add(regs),
                        (&raw mut (*dst).msg).cast::<u64>().add(regs),
                        n,
                    )
                }
            }
            // A side without a buffer: its words beyond the registers read as 0 or are
            // dropped (`max_len` already limits `len` to what both can carry).
            _ => {
                for i in regs..len {
                    self.set(i, from.get(i));
                }
            }
        }
    }

    pub fn set(&self, i: usize, v: u64) {
        if i < MSG_REGISTERS_IN_CPU {
            let mut t = self.t;
            t.ctx.x[2 + i] = v;
        } else if let Some(b) = self.buf() {
            // SAFETY: as in `get`.
            if let Some(w) = unsafe { (*b).msg.get_mut(i) } {
                *w = v;
            }
        }
    }
}

pub fn get_mr(t: TcbRef, i: usize) -> u64 {
    if i < MSG_REGISTERS_IN_CPU {
        t.ctx.x[2 + i]
    } else {
        ipc_buffer(t).map_or(0, |b| b.msg[i])
    }
}

pub fn set_mr(mut t: TcbRef, i: usize, v: u64) {
    if i < MSG_REGISTERS_IN_CPU {
        t.ctx.x[2 + i] = v;
    } else if let Some(b) = ipc_buffer(t) {
        b.msg[i] = v;
    }
}

/// Message length a thread can actually carry: 4 words without an IPC buffer.
fn max_len(t: TcbRef) -> usize {
    if ipc_buffer(t).is_some() {
        MSG_MAX_LENGTH
    } else {
        MSG_REGISTERS_IN_CPU
    }
}

/// Sets what a receive returns: badge in x0, tag in x1.
fn deliver_tag(mut receiver: TcbRef, badge: u64, info: MessageInfo) {
    receiver.ctx.x[0] = badge;
    receiver.ctx.x[1] = info.word();
}

/// Copies a message from `sender` (its registers and IPC buffer, or the fault it carries) to
/// `receiver`, transferring one capability when `grant` allows and the receiver asked.
fn transfer(k: &mut Kernel, sender: TcbRef, receiver: TcbRef, badge: u64, grant: bool) {
    if let Some(f) = sender.fault.as_ref() {
        let mut words = [0; FAULT_MAX_WORDS];
        let n = f.to_words(&mut words);
        let to = Mrs::of(receiver);
        for (i, w) in words[..n].iter().enumerate() {
            to.set(i, *w);
        }
        deliver_tag(
            receiver,
            badge,
            MessageInfo::new(f.label() as u64, 0, 0, n as u64),
        );
        return;
    }
    let info = MessageInfo::from_word(sender.ctx.x[1]);
    let len = (info.length() as usize)
        .min(max_len(sender))
        .min(max_len(receiver));
    let (from, to) = (Mrs::of(sender), Mrs::of(receiver));
    to.copy_from(&from, len);
    let mut extra = 0;
    if grant && info.extra_caps() > 0 && transfer_cap(k, sender, receiver) {
        extra = 1;
    }
    deliver_tag(
        receiver,
        badge,
        MessageInfo::new(info.label(), 0, extra, len as u64),
    );
}

/// Moves a derived copy of the sender's first extra cap into the receiver's receive slot.
fn transfer_cap(_k: &mut Kernel, sender: TcbRef, receiver: TcbRef) -> bool {
    let (Some(sb), Some(rb)) = (ipc_buffer(sender), ipc_buffer(receiver)) else {
        return false;
    };
    let Ok((cap, src)) = crate::invoke::lookup_cap(sender, sb.caps_or_badges[0]) else {
        return false;
    };
    // seL4 `getReceiveSlots`: the receive CNode is looked up in the receiver's CSpace and the
    // slot in it at exactly the given depth; a depth of 0 (a path left zero) names no slot, so
    // a receiver that never asked for a cap gets none.
    let Some(rroot) = crate::invoke::cspace_root(receiver) else {
        return false;
    };
    let Ok((dest_root, _)) = crate::invoke::lookup_cap_in(rroot, rb.receive_cnode) else {
        return false;
    };
    let Ok(dest) = axolotl_kernel_core::cspace::lookup_target_slot(
        dest_root,
        rb.receive_index,
        rb.receive_depth,
    ) else {
        return false;
    };
    if !dest.cap().is_null() {
        return false;
    }
    let Ok(derived) = axolotl_kernel_core::derive::derive_cap(src, cap) else {
        return false;
    };
    if derived.is_null() {
        return false;
    }
    // SAFETY: `derived` comes from the cap in `src`.
    unsafe { axolotl_kernel_core::mdb::insert_copy(src, dest, derived) };
    true
}

fn wake(k: &mut Kernel, t: TcbRef) {
    // SAFETY: t is live (a `TcbRef`) and in no queue (every caller just took it out of one,
    // or out of a wait that queues nowhere).
    unsafe { k.sched.enqueue(t.ptr()) };
}

/// Gives the receiver a one-shot reply cap to `caller`, who waits for it.
pub fn setup_reply(mut caller: TcbRef, receiver: TcbRef, can_grant: bool) {
    let s = unlink_earlier_caller(receiver);
    // SAFETY: the receiver's own REPLY slot. Reply caps are not in the derivation tree:
    // `reply_holder` links the two ends instead, and both sides clear the link when either
    // thread goes away (`TcbRef::of_reply_cap`).
    unsafe {
        s.write_cap(Cap::Reply {
            tcb: caller.ptr() as u64,
            can_grant,
        })
    };
    caller.state = ThreadState::BlockedOnReply;
    caller.reply_holder = receiver.ptr();
}

/// The receiver takes a message that brings no reply cap (a Send, or a Call without the
/// grant-reply right): its REPLY slot must not keep an earlier caller's, or its next Reply
/// would answer a message it did not just receive and resume that caller, a faulted thread
/// its handler chose to leave stopped (seL4 deletes the caller cap on every receive). The
/// earlier caller keeps waiting, as one whose reply cap a newer call replaced.
fn forget_caller(receiver: TcbRef) {
    let s = unlink_earlier_caller(receiver);
    if !s.cap().is_null() {
        // SAFETY: the receiver's own REPLY slot, outside the derivation tree.
        unsafe { s.write_cap(Cap::Null) };
    }
}

/// The receiver's REPLY slot, its earlier caller (if any) no longer answered through it:
/// that caller loses its reply path, as in seL4.
fn unlink_earlier_caller(receiver: TcbRef) -> SlotRef {
    let s = reply_slot(receiver);
    if let Cap::Reply { tcb, .. } = s.cap() {
        let mut old = TcbRef::of_reply_cap(tcb);
        if old.reply_holder == receiver.ptr() {
            old.reply_holder = core::ptr::null_mut();
        }
    }
    s
}

/// The thread's REPLY slot, where the reply cap of the last Call it received is.
fn reply_slot(t: TcbRef) -> SlotRef {
    // SAFETY: the slot lies in t's TCB object, which is live.
    unsafe { SlotRef::from_addr(Tcb::slot_addr(t.ptr(), slot::REPLY)) }.unwrap()
}

/// Send on an endpoint (Send, NBSend, Call). Returns false if nothing happened (NBSend
/// without a receiver).
pub fn send(
    k: &mut Kernel,
    mut sender: TcbRef,
    ep_ptr: u64,
    badge: u64,
    rights: Rights,
    blocking: bool,
    call: bool,
) {
    // SAFETY: ep_ptr comes from a valid endpoint cap.
    let ep = unsafe { Endpoint::at(ep_ptr) };
    let can_grant = rights.contains(Rights::GRANT);
    let can_grant_reply = can_grant || rights.contains(Rights::GRANT_REPLY);
    match ep.state() {
        EpState::Recv => {
            let mut q = ep.queue();
            // SAFETY: the queue of a live endpoint.
            let receiver = unsafe { q.pop() }.expect("Recv state with an empty queue");
            ep.set(q, EpState::Recv);
            transfer(k, sender, receiver, badge, can_grant);
            if call && can_grant_reply {
                setup_reply(sender, receiver, can_grant);
            } else {
                forget_caller(receiver);
                if call {
                    // SAFETY: sender is live (a `TcbRef`).
                    unsafe { k.sched.make_inactive(sender.ptr()) };
                }
            }
            wake(k, receiver);
        }
        EpState::Idle | EpState::Send if blocking => {
            sender.state = ThreadState::BlockedOnSend {
                ep: ep_ptr,
                badge,
                can_grant,
                is_call: call,
            };
            let mut q = ep.queue();
            // SAFETY: sender is running, so in no queue.
            unsafe { q.push(sender) };
            ep.set(q, EpState::Send);
        }
        _ => {}
    }
}

/// Receive on an endpoint (Recv, NBRecv).
pub fn recv(k: &mut Kernel, mut receiver: TcbRef, ep_ptr: u64, blocking: bool) {
    // A bound notification with pending bits is delivered first.
    let bound = receiver.bound_ntfn;
    if bound != 0 {
        // SAFETY: bound_ntfn, when set, is a live notification.
        let n = unsafe { Notification::at(bound) };
        if n.pending() {
            deliver_tag(receiver, n.take(), MessageInfo::new(0, 0, 0, 0));
            return;
        }
    }
    // SAFETY: ep_ptr comes from a valid endpoint cap.
    let ep = unsafe { Endpoint::at(ep_ptr) };
    match ep.state() {
        EpState::Send => {
            let mut q = ep.queue();
            // SAFETY: the queue of a live endpoint.
            let sender = unsafe { q.pop() }.expect("Send state with an empty queue");
            ep.set(q, EpState::Send);
            let ThreadState::BlockedOnSend {
                badge,
                can_grant,
                is_call,
                ..
            } = sender.state
            else {
                unreachable!("a thread in a send queue is BlockedOnSend")
            };
            transfer(k, sender, receiver, badge, can_grant);
            if is_call || sender.fault.is_some() {
                setup_reply(sender, receiver, can_grant);
            } else {
                forget_caller(receiver);
                wake(k, sender);
            }
        }
        _ if blocking => {
            receiver.state = ThreadState::BlockedOnRecv { ep: ep_ptr };
            let mut q = ep.queue();
            // SAFETY: receiver is running, so in no queue.
            unsafe { q.push(receiver) };
            ep.set(q, EpState::Recv);
        }
        _ => deliver_tag(receiver, 0, MessageInfo::new(0, 0, 0, 0)),
    }
}

/// `holder` will not answer the caller its REPLY slot names (it is being suspended or
/// deleted). The caller gets an empty reply labelled `CALL_ABORTED` instead of waiting for
/// good; one waiting for a fault reply re-executes the faulting instruction, so its fault is
/// delivered again, to whoever handles it next (a restarted handler). A guest event that no
/// instruction raises again (`redelivered`) is sent again as it was instead.
pub fn abort_reply(k: &mut Kernel, holder: TcbRef) {
    let s = reply_slot(holder);
    let Cap::Reply { tcb, .. } = s.cap() else {
        return;
    };
    let mut caller = TcbRef::of_reply_cap(tcb);
    // SAFETY: emptying our own slot, outside the derivation tree.
    unsafe { s.write_cap(Cap::Null) };
    if caller.reply_holder != holder.ptr() || caller.state != ThreadState::BlockedOnReply {
        return;
    }
    caller.reply_holder = core::ptr::null_mut();
    match caller.fault.take() {
        None => deliver_tag(
            caller,
            0,
            MessageInfo::new(axolotl_abi::CALL_ABORTED, 0, 0, 0),
        ),
        // The caller is blocked and in no queue, as a thread that just faulted; with no
        // fault endpoint left it stays stopped, as one that faulted without one.
        Some(f) if redelivered(caller, &f) => {
            if !send_fault(k, caller, f) {
                // SAFETY: the caller is live, blocked and in no queue.
                unsafe { k.sched.make_inactive(caller.ptr()) };
            }
            return;
        }
        Some(_) => {}
    }
    wake(k, caller);
}

/// A guest's exit is sent again as it was, not re-raised by re-executing: an event (the
/// virtual timer's, whose PPI stays masked until the VMM acks it; a VGIC maintenance, whose
/// list register the kernel already emptied; an SError) would not come again at all, and a
/// synchronous exit re-executed could come after an interrupt the guest took first — then it
/// is no longer the exit the dead VMM may have committed, under the number it committed it
/// (`Vcpu::exits`). A native thread's fault re-executes.
fn redelivered(caller: TcbRef, f: &Fault) -> bool {
    if caller.vcpu.is_null() {
        return false;
    }
    match f {
        Fault::VppiEvent { .. } | Fault::VgicMaintenance { .. } | Fault::VcpuFault { .. } => true,
        Fault::VmFault { stored, .. } => stored.is_some(),
        _ => false,
    }
}

/// Reply through the replier's REPLY slot (Reply, first half of ReplyRecv). A reply to a
/// fault resumes the faulted thread, with registers from the message when it has any.
pub fn reply(k: &mut Kernel, replier: TcbRef) {
    let s = reply_slot(replier);
    let Cap::Reply { tcb, .. } = s.cap() else {
        return;
    };
    let mut caller = TcbRef::of_reply_cap(tcb);
    // SAFETY: emptying our own slot, outside the derivation tree.
    unsafe { s.write_cap(Cap::Null) };
    if caller.reply_holder != replier.ptr() || caller.state != ThreadState::BlockedOnReply {
        return;
    }
    caller.reply_holder = core::ptr::null_mut();
    if let Some(f) = caller.fault.take() {
        if apply_fault_reply(k, replier, caller, f) {
            return crate::vcpu::wait_for_interrupt(k, caller);
        }
    } else {
        transfer(k, replier, caller, 0, false);
    }
    wake(k, caller);
}

/// seL4's fault-reply rules (`axolotl_abi::Resume`): a VM fault retries the access; user
/// exceptions and unknown syscalls take registers from a non-empty reply; a guest's exits
/// follow its VMM's flags. True when the guest is to wait for an interrupt (`resume::WAIT`).
fn apply_fault_reply(k: &mut Kernel, replier: TcbRef, mut caller: TcbRef, f: Fault) -> bool {
    let info = MessageInfo::from_word(replier.ctx.x[1]);
    if info.label() != 0 {
        return false;
    }
    let guest = crate::vcpu::is_guest(caller);
    let n = (info.length() as usize).min(Resume::max_words(f.label(), guest));
    let mut words = [0; RESUME_MAX_WORDS];
    for (i, w) in words[..n].iter_mut().enumerate() {
        *w = get_mr(replier, i);
    }
    let resume = Resume::from_words(f.label(), guest, &words[..n]);
    if guest {
        return crate::vcpu::apply_reply(k, caller, f, resume);
    }
    let Resume::Registers { len, regs } = resume else {
        return false;
    };
    let c = &mut caller.ctx;
    let regs = &regs[..len as usize];
    match f {
        Fault::UserException { .. } => {
            for (i, &v) in regs.iter().enumerate() {
                match i {
                    0 => c.elr = v,
                    1 => c.sp = v,
                    _ => c.spsr = sanitise_spsr(v, false),
                }
            }
        }
        Fault::UnknownSyscall { .. } => {
            for (i, &v) in regs.iter().enumerate() {
                match i {
                    0..=7 => c.x[i] = v,
                    8 => c.elr = v,
                    9 => c.sp = v,
                    10 => c.x[30] = v,
                    _ => c.spsr = sanitise_spsr(v, false),
                }
            }
        }
        _ => {}
    }
    false
}

/// Delivers a fault of `t` to its fault endpoint as a Call; false when it has none.
pub fn send_fault(k: &mut Kernel, mut t: TcbRef, f: Fault) -> bool {
    // SAFETY: the FAULT_EP slot lies in t's TCB object, which is live.
    let s = unsafe { SlotRef::from_addr(Tcb::slot_addr(t.ptr(), slot::FAULT_EP)).unwrap() };
    let Cap::Endpoint { ptr, badge, rights } = s.cap() else {
        return false;
    };
    if !rights.contains(Rights::WRITE) {
        return false;
    }
    t.fault = Some(f);
    // Faults always carry the reply right: the handler must be able to resume the thread.
    send(
        k,
        t,
        ptr,
        badge,
        rights.union(Rights::GRANT_REPLY),
        true,
        true,
    );
    true
}

/// Signal a notification with `badge` (Signal, Send on a notification cap).
pub fn signal(k: &mut Kernel, ntfn_ptr: u64, badge: u64) {
    // SAFETY: ntfn_ptr comes from a valid notification cap.
    let n = unsafe { Notification::at(ntfn_ptr) };
    // SAFETY: the queue of a live notification.
    if let Some(w) = unsafe { n.waiters.pop() } {
        deliver_tag(w, badge, MessageInfo::new(0, 0, 0, 0));
        wake(k, w);
        return;
    }
    if let Some(bound) = bound_thread(n)
        && matches!(bound.state, ThreadState::BlockedOnRecv { .. })
    {
        cancel_ipc(k, bound);
        deliver_tag(bound, badge, MessageInfo::new(0, 0, 0, 0));
        wake(k, bound);
        return;
    }
    n.post(badge);
}

/// Wait (blocking) or Poll on a notification.
pub fn wait(_k: &mut Kernel, mut t: TcbRef, ntfn_ptr: u64, blocking: bool) {
    // SAFETY: ntfn_ptr comes from a valid notification cap.
    let n = unsafe { Notification::at(ntfn_ptr) };
    if n.pending() || !blocking {
        deliver_tag(t, n.take(), MessageInfo::new(0, 0, 0, 0));
        return;
    }
    t.state = ThreadState::BlockedOnNotification { ntfn: ntfn_ptr };
    // SAFETY: t is running, so in no queue.
    unsafe { n.waiters.push(t) };
}

/// Takes a thread out of whatever IPC it is blocked in; it becomes Inactive.
pub fn cancel_ipc(k: &mut Kernel, mut t: TcbRef) {
    match t.state {
        // SAFETY: the objects a thread is blocked on are live while it is queued on them.
        ThreadState::BlockedOnSend { ep, .. } | ThreadState::BlockedOnRecv { ep } => unsafe {
            let e = Endpoint::at(ep);
            let st = e.state();
            let mut q = e.queue();
            q.remove(t);
            e.set(q, st);
        },
        // SAFETY: as above.
        ThreadState::BlockedOnNotification { ntfn } => unsafe {
            Notification::at(ntfn).waiters.remove(t)
        },
        // SAFETY: a waiting guest is in the kernel's queue of them.
        ThreadState::WaitingForInterrupt => unsafe { k.wfi.remove(t) },
        ThreadState::BlockedOnReply => {
            // The holder's reply cap must not outlive this wait: the TCB may be deleted
            // and its memory reused, and a later Reply would trust it.
            let h = t.reply_holder;
            if !h.is_null() {
                // SAFETY: a holder clears the links to it when it goes away (`abort_reply`,
                // the finalisation of its reply cap), so a linked holder is live.
                let s = reply_slot(unsafe { TcbRef::new(h) });
                if matches!(s.cap(), Cap::Reply { tcb, .. } if tcb == t.ptr() as u64) {
                    // SAFETY: the holder's REPLY slot, outside the derivation tree.
                    unsafe { s.write_cap(Cap::Null) };
                }
            }
            t.reply_holder = core::ptr::null_mut();
        }
        _ => {}
    }
    t.fault = None;
    // SAFETY: t is live (a `TcbRef`).
    unsafe { k.sched.make_inactive(t.ptr()) };
}

/// An endpoint is going away: every waiter re-executes its syscall (seL4's restart), which
/// then finds the capability gone.
pub fn cancel_all_endpoint(k: &mut Kernel, ep_ptr: u64) {
    // SAFETY: a live endpoint being finalised.
    let e = unsafe { Endpoint::at(ep_ptr) };
    let mut q = e.queue();
    // SAFETY: the queue of a live endpoint.
    while let Some(t) = unsafe { q.pop() } {
        restart(k, t);
    }
    e.set(q, EpState::Idle);
}

pub fn cancel_all_notification(k: &mut Kernel, ntfn_ptr: u64) {
    // SAFETY: a live notification being finalised.
    let n = unsafe { Notification::at(ntfn_ptr) };
    // SAFETY: the queue of a live notification.
    while let Some(t) = unsafe { n.waiters.pop() } {
        restart(k, t);
    }
    if let Some(mut bound) = bound_thread(n) {
        bound.bound_ntfn = 0;
        n.set_bound(core::ptr::null_mut());
    }
}

/// The thread bound to a notification, if any.
fn bound_thread(n: &Notification) -> Option<TcbRef> {
    let b = n.bound();
    // SAFETY: a bound thread is live: unbinding, and so deleting the thread, clears `bound`.
    (!b.is_null()).then(|| unsafe { TcbRef::new(b) })
}

fn restart(k: &mut Kernel, mut t: TcbRef) {
    if t.fault.is_some() {
        // A faulting thread re-faults when resumed, which finds the endpoint gone.
        t.fault = None;
    } else {
        // ELR points past its `svc`.
        t.ctx.elr -= 4;
    }
    wake(k, t);
}
