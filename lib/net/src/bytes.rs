//! Byte access to a data region shared with a peer.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};

use axolotl_ring::SharedRegion;

/// A data region (the buffers descriptors point into), reached one byte at a time through
/// relaxed atomics: the race-free equivalent of volatile access to memory the peer may write
/// at any moment. No `&[u8]` is ever formed over it; the ring's Acquire/Release on the queue
/// indices orders these accesses against the peer's. Every access is bounds-checked here,
/// whatever the caller already checked.
#[derive(Debug)]
pub struct Bytes {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: accessed only through atomics.
unsafe impl Send for Bytes {}

impl Bytes {
    /// A byte view of the same memory as `region`, which stays with lib/ring.
    ///
    /// # Safety
    /// The memory must stay mapped as long as the view lives (true when the view lives next
    /// to the endpoint that owns `region`).
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

    fn cells(&self, offset: usize, len: usize) -> Option<impl Iterator<Item = &AtomicU8>> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some((offset..end).map(move |i| {
            // SAFETY: `i < len`, inside the mapped region (`alias`); AtomicU8 has alignment
            // 1 and every access to shared bytes from this side is atomic.
            unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(i)) }
        }))
    }

    /// Copies `out.len()` bytes from `offset`; `false` (nothing copied) if out of bounds.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        match self.cells(offset, out.len()) {
            Some(cells) => {
                for (o, c) in out.iter_mut().zip(cells) {
                    *o = c.load(Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Copies `src` to `offset`; `false` (nothing written) if out of bounds.
    pub fn write(&self, offset: usize, src: &[u8]) -> bool {
        match self.cells(offset, src.len()) {
            Some(cells) => {
                for (s, c) in src.iter().zip(cells) {
                    c.store(*s, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }
}
