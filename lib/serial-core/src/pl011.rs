//! [`Uart`] for an Arm PL011 through the `arm-pl011-uart` crate.
//!
//! That crate's API covers the interrupt-driven use completely: FIFO flags
//! (`is_tx_fifo_full`), a non-blocking `read_word` that reports the DR error
//! bits, `set_interrupt_fifo_levels` (IFLS), `set_interrupt_masks` (IMSC),
//! `masked_interrupt_status` (MIS) and `clear_interrupts` (ICR), all as
//! volatile accesses through `safe-mmio`, and `enable` programs IBRD/FBRD,
//! LCR_H (FIFOs on, 8N1) and CR (UARTEN, TXE, RXE) in the documented order
//! (disable first). So no register block of our own.

use core::ptr::NonNull;

use arm_pl011_uart::{
    DataBits, Error, FifoLevel, Interrupts, LineConfig, PL011Registers, Parity, StopBits,
    UniqueMmioPointer,
};

use crate::uart::{Irqs, RxError, Uart};

/// QEMU `virt`'s second PL011 (the driver's; the first is the kernel console).
pub const QEMU_VIRT_UART1_BASE: usize = 0x0904_0000;
/// Its interrupt: SPI 8, GIC INTID 40, level-triggered.
pub const QEMU_VIRT_UART1_INTID: u32 = 40;
/// QEMU's PL011 reference clock (`apb-pclk`, 24 MHz); the baud rate does not
/// matter to QEMU but the divisor must be valid.
pub const QEMU_VIRT_UARTCLK: u32 = 24_000_000;

/// A PL011 owned by the driver.
pub struct Pl011 {
    uart: arm_pl011_uart::Uart<'static>,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the PL011's 4 KiB register block, mapped as device
    /// memory for the rest of the program, and nothing else may access it.
    pub unsafe fn new(base: NonNull<u8>) -> Self {
        // SAFETY: forwarded to our caller.
        let regs = unsafe { UniqueMmioPointer::new(base.cast::<PL011Registers>()) };
        Self {
            uart: arm_pl011_uart::Uart::new(regs),
        }
    }

    /// (Re)initialises the UART from whatever state a previous incarnation
    /// left: disables it, programs 8N1 with FIFOs at `baud` from a
    /// `uartclk` reference, interrupt trigger levels at half full (RX) and
    /// half empty (TX), all interrupts masked and cleared, then enables it.
    pub fn init(&mut self, baud: u32, uartclk: u32) -> Result<(), InitError> {
        self.uart.set_interrupt_masks(Interrupts::empty());
        let config = LineConfig {
            data_bits: DataBits::Bits8,
            parity: Parity::None,
            stop_bits: StopBits::One,
        };
        self.uart
            .enable(config, baud, uartclk)
            .map_err(|_| InitError::BadBaudRate)?;
        self.uart
            .set_interrupt_fifo_levels(FifoLevel::Bytes16, FifoLevel::Bytes16);
        self.uart.clear_interrupts(Interrupts::all());
        Ok(())
    }

    /// Whether the peripheral ID registers name a PL011.
    pub fn is_pl011(&self) -> bool {
        self.uart.read_identification().is_valid()
    }

    /// The transmitter is still shifting bytes out.
    pub fn is_busy(&self) -> bool {
        self.uart.is_busy()
    }
}

/// `Pl011::init` failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// No valid divisor for this baud rate and clock.
    BadBaudRate,
}

impl Uart for Pl011 {
    fn try_write(&mut self, byte: u8) -> bool {
        if self.uart.is_tx_fifo_full() {
            return false;
        }
        self.uart.write_word(byte);
        true
    }

    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        self.uart.read_word().map_err(|e| match e {
            Error::Overrun => RxError::Overrun,
            Error::Break => RxError::Break,
            Error::Parity => RxError::Parity,
            Error::Framing | Error::InvalidParameter => RxError::Framing,
        })
    }

    fn set_irq_mask(&mut self, mask: Irqs) {
        self.uart
            .set_interrupt_masks(Interrupts::from_bits_truncate(mask.bits()));
    }

    fn irq_status(&self) -> Irqs {
        Irqs::from_bits(self.uart.masked_interrupt_status().bits())
    }

    fn clear_irqs(&mut self, irqs: Irqs) {
        self.uart
            .clear_interrupts(Interrupts::from_bits_truncate(irqs.bits()));
    }
}
