//! Endpoint IPC and notifications between the root task and threads of the case.
//! Threads get their caps through `SHARED` (same address space): 13 extra, 14 the endpoint,
//! 15 the notification they signal when done.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, set_shared, shared};
use axolotl_abi::{MessageInfo, Rights};
use axolotl_sys::{Endpoint, Notification, ipc, syscall, yield_now};

const EXTRA: usize = 13;
const EP: usize = 14;
const DONE: usize = 15;

fn setup(env: &mut Env) -> Result<(Endpoint, Notification), Fail> {
    let ep = env.endpoint()?;
    let done = env.notification()?;
    let done_b = env.mint(done.0, Rights::ALL, 1)?;
    set_shared(EP, ep.0);
    set_shared(DONE, done_b);
    Ok((ep, done))
}

fn done() {
    syscall::signal(shared(DONE));
}

fn receiver(_: u64) {
    let m = syscall::recv(shared(EP));
    set_shared(0, m.badge);
    set_shared(1, m.label());
    set_shared(2, m.info.length());
    for i in 0..4 {
        set_shared(3 + i, m.mrs[i]);
    }
    done();
}

pub fn send_recv(env: &mut Env) -> Result<(), Fail> {
    let (ep, d) = setup(env)?;
    let b = env.mint(ep.0, Rights::ALL, 0x99)?;
    env.spawn(receiver, 0, 100, 0)?;
    syscall::send(b, MessageInfo::new(0x55, 0, 0, 4), [10, 20, 30, 40]);
    d.wait();
    ensure_eq!(
        (shared(0), shared(1), shared(2)),
        (0x99, 0x55, 4),
        "badge, label, length"
    );
    ensure_eq!(
        [shared(3), shared(4), shared(5), shared(6)],
        [10, 20, 30, 40],
        "MR0..3"
    );
    Ok(())
}

fn echo_server(_: u64) {
    let m = syscall::recv(shared(EP));
    syscall::reply(
        MessageInfo::new(m.label() + 1, 0, 0, 2),
        [m.mrs[0] + 1, m.badge, 0, 0],
    );
    done();
}

pub fn call_reply(env: &mut Env) -> Result<(), Fail> {
    let (ep, _) = setup(env)?;
    let b = env.mint(ep.0, Rights::ALL, 0x42)?;
    env.spawn(echo_server, 0, 100, 0)?;
    let r = syscall::call(b, MessageInfo::new(7, 0, 0, 1), [100, 0, 0, 0]);
    ensure_eq!(
        (r.label(), r.info.length()),
        (8, 2),
        "reply label and length"
    );
    ensure_eq!(
        (r.mrs[0], r.mrs[1]),
        (101, 0x42),
        "reply words (echo, badge seen)"
    );
    Ok(())
}

const VICTIM: usize = 12;

/// Takes one call and never answers it (its second receive waits for good).
fn silent_server(_: u64) {
    let _ = syscall::recv(shared(EP));
    let _ = syscall::recv(shared(EP));
}

/// Lowest priority: runs once the call is pending, and stops the server holding its reply.
fn suspender(_: u64) {
    let r = axolotl_sys::Tcb(shared(VICTIM)).suspend();
    set_shared(0, r.is_ok() as u64);
    done();
}

/// A callee stopped (as a restart does) or deleted before answering releases its caller with
/// `CALL_ABORTED`: a peer's restart is an error result, never a hang.
pub fn suspend_aborts_caller(env: &mut Env) -> Result<(), Fail> {
    let (ep, d) = setup(env)?;
    let server = env.spawn(silent_server, 0, 100, 0)?;
    set_shared(VICTIM, server.tcb.0);
    env.spawn(suspender, 0, 1, 0)?;
    let r = ep.call(MessageInfo::new(3, 0, 0, 1), [5, 0, 0, 0]);
    d.wait();
    ensure_eq!(shared(0), 1, "suspend of the server succeeded");
    ensure_eq!(
        (r.label(), r.info.length(), r.badge),
        (axolotl_abi::CALL_ABORTED, 0, 0),
        "the caller's reply after its callee was suspended"
    );
    // The server's reply cap is gone: resumed, it cannot answer the aborted call.
    server.tcb.resume().ctx("resume server")?;
    yield_now();
    Ok(())
}

fn doubling_server(_: u64) {
    let mut m = syscall::recv(shared(EP));
    loop {
        m = syscall::reply_recv(
            shared(EP),
            MessageInfo::new(0, 0, 0, 1),
            [m.mrs[0] * 2, 0, 0, 0],
        );
    }
}

pub fn reply_recv_loop(env: &mut Env) -> Result<(), Fail> {
    let (ep, _) = setup(env)?;
    env.spawn(doubling_server, 0, 100, 0)?;
    for i in 1..=5u64 {
        let r = ep.call(MessageInfo::new(0, 0, 0, 1), [i, 0, 0, 0]);
        ensure_eq!(r.mrs[0], 2 * i, "reply of call");
    }
    Ok(())
}

fn badge_server(_: u64) {
    let mut m = syscall::recv(shared(EP));
    loop {
        m = syscall::reply_recv(shared(EP), MessageInfo::new(0, 0, 0, 1), [m.badge, 0, 0, 0]);
    }
}

pub fn badges(env: &mut Env) -> Result<(), Fail> {
    let (ep, _) = setup(env)?;
    let b1 = env.mint(ep.0, Rights::ALL, 0x1)?;
    let b2 = env.mint(ep.0, Rights::ALL, 0x2_0000_0000)?;
    env.spawn(badge_server, 0, 100, 0)?;
    for (cap, badge) in [(b1, 0x1), (b2, 0x2_0000_0000), (ep.0, 0), (b1, 0x1)] {
        let r = syscall::call(cap, MessageInfo::new(0, 0, 0, 0), [0; 4]);
        ensure_eq!(r.mrs[0], badge, "badge the server saw");
    }
    Ok(())
}

fn long_server(_: u64) {
    let m = syscall::recv(shared(EP));
    let n = m.info.length() as usize;
    let mut ok = n == 20;
    for i in 0..n.min(20) {
        let w = if i < 4 { m.mrs[i] } else { ipc::get_mr(i) };
        ok &= w == 3 * i as u64 + 1;
    }
    for i in 4..30 {
        ipc::set_mr(i, 1000 + i as u64);
    }
    syscall::reply(
        MessageInfo::new(ok as u64, 0, 0, 30),
        [1000, 1001, 1002, 1003],
    );
}

pub fn long_message(env: &mut Env) -> Result<(), Fail> {
    let (ep, _) = setup(env)?;
    env.spawn(long_server, 0, 100, 0)?;
    for i in 4..20 {
        ipc::set_mr(i, 3 * i as u64 + 1);
    }
    let r = ep.call(MessageInfo::new(0, 0, 0, 20), [1, 4, 7, 10]);
    ensure_eq!(r.label(), 1, "server's verdict on the 20 words it got");
    ensure_eq!(r.info.length(), 30, "reply length");
    ensure_eq!(r.mrs, [1000, 1001, 1002, 1003], "reply MR0..3");
    for i in 4..30 {
        ensure_eq!(
            ipc::get_mr(i),
            1000 + i as u64,
            "reply MR from the IPC buffer"
        );
    }
    Ok(())
}

fn cap_receiver(slot: u64) {
    ipc::set_receive_path(ROOT_CNODE.0, slot, D);
    let m = syscall::recv(shared(EP));
    set_shared(0, m.info.extra_caps());
    set_shared(1, m.info.caps_unwrapped());
    set_shared(2, m.mrs[0]);
    set_shared(3, m.label());
    done();
}

/// A receiver that named no receive slot (its IPC buffer's path left zero, as a fresh PD's is).
fn cap_receiver_no_path(_: u64) {
    ipc::set_receive_path(0, 0, 0);
    let m = syscall::recv(shared(EP));
    set_shared(0, m.info.extra_caps());
    set_shared(1, m.info.caps_unwrapped());
    set_shared(2, m.mrs[0]);
    set_shared(3, m.label());
    done();
}

fn cap_transfer_case(env: &mut Env, rights: Rights) -> Result<(u64, u64, Notification), Fail> {
    cap_transfer_to(env, rights, cap_receiver)
}

fn cap_transfer_to(
    env: &mut Env,
    rights: Rights,
    receiver: fn(u64),
) -> Result<(u64, u64, Notification), Fail> {
    let (ep, d) = setup(env)?;
    let send_cap = env.mint(ep.0, rights, 0)?;
    let n = env.notification()?;
    let nb = env.mint(n.0, Rights::ALL, 0x8)?;
    let recv_slot = env.slot()?;
    env.spawn(receiver, recv_slot, 100, 0)?;
    ipc::set_cap(0, nb);
    syscall::send(send_cap, MessageInfo::new(0x3, 0, 1, 1), [0x1234, 0, 0, 0]);
    d.wait();
    ensure_eq!(
        (shared(3), shared(2)),
        (0x3, 0x1234),
        "label and MR0 with a cap"
    );
    Ok((recv_slot, nb, n))
}

pub fn cap_transfer(env: &mut Env) -> Result<(), Fail> {
    let (slot, _, n) = cap_transfer_case(env, Rights::ALL)?;
    ensure_eq!(
        (shared(0), shared(1)),
        (1, 0),
        "extra caps / unwrapped received"
    );
    ensure!(
        !env.is_empty(slot)?,
        "receive slot empty after a granted transfer"
    );
    Notification(slot).signal();
    ensure_eq!(
        n.poll(),
        0x8,
        "signal through the received cap (badge kept)"
    );
    Ok(())
}

pub fn cap_transfer_no_grant(env: &mut Env) -> Result<(), Fail> {
    let (slot, _, _) = cap_transfer_case(env, Rights::RW)?;
    ensure_eq!(shared(0), 0, "extra caps received without grant");
    ensure!(
        env.is_empty(slot)?,
        "a cap arrived through an endpoint cap without grant"
    );
    Ok(())
}

/// seL4 `getReceiveSlots`: a receiver whose receive path has depth 0 has no receive slot, so a
/// granted cap is not transferred. The kernel took depth 0 for "the CSpace root at full depth",
/// putting a granted cap into slot 0 of a receiver that never asked for one (issue #20).
pub fn cap_transfer_without_receive_path(env: &mut Env) -> Result<(), Fail> {
    let (slot, _, _) = cap_transfer_to(env, Rights::ALL, cap_receiver_no_path)?;
    ensure_eq!(shared(0), 0, "extra caps received without a receive path");
    ensure!(
        env.is_empty(0)?,
        "a granted cap arrived in slot 0 of a receiver that named no receive slot"
    );
    ensure!(env.is_empty(slot)?, "a cap arrived in the unnamed slot");
    Ok(())
}

pub fn nb_send_dropped(env: &mut Env) -> Result<(), Fail> {
    let (ep, d) = setup(env)?;
    ep.nb_send(MessageInfo::new(0, 0, 0, 1), [0xdead, 0, 0, 0]);
    let m = ep.nb_recv();
    ensure_eq!(
        (m.info.length(), m.label()),
        (0, 0),
        "NBRecv on an empty endpoint"
    );
    env.spawn(receiver, 0, 100, 0)?;
    ep.send(MessageInfo::new(0, 0, 0, 1), [0xbeef, 0, 0, 0]);
    d.wait();
    ensure_eq!(shared(3), 0xbeef, "first message the receiver got");
    Ok(())
}

pub fn ntfn_or(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    let caps = [
        env.mint(n.0, Rights::ALL, 1)?,
        env.mint(n.0, Rights::ALL, 2)?,
        env.mint(n.0, Rights::ALL, 0x80)?,
    ];
    syscall::signal(caps[0]);
    syscall::signal(caps[2]);
    syscall::signal(caps[2]);
    ensure_eq!(n.wait(), 0x81, "word after signals 1, 0x80, 0x80");
    syscall::signal(caps[1]);
    ensure_eq!(n.wait(), 0x2, "word after the wait cleared it");
    Ok(())
}

fn waiter(_: u64) {
    set_shared(5, 1);
    let w = syscall::wait(shared(EXTRA));
    set_shared(0, w);
    done();
}

pub fn ntfn_wait(env: &mut Env) -> Result<(), Fail> {
    let (_, d) = setup(env)?;
    let n = env.notification()?;
    set_shared(EXTRA, n.0);
    env.spawn(waiter, 0, 255, 0)?;
    yield_now();
    ensure_eq!(shared(5), 1, "waiter started");
    ensure_eq!(shared(0), 0, "waiter returned before any signal");
    let b = env.mint(n.0, Rights::ALL, 0x30)?;
    syscall::signal(b);
    d.wait();
    ensure_eq!(shared(0), 0x30, "word the waiter got");
    Ok(())
}

fn zero_badge_waiter(_: u64) {
    set_shared(5, 1);
    let w = syscall::wait(shared(EXTRA));
    set_shared(0, w);
    set_shared(6, 1);
    done();
}

/// A signal through an unbadged cap (badge 0) while nobody waits stays pending, as in seL4
/// (the notification turns active with a zero badge): the next Wait returns at once. The root
/// task's standby refresher, signalled before it first waited, slept through it otherwise.
pub fn ntfn_zero_badge_pending(env: &mut Env) -> Result<(), Fail> {
    let (_, d) = setup(env)?;
    let n = env.notification()?;
    n.signal();
    set_shared(EXTRA, n.0);
    set_shared(0, 0xdead);
    env.spawn(zero_badge_waiter, 0, 255, 0)?;
    yield_now();
    ensure_eq!(shared(5), 1, "waiter started");
    ensure_eq!(
        shared(6),
        1,
        "Wait returned for a badge-0 signal sent before it"
    );
    d.wait();
    ensure_eq!(shared(0), 0, "badge the waiter got");
    // Consumed by that Wait: a second waiter blocks until the next signal.
    set_shared(5, 0);
    set_shared(6, 0);
    set_shared(0, 0xdead);
    env.spawn(zero_badge_waiter, 0, 255, 0)?;
    yield_now();
    ensure_eq!(shared(5), 1, "second waiter started");
    ensure_eq!(shared(6), 0, "second Wait returned with nothing signalled");
    n.signal();
    d.wait();
    ensure_eq!(
        (shared(6), shared(0)),
        (1, 0),
        "second waiter woken by a badge-0 signal"
    );
    // Poll takes a pending badge-0 signal too: a Wait after it blocks.
    n.signal();
    ensure_eq!(n.poll(), 0, "poll of a badge-0 signal");
    set_shared(5, 0);
    set_shared(6, 0);
    env.spawn(zero_badge_waiter, 0, 255, 0)?;
    yield_now();
    ensure_eq!(shared(6), 0, "Wait after the poll took the signal");
    n.signal();
    d.wait();
    Ok(())
}

pub fn ntfn_poll(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    ensure_eq!(n.poll(), 0, "poll of a fresh notification");
    let b = Notification(env.mint(n.0, Rights::ALL, 0x6)?);
    b.signal();
    ensure_eq!(n.poll(), 0x6, "poll after a signal");
    ensure_eq!(n.poll(), 0, "second poll");
    Ok(())
}

fn bound_receiver(_: u64) {
    set_shared(5, 1);
    let m = syscall::recv(shared(EP));
    set_shared(0, m.badge);
    set_shared(1, m.label());
    let m = syscall::recv(shared(EP));
    set_shared(2, m.badge);
    set_shared(3, m.mrs[0]);
    done();
}

pub fn bound_ntfn(env: &mut Env) -> Result<(), Fail> {
    let (ep, d) = setup(env)?;
    let n = env.notification()?;
    let t = env.thread(bound_receiver, 0, 255, 0)?;
    t.tcb.bind_notification(n).ctx("BindNotification")?;
    t.tcb.resume().ctx("resume")?;
    yield_now();
    ensure_eq!(shared(5), 1, "receiver started");
    let b = env.mint(n.0, Rights::ALL, 0x40)?;
    syscall::signal(b);
    yield_now();
    ensure_eq!(
        shared(0),
        0x40,
        "badge the endpoint receiver got from its bound notification"
    );
    ep.send(MessageInfo::new(0, 0, 0, 1), [0x77, 0, 0, 0]);
    d.wait();
    ensure_eq!(
        (shared(2), shared(3)),
        (0, 0x77),
        "endpoint message after the signal"
    );
    t.tcb.unbind_notification().ctx("UnbindNotification")?;
    Ok(())
}
