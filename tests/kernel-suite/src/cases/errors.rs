//! Every error code of docs/abi.md that the API can produce, with seL4's detail words.
//! (Range, alignment, not-enough-memory and revoke-first have cases of their own elsewhere.)

use crate::harness::{D, Env, Fail, ROOT_CNODE, ROOT_TCB, ROOT_VSPACE, expect_err};
use axolotl_abi::{Error, Invocation, ObjectType as T, Rights};
use axolotl_sys::encode::{self, Encoded};
use axolotl_sys::invoke::invoke;
use axolotl_sys::{Tcb, VSpace, vm_attr};

fn call_empty(ep: u64) {
    let m = axolotl_sys::invoke::send_encoded(ep + 1, &encode::page_get_address());
    axolotl_sys::syscall::send(
        ep,
        axolotl_abi::MessageInfo::new(0x600d, 0, 0, 1),
        [m.label(), 0, 0, 0],
    );
}

pub fn invalid_capability(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    let t = Tcb(env.alloc(T::Tcb, 0)?);
    expect_err(
        t.set_priority(Tcb(n.0), 10),
        Error::InvalidCapability,
        "SetPriority with a notification as authority",
    )?;
    let f = env.frame()?;
    let v = env.vaddr(1, 4096);
    expect_err(
        f.map(VSpace(n.0), v, Rights::RW, vm_attr::CACHEABLE),
        Error::InvalidCapability,
        "PageMap into a notification",
    )?;
    // Invoking an empty slot with Call: seL4 replies InvalidCapability (no cap fault). From a
    // thread with a fault handler, so that a fault does not stop the suite.
    let ep = env.endpoint()?;
    let empty = env.slot()?;
    ensure_eq!(empty, ep.0 + 1, "slot after the endpoint");
    env.spawn(call_empty, ep.0, 100, ep.0)?;
    let m = ep.recv();
    ensure_eq!(
        m.label(),
        0x600d,
        "thread's report (1 = it took a cap fault)"
    );
    ensure_eq!(
        m.mrs[0],
        Error::InvalidCapability as u64,
        "error of a Call on an empty slot"
    );
    Ok(())
}

pub fn illegal_operation(env: &mut Env) -> Result<(), Fail> {
    let f = env.frame()?;
    let e = encode::untyped_retype(T::Endpoint as u64, 0, ROOT_CNODE.0, 0, 0, 1, 1);
    expect_err(
        invoke(f.0, &e),
        Error::IllegalOperation,
        "UntypedRetype on a frame",
    )?;
    expect_err(
        invoke(ROOT_CNODE.0, &Encoded::raw(999, [], &[])),
        Error::IllegalOperation,
        "label 999 on a CNode",
    )?;
    expect_err(
        invoke(ROOT_CNODE.0, &Encoded::raw(0, [], &[])),
        Error::IllegalOperation,
        "label 0 on a CNode",
    )?;
    expect_err(
        invoke(
            ROOT_TCB.0,
            &Encoded::new(Invocation::PageGetAddress, [], &[]),
        ),
        Error::IllegalOperation,
        "PageGetAddress on a TCB",
    )?;
    Ok(())
}

pub fn range_depth(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    for depth in [0, 65, u64::MAX] {
        let e = expect_err(
            ROOT_CNODE.delete(s, depth),
            Error::RangeError,
            "delete at a bad depth",
        )?;
        ensure_eq!(e.details(), &[1, 64][..], "depth range");
    }
    Ok(())
}

pub fn failed_lookup(env: &mut Env) -> Result<(), Fail> {
    let (empty, dest) = (env.slot()?, env.slot()?);
    let e = expect_err(
        ROOT_CNODE.copy(dest, D, ROOT_CNODE, empty, D, Rights::ALL),
        Error::FailedLookup,
        "copy from an empty slot",
    )?;
    ensure_eq!(
        e.details().first().copied(),
        Some(1),
        "failed lookup was of the source"
    );
    // Retype into a CNode named by an empty slot.
    let e = expect_err(
        env.ut.retype(T::Endpoint, 0, ROOT_CNODE, empty, D, 0, 1),
        Error::FailedLookup,
        "retype into a CNode at an empty slot",
    )?;
    ensure_eq!(
        e.details().first().copied(),
        Some(0),
        "failed lookup was not of the source"
    );
    // Or by a slot that holds no CNode.
    let n = env.notification()?;
    expect_err(
        env.ut.retype(T::Endpoint, 0, ROOT_CNODE, n.0, D, 0, 1),
        Error::FailedLookup,
        "retype into a notification",
    )?;
    Ok(())
}

pub fn truncated_message(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    let full = encode::untyped_retype(T::Endpoint as u64, 0, ROOT_CNODE.0, 0, 0, s, 1);
    for (len, caps) in [(5, 1), (0, 1), (6, 0)] {
        expect_err(
            invoke(env.ut.0, &full.truncated(len, caps)),
            Error::TruncatedMessage,
            "retype cut short",
        )?;
    }
    let copy = encode::cnode_copy(s, D, ROOT_CNODE.0, ROOT_TCB.0, D, Rights::ALL);
    expect_err(
        invoke(ROOT_CNODE.0, &copy.truncated(5, 0)),
        Error::TruncatedMessage,
        "copy without src root",
    )?;
    expect_err(
        invoke(ROOT_CNODE.0, &copy.truncated(4, 1)),
        Error::TruncatedMessage,
        "copy without rights",
    )?;
    let f = env.frame()?;
    let map = encode::page_map(ROOT_VSPACE.0, env.vaddr(1, 4096), Rights::RW, 1);
    expect_err(
        invoke(f.0, &map.truncated(3, 0)),
        Error::TruncatedMessage,
        "map without VSpace",
    )?;
    ensure!(env.is_empty(s)?, "a truncated retype created something");
    Ok(())
}

pub fn delete_first(env: &mut Env) -> Result<(), Fail> {
    let n = env.notification()?;
    let m = env.notification()?;
    expect_err(
        ROOT_CNODE.copy(m.0, D, ROOT_CNODE, n.0, D, Rights::ALL),
        Error::DeleteFirst,
        "copy onto a full slot",
    )?;
    expect_err(
        ROOT_CNODE.mint(m.0, D, ROOT_CNODE, n.0, D, Rights::ALL, 3),
        Error::DeleteFirst,
        "mint onto a full slot",
    )?;
    Ok(())
}
