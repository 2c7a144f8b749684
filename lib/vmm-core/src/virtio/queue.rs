//! Split virtqueues (virtio 1.2 §2.7), the device side: descriptor chains (NEXT,
//! WRITE, INDIRECT), the available and used rings and notification suppression
//! (`VIRTQ_AVAIL_F_NO_INTERRUPT`, or `used_event`/`avail_event` with EVENT_IDX).
//!
//! The rings live in guest RAM and the guest may write anything there at any time, so
//! every value read from them is checked before it is used, and a chain is walked
//! again (and checked again) whenever its data is copied: the device keeps no view of
//! guest memory it validated earlier. A violation is a [`QueueError`], for which the
//! transport sets DEVICE_NEEDS_RESET (what QEMU's `virtio_error` does).

use axolotl_net::check::PieceSummer;
use axolotl_ring::DataRegion;

use super::mem::{GuestMemory, MemError};

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;
/// `avail.flags`: the driver asks for no used-buffer notifications.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

const DESC_SIZE: u64 = 16;

/// What the guest got wrong in a virtqueue. Each is a driver bug the spec forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// QueueNum is 0, not a power of two, or above QueueNumMax.
    BadSize(u32),
    /// A ring address is not aligned as §2.7 requires (16/2/4).
    Misaligned(u64),
    /// A ring, descriptor table or buffer lies (partly) outside guest RAM.
    OutsideRam { addr: u64, len: u64 },
    /// `avail.idx` moved more than the queue size past what the device consumed.
    AvailIndexJump { consumed: u16, idx: u16 },
    /// An available head or a `next` index beyond the (indirect) table.
    IndexOutOfRange(u32),
    /// More descriptors than the queue size: a loop, or simply too long.
    ChainTooLong,
    /// A descriptor of length 0 (QEMU refuses them too).
    ZeroLength,
    /// The chain's readable or writable total exceeds 4 GiB.
    LengthOverflow,
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// INDIRECT without VIRTIO_F_INDIRECT_DESC, not on the head, inside an indirect
    /// table, together with NEXT, or a table whose size is not a non-zero multiple of 16.
    BadIndirect,
    /// The chain changed between the device's walks (a copy ran past its end).
    ChainChanged,
    /// A request or frame without the header its device type requires (a block
    /// request shorter than 16 readable bytes or without a status byte).
    MissingHeader,
}

/// One buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u32,
    /// Device-writable.
    pub write: bool,
}

/// A validated descriptor chain: where it starts and what it holds. The descriptors
/// stay in guest memory and are re-read (and re-checked) by every copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// The head index, which goes back to the guest in the used ring.
    pub head: u16,
    /// Bytes the device may read (the readable descriptors come first).
    pub readable: u32,
    /// Bytes the device may write.
    pub writable: u32,
    desc: u64,
    size: u16,
    indirect_ok: bool,
}

/// Where a walk of one part of a chain (readable or writable: a cursor serves one) stands
/// ([`Chain::cursor`]): the descriptor it is in, checked, and the position of that
/// descriptor's first byte in its part.
#[derive(Debug, Clone)]
pub struct Cursor {
    walker: Walker,
    start: u64,
    seg: Option<Segment>,
}

impl Cursor {
    /// Back to the head of `chain` if `offset` lies before the descriptor the cursor is in.
    fn rewind_for(&mut self, chain: &Chain, offset: u32) {
        if u64::from(offset) < self.start {
            *self = chain.cursor();
        }
    }

    /// The next piece of the cursor's part (the writable one if `write`) from byte `from`
    /// on, at most `left` bytes: its guest-physical address and length; `None` where the
    /// part ends. Descriptors are read (and checked) through `mem` as the walk reaches them.
    fn piece<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        write: bool,
        from: u64,
        left: usize,
    ) -> Result<Option<(u64, usize)>, QueueError> {
        loop {
            let s = match self.seg {
                Some(s) => s,
                None => match self.walker.next(mem) {
                    None => return Ok(None),
                    Some(s) => *self.seg.insert(s?),
                },
            };
            if s.write != write {
                if write {
                    // The readable descriptors before the writable part.
                    self.seg = None;
                    continue;
                }
                return Ok(None);
            }
            let end = self.start + u64::from(s.len);
            if from >= end {
                self.start = end;
                self.seg = None;
                continue;
            }
            let n = ((end - from) as usize).min(left);
            return Ok(Some((s.addr + (from - self.start), n)));
        }
    }
}

/// Walks a chain one segment at a time, checking every descriptor.
#[derive(Debug, Clone)]
struct Walker {
    table: u64,
    entries: u32,
    next: Option<u32>,
    count: u32,
    limit: u32,
    in_indirect: bool,
    indirect_ok: bool,
    seen_write: bool,
}

impl Walker {
    fn new(c: &Chain) -> Self {
        Self {
            table: c.desc,
            entries: c.size.into(),
            next: Some(c.head.into()),
            count: 0,
            limit: c.size.into(),
            in_indirect: false,
            indirect_ok: c.indirect_ok,
            seen_write: false,
        }
    }

    fn next<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Option<Result<Segment, QueueError>> {
        let r = self.step(mem).transpose();
        if matches!(r, Some(Err(_))) {
            self.next = None;
        }
        r
    }

    fn step<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<Option<Segment>, QueueError> {
        loop {
            let Some(i) = self.next else {
                return Ok(None);
            };
            if i >= self.entries {
                return Err(QueueError::IndexOutOfRange(i));
            }
            let at = self.table + DESC_SIZE * u64::from(i);
            let [addr, rest] = mem.read_u64_pair(at).map_err(|_| QueueError::OutsideRam {
                addr: at,
                len: DESC_SIZE,
            })?;
            // le32 len, le16 flags, le16 next.
            let (len, flags, next) = (rest as u32, (rest >> 32) as u16, (rest >> 48) as u16);
            if flags & DESC_F_INDIRECT != 0 {
                // Only the head may point to a table (as QEMU and Linux do), and a table
                // never points to another (§2.7.5.3.1).
                if !self.indirect_ok
                    || self.in_indirect
                    || self.count != 0
                    || flags & DESC_F_NEXT != 0
                    || len == 0
                    || !u64::from(len).is_multiple_of(DESC_SIZE)
                {
                    return Err(QueueError::BadIndirect);
                }
                if !mem.contains(addr, len.into()) {
                    return Err(QueueError::OutsideRam {
                        addr,
                        len: len.into(),
                    });
                }
                self.table = addr;
                self.entries = len / DESC_SIZE as u32;
                self.next = Some(0);
                self.in_indirect = true;
                continue;
            }
            self.count += 1;
            if self.count > self.limit {
                return Err(QueueError::ChainTooLong);
            }
            if len == 0 {
                return Err(QueueError::ZeroLength);
            }
            if !mem.contains(addr, len.into()) {
                return Err(QueueError::OutsideRam {
                    addr,
                    len: len.into(),
                });
            }
            let write = flags & DESC_F_WRITE != 0;
            if !write && self.seen_write {
                return Err(QueueError::ReadableAfterWritable);
            }
            self.seen_write |= write;
            self.next = (flags & DESC_F_NEXT != 0).then_some(next.into());
            return Ok(Some(Segment { addr, len, write }));
        }
    }
}

impl Chain {
    /// Calls `f` for each segment, in order, checking the chain again.
    pub fn segments<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        mut f: impl FnMut(Segment),
    ) -> Result<(), QueueError> {
        let mut w = Walker::new(self);
        while let Some(s) = w.next(mem) {
            f(s?);
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes of the readable part, from byte `offset` on.
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), QueueError> {
        self.walk_readable(mem, offset, buf.len(), |gpa, done, n| {
            mem.read(gpa, &mut buf[done..done + n])
        })
    }

    /// Copies `len` bytes of the readable part, from byte `offset` on, into `region` at
    /// `at`: straight from guest RAM into a driver connection's buffer.
    pub fn read_to_region<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u32,
        region: &DataRegion,
        at: usize,
        len: usize,
    ) -> Result<(), QueueError> {
        self.walk_readable(mem, offset, len, |gpa, done, n| {
            mem.read_to_region(gpa, region, at + done, n)
        })
    }

    /// [`Chain::read_to_region`] of a piece at or after the last one `cur` read: the walk
    /// goes on from the descriptor that piece ended in instead of from the head (a TSO
    /// packet's segments, read in order: a long chain is walked once, not once a segment).
    /// Each descriptor is still read and checked once; an `offset` before `cur`'s descriptor
    /// starts the walk again.
    pub fn read_to_region_with<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        cur: &mut Cursor,
        offset: u32,
        region: &DataRegion,
        at: usize,
        len: usize,
    ) -> Result<(), QueueError> {
        self.walk_readable_with(mem, cur, offset, len, |gpa, done, n| {
            mem.read_to_region(gpa, region, at + done, n)
        })
    }

    /// [`Chain::read_to_region_with`] folding the bytes, as stored in the region, into a
    /// frame's check (`GuestMemory::read_to_region_summed`).
    #[allow(clippy::too_many_arguments)]
    pub fn read_to_region_summed_with<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        cur: &mut Cursor,
        offset: u32,
        region: &DataRegion,
        at: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), QueueError> {
        self.walk_readable_with(mem, cur, offset, len, |gpa, done, n| {
            mem.read_to_region_summed(gpa, region, at + done, n, sum)
        })
    }

    /// A walk of the readable part from its start, for [`Chain::read_to_region_with`].
    pub fn cursor(&self) -> Cursor {
        Cursor {
            walker: Walker::new(self),
            start: 0,
            seg: None,
        }
    }

    /// Calls `f(gpa, done, n)` for each piece of the `len` readable bytes from `offset`.
    fn walk_readable<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u32,
        len: usize,
        f: impl FnMut(u64, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), QueueError> {
        self.walk_readable_with(mem, &mut self.cursor(), offset, len, f)
    }

    /// [`Chain::walk_readable`] from where `cur` stands (from the head again if `offset` lies
    /// before it), leaving `cur` in the descriptor the piece ended in.
    fn walk_readable_with<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        cur: &mut Cursor,
        offset: u32,
        len: usize,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), QueueError> {
        cur.rewind_for(self, offset);
        let mut done = 0usize;
        while done < len {
            let from = u64::from(offset) + done as u64;
            let Some((gpa, n)) = cur.piece(mem, false, from, len - done)? else {
                break;
            };
            f(gpa, done, n).map_err(|_| QueueError::ChainChanged)?;
            done += n;
        }
        if done == len {
            Ok(())
        } else {
            Err(QueueError::ChainChanged)
        }
    }

    /// Copies `data` into the writable part, from byte `offset` of it on.
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        offset: u32,
        data: &[u8],
    ) -> Result<(), QueueError> {
        self.walk_writable(mem, offset, data.len(), |mem, gpa, done, n| {
            mem.write(gpa, &data[done..done + n])
        })
    }

    /// [`Chain::write`] from where `cur` stands in the writable part (a request's status
    /// after its data: no walk from the head again).
    pub fn write_with<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        cur: &mut Cursor,
        offset: u32,
        data: &[u8],
    ) -> Result<(), QueueError> {
        self.walk_writable_with(mem, cur, offset, data.len(), |mem, gpa, done, n| {
            mem.write(gpa, &data[done..done + n])
        })
    }

    /// [`Chain::write_from_region`] from where `cur` stands in the writable part, leaving it
    /// where the copy ended.
    pub fn write_from_region_with<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        cur: &mut Cursor,
        offset: u32,
        region: &DataRegion,
        at: usize,
        len: usize,
    ) -> Result<(), QueueError> {
        self.walk_writable_with(mem, cur, offset, len, |mem, gpa, done, n| {
            mem.write_from_region(gpa, region, at + done, n)
        })
    }

    /// Copies `len` bytes of `region` at `at` into the writable part, from byte `offset`
    /// of it on: straight from a driver connection's buffer into guest RAM.
    pub fn write_from_region<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        offset: u32,
        region: &DataRegion,
        at: usize,
        len: usize,
    ) -> Result<(), QueueError> {
        self.walk_writable(mem, offset, len, |mem, gpa, done, n| {
            mem.write_from_region(gpa, region, at + done, n)
        })
    }

    /// [`Chain::write_from_region`] of a received frame's next `len` bytes, folded into its
    /// check as stored and read back (`sum`: a frame over several chains carries it from
    /// one to the next).
    pub fn write_from_region_summed<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        offset: u32,
        region: &DataRegion,
        at: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), QueueError> {
        self.walk_writable(mem, offset, len, |mem, gpa, done, n| {
            mem.write_from_region_summed(gpa, region, at + done, n, sum)
        })
    }

    /// Calls `f(mem, gpa, done, n)` for each piece of `len` writable bytes from `offset`.
    fn walk_writable<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        offset: u32,
        len: usize,
        f: impl FnMut(&mut M, u64, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), QueueError> {
        self.walk_writable_with(mem, &mut self.cursor(), offset, len, f)
    }

    /// [`Chain::walk_writable`] from where `cur` stands, as [`Chain::walk_readable_with`]:
    /// the readable descriptors before the writable ones are passed over, not counted.
    fn walk_writable_with<M: GuestMemory + ?Sized>(
        &self,
        mem: &mut M,
        cur: &mut Cursor,
        offset: u32,
        len: usize,
        mut f: impl FnMut(&mut M, u64, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), QueueError> {
        cur.rewind_for(self, offset);
        let mut done = 0usize;
        while done < len {
            let from = u64::from(offset) + done as u64;
            let Some((gpa, n)) = cur.piece(&*mem, true, from, len - done)? else {
                break;
            };
            f(mem, gpa, done, n).map_err(|_| QueueError::ChainChanged)?;
            done += n;
        }
        if done == len {
            Ok(())
        } else {
            Err(QueueError::ChainChanged)
        }
    }
}

/// One virtqueue's registers (as the driver configured it through the transport) and
/// the device's position in its rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    /// QueueNumMax.
    pub max: u16,
    /// QueueNum as written (checked when the queue is made ready).
    pub num: u32,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    size: u16,
    next_avail: u16,
    next_used: u16,
    /// `next_used` when the device last decided whether to notify.
    signalled: u16,
    event_idx: bool,
    indirect: bool,
}

impl Queue {
    pub const fn new(max: u16) -> Self {
        Self {
            max,
            num: max as u32,
            ready: false,
            desc: 0,
            avail: 0,
            used: 0,
            size: 0,
            next_avail: 0,
            next_used: 0,
            signalled: 0,
            event_idx: false,
            indirect: false,
        }
    }

    /// Back to the reset state (QueueNum defaults to the maximum, as in QEMU).
    pub fn reset(&mut self) {
        *self = Self::new(self.max);
    }

    /// The queue size in use once ready.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Checks the configuration the driver wrote and starts the queue at index 0.
    /// `contains` says whether a guest-physical range is RAM.
    pub fn enable(
        &mut self,
        features: u64,
        contains: impl Fn(u64, u64) -> bool,
    ) -> Result<(), QueueError> {
        self.check_rings(features, contains)?;
        let n = self.num;
        self.size = n as u16;
        self.next_avail = 0;
        self.next_used = 0;
        self.signalled = 0;
        self.event_idx = features & super::F_EVENT_IDX != 0;
        self.indirect = features & super::F_INDIRECT_DESC != 0;
        self.ready = true;
        Ok(())
    }

    /// QueueNum and the three rings as `enable` requires them.
    fn check_rings(
        &self,
        features: u64,
        contains: impl Fn(u64, u64) -> bool,
    ) -> Result<(), QueueError> {
        let n = self.num;
        if n == 0 || !n.is_power_of_two() || n > u32::from(self.max) {
            return Err(QueueError::BadSize(n));
        }
        let event = u64::from(features & super::F_EVENT_IDX != 0) * 2;
        let n64 = u64::from(n);
        for (addr, align, len) in [
            (self.desc, 16, DESC_SIZE * n64),
            (self.avail, 2, 4 + 2 * n64 + event),
            (self.used, 4, 4 + 8 * n64 + event),
        ] {
            if !addr.is_multiple_of(align) {
                return Err(QueueError::Misaligned(addr));
            }
            if !contains(addr, len) {
                return Err(QueueError::OutsideRam { addr, len });
            }
        }
        Ok(())
    }

    /// For the state region: this queue's registers and ring positions.
    pub fn save(&self) -> super::QueueState {
        super::QueueState {
            num: self.num,
            ready: self.ready,
            desc: self.desc,
            avail: self.avail,
            used: self.used,
            size: self.size,
            next_avail: self.next_avail,
            next_used: self.next_used,
            signalled: self.signalled,
            event_idx: self.event_idx,
            indirect: self.indirect,
        }
    }

    /// Takes on `st` if this queue's interface could have produced it under the negotiated
    /// `features` (`negotiated`: FEATURES_OK set) with the rings in guest RAM (`contains`);
    /// false (and nothing changed) if not.
    #[must_use]
    pub fn restore(
        &mut self,
        st: &super::QueueState,
        negotiated: bool,
        features: u64,
        contains: impl Fn(u64, u64) -> bool,
    ) -> bool {
        let mut q = Queue::new(self.max);
        q.num = st.num;
        q.ready = st.ready;
        q.desc = st.desc;
        q.avail = st.avail;
        q.used = st.used;
        q.size = st.size;
        q.next_avail = st.next_avail;
        q.next_used = st.next_used;
        q.signalled = st.signalled;
        q.event_idx = st.event_idx;
        q.indirect = st.indirect;
        if st.size > self.max {
            return false;
        }
        if st.ready {
            // What `enable` checked and set, and no more chains taken than the ring holds.
            if q.check_rings(features, contains).is_err() {
                return false;
            }
            if !negotiated
                || u32::from(st.size) != st.num
                || st.event_idx != (features & super::F_EVENT_IDX != 0)
                || st.indirect != (features & super::F_INDIRECT_DESC != 0)
                || st.next_avail.wrapping_sub(st.next_used) > st.size
            {
                return false;
            }
        }
        *self = q;
        true
    }

    /// After a VMM restart: completions the dead VMM wrote to the used ring after its last
    /// commit are taken from there (guest memory is the truth of what the driver was
    /// told): `completed(head)` for each, and `next_used` catches up. The dead VMM may have
    /// taken chains after its commit and completed them too, so the bound is what the
    /// guest made available, not the committed `next_avail`: `next_used` may end up past
    /// `next_avail`, which the caller settles (in-order devices rewind `next_avail` to it,
    /// `VirtioBlk::restore` finds the chains taken after the commit). Refused (the queue is
    /// broken) if the ring claims more than the guest made available.
    pub fn sync_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        mut completed: impl FnMut(u16),
    ) -> Result<u16, QueueError> {
        if !self.ready {
            return Ok(0);
        }
        let idx = mem
            .read_u16(self.used + 2)
            .map_err(|_| self.ring_err(self.used + 2, 2))?;
        let n = idx.wrapping_sub(self.next_used);
        let made = self.guest_avail_idx(mem)?.wrapping_sub(self.next_used);
        if n > made || made > self.size {
            return Err(QueueError::AvailIndexJump {
                consumed: self.next_used,
                idx,
            });
        }
        for k in 0..n {
            let at = self.used + 4 + 8 * u64::from(self.next_used.wrapping_add(k) % self.size);
            let id = mem.read_u16(at).map_err(|_| self.ring_err(at, 2))?;
            completed(id);
        }
        self.next_used = idx;
        Ok(n)
    }

    /// The available index as the guest wrote it (unchecked).
    fn guest_avail_idx<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<u16, QueueError> {
        mem.read_u16(self.avail + 2)
            .map_err(|_| self.ring_err(self.avail + 2, 2))
    }

    /// After a VMM restart: the heads the guest made available from `next_avail` on, in
    /// ring order (`each(head)`), at most the queue size; how many.
    pub fn available_heads<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        mut each: impl FnMut(u16),
    ) -> Result<u16, QueueError> {
        if !self.ready {
            return Ok(0);
        }
        let idx = self.guest_avail_idx(mem)?;
        let n = idx.wrapping_sub(self.next_avail);
        if n > self.size {
            return Err(QueueError::AvailIndexJump {
                consumed: self.next_avail,
                idx,
            });
        }
        for k in 0..n {
            let at = self.avail + 4 + 2 * u64::from(self.next_avail.wrapping_add(k) % self.size);
            each(mem.read_u16(at).map_err(|_| self.ring_err(at, 2))?);
        }
        Ok(n)
    }

    /// After a VMM restart: the dead VMM had taken `n` more chains than its commit says
    /// (`VirtioBlk::restore` re-takes them itself).
    pub(crate) fn advance_avail(&mut self, n: u16) {
        self.next_avail = self.next_avail.wrapping_add(n);
    }

    /// Chains the device has taken and not completed (after a restart's `sync_used`, what
    /// the caller still has to account for).
    pub fn in_flight(&self) -> u16 {
        self.next_avail.wrapping_sub(self.next_used)
    }

    /// Chains the driver made available and the device has not taken, for a device about
    /// to take that many: with EVENT_IDX, none makes the driver notify on its next
    /// addition (as `pop` on an empty ring does), so a device that waits for room hears of
    /// it. A broken ring counts as none.
    pub fn room<M: GuestMemory + ?Sized>(&mut self, mem: &mut M) -> u16 {
        if !self.ready {
            return 0;
        }
        match self.pending(&*mem) {
            Ok(0) if self.event_idx => {
                let at = self.used + 4 + 8 * u64::from(self.size);
                if mem.write_u16(at, self.next_avail).is_err() {
                    return 0;
                }
                mem.barrier();
                self.pending(&*mem).unwrap_or(0)
            }
            Ok(n) => n,
            Err(_) => 0,
        }
    }

    /// After a VMM restart, for a device that completes chains in the order it takes them
    /// (`VirtioNet`; not `VirtioBlk`, see `VirtioBlk::restore`): the used ring caught up
    /// ([`Queue::sync_used`]), the chains taken and not completed are taken again, and so
    /// re-issued to the backend. Returns how many.
    pub fn reissue_in_flight<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<u16, QueueError> {
        self.sync_used(mem, |_| {})?;
        // Past `next_avail` when the dead VMM took and completed chains after its commit.
        let n = self.next_avail.wrapping_sub(self.next_used);
        self.next_avail = self.next_used;
        Ok(if n > self.size { 0 } else { n })
    }

    fn ring_err(&self, addr: u64, len: u64) -> QueueError {
        QueueError::OutsideRam { addr, len }
    }

    fn avail_idx<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<u16, QueueError> {
        let idx = mem
            .read_u16(self.avail + 2)
            .map_err(|_| self.ring_err(self.avail + 2, 2))?;
        if idx.wrapping_sub(self.next_avail) > self.size {
            return Err(QueueError::AvailIndexJump {
                consumed: self.next_avail,
                idx,
            });
        }
        Ok(idx)
    }

    /// Chains the driver made available and the device has not taken yet.
    pub fn pending<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<u16, QueueError> {
        if !self.ready {
            return Ok(0);
        }
        Ok(self.avail_idx(mem)?.wrapping_sub(self.next_avail))
    }

    /// Takes the next available chain, checked. With EVENT_IDX, an empty ring first
    /// asks the driver (`avail_event`) to notify on its next addition, then looks again,
    /// so an addition racing with this is never missed.
    pub fn pop<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Option<Chain>, QueueError> {
        if !self.ready {
            return Ok(None);
        }
        let mut idx = self.avail_idx(&*mem)?;
        if idx == self.next_avail {
            if !self.event_idx {
                return Ok(None);
            }
            let at = self.used + 4 + 8 * u64::from(self.size);
            mem.write_u16(at, self.next_avail)
                .map_err(|_| self.ring_err(at, 2))?;
            mem.barrier();
            idx = self.avail_idx(&*mem)?;
            if idx == self.next_avail {
                return Ok(None);
            }
        }
        // The ring entry is read only after the index that published it.
        mem.barrier();
        let at = self.avail + 4 + 2 * u64::from(self.next_avail % self.size);
        let head = mem.read_u16(at).map_err(|_| self.ring_err(at, 2))?;
        let chain = self.chain_at(&*mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// The chain starting at descriptor `head`, walked and checked as [`Queue::pop`] does:
    /// also how a restarted VMM takes again a request the dead one had taken.
    pub fn chain_at<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        head: u16,
    ) -> Result<Chain, QueueError> {
        if head >= self.size {
            return Err(QueueError::IndexOutOfRange(head.into()));
        }
        let mut chain = Chain {
            head,
            readable: 0,
            writable: 0,
            desc: self.desc,
            size: self.size,
            indirect_ok: self.indirect,
        };
        let (mut r, mut w) = (0u32, 0u32);
        let mut overflow = false;
        chain.segments(mem, |s| {
            let t = if s.write { &mut w } else { &mut r };
            match t.checked_add(s.len) {
                Some(v) => *t = v,
                None => overflow = true,
            }
        })?;
        if overflow {
            return Err(QueueError::LengthOverflow);
        }
        chain.readable = r;
        chain.writable = w;
        Ok(chain)
    }

    /// Gives back the chain `pop` returned last: the device could not take it yet
    /// (back-pressure), and takes it again next time.
    pub fn unpop(&mut self) {
        self.next_avail = self.next_avail.wrapping_sub(1);
    }

    /// Returns `head` to the driver with `len` bytes written.
    pub fn push_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        if !self.ready {
            return Ok(());
        }
        let at = self.used + 4 + 8 * u64::from(self.next_used % self.size);
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        e[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(at, &e).map_err(|_| self.ring_err(at, 8))?;
        // The entry is visible before the index that publishes it.
        mem.barrier();
        self.next_used = self.next_used.wrapping_add(1);
        mem.write_u16(self.used + 2, self.next_used)
            .map_err(|_| self.ring_err(self.used + 2, 2))
    }

    /// Whether the driver wants a used-buffer notification for what was pushed since the
    /// last call (§2.7.7.2: `used_event` with EVENT_IDX, else `avail.flags`).
    pub fn should_notify<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<bool, QueueError> {
        if !self.ready {
            return Ok(false);
        }
        let (old, new) = (self.signalled, self.next_used);
        self.signalled = new;
        if old == new {
            return Ok(false);
        }
        mem.barrier();
        if self.event_idx {
            let at = self.avail + 4 + 2 * u64::from(self.size);
            let event = mem.read_u16(at).map_err(|_| self.ring_err(at, 2))?;
            // vring_need_event: did new_idx pass event since old?
            Ok(new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old))
        } else {
            let flags = mem
                .read_u16(self.avail)
                .map_err(|_| self.ring_err(self.avail, 2))?;
            Ok(flags & AVAIL_F_NO_INTERRUPT == 0)
        }
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
