//! The meson UART as the serial driver's `Uart` (UART_A on the ODROIDs).
//!
//! Its interrupts are events, not levels: one each time a byte enters the receive FIFO
//! (with RX_INT_EN set and the FIFO at MISC's receive threshold, here 1) and each time a
//! byte leaves the transmit FIFO (with TX_INT_EN set and the FIFO below MISC's transmit
//! threshold, here half its depth); the DTs declare them edge-rising. Nothing latches in the
//! UART and nothing is cleared; [`Uart::irq_status`] reports the enabled causes that hold
//! (a byte waits; the transmit FIFO has room), which serial-core's server looks at right
//! after it enables an interrupt, so that what happened before the enable is not waited for.
//!
//! Receive errors are sticky STATUS bits, cleared all at once by pulsing CONTROL's
//! CLEAR_ERR; they do not say which byte was damaged. An overflow (bytes lost to a full
//! FIFO) is reported once and consumes nothing: the bytes that fit are good. A framing or
//! parity error is blamed on the byte at the head of the receive FIFO, as Linux blames it
//! (`meson_receive_chars` flags the next byte it reads), and that byte is dropped. The
//! damaged byte is still in the FIFO when its error is first seen (every read of the FIFO
//! comes after a look at STATUS), so the blame is right whenever the driver reads the FIFO
//! as bytes come (an event each); with input queued behind flow control it may fall on a
//! good byte before the damaged one, which the hardware gives no way to tell apart.

use axolotl_serial_core::{Irqs, RxError, Uart};

use crate::{Regs, control, misc, reg, reg5_from_xtal, status};

/// `MesonSerial::init` failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// No divisor for this baud rate and crystal.
    BadBaudRate,
    /// A FIFO depth MISC's thresholds cannot express (2 to 256 bytes).
    BadFifo,
    /// The UART does not answer: its enables or its divisor did not stick (nothing at this
    /// address, or its clock gated).
    NotThere,
}

/// Receive errors seen in STATUS (and cleared there), not yet reported.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    overrun: bool,
    damaged: Option<RxError>,
}

/// A meson UART owned by the serial driver: interrupt-driven, as serial-core's `Uart` wants.
pub struct MesonSerial<R: Regs> {
    regs: R,
    fifo: u32,
    /// What CONTROL's interrupt enables were last set to, in [`Irqs`] terms.
    mask: Irqs,
    pending: Pending,
}

impl<R: Regs> MesonSerial<R> {
    /// A UART with FIFOs `fifo` bytes deep (the board's [`crate::BoardUart::fifo`]).
    pub fn new(regs: R, fifo: u32) -> Self {
        Self {
            regs,
            fifo,
            mask: Irqs::NONE,
            pending: Pending::default(),
        }
    }

    /// (Re)initialises the UART from whatever a previous incarnation (or the boot chain)
    /// left: interrupts off first, errors cleared, 8N1 without flow control at `baud` from
    /// the `xtal_hz` crystal, interrupt thresholds at one received byte and half the
    /// transmit FIFO, both directions on.
    ///
    /// The FIFOs are reset and the error bits cleared only if the UART was not running (its
    /// first start: what they hold is nobody's). A restarted driver finds both directions on
    /// and keeps them: the receive FIFO holds input no one has read and the errors that go
    /// with it (reported by the first reads), the transmit FIFO the tails of messages its
    /// predecessor completed to their clients.
    pub fn init(&mut self, baud: u32, xtal_hz: u32) -> Result<(), InitError> {
        let divisor = reg5_from_xtal(xtal_hz, baud).ok_or(InitError::BadBaudRate)?;
        if !(2..=256).contains(&self.fifo) {
            return Err(InitError::BadFifo);
        }
        let both = control::TX_EN | control::RX_EN;
        let was = self.regs.read(reg::CONTROL);
        let running = was & both == both;
        let mut c = was & !(control::TX_INT_EN | control::RX_INT_EN);
        self.mask = Irqs::NONE;
        self.pending = Pending::default();
        if c != was {
            self.regs.write(reg::CONTROL, c);
        }
        if !running {
            let reset = control::CLEAR_ERR | control::TX_RST | control::RX_RST;
            self.regs.write(reg::CONTROL, c | reset);
            self.regs.write(reg::CONTROL, c);
        }
        c &= !(control::DATA_LEN_MASK
            | control::PARITY_EN
            | control::PARITY_TYPE
            | control::STOP_BITS_MASK
            | control::CLEAR_ERR
            | control::TX_RST
            | control::RX_RST);
        c |= control::TWO_WIRE_EN;
        // The same divisor as before on a restart: not rewritten under a byte on the wire.
        if self.regs.read(reg::REG5) != divisor {
            self.regs.write(reg::REG5, divisor);
        }
        self.regs
            .write(reg::MISC, misc::recv_irq(1) | misc::xmit_irq(self.fifo / 2));
        c |= both;
        self.regs.write(reg::CONTROL, c);
        if self.regs.read(reg::CONTROL) & both != both || self.regs.read(reg::REG5) != divisor {
            return Err(InitError::NotThere);
        }
        Ok(())
    }

    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }

    /// Pulses CLEAR_ERR (it stays set otherwise: Linux's "doesn't clear to 0 automatically").
    fn clear_errors(&mut self) {
        let c = self.regs.read(reg::CONTROL) & !control::CLEAR_ERR;
        self.regs.write(reg::CONTROL, c | control::CLEAR_ERR);
        self.regs.write(reg::CONTROL, c);
    }
}

impl<R: Regs> Uart for MesonSerial<R> {
    fn try_write(&mut self, byte: u8) -> bool {
        if self.regs.read(reg::STATUS) & status::TX_FULL != 0 {
            return false;
        }
        self.regs.write(reg::WFIFO, byte as u32);
        true
    }

    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        let s = self.regs.read(reg::STATUS);
        if s & status::RX_ERRORS != 0 {
            self.clear_errors();
            self.pending.overrun |= s & status::RX_OVERFLOW != 0;
            let damaged = if s & status::FRAME_ERR != 0 {
                Some(RxError::Framing)
            } else if s & status::PARITY_ERR != 0 {
                Some(RxError::Parity)
            } else {
                None
            };
            if damaged.is_some() {
                // Dropped now, with the error just cleared: an incarnation that dies before
                // reporting it leaves no damaged byte behind for its successor to pass on.
                if s & status::RX_EMPTY == 0 {
                    let _ = self.regs.read(reg::RFIFO);
                }
                self.pending.damaged = damaged;
            }
        }
        // Whatever was seen above is reported before any byte (`s` is stale after a drop).
        if core::mem::take(&mut self.pending.overrun) {
            return Err(RxError::Overrun);
        }
        if let Some(e) = self.pending.damaged.take() {
            return Err(e);
        }
        if s & status::RX_EMPTY != 0 {
            return Ok(None);
        }
        Ok(Some(self.regs.read(reg::RFIFO) as u8))
    }

    fn set_irq_mask(&mut self, mask: Irqs) {
        let c = self.regs.read(reg::CONTROL);
        let mut want = c & !(control::RX_INT_EN | control::TX_INT_EN);
        if mask.intersects(Irqs::RX | Irqs::RX_TIMEOUT) {
            want |= control::RX_INT_EN;
        }
        if mask.contains(Irqs::TX) {
            want |= control::TX_INT_EN;
        }
        self.mask = mask & (Irqs::RX | Irqs::RX_TIMEOUT | Irqs::TX);
        if want != c {
            self.regs.write(reg::CONTROL, want);
        }
    }

    /// The enabled causes that hold, from STATUS: receive while a byte waits (reported as
    /// [`Irqs::RX`]: the UART has no timeout interrupt, every byte interrupts), transmit
    /// while the FIFO has room (as Linux's handler decides, `!TX_FULL`).
    fn irq_status(&self) -> Irqs {
        let s = self.regs.read(reg::STATUS);
        let mut pending = Irqs::NONE;
        if self.mask.intersects(Irqs::RX | Irqs::RX_TIMEOUT) && s & status::RX_EMPTY == 0 {
            pending = pending | Irqs::RX;
        }
        if self.mask.contains(Irqs::TX) && s & status::TX_FULL == 0 {
            pending = pending | Irqs::TX;
        }
        pending
    }

    /// Nothing to clear: the meson UART's interrupts are events, latched (if at all) by the
    /// GIC, which the PD acknowledges.
    fn clear_irqs(&mut self, _irqs: Irqs) {}
}
