//! Mapping frames into a VSpace, creating the page tables a mapping needs on the way (the
//! kernel says which by failing the lookup, as seL4 does).

use axolotl_abi::{Error, ObjectType, Rights};
use axolotl_boot_plan::Perms;
use axolotl_sys::alloc::ObjectAlloc;
use axolotl_sys::{Frame, InvocationError, PageTable, VSpace, vm_attr};

/// Maps `frame` at `vaddr`, adding level-2/3 tables until the kernel accepts the mapping.
pub fn map(
    a: &mut ObjectAlloc,
    frame: Frame,
    vspace: VSpace,
    vaddr: u64,
    rights: Rights,
    attrs: u64,
) -> Result<(), InvocationError> {
    // A 39-bit VSpace has two table levels below its root.
    for _ in 0..3 {
        match frame.map(vspace, vaddr, rights, attrs) {
            Err(e) if e.error == Error::FailedLookup => {
                let pt = PageTable(a.alloc(ObjectType::PageTable, 0)?);
                pt.map(vspace, vaddr, 0)?;
            }
            r => return r,
        }
    }
    frame.map(vspace, vaddr, rights, attrs)
}

/// Rights and attributes for a mapping with `perms` (W^X is the kernel's rule too).
pub fn rights_attrs(perms: Perms, cached: bool) -> (Rights, u64) {
    let rights = if perms.write {
        Rights::RW
    } else {
        Rights::READ
    };
    let mut attrs = if cached { vm_attr::CACHEABLE } else { 0 };
    if perms.execute {
        attrs |= vm_attr::EXECUTABLE;
    }
    (rights, attrs)
}
