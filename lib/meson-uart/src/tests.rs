extern crate std;
use std::vec::Vec;

use core::fmt::Write;

use super::*;

/// A UART whose transmit FIFO holds `fifo` bytes and drains one byte every `drain_every`
/// status reads (the wire is slower than the CPU).
struct FakeUart {
    control: u32,
    fifo: usize,
    queued: usize,
    drain_every: u32,
    reads: u32,
    wire: Vec<u8>,
    overruns: u32,
    writes: Vec<(usize, u32)>,
}

impl FakeUart {
    fn new(control: u32) -> Self {
        Self {
            control,
            fifo: 4,
            queued: 0,
            drain_every: 3,
            reads: 0,
            wire: Vec::new(),
            overruns: 0,
            writes: Vec::new(),
        }
    }
}

impl Regs for FakeUart {
    fn read(&mut self, offset: usize) -> u32 {
        match offset {
            reg::CONTROL => self.control,
            reg::STATUS => {
                self.reads += 1;
                if self.reads.is_multiple_of(self.drain_every) && self.queued > 0 {
                    self.queued -= 1;
                }
                let mut s = 0;
                if self.queued == self.fifo {
                    s |= status::TX_FULL;
                }
                if self.queued == 0 {
                    s |= status::TX_EMPTY;
                }
                s
            }
            _ => 0,
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.writes.push((offset, value));
        match offset {
            reg::CONTROL => self.control = value,
            reg::WFIFO => {
                if self.control & control::TX_EN == 0 {
                    return;
                }
                if self.queued == self.fifo {
                    self.overruns += 1;
                } else {
                    self.queued += 1;
                    self.wire.push(value as u8);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn bytes_wait_for_room_in_the_fifo() {
    let mut u = MesonUart::new(FakeUart::new(control::TX_EN | control::TWO_WIRE_EN));
    write!(u, "axolotl kernel on a meson UART, longer than the FIFO").unwrap();
    let f = u.regs();
    assert_eq!(f.overruns, 0, "a byte went into a full FIFO");
    assert_eq!(
        std::str::from_utf8(&f.wire).unwrap(),
        "axolotl kernel on a meson UART, longer than the FIFO"
    );
}

#[test]
fn the_transmitter_is_turned_on_and_the_line_kept() {
    // 8N1 two-wire with both interrupts on, transmitter off, a custom stop-bit field.
    let left =
        control::TWO_WIRE_EN | control::RX_EN | control::TX_INT_EN | control::RX_INT_EN | (1 << 16);
    let mut u = MesonUart::new(FakeUart::new(left));
    u.write_byte(b'x');
    let f = u.regs();
    assert_eq!(
        f.control,
        control::TWO_WIRE_EN | control::RX_EN | control::TX_EN | (1 << 16)
    );
    assert_eq!(f.wire, b"x");
    // Nothing but CONTROL and the FIFO is written: the divisor stays U-Boot's.
    assert!(
        f.writes
            .iter()
            .all(|&(o, _)| o == reg::CONTROL || o == reg::WFIFO)
    );
}

#[test]
fn a_uart_left_ready_is_not_written_to() {
    let mut u = MesonUart::new(FakeUart::new(control::TX_EN | control::RX_EN));
    assert!(u.regs().writes.is_empty());
    assert!(u.idle());
}

#[test]
fn reg5_from_the_24_mhz_crystal() {
    // Linux's value for 115200: 8 MHz / 115200 rounded, minus one.
    assert_eq!(
        reg5_from_xtal(24_000_000, 115_200),
        Some(68 | (1 << 23) | (1 << 24))
    );
    assert_eq!(
        reg5_from_xtal(24_000_000, 9_600),
        Some(832 | (1 << 23) | (1 << 24))
    );
    assert_eq!(reg5_from_xtal(24_000_000, 0), None);
    assert_eq!(reg5_from_xtal(24_000_000, 8_000_000), None);
}
