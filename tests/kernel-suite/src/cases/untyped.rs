//! Untyped retype: every object type and every error a retype can give.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, expect_err};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, ObjectType as T, Rights};
use axolotl_sys::{Frame, Untyped};

/// A child untyped of 2^bits from the case's untyped.
fn child_ut(env: &mut Env, bits: u64) -> Result<Untyped, Fail> {
    env.alloc(T::Untyped, bits).map(Untyped)
}

/// A slot is occupied iff retyping into it says DeleteFirst.
fn occupied(env: &mut Env, slot: u64) -> Result<bool, Fail> {
    match env.ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, slot, 1) {
        Err(e) if e.error == Error::DeleteFirst => Ok(true),
        Ok(()) => {
            ROOT_CNODE.delete(slot, D).ctx("delete probe")?;
            Ok(false)
        }
        Err(e) => Err(fail!("probe retype into slot {slot}: {e:?}")),
    }
}

pub fn each_type(env: &mut Env) -> Result<(), Fail> {
    let all = [
        (T::Untyped, 12),
        (T::Tcb, 0),
        (T::Endpoint, 0),
        (T::Notification, 0),
        (T::CNode, 4),
        (T::SmallFrame, 0),
        (T::LargeFrame, 0),
        (T::PageTable, 0),
        (T::VSpace, 0),
    ];
    for (ty, bits) in all {
        let s = env.alloc(ty, bits)?;
        ensure!(occupied(env, s)?, "slot of the new {ty:?} is empty");
    }
    Ok(())
}

pub fn vcpu(env: &mut Env) -> Result<(), Fail> {
    let s = env.alloc(T::Vcpu, 0)?;
    ensure!(occupied(env, s)?, "slot of the new VCPU is empty");
    Ok(())
}

pub fn many_objects(env: &mut Env) -> Result<(), Fail> {
    let base = env.slots_n(9)?;
    env.ut
        .retype(T::Notification, 0, ROOT_CNODE, 0, 0, base, 8)
        .ctx("retype 8 notifications")?;
    for s in base..base + 8 {
        ensure!(
            occupied(env, s)?,
            "slot {} of the window is empty",
            s - base
        );
    }
    ensure!(
        !occupied(env, base + 8)?,
        "slot after the window was filled"
    );
    Ok(())
}

pub fn invalid_type(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    for ty in [10, 0xff, u64::MAX] {
        let e = expect_err(
            env.ut.retype_raw(ty, 0, ROOT_CNODE, 0, 0, s, 1),
            Error::InvalidArgument,
            "retype of type word",
        )?;
        ensure_eq!(
            e.details().first().copied(),
            Some(0),
            "InvalidArgument argument number"
        );
    }
    Ok(())
}

pub fn size_range(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    let r = |ty, bits| env.ut.retype(ty, bits, ROOT_CNODE, 0, 0, s, 1);
    let e = expect_err(r(T::Untyped, 3), Error::InvalidArgument, "untyped of 2^3")?;
    ensure_eq!(e.details().first().copied(), Some(1), "argument number");
    let e = expect_err(r(T::CNode, 0), Error::InvalidArgument, "CNode of 2^0 slots")?;
    ensure_eq!(e.details().first().copied(), Some(1), "argument number");
    expect_err(r(T::Untyped, 64), Error::RangeError, "untyped of 2^64")?;
    expect_err(r(T::Untyped, 48), Error::RangeError, "untyped of 2^48")?;
    expect_err(r(T::CNode, 25), Error::RangeError, "CNode of 2^25 slots")?;
    // Above the case's own untyped: range is fine, memory is not.
    expect_err(
        r(T::Untyped, env.ut_bits + 1),
        Error::NotEnoughMemory,
        "untyped bigger than its parent",
    )?;
    Ok(())
}

pub fn window_range(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    let size = 1u64 << env.bi.cnode_size_bits;
    let r = |off, n| env.ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, off, n);
    let e = expect_err(r(s, 0), Error::RangeError, "retype of 0 objects")?;
    ensure_eq!(e.details().first().copied(), Some(1), "range min");
    let e = expect_err(r(size, 1), Error::RangeError, "offset past the CNode")?;
    ensure_eq!(e.details(), &[0, size - 1][..], "range of the offset");
    expect_err(
        r(size - 1, 2),
        Error::RangeError,
        "window past the CNode's end",
    )?;
    Ok(())
}

pub fn alignment(env: &mut Env) -> Result<(), Fail> {
    let ut = child_ut(env, 22)?;
    let ep = env.slot()?;
    ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, ep, 1)
        .ctx("endpoint")?;
    let f = env.slot()?;
    ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f, 1)
        .ctx("frame after endpoint")?;
    let pa = Frame(f).get_address().ctx("PageGetAddress")?;
    ensure!(
        pa % 4096 == 0 && pa != 0,
        "small frame at {pa:#x} is not page aligned"
    );
    let l = env.slot()?;
    ut.retype(T::LargeFrame, 0, ROOT_CNODE, 0, 0, l, 1)
        .ctx("large frame after small frame")?;
    let la = Frame(l).get_address().ctx("PageGetAddress")?;
    ensure!(
        la % (2 << 20) == 0,
        "large frame at {la:#x} is not 2 MiB aligned"
    );
    ensure!(
        la > pa,
        "large frame {la:#x} below the earlier small frame {pa:#x}"
    );
    Ok(())
}

pub fn not_enough_memory(env: &mut Env) -> Result<(), Fail> {
    let ut = child_ut(env, 14)?;
    let base = env.slots_n(6)?;
    let e = expect_err(
        ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, base, 5),
        Error::NotEnoughMemory,
        "5 pages from 16 KiB",
    )?;
    ensure_eq!(
        e.details().first().copied(),
        Some(1 << 14),
        "bytes available"
    );
    ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, base, 4)
        .ctx("4 pages from 16 KiB")?;
    let e = expect_err(
        ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, base + 5, 1),
        Error::NotEnoughMemory,
        "endpoint from a full untyped",
    )?;
    ensure_eq!(e.details().first().copied(), Some(0), "bytes available");
    Ok(())
}

pub fn delete_first(env: &mut Env) -> Result<(), Fail> {
    let a = env.alloc(T::Endpoint, 0)?;
    expect_err(
        env.ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, a, 1),
        Error::DeleteFirst,
        "retype into a full slot",
    )?;
    // A window whose last slot is taken: nothing at all may be created.
    let w = env.slots_n(2)?;
    env.ut
        .retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, w + 1, 1)
        .ctx("endpoint")?;
    expect_err(
        env.ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, w, 2),
        Error::DeleteFirst,
        "window with a full slot",
    )?;
    ensure!(
        !occupied(env, w)?,
        "a failed retype filled the window's first slot"
    );
    Ok(())
}

pub fn watermark_reset(env: &mut Env) -> Result<(), Fail> {
    let ut_slot = env.alloc(T::Untyped, 12)?;
    let ut = Untyped(ut_slot);
    let f = env.slot()?;
    ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f, 1)
        .ctx("frame")?;
    let pa = Frame(f).get_address().ctx("PageGetAddress")?;
    let g = env.slot()?;
    expect_err(
        ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, g, 1),
        Error::NotEnoughMemory,
        "second page from 4 KiB",
    )?;
    ROOT_CNODE.revoke(ut_slot, D).ctx("revoke the untyped")?;
    ensure!(env.is_empty(f)?, "revoke left the child frame");
    ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, g, 1)
        .ctx("frame after revoke (watermark reset)")?;
    let pa2 = Frame(g).get_address().ctx("PageGetAddress")?;
    ensure_eq!(pa2, pa, "frame address after the reset");
    // Deleting (not revoking) the only child resets it too.
    ROOT_CNODE.delete(g, D).ctx("delete the frame")?;
    ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f, 1)
        .ctx("frame after its sibling's delete")?;
    Ok(())
}

pub fn revoke_first(env: &mut Env) -> Result<(), Fail> {
    let ut = child_ut(env, 12)?;
    let copy = env.slot()?;
    ROOT_CNODE
        .copy(copy, D, ROOT_CNODE, ut.0, D, Rights::ALL)
        .ctx("copy of an untyped without children")?;
    ROOT_CNODE.delete(copy, D).ctx("delete the copy")?;
    let ep = env.slot()?;
    ut.retype(T::Endpoint, 0, ROOT_CNODE, 0, 0, ep, 1)
        .ctx("endpoint")?;
    expect_err(
        ROOT_CNODE.copy(copy, D, ROOT_CNODE, ut.0, D, Rights::ALL),
        Error::RevokeFirst,
        "copy of an untyped with children",
    )?;
    Ok(())
}

pub fn device_only_frames(env: &mut Env) -> Result<(), Fail> {
    let bi = env.bi;
    let Some(i) = (0..bi.num_untyped as usize).find(|&i| bi.untyped[i].is_device != 0) else {
        return Err(fail!("BootInfo lists no device untyped"));
    };
    let dev = Untyped(init_cap::FIRST_UNTYPED + i as u64);
    let s = env.slot()?;
    let r = dev.retype(T::Tcb, 0, ROOT_CNODE, 0, 0, s, 1);
    let r2 = dev.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, s, 1);
    let cleanup = ROOT_CNODE.revoke(dev.0, D).ctx("revoke the device untyped");
    let e = expect_err(r, Error::InvalidArgument, "TCB from device memory")?;
    ensure_eq!(e.details().first().copied(), Some(1), "argument number");
    r2.ctx("frame from device memory")?;
    cleanup
}

pub fn into_child_cnode(env: &mut Env) -> Result<(), Fail> {
    let cn = env.alloc(T::CNode, 4)?;
    env.ut
        .retype(T::Endpoint, 0, ROOT_CNODE, cn, D, 3, 1)
        .ctx("retype into slot 3 of a child CNode")?;
    expect_err(
        env.ut.retype(T::Endpoint, 0, ROOT_CNODE, cn, D, 3, 1),
        Error::DeleteFirst,
        "the child CNode's slot 3 again",
    )?;
    expect_err(
        env.ut.retype(T::Endpoint, 0, ROOT_CNODE, cn, D, 16, 1),
        Error::RangeError,
        "offset past a 16-slot CNode",
    )?;
    Ok(())
}
