//! The Broadcom auxiliary mini UART (`brcm,bcm2835-aux-uart`, the Raspberry Pi's "UART1"):
//! what QEMU's `raspi4b` puts on its second `-serial`, and what resilient-echo's serial
//! driver serves its clients over on the Pi (docs/boards.md, docs/serial.md).
//!
//! It is not a PL011 and not quite a 16550: a page of "auxiliary" peripherals (the mini UART
//! and two SPI masters) with a shared interrupt status and an enable word; the mini UART's
//! registers at +0x40 are 16550-like (IO, IER, IIR, LCR, MCR, LSR) plus three of its own
//! (CNTL, STAT, BAUD). 8-deep FIFOs both ways, 7 or 8 data bits, no parity, one stop bit;
//! the only receive error it reports is overrun. Its baud rate comes from the VPU's core
//! clock: `clock / (8 * (BAUD + 1))`.
//!
//! Layout and behaviour: the BCM2835 ARM Peripherals datasheet (section 2) with the errata
//! eLinux keeps (IER's bits 0 and 1 are receive and transmit, as on a 16550, not as the
//! datasheet prints), Linux's `8250_bcm2835aux.c` (which drives it as a 16550) and QEMU's
//! `hw/char/bcm2835_aux.c` (what the tests boot on).
//!
//! Register access is the [`Regs`] trait, at offsets into the aux *page* (what an SDF maps):
//! [`Mmio`] on hardware, a fake in the tests.
// Tests get std (the serial-core test links they share use its prelude).
#![cfg_attr(not(test), no_std)]

use axolotl_serial_core::{Irqs, RxError, Uart};

/// Register offsets (bytes) into the aux page.
pub mod reg {
    /// Which of the three aux peripherals has an interrupt pending (bit 0: the mini UART).
    pub const AUX_IRQ: usize = 0x00;
    /// Which of them is enabled (bit 0: the mini UART); a disabled one's registers cannot
    /// be read or written.
    pub const AUX_ENABLES: usize = 0x04;
    /// The mini UART's registers start here.
    pub const MU: usize = 0x40;
    pub const IO: usize = MU;
    pub const IER: usize = MU + 0x04;
    pub const IIR: usize = MU + 0x08;
    pub const LCR: usize = MU + 0x0c;
    pub const MCR: usize = MU + 0x10;
    pub const LSR: usize = MU + 0x14;
    pub const MSR: usize = MU + 0x18;
    pub const SCRATCH: usize = MU + 0x1c;
    pub const CNTL: usize = MU + 0x20;
    pub const STAT: usize = MU + 0x24;
    pub const BAUD: usize = MU + 0x28;
    /// The mini UART's block length (the DT's `reg` size for `uart1`).
    pub const MU_SIZE: usize = 0x40;
    /// The page the aux peripherals live in.
    pub const PAGE: usize = 0x1000;
}

/// AUX_ENABLES bits.
pub const ENABLE_MINI_UART: u32 = 1 << 0;

/// IER bits (16550 numbering; the datasheet has them swapped, its errata does not).
pub mod ier {
    pub const RX: u32 = 1 << 0;
    pub const TX: u32 = 1 << 1;
    /// Marked "don't care" in the datasheet; its errata says receive interrupts need them.
    pub const RX_REQUIRED: u32 = 3 << 2;
}

/// IIR written: clear the receive (bit 1) and transmit (bit 2) FIFOs.
pub const IIR_CLEAR_FIFOS: u32 = 0b110;

/// LCR: 8 data bits (the datasheet says bit 0 alone; its errata says both bits 0 and 1).
pub const LCR_8BIT: u32 = 0b11;

/// LSR bits.
pub mod lsr {
    /// The receive FIFO holds at least one byte.
    pub const DATA_READY: u32 = 1 << 0;
    /// A byte was lost because the receive FIFO was full; cleared by reading LSR.
    pub const OVERRUN: u32 = 1 << 1;
    /// The transmit FIFO can take at least one byte.
    pub const TX_EMPTY: u32 = 1 << 5;
    /// The transmit FIFO is empty and the transmitter idle.
    pub const TX_IDLE: u32 = 1 << 6;
}

/// STAT bits (side-effect free, unlike LSR).
pub mod stat {
    /// The receive FIFO holds at least one byte.
    pub const SYMBOL_AVAILABLE: u32 = 1 << 0;
    /// The transmit FIFO can take at least one byte.
    pub const SPACE_AVAILABLE: u32 = 1 << 1;
    /// The transmit FIFO is empty: the transmit interrupt's cause (a 16550's THRE).
    pub const TX_FIFO_EMPTY: u32 = 1 << 8;
}

/// CNTL bits.
pub mod cntl {
    pub const RX_ENABLE: u32 = 1 << 0;
    pub const TX_ENABLE: u32 = 1 << 1;
}

/// Raspberry Pi 4 (BCM2711): the aux page and the mini UART's interrupt, as the upstream
/// device tree `bcm2711-rpi-4-b.dtb` gives them (checked by
/// `kernel-config/tests/upstream_dtbs.rs`) and QEMU's `raspi4b` models them.
pub mod rpi4b {
    /// The aux block (bus address 0x7e21_5000 through `/soc` ranges).
    pub const AUX_BASE: usize = 0xfe21_5000;
    /// The mini UART's registers (`uart1`, bus 0x7e21_5040).
    pub const MINI_UART_BASE: usize = AUX_BASE + super::reg::MU;
    /// SPI 93, level-high: GIC INTID 125. Shared with the aux SPI masters.
    pub const MINI_UART_INTID: u32 = 125;
    /// The VPU core clock the mini UART divides (`core_freq` 500 MHz on the Pi 4, which
    /// the firmware keeps fixed under `enable_uart=1`; unverified on hardware, and QEMU
    /// ignores the divisor).
    pub const CORE_CLOCK_HZ: u32 = 500_000_000;
}

/// 32-bit register access at a byte offset into the aux page.
pub trait Regs {
    /// `&self`: [`Uart::irq_status`] reads through a shared reference. A register whose
    /// read has side effects (IO, LSR) is read through `&mut MiniUart` only.
    fn read(&self, offset: usize) -> u32;
    fn write(&mut self, offset: usize, value: u32);
}

/// The aux page mapped at a fixed address.
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// # Safety
    /// `base` must be the aux page, mapped as device memory for as long as the value lives,
    /// and not used by anything else.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }
}

impl Regs for Mmio {
    fn read(&self, offset: usize) -> u32 {
        debug_assert!(offset < reg::PAGE && offset.is_multiple_of(4));
        // SAFETY: inside the page `new`'s caller vouched for.
        unsafe { ((self.base + offset) as *const u32).read_volatile() }
    }

    fn write(&mut self, offset: usize, value: u32) {
        debug_assert!(offset < reg::PAGE && offset.is_multiple_of(4));
        // SAFETY: as in `read`.
        unsafe { ((self.base + offset) as *mut u32).write_volatile(value) }
    }
}

/// The BAUD register for `baud` from a `clock_hz` core clock, rounded to the nearest rate:
/// `None` if it does not fit its 16 bits (or `baud` is 0).
pub fn baud_divisor(clock_hz: u32, baud: u32) -> Option<u32> {
    if baud == 0 {
        return None;
    }
    let eight = 8 * baud as u64;
    let div = (clock_hz as u64 + eight / 2) / eight;
    div.checked_sub(1)
        .filter(|&d| d <= 0xffff)
        .map(|d| d as u32)
}

/// `MiniUart::init` failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// No divisor for this baud rate and clock.
    BadBaudRate,
    /// The mini UART does not answer: its enable bit did not stick, or its transmitter
    /// does not report empty after its FIFOs were cleared (nothing, or not a mini UART, at
    /// this page).
    NotThere,
}

/// The mini UART, owned by the serial driver: interrupt-driven, as [`Uart`] wants.
pub struct MiniUart<R: Regs> {
    regs: R,
    /// What IER was last set to, in [`Irqs`] terms: the interrupt status is computed from
    /// it and LSR (IIR names one cause at a time, and both may be pending).
    mask: Irqs,
}

impl<R: Regs> MiniUart<R> {
    pub fn new(regs: R) -> Self {
        Self {
            regs,
            mask: Irqs::NONE,
        }
    }

    /// (Re)initialises the mini UART from whatever a previous incarnation (or the
    /// firmware) left: enables it in AUX_ENABLES (keeping the SPI masters' bits), stops
    /// both directions, masks its interrupts, sets 8N1 at `baud` from `clock_hz`, clears
    /// both FIFOs, then starts both directions.
    pub fn init(&mut self, baud: u32, clock_hz: u32) -> Result<(), InitError> {
        let divisor = baud_divisor(clock_hz, baud).ok_or(InitError::BadBaudRate)?;
        // First: a disabled mini UART's registers ignore every access.
        let en = self.regs.read(reg::AUX_ENABLES);
        if en & ENABLE_MINI_UART == 0 {
            self.regs.write(reg::AUX_ENABLES, en | ENABLE_MINI_UART);
        }
        if self.regs.read(reg::AUX_ENABLES) & ENABLE_MINI_UART == 0 {
            return Err(InitError::NotThere);
        }
        self.regs.write(reg::CNTL, 0);
        self.regs.write(reg::IER, 0);
        self.mask = Irqs::NONE;
        self.regs.write(reg::LCR, LCR_8BIT);
        self.regs.write(reg::MCR, 0);
        self.regs.write(reg::BAUD, divisor);
        self.regs.write(reg::IIR, IIR_CLEAR_FIFOS);
        // Clears a stale overrun too.
        let lsr = self.regs.read(reg::LSR);
        if lsr & lsr::TX_EMPTY == 0 {
            return Err(InitError::NotThere);
        }
        self.regs
            .write(reg::CNTL, cntl::RX_ENABLE | cntl::TX_ENABLE);
        Ok(())
    }

    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }
}

impl<R: Regs> Uart for MiniUart<R> {
    fn try_write(&mut self, byte: u8) -> bool {
        // STAT, not LSR: reading LSR would clear an overrun `try_read` has yet to report.
        if self.regs.read(reg::STAT) & stat::SPACE_AVAILABLE == 0 {
            return false;
        }
        self.regs.write(reg::IO, byte as u32);
        true
    }

    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        // Reading LSR clears OVERRUN: the loss is reported once, and the bytes that did fit
        // stay in the FIFO for the next call.
        let lsr = self.regs.read(reg::LSR);
        if lsr & lsr::OVERRUN != 0 {
            return Err(RxError::Overrun);
        }
        if lsr & lsr::DATA_READY == 0 {
            return Ok(None);
        }
        Ok(Some(self.regs.read(reg::IO) as u8))
    }

    fn set_irq_mask(&mut self, mask: Irqs) {
        let mut ier = 0;
        if mask.intersects(Irqs::RX | Irqs::RX_TIMEOUT) {
            ier |= ier::RX | ier::RX_REQUIRED;
        }
        if mask.contains(Irqs::TX) {
            ier |= ier::TX;
        }
        self.mask = mask & (Irqs::RX | Irqs::RX_TIMEOUT | Irqs::TX);
        self.regs.write(reg::IER, ier);
    }

    /// The enabled causes that hold, from STAT (no side effects; IIR names one cause at a
    /// time). A receive cause is reported as [`Irqs::RX`]: the mini UART has no timeout
    /// interrupt, its receive interrupt holds while any byte waits.
    fn irq_status(&self) -> Irqs {
        let stat = self.regs.read(reg::STAT);
        let mut pending = Irqs::NONE;
        if self.mask.intersects(Irqs::RX | Irqs::RX_TIMEOUT) && stat & stat::SYMBOL_AVAILABLE != 0 {
            pending = pending | Irqs::RX;
        }
        if self.mask.contains(Irqs::TX) && stat & stat::TX_FIFO_EMPTY != 0 {
            pending = pending | Irqs::TX;
        }
        pending
    }

    /// Nothing to clear: the mini UART's interrupts are levels that drop when their cause
    /// goes (the receive FIFO read empty, the transmit FIFO filled or the cause masked).
    fn clear_irqs(&mut self, _irqs: Irqs) {}
}

#[cfg(test)]
mod tests;
