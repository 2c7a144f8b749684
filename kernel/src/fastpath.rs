//! The IPC fast path, after seL4's: Call to a waiting receiver, and ReplyRecv to a waiting
//! caller, when nothing but a direct switch is needed — no extra caps, at most the four
//! register-borne words, no fault, the other thread at least as urgent as the caller (so no
//! scheduling decision), of the current domain, and its VSpace valid. The thread switches straight to the other
//! one without touching the ready queues. Anything else returns and takes the general path,
//! which gives the same result more slowly.

use axolotl_abi::{MSG_REGISTERS_IN_CPU, MessageInfo, Rights};
use axolotl_kernel_core::{Cap, SlotRef};

use crate::endpoint::{Endpoint, EpState};
use crate::invoke::lookup_cap;
use crate::notification::Notification;
use crate::state::Kernel;
use crate::thread::{Tcb, TcbRef, ThreadState, slot};
use crate::trap::{enter, valid_vspace};

/// A message the fast path can carry: no caps, all words in registers.
fn short(t: TcbRef) -> Option<MessageInfo> {
    let info = MessageInfo::from_word(t.ctx.x[1]);
    (info.extra_caps() == 0 && info.length() as usize <= MSG_REGISTERS_IN_CPU).then_some(info)
}

/// Copies the message words and tag from `from` to `to` and makes `to` the running thread.
fn switch_to(k: &mut Kernel, from: TcbRef, mut to: TcbRef, badge: u64, info: MessageInfo) -> ! {
    let vs = valid_vspace(k, to.ptr()).expect("checked by the caller");
    // Two threads (a caller never receives its own call): the borrows do not overlap.
    let (f, d) = (&from.ctx, &mut to.ctx);
    d.x[2..2 + MSG_REGISTERS_IN_CPU].copy_from_slice(&f.x[2..2 + MSG_REGISTERS_IN_CPU]);
    d.x[0] = badge;
    d.x[1] = MessageInfo::new(info.label(), 0, 0, info.length()).word();
    to.state = ThreadState::Running;
    if to.timeslice == 0 {
        to.timeslice = k.sched.timeslice_ticks;
    }
    k.sched.current = to.ptr();
    enter(k, to.ptr(), vs)
}

/// Call on an endpoint (its cap already looked up) with a receiver waiting. Returns if the
/// fast path does not apply.
pub fn call(k: &mut Kernel, t: TcbRef, ptr: u64, badge: u64, rights: Rights) {
    let Some(info) = short(t) else { return };
    let can_grant = rights.contains(Rights::GRANT);
    if !rights.contains(Rights::WRITE) || !(can_grant || rights.contains(Rights::GRANT_REPLY)) {
        return;
    }
    // SAFETY: a live endpoint (its cap was just found).
    let ep = unsafe { Endpoint::at(ptr) };
    if ep.state() != EpState::Recv {
        return;
    }
    let mut q = ep.queue();
    // SAFETY: the queue of a live endpoint.
    let dest = unsafe { TcbRef::new(q.head) };
    // A receiver of another domain waits for its domain's turn: the slow path queues it.
    if dest.priority < t.priority
        || dest.domain != k.sched.domain()
        || valid_vspace(k, dest.ptr()).is_none()
    {
        return;
    }
    // SAFETY: as above.
    unsafe { q.remove(dest) };
    ep.set(q, EpState::Recv);
    crate::ipc::setup_reply(t, dest, can_grant);
    switch_to(k, t, dest, badge, info)
}

/// ReplyRecv answering a caller that waits, on an endpoint with no sender queued.
pub fn reply_recv(k: &mut Kernel, mut t: TcbRef) {
    let Some(info) = short(t) else { return };
    // SAFETY: the REPLY slot lies in t's TCB object, which is live.
    let s = unsafe { SlotRef::from_addr(Tcb::slot_addr(t.ptr(), slot::REPLY)).unwrap() };
    let Cap::Reply { tcb, .. } = s.cap() else {
        return;
    };
    let mut caller = TcbRef::of_reply_cap(tcb);
    let (cptr, bound) = (t.ctx.x[0], t.bound_ntfn);
    let waiting = caller.reply_holder == t.ptr()
        && caller.state == ThreadState::BlockedOnReply
        && caller.fault.is_none()
        && caller.priority >= t.priority
        && caller.domain == k.sched.domain();
    if !waiting || valid_vspace(k, caller.ptr()).is_none() {
        return;
    }
    let Ok((Cap::Endpoint { ptr, rights, .. }, _)) = lookup_cap(t, cptr) else {
        return;
    };
    // SAFETY: a live endpoint; a bound notification is live while bound.
    let ep = unsafe { Endpoint::at(ptr) };
    if !rights.contains(Rights::READ) || ep.state() == EpState::Send {
        return;
    }
    // SAFETY: as above.
    if bound != 0 && unsafe { Notification::at(bound) }.pending() {
        return;
    }
    // SAFETY: t's own REPLY slot, outside the derivation tree.
    unsafe { s.write_cap(Cap::Null) };
    caller.reply_holder = core::ptr::null_mut();
    t.state = ThreadState::BlockedOnRecv { ep: ptr };
    let mut q = ep.queue();
    // SAFETY: t is running, so in no queue.
    unsafe { q.push(t) };
    ep.set(q, EpState::Recv);
    switch_to(k, t, caller, 0, info)
}
