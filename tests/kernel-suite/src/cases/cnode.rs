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
