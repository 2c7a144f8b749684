//! Program images in frames: each page is filled from the pack (the file bytes of the segment
//! covering it, zero elsewhere, then setvars) through its alias mapping, at load and at every
//! restart but for read-only data, loaded once (`Page::shared`); pages the root task loads
//! outside PD images use a scratch mapping. The pack itself is never written, so each restart
//! starts from the pristine image.

use axolotl_abi::Rights;
use axolotl_abi::bootinfo::init_cap;
use axolotl_boot_plan::{MAX_NAME, Pd, Segment};
use axolotl_sys::alloc::ObjectAlloc;
use axolotl_sys::{Frame, VSpace, vm_attr};

use super::build::{Error, Step};
use super::vspace;
use axolotl_sys::mem;

pub const PAGE: u64 = 0x1000;
pub const LARGE: u64 = 0x20_0000;
/// Where the root task sees the page it is filling (nothing else lives this high).
const SCRATCH: u64 = 0x7f_0000_0000;

/// What a PD's pages are made of.
pub struct Source<'a> {
    pub segments: &'a [Segment],
    pub image: &'a [u8],
    /// `(vaddr, value)`: 8-byte little-endian words written over the image.
    pub setvars: &'a [(u64, u64)],
    /// The PD's name for its image's `microkit_name` ([`name_patch`]).
    pub name: Option<NamePatch>,
}

impl Source<'_> {
    /// Checks that every segment's file bytes are inside the image.
    pub fn check(&self) -> Result<(), Error> {
        for s in self.segments {
            let end = s.offset.checked_add(s.filesz);
            if end.is_none_or(|e| e > self.image.len() as u64) || s.filesz > s.memsz {
                return Err(Error::Plan("segment outside its image"));
            }
        }
        Ok(())
    }

    /// The content of the page at `page` (as long as `dst`: a small or a large page): the file
    /// bytes of the segment covering it, zero elsewhere (segments never share a page), then
    /// setvars.
    pub fn fill(&self, dst: &mut [u8], page: u64) {
        let mut copied = 0..0;
        for s in self.segments {
            let file = &self.image[s.offset as usize..(s.offset + s.filesz) as usize];
            if let Some(r) = copy_overlap(dst, page, s.vaddr, file) {
                copied = r;
            }
        }
        mem::zero(&mut dst[..copied.start]);
        mem::zero(&mut dst[copied.end..]);
        for &(va, value) in self.setvars {
            let _ = copy_overlap(dst, page, va, &value.to_le_bytes());
        }
        if let Some(n) = &self.name {
            let _ = copy_overlap(dst, page, n.vaddr, n.bytes());
        }
    }

    /// Whether `page` already holds what [`Source::fill`] would write (a read, no write: for
    /// pages the PD cannot write). Setvars are never in such pages in practice; a page with one
    /// is simply reported as different.
    pub fn matches(&self, dst: &[u8], page: u64) -> bool {
        let touches = |va: u64, len: u64| va + len > page && va < page + dst.len() as u64;
        if self.setvars.iter().any(|&(va, _)| touches(va, 8))
            || self
                .name
                .as_ref()
                .is_some_and(|n| touches(n.vaddr, n.len as u64))
        {
            return false;
        }
        let mut covered = 0..0;
        for s in self.segments {
            let file = &self.image[s.offset as usize..(s.offset + s.filesz) as usize];
            let lo = page.max(s.vaddr);
            let hi = (page + dst.len() as u64).min(s.vaddr + file.len() as u64);
            if lo < hi {
                let (d, f, n) = (
                    (lo - page) as usize,
                    (lo - s.vaddr) as usize,
                    (hi - lo) as usize,
                );
                if !mem::equal(&dst[d..d + n], &file[f..f + n]) {
                    return false;
                }
                covered = d..d + n;
            }
        }
        mem::is_zero(&dst[..covered.start]) && mem::is_zero(&dst[covered.end..])
    }

    /// The pages the segments cover, in order, as `(vaddr, size, segment)`: a 2 MiB page
    /// wherever a 2 MiB-aligned stretch lies wholly inside one segment and does not hold
    /// `small_only` (the IPC buffer's page, which must be a small frame), 4 KiB pages
    /// elsewhere; `Err` if two segments share a page.
    pub fn pages(
        &self,
        small_only: u64,
    ) -> impl Iterator<Item = Result<(u64, u64, &Segment), Error>> + '_ {
        let mut last_end: Option<u64> = None;
        self.segments
            .iter()
            .flat_map(move |s| {
                let end = (s.vaddr + s.memsz).next_multiple_of(PAGE);
                let mut at = s.vaddr & !(PAGE - 1);
                core::iter::from_fn(move || {
                    if at >= end {
                        return None;
                    }
                    let large = at.is_multiple_of(LARGE)
                        && at + LARGE <= end
                        && !(at..at + LARGE).contains(&small_only);
                    let size = if large { LARGE } else { PAGE };
                    let page = (at, size, s);
                    at += size;
                    Some(page)
                })
            })
            .map(move |(p, size, s)| {
                if last_end.is_some_and(|l| l > p) {
                    return Err(Error::Plan("image segments share a page"));
                }
                last_end = Some(p + size);
                Ok((p, size, s))
            })
    }
}

/// The bytes a PD's image finds in its `microkit_name` (`Pd::name_at`).
pub struct NamePatch {
    vaddr: u64,
    /// The symbol's size (the builder caps it at `MAX_NAME`): nothing beyond it is written.
    len: usize,
    padded: [u8; MAX_NAME],
}

impl NamePatch {
    fn bytes(&self) -> &[u8] {
        &self.padded[..self.len]
    }
}

/// `pd`'s name, zero-padded and cut to its image's `microkit_name`, if the image has one.
pub fn name_patch(pd: &Pd) -> Option<NamePatch> {
    let (vaddr, size) = pd.name_at?;
    let len = (size as usize).min(MAX_NAME);
    let mut padded = [0; MAX_NAME];
    let n = pd.name.len().min(len);
    padded[..n].copy_from_slice(&pd.name.as_bytes()[..n]);
    Some(NamePatch { vaddr, len, padded })
}

/// Copies the part of `[src_va, src_va + src.len())` that falls in the page at `page` into
/// `dst` (the page's bytes); returns the range of `dst` written.
fn copy_overlap(
    dst: &mut [u8],
    page: u64,
    src_va: u64,
    src: &[u8],
) -> Option<core::ops::Range<usize>> {
    let lo = page.max(src_va);
    let hi = (page + dst.len() as u64).min(src_va + src.len() as u64);
    (lo < hi).then(|| {
        let (d, s) = ((lo - page) as usize, (lo - src_va) as usize);
        let n = (hi - lo) as usize;
        mem::copy(&mut dst[d..d + n], &src[s..s + n]);
        d..d + n
    })
}

/// Fills `frame` (not mapped anywhere through this cap) as the page at `page` of `src`.
pub fn fill_unmapped(
    a: &mut ObjectAlloc,
    frame: Frame,
    page: u64,
    src: &Source,
) -> Result<(), Error> {
    vspace::map(
        a,
        frame,
        VSpace(init_cap::VSPACE),
        SCRATCH,
        Rights::RW,
        vm_attr::CACHEABLE,
    )
    .step("scratch map")?;
    // SAFETY: the frame is mapped at SCRATCH, readable and writable, for this block only.
    let dst = unsafe { core::slice::from_raw_parts_mut(SCRATCH as *mut u8, PAGE as usize) };
    src.fill(dst, page);
    frame.unmap().step("scratch unmap")
}
