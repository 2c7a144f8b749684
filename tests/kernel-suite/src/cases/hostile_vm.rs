//! Hostile cases for page tables (issue #13): a table that leaves its place in a VSpace must
//! not take its entries with it, or frames whose caps are gone (and whose memory is retyped)
//! stay reachable through it. Each case frees a frame's memory, retypes it as a CNode, maps
//! the table somewhere again and lets a thread write a forged cap word where the frame was:
//! the thread must fault and the CNode stay empty (docs/security.md, "Proven breaks").

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, ROOT_VSPACE, expect_err, set_shared, shared};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, FaultLabel, MessageInfo, ObjectType as T, Rights};
use axolotl_sys::{AsidPool, CNode, Endpoint, Frame, PageTable, Untyped, VSpace, vm_attr};

/// Word 0 of an IrqControl cap (lib/kernel-core cap.rs): written into slot memory it forges
/// that cap.
const FORGED_IRQ_CONTROL: u64 = 10 << 59;
const CNODE_BITS: u64 = 4;
const EP: usize = 2;

/// Writes the forged word at `addr`, then reports on the endpoint (a fault reports instead).
fn forger(addr: u64) {
    // SAFETY: deliberately writes through whatever the kernel left mapped at `addr`.
    unsafe { core::ptr::write_volatile(addr as *mut u64, FORGED_IRQ_CONTROL) };
    set_shared(1, 1);
    Endpoint(shared(EP)).send(MessageInfo::new(0, 0, 0, 0), [0; 4]);
}

/// A frame in a 4 KiB untyped of its own (so its memory can be freed and retyped alone).
fn own_frame(env: &mut Env) -> Result<(Frame, Untyped), Fail> {
    let u = Untyped(env.alloc(T::Untyped, 12)?);
    let f = env.slot()?;
    u.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f, 1)
        .ctx("frame from its own untyped")?;
    Ok((Frame(f), u))
}

/// Maps `f` at `v` of `vs`, creating page tables as asked; returns the last (level-3) table.
fn map_with_tables(env: &mut Env, vs: VSpace, f: Frame, v: u64) -> Result<PageTable, Fail> {
    let mut last = None;
    for _ in 0..3 {
        match f.map(vs, v, Rights::RW, vm_attr::CACHEABLE) {
            Ok(()) => return last.ok_or_else(|| fail!("{v:#x} needed no page table")),
            Err(e) if e.error == Error::FailedLookup => {
                let pt = PageTable(env.alloc(T::PageTable, 0)?);
                pt.map(vs, v, 0).ctx("PageTableMap")?;
                last = Some(pt);
            }
            Err(e) => return Err(fail!("frame map at {v:#x}: {e:?}")),
        }
    }
    Err(fail!("frame map at {v:#x}: still no page table"))
}

/// The frame's memory (in `u`) is freed and retyped as a CNode; `pt` (no longer in any
/// VSpace, its frame's cap deleted) is mapped at a fresh 2 MiB of our VSpace and a thread
/// writes through the address the frame had in it. It must fault, and the CNode stay empty.
fn retype_and_reach(env: &mut Env, u: Untyped, pt: PageTable, off: u64) -> Result<(), Fail> {
    ROOT_CNODE
        .revoke(u.0, D)
        .ctx("revoke the frame's untyped")?;
    let c = env.slot()?;
    u.retype(T::CNode, CNODE_BITS, ROOT_CNODE, 0, 0, c, 1)
        .ctx("CNode over the frame's memory")?;
    // A level-2 table covering a fresh 2 MiB, then the old table below it.
    let v2 = env.vaddr(512, 2 << 20);
    let probe = env.frame()?;
    env.map(probe, v2 + (1 << 20), Rights::RW, vm_attr::CACHEABLE)?;
    probe.unmap().ctx("unmap the probe")?;
    // The probe's level-3 table took the slot; put the old table at the next 2 MiB instead.
    let v3 = env.vaddr(512, 2 << 20);
    pt.map(ROOT_VSPACE, v3, 0)
        .ctx("PageTableMap of the old table")?;
    let ep = env.endpoint()?;
    set_shared(EP, ep.0);
    let t = env.spawn(forger, v3 + off, 100, ep.0)?;
    let m = ep.recv();
    t.tcb.suspend().ctx("suspend the forger")?;
    let scratch = env.slot()?;
    let slot0_empty = matches!(
        ROOT_CNODE.copy(scratch, D, CNode(c), 0, CNODE_BITS, Rights::ALL),
        Err(e) if e.error == Error::FailedLookup
    );
    ensure!(
        shared(1) == 0,
        "a write through the old table reached the freed frame's memory (now a CNode): {}",
        if slot0_empty {
            "slot 0 still empty"
        } else {
            "slot 0 holds a forged cap"
        }
    );
    ensure_eq!(
        (m.label(), m.mrs[1]),
        (FaultLabel::VmFault as u64, v3 + off),
        "fault at the address the freed frame had"
    );
    ensure!(slot0_empty, "slot 0 of the CNode is not empty");
    Ok(())
}

/// PageTableUnmap, then the frame below it is deleted and its memory reused: the unmapped
/// table must have been cleared (seL4 clears a page table on unmap).
pub fn unmapped_table_keeps_no_entries(env: &mut Env) -> Result<(), Fail> {
    let (f, u) = own_frame(env)?;
    let v = env.vaddr(1, 4096);
    let pt = map_with_tables(env, ROOT_VSPACE, f, v)?;
    // SAFETY: mapped just above.
    unsafe { core::ptr::write_volatile(v as *mut u64, 0x1234) };
    pt.unmap().ctx("PageTableUnmap")?;
    // The frame's unmap finds nothing where its table was; the frame goes.
    f.unmap().ctx("unmap the frame")?;
    ROOT_CNODE.delete(f.0, D).ctx("delete the frame")?;
    retype_and_reach(env, u, pt, v & 0x1f_ffff)
}

/// A VSpace is deleted under its page tables and frames: the frame's unmap (on delete)
/// cannot find it, the table's cap still says mapped. Unmapping that table must clear it
/// before it can be mapped elsewhere.
pub fn vspace_deleted_under_table(env: &mut Env) -> Result<(), Fail> {
    let vs = VSpace(env.alloc(T::VSpace, 0)?);
    AsidPool(init_cap::ASID_POOL)
        .assign(vs)
        .ctx("assign an ASID")?;
    let (f, u) = own_frame(env)?;
    let v = 0x4000_3000;
    let pt = map_with_tables(env, vs, f, v)?;
    ROOT_CNODE.delete(vs.0, D).ctx("delete the VSpace")?;
    expect_err(
        pt.map(ROOT_VSPACE, env.vaddr(512, 2 << 20), 0),
        Error::InvalidCapability,
        "map a table whose cap still records a mapping",
    )?;
    ROOT_CNODE.delete(f.0, D).ctx("delete the frame")?;
    pt.unmap().ctx("PageTableUnmap after the VSpace went")?;
    retype_and_reach(env, u, pt, v & 0x1f_ffff)
}

/// Only the final cap may unmap (and so clear) a table, as seL4 (RevokeFirst): a copy, made
/// while the table was mapped, must not pull it out from under the others; and an unmapped
/// table is not copied at all (the copies could map it twice).
pub fn table_unmap_needs_final_cap(env: &mut Env) -> Result<(), Fail> {
    let f = env.frame()?;
    let v = env.vaddr(1, 4096);
    let pt = map_with_tables(env, ROOT_VSPACE, f, v)?;
    let copy = PageTable(env.slot()?);
    ROOT_CNODE
        .copy(copy.0, D, ROOT_CNODE, pt.0, D, Rights::ALL)
        .ctx("copy of a mapped table")?;
    expect_err(copy.unmap(), Error::RevokeFirst, "unmap through a copy")?;
    expect_err(pt.unmap(), Error::RevokeFirst, "unmap while a copy exists")?;
    // SAFETY: mapped above; both unmaps were refused, so it still is.
    unsafe { core::ptr::write_volatile(v as *mut u64, 5) };
    ROOT_CNODE.delete(copy.0, D).ctx("delete the copy")?;
    pt.unmap().ctx("PageTableUnmap by the last cap")?;
    expect_err(
        ROOT_CNODE.copy(copy.0, D, ROOT_CNODE, pt.0, D, Rights::ALL),
        Error::IllegalOperation,
        "copy of an unmapped table",
    )?;
    Ok(())
}
