//! Loading a program image into fresh frames: each page is mapped at a scratch address in the
//! root task, filled from the pack (the kernel hands out frames zeroed, which is the bss), its
//! setvars written, then moved to the PD's VSpace with the segment's permissions.

use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{ObjectType, Rights};
use axolotl_boot_plan::Segment;
use axolotl_sys::alloc::ObjectAlloc;
use axolotl_sys::{Frame, VSpace, vm_attr};

use super::build::{Error, Step};
use super::vspace;

const PAGE: u64 = 0x1000;
/// Where the root task sees the page it is filling (nothing else lives this high).
const SCRATCH: u64 = 0x7f_0000_0000;

pub struct Loaded {
    /// The image's frame holding the IPC buffer, if the image has Microkit's buffer symbol.
    pub ipc_frame: Option<Frame>,
}

/// Copies the part of `[src_va, src_va + src.len())` that falls in the page at `page` into
/// `dst` (the page's bytes).
fn copy_overlap(dst: &mut [u8], page: u64, src_va: u64, src: &[u8]) {
    let lo = page.max(src_va);
    let hi = (page + PAGE).min(src_va + src.len() as u64);
    if lo < hi {
        let (d, s) = ((lo - page) as usize, (lo - src_va) as usize);
        let n = (hi - lo) as usize;
        dst[d..d + n].copy_from_slice(&src[s..s + n]);
    }
}

pub fn load(
    a: &mut ObjectAlloc,
    segments: &[Segment],
    image: &[u8],
    vspace: VSpace,
    setvars: &[(u64, u64)],
    ipc_buffer: u64,
) -> Result<Loaded, Error> {
    let root_vspace = VSpace(init_cap::VSPACE);
    let mut ipc_frame = None;
    let mut last_page = None;
    for seg in segments {
        let file = usize::try_from(seg.offset)
            .ok()
            .and_then(|o| image.get(o..o.checked_add(seg.filesz as usize)?))
            .ok_or(Error::Plan("segment outside its image"))?;
        let (rights, attrs) = vspace::rights_attrs(seg.perms, true);
        let mut page = seg.vaddr & !(PAGE - 1);
        while page < seg.vaddr + seg.memsz {
            if last_page.is_some_and(|p| p >= page) {
                return Err(Error::Plan("image segments share a page"));
            }
            last_page = Some(page);
            let f = Frame(a.alloc(ObjectType::SmallFrame, 0).step("image frame")?);
            vspace::map(a, f, root_vspace, SCRATCH, Rights::RW, vm_attr::CACHEABLE)
                .step("scratch map")?;
            // SAFETY: the frame is mapped at SCRATCH, readable and writable, for this block only.
            let dst = unsafe { core::slice::from_raw_parts_mut(SCRATCH as *mut u8, PAGE as usize) };
            copy_overlap(dst, page, seg.vaddr, file);
            for &(va, value) in setvars {
                copy_overlap(dst, page, va, &value.to_le_bytes());
            }
            f.unmap().step("scratch unmap")?;
            vspace::map(a, f, vspace, page, rights, attrs).step("image map")?;
            if page == ipc_buffer & !(PAGE - 1) {
                ipc_frame = Some(f);
            }
            page += PAGE;
        }
    }
    Ok(Loaded { ipc_frame })
}
