//! The Amlogic "meson" UART (`amlogic,meson-gx-uart`): on the ODROID-C2 and C4, the console
//! (UART_AO, the kernel's) and UART_A (the serial driver PD's, docs/boards.md). It is not a
//! PL011: six 32-bit registers, a write FIFO, a read FIFO, a control word, a status word,
//! interrupt thresholds and the baud divisor (the layout of Linux's
//! `drivers/tty/serial/meson_uart.c` and of Amlogic's S905X3 datasheet, section 13.5.4, as
//! sDDF's meson driver quotes it).
//!
//! * [`MesonUart`]: the kernel console, transmitting only, polled, on the line the boot chain
//!   (U-Boot) left set up at 115200 8N1: it makes sure the transmitter is on and keeps the
//!   rest.
//! * [`MesonSerial`] (feature `serial-core`, on by default; the kernel leaves it off): the
//!   serial driver's `axolotl_serial_core::Uart`, interrupt-driven both ways.
//! * [`odroid_c4`], [`odroid_c2`]: the boards' UART_A, as their upstream device trees give it
//!   (checked by `kernel-config/tests/upstream_dtbs.rs`).
//!
//! Register access is the [`Regs`] trait: [`Mmio`] on hardware, a fake in the tests.
// Tests get std (the serial-core test links they share use its prelude).
#![cfg_attr(not(test), no_std)]

/// Register offsets (bytes).
pub mod reg {
    pub const WFIFO: usize = 0x00;
    pub const RFIFO: usize = 0x04;
    pub const CONTROL: usize = 0x08;
    pub const STATUS: usize = 0x0c;
    /// Interrupt thresholds (Linux's `AML_UART_MISC`, the datasheet's IRQ control).
    pub const MISC: usize = 0x10;
    /// Baud rate.
    pub const REG5: usize = 0x14;
    /// The register block's length (the DT's `reg` size, 0x18).
    pub const SIZE: usize = 0x18;
}

/// CONTROL bits.
pub mod control {
    pub const TX_EN: u32 = 1 << 12;
    pub const RX_EN: u32 = 1 << 13;
    /// No RTS/CTS: the two-wire mode Linux sets unless asked for hardware flow control.
    pub const TWO_WIRE_EN: u32 = 1 << 15;
    /// Stop bits: 0 is one.
    pub const STOP_BITS_MASK: u32 = 3 << 16;
    pub const PARITY_TYPE: u32 = 1 << 18;
    pub const PARITY_EN: u32 = 1 << 19;
    /// Data bits: 0 is eight.
    pub const DATA_LEN_MASK: u32 = 3 << 20;
    /// Reset the transmit / receive state machines and FIFOs while set.
    pub const TX_RST: u32 = 1 << 22;
    pub const RX_RST: u32 = 1 << 23;
    /// Clears STATUS's error bits while set; it does not clear itself.
    pub const CLEAR_ERR: u32 = 1 << 24;
    /// An interrupt each time a byte is written into the receive FIFO and it holds at least
    /// MISC's receive threshold.
    pub const RX_INT_EN: u32 = 1 << 27;
    /// An interrupt each time a byte is taken from the transmit FIFO and it holds fewer than
    /// MISC's transmit threshold.
    pub const TX_INT_EN: u32 = 1 << 28;
}

/// STATUS bits.
pub mod status {
    /// Bytes in the receive FIFO (bits 6..0).
    pub const RX_COUNT_MASK: u32 = 0x7f;
    pub const PARITY_ERR: u32 = 1 << 16;
    pub const FRAME_ERR: u32 = 1 << 17;
    /// The transmit FIFO was written while full (the byte lost).
    pub const TX_FIFO_WERR: u32 = 1 << 18;
    pub const RX_FULL: u32 = 1 << 19;
    pub const RX_EMPTY: u32 = 1 << 20;
    pub const TX_FULL: u32 = 1 << 21;
    pub const TX_EMPTY: u32 = 1 << 22;
    /// A byte arrived with the receive FIFO full and was lost.
    pub const RX_OVERFLOW: u32 = 1 << 24;
    pub const XMIT_BUSY: u32 = 1 << 25;
    pub const RECV_BUSY: u32 = 1 << 26;
    /// What [`super::control::CLEAR_ERR`] clears and the receive side reports.
    pub const RX_ERRORS: u32 = PARITY_ERR | FRAME_ERR | RX_OVERFLOW;
}

/// MISC fields.
pub mod misc {
    /// Receive interrupt once the receive FIFO holds `n` bytes (bits 7..0).
    pub const fn recv_irq(n: u32) -> u32 {
        n & 0xff
    }
    /// Transmit interrupt once the transmit FIFO holds fewer than `n` bytes (bits 15..8).
    pub const fn xmit_irq(n: u32) -> u32 {
        (n & 0xff) << 8
    }
}

/// REG5 bits.
pub mod reg5 {
    /// The divisor (bits 22..0).
    pub const BAUD_MASK: u32 = 0x7f_ffff;
    /// The divisor is used (not CONTROL's old 12-bit one).
    pub const BAUD_USE: u32 = 1 << 23;
    /// The baud clock is the crystal divided by 3, not clk81.
    pub const BAUD_XTAL: u32 = 1 << 24;
}

/// 32-bit register access at a byte offset into the UART's block.
pub trait Regs {
    /// `&self`: `Uart::irq_status` reads STATUS through a shared reference. A read of the
    /// read FIFO takes a byte: it is done through `&mut` owners only.
    fn read(&self, offset: usize) -> u32;
    fn write(&mut self, offset: usize, value: u32);
}

/// The registers of a UART mapped at a fixed address.
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// # Safety
    /// `base` must be the UART's register block (any alignment to 4 bytes: the C2's are at
    /// 0xc810_04c0 and 0xc110_84c0), mapped as device memory for as long as the value lives,
    /// and not used by anything else.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }
}

impl Regs for Mmio {
    fn read(&self, offset: usize) -> u32 {
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

/// A polled transmitter on a meson UART (the kernel console).
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
/// The console keeps U-Boot's divisor; the serial driver sets its own with it.
pub fn reg5_from_xtal(xtal_hz: u32, baud: u32) -> Option<u32> {
    if baud == 0 {
        return None;
    }
    let div = ((xtal_hz / 3) + baud / 2) / baud;
    let val = div
        .checked_sub(1)
        .filter(|&v| v > 0 && v <= reg5::BAUD_MASK)?;
    Some(val | reg5::BAUD_USE | reg5::BAUD_XTAL)
}

/// A meson UART of a board, as the board's upstream device tree gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardUart {
    /// The board (kernel-config's name).
    pub board: &'static str,
    /// For messages: "UART_A".
    pub name: &'static str,
    /// Its registers' physical address (not always page aligned: the C2's).
    pub base: u64,
    /// Its GIC interrupt (INTID).
    pub intid: u32,
    /// Whether the interrupt is edge-triggered (the SDF's `trigger="edge"`).
    pub edge: bool,
    /// Its FIFOs' depth (the DT's `fifo-size`; 64 when the DT says nothing).
    pub fifo: u32,
    /// The baud clock: the crystal (the DT's `baud` clock, `xtal`).
    pub xtal_hz: u32,
}

impl BoardUart {
    /// The page an SDF maps for it.
    pub const fn page(&self) -> u64 {
        self.base & !0xfff
    }

    /// Where its registers are in that page.
    pub const fn offset(&self) -> usize {
        (self.base & 0xfff) as usize
    }
}

/// The serial line's rate: what U-Boot's and the kernel's console use too.
pub const BAUD: u32 = 115_200;

/// ODROID-C4 (S905X3, "SM1").
pub mod odroid_c4 {
    use super::BoardUart;

    /// UART_A (`serial@24000` on the 0xffd0_0000 bus, SPI 26, edge-rising, 128-byte FIFOs):
    /// its TX and RX are GPIOX_12/13 (the 40-pin header's pins 8 and 10, by Hardkernel's
    /// pinout; not checked here) once those pins are muxed to it, which nothing here does
    /// (docs/boards.md).
    pub const UART_A: BoardUart = BoardUart {
        board: "odroid-c4",
        name: "UART_A",
        base: 0xffd2_4000,
        intid: 32 + 26,
        edge: true,
        fifo: 128,
        xtal_hz: 24_000_000,
    };
}

/// ODROID-C2 (S905, "GXBB").
pub mod odroid_c2 {
    use super::BoardUart;

    /// UART_A (`serial@84c0` on the 0xc110_0000 bus, SPI 26, edge-rising, 128-byte FIFOs),
    /// not page aligned: its page 0xc110_8000 holds UART_B's registers (0xc110_84dc) too.
    pub const UART_A: BoardUart = BoardUart {
        board: "odroid-c2",
        name: "UART_A",
        base: 0xc110_84c0,
        intid: 32 + 26,
        edge: true,
        fifo: 128,
        xtal_hz: 24_000_000,
    };
}

/// The UARTs the serial driver PD may be given, found by the page the SDF maps.
pub const DRIVER_UARTS: [BoardUart; 2] = [odroid_c4::UART_A, odroid_c2::UART_A];

/// The driver's UART whose page is at `paddr`.
pub fn driver_uart_at(paddr: u64) -> Option<BoardUart> {
    DRIVER_UARTS.iter().find(|u| u.page() == paddr).copied()
}

#[cfg(feature = "serial-core")]
mod serial;
#[cfg(feature = "serial-core")]
pub use serial::{InitError, MesonSerial};

#[cfg(test)]
mod tests;
