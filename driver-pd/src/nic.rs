//! The net driver's device side (host-tested against a fake device): `virtio-drivers`'
//! `VirtIONetRaw` with the checks it lacks in front of it (`docs/network.md`, "The device
//! side"). Every buffer the device gets is carved from the `Hal`'s DMA memory.
//!
//! For the next incarnation, the driver keeps an [`axolotl_net::salvage::RxRecord`] in its
//! DMA region ([`RecordSlot`]): where its receive queue and buffers are, and how many used
//! elements it has taken, so that frames the device completed but this incarnation never
//! forwarded can be found after it dies.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use axolotl_net::BUF_SIZE;
use axolotl_net::device::{DeviceError, Tokens, rx_frame_len, vring_need_event};
use axolotl_net::salvage::{FORWARDED_WORD, RECORD_WORDS, RxRecord};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use crate::dma::DMA;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Descriptors per virtqueue, and buffers per direction.
pub const QUEUE: usize = 64;
const _: () = assert!(QUEUE <= u64::BITS as usize, "tx_busy is a u64 mask");

/// virtio-drivers' receive queue index.
const QUEUE_RECEIVE: u16 = 0;

/// `VIRTIO_F_EVENT_IDX`.
const F_EVENT_IDX: u64 = 1 << 29;

/// Where the salvage record lives: `RECORD_WORDS` words of the driver's DMA region that
/// nothing else is allocated over, read by the next incarnation before it reuses the region.
pub struct RecordSlot(NonNull<u32>);

impl RecordSlot {
    /// # Safety
    /// `at` is 4-byte aligned, `RECORD_WORDS` words long, and used for nothing else while
    /// the slot lives (the device is never given it).
    pub unsafe fn new(at: NonNull<u32>) -> Self {
        let slot = RecordSlot(at);
        // Invalid until the queues it describes exist.
        for i in 0..RECORD_WORDS {
            slot.write(i, 0);
        }
        slot
    }

    fn write(&self, i: usize, v: u32) {
        if i < RECORD_WORDS {
            // SAFETY: in the slot (`new`'s contract); volatile: the next incarnation, not
            // this one, reads it.
            unsafe { self.0.add(i).write_volatile(v) }
        }
    }

    /// The words a slot at `at` holds, as a dead incarnation left them.
    ///
    /// # Safety
    /// As [`RecordSlot::new`], and the slot's writer is gone.
    pub unsafe fn read(at: NonNull<u32>) -> [u32; RECORD_WORDS] {
        // SAFETY: forwarded.
        core::array::from_fn(|i| unsafe { at.add(i).read_volatile() })
    }
}

/// The receive queue's size, descriptor table and used ring, as `Recorded` last saw them
/// set up: a static because `VirtIONetRaw` does not lend its transport back. `Nic::new`
/// clears it before and reads it after `VirtIONetRaw::new` (a PD is single-threaded; the
/// host tests take turns, the `DMA` static is one too).
static RX_QUEUE: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The transport with the receive queue's addresses noted as virtio-drivers sets it up
/// (virtio-mmio's queue address registers are write-only, so they cannot be read back),
/// and its notifications decided again with virtio's wrapping `vring_need_event`:
/// `virtio-drivers`' `should_notify` compares plain numbers and kicks on nearly every
/// addition while the device's `avail_event` trails (never one too few: it checks after
/// each single addition), so a kick it asks for that the device did not is dropped here.
pub struct Recorded<T: Transport> {
    inner: T,
    /// Whether EVENT_IDX was negotiated.
    event_idx: bool,
    rings: [Option<Rings>; 2],
}

/// Where a queue's available index and `avail_event` are mapped, and the available index
/// at the last notification decision.
#[derive(Clone, Copy)]
struct Rings {
    avail_idx: usize,
    avail_event: usize,
    decided: u16,
}

impl<T: Transport> Recorded<T> {
    /// Whether the device asked to hear of queue `q`'s new buffers (always, if its rings
    /// are not known).
    fn needs_kick(&mut self, q: u16) -> bool {
        let Some(r) = self.rings.get_mut(usize::from(q)).and_then(|r| r.as_mut()) else {
            return true;
        };
        if !self.event_idx {
            return true;
        }
        // The index store before the event load (virtio §2.7.13.3.1's barrier).
        core::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: both 2-byte fields lie in the queue's rings in the DMA region (checked
        // when recorded), which live as long as the queue.
        let (new, event) = unsafe {
            (
                (r.avail_idx as *const u16).read_volatile(),
                (r.avail_event as *const u16).read_volatile(),
            )
        };
        // From the last decision: the additions in between were all decided "no kick" by
        // the library, whose "no" is never wrong, so the range is never too short.
        let old = core::mem::replace(&mut r.decided, new);
        vring_need_event(event, new, old)
    }
}

impl<T: Transport> Transport for Recorded<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features()
    }
    fn write_driver_features(&mut self, f: u64) {
        self.event_idx = f & F_EVENT_IDX != 0;
        self.inner.write_driver_features(f)
    }
    fn max_queue_size(&mut self, q: u16) -> u32 {
        self.inner.max_queue_size(q)
    }
    fn notify(&mut self, q: u16) {
        if self.needs_kick(q) {
            self.inner.notify(q)
        }
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, s: DeviceStatus) {
        self.inner.set_status(s)
    }
    fn set_guest_page_size(&mut self, n: u32) {
        self.inner.set_guest_page_size(n)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(&mut self, q: u16, size: u32, desc: PhysAddr, drv: PhysAddr, dev: PhysAddr) {
        // virtio split rings: `idx` at 2 of the available ring, `avail_event` after the
        // used ring's `size` elements (at 4 + 8 × size).
        let n = size as usize;
        let rings = DMA
            .vaddr_of(drv, 4 + 2 * n)
            .zip(DMA.vaddr_of(dev, 6 + 8 * n));
        if let Some(r) = self.rings.get_mut(usize::from(q)) {
            *r = rings
                .filter(|_| size <= u32::from(u16::MAX))
                .map(|(avail, used)| Rings {
                    avail_idx: avail + 2,
                    avail_event: used + 4 + 8 * n,
                    decided: 0,
                });
        }
        if q == QUEUE_RECEIVE {
            for (w, v) in RX_QUEUE.iter().zip([u64::from(size), desc, dev]) {
                w.store(v, Ordering::Relaxed);
            }
        }
        self.inner.queue_set(q, size, desc, drv, dev)
    }
    fn queue_unset(&mut self, q: u16) {
        if let Some(r) = self.rings.get_mut(usize::from(q)) {
            *r = None;
        }
        self.inner.queue_unset(q)
    }
    fn queue_used(&mut self, q: u16) -> bool {
        self.inner.queue_used(q)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<C: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<C> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<C: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: C,
    ) -> virtio_drivers::Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

fn recorded_rx_queue() -> Option<(u32, PhysAddr, PhysAddr)> {
    let [size, desc, used] = RX_QUEUE.each_ref().map(|w| w.load(Ordering::Relaxed));
    (size != 0).then_some((size as u32, desc, used))
}

/// The device and the driver's DMA buffers.
pub struct Nic<H: Hal, T: Transport> {
    raw: VirtIONetRaw<H, Recorded<T>, QUEUE>,
    rx_base: usize,
    tx_base: usize,
    rx_tokens: Tokens<QUEUE>,
    tx_tokens: Tokens<QUEUE>,
    tx_len: [usize; QUEUE],
    /// The transmit buffers with the device, a bit each.
    tx_busy: u64,
    /// Bytes of virtio-net header before each frame.
    header: usize,
    /// Where in its `BUF_SIZE` slot each buffer given to the device starts: so that the
    /// frame after the header is 8-aligned, and the copies into and out of the link move
    /// whole words (with the 12-byte header at the slot's start, every word of a frame was
    /// assembled from bytes: most of the driver's time per received frame).
    pad: usize,
    /// Received chains dropped for an impossible used length.
    pub bad_lengths: u64,
    record: Option<RecordSlot>,
    /// Used elements of the receive queue taken so far (virtio's free-running u16).
    forwarded: u16,
}

fn buffer(base: usize, i: usize) -> &'static mut [u8] {
    // SAFETY: buffer `i < QUEUE` of an area of QUEUE × BUF_SIZE bytes the `Hal` allocated for
    // this device; the driver forms it only to hand it to the device or to read it after the
    // device returned it, never while the device holds it.
    unsafe { core::slice::from_raw_parts_mut((base + i * BUF_SIZE) as *mut u8, BUF_SIZE) }
}

impl<H: Hal, T: Transport> Nic<H, T> {
    /// Resets the device (whatever an earlier driver gave it dies with the reset), sets its
    /// queues up and gives it every receive buffer. With a `record` slot, the receive
    /// queue's whereabouts go there before the device gets a buffer, and the count of used
    /// elements taken after each.
    pub fn new(transport: T, record: Option<RecordSlot>) -> Result<Self, &'static str> {
        if transport.device_type() != DeviceType::Network {
            return Err("the device at the NIC's transport is not a network device");
        }
        for w in &RX_QUEUE {
            w.store(0, Ordering::Relaxed);
        }
        let transport = Recorded {
            inner: transport,
            event_idx: false,
            rings: [None; 2],
        };
        let raw = VirtIONetRaw::<H, Recorded<T>, QUEUE>::new(transport)
            .map_err(|_| "virtio-net initialisation failed")?;
        let mut probe = [0u8; 16];
        let header = raw.fill_buffer_header(&mut probe).map_err(|_| "header")?;
        let pages = QUEUE * BUF_SIZE / PAGE_SIZE;
        let (rx_paddr, rx) = H::dma_alloc(pages, BufferDirection::DeviceToDriver);
        let (_, tx) = H::dma_alloc(pages, BufferDirection::DriverToDevice);
        let mut nic = Nic {
            raw,
            rx_base: rx.as_ptr() as usize,
            tx_base: tx.as_ptr() as usize,
            rx_tokens: Tokens::new(),
            tx_tokens: Tokens::new(),
            tx_len: [0; QUEUE],
            tx_busy: 0,
            header,
            pad: (8 - header % 8) % 8,
            bad_lengths: 0,
            record: None,
            forwarded: 0,
        };
        if let (Some(slot), Some((size, desc, used))) = (record, recorded_rx_queue()) {
            let r = RxRecord {
                queue_size: size as u16,
                desc,
                used,
                buffers: rx_paddr + nic.pad as u64,
                buf_size: BUF_SIZE as u32,
                header: header as u32,
            };
            for (i, w) in r.to_words().into_iter().enumerate() {
                slot.write(i, w);
            }
            nic.record = Some(slot);
        }
        for i in 0..QUEUE {
            nic.post_rx(i).map_err(|_| "cannot post receive buffers")?;
        }
        Ok(nic)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    pub fn ack_interrupt(&mut self) {
        self.raw.ack_interrupt();
    }

    /// Whether the device has completed a received frame not taken yet.
    pub fn rx_pending(&self) -> bool {
        self.raw.poll_receive().is_some()
    }

    /// Receive buffers with the device.
    pub fn rx_posted(&self) -> usize {
        self.rx_tokens.len()
    }

    fn post_rx(&mut self, i: usize) -> Result<(), DeviceError> {
        // SAFETY: the buffer is ours (not with the device) and stays untouched until the
        // device returns it through `poll_receive`.
        let token = unsafe {
            self.raw
                .receive_begin(&mut buffer(self.rx_base, i)[self.pad..])
        }
        .map_err(|_| DeviceError::UnknownToken(u16::MAX))?;
        if !self.rx_tokens.insert(token, i as u16) {
            return Err(DeviceError::UnknownToken(token));
        }
        Ok(())
    }

    /// Takes back the transmit buffers the device is done with; whether there were any.
    pub fn reap_tx(&mut self) -> Result<bool, DeviceError> {
        let mut any = false;
        while let Some(token) = self.raw.poll_transmit() {
            // Only a chain we made available, before the library pops anything.
            let b = usize::from(self.tx_tokens.peek(token)?);
            let len = self.tx_len[b];
            // SAFETY: the same buffer (and length) as given to `transmit_begin` for `token`.
            unsafe {
                self.raw
                    .transmit_complete(token, &buffer(self.tx_base, b)[self.pad..][..len])
            }
            .map_err(|_| DeviceError::UnknownToken(token))?;
            self.tx_tokens.remove(token);
            self.tx_busy &= !(1 << b);
            any = true;
        }
        Ok(any)
    }

    /// Whether a frame can be handed to the device now.
    pub fn tx_room(&self) -> bool {
        self.tx_busy.count_ones() < QUEUE as u32 && self.raw.can_send()
    }

    /// Hands `frame` (at most `MAX_FRAME` bytes) to the device; call only with `tx_room`.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), DeviceError> {
        self.send_with(frame.len(), |b| {
            b.copy_from_slice(frame);
            true
        })
    }

    /// [`Nic::send`] of a frame of `frame_len` bytes that `fill` writes straight into the
    /// DMA buffer (8-aligned, after the header): from the link's buffer, with no staging
    /// copy. `fill` returning `false` sends nothing.
    pub fn send_with(
        &mut self,
        frame_len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), DeviceError> {
        let b = (!self.tx_busy).trailing_zeros() as usize;
        let h = self.header;
        if b >= QUEUE || self.pad + h + frame_len > BUF_SIZE {
            return Ok(());
        }
        let buf = &mut buffer(self.tx_base, b)[self.pad..];
        let _ = self.raw.fill_buffer_header(buf);
        if !fill(&mut buf[h..h + frame_len]) {
            return Ok(());
        }
        let len = h + frame_len;
        // SAFETY: the buffer stays untouched until `poll_transmit` returns its token.
        let token = unsafe { self.raw.transmit_begin(&buf[..len]) }
            .map_err(|_| DeviceError::UnknownToken(u16::MAX))?;
        if !self.tx_tokens.insert(token, b as u16) {
            return Err(DeviceError::UnknownToken(token));
        }
        self.tx_len[b] = len;
        self.tx_busy |= 1 << b;
        Ok(())
    }

    /// The next received frame, checked, handed to `deliver`; its buffer is posted again.
    /// `Ok(false)`: nothing received. A chain the device never had is refused before the
    /// library pops anything; an impossible used length drops the frame.
    pub fn next_rx(&mut self, deliver: impl FnOnce(&[u8])) -> Result<bool, DeviceError> {
        let Some(token) = self.raw.poll_receive() else {
            return Ok(false);
        };
        let b = usize::from(self.rx_tokens.peek(token)?);
        let buf = &mut buffer(self.rx_base, b)[self.pad..];
        // SAFETY: `buf` is the buffer given to `receive_begin` for `token`.
        let r = unsafe { self.raw.receive_complete(token, buf) };
        self.rx_tokens.remove(token);
        // virtio-drivers does not compare the used length with the buffer: we do.
        match r
            .map_err(|_| DeviceError::BadLength { token, len: 0 })
            .and_then(|(h, n)| rx_frame_len(token, h + n, self.header, BUF_SIZE - self.pad))
        {
            Ok(n) => deliver(&buffer(self.rx_base, b)[self.pad + self.header..][..n]),
            Err(_) => self.bad_lengths += 1,
        }
        // After the frame went on: dying between the two repeats it once (the next
        // incarnation salvages it again) rather than losing it.
        self.forwarded = self.forwarded.wrapping_add(1);
        if let Some(slot) = &self.record {
            slot.write(FORWARDED_WORD, u32::from(self.forwarded));
        }
        self.post_rx(b)?;
        Ok(true)
    }
}
