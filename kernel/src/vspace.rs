//! VSpaces, the kernel's side of their frames and page tables: taking mappings out and
//! the TLB maintenance that goes with it. The tables themselves are `stage2.rs`; mapping is
//! an invocation (`invoke/vspace.rs`).

use axolotl_kernel_core::Cap;

use crate::stage2::Table;
use crate::state::Kernel;

/// Drops every translation the TLBs may hold for user address spaces.
pub fn flush_tlb() {
    // SAFETY: TLB maintenance only.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle1is", "dsb ish", "isb") };
}

/// Zeroes a page table no VSpace links any more and drops what the TLBs hold of it.
pub fn clear_table(ptr: u64) {
    crate::arch::cpu::zero(ptr, crate::stage2::PAGE_SIZE);
    flush_tlb();
}

/// Removes a frame's or page table's mapping, if its VSpace still has the ASID.
pub fn unmap(k: &mut Kernel, cap: Cap) {
    let (ptr, m, table) = match cap {
        Cap::Frame {
            ptr,
            mapped: Some(m),
            ..
        } => (ptr, m, false),
        Cap::PageTable {
            ptr,
            mapped: Some(m),
        } => (ptr, m, true),
        _ => return,
    };
    let Some(root) = k.asids.lookup(m.asid) else {
        return;
    };
    // SAFETY: the ASID table names a live VSpace.
    let root = unsafe { Table::at(root) };
    let done = if table {
        root.unmap_table(m.vaddr, ptr)
    } else {
        root.unmap(m.vaddr, ptr)
    };
    if done {
        flush_tlb();
    }
}
