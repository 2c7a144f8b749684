//! Frames and page tables in the suite's own VSpace; ASID pools.

use crate::harness::{Ctx, Env, Fail, ROOT_VSPACE, expect_err, set_shared, shared};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, FaultLabel, ObjectType as T, Rights};
use axolotl_sys::{AsidControl, AsidPool, Frame, PageTable, VSpace, vm_attr};

fn rd(v: u64) -> u64 {
    // SAFETY: callers pass addresses they mapped.
    unsafe { core::ptr::read_volatile(v as *const u64) }
}
fn wr(v: u64, x: u64) {
    // SAFETY: as in `rd`.
    unsafe { core::ptr::write_volatile(v as *mut u64, x) }
}

fn toucher(v: u64) {
    set_shared(0, rd(v));
    set_shared(1, 1);
}

pub fn frame_map_unmap(env: &mut Env) -> Result<(), Fail> {
    let (f, v) = env.mapped_frame()?;
    wr(v + 8, 0xabcd);
    ensure_eq!(rd(v + 8), 0xabcd, "word through the mapping");
    f.unmap().ctx("unmap")?;
    let v2 = env.vaddr(1, 4096);
    env.map(f, v2, Rights::RW, vm_attr::CACHEABLE)?;
    ensure_eq!(rd(v2 + 8), 0xabcd, "word at the new address (same frame)");
    // The old address is gone: a thread touching it faults there.
    let ep = env.endpoint()?;
    let t = env.spawn(toucher, v + 8, 100, ep.0)?;
    let m = ep.recv();
    ensure_eq!(
        (m.label(), m.mrs[1]),
        (FaultLabel::VmFault as u64, v + 8),
        "fault at the unmapped address"
    );
    t.tcb.suspend().ctx("suspend")?;
    ensure_eq!(shared(1), 0, "thread read an unmapped page");
    // Read-only mapping through a read-only cap.
    let ro = Frame(env.mint(f.0, Rights::READ, 0)?);
    let v3 = env.vaddr(1, 4096);
    env.map(ro, v3, Rights::READ, vm_attr::CACHEABLE)?;
    ensure_eq!(rd(v3 + 8), 0xabcd, "word through the read-only mapping");
    Ok(())
}

pub fn page_table(env: &mut Env) -> Result<(), Fail> {
    let f = env.frame()?;
    let v = env.vaddr(1, 1 << 30);
    expect_err(
        f.map(ROOT_VSPACE, v, Rights::RW, vm_attr::CACHEABLE),
        Error::FailedLookup,
        "map with no page table",
    )?;
    let mut pts = [PageTable(0); 2];
    let mut n = 0;
    loop {
        ensure!(n < 2, "two page tables did not make {v:#x} mappable");
        pts[n] = PageTable(env.alloc(T::PageTable, 0)?);
        pts[n].map(ROOT_VSPACE, v, 0).ctx("PageTableMap")?;
        n += 1;
        match f.map(ROOT_VSPACE, v, Rights::RW, vm_attr::CACHEABLE) {
            Ok(()) => break,
            Err(e) if e.error == Error::FailedLookup => continue,
            Err(e) => return Err(fail!("map after {n} page tables: {e:?}")),
        }
    }
    ensure_eq!(
        n,
        2,
        "page tables needed below a VSpace root (levels 2 and 3)"
    );
    wr(v, 7);
    ensure_eq!(rd(v), 7, "word through the new tables");
    let extra = PageTable(env.alloc(T::PageTable, 0)?);
    expect_err(
        extra.map(ROOT_VSPACE, v, 0),
        Error::DeleteFirst,
        "second page table at a covered address",
    )?;
    expect_err(
        pts[1].map(ROOT_VSPACE, v + (4 << 20), 0),
        Error::InvalidCapability,
        "remap of a mapped page table",
    )?;
    pts[1].unmap().ctx("PageTableUnmap")?;
    let g = env.frame()?;
    expect_err(
        g.map(ROOT_VSPACE, v + 4096, Rights::RW, vm_attr::CACHEABLE),
        Error::FailedLookup,
        "map below an unmapped table",
    )?;
    Ok(())
}

pub fn alignment(env: &mut Env) -> Result<(), Fail> {
    let f = env.frame()?;
    let v = env.vaddr(1, 4096);
    env.map(f, v, Rights::RW, vm_attr::CACHEABLE)?;
    f.unmap().ctx("unmap")?;
    expect_err(
        f.map(ROOT_VSPACE, v + 8, Rights::RW, vm_attr::CACHEABLE),
        Error::AlignmentError,
        "map at +8",
    )?;
    let l = Frame(env.alloc(T::LargeFrame, 0)?);
    let lv = env.vaddr(1024, 2 << 20) + 4096;
    expect_err(
        l.map(ROOT_VSPACE, lv, Rights::RW, vm_attr::CACHEABLE),
        Error::AlignmentError,
        "2 MiB frame at a 4 KiB boundary",
    )?;
    Ok(())
}

pub fn large_frame(env: &mut Env) -> Result<(), Fail> {
    let l = Frame(env.alloc(T::LargeFrame, 0)?);
    let v = env.vaddr(512, 2 << 20);
    env.map(l, v, Rights::RW, vm_attr::CACHEABLE)?;
    wr(v, 1);
    wr(v + (2 << 20) - 8, 2);
    ensure_eq!(
        (rd(v), rd(v + (2 << 20) - 8)),
        (1, 2),
        "first and last words of a 2 MiB mapping"
    );
    let pa = l.get_address().ctx("PageGetAddress")?;
    ensure!(pa % (2 << 20) == 0, "2 MiB frame at {pa:#x}");
    Ok(())
}

pub fn asid(env: &mut Env) -> Result<(), Fail> {
    let s = env.slot()?;
    AsidControl(init_cap::ASID_CONTROL)
        .make_pool(crate::harness::ROOT_CNODE, s, crate::harness::D)
        .ctx("MakePool")?;
    let pool = AsidPool(s);
    let vs = VSpace(env.alloc(T::VSpace, 0)?);
    pool.assign(vs).ctx("Assign")?;
    expect_err(
        pool.assign(vs),
        Error::InvalidCapability,
        "second assign of a VSpace",
    )?;
    // The boot pool works as well.
    let vs2 = VSpace(env.alloc(T::VSpace, 0)?);
    AsidPool(init_cap::ASID_POOL)
        .assign(vs2)
        .ctx("Assign from the boot pool")?;
    Ok(())
}

/// VSpaceCleanData / VSpaceUnifyInstruction (seL4's ARM_VSpace_* cache calls): accepted on
/// mapped memory, refused before doing anything for an empty or reversed range, one over
/// 2 MiB, or one reaching an unmapped page. (Under QEMU the maintenance itself is invisible:
/// there are no caches to observe; the data must still read back.)
pub fn cache_maintenance(env: &mut Env) -> Result<(), Fail> {
    let (_, v) = env.mapped_frame()?;
    wr(v + 16, 0x5a5a);
    ROOT_VSPACE.clean_data(v, v + 4096).ctx("clean a page")?;
    ROOT_VSPACE
        .clean_data(v + 8, v + 24)
        .ctx("clean part of a page")?;
    ROOT_VSPACE
        .unify_instruction(v, v + 4096)
        .ctx("unify a page")?;
    ensure_eq!(rd(v + 16), 0x5a5a, "data after maintenance");
    expect_err(
        ROOT_VSPACE.clean_data(v + 64, v + 64),
        Error::InvalidArgument,
        "empty range",
    )?;
    expect_err(
        ROOT_VSPACE.clean_data(v + 64, v),
        Error::InvalidArgument,
        "reversed range",
    )?;
    expect_err(
        ROOT_VSPACE.clean_data(v, v + (2 << 20) + 4096),
        Error::RangeError,
        "more than 2 MiB",
    )?;
    // The page after an unmapped one: nothing mapped at a fresh address.
    let hole = env.vaddr(1, 4096);
    expect_err(
        ROOT_VSPACE.unify_instruction(hole, hole + 8),
        Error::FailedLookup,
        "unmapped page",
    )?;
    expect_err(
        ROOT_VSPACE.clean_data(v, hole + 8),
        if hole > v + (2 << 20) {
            Error::RangeError
        } else {
            Error::FailedLookup
        },
        "range reaching an unmapped page",
    )?;
    Ok(())
}
