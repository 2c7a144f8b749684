//! What the driver needs from a UART, and nothing more.

/// A set of PL011 interrupt bits, in the PL011's own encoding (IMSC, RIS,
/// MIS and ICR share it), so the PL011 implementation passes it through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Irqs(u32);

impl Irqs {
    pub const NONE: Irqs = Irqs(0);
    /// Receive: the RX FIFO reached its trigger level (RXIM/RXRIS, bit 4).
    pub const RX: Irqs = Irqs(1 << 4);
    /// Transmit: the TX FIFO drained to its trigger level (TXIM/TXRIS, bit 5).
    pub const TX: Irqs = Irqs(1 << 5);
    /// Receive timeout: bytes wait in the RX FIFO below the trigger level
    /// (RTIM/RTRIS, bit 6). Always enabled together with [`Irqs::RX`].
    pub const RX_TIMEOUT: Irqs = Irqs(1 << 6);
    /// Framing, parity, break and overrun errors (bits 7..=10).
    pub const ERRORS: Irqs = Irqs(0xf << 7);
    /// Everything the driver ever enables or clears.
    pub const ALL: Irqs = Irqs(0x7ff);

    pub const fn from_bits(bits: u32) -> Irqs {
        Irqs(bits & Self::ALL.0)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn union(self, other: Irqs) -> Irqs {
        Irqs(self.0 | other.0)
    }

    pub const fn contains(self, other: Irqs) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Irqs) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for Irqs {
    type Output = Irqs;
    fn bitor(self, rhs: Irqs) -> Irqs {
        self.union(rhs)
    }
}

impl core::ops::BitAnd for Irqs {
    type Output = Irqs;
    fn bitand(self, rhs: Irqs) -> Irqs {
        Irqs(self.0 & rhs.0)
    }
}

/// A received byte that arrived damaged; the UART has already dropped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    Overrun,
    Break,
    Parity,
    Framing,
    /// The device handed back a receive buffer it cannot have filled (a virtio used length
    /// beyond the buffer): its bytes are dropped.
    Device,
}

/// The UART operations the serial driver uses. All of them are
/// non-blocking; the driver is interrupt-driven.
///
/// Interrupts may be levels (the PL011, the mini UART: raised while their cause holds) or
/// events (the meson UART, edge-triggered: raised when a byte enters the receive FIFO or
/// leaves the transmit FIFO, and only then). For the latter, [`Uart::irq_status`] reports
/// the enabled causes that hold now, as if they were levels: the driver looks at it right
/// after enabling an interrupt, since an event that came before is lost.
pub trait Uart {
    /// Puts `byte` into the TX FIFO if it has room; `false` when full (the
    /// byte was not taken).
    fn try_write(&mut self, byte: u8) -> bool;

    /// Takes one byte from the RX FIFO: `Ok(None)` when it is empty, an error
    /// for a byte received damaged (it is consumed either way).
    fn try_read(&mut self) -> Result<Option<u8>, RxError>;

    /// Sets the interrupt mask (IMSC): exactly the given interrupts are enabled.
    fn set_irq_mask(&mut self, mask: Irqs);

    /// Pending enabled interrupts (MIS); for a UART whose interrupts are events, the enabled
    /// causes that hold (receive: a byte waits; transmit: the FIFO has room).
    fn irq_status(&self) -> Irqs;

    /// Clears latched interrupts (ICR).
    fn clear_irqs(&mut self, irqs: Irqs);

    /// Hands bytes [`Uart::try_write`] took but kept back to the device. The driver calls it
    /// at the end of every poll: a UART that sends in buffers (virtio-console) holds a
    /// partly filled one until then. A FIFO's bytes are on their way already: nothing to do.
    fn flush(&mut self) {}
}

impl<U: Uart + ?Sized> Uart for &mut U {
    fn try_write(&mut self, byte: u8) -> bool {
        (**self).try_write(byte)
    }
    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        (**self).try_read()
    }
    fn set_irq_mask(&mut self, mask: Irqs) {
        (**self).set_irq_mask(mask)
    }
    fn irq_status(&self) -> Irqs {
        (**self).irq_status()
    }
    fn clear_irqs(&mut self, irqs: Irqs) {
        (**self).clear_irqs(irqs)
    }
    fn flush(&mut self) {
        (**self).flush()
    }
}
