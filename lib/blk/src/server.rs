//! The driver's side: takes requests from one client connection, checks them, runs them on
//! a [`BlockDevice`] (straight on the client's buffers where the device can reach the data
//! region, else through its bounce buffers), and answers.

use axolotl_ring::{
    Corruption, Error, Generations, LayoutError, ServerEvent, SharedRegion, Signal, Wait,
};

use crate::{
    CMD_BYTES, DATA_START, INFO_OFFSET, INFO_READY, MAX_IDS, Op, REC_OP, REC_SECTOR, REC_STATUS,
    SECTOR_SIZE, Status,
};
use axolotl_ring::DataRegion;

/// The most device slots (bounce buffers) a server uses.
pub const MAX_SLOTS: usize = 16;

/// What the device is asked to do with a slot's bounce buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceOp {
    Read,
    Write,
    Flush,
}

/// A device's answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    Ok,
    IoError,
    Unsupported,
}

/// Why a device did not take a request or give a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// No room for another request now; retried after a completion.
    Busy,
    /// The device broke its contract (a completion for nothing in flight, a status it never
    /// wrote, ...): nothing it says can be believed any more. The driver must reset it: the
    /// PD gets itself restarted, and its clients re-issue what was in flight.
    Broken(&'static str),
}

/// What [`BlkServer`] needs of a device: a few slots, each with a bounce buffer of
/// [`BlockDevice::max_bytes`] the device reads or writes, and asynchronous requests on them.
pub trait BlockDevice {
    /// Size in [`SECTOR_SIZE`] sectors.
    fn capacity(&self) -> u64;
    /// Slots (requests the device may hold at once, at most [`MAX_SLOTS`] are used).
    fn slots(&self) -> usize;
    /// Bytes of each slot's bounce buffer (a multiple of the sector size).
    fn max_bytes(&self) -> usize;
    /// The bounce buffer of `slot`; only called while the slot is not in the device (and
    /// never for a [`direct`](BlockDevice::direct) device).
    fn buffer(&mut self, slot: usize) -> &mut [u8];
    /// Whether the device reaches the client's data region itself (sDDF's way: the
    /// region's physical address given to the driver): then the server copies nothing and
    /// starts reads and writes with [`submit_direct`](BlockDevice::submit_direct).
    fn direct(&self) -> bool {
        false
    }
    /// Starts `op` (a read or a write) on the client's buffer `offset..offset + bytes` of
    /// the data region, which the server checked lies in the data area; `slot` is only the
    /// server's name for the request while it is in the device.
    fn submit_direct(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        offset: usize,
        bytes: usize,
    ) -> Result<(), DeviceError> {
        let _ = (slot, op, sector, offset, bytes);
        Err(DeviceError::Broken(
            "the device has no direct access to the data region",
        ))
    }
    /// Starts `op` on `slot`'s buffer: `bytes` from `sector` (0 bytes for a flush).
    fn submit(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        bytes: usize,
    ) -> Result<(), DeviceError>;
    /// The next completed slot, if any.
    fn poll(&mut self) -> Result<Option<(usize, DeviceStatus)>, DeviceError>;
}

/// A request taken from the client, checked, not yet answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req {
    id: u32,
    op: DeviceOp,
    sector: u64,
    offset: u32,
    len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    /// In the device. `live`: false once the client that sent it restarted (the
    /// completion is then dropped: its buffer is not ours any more).
    Busy {
        req: Req,
        live: bool,
    },
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests answered (any status).
    pub answered: u64,
    /// Requests answered with an error status without reaching the device.
    pub refused: u64,
    /// Requests completed by the device.
    pub device_completed: u64,
    /// Bytes of the reads and writes the device completed (any status).
    pub device_bytes: u64,
    pub client_restarts: u64,
    /// Requests of a restarted client dropped (queued or in the device).
    pub abandoned: u64,
}

/// What one [`BlkServer::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Activity {
    /// Notify the client.
    pub notify: bool,
    /// The client broke the ring protocol (found in this call): report it. Sticky in
    /// [`BlkServer::fault`] until the client restarts.
    pub fault: Option<Corruption>,
    /// The device broke its contract: reset it (restart the driver).
    pub device_broken: Option<&'static str>,
}

/// Construction failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerError {
    Layout(LayoutError),
    /// More ids than the command area holds.
    TooManyIds,
    /// The data region has no data area.
    DataTooSmall,
    /// A device without slots, or with bounce buffers not a whole number of sectors.
    BadDevice,
}

/// The driver's side of one client connection. `IDS` request ids; requests wait in order
/// for a free device slot; a flush waits until everything before it completed and holds
/// everything after it until it completed.
pub struct BlkServer<D: BlockDevice, const IDS: usize> {
    ring: axolotl_ring::Server<IDS>,
    data: DataRegion,
    dev: D,
    capacity: u64,
    max_bytes: usize,
    slots: usize,
    /// The device works on the client's buffers in place ([`BlockDevice::direct`]).
    direct: bool,
    /// Taken, checked, waiting for the device, oldest first (a ring of `IDS`).
    pending: [Option<Req>; IDS],
    pending_head: usize,
    pending_len: usize,
    busy: [Slot; MAX_SLOTS],
    /// A flush is in the device: nothing else goes in until it completed.
    flushing: bool,
    fault: Option<Corruption>,
    broken: Option<&'static str>,
    stats: ServerStats,
}

impl<D: BlockDevice, const IDS: usize> BlkServer<D, IDS> {
    /// Starts (or restarts) the driver's side of a connection over an initialised device.
    pub fn new(
        dev: D,
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
    ) -> Result<Self, ServerError> {
        if IDS > MAX_IDS {
            return Err(ServerError::TooManyIds);
        }
        if data.len() <= DATA_START {
            return Err(ServerError::DataTooSmall);
        }
        let max_bytes = dev.max_bytes();
        if dev.slots() == 0 || max_bytes == 0 || !max_bytes.is_multiple_of(SECTOR_SIZE) {
            return Err(ServerError::BadDevice);
        }
        // SAFETY: the view lives next to the ring endpoint owning `data`.
        let view = unsafe { DataRegion::alias(&data) };
        let ring = axolotl_ring::Server::new(rings, data, capacity, generations)
            .map_err(ServerError::Layout)?;
        // The client sizes its disk from this before its first request (a client that
        // started first polls until it is there); each incarnation writes it again, the
        // fields before the flag that says they are written.
        view.write_u32(INFO_OFFSET, 0);
        view.write_u32(INFO_OFFSET + 4, SECTOR_SIZE as u32);
        view.write_u64(INFO_OFFSET + 8, dev.capacity());
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        view.write_u32(INFO_OFFSET, INFO_READY);
        Ok(Self {
            ring,
            data: view,
            capacity: dev.capacity(),
            slots: dev.slots().min(MAX_SLOTS),
            direct: dev.direct(),
            max_bytes,
            dev,
            pending: [None; IDS],
            pending_head: 0,
            pending_len: 0,
            busy: [Slot::Free; MAX_SLOTS],
            flushing: false,
            fault: None,
            broken: None,
            stats: ServerStats::default(),
        })
    }

    pub fn generation(&self) -> u32 {
        self.ring.generation()
    }

    /// The client generation of the session the fault was found in.
    pub fn client_generation(&self) -> u32 {
        self.ring.client_generation()
    }

    pub fn is_connected(&self) -> bool {
        self.ring.is_connected()
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// The client's protocol violation, while it lasts.
    pub fn fault(&self) -> Option<Corruption> {
        self.fault
    }

    /// Requests in the device (including those of a client that restarted since).
    pub fn in_device(&self) -> usize {
        self.busy.iter().filter(|s| **s != Slot::Free).count()
    }

    /// Does all there is to do: device completions, the client's requests and restarts,
    /// submissions to the device. Returns with the request queue's "signal me" flag armed.
    pub fn poll(&mut self) -> Activity {
        let mut act = Activity::default();
        if let Some(b) = self.broken {
            act.device_broken = Some(b);
            return act;
        }
        loop {
            let mut progress = self.take_completions(&mut act);
            progress |= self.take_requests(&mut act);
            progress |= self.dispatch(&mut act);
            if act.device_broken.is_some() {
                return act;
            }
            if progress {
                continue;
            }
            if self.holding_back() {
                // The device's completion (its interrupt) is what we wait for; lib/ring
                // would have us retry the hand-back at once.
                return act;
            }
            match self.ring.prepare_wait() {
                Ok(Wait::Block) => return act,
                Ok(Wait::Retry) => continue,
                Err(Error::Corrupt(c)) => {
                    self.set_fault(c, &mut act);
                    return act;
                }
                Err(_) => return act,
            }
        }
    }

    /// Whether the device still works on a buffer of a client that restarted, in direct
    /// mode: the new incarnation is not let in before it is done (`take_requests`).
    fn holding_back(&self) -> bool {
        self.direct
            && self
                .busy
                .iter()
                .any(|s| matches!(s, Slot::Busy { live: false, .. }))
    }

    fn set_fault(&mut self, c: Corruption, act: &mut Activity) {
        if self.fault.is_none() {
            act.fault = Some(c);
        }
        self.fault = Some(c);
    }

    fn take_completions(&mut self, act: &mut Activity) -> bool {
        let mut any = false;
        loop {
            match self.dev.poll() {
                Ok(None) | Err(DeviceError::Busy) => return any,
                Ok(Some((slot, status))) => {
                    any = true;
                    let Some(Slot::Busy { req, live }) = self.busy.get(slot).copied() else {
                        return self.device_broke("a completion for a slot not in the device", act);
                    };
                    self.busy[slot] = Slot::Free;
                    self.stats.device_completed += 1;
                    self.stats.device_bytes += u64::from(req.len);
                    if req.op == DeviceOp::Flush {
                        self.flushing = false;
                    }
                    if !live {
                        continue;
                    }
                    let status = match status {
                        DeviceStatus::Ok => Status::Ok,
                        DeviceStatus::IoError => Status::IoError,
                        DeviceStatus::Unsupported => Status::Unsupported,
                    };
                    if status == Status::Ok && req.op == DeviceOp::Read && !self.direct {
                        let len = req.len as usize;
                        let buf = &self.dev.buffer(slot)[..len];
                        // Checked when taken: inside the data area.
                        self.data.copy_in(req.offset as usize, buf);
                    }
                    let len = if status == Status::Ok { req.len } else { 0 };
                    self.answer(req.id, status, len, act);
                }
                Err(DeviceError::Broken(why)) => return self.device_broke(why, act),
            }
        }
    }

    fn device_broke(&mut self, why: &'static str, act: &mut Activity) -> bool {
        self.broken = Some(why);
        act.device_broken = Some(why);
        false
    }

    /// Writes the status into the request's record, then posts the completion.
    fn answer(&mut self, id: u32, status: Status, len: u32, act: &mut Activity) {
        self.data
            .write_u32(id as usize * CMD_BYTES + REC_STATUS, status.code());
        match self.ring.respond(id, len) {
            Ok(Signal::Notify) => act.notify = true,
            Ok(Signal::Quiet) => {}
            Err(Error::Corrupt(c)) => self.set_fault(c, act),
            // The client restarted meanwhile: `poll` hands the id back as abandoned.
            Err(_) => {}
        }
        self.stats.answered += 1;
        if status != Status::Ok {
            act.notify = true;
        }
    }

    fn take_requests(&mut self, act: &mut Activity) -> bool {
        let mut any = false;
        loop {
            if self.holding_back() {
                // The device still reads or writes a buffer of a client that restarted:
                // lib/ring acknowledges the new incarnation only after handing back every
                // abandoned request, and the client touches no buffer before that ack, so
                // holding the hand-back until the device is done keeps a late DMA out of
                // buffers the new incarnation already reuses. (With bounce buffers the
                // device only ever wrote the driver's own memory.)
                return any;
            }
            let before = self.ring.client_generation();
            let r = self.ring.poll();
            if self.ring.client_generation() != before {
                // We acknowledged a client generation: it waits for that.
                act.notify = true;
            }
            match r {
                Ok(None) => return any,
                Ok(Some(ev)) => {
                    any = true;
                    act.notify = true;
                    match ev {
                        ServerEvent::Connected { .. } => self.fault = None,
                        ServerEvent::ClientRestarted { .. } => {
                            self.stats.client_restarts += 1;
                            self.fault = None;
                        }
                        ServerEvent::Request(d) => self.take(d.id, d.offset, d.len, act),
                        ServerEvent::Abandoned { request, .. } => self.abandon(request.id),
                    }
                }
                Err(Error::Corrupt(c)) => {
                    self.set_fault(c, act);
                    return any;
                }
                Err(_) => return any,
            }
        }
    }

    /// Copies the command record once and checks it; a bad request is answered at once.
    fn take(&mut self, id: u32, offset: u32, len: u32, act: &mut Activity) {
        let rec = id as usize * CMD_BYTES;
        let code = self.data.read_u32(rec + REC_OP).unwrap_or(u32::MAX);
        let sector = self.data.read_u64(rec + REC_SECTOR).unwrap_or(u64::MAX);
        let op = match Op::from_code(code) {
            Some(Op::Read) => DeviceOp::Read,
            Some(Op::Write) => DeviceOp::Write,
            Some(Op::Flush) => DeviceOp::Flush,
            None => return self.refuse(id, Status::Unsupported, act),
        };
        if op != DeviceOp::Flush {
            let l = len as usize;
            if (offset as usize) < DATA_START
                || l == 0
                || !l.is_multiple_of(SECTOR_SIZE)
                || l > self.max_bytes
                || !self.data.contains(offset as usize, l)
            {
                return self.refuse(id, Status::BadBuffer, act);
            }
            let sectors = (l / SECTOR_SIZE) as u64;
            if sector
                .checked_add(sectors)
                .is_none_or(|end| end > self.capacity)
            {
                return self.refuse(id, Status::OutOfRange, act);
            }
        }
        let req = Req {
            id,
            op,
            sector: if op == DeviceOp::Flush { 0 } else { sector },
            offset,
            len: if op == DeviceOp::Flush { 0 } else { len },
        };
        // lib/ring refuses an id already in service, so at most IDS are pending.
        let tail = (self.pending_head + self.pending_len) % IDS;
        self.pending[tail] = Some(req);
        self.pending_len += 1;
    }

    fn refuse(&mut self, id: u32, status: Status, act: &mut Activity) {
        self.stats.refused += 1;
        self.answer(id, status, 0, act);
    }

    /// The client restarted: its request `id` is not ours to answer any more.
    fn abandon(&mut self, id: u32) {
        self.stats.abandoned += 1;
        for s in self.busy.iter_mut() {
            if let Slot::Busy { req, live } = s
                && req.id == id
                && *live
            {
                *live = false;
                return;
            }
        }
        // Still pending: take it out, keeping the others in order.
        let mut kept = [None; IDS];
        let mut n = 0;
        for k in 0..self.pending_len {
            let r = self.pending[(self.pending_head + k) % IDS];
            if let Some(r) = r
                && r.id != id
            {
                kept[n] = Some(r);
                n += 1;
            }
        }
        self.pending = kept;
        self.pending_head = 0;
        self.pending_len = n;
    }

    /// Starts pending requests in order while the device has room and no flush holds them.
    fn dispatch(&mut self, act: &mut Activity) -> bool {
        let mut any = false;
        while self.pending_len > 0 && !self.flushing {
            let Some(req) = self.pending[self.pending_head] else {
                break;
            };
            if req.op == DeviceOp::Flush && self.in_device() > 0 {
                // Only writes the device completed are made durable by a flush.
                break;
            }
            let Some(slot) = (0..self.slots).find(|&s| self.busy[s] == Slot::Free) else {
                break;
            };
            let direct = self.direct && req.op != DeviceOp::Flush;
            if req.op == DeviceOp::Write && !direct {
                let len = req.len as usize;
                let buf = &mut self.dev.buffer(slot)[..len];
                self.data.copy_out(req.offset as usize, buf);
            }
            let r = if direct {
                // `take` checked the buffer against the data area and the region.
                let (offset, len) = (req.offset as usize, req.len as usize);
                self.dev
                    .submit_direct(slot, req.op, req.sector, offset, len)
            } else {
                self.dev.submit(slot, req.op, req.sector, req.len as usize)
            };
            match r {
                Ok(()) => {}
                Err(DeviceError::Busy) => break,
                Err(DeviceError::Broken(why)) => {
                    self.device_broke(why, act);
                    return false;
                }
            }
            self.busy[slot] = Slot::Busy { req, live: true };
            self.flushing = req.op == DeviceOp::Flush;
            self.pending[self.pending_head] = None;
            self.pending_head = (self.pending_head + 1) % IDS;
            self.pending_len -= 1;
            any = true;
        }
        any
    }
}
