//! A shared-memory region handed to us as a raw pointer and a length.

use core::ptr::NonNull;

use crate::error::LayoutError;

/// Memory shared with a peer, which may write any of it at any time.
///
/// Deliberately no `&[u8]`/`&mut [u8]` accessor: forming either over memory
/// the peer writes would be undefined behaviour. The crate only ever reaches
/// the memory through atomics (see `sync.rs`).
#[derive(Debug)]
pub struct SharedRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is only accessed through atomics; moving the handle to
// another thread changes nothing about who may touch the memory.
unsafe impl Send for SharedRegion {}

impl SharedRegion {
    /// # Safety
    /// `ptr..ptr + len` must stay mapped read-write for as long as this
    /// handle and anything built from it live, and must be accessed by this
    /// side only through this crate. Per queue there must be at most one
    /// producer and one consumer (across both sides).
    pub const unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        Self { ptr, len }
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Splits into `[0, mid)` and `[mid, len)`.
    pub fn split_at(self, mid: usize) -> Result<(SharedRegion, SharedRegion), LayoutError> {
        if mid > self.len {
            return Err(LayoutError::TooSmall {
                needed: mid,
                len: self.len,
            });
        }
        // SAFETY: `mid <= len`, so the pointer stays inside the region.
        let rest = unsafe { self.ptr.add(mid) };
        Ok((
            SharedRegion {
                ptr: self.ptr,
                len: mid,
            },
            SharedRegion {
                ptr: rest,
                len: self.len - mid,
            },
        ))
    }

    /// The start of the region, after checking its size and alignment.
    pub(crate) fn place(&self, needed: usize, align: usize) -> Result<NonNull<u8>, LayoutError> {
        if self.len < needed {
            return Err(LayoutError::TooSmall {
                needed,
                len: self.len,
            });
        }
        if !(self.ptr.as_ptr() as usize).is_multiple_of(align) {
            return Err(LayoutError::Misaligned { align });
        }
        Ok(self.ptr)
    }
}
