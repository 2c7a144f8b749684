//! virtio-blk (virtio 1.2 §5.2) over an asynchronous backend.
//!
//! Features: VERSION_1, BLK_SIZE, SEG_MAX, FLUSH, SIZE_MAX (when configured),
//! INDIRECT_DESC (Linux puts a multi-segment request into one ring slot) and
//! EVENT_IDX (fewer notifications and interrupts, i.e. fewer exits). Requests:
//! IN, OUT, FLUSH and GET_ID (answered here from the configured serial); every other
//! type gets UNSUPP.
//!
//! A request bound for the backend takes a slot of a fixed table and gets an id
//! (slot and sequence number, so a stale or forged id never matches a later request).
//! Requests are handed over in the order the guest made them available; when the
//! backend is full the rest wait in the table, in order. A FLUSH is handed over only
//! once every earlier write has completed, so it covers them. The guest sees a
//! request complete exactly once, when the backend completes it: completions for
//! unknown or already completed ids and completions with an undefined status are
//! ignored and counted. Requests still at the backend when the driver resets the
//! device keep their slots until the backend completes them, and their completions
//! are dropped (the guest may have reused the buffers).

use axolotl_ring::DataRegion;

use super::mem::GuestMemory;
use super::mmio::{Transport, bump};
use super::queue::{Chain, Cursor, QueueError};
use super::{F_EVENT_IDX, F_INDIRECT_DESC};
use crate::bus::{Access, DeviceError, MmioDevice};

pub const DEVICE_ID: u32 = 2;

pub const F_SIZE_MAX: u64 = 1 << 1;
pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_BLK_SIZE: u64 = 1 << 6;
pub const F_FLUSH: u64 = 1 << 9;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;

pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// `IN`/`OUT` address 512-byte sectors whatever the block size.
pub const SECTOR_SIZE: u32 = 512;
/// GET_ID's answer: the serial, padded with zeros.
pub const ID_BYTES: usize = 20;
/// QueueNumMax. 512: a chain may be as long as the queue (§2.7.5.3.1), so a queue of 512
/// lets SEG_MAX reach 256 pages, a whole 1 MiB request as Linux makes it (at 256, SEG_MAX
/// stopped at 254 and a 1 MiB `dd` block was two requests, 1016 and 8 KiB).
pub const QUEUE_MAX: u16 = 512;
/// The request table: requests taken from the ring and not yet completed. When it is full
/// the rest wait on the ring, in order (`a_full_table_leaves_requests_on_the_ring`); the
/// backend holds far fewer at once (lib/blk's 16 buffers).
const TABLE: usize = 256;
const HEADER: u32 = 16;

/// What the guest is told about the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkConfig {
    /// In 512-byte sectors.
    pub capacity: u64,
    /// The logical block size (BLK_SIZE), e.g. 512 or 4096.
    pub blk_size: u32,
    /// Segments per request (SEG_MAX); reported as at most QueueNumMax minus 2 (header
    /// and status share the chain).
    pub seg_max: u32,
    /// Bytes per segment (SIZE_MAX), if limited: with `seg_max`, it bounds a request's
    /// size to what the backend's data buffer holds.
    pub size_max: Option<u32>,
    /// GET_ID's answer.
    pub serial: [u8; ID_BYTES],
}

/// A request's operation as the backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkOp {
    Read,
    Write,
    Flush,
}

/// One request handed to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkRequest {
    /// Echoed by the completion; unique among the requests at the backend.
    pub id: u64,
    pub op: BlkOp,
    /// In 512-byte sectors (0 for a flush).
    pub sector: u64,
    /// Data bytes (a multiple of 512; 0 for a flush).
    pub len: u32,
}

/// The backend's answer to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    /// Taken; it completes later through [`VirtioBlk::complete`].
    Accepted,
    /// Full: the device offers it again (and everything after it) later.
    Busy,
    /// Never possible (e.g. larger than a data buffer): the guest gets IOERR.
    Refused,
}

/// Where a request's data is at the backend: the device copies the guest's buffers straight
/// to it (a write) or from it (a read), with no staging copy between.
#[derive(Debug)]
pub enum BlkData<'a> {
    /// The backend's own memory.
    Bytes(&'a mut [u8]),
    /// `len` bytes at `offset` of a region shared with a driver PD (lib/blk's buffers).
    Region {
        region: &'a DataRegion,
        offset: usize,
        len: usize,
    },
}

impl BlkData<'_> {
    pub fn len(&self) -> usize {
        match self {
            BlkData::Bytes(b) => b.len(),
            BlkData::Region { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The block side, e.g. a client of the blk driver PD over a ring.
///
/// Contract: every accepted request completes exactly once, through
/// [`VirtioBlk::complete`] with its id, a virtio status (0 OK, 1 IOERR, 2 UNSUPP) and,
/// for a read, the data; a backend whose driver restarts re-issues what the restart
/// lost by itself. The device checks this anyway.
pub trait BlkBackend {
    /// Takes `req` or refuses it. For a write, the backend calls `fill` once with its
    /// data buffer of exactly `req.len` bytes, which `fill` fills with the guest's
    /// data; when `fill` returns false (the guest changed the request under the
    /// device) the backend drops the request and answers [`Submit::Refused`].
    fn submit(&mut self, req: &BlkRequest, fill: &mut dyn FnMut(BlkData<'_>) -> bool) -> Submit;
}

/// A completion's data.
#[derive(Clone, Copy)]
enum Source<'a> {
    Bytes(&'a [u8]),
    Region(&'a DataRegion, usize, usize),
}

/// What became of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The guest got it.
    Done,
    /// The request was from before a reset (or the device is broken): dropped.
    Dropped,
    /// No request at the backend has this id (forged, or already completed): ignored.
    UnknownId,
    /// Not a virtio status: ignored.
    BadStatus,
}

/// Device-side counts for a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkCounters {
    pub requests: u32,
    /// Requests answered IOERR here (out of range, bad length, refused by the backend,
    /// short read data).
    pub io_errors: u32,
    pub unsupported: u32,
    pub unknown_completions: u32,
    pub bad_status_completions: u32,
    /// Completions of requests from before a reset, dropped.
    pub dropped_completions: u32,
    /// Read completions whose data was shorter than the request: IOERR to the guest.
    pub short_completions: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// In the table, not yet handed over.
    Pending,
    /// At the backend.
    Submitted,
    /// At the backend, but from before a reset: its completion is dropped.
    Orphaned,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: State,
    id: u64,
    chain: Option<Chain>,
    op: BlkOp,
    sector: u64,
    len: u32,
}

const FREE: Slot = Slot {
    state: State::Free,
    id: 0,
    chain: None,
    op: BlkOp::Flush,
    sector: 0,
    len: 0,
};

pub struct VirtioBlk {
    pub transport: Transport<1>,
    config: BlkConfig,
    slots: [Slot; TABLE],
    free: [u16; TABLE],
    nfree: usize,
    /// One past the highest slot ever taken: the free list is a stack that starts at slot
    /// 0, so a few requests in flight keep to the first few slots, and the scan of every
    /// commit ([`VirtioBlk::save`]) stops here instead of at `TABLE`.
    used_top: usize,
    /// Slots waiting to be handed over, oldest first (a ring).
    pending: [u16; TABLE],
    pending_head: usize,
    pending_len: usize,
    /// Writes at the backend not completed yet (including orphaned ones).
    writes_outstanding: usize,
    next_seq: u64,
    epoch: u32,
    pub counters: BlkCounters,
}

impl VirtioBlk {
    /// `ram`: guest RAM `(base, size)`.
    pub fn new(config: BlkConfig, ram: (u64, u64)) -> Self {
        let mut features = F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_INDIRECT_DESC | F_EVENT_IDX;
        if config.size_max.is_some() {
            features |= F_SIZE_MAX;
        }
        let transport = Transport::new(DEVICE_ID, features, QUEUE_MAX, ram);
        let mut free = [0u16; TABLE];
        for (i, f) in free.iter_mut().enumerate() {
            *f = (TABLE - 1 - i) as u16;
        }
        Self {
            epoch: transport.epoch(),
            transport,
            config,
            slots: [FREE; TABLE],
            free,
            nfree: TABLE,
            used_top: 0,
            pending: [0; TABLE],
            pending_head: 0,
            pending_len: 0,
            writes_outstanding: 0,
            next_seq: 0,
            counters: BlkCounters::default(),
        }
    }

    pub fn irq_level(&self) -> bool {
        self.transport.irq_level()
    }

    /// Requests in the table (waiting or at the backend, orphans included).
    pub fn in_flight(&self) -> usize {
        TABLE - self.nfree
    }

    /// The configuration space (struct virtio_blk_config up to `blk_size`).
    fn config_bytes(&self) -> [u8; 24] {
        let c = &self.config;
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&c.capacity.to_le_bytes());
        b[8..12].copy_from_slice(&c.size_max.unwrap_or(0).to_le_bytes());
        // A request is header + segments + status in one chain, and a chain may not be
        // longer than the queue (§2.7.5.3.1; the device refuses longer ones).
        let seg_max = c.seg_max.clamp(1, u32::from(QUEUE_MAX) - 2);
        b[12..16].copy_from_slice(&seg_max.to_le_bytes());
        // 16..20: geometry, not offered.
        b[20..24].copy_from_slice(&c.blk_size.to_le_bytes());
        b
    }

    /// The driver reset the device or stopped the queue: forget what waits, keep the
    /// slots of what the backend holds until it completes.
    fn on_reset(&mut self) {
        self.epoch = self.transport.epoch();
        while let Some(s) = self.pending_pop() {
            self.release(s);
        }
        for s in &mut self.slots {
            if s.state == State::Submitted {
                s.state = State::Orphaned;
            }
        }
    }

    fn pending_pop(&mut self) -> Option<usize> {
        if self.pending_len == 0 {
            return None;
        }
        let s = self.pending[self.pending_head];
        self.pending_head = (self.pending_head + 1) % TABLE;
        self.pending_len -= 1;
        Some(s.into())
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot] = FREE;
        self.free[self.nfree] = slot as u16;
        self.nfree += 1;
    }

    fn error(&mut self, e: QueueError) {
        self.transport.device_error(e);
    }

    /// Writes the status byte (the last writable byte) and gives the chain back to the
    /// driver with `written` data bytes plus the status.
    fn finish<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        chain: &Chain,
        status: u8,
        written: u32,
    ) {
        self.finish_with(mem, chain, &mut chain.cursor(), status, written);
    }

    /// [`Self::finish`] with the status written from where `cur` stands in the chain's
    /// writable part (after the data just written).
    fn finish_with<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        chain: &Chain,
        cur: &mut Cursor,
        status: u8,
        written: u32,
    ) {
        match status {
            S_IOERR => bump(&mut self.counters.io_errors),
            S_UNSUPP => bump(&mut self.counters.unsupported),
            _ => {}
        }
        let r = chain
            .write_with(mem, cur, chain.writable - 1, &[status])
            .and_then(|()| self.transport.queues[0].push_used(mem, chain.head, written + 1));
        if let Err(e) = r {
            self.error(e);
        }
    }

    /// Takes new requests, hands waiting ones to the backend and raises the interrupt
    /// if the driver wants one. Call it after a QueueNotify, after completions and when
    /// the backend has room again.
    pub fn process<M: GuestMemory + ?Sized, B: BlkBackend + ?Sized>(
        &mut self,
        mem: &mut M,
        backend: &mut B,
    ) {
        self.transport.take_notified();
        if !self.transport.live() {
            return;
        }
        while self.transport.live() {
            let chain = match self.transport.queues[0].pop(mem) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    self.error(e);
                    break;
                }
            };
            if !self.take(mem, chain) {
                self.transport.queues[0].unpop();
                break;
            }
        }
        self.submit(mem, backend);
        self.notify(mem);
    }

    fn notify<M: GuestMemory + ?Sized>(&mut self, mem: &M) {
        if !self.transport.live() {
            return;
        }
        match self.transport.queues[0].should_notify(mem) {
            Ok(true) => self.transport.interrupt_used(),
            Ok(false) => {}
            Err(e) => self.error(e),
        }
    }

    /// One new request: answered here, or put in the table. False: the table is full.
    fn take<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, chain: Chain) -> bool {
        if chain.readable < HEADER || chain.writable < 1 {
            self.error(QueueError::MissingHeader);
            return true;
        }
        let mut h = [0u8; HEADER as usize];
        if let Err(e) = chain.read(&*mem, 0, &mut h) {
            self.error(e);
            return true;
        }
        let kind = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let sector = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        let (op, len) = match kind {
            T_IN => (BlkOp::Read, chain.writable - 1),
            T_OUT => (BlkOp::Write, chain.readable - HEADER),
            T_FLUSH => (BlkOp::Flush, 0),
            T_GET_ID => {
                bump(&mut self.counters.requests);
                let n = (chain.writable - 1).min(ID_BYTES as u32);
                let serial = self.config.serial;
                match chain.write(mem, 0, &serial[..n as usize]) {
                    Ok(()) => self.finish(mem, &chain, S_OK, n),
                    Err(e) => self.error(e),
                }
                return true;
            }
            _ => {
                bump(&mut self.counters.requests);
                self.finish(mem, &chain, S_UNSUPP, 0);
                return true;
            }
        };
        if op != BlkOp::Flush {
            let sectors = u64::from(len / SECTOR_SIZE);
            let in_range = sector
                .checked_add(sectors)
                .is_some_and(|end| end <= self.config.capacity);
            if len == 0 || !len.is_multiple_of(SECTOR_SIZE) || !in_range {
                bump(&mut self.counters.requests);
                self.finish(mem, &chain, S_IOERR, 0);
                return true;
            }
        }
        if self.nfree == 0 || self.pending_len == TABLE {
            return false;
        }
        bump(&mut self.counters.requests);
        self.nfree -= 1;
        let slot = usize::from(self.free[self.nfree]);
        self.used_top = self.used_top.max(slot + 1);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1) & 0xFFFF_FFFF_FFFF;
        self.slots[slot] = Slot {
            state: State::Pending,
            id: (seq << 16) | slot as u64,
            chain: Some(chain),
            op,
            sector: if op == BlkOp::Flush { 0 } else { sector },
            len,
        };
        self.pending[(self.pending_head + self.pending_len) % TABLE] = slot as u16;
        self.pending_len += 1;
        true
    }

    /// Hands waiting requests over, oldest first, until the backend is full or a flush
    /// must wait for earlier writes.
    fn submit<M: GuestMemory + ?Sized, B: BlkBackend + ?Sized>(
        &mut self,
        mem: &mut M,
        backend: &mut B,
    ) {
        while self.pending_len > 0 && self.transport.live() {
            let slot = usize::from(self.pending[self.pending_head]);
            let s = self.slots[slot];
            if s.op == BlkOp::Flush && self.writes_outstanding > 0 {
                break;
            }
            let Some(chain) = s.chain else {
                // Pending slots always hold their chain; drop it rather than trust that.
                self.pending_pop();
                self.release(slot);
                continue;
            };
            let req = BlkRequest {
                id: s.id,
                op: s.op,
                sector: s.sector,
                len: s.len,
            };
            let mut copied = true;
            let answer = {
                let m = &*mem;
                let mut fill = |buf: BlkData<'_>| {
                    copied = s.op == BlkOp::Write
                        && buf.len() == s.len as usize
                        && match buf {
                            BlkData::Bytes(b) => chain.read(m, HEADER, b).is_ok(),
                            BlkData::Region {
                                region,
                                offset,
                                len,
                            } => chain.read_to_region(m, HEADER, region, offset, len).is_ok(),
                        };
                    copied
                };
                backend.submit(&req, &mut fill)
            };
            match answer {
                Submit::Busy => break,
                Submit::Refused => {
                    self.pending_pop();
                    self.release(slot);
                    if s.op == BlkOp::Write && !copied {
                        self.error(QueueError::ChainChanged);
                    } else {
                        self.finish(mem, &chain, S_IOERR, 0);
                    }
                }
                Submit::Accepted => {
                    self.pending_pop();
                    if s.op == BlkOp::Write {
                        self.writes_outstanding += 1;
                    }
                    self.slots[slot].state = State::Submitted;
                    if s.op == BlkOp::Write && !copied {
                        // The backend took a write whose data it did not get: it must
                        // not reach the guest as done.
                        self.slots[slot].state = State::Orphaned;
                        self.error(QueueError::ChainChanged);
                    }
                }
            }
        }
    }

    /// The backend completed request `id` with virtio status `status` and, for a read,
    /// `data`. Call [`process`](Self::process) after a batch of completions: a flush
    /// may have been waiting for them.
    pub fn complete<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        id: u64,
        status: u8,
        data: &[u8],
    ) -> Completion {
        self.complete_from(mem, id, status, Source::Bytes(data))
    }

    /// [`complete`](Self::complete) with a read's data in a region shared with a driver
    /// PD (`len` bytes at `offset`; fewer than the request's is the short-data case):
    /// copied straight into the guest's buffers.
    pub fn complete_from_region<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        id: u64,
        status: u8,
        region: &DataRegion,
        offset: usize,
        len: usize,
    ) -> Completion {
        self.complete_from(mem, id, status, Source::Region(region, offset, len))
    }

    fn complete_from<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        id: u64,
        status: u8,
        data: Source<'_>,
    ) -> Completion {
        let slot = (id & 0xFFFF) as usize;
        let s = match self.slots.get(slot) {
            Some(s) if matches!(s.state, State::Submitted | State::Orphaned) && s.id == id => *s,
            _ => {
                bump(&mut self.counters.unknown_completions);
                return Completion::UnknownId;
            }
        };
        if status > S_UNSUPP {
            bump(&mut self.counters.bad_status_completions);
            return Completion::BadStatus;
        }
        if s.op == BlkOp::Write {
            self.writes_outstanding = self.writes_outstanding.saturating_sub(1);
        }
        self.release(slot);
        let Some(chain) = s.chain else {
            return Completion::Dropped;
        };
        if s.state == State::Orphaned || !self.transport.live() {
            bump(&mut self.counters.dropped_completions);
            return Completion::Dropped;
        }
        let mut status = status;
        let mut written = 0;
        // One walk of the chain for the data and the status after it: a 1 MiB read has 257
        // writable descriptors, walked once (and checked) instead of twice.
        let mut cur = chain.cursor();
        if s.op == BlkOp::Read && status == S_OK {
            let want = s.len as usize;
            let r = match data {
                Source::Bytes(d) => d.get(..want).map(|d| chain.write_with(mem, &mut cur, 0, d)),
                // A range outside the region is short data too (IOERR), not a device error.
                Source::Region(region, offset, len) => (len >= want
                    && region.contains(offset, want))
                .then(|| chain.write_from_region_with(mem, &mut cur, 0, region, offset, want)),
            };
            match r {
                Some(Ok(())) => written = s.len,
                Some(Err(e)) => {
                    self.error(e);
                    return Completion::Done;
                }
                None => {
                    bump(&mut self.counters.short_completions);
                    status = S_IOERR;
                }
            }
        }
        self.finish_with(mem, &chain, &mut cur, status, written);
        self.notify(mem);
        Completion::Done
    }
}

impl MmioDevice for VirtioBlk {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError> {
        let config = self.config_bytes();
        Ok(self.transport.read(a, &config))
    }

    fn write(&mut self, a: Access, value: u64) -> Result<(), DeviceError> {
        self.transport.write(a, value);
        if self.transport.epoch() != self.epoch {
            self.on_reset();
        }
        Ok(())
    }
}

#[path = "blk_state.rs"]
mod state;
pub use state::BlkState;

#[cfg(test)]
#[path = "blk_tests.rs"]
pub(crate) mod tests;
