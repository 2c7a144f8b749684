//! Single-producer/single-consumer descriptor queue in shared memory.
//!
//! The producer alone advances `tail`, the consumer alone advances `head`;
//! both are free-running `u32`s, the slot is `index & (capacity - 1)`.
//! Each side keeps a private copy of its own index and never re-reads it
//! from shared memory, so a peer scribbling on it cannot steer us.

use core::ptr::NonNull;

use crate::descriptor::{Descriptor, MAX_ID, slot_words, unseal};
use crate::error::{Corruption, Index, LayoutError, PushError};
use crate::region::SharedRegion;
use crate::sync::{AtomicU32, ByteCell, Ordering, Slot};

/// Shared header of one queue. Producer- and consumer-written words live on
/// separate 64-byte lines so the two sides don't bounce one cache line.
///
/// Not `Immutable`: it is written through shared references (atomics).
#[repr(C)]
#[cfg_attr(
    not(feature = "loom"),
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout)
)]
pub struct QueueHeader {
    /// Written by the producer only (and by a resync reset).
    pub(crate) tail: AtomicU32,
    _producer_pad: [u32; 15],
    /// Written by the consumer only (and by a resync reset).
    pub(crate) head: AtomicU32,
    /// "Signal me": set by the consumer before it blocks, cleared by the
    /// producer when it takes on the duty to notify.
    signal: AtomicU32,
    _consumer_pad: [u32; 14],
}

#[cfg(not(feature = "loom"))]
const _: () = {
    assert!(size_of::<QueueHeader>() == 128);
    assert!(core::mem::offset_of!(QueueHeader, tail) == 0);
    assert!(core::mem::offset_of!(QueueHeader, head) == 64);
    assert!(core::mem::offset_of!(QueueHeader, signal) == 68);
    assert!(size_of::<Slot>() == size_of::<Descriptor>());
};

impl QueueHeader {
    /// Producer side of the signal handshake (see [`Producer::signal_needed`]).
    pub(crate) fn take_signal_request(&self) -> Signal {
        Signal::from_needed(self.signal.swap(0, Ordering::AcqRel) != 0)
    }

    /// Consumer side; the caller must re-check the queue afterwards.
    pub(crate) fn request_signal(&self) {
        self.signal.swap(1, Ordering::AcqRel);
    }

    fn new() -> Self {
        Self {
            tail: AtomicU32::new(0),
            _producer_pad: [0; 15],
            head: AtomicU32::new(0),
            signal: AtomicU32::new(0),
            _consumer_pad: [0; 14],
        }
    }
}

/// A queue element: a descriptor slot, or a byte of a byte ring.
pub(crate) trait Element {
    /// The largest capacity a ring of these elements supports.
    const MAX_CAPACITY: u32;
    fn new() -> Self;
    /// Survivor's reset: forget what an earlier session left here.
    fn clear(&self);
}

impl Element for Slot {
    /// A slot's seal holds 16 bits of its position: one lap must be shorter than 2^16
    /// positions for a slot of the previous lap to be told apart (and at most 2^15 keeps
    /// a zeroed slot from sealing any position of the first lap).
    const MAX_CAPACITY: u32 = 1 << 15;

    fn new() -> Self {
        Slot::new()
    }

    /// Zeroed: a reset queue's slots seal no position the new session reaches before
    /// writing them, so descriptors of the old session, whose positions restart at 0
    /// too, cannot pass for new ones.
    fn clear(&self) {
        self.store([0; 4]);
    }
}

impl Element for ByteCell {
    const MAX_CAPACITY: u32 = 1 << 31;

    fn new() -> Self {
        ByteCell::new()
    }

    /// Bytes carry no position: nothing to forget.
    fn clear(&self) {}
}

/// Where the elements start (128 in the real build; loom's atomics are bigger).
const fn elements_offset<E>() -> usize {
    size_of::<QueueHeader>().next_multiple_of(align_of::<E>())
}

const fn queue_align<E>() -> usize {
    if align_of::<QueueHeader>() > align_of::<E>() {
        align_of::<QueueHeader>()
    } else {
        align_of::<E>()
    }
}

/// Alignment a descriptor queue region needs.
pub(crate) const QUEUE_ALIGN: usize = queue_align::<Slot>();

pub(crate) fn ring_bytes<E: Element>(capacity: u32) -> Result<usize, LayoutError> {
    if capacity == 0 || !capacity.is_power_of_two() || capacity > E::MAX_CAPACITY {
        return Err(LayoutError::BadCapacity { capacity });
    }
    Ok(
        (elements_offset::<E>() + capacity as usize * size_of::<E>())
            .next_multiple_of(queue_align::<E>()),
    )
}

/// Bytes one queue of `capacity` slots occupies: header, then the slots.
pub fn queue_bytes(capacity: u32) -> Result<usize, LayoutError> {
    ring_bytes::<Slot>(capacity)
}

/// Writes a fresh, empty queue into `region`.
///
/// Zeroed memory already is an empty queue; this exists for regions that are
/// not zeroed and for the loom build, whose atomics must be constructed.
///
/// # Safety
/// Nothing else (in particular not the peer) may access the region during the
/// call.
pub unsafe fn init_queue(region: &SharedRegion, capacity: u32) -> Result<(), LayoutError> {
    // SAFETY: forwarded.
    unsafe { init_ring::<Slot>(region, capacity) }
}

/// # Safety
/// As [`init_queue`].
pub(crate) unsafe fn init_ring<E: Element>(
    region: &SharedRegion,
    capacity: u32,
) -> Result<(), LayoutError> {
    let raw = RawQueue::<E>::new(region, capacity)?;
    // SAFETY: in bounds and aligned (checked by `RawQueue::new`); exclusive
    // access is the caller's promise.
    unsafe {
        raw.hdr.write(QueueHeader::new());
        for i in 0..capacity as usize {
            raw.slots.add(i).write(E::new());
        }
    }
    Ok(())
}

pub(crate) struct RawQueue<E> {
    hdr: NonNull<QueueHeader>,
    slots: NonNull<E>,
    mask: u32,
}

impl<E: Element> RawQueue<E> {
    pub(crate) fn new(region: &SharedRegion, capacity: u32) -> Result<Self, LayoutError> {
        let base: NonNull<u8> = region.place(ring_bytes::<E>(capacity)?, queue_align::<E>())?;
        let hdr = base.cast::<QueueHeader>();
        // SAFETY: `place` checked the region holds header and elements and is
        // aligned for both; the offset is a multiple of the element alignment.
        let slots = unsafe { base.add(elements_offset::<E>()).cast::<E>() };
        Ok(Self {
            hdr,
            slots,
            mask: capacity - 1,
        })
    }

    pub(crate) fn header(&self) -> &QueueHeader {
        // SAFETY: in bounds and aligned; only atomics, so a shared reference
        // is fine even though the peer writes the memory.
        unsafe { self.hdr.as_ref() }
    }

    pub(crate) fn slot(&self, index: u32) -> &E {
        // SAFETY: masked index is below capacity; in bounds per `new`.
        unsafe { self.slots.add((index & self.mask) as usize).as_ref() }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.mask + 1
    }

    /// Survivor-only: empties the queue for a new session. Relaxed because
    /// the Release store of the survivor's `ack` publishes it.
    pub(crate) fn reset_shared(&self) {
        let h = self.header();
        h.tail.store(0, Ordering::Relaxed);
        h.head.store(0, Ordering::Relaxed);
        h.signal.store(0, Ordering::Relaxed);
        for i in 0..self.capacity() {
            self.slot(i).clear();
        }
    }
}

/// Loads and validates the consumer's `head` (producer side): it may only
/// move forward, and never past our `tail`.
pub(crate) fn observe_head(
    h: &QueueHeader,
    head_seen: u32,
    tail: u32,
    capacity: u32,
) -> Result<u32, Corruption> {
    let head = h.head.load(Ordering::Acquire);
    let moved = head.wrapping_sub(head_seen);
    if (moved as i32) < 0 {
        return Err(Corruption::IndexRegressed {
            index: Index::Head,
            previous: head_seen,
            observed: head,
        });
    }
    if moved > tail.wrapping_sub(head_seen) {
        return Err(Corruption::IndexOverrun {
            index: Index::Head,
            head,
            tail,
            capacity,
        });
    }
    Ok(head)
}

/// Loads and validates the producer's `tail` (consumer side): it may only
/// move forward, and never more than `capacity` ahead of our `head`.
pub(crate) fn observe_tail(
    h: &QueueHeader,
    tail_seen: u32,
    head: u32,
    capacity: u32,
) -> Result<u32, Corruption> {
    let tail = h.tail.load(Ordering::Acquire);
    if (tail.wrapping_sub(tail_seen) as i32) < 0 {
        return Err(Corruption::IndexRegressed {
            index: Index::Tail,
            previous: tail_seen,
            observed: tail,
        });
    }
    if tail.wrapping_sub(head) > capacity {
        return Err(Corruption::IndexOverrun {
            index: Index::Tail,
            head,
            tail,
            capacity,
        });
    }
    Ok(tail)
}

/// The producing end of a queue.
pub struct Producer {
    q: RawQueue<Slot>,
    /// Our own index; the shared copy is write-only for us.
    tail: u32,
    /// Last validated consumer `head`.
    head_seen: u32,
    _region: SharedRegion,
}

// SAFETY: all shared accesses are atomic; the handle owns its private state.
unsafe impl Send for Producer {}

impl Producer {
    /// Takes the producing end of the (empty) queue in `region`.
    pub fn new(region: SharedRegion, capacity: u32) -> Result<Self, LayoutError> {
        Self::new_at(region, capacity, 0)
    }

    /// As [`Producer::new`] for an empty queue whose shared `head` and `tail`
    /// both already equal `index` (both ends must agree). Free-running
    /// indices make any start valid; tests use it to cross the u32 wrap.
    pub fn new_at(region: SharedRegion, capacity: u32, index: u32) -> Result<Self, LayoutError> {
        Ok(Self {
            q: RawQueue::new(&region, capacity)?,
            tail: index,
            head_seen: index,
            _region: region,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.q.capacity()
    }

    fn observe_head(&mut self) -> Result<(), Corruption> {
        self.head_seen = observe_head(self.q.header(), self.head_seen, self.tail, self.capacity())?;
        Ok(())
    }

    /// Our index: where the next push goes.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// The consumer's `head`, refreshed and validated (never behind what we saw, never
    /// past our tail): everything in `[head, tail)` it has not consumed.
    pub fn consumer_head(&mut self) -> Result<u32, Corruption> {
        self.observe_head()?;
        Ok(self.head_seen)
    }

    /// Free slots, refreshing the consumer's progress.
    pub fn free(&mut self) -> Result<u32, Corruption> {
        self.observe_head()?;
        Ok(self.capacity() - self.tail.wrapping_sub(self.head_seen))
    }

    /// Writes `d` into the next slot, sealed with the slot's position
    /// ([`crate::slot_words`]), and publishes it (Release on `tail`).
    /// Follow a batch of pushes with [`Producer::signal_needed`].
    pub fn push(&mut self, d: Descriptor) -> Result<(), PushError> {
        if d.id > MAX_ID {
            return Err(PushError::IdTooLarge { id: d.id });
        }
        if self.tail.wrapping_sub(self.head_seen) >= self.capacity() {
            self.observe_head()?;
            if self.tail.wrapping_sub(self.head_seen) >= self.capacity() {
                return Err(PushError::Full);
            }
        }
        self.q.slot(self.tail).store(slot_words(d, self.tail));
        self.tail = self.tail.wrapping_add(1);
        self.q.header().tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Whether the consumer asked to be notified; if so the flag is cleared
    /// and the caller must notify it ([`Signal::Notify`]). Call after publishing.
    ///
    /// A swap, not a load: both sides update the flag with read-modify-writes,
    /// so either our swap sees the consumer's request, or the consumer's swap
    /// reads our 0 and thereby synchronises with our earlier `tail` store and
    /// its re-check sees the new entries. No store-load fence needed.
    pub fn signal_needed(&mut self) -> Signal {
        self.q.header().take_signal_request()
    }

    /// Survivor-only: empty the whole queue (both indices) for a new session.
    pub(crate) fn reset(&mut self) {
        self.q.reset_shared();
        self.tail = 0;
        self.head_seen = 0;
    }
}

/// Whether the caller must notify the peer (the library knows no kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Signal {
    /// The peer asked to be woken: send it a notification.
    Notify,
    /// The peer is not waiting; stay quiet.
    Quiet,
}

impl Signal {
    pub(crate) fn from_needed(needed: bool) -> Self {
        if needed {
            Signal::Notify
        } else {
            Signal::Quiet
        }
    }
}

/// Result of [`Consumer::prepare_wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Wait {
    /// Empty with the signal flag set: the producer will notify; block.
    Block,
    /// Entries arrived meanwhile: keep consuming, don't block.
    Retry,
}

/// The consuming end of a queue.
pub struct Consumer {
    q: RawQueue<Slot>,
    /// Our own index; the shared copy is write-only for us.
    head: u32,
    /// Last validated producer `tail`.
    tail_seen: u32,
    _region: SharedRegion,
}

// SAFETY: all shared accesses are atomic; the handle owns its private state.
unsafe impl Send for Consumer {}

impl Consumer {
    /// Takes the consuming end of the (empty) queue in `region`.
    pub fn new(region: SharedRegion, capacity: u32) -> Result<Self, LayoutError> {
        Self::new_at(region, capacity, 0)
    }

    /// See [`Producer::new_at`].
    pub fn new_at(region: SharedRegion, capacity: u32, index: u32) -> Result<Self, LayoutError> {
        Ok(Self {
            q: RawQueue::new(&region, capacity)?,
            head: index,
            tail_seen: index,
            _region: region,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.q.capacity()
    }

    fn observe_tail(&mut self) -> Result<(), Corruption> {
        self.tail_seen = observe_tail(self.q.header(), self.tail_seen, self.head, self.capacity())?;
        Ok(())
    }

    /// Entries ready to pop, refreshing the producer's progress.
    pub fn len(&mut self) -> Result<u32, Corruption> {
        self.observe_tail()?;
        Ok(self.tail_seen.wrapping_sub(self.head))
    }

    pub fn is_empty(&mut self) -> Result<bool, Corruption> {
        Ok(self.len()? == 0)
    }

    /// Nothing to pop, and the producer's `tail` still the one validated last: what
    /// [`Consumer::pop`] answers `Ok(None)` to, found with one load (a `tail` that did not
    /// move needs no validation: it passed it before). Every PD polls its links far more
    /// often than they carry anything; see [`crate::Server::poll`].
    #[inline]
    pub(crate) fn nothing_new(&self) -> bool {
        self.head == self.tail_seen
            && self.q.header().tail.load(Ordering::Acquire) == self.tail_seen
    }

    /// Takes the next descriptor; the slot goes back to the producer (Release
    /// on `head`) once it has been copied out. A slot not sealed with the
    /// position it is read at is [`Corruption::StalePosition`] (the producer's
    /// `tail` claims a slot it did not write) and is not consumed.
    pub fn pop(&mut self) -> Result<Option<Descriptor>, Corruption> {
        if self.head == self.tail_seen {
            self.observe_tail()?;
            if self.head == self.tail_seen {
                return Ok(None);
            }
        }
        let d = unseal(self.q.slot(self.head).load(), self.head)?;
        self.head = self.head.wrapping_add(1);
        self.q.header().head.store(self.head, Ordering::Release);
        Ok(Some(d))
    }

    /// Asks the producer for a notification, then re-checks the queue: an
    /// entry published before the producer could see the request would
    /// otherwise never be signalled (the lost wake-up).
    pub fn prepare_wait(&mut self) -> Result<Wait, Corruption> {
        self.q.header().request_signal();
        Ok(if self.is_empty()? {
            Wait::Block
        } else {
            Wait::Retry
        })
    }

    /// Survivor-only: empty the whole queue (both indices) for a new session.
    pub(crate) fn reset(&mut self) {
        self.q.reset_shared();
        self.head = 0;
        self.tail_seen = 0;
    }
}
