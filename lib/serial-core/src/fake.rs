//! A software UART for tests: bounded FIFOs, injectable RX, TX bytes shifted
//! out on demand, and a PL011-like interrupt model.

use crate::uart::{Irqs, RxError, Uart};

/// Largest FIFO the fake models (the PL011's is 32 deep).
pub const FAKE_FIFO_MAX: usize = 32;

/// A UART whose "line" is driven by the test.
///
/// Interrupts are levels derived from the FIFOs, as on a PL011 with FIFOs:
/// TX is raised while the TX FIFO holds at most `depth / 2` bytes, RX while
/// the RX FIFO holds anything (standing in for both RX and receive-timeout),
/// each only when enabled in the mask; [`Uart::clear_irqs`] is recorded but
/// cannot lower a level whose cause persists.
#[derive(Clone, Debug)]
pub struct FakeUart {
    depth: usize,
    tx: Fifo,
    rx: Fifo,
    rx_errors: [Option<RxError>; FAKE_FIFO_MAX],
    mask: Irqs,
    /// Every mask ever written, for tests of interrupt policy.
    pub mask_writes: u32,
    /// ICR writes.
    pub clears: u32,
}

#[derive(Clone, Copy, Debug)]
struct Fifo {
    buf: [u8; FAKE_FIFO_MAX],
    head: usize,
    len: usize,
}

impl Fifo {
    const fn new() -> Self {
        Self {
            buf: [0; FAKE_FIFO_MAX],
            head: 0,
            len: 0,
        }
    }
    fn push(&mut self, b: u8) {
        self.buf[(self.head + self.len) % FAKE_FIFO_MAX] = b;
        self.len += 1;
    }
    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % FAKE_FIFO_MAX;
        self.len -= 1;
        Some(b)
    }
}

impl FakeUart {
    /// A UART with FIFOs of `depth` bytes (1..=32).
    pub fn new(depth: usize) -> Self {
        assert!((1..=FAKE_FIFO_MAX).contains(&depth), "FIFO depth 1..=32");
        Self {
            depth,
            tx: Fifo::new(),
            rx: Fifo::new(),
            rx_errors: [None; FAKE_FIFO_MAX],
            mask: Irqs::NONE,
            mask_writes: 0,
            clears: 0,
        }
    }

    /// The line sends one byte: takes the oldest byte out of the TX FIFO.
    pub fn shift_out(&mut self) -> Option<u8> {
        self.tx.pop()
    }

    /// Bytes waiting in the TX FIFO.
    pub fn tx_level(&self) -> usize {
        self.tx.len
    }

    /// A byte arrives on the line; `false` (and the byte is lost, as an
    /// overrun) when the RX FIFO is full.
    pub fn inject_rx(&mut self, byte: u8) -> bool {
        self.inject(byte, None)
    }

    /// A damaged byte arrives.
    pub fn inject_rx_error(&mut self, error: RxError) -> bool {
        self.inject(0, Some(error))
    }

    fn inject(&mut self, byte: u8, error: Option<RxError>) -> bool {
        if self.rx.len == self.depth {
            return false;
        }
        self.rx_errors[(self.rx.head + self.rx.len) % FAKE_FIFO_MAX] = error;
        self.rx.push(byte);
        true
    }

    /// Bytes waiting in the RX FIFO.
    pub fn rx_level(&self) -> usize {
        self.rx.len
    }

    /// The current interrupt mask.
    pub fn mask(&self) -> Irqs {
        self.mask
    }

    /// Raw interrupt status (before masking).
    pub fn raw_status(&self) -> Irqs {
        let mut s = Irqs::NONE;
        if self.tx.len <= self.depth / 2 {
            s = s | Irqs::TX;
        }
        if self.rx.len > 0 {
            s = s | Irqs::RX | Irqs::RX_TIMEOUT;
        }
        s
    }

    /// Whether the interrupt line is asserted.
    pub fn line(&self) -> bool {
        !self.irq_status().is_empty()
    }
}

impl Uart for FakeUart {
    fn try_write(&mut self, byte: u8) -> bool {
        if self.tx.len == self.depth {
            return false;
        }
        self.tx.push(byte);
        true
    }

    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        let err = self.rx_errors[self.rx.head];
        match self.rx.pop() {
            None => Ok(None),
            Some(b) => match err {
                Some(e) => Err(e),
                None => Ok(Some(b)),
            },
        }
    }

    fn set_irq_mask(&mut self, mask: Irqs) {
        self.mask = mask;
        self.mask_writes += 1;
    }

    fn irq_status(&self) -> Irqs {
        self.raw_status() & self.mask
    }

    fn clear_irqs(&mut self, _irqs: Irqs) {
        self.clears += 1;
    }
}
