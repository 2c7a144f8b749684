//! CNode operations: copy, mint, move, mutate, rotate, delete, revoke, two-level addressing.
//! Notifications make badges visible without a second thread: signal, then poll the word.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, expect_err, set_shared, shared};
use axolotl_abi::{Error, MessageInfo, ObjectType as T, Rights};
use axolotl_sys::{CNode, Frame, Notification, syscall};

/// A notification and a badged cap of it.
fn badged(env: &mut Env, badge: u64) -> Result<(Notification, Notification), Fail> {
    let n = env.notification()?;
    let b = env.mint(n.0, Rights::ALL, badge)?;
    Ok((n, Notification(b)))
}

pub fn copy(env: &mut Env) -> Result<(), Fail> {
    let (n, b) = badged(env, 0x5)?;
    let c = env.slot()?;
    ROOT_CNODE
        .copy(c, D, ROOT_CNODE, b.0, D, Rights::ALL)
        .ctx("copy")?;
    Notification(c).signal();
    ensure_eq!(
        n.poll(),
        0x5,
        "word after a signal through the copy (badge kept)"
    );
    ensure!(!env.is_empty(b.0)?, "copy emptied its source");
    Ok(())
}

pub fn mint_badge(env: &mut Env) -> Result<(), Fail> {
    let (n, b1) = badged(env, 0x10)?;
    let b2 = Notification(env.mint(n.0, Rights::ALL, 0x300)?);
    b1.signal();
    b2.signal();
    ensure_eq!(n.poll(), 0x310, "word after signals with two badges");
    ensure_eq!(n.poll(), 0, "word after poll cleared it");
    Ok(())
}

pub fn mint_rebadge(env: &mut Env) -> Result<(), Fail> {
    let (_, b) = badged(env, 0x1)?;
    let s = env.slot()?;
    expect_err(
        ROOT_CNODE.mint(s, D, ROOT_CNODE, b.0, D, Rights::ALL, 0x2),
        Error::IllegalOperation,
        "mint of a badged cap",
    )?;
    Ok(())
}

fn signal_both(ep: u64) {
    syscall::signal(shared(0));
    syscall::signal(shared(1));
    syscall::send(ep, MessageInfo::new(0x600d, 0, 0, 0), [0; 4]);
}

pub fn mint_reduced_rights(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    let ro = env.mint(n.0, Rights::READ, 0x1)?;
    // Rights only shrink: a full-rights copy of the read-only cap cannot signal either.
    let c = env.slot()?;
    ROOT_CNODE
        .copy(c, D, ROOT_CNODE, ro, D, Rights::ALL)
        .ctx("copy of the read-only cap")?;
    set_shared(0, ro);
    set_shared(1, c);
    // Signal from a thread with a fault handler: seL4 ignores a Send its cap may not do
    // (InvalidCapability, no reply to a Send), so nothing but the final message may arrive.
    let ep = env.endpoint()?;
    env.spawn(signal_both, ep.0, 100, ep.0)?;
    let m = ep.recv();
    ensure!(
        m.label() == 0x600d,
        "thread reported label {:#x} words {:#x?} (1 = cap fault: ip, cptr, in_recv, lookup failure)",
        m.label(),
        m.mrs
    );
    ensure_eq!(
        m.label(),
        0x600d,
        "message from the thread (5 = cap fault, 1 = cap fault label)"
    );
    ensure_eq!(n.poll(), 0, "word after signals through caps without write");
    let w = Notification(env.mint(n.0, Rights::WRITE, 0x2)?);
    w.signal();
    ensure_eq!(
        n.poll(),
        0x2,
        "word after a signal through a write-only cap"
    );
    Ok(())
}

pub fn move_(env: &mut Env) -> Result<(), Fail> {
    let (n, b) = badged(env, 0x7)?;
    let d = env.slot()?;
    ROOT_CNODE.move_(d, D, ROOT_CNODE, b.0, D).ctx("move")?;
    ensure!(env.is_empty(b.0)?, "move left its source");
    Notification(d).signal();
    ensure_eq!(n.poll(), 0x7, "word after a signal through the moved cap");
    expect_err(
        ROOT_CNODE.move_(d, D, ROOT_CNODE, n.0, D),
        Error::DeleteFirst,
        "move onto a full slot",
    )?;
    Ok(())
}

pub fn mutate(env: &mut Env) -> Result<(), Fail> {
    // Badges never change by mutate (seL4's preserve): an illegal operation.
    let n = env.notification()?;
    let c = env.slot()?;
    ROOT_CNODE
        .copy(c, D, ROOT_CNODE, n.0, D, Rights::ALL)
        .ctx("copy")?;
    let d = env.slot()?;
    expect_err(
        ROOT_CNODE.mutate(d, D, ROOT_CNODE, c, D, 0x40),
        Error::IllegalOperation,
        "mutate of a notification",
    )?;
    ensure!(!env.is_empty(c)?, "failed mutate emptied its source");
    // A CNode's data word is its guard: give a fresh 16-slot CNode a 60-bit guard of 0 so that
    // a 64-bit address reaches its slots, and use it.
    let cn = env.alloc(T::CNode, 4)?;
    let m = env.slot()?;
    ROOT_CNODE
        .mutate(m, D, ROOT_CNODE, cn, D, 60)
        .ctx("mutate the CNode's guard")?;
    ensure!(env.is_empty(cn)?, "mutate left its source");
    CNode(m)
        .copy(5, D, ROOT_CNODE, n.0, D, Rights::ALL)
        .ctx("copy into the mutated CNode at depth 64")?;
    expect_err(
        ROOT_CNODE.mutate(d, D, ROOT_CNODE, m, D, 61),
        Error::IllegalOperation,
        "guard + radix > 64",
    )?;
    Ok(())
}

pub fn rotate(env: &mut Env) -> Result<(), Fail> {
    let a = Frame(env.alloc(T::SmallFrame, 0)?);
    let b = Frame(env.alloc(T::SmallFrame, 0)?);
    let (pa, pb) = (
        a.get_address().ctx("address")?,
        b.get_address().ctx("address")?,
    );
    let d = env.slot()?;
    // dest <- pivot (b), pivot <- src (a).
    ROOT_CNODE
        .rotate(d, D, ROOT_CNODE, b.0, D, 0, ROOT_CNODE, a.0, D, 0)
        .ctx("rotate")?;
    ensure!(env.is_empty(a.0)?, "rotate left its source");
    ensure_eq!(Frame(d).get_address().ctx("dest")?, pb, "frame in dest");
    ensure_eq!(b.get_address().ctx("pivot")?, pa, "frame in pivot");
    // Swap: dest == src.
    ROOT_CNODE
        .rotate(d, D, ROOT_CNODE, b.0, D, 0, ROOT_CNODE, d, D, 0)
        .ctx("rotate as swap")?;
    ensure_eq!(
        Frame(d).get_address().ctx("dest")?,
        pa,
        "frame in dest after swap"
    );
    ensure_eq!(
        b.get_address().ctx("pivot")?,
        pb,
        "frame in pivot after swap"
    );
    let (e, d2) = (env.slot()?, env.slot()?);
    expect_err(
        ROOT_CNODE.rotate(d2, D, ROOT_CNODE, b.0, D, 0, ROOT_CNODE, e, D, 0),
        Error::FailedLookup,
        "rotate from an empty src",
    )?;
    Ok(())
}

pub fn delete(env: &mut Env) -> Result<(), Fail> {
    let (n, b) = badged(env, 0x9)?;
    ROOT_CNODE.delete(b.0, D).ctx("delete")?;
    ensure!(env.is_empty(b.0)?, "slot full after delete");
    ROOT_CNODE.delete(b.0, D).ctx("delete of an empty slot")?;
    // The object lives on through its other cap.
    let b2 = Notification(env.mint(n.0, Rights::ALL, 0x4)?);
    b2.signal();
    ensure_eq!(n.poll(), 0x4, "notification after deleting one cap");
    Ok(())
}

pub fn revoke_tree(env: &mut Env) -> Result<(), Fail> {
    // n -> a (mint) -> b (copy of a) -> c (copy of b); n -> x (copy).
    let n = env.notification()?;
    let a = env.mint(n.0, Rights::ALL, 0x1)?;
    let b = env.slot()?;
    ROOT_CNODE
        .copy(b, D, ROOT_CNODE, a, D, Rights::ALL)
        .ctx("copy a->b")?;
    let c = env.slot()?;
    ROOT_CNODE
        .copy(c, D, ROOT_CNODE, b, D, Rights::ALL)
        .ctx("copy b->c")?;
    let x = env.slot()?;
    ROOT_CNODE
        .copy(x, D, ROOT_CNODE, n.0, D, Rights::ALL)
        .ctx("copy n->x")?;
    ROOT_CNODE.revoke(a, D).ctx("revoke a")?;
    ensure!(!env.is_empty(a)?, "revoke deleted the revoked cap itself");
    ensure!(
        env.is_empty(b)? && env.is_empty(c)?,
        "revoke of a left its descendants"
    );
    ensure!(!env.is_empty(x)?, "revoke of a deleted a sibling");
    ROOT_CNODE.revoke(n.0, D).ctx("revoke n")?;
    ensure!(
        env.is_empty(a)? && env.is_empty(x)?,
        "revoke of n left children"
    );
    ensure!(!env.is_empty(n.0)?, "revoke deleted n");
    Ok(())
}

pub fn two_level(env: &mut Env) -> Result<(), Fail> {
    // A 16-slot CNode without guard, addressed directly (depth 4) as a CNode invocation's
    // own slots.
    let cn = CNode(env.alloc(T::CNode, 4)?);
    let (n, b) = badged(env, 0x21)?;
    cn.copy(3, 4, crate::harness::ROOT_CNODE, b.0, D, Rights::ALL)
        .ctx("copy into child slot 3 (depth 4)")?;
    let back = env.slot()?;
    ROOT_CNODE
        .copy(back, D, cn, 3, 4, Rights::ALL)
        .ctx("copy back from child slot 3")?;
    Notification(back).signal();
    ensure_eq!(n.poll(), 0x21, "word after a signal through the round trip");
    expect_err(
        cn.copy(3, 4, ROOT_CNODE, b.0, D, Rights::ALL),
        Error::DeleteFirst,
        "copy into the full child slot",
    )?;
    expect_err(
        cn.delete(3, 5),
        Error::FailedLookup,
        "depth 5 in a 4-bit CNode",
    )?;
    cn.delete(3, 4).ctx("delete child slot 3")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Preemptible delete and revoke (issue #13): a long deletion stops at a pending interrupt,
// the interrupt's thread runs, and the caller re-executes the call, which goes on.

/// Slots of the big CNode (radix 12).
const BIG_RADIX: u64 = 12;
const BIG_SLOTS: u64 = 1 << BIG_RADIX;
/// Shared words of the preemption case.
const P_GO: usize = 0;
const P_DONE_EP: usize = 1;
const P_TIMER: usize = 2;
const P_OP: usize = 3;
const P_TARGET: usize = 4;
const P_DELAY: usize = 5;
const P_ELAPSED: usize = 6;
const P_RESULT: usize = 7;
const P_CNODE: usize = 8;
const OP_REVOKE: u64 = 1;
const OP_DELETE: u64 = 2;
/// TcbSetSpace on `P_TARGET`, whose old CSpace cap is the last one to a big CNode.
const OP_SET_SPACE: u64 = 3;
/// The deleter thread's TCB, and whether it has started its call.
const P_DELETER: usize = 9;
const P_STARTED: usize = 10;
/// What the watcher saw of the big CNode (logged, one per wake-up).
const SEEN_BOTH_PRESENT: u64 = 0x10;
const SEEN_HALF: u64 = 0x11;
const SEEN_BOTH_EMPTY: u64 = 0x12;
const SEEN_CNODE: u64 = 0x20;
const SEEN_ZOMBIE: u64 = 0x21;
const SEEN_GONE: u64 = 0x22;
const SEEN_OTHER: u64 = 0x2f;
const SEEN_NOT_STARTED: u64 = 0x30;
const SEEN_IN_CALL: u64 = 0x31;
const SEEN_RETURNED: u64 = 0x32;
const SVC0: u32 = 0xd400_0001;
const P_DONE_BADGE: u64 = 0xd0;
const P_FAULT_BADGE: u64 = 0xfa;

fn cntpct() -> u64 {
    let v: u64;
    // SAFETY: a counter read; the thread was granted the physical timer.
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) v) };
    v
}

fn timer_arm(ticks: u64) {
    // SAFETY: the thread was granted the physical timer.
    unsafe {
        core::arch::asm!(
            "msr cntp_tval_el0, {t}",
            "msr cntp_ctl_el0, {c}",
            "isb",
            t = in(reg) ticks,
            c = in(reg) 1u64,
        )
    };
}

fn timer_off() {
    // SAFETY: as in `timer_arm`; disabling drops the level interrupt.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", "isb", in(reg) 0u64) };
}

/// Whether slot `i` of the big CNode holds a cap: a move onto itself is refused with
/// DeleteFirst when it does and FailedLookup (empty source) when it does not, changing nothing.
fn present(cn: CNode, i: u64) -> bool {
    matches!(
        cn.move_(i, BIG_RADIX, cn, i, BIG_RADIX),
        Err(e) if e.error == Error::DeleteFirst
    )
}

/// The low-priority thread: on each go, optionally arms the timer `P_DELAY` ahead, then
/// revokes or deletes `P_TARGET`, and reports how long the call took.
fn long_deleter(_: u64) {
    loop {
        syscall::wait(shared(P_GO));
        let delay = shared(P_DELAY);
        if delay != 0 {
            timer_arm(delay);
        }
        let t0 = cntpct();
        set_shared(P_STARTED, 1);
        let r = match shared(P_OP) {
            OP_REVOKE => ROOT_CNODE.revoke(shared(P_TARGET), D),
            OP_DELETE => ROOT_CNODE.delete(shared(P_TARGET), D),
            _ => axolotl_sys::Tcb(shared(P_TARGET)).set_space(
                0,
                ROOT_CNODE,
                0,
                crate::harness::ROOT_VSPACE,
                0,
            ),
        };
        set_shared(P_STARTED, 0);
        let t1 = cntpct();
        timer_off();
        set_shared(P_ELAPSED, t1 - t0);
        set_shared(P_RESULT, r.is_ok() as u64);
        syscall::send(shared(P_DONE_EP), MessageInfo::new(0, 0, 0, 0), [0; 4]);
    }
}

/// The high-priority thread, woken by the timer's interrupt: looks at how far the long call
/// has got and logs it.
fn watcher(_: u64) {
    loop {
        syscall::wait(shared(P_TIMER));
        timer_off();
        let cn = CNode(shared(P_CNODE));
        let seen = if shared(P_OP) == OP_SET_SPACE {
            // The old CSpace is out of reach; the deleter's PC says whether its call is still
            // in progress: at its `svc` (rewound to restart), or past it.
            let pc = axolotl_sys::Tcb(shared(P_DELETER))
                .read_registers(false, 0, 1)
                .map_or(0, |r| r.pc);
            // SAFETY: the deleter runs the suite's code, readable in this VSpace.
            let at_svc = pc != 0 && unsafe { core::ptr::read_volatile(pc as *const u32) } == SVC0;
            match (shared(P_STARTED), at_svc) {
                (1, true) => SEEN_IN_CALL,
                (1, false) => SEEN_RETURNED,
                _ => SEEN_NOT_STARTED,
            }
        } else if shared(P_OP) == OP_REVOKE {
            match (present(cn, 0), present(cn, BIG_SLOTS - 1)) {
                (true, true) => SEEN_BOTH_PRESENT,
                (false, false) => SEEN_BOTH_EMPTY,
                _ => SEEN_HALF,
            }
        } else {
            // The CNode cap itself: a zombie while its slots are being emptied.
            match cn.move_(0, BIG_RADIX, cn, 0, BIG_RADIX) {
                Err(e) if e.error == Error::DeleteFirst => SEEN_CNODE,
                Err(e) if e.error == Error::IllegalOperation => SEEN_ZOMBIE,
                Err(e) if e.error == Error::InvalidCapability => SEEN_GONE,
                _ => SEEN_OTHER,
            }
        };
        crate::harness::log(seen);
    }
}

/// The next attempt's timer delay: QEMU's counter follows the host's clock, so on a loaded
/// host a call takes longer or shorter in counter ticks from one run to the next. Nothing
/// seen: the call ended before the timer, so fire sooner; `before` seen: the watcher ran
/// before the call began, so fire later.
fn adapt(delay: u64, seen: &[u64], before: u64) -> u64 {
    if seen.is_empty() {
        (delay / 2).max(1)
    } else if seen.contains(&before) {
        delay.saturating_mul(2)
    } else {
        delay
    }
}

/// Fills every slot of the big CNode with a copy of `frame`.
fn fill(cn: CNode, frame: u64) -> Result<(), Fail> {
    for i in 0..BIG_SLOTS {
        cn.copy(i, BIG_RADIX, ROOT_CNODE, frame, D, Rights::ALL)
            .ctx("copy into the big CNode")?;
    }
    Ok(())
}

/// Runs one long call in the deleter thread and waits for its report; returns its duration
/// in counter ticks and what the watcher logged meanwhile.
fn run_long(
    ep: axolotl_sys::Endpoint,
    go: Notification,
    h: axolotl_sys::IrqHandler,
    op: u64,
    target: u64,
    delay: u64,
    seen: &mut [u64; 64],
) -> Result<(u64, core::ops::Range<usize>), Fail> {
    let first = crate::harness::log_contents(seen);
    set_shared(P_OP, op);
    set_shared(P_TARGET, target);
    set_shared(P_DELAY, delay);
    go.signal();
    let m = ep.recv();
    ensure!(
        m.badge == P_DONE_BADGE,
        "deleter thread faulted: label {:#x} words {:#x?}",
        m.label(),
        m.mrs
    );
    ensure_eq!(shared(P_RESULT), 1, "long call succeeded");
    // The watcher ran (if the timer fired) and turned it off: unmask it for the next run.
    h.ack().ctx("IrqHandlerAck")?;
    let n = crate::harness::log_contents(seen);
    Ok((shared(P_ELAPSED), first..n))
}

/// A revoke of thousands of caps and the delete of a CNode full of caps are preempted by a
/// timer interrupt: the thread the interrupt wakes (higher priority than the caller) runs
/// while the operation is half done, then the caller's call continues to the right result.
/// Without preemption the watcher could only see the work not started or finished.
pub fn delete_revoke_preemptible(env: &mut Env) -> Result<(), Fail> {
    let h = axolotl_sys::IrqHandler(env.slot()?);
    let r = preemptible_case(env, h);
    let _ = ROOT_CNODE.delete(h.0, D);
    r
}

fn preemptible_case(env: &mut Env, h: axolotl_sys::IrqHandler) -> Result<(), Fail> {
    const ATTEMPTS: usize = 8;
    let ep = env.endpoint()?;
    let fep = env.mint(ep.0, Rights::ALL, P_FAULT_BADGE)?;
    set_shared(P_DONE_EP, env.mint(ep.0, Rights::ALL, P_DONE_BADGE)?);
    // Badged caps: a signal ORs its badge into the word, and a zero word wakes no one.
    let go_n = env.notification()?;
    set_shared(P_GO, go_n.0);
    let go = Notification(env.mint(go_n.0, Rights::ALL, 1)?);
    axolotl_sys::IrqControl(axolotl_abi::bootinfo::init_cap::IRQ_CONTROL)
        .get(
            axolotl_abi::PHYS_TIMER_PPI as u64,
            false,
            ROOT_CNODE,
            h.0,
            D,
        )
        .ctx("IrqControlGet 30")?;
    let tn = env.notification()?;
    set_shared(P_TIMER, tn.0);
    h.set_notification(Notification(env.mint(tn.0, Rights::ALL, 1)?))
        .ctx("SetNotification")?;
    let deleter = env.thread(long_deleter, 0, 100, fep)?;
    set_shared(P_DELETER, deleter.tcb.0);
    let watch = env.thread(watcher, 0, 200, fep)?;
    for t in [deleter, watch] {
        t.tcb.set_timer_access(true, h).ctx("TcbSetTimerAccess")?;
        t.tcb.resume().ctx("TcbResume")?;
    }
    let frame = env.frame()?;
    let mut seen = [0u64; 64];

    // Revoke: the frame's copies in every slot of a big CNode are its children. A first run
    // without the timer measures how long it takes.
    let cn = CNode(env.alloc(T::CNode, BIG_RADIX)?);
    set_shared(P_CNODE, cn.0);
    fill(cn, frame.0)?;
    let (elapsed, _) = run_long(ep, go, h, OP_REVOKE, frame.0, 0, &mut seen)?;
    let start = (elapsed / 4).max(1);
    let mut delay = start;
    let mut midway = false;
    for _ in 0..ATTEMPTS {
        fill(cn, frame.0)?;
        let (_, run) = run_long(ep, go, h, OP_REVOKE, frame.0, delay, &mut seen)?;
        let run_seen = &seen[run.clone()];
        delay = adapt(delay, run_seen, SEEN_BOTH_PRESENT);
        for i in 0..BIG_SLOTS {
            ensure!(!present(cn, i), "slot {i} still full after the revoke");
        }
        ensure!(
            frame.get_address().is_ok(),
            "the revoke deleted the revoked cap"
        );
        if run_seen.contains(&SEEN_HALF) {
            midway = true;
            break;
        }
    }
    let n = crate::harness::log_contents(&mut seen);
    ensure!(
        midway,
        "the timer's thread never ran inside a revoke of {BIG_SLOTS} caps ({elapsed} counter ticks; it saw {:#x?})",
        &seen[..n]
    );

    // Delete: the last cap to a CNode full of caps becomes a zombie while its slots empty.
    let mut midway = false;
    let mut delay = start;
    for _ in 0..ATTEMPTS {
        let cn = CNode(env.alloc(T::CNode, BIG_RADIX)?);
        set_shared(P_CNODE, cn.0);
        fill(cn, frame.0)?;
        let (_, run) = run_long(ep, go, h, OP_DELETE, cn.0, delay, &mut seen)?;
        let run_seen = &seen[run.clone()];
        delay = adapt(delay, run_seen, SEEN_CNODE);
        ensure!(env.is_empty(cn.0)?, "CNode slot full after its delete");
        ROOT_CNODE.revoke(frame.0, D).ctx("revoke the frame")?;
        if run_seen.contains(&SEEN_ZOMBIE) {
            midway = true;
            break;
        }
    }
    let n = crate::harness::log_contents(&mut seen);
    ensure!(
        midway,
        "the timer's thread never ran inside the delete of a CNode with {BIG_SLOTS} caps (it saw {:#x?})",
        &seen[..n]
    );
    ensure!(
        frame.get_address().is_ok(),
        "the frame's own cap went with its copies"
    );

    // TcbSetSpace of a thread whose CSpace cap is the last one to a CNode full of caps: the
    // old cap's deletion is preempted the same way and the call restarted.
    let mut midway = false;
    let mut delay = start;
    for _ in 0..ATTEMPTS {
        let cn = CNode(env.alloc(T::CNode, BIG_RADIX)?);
        set_shared(P_CNODE, cn.0);
        fill(cn, frame.0)?;
        let t = axolotl_sys::Tcb(env.alloc(T::Tcb, 0)?);
        t.set_space(0, cn, 0, crate::harness::ROOT_VSPACE, 0)
            .ctx("SetSpace with the big CNode")?;
        ROOT_CNODE
            .delete(cn.0, D)
            .ctx("delete our cap of the CNode")?;
        let (_, run) = run_long(ep, go, h, OP_SET_SPACE, t.0, delay, &mut seen)?;
        let run_seen = &seen[run.clone()];
        delay = adapt(delay, run_seen, SEEN_NOT_STARTED);
        ROOT_CNODE.revoke(frame.0, D).ctx("revoke the frame")?;
        if run_seen.contains(&SEEN_IN_CALL) {
            midway = true;
            break;
        }
    }
    let n = crate::harness::log_contents(&mut seen);
    ensure!(
        midway,
        "the timer's thread never ran inside a TcbSetSpace dropping a CNode with {BIG_SLOTS} caps (it saw {:#x?})",
        &seen[..n]
    );
    Ok(())
}
