//! Byte access to a data region shared with a peer.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};

use axolotl_ring::SharedRegion;

/// A data region (the buffers descriptors point into), reached one byte at a
/// time through relaxed atomics: the race-free equivalent of volatile access
/// (a plain `ldrb`/`strb`) to memory the peer may write at any moment. No
/// `&[u8]` is ever formed over it. The ring's Acquire/Release on the queue
/// indices orders these accesses against the peer's.
///
/// Every access is bounds-checked here, whatever the caller already checked.
#[derive(Debug)]
pub struct DataRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: accessed only through atomics.
unsafe impl Send for DataRegion {}

impl DataRegion {
    /// A byte view of the same memory as `region`, which stays with lib/ring.
    ///
    /// # Safety
    /// The memory must stay mapped as long as the view lives (true when the
    /// view lives next to the endpoint that owns `region`).
    pub(crate) unsafe fn alias(region: &SharedRegion) -> Self {
        Self {
            ptr: region.as_ptr(),
            len: region.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn cell(&self, offset: usize) -> Option<&AtomicU8> {
        if offset >= self.len {
            return None;
        }
        // SAFETY: in bounds; mapped per `alias`; AtomicU8 has alignment 1 and
        // every access to shared bytes from this side is atomic.
        Some(unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset)) })
    }

    /// The byte at `offset`, or `None` past the end.
    pub fn read(&self, offset: usize) -> Option<u8> {
        self.cell(offset).map(|c| c.load(Ordering::Relaxed))
    }

    /// Writes the byte at `offset`; `false` past the end.
    pub fn write(&self, offset: usize, byte: u8) -> bool {
        match self.cell(offset) {
            Some(c) => {
                c.store(byte, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Whether `offset..offset + len` lies inside the region.
    pub fn contains(&self, offset: u32, len: u32) -> bool {
        (offset as usize)
            .checked_add(len as usize)
            .is_some_and(|end| end <= self.len)
    }
}
