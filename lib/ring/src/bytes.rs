//! Byte-stream ring for serial-style streams: the descriptor queue's header,
//! indices, ordering, validation and signal flag, over bytes instead of
//! descriptors. Indices count bytes.

use crate::error::{Corruption, LayoutError};
use crate::queue::{RawQueue, Signal, Wait, init_ring, observe_head, observe_tail, ring_bytes};
use crate::region::SharedRegion;
use crate::sync::{ByteCell, Ordering};

/// Bytes a byte ring of `capacity` bytes occupies (128-byte header first).
pub fn byte_ring_bytes(capacity: u32) -> Result<usize, LayoutError> {
    ring_bytes::<ByteCell>(capacity)
}

/// Writes a fresh, empty byte ring (zeroed memory already is one).
///
/// # Safety
/// Nothing else may access the region during the call.
pub unsafe fn init_byte_ring(region: &SharedRegion, capacity: u32) -> Result<(), LayoutError> {
    // SAFETY: forwarded.
    unsafe { init_ring::<ByteCell>(region, capacity) }
}

/// Writing end of a byte ring.
pub struct ByteProducer {
    q: RawQueue<ByteCell>,
    tail: u32,
    head_seen: u32,
    _region: SharedRegion,
}

// SAFETY: all shared accesses are atomic.
unsafe impl Send for ByteProducer {}

impl ByteProducer {
    pub fn new(region: SharedRegion, capacity: u32) -> Result<Self, LayoutError> {
        Ok(Self {
            q: RawQueue::new(&region, capacity)?,
            tail: 0,
            head_seen: 0,
            _region: region,
        })
    }

    /// Copies as much of `bytes` as fits and publishes it with one Release
    /// store of `tail`. Returns how many bytes were taken.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, Corruption> {
        let cap = self.q.capacity();
        self.head_seen = observe_head(self.q.header(), self.head_seen, self.tail, cap)?;
        let free = (cap - self.tail.wrapping_sub(self.head_seen)) as usize;
        let n = free.min(bytes.len());
        for (i, &b) in bytes[..n].iter().enumerate() {
            self.q.slot(self.tail.wrapping_add(i as u32)).store(b);
        }
        self.tail = self.tail.wrapping_add(n as u32);
        self.q.header().tail.store(self.tail, Ordering::Release);
        Ok(n)
    }

    /// As [`crate::Producer::signal_needed`].
    pub fn signal_needed(&mut self) -> Signal {
        self.q.header().take_signal_request()
    }
}

/// Reading end of a byte ring.
pub struct ByteConsumer {
    q: RawQueue<ByteCell>,
    head: u32,
    tail_seen: u32,
    _region: SharedRegion,
}

// SAFETY: all shared accesses are atomic.
unsafe impl Send for ByteConsumer {}

impl ByteConsumer {
    pub fn new(region: SharedRegion, capacity: u32) -> Result<Self, LayoutError> {
        Ok(Self {
            q: RawQueue::new(&region, capacity)?,
            head: 0,
            tail_seen: 0,
            _region: region,
        })
    }

    /// Copies available bytes into `buf`, then hands the space back with one
    /// Release store of `head`. Returns how many bytes were read.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Corruption> {
        let cap = self.q.capacity();
        self.tail_seen = observe_tail(self.q.header(), self.tail_seen, self.head, cap)?;
        let n = (self.tail_seen.wrapping_sub(self.head) as usize).min(buf.len());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.q.slot(self.head.wrapping_add(i as u32)).load();
        }
        self.head = self.head.wrapping_add(n as u32);
        self.q.header().head.store(self.head, Ordering::Release);
        Ok(n)
    }

    /// As [`crate::Consumer::prepare_wait`].
    pub fn prepare_wait(&mut self) -> Result<Wait, Corruption> {
        self.q.header().request_signal();
        let cap = self.q.capacity();
        self.tail_seen = observe_tail(self.q.header(), self.tail_seen, self.head, cap)?;
        Ok(if self.tail_seen == self.head {
            Wait::Block
        } else {
            Wait::Retry
        })
    }
}
