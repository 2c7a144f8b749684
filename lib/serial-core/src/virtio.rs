//! A [`Uart`] over a virtio-console device's port 0 (virtio 1.x, 5.3), so that the serial
//! [`Server`](crate::Server), its ring clients and everything above them run unchanged on a
//! virtio-mmio console instead of a PL011 (docs/serial.md, "virtio-console").
//!
//! Only port 0, without `VIRTIO_CONSOLE_F_MULTIPORT`: queue 0 is its receiveq, queue 1 its
//! transmitq, and there are no control queues. The queues are `virtio-drivers`'
//! [`VirtQueue`]s; the buffers are two pages from the `Hal` (the driver PD's DMA region), cut
//! into [`CONSOLE_QUEUE`] buffers of [`CONSOLE_BUF`] bytes each way. `virtio-drivers`' own
//! `VirtIOConsole` boxes its receive buffer (it needs `alloc`, which driver PDs do not have)
//! and sends with a blocking wait, so it is not used.
//!
//! * Transmit: [`Uart::try_write`] appends to a buffer being filled, which goes to the device
//!   when full or at [`Uart::flush`] (the server calls it at the end of every poll); `false`
//!   only when every transmit buffer is with the device. The "TX" interrupt is the device
//!   handing a transmit buffer back.
//! * Receive: every receive buffer is posted at start; [`Uart::try_read`] takes the bytes of
//!   used buffers in order and posts each again once it is drained. Bytes the driver does not
//!   take stay in used buffers, and once none is posted the device keeps further input
//!   (QEMU holds it in the chardev): the same flow control as a full FIFO.
//! * Interrupts: the device's used-buffer notifications stay enabled (a missed one while
//!   re-enabling is a race a level-triggered FIFO status does not have); the interrupt mask
//!   only filters what [`Uart::irq_status`] reports, which is read from the used rings, not a
//!   register. [`Uart::clear_irqs`] acknowledges the device's interrupt.
//!
//! The device is not trusted: a used element naming a chain the driver never made available
//! (or already took back) is refused before `virtio-drivers` recycles anything — the queue
//! cannot be walked past it, so the driver gives up on the device as virtio says a driver
//! may (status `FAILED`, 2.1) and does nothing more with it ([`VirtioConsole::failed`]); the
//! PD then resets it ([`VirtioConsole::reset`]) and sets up a fresh console in its place. A receive buffer whose used length exceeds
//! it is dropped and posted again ([`RxError::Device`]).

use core::ptr::NonNull;

use virtio_drivers::device::common::Feature;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

use crate::uart::{Irqs, RxError, Uart};

/// Descriptors per virtqueue, and buffers each way.
pub const CONSOLE_QUEUE: usize = 16;
/// Bytes of one buffer: each direction's buffers share one page.
pub const CONSOLE_BUF: usize = PAGE_SIZE / CONSOLE_QUEUE;
/// Pages of DMA memory a console takes from its `Hal`: the two buffer pages and two virtqueues
/// of two pages each (descriptor table and available ring; used ring).
pub const CONSOLE_DMA_PAGES: usize = 6;

/// Port 0's receiveq and transmitq (5.3.2, without `VIRTIO_CONSOLE_F_MULTIPORT`).
const RECEIVEQ: u16 = 0;
const TRANSMITQ: u16 = 1;

const _: () = assert!(CONSOLE_QUEUE <= 32 && CONSOLE_BUF * CONSOLE_QUEUE == PAGE_SIZE);

/// How the device broke virtio's rules, after which the driver gave up on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceFault {
    /// A used element named descriptor `id` of `queue`, which the driver had not made
    /// available (or had taken back already).
    UnknownId { queue: u16, id: u16 },
    /// `virtio-drivers` refused to take back a chain the driver had checked.
    Queue { queue: u16 },
    /// Not a fault of the device: the driver reset it ([`VirtioConsole::reset`]).
    Reset,
}

/// Why a console could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleError {
    /// The transport's device is not a console.
    NotAConsole,
    /// The device does not offer `VIRTIO_F_VERSION_1`.
    NotVirtio1,
    /// A queue could not be set up (too small, already in use, or no DMA memory).
    Queue(u16),
    /// The `Hal` had no memory for the buffers.
    NoMemory,
}

/// Counters for the PD to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleStats {
    /// Transmit buffers handed to the device.
    pub tx_buffers: u64,
    /// Receive buffers the device handed back.
    pub rx_buffers: u64,
    /// Of those, with a used length beyond the buffer (dropped).
    pub bad_lengths: u64,
}

/// A received buffer being drained.
#[derive(Clone, Copy)]
struct Draining {
    buf: u16,
    at: u16,
    len: u16,
}

/// The console's port 0 as a [`Uart`].
pub struct VirtioConsole<H: Hal, T: Transport> {
    transport: T,
    rxq: VirtQueue<H, CONSOLE_QUEUE>,
    txq: VirtQueue<H, CONSOLE_QUEUE>,
    rx_base: NonNull<u8>,
    tx_base: NonNull<u8>,
    /// Per descriptor id (virtio-drivers' token): the buffer the chain holds, while the device has it.
    rx_chain: [Option<u16>; CONSOLE_QUEUE],
    tx_chain: [Option<(u16, u16)>; CONSOLE_QUEUE],
    /// Transmit buffers with the device (bit per buffer).
    tx_busy: u32,
    /// The transmit buffer being filled and its length.
    tx_fill: Option<(u16, u16)>,
    rx_cur: Option<Draining>,
    mask: Irqs,
    failed: Option<DeviceFault>,
    stats: ConsoleStats,
}

impl<H: Hal, T: Transport> VirtioConsole<H, T> {
    /// Resets the device (whatever an earlier driver gave it is forgotten with the reset),
    /// negotiates nothing but `VIRTIO_F_VERSION_1`, sets up port 0's queues with buffers from
    /// `H` and posts every receive buffer.
    pub fn new(mut transport: T) -> Result<Self, ConsoleError> {
        if transport.device_type() != DeviceType::Console {
            return Err(ConsoleError::NotAConsole);
        }
        let features = transport.begin_init(Feature::VERSION_1);
        if !features.contains(Feature::VERSION_1) {
            transport.set_status(DeviceStatus::FAILED);
            return Err(ConsoleError::NotVirtio1);
        }
        let (rx_paddr, rx_base) = H::dma_alloc(1, BufferDirection::DeviceToDriver);
        let (tx_paddr, tx_base) = H::dma_alloc(1, BufferDirection::DriverToDevice);
        if rx_paddr == 0 || tx_paddr == 0 {
            transport.set_status(DeviceStatus::FAILED);
            return Err(ConsoleError::NoMemory);
        }
        let rxq = VirtQueue::new(&mut transport, RECEIVEQ, false, false)
            .map_err(|_| ConsoleError::Queue(RECEIVEQ))?;
        let txq = VirtQueue::new(&mut transport, TRANSMITQ, false, false)
            .map_err(|_| ConsoleError::Queue(TRANSMITQ))?;
        transport.finish_init();
        let mut c = VirtioConsole {
            transport,
            rxq,
            txq,
            rx_base,
            tx_base,
            rx_chain: [None; CONSOLE_QUEUE],
            tx_chain: [None; CONSOLE_QUEUE],
            tx_busy: 0,
            tx_fill: None,
            rx_cur: None,
            mask: Irqs::NONE,
            failed: None,
            stats: ConsoleStats::default(),
        };
        for b in 0..CONSOLE_QUEUE as u16 {
            c.post_rx(b);
        }
        Ok(c)
    }

    /// How the device broke the rules, if it did: from then on nothing is sent or received.
    pub fn failed(&self) -> Option<DeviceFault> {
        self.failed
    }

    /// Resets the device (status 0: it forgets its queues and writes nothing more into the
    /// driver's memory) and leaves this console inert, as after [`VirtioConsole::failed`]:
    /// the way to a fresh console over the same DMA memory.
    pub fn reset(&mut self) {
        self.transport.set_status(DeviceStatus::empty());
        self.failed.get_or_insert(DeviceFault::Reset);
    }

    pub fn stats(&self) -> ConsoleStats {
        self.stats
    }

    fn fail(&mut self, f: DeviceFault) {
        if self.failed.is_none() {
            self.failed = Some(f);
            // Virtio 2.1: the driver has given up on the device.
            let s = self.transport.get_status();
            self.transport.set_status(s | DeviceStatus::FAILED);
        }
    }

    fn rx_buf(&mut self, b: u16) -> &'static mut [u8] {
        // SAFETY: buffer `b < CONSOLE_QUEUE` of the page `H` gave for receiving, formed only
        // while the device does not hold it (to post it, or after it came back).
        unsafe {
            core::slice::from_raw_parts_mut(
                self.rx_base.as_ptr().add(usize::from(b) * CONSOLE_BUF),
                CONSOLE_BUF,
            )
        }
    }

    fn tx_buf(&mut self, b: u16) -> &'static mut [u8] {
        // SAFETY: as `rx_buf`, in the transmit page.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.tx_base.as_ptr().add(usize::from(b) * CONSOLE_BUF),
                CONSOLE_BUF,
            )
        }
    }

    fn post_rx(&mut self, b: u16) {
        if self.failed.is_some() {
            return;
        }
        let buf = self.rx_buf(b);
        // SAFETY: the buffer stays untouched until `pop_used` gives its token back.
        match unsafe { self.rxq.add(&[], &mut [buf]) } {
            Ok(id) if usize::from(id) < CONSOLE_QUEUE => {
                self.rx_chain[usize::from(id)] = Some(b);
                if self.rxq.should_notify() {
                    self.transport.notify(RECEIVEQ);
                }
            }
            // Cannot happen: one descriptor per buffer, as many descriptors as buffers.
            _ => self.fail(DeviceFault::Queue { queue: RECEIVEQ }),
        }
    }

    /// Takes back the transmit buffers the device is done with.
    fn reap_tx(&mut self) {
        while self.failed.is_none() {
            let Some(id) = self.txq.peek_used() else {
                return;
            };
            let Some((b, len)) = self.tx_chain.get(usize::from(id)).copied().flatten() else {
                self.fail(DeviceFault::UnknownId {
                    queue: TRANSMITQ,
                    id,
                });
                return;
            };
            let buf = &self.tx_buf(b)[..usize::from(len)];
            // SAFETY: the buffer `add` was given for this token.
            if unsafe { self.txq.pop_used(id, &[buf], &mut []) }.is_err() {
                self.fail(DeviceFault::Queue { queue: TRANSMITQ });
                return;
            }
            self.tx_chain[usize::from(id)] = None;
            self.tx_busy &= !(1 << b);
        }
    }

    /// Hands the buffer being filled to the device.
    fn submit_tx(&mut self) {
        let Some((b, len)) = self.tx_fill else {
            return;
        };
        if len == 0 || self.failed.is_some() {
            return;
        }
        let buf = &self.tx_buf(b)[..usize::from(len)];
        // SAFETY: the buffer stays untouched until `pop_used` gives its token back.
        match unsafe { self.txq.add(&[buf], &mut []) } {
            Ok(id) if usize::from(id) < CONSOLE_QUEUE => {
                self.tx_chain[usize::from(id)] = Some((b, len));
                self.tx_busy |= 1 << b;
                self.tx_fill = None;
                self.stats.tx_buffers += 1;
                if self.txq.should_notify() {
                    self.transport.notify(TRANSMITQ);
                }
            }
            // Cannot happen: a buffer being filled is not with the device, so a descriptor is free.
            _ => self.fail(DeviceFault::Queue { queue: TRANSMITQ }),
        }
    }

    /// The next used receive buffer, checked, as the one being drained.
    fn take_rx(&mut self) -> Result<bool, RxError> {
        if self.failed.is_some() {
            return Ok(false);
        }
        let Some(id) = self.rxq.peek_used() else {
            return Ok(false);
        };
        let Some(b) = self.rx_chain.get(usize::from(id)).copied().flatten() else {
            self.fail(DeviceFault::UnknownId {
                queue: RECEIVEQ,
                id,
            });
            return Ok(false);
        };
        let buf = self.rx_buf(b);
        // SAFETY: the buffer `add` was given for this token.
        let len = match unsafe { self.rxq.pop_used(id, &[], &mut [buf]) } {
            Ok(len) => len,
            Err(_) => {
                self.fail(DeviceFault::Queue { queue: RECEIVEQ });
                return Ok(false);
            }
        };
        self.rx_chain[usize::from(id)] = None;
        self.stats.rx_buffers += 1;
        // virtio-drivers does not compare the used length with the buffer: we do.
        if len as usize > CONSOLE_BUF {
            self.stats.bad_lengths += 1;
            self.post_rx(b);
            return Err(RxError::Device);
        }
        if len == 0 {
            self.post_rx(b);
        } else {
            self.rx_cur = Some(Draining {
                buf: b,
                at: 0,
                len: len as u16,
            });
        }
        Ok(true)
    }

    /// Whether received bytes wait (drained or not yet taken).
    fn rx_waiting(&self) -> bool {
        self.failed.is_none() && (self.rx_cur.is_some() || self.rxq.can_pop())
    }
}

impl<H: Hal, T: Transport> Uart for VirtioConsole<H, T> {
    fn try_write(&mut self, byte: u8) -> bool {
        if self.failed.is_some() {
            return false;
        }
        if self.tx_fill.is_none() {
            self.reap_tx();
            let free = !self.tx_busy & ((1u64 << CONSOLE_QUEUE) - 1) as u32;
            if free == 0 || self.failed.is_some() {
                return false;
            }
            self.tx_fill = Some((free.trailing_zeros() as u16, 0));
        }
        let Some((b, len)) = self.tx_fill else {
            return false;
        };
        self.tx_buf(b)[usize::from(len)] = byte;
        self.tx_fill = Some((b, len + 1));
        if usize::from(len) + 1 == CONSOLE_BUF {
            self.submit_tx();
        }
        true
    }

    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        loop {
            if let Some(d) = self.rx_cur {
                let byte = self.rx_buf(d.buf)[usize::from(d.at)];
                if d.at + 1 >= d.len {
                    self.rx_cur = None;
                    self.post_rx(d.buf);
                } else {
                    self.rx_cur = Some(Draining { at: d.at + 1, ..d });
                }
                return Ok(Some(byte));
            }
            if !self.take_rx()? {
                return Ok(None);
            }
        }
    }

    fn set_irq_mask(&mut self, mask: Irqs) {
        self.mask = mask;
    }

    fn irq_status(&self) -> Irqs {
        let mut s = Irqs::NONE;
        if self.rx_waiting() {
            s = s | Irqs::RX | Irqs::RX_TIMEOUT;
        }
        if self.failed.is_none() && self.txq.can_pop() {
            s = s | Irqs::TX;
        }
        s & self.mask
    }

    fn clear_irqs(&mut self, _: Irqs) {
        // One interrupt line for both queues: acknowledged whatever was asked, or a masked
        // used-buffer notification would keep it raised. Called before the server's poll,
        // which then sees everything the acknowledged interrupt announced.
        self.transport.ack_interrupt();
    }

    fn flush(&mut self) {
        self.reap_tx();
        self.submit_tx();
    }
}
