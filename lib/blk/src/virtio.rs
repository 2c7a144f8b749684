//! [`BlockDevice`] over a virtio-blk device (feature `virtio`): `virtio-drivers`' `VirtIOBlk`
//! with its non-blocking requests, every header and bounce buffer in the driver's DMA region,
//! and what the device says checked before the crate acts on it.
//!
//! What `virtio-drivers` 0.13 trusts (read from its source; `docs/storage.md`):
//!
//! * `VirtQueue::can_pop` is `last_used_idx != used.idx`: a used index that jumps ahead is
//!   not noticed, the driver then reads used-ring slots the device never wrote (stale ids).
//! * `peek_used` returns the used element's id truncated to `u16`, unchecked;
//!   `pop_used(token)` only compares it with the token the caller names. Popping an id the
//!   caller did not make available would index its descriptor table with it (a panic past
//!   the queue size) or recycle another request's chain.
//! * The used length is returned by `pop_used` but `VirtIOBlk` drops it; the status byte
//!   alone says whether a request succeeded.
//! * `begin_init` does not read `FEATURES_OK` back; `flush` exists only blocking.
//!
//! So, here: every used id is looked up among the tokens of requests in the device before
//! anything is popped (an unknown one: the device is [`DeviceError::Broken`]); each response
//! header is reset to `NOT_READY` before its request goes out, and a completion still saying
//! `NOT_READY` (a used entry the device did not write for it, as after an index jump) is
//! `Broken` too; the used length is not needed (reads are of the request's length into a
//! bounce buffer of at least that size, which the device's DMA is confined to by the
//! descriptor). A broken device is never used again: the driver PD gets itself restarted,
//! which resets the device.
//!
//! Flush: the server only submits a flush when nothing else is in the device, and submits
//! nothing while it runs, so the crate's blocking `flush` pops its own completion and no
//! other; it completes inside `submit` (the PD waits for the device meanwhile).

use core::ptr::NonNull;

use virtio_drivers::Hal;
use virtio_drivers::device::blk::{BlkReq, BlkResp, RespStatus, VirtIOBlk};
use virtio_drivers::transport::{DeviceType, Transport};

use axolotl_virtio_hal::DmaRegion;

use crate::server::{BlockDevice, DeviceError, DeviceOp, DeviceStatus, MAX_SLOTS};

/// Why the device cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The transport's DeviceID register names another kind of device.
    NotABlockDevice(DeviceType),
    /// The device would not initialise (its queue could not be set up, ...).
    Device(virtio_drivers::Error),
    /// The DMA region has no room for the headers and bounce buffers.
    NoDmaMemory,
    /// `slots` is 0 or above [`MAX_SLOTS`], or `max_bytes` is not a whole number of sectors.
    BadConfig,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The descriptor head `virtio-drivers` returned; `None` while the slot is idle.
    token: Option<u16>,
    op: DeviceOp,
    bytes: usize,
    /// Direct: the client's buffer's offset in the data region; `None`: the bounce buffer.
    direct: Option<usize>,
}

/// The client's data region as the driver maps it, for direct DMA.
#[derive(Clone, Copy, Debug)]
pub struct ClientData {
    /// Where the driver maps the data region.
    pub vaddr: NonNull<u8>,
    /// Its bytes.
    pub len: usize,
}

/// A virtio-blk device with `slots` requests in flight: on the client's buffers in place
/// (direct), or on bounce buffers of `max_bytes` in the DMA region.
pub struct VirtioBlkDevice<H: Hal, T: Transport> {
    blk: VirtIOBlk<H, T>,
    slots: [Slot; MAX_SLOTS],
    n: usize,
    /// Per slot: a `BlkReq` at `slot * HDR`, its `BlkResp` at `slot * HDR + 16`.
    headers: NonNull<u8>,
    /// Bounce buffer of slot `i` at `i * max_bytes` (none in direct mode).
    bounce: NonNull<u8>,
    /// Direct mode: the client's data region, which the DMA region's client window
    /// (`DmaRegion::set_client_window`) lets the HAL hand to the device.
    client: Option<ClientData>,
    max_bytes: usize,
    /// A flush that completed inside `submit`, reported by the next `poll`.
    flushed: Option<(usize, DeviceStatus)>,
}

const HDR: usize = 32;
const _: () = assert!(size_of::<BlkReq>() <= 16 && size_of::<BlkResp>() <= HDR - 16);

impl<H: Hal, T: Transport> VirtioBlkDevice<H, T> {
    /// Checks the transport is a block device, resets and initialises it (queue 0, the
    /// features `virtio-drivers` supports), and takes headers and bounce buffers from
    /// `dma` (the region `H` allocates from).
    pub fn new(
        transport: T,
        dma: &DmaRegion,
        slots: usize,
        max_bytes: usize,
    ) -> Result<Self, InitError> {
        Self::build(transport, dma, slots, max_bytes, None)
    }

    /// As [`new`](Self::new), but reads and writes go straight to and from the client's
    /// buffers in `client` (sDDF's way: no bounce buffers, the driver copies nothing).
    /// `dma`'s client window must cover `client`'s data area (from `DATA_START`), else the
    /// HAL refuses the first request's buffer (a panic of the PD: restarted, not DMA to an
    /// address nobody checked).
    pub fn new_direct(
        transport: T,
        dma: &DmaRegion,
        slots: usize,
        max_bytes: usize,
        client: ClientData,
    ) -> Result<Self, InitError> {
        Self::build(transport, dma, slots, max_bytes, Some(client))
    }

    fn build(
        transport: T,
        dma: &DmaRegion,
        slots: usize,
        max_bytes: usize,
        client: Option<ClientData>,
    ) -> Result<Self, InitError> {
        let t = transport.device_type();
        if t != DeviceType::Block {
            return Err(InitError::NotABlockDevice(t));
        }
        if slots == 0 || slots > MAX_SLOTS || max_bytes == 0 || !max_bytes.is_multiple_of(512) {
            return Err(InitError::BadConfig);
        }
        // The reset (in `begin_init`) comes first: a device the previous incarnation left
        // running stops writing into the DMA region before it is handed out again.
        let blk = VirtIOBlk::<H, T>::new(transport).map_err(InitError::Device)?;
        let page = virtio_drivers::PAGE_SIZE;
        let (_, headers) = dma
            .alloc((slots * HDR).div_ceil(page))
            .ok_or(InitError::NoDmaMemory)?;
        let bounce = if client.is_some() {
            NonNull::dangling()
        } else {
            dma.alloc((slots * max_bytes).div_ceil(page))
                .ok_or(InitError::NoDmaMemory)?
                .1
        };
        Ok(Self {
            blk,
            slots: [Slot {
                token: None,
                op: DeviceOp::Read,
                bytes: 0,
                direct: None,
            }; MAX_SLOTS],
            n: slots,
            headers,
            bounce,
            client,
            max_bytes,
            flushed: None,
        })
    }

    /// Acknowledges the device's interrupt (call on each IRQ, before polling).
    pub fn ack_interrupt(&mut self) {
        let _ = self.blk.ack_interrupt();
    }

    /// The request header and response of `slot`, and the first `bytes` of its bounce
    /// buffer.
    ///
    /// # Safety
    /// `slot < n` and `bytes <= max_bytes`; the caller holds no other reference to them. The
    /// references are unbounded: they point into the DMA region, which lives as long as the
    /// PD, not into `self`.
    unsafe fn parts<'a>(
        &self,
        slot: usize,
        bytes: usize,
        direct: Option<usize>,
    ) -> (&'a mut BlkReq, &'a mut BlkResp, &'a mut [u8]) {
        // SAFETY: the header page holds `n` records of HDR bytes (16-aligned: the page is
        // page-aligned), a request then its response 16 bytes later; bounce buffer `slot` is
        // `max_bytes` at `slot * max_bytes` in its own allocation. All three are disjoint,
        // in the DMA region, and reached only through this device (and by the device).
        // A direct buffer is in the client's data region (checked by `submit_direct`); the
        // slice only carries its address to virtio-drivers' `Hal::share`, which gives the
        // device the paddr: neither this driver nor the crate reads or writes through it.
        unsafe {
            let h = self.headers.as_ptr().add(slot * HDR);
            let buf = match (direct, self.client) {
                (Some(off), Some(c)) => c.vaddr.as_ptr().add(off),
                _ => self.bounce.as_ptr().add(slot * self.max_bytes),
            };
            (
                &mut *h.cast::<BlkReq>(),
                &mut *h.add(16).cast::<BlkResp>(),
                core::slice::from_raw_parts_mut(buf, bytes),
            )
        }
    }

    /// Puts a request in the device: `slot`'s bounce buffer, or the client's buffer at
    /// `direct`.
    fn start(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        bytes: usize,
        direct: Option<usize>,
    ) -> Result<(), DeviceError> {
        if slot >= self.n || bytes > self.max_bytes || self.slots[slot].token.is_some() {
            return Err(DeviceError::Broken("virtio-blk: bad slot from the server"));
        }
        if op == DeviceOp::Flush {
            if self.slots[..self.n].iter().any(|s| s.token.is_some()) || self.flushed.is_some() {
                // The server's barrier makes this impossible; say so rather than mix a
                // blocking pop with requests in flight.
                return Err(DeviceError::Busy);
            }
            let st = Self::status(self.blk.flush())?;
            self.flushed = Some((slot, st));
            return Ok(());
        }
        let sector = usize::try_from(sector)
            .map_err(|_| DeviceError::Broken("virtio-blk: sector beyond usize"))?;
        // SAFETY: slot < n and bytes <= max_bytes (checked above), a direct buffer inside the
        // data area (`submit_direct`); nothing else holds them.
        let (req, resp, buf) = unsafe { self.parts(slot, bytes, direct) };
        // Reset before each request: a completion still saying NOT_READY was not written
        // by the device for this request.
        *resp = BlkResp::default();
        // SAFETY: header, response and buffer live in the DMA region (or the client's data
        // region, mapped for the PD's life) for the device's whole life and are not touched again until `complete_*` pops this token (the server
        // does not touch a slot's buffer while it is in the device).
        let r = unsafe {
            match op {
                DeviceOp::Read => self.blk.read_blocks_nb(sector, req, buf, resp),
                _ => self.blk.write_blocks_nb(sector, req, buf, resp),
            }
        };
        match r {
            Ok(token) => {
                self.slots[slot] = Slot {
                    token: Some(token),
                    op,
                    bytes,
                    direct,
                };
                Ok(())
            }
            Err(virtio_drivers::Error::QueueFull) => Err(DeviceError::Busy),
            Err(_) => Err(DeviceError::Broken(
                "virtio-blk: the queue refused a request",
            )),
        }
    }

    fn status(r: Result<(), virtio_drivers::Error>) -> Result<DeviceStatus, DeviceError> {
        match r {
            Ok(()) => Ok(DeviceStatus::Ok),
            Err(virtio_drivers::Error::IoError) => Ok(DeviceStatus::IoError),
            Err(virtio_drivers::Error::Unsupported) => Ok(DeviceStatus::Unsupported),
            Err(virtio_drivers::Error::NotReady) => Err(DeviceError::Broken(
                "virtio-blk: a completion whose status the device never wrote",
            )),
            Err(_) => Err(DeviceError::Broken(
                "virtio-blk: the device used another chain",
            )),
        }
    }
}

impl<H: Hal, T: Transport> BlockDevice for VirtioBlkDevice<H, T> {
    fn capacity(&self) -> u64 {
        self.blk.capacity()
    }

    fn slots(&self) -> usize {
        self.n
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn buffer(&mut self, slot: usize) -> &mut [u8] {
        assert!(slot < self.n, "bounce buffer of a slot that does not exist");
        assert!(self.client.is_none(), "no bounce buffers in direct mode");
        // SAFETY: slot < n, the whole buffer; the returned borrow of `self` keeps any other
        // access through this device out while it lives.
        unsafe { self.parts(slot, self.max_bytes, None).2 }
    }

    fn direct(&self) -> bool {
        self.client.is_some()
    }

    fn submit_direct(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        offset: usize,
        bytes: usize,
    ) -> Result<(), DeviceError> {
        // The server checked the buffer against the data area already; checked again here,
        // next to the address the device gets, so that nothing between the two (a bug, a
        // flipped bit) points the device's DMA outside the client's buffers.
        let Some(c) = self.client else {
            return Err(DeviceError::Broken("virtio-blk: not in direct mode"));
        };
        if op == DeviceOp::Flush
            || offset < crate::DATA_START
            || offset.checked_add(bytes).is_none_or(|end| end > c.len)
        {
            return Err(DeviceError::Broken(
                "virtio-blk: a direct buffer outside the data area",
            ));
        }
        self.start(slot, op, sector, bytes, Some(offset))
    }

    fn submit(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        bytes: usize,
    ) -> Result<(), DeviceError> {
        if self.client.is_some() && op != DeviceOp::Flush {
            return Err(DeviceError::Broken(
                "virtio-blk: no bounce buffers in direct mode",
            ));
        }
        self.start(slot, op, sector, bytes, None)
    }

    fn poll(&mut self) -> Result<Option<(usize, DeviceStatus)>, DeviceError> {
        if let Some(done) = self.flushed.take() {
            return Ok(Some(done));
        }
        let Some(token) = self.blk.peek_used() else {
            return Ok(None);
        };
        let Some(slot) = (0..self.n).find(|&s| self.slots[s].token == Some(token)) else {
            return Err(DeviceError::Broken(
                "virtio-blk: a used id that is not in the device",
            ));
        };
        let Slot {
            op, bytes, direct, ..
        } = self.slots[slot];
        // SAFETY: slot < n, bytes and buffer as submitted; the device is done with them.
        let (req, resp, buf) = unsafe { self.parts(slot, bytes, direct) };
        // SAFETY: the same header, response and buffer `submit` passed with this token.
        let r = unsafe {
            match op {
                DeviceOp::Read => self.blk.complete_read_blocks(token, req, buf, resp),
                _ => self.blk.complete_write_blocks(token, req, buf, resp),
            }
        };
        self.slots[slot].token = None;
        Ok(Some((slot, Self::status(r)?)))
    }
}

// `RespStatus` is what the device writes; named here so a crate update that changes the
// NOT_READY sentinel breaks the build instead of this module's reasoning.
const _: RespStatus = RespStatus::NOT_READY;
