//! VSpace, page table and frame invocations (seL4 `decodeARMMMUInvocation`): mapping frames
//! and page tables into stage-2 VSpaces, a frame's address, cache maintenance by a VSpace's
//! addresses. Decoding walks the tables to the entry a map will write (`stage2::Entry`), so
//! every refusal comes before the write.

use axolotl_abi::{Invocation, Rights};
use axolotl_kernel_core::cap::{FrameSize, Mapping};
use axolotl_kernel_core::cspace::LookupFault;
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use super::{Decoded, Done, Msg, Refusal, refuse};
use crate::stage2::{Entry, MapAttrs, MapError, MemKind, PAGE_SIZE, Table};
use crate::state::Kernel;
use crate::vspace::{clear_table, unmap};

const ATTR_CACHEABLE: u64 = 1 << 0;
const ATTR_EXECUTABLE: u64 = 1 << 1;

/// Most bytes one cache-maintenance invocation covers: the kernel is not preemptible, so the
/// work of one call is bounded (seL4 bounds it to one frame).
pub const MAX_CACHE_OP_BYTES: u64 = 2 << 20;

pub enum VSpaceOp {
    /// Clean (`unify`: and invalidate the instruction cache) `[start, end)`, every page of
    /// which is mapped in `table`.
    CacheOp {
        table: Table,
        start: u64,
        end: u64,
        unify: bool,
    },
    PageGetAddress(u64),
    MapTable {
        entry: Entry,
        table: u64,
        slot: SlotRef,
        mapping: Mapping,
    },
    UnmapTable {
        cap: Cap,
        table: u64,
        slot: SlotRef,
    },
    MapFrame {
        entry: Entry,
        frame: u64,
        size: FrameSize,
        attrs: MapAttrs,
        slot: SlotRef,
        mapping: Mapping,
    },
    UnmapFrame {
        cap: Cap,
        slot: SlotRef,
    },
}

/// The stage-2 root of a VSpace cap that has an ASID still owned by it.
fn vspace_root(k: &Kernel, vspace: Cap) -> Decoded<(Table, u16)> {
    let Cap::VSpace {
        ptr,
        asid: Some(asid),
    } = vspace
    else {
        return Err(refuse!(
            SyscallError::InvalidCapability { arg: 1 },
            "not a VSpace with an ASID"
        ));
    };
    if k.asids.lookup(asid) != Some(ptr) {
        return Err(refuse!(
            SyscallError::FailedLookup {
                source: false,
                fault: LookupFault::InvalidRoot,
            },
            "the VSpace's ASID belongs to another VSpace now"
        ));
    }
    // SAFETY: the ASID table says this VSpace object is live.
    Ok((unsafe { Table::at(ptr) }, asid))
}

/// A map the tables refuse, as its caller is told.
fn map_refusal(e: MapError) -> Refusal {
    match e {
        MapError::AlreadyMapped => refuse!(
            SyscallError::DeleteFirst,
            "something is mapped at that address"
        ),
        MapError::NeedTable { .. } => refuse!(
            SyscallError::FailedLookup {
                source: false,
                fault: LookupFault::MissingCapability { bits_left: 0 },
            },
            "a page table is missing on the way"
        ),
        MapError::BadAddress => refuse!(
            SyscallError::AlignmentError,
            "the address is misaligned or beyond the address space"
        ),
    }
}

fn no_invocation() -> Refusal {
    refuse!(
        SyscallError::IllegalOperation,
        "not an invocation of this cap"
    )
}

pub fn decode(k: &Kernel, m: &Msg, l: Invocation, cap: Cap, slot: SlotRef) -> Decoded<VSpaceOp> {
    let mr = |i| m.mr(i);
    Ok(match (l, cap) {
        (
            Invocation::VSpaceCleanData | Invocation::VSpaceUnifyInstruction,
            Cap::VSpace {
                ptr, asid: Some(_), ..
            },
        ) => {
            m.need(2)?;
            // SAFETY: the cap names a live VSpace root table.
            let table = unsafe { Table::at(ptr) };
            decode_cache_op(table, mr(0), mr(1), l == Invocation::VSpaceUnifyInstruction)?
        }
        (Invocation::PageGetAddress, Cap::Frame { ptr, .. }) => VSpaceOp::PageGetAddress(ptr),
        (Invocation::PageTableMap, Cap::PageTable { ptr, mapped: None }) => {
            m.need(2)?;
            let (vs, _) = m.extra_cap(0)?;
            let (root, asid) = vspace_root(k, vs)?;
            let vaddr = mr(0);
            let entry = match root.table_entry(vaddr, ptr) {
                Ok((e, _)) => e,
                Err(MapError::AlreadyMapped) => {
                    return Err(refuse!(
                        SyscallError::DeleteFirst,
                        "every table on the way is there already"
                    ));
                }
                Err(_) => {
                    return Err(refuse!(
                        SyscallError::InvalidArgument { arg: 0 },
                        "the address is beyond the address space"
                    ));
                }
            };
            VSpaceOp::MapTable {
                entry,
                table: ptr,
                slot,
                mapping: Mapping { asid, vaddr },
            }
        }
        (Invocation::PageTableMap, Cap::PageTable { .. }) => {
            return Err(refuse!(
                SyscallError::InvalidCapability { arg: 0 },
                "the page table is mapped already"
            ));
        }
        (Invocation::PageTableUnmap, Cap::PageTable { ptr, .. }) => {
            // As seL4: copies of a mapped table share its mapping, so only the last cap may
            // take it out (and clear it) from under the others.
            if !axolotl_kernel_core::mdb::is_final_capability(slot) {
                return Err(refuse!(
                    SyscallError::RevokeFirst,
                    "other caps share the table's mapping"
                ));
            }
            VSpaceOp::UnmapTable {
                cap,
                table: ptr,
                slot,
            }
        }
        (
            Invocation::PageMap,
            Cap::Frame {
                ptr,
                size,
                rights,
                is_device,
                mapped,
            },
        ) => {
            m.need(3)?;
            if mapped.is_some() {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 0 },
                    "the frame cap is mapped already"
                ));
            }
            let (vs, _) = m.extra_cap(0)?;
            let (root, asid) = vspace_root(k, vs)?;
            let (vaddr, want, attr) = (mr(0), Rights::from_bits_truncate(mr(1)), mr(2));
            let r = rights.mask(want);
            let attrs = MapAttrs {
                read: r.contains(Rights::READ),
                write: r.contains(Rights::WRITE),
                execute: attr & ATTR_EXECUTABLE != 0,
                kind: if is_device {
                    MemKind::Device
                } else if attr & ATTR_CACHEABLE != 0 {
                    MemKind::Cached
                } else {
                    MemKind::Uncached
                },
            };
            // W^X is user-level policy (the root task applies it to PDs, as the SDF rule
            // `wx-map` says); a guest's RAM must be writable and executable at stage 2, its
            // own stage 1 deciding (seL4 accepts any combination too).
            if !attrs.read {
                return Err(refuse!(
                    SyscallError::InvalidArgument { arg: 1 },
                    "a mapping without read access"
                ));
            }
            let entry = match size {
                FrameSize::Small => root.page_entry(vaddr, ptr),
                FrameSize::Large => root.block_entry(vaddr, ptr),
            }
            .map_err(map_refusal)?;
            VSpaceOp::MapFrame {
                entry,
                frame: ptr,
                size,
                attrs,
                slot,
                mapping: Mapping { asid, vaddr },
            }
        }
        (Invocation::PageUnmap, Cap::Frame { .. }) => VSpaceOp::UnmapFrame { cap, slot },
        _ => return Err(no_invocation()),
    })
}

/// VSpaceCleanData / VSpaceUnifyInstruction on `[start, end)` of the VSpace rooted at
/// `table`: every page of the range must be mapped, checked whole before any maintenance.
fn decode_cache_op(table: Table, start: u64, end: u64, unify: bool) -> Decoded<VSpaceOp> {
    if end <= start {
        return Err(refuse!(
            SyscallError::InvalidArgument { arg: 1 },
            "an empty range"
        ));
    }
    if end - start > MAX_CACHE_OP_BYTES {
        return Err(refuse!(
            SyscallError::RangeError {
                min: 1,
                max: MAX_CACHE_OP_BYTES,
            },
            "a range longer than one call may maintain"
        ));
    }
    let mut va = start & !(PAGE_SIZE - 1);
    while va < end {
        if table.lookup(va).is_none() {
            return Err(refuse!(
                SyscallError::FailedLookup {
                    source: false,
                    fault: LookupFault::MissingCapability { bits_left: 0 },
                },
                "a page of the range is not mapped"
            ));
        }
        va += PAGE_SIZE;
    }
    Ok(VSpaceOp::CacheOp {
        table,
        start,
        end,
        unify,
    })
}

pub fn perform(k: &mut Kernel, m: &Msg, op: VSpaceOp) -> Done {
    match op {
        VSpaceOp::CacheOp {
            table,
            start,
            end,
            unify,
        } => cache_op(table, start, end, unify),
        VSpaceOp::PageGetAddress(ptr) => {
            m.mrs.set(0, ptr);
            return Done::Reply(1);
        }
        VSpaceOp::MapTable {
            entry,
            table,
            slot,
            mapping,
        } => {
            entry.install_table(table);
            slot.set_mapping(Some(mapping));
        }
        VSpaceOp::UnmapTable { cap, table, slot } => {
            unmap(k, cap);
            // Always cleared, linked or not (its VSpace may be gone): an unmapped table maps
            // nothing, so mapping it again elsewhere cannot revive entries to frames whose
            // caps were deleted meanwhile (issue #13, docs/security.md).
            clear_table(table);
            slot.set_mapping(None);
        }
        VSpaceOp::MapFrame {
            entry,
            frame,
            size,
            attrs,
            slot,
            mapping,
        } => {
            match size {
                FrameSize::Small => entry.install_page(frame, attrs),
                FrameSize::Large => entry.install_block(frame, attrs),
            }
            if attrs.execute {
                crate::arch::cpu::sync_icache(frame, 1 << size.bits());
            }
            slot.set_mapping(Some(mapping));
        }
        VSpaceOp::UnmapFrame { cap, slot } => {
            unmap(k, cap);
            slot.set_mapping(None);
        }
    }
    Done::Reply(0)
}

/// Device mappings are skipped (nothing of them is cached), RAM is maintained through the
/// kernel's identity map.
fn cache_op(table: Table, start: u64, end: u64, unify: bool) {
    let mut va = start;
    while va < end {
        let n = (PAGE_SIZE - (va % PAGE_SIZE)).min(end - va);
        if let Some((pa, attrs)) = table.lookup(va)
            && attrs.kind != MemKind::Device
            && crate::BOARD.ram_contains(pa, pa + n)
        {
            if unify {
                crate::arch::cpu::clean_dcache_pou(pa, n);
            } else {
                crate::arch::cpu::clean_dcache_poc(pa, n);
            }
        }
        va += n;
    }
    if unify {
        crate::arch::cpu::invalidate_icache();
    }
}
