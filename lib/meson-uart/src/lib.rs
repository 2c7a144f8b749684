//! The Amlogic "meson" UART (`amlogic,meson-gx-uart`), the ODROID-C2's and C4's console
//! (UART_AO). It is not a PL011: six 32-bit registers, a write FIFO, a read FIFO, a control
//! word, a status word, interrupt thresholds and the baud divisor (the layout of Linux's
//! `drivers/tty/serial/meson_uart.c` and Amlogic's datasheets).
//!
//! The kernel console only transmits, polled, on the line the boot chain (U-Boot) left set
//! up at 115200 8N1: [`MesonUart::new`] makes sure the transmitter is on and keeps the rest.
//! Register access is the [`Regs`] trait: [`Mmio`] on hardware, a fake in the tests.
#![no_std]

/// Register offsets (bytes).
pub mod reg {
    pub const WFIFO: usize = 0x00;
    pub const RFIFO: usize = 0x04;
    pub const CONTROL: usize = 0x08;
    pub const STATUS: usize = 0x0c;
    pub const MISC: usize = 0x10;
    pub const REG5: usize = 0x14;
    /// The register block's length (the DT's `reg` size, 0x18).
    pub const SIZE: usize = 0x18;
}

/// CONTROL bits.
pub mod control {
    pub const TX_EN: u32 = 1 << 12;
    pub const RX_EN: u32 = 1 << 13;
    pub const TWO_WIRE_EN: u32 = 1 << 15;
    pub const STOP_BITS_MASK: u32 = 3 << 16;
    pub const PARITY_TYPE: u32 = 1 << 18;
    pub const PARITY_EN: u32 = 1 << 19;
    pub const DATA_LEN_MASK: u32 = 3 << 20;
    pub const TX_RST: u32 = 1 << 22;
    pub const RX_RST: u32 = 1 << 23;
    pub const CLEAR_ERR: u32 = 1 << 24;
    pub const RX_INT_EN: u32 = 1 << 27;
    pub const TX_INT_EN: u32 = 1 << 28;
}

/// STATUS bits.
pub mod status {
    pub const PARITY_ERR: u32 = 1 << 16;
    pub const FRAME_ERR: u32 = 1 << 17;
    pub const TX_FIFO_WERR: u32 = 1 << 18;
    pub const RX_EMPTY: u32 = 1 << 20;
    pub const TX_FULL: u32 = 1 << 21;
    pub const TX_EMPTY: u32 = 1 << 22;
    pub const XMIT_BUSY: u32 = 1 << 25;
}

/// 32-bit register access at a byte offset into the UART's block.
pub trait Regs {
    fn read(&mut self, offset: usize) -> u32;
    fn write(&mut self, offset: usize, value: u32);
}

/// The registers of a UART mapped at a fixed address.
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// # Safety
    /// `base` must be the UART's register block (any alignment to 4 bytes: the C2's is at
    /// 0xc810_04c0), mapped as device memory for as long as the value lives, and not used
    /// by anything else.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }
}

impl Regs for Mmio {
    fn read(&mut self, offset: usize) -> u32 {
        debug_assert!(offset < reg::SIZE && offset.is_multiple_of(4));
        // SAFETY: inside the block `new`'s caller vouched for.
        unsafe { ((self.base + offset) as *const u32).read_volatile() }
    }

    fn write(&mut self, offset: usize, value: u32) {
        debug_assert!(offset < reg::SIZE && offset.is_multiple_of(4));
        // SAFETY: as in `read`.
        unsafe { ((self.base + offset) as *mut u32).write_volatile(value) }
    }
}

/// A polled transmitter on a meson UART.
pub struct MesonUart<R: Regs> {
    regs: R,
}

impl<R: Regs> MesonUart<R> {
    /// Takes the UART as the boot chain left it; turns the transmitter on if it was off
    /// (line settings and the baud divisor are kept: U-Boot's console ran on them), and
    /// masks its interrupts, which nobody would take.
    pub fn new(mut regs: R) -> Self {
        let c = regs.read(reg::CONTROL);
        let want = (c | control::TX_EN) & !(control::TX_INT_EN | control::RX_INT_EN);
        if want != c {
            regs.write(reg::CONTROL, want);
        }
        Self { regs }
    }

    /// Sends one byte once the transmit FIFO has room.
    pub fn write_byte(&mut self, b: u8) {
        while self.regs.read(reg::STATUS) & status::TX_FULL != 0 {
            core::hint::spin_loop();
        }
        self.regs.write(reg::WFIFO, b as u32);
    }

    /// Whether everything written has left the wire.
    pub fn idle(&mut self) -> bool {
        let s = self.regs.read(reg::STATUS);
        s & status::TX_EMPTY != 0 && s & status::XMIT_BUSY == 0
    }

    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }
}

impl<R: Regs> core::fmt::Write for MesonUart<R> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            self.write_byte(b);
        }
        Ok(())
    }
}

/// The REG5 value for `baud` from the 24 MHz crystal divided by 3, as Linux programs the
/// gx UART (`AML_UART_BAUD_XTAL`, `AML_UART_BAUD_USE`): `None` if the divisor does not fit.
/// The console keeps U-Boot's divisor; this is for a driver that sets its own rate.
pub fn reg5_from_xtal(xtal_hz: u32, baud: u32) -> Option<u32> {
    const BAUD_MASK: u32 = 0x7f_ffff;
    const BAUD_USE: u32 = 1 << 23;
    const BAUD_XTAL: u32 = 1 << 24;
    if baud == 0 {
        return None;
    }
    let div = ((xtal_hz / 3) + baud / 2) / baud;
    let val = div.checked_sub(1).filter(|&v| v > 0 && v <= BAUD_MASK)?;
    Some(val | BAUD_USE | BAUD_XTAL)
}

#[cfg(test)]
mod tests;
