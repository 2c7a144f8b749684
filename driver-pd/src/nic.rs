//! The net driver's device side (host-tested against a fake device): `virtio-drivers`'
//! `VirtIONetRaw` with the checks it lacks in front of it (`docs/network.md`, "The device
//! side"). Every buffer the device gets is carved from the `Hal`'s DMA memory.

use axolotl_net::BUF_SIZE;
use axolotl_net::device::{DeviceError, Tokens, rx_frame_len};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

/// Descriptors per virtqueue, and buffers per direction.
pub const QUEUE: usize = 16;

/// The device and the driver's DMA buffers.
pub struct Nic<H: Hal, T: Transport> {
    raw: VirtIONetRaw<H, T, QUEUE>,
    rx_base: usize,
    tx_base: usize,
    rx_tokens: Tokens<QUEUE>,
    tx_tokens: Tokens<QUEUE>,
    tx_len: [usize; QUEUE],
    tx_busy: u32,
    /// Bytes of virtio-net header before each frame.
    header: usize,
    /// Received chains dropped for an impossible used length.
    pub bad_lengths: u64,
}

fn buffer(base: usize, i: usize) -> &'static mut [u8] {
    // SAFETY: buffer `i < QUEUE` of an area of QUEUE × BUF_SIZE bytes the `Hal` allocated for
    // this device; the driver forms it only to hand it to the device or to read it after the
    // device returned it, never while the device holds it.
    unsafe { core::slice::from_raw_parts_mut((base + i * BUF_SIZE) as *mut u8, BUF_SIZE) }
}

impl<H: Hal, T: Transport> Nic<H, T> {
    /// Resets the device (whatever an earlier driver gave it dies with the reset), sets its
    /// queues up and gives it every receive buffer.
    pub fn new(transport: T) -> Result<Self, &'static str> {
        if transport.device_type() != DeviceType::Network {
            return Err("the device at the NIC's transport is not a network device");
        }
        let raw = VirtIONetRaw::<H, T, QUEUE>::new(transport)
            .map_err(|_| "virtio-net initialisation failed")?;
        let mut probe = [0u8; 16];
        let header = raw.fill_buffer_header(&mut probe).map_err(|_| "header")?;
        let pages = QUEUE * BUF_SIZE / PAGE_SIZE;
        let (_, rx) = H::dma_alloc(pages, BufferDirection::DeviceToDriver);
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
            bad_lengths: 0,
        };
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

    /// Receive buffers with the device.
    pub fn rx_posted(&self) -> usize {
        self.rx_tokens.len()
    }

    fn post_rx(&mut self, i: usize) -> Result<(), DeviceError> {
        // SAFETY: the buffer is ours (not with the device) and stays untouched until the
        // device returns it through `poll_receive`.
        let token = unsafe { self.raw.receive_begin(buffer(self.rx_base, i)) }
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
                    .transmit_complete(token, &buffer(self.tx_base, b)[..len])
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
        let b = (!self.tx_busy).trailing_zeros() as usize;
        let h = self.header;
        if b >= QUEUE || h + frame.len() > BUF_SIZE {
            return Ok(());
        }
        let buf = buffer(self.tx_base, b);
        let _ = self.raw.fill_buffer_header(buf);
        buf[h..h + frame.len()].copy_from_slice(frame);
        let len = h + frame.len();
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
        let buf = buffer(self.rx_base, b);
        // SAFETY: `buf` is the buffer given to `receive_begin` for `token`.
        let r = unsafe { self.raw.receive_complete(token, buf) };
        self.rx_tokens.remove(token);
        // virtio-drivers does not compare the used length with the buffer: we do.
        match r
            .map_err(|_| DeviceError::BadLength { token, len: 0 })
            .and_then(|(h, n)| rx_frame_len(token, h + n, self.header, BUF_SIZE))
        {
            Ok(n) => deliver(&buffer(self.rx_base, b)[self.header..self.header + n]),
            Err(_) => self.bad_lengths += 1,
        }
        self.post_rx(b)?;
        Ok(true)
    }
}
