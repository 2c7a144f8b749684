//! VSpace invocations: mapping frames and page tables into stage-2 VSpaces, ASID pools.

use axolotl_abi::{Invocation, MessageInfo, Rights};
use axolotl_kernel_core::cap::{FrameSize, Mapping};
use axolotl_kernel_core::cspace::LookupFault;
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use crate::stage2::{MapAttrs, MapError, MemKind, Table};
use crate::state::Kernel;

const ATTR_CACHEABLE: u64 = 1 << 0;
const ATTR_EXECUTABLE: u64 = 1 << 1;

/// The stage-2 root of a VSpace cap that has an ASID still owned by it.
fn vspace_root(k: &Kernel, vspace: Cap) -> Result<(Table, u16), SyscallError> {
    let Cap::VSpace {
        ptr,
        asid: Some(asid),
    } = vspace
    else {
        return Err(SyscallError::InvalidCapability { arg: 1 });
    };
    if k.asids.lookup(asid) != Some(ptr) {
        return Err(SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::InvalidRoot,
        });
    }
    // SAFETY: the ASID table says this VSpace object is live.
    Ok((unsafe { Table::at(ptr) }, asid))
}

/// Drops every translation the TLBs may hold for user address spaces.
pub fn flush_tlb() {
    // SAFETY: TLB maintenance only.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle1is", "dsb ish", "isb") };
}

pub fn invoke(
    k: &mut Kernel,
    l: Invocation,
    info: MessageInfo,
    cap: Cap,
    cap_slot: SlotRef,
    mr: &dyn Fn(usize) -> u64,
    extra: &dyn Fn(usize) -> Result<(Cap, SlotRef), SyscallError>,
) -> Result<usize, SyscallError> {
    match (l, cap) {
        (Invocation::PageTableMap, Cap::PageTable { ptr, mapped: None }) => {
            crate::invoke::need(info, 2)?;
            let (vs, _) = extra(0)?;
            let (root, asid) = vspace_root(k, vs)?;
            let vaddr = mr(0);
            match root.map_table(vaddr, ptr) {
                Ok(_) => {}
                Err(MapError::AlreadyMapped) => return Err(SyscallError::DeleteFirst),
                Err(_) => return Err(SyscallError::InvalidArgument { arg: 0 }),
            }
            cap_slot.set_mapping(Some(Mapping { asid, vaddr }));
            Ok(0)
        }
        (Invocation::PageTableMap, Cap::PageTable { .. }) => {
            Err(SyscallError::InvalidCapability { arg: 0 })
        }
        (Invocation::PageTableUnmap, Cap::PageTable { ptr, .. }) => {
            // As seL4: copies of a mapped table share its mapping, so only the last cap may
            // take it out (and clear it) from under the others.
            if !axolotl_kernel_core::mdb::is_final_capability(cap_slot) {
                return Err(SyscallError::RevokeFirst);
            }
            unmap(k, cap);
            // Always cleared, linked or not (its VSpace may be gone): an unmapped table maps
            // nothing, so mapping it again elsewhere cannot revive entries to frames whose
            // caps were deleted meanwhile (issue #13, docs/security.md).
            clear_table(ptr);
            cap_slot.set_mapping(None);
            Ok(0)
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
            crate::invoke::need(info, 3)?;
            if mapped.is_some() {
                return Err(SyscallError::InvalidCapability { arg: 0 });
            }
            let (vs, _) = extra(0)?;
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
                return Err(SyscallError::InvalidArgument { arg: 1 });
            }
            let res = match size {
                FrameSize::Small => root.map_page(vaddr, ptr, attrs, &mut || None),
                FrameSize::Large => root.map_block(vaddr, ptr, attrs),
            };
            match res {
                Ok(()) => {}
                Err(MapError::AlreadyMapped) => return Err(SyscallError::DeleteFirst),
                Err(MapError::NeedTable { .. }) => {
                    return Err(SyscallError::FailedLookup {
                        source: false,
                        fault: LookupFault::MissingCapability { bits_left: 0 },
                    });
                }
                Err(MapError::BadAddress) => return Err(SyscallError::AlignmentError),
            }
            if attrs.execute {
                crate::arch::cpu::sync_icache(ptr, 1 << size.bits());
            }
            cap_slot.set_mapping(Some(Mapping { asid, vaddr }));
            Ok(0)
        }
        (Invocation::PageUnmap, Cap::Frame { .. }) => {
            unmap(k, cap);
            cap_slot.set_mapping(None);
            Ok(0)
        }
        (Invocation::AsidControlMakePool, Cap::AsidControl) => {
            crate::invoke::need(info, 2)?;
            let (root, _) = extra(0)?;
            let dest =
                axolotl_kernel_core::cspace::lookup_slot_for_cnode_op(false, root, mr(0), mr(1))?;
            k.asids.make_pool(cap_slot, dest).map(|_| 0)
        }
        (Invocation::AsidPoolAssign, Cap::AsidPool { .. }) => {
            let (_, vslot) = extra(0)?;
            k.asids.assign(cap_slot, vslot).map(|_| 0)
        }
        _ => Err(SyscallError::IllegalOperation),
    }
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
