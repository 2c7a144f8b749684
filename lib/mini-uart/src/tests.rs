//! Host tests against a fake aux page that behaves as the datasheet says where it matters to
//! the driver: registers dead until the mini UART is enabled, 8-byte FIFOs both ways, a
//! transmitter slower than the CPU, an overrun flag cleared by reading LSR, level interrupts.

extern crate std;

use core::cell::RefCell;
use std::collections::VecDeque;
use std::string::String;
use std::vec::Vec;

use axolotl_serial_core::{Irqs, RxError, Uart};

use super::*;

const FIFO: usize = 8;

#[derive(Default)]
struct State {
    enables: u32,
    ier: u32,
    lcr: u32,
    mcr: u32,
    baud: u32,
    cntl: u32,
    tx: VecDeque<u8>,
    rx: VecDeque<u8>,
    overrun: bool,
    wire: Vec<u8>,
    /// Rules the driver broke.
    violations: Vec<String>,
    writes: Vec<(usize, u32)>,
}

#[derive(Default)]
struct Fake(RefCell<State>);

impl Fake {
    fn with_enables(enables: u32) -> Self {
        let f = Fake::default();
        f.0.borrow_mut().enables = enables;
        f
    }
}

impl State {
    fn mu_reg(&mut self, offset: usize, what: &str) -> bool {
        if offset >= reg::MU && self.enables & ENABLE_MINI_UART == 0 {
            self.violations.push(std::format!(
                "{what} of {offset:#x} while the mini UART is disabled"
            ));
            return false;
        }
        true
    }

    /// The transmitter shifts `n` bytes out (only while enabled).
    fn drain(&mut self, n: usize) {
        if self.cntl & cntl::TX_ENABLE == 0 {
            return;
        }
        for _ in 0..n {
            match self.tx.pop_front() {
                Some(b) => self.wire.push(b),
                None => break,
            }
        }
    }

    /// A byte arrives on the line.
    fn receive(&mut self, b: u8) {
        if self.cntl & cntl::RX_ENABLE == 0 {
            return;
        }
        if self.rx.len() == FIFO {
            self.overrun = true;
        } else {
            self.rx.push_back(b);
        }
    }

    /// The interrupt line: receive while a byte waits, transmit while the FIFO is empty.
    fn irq(&self) -> bool {
        (self.ier & ier::RX != 0 && !self.rx.is_empty())
            || (self.ier & ier::TX != 0 && self.tx.is_empty())
    }
}

impl Regs for &Fake {
    fn read(&self, offset: usize) -> u32 {
        let mut s = self.0.borrow_mut();
        if !s.mu_reg(offset, "read") {
            return 0;
        }
        match offset {
            reg::AUX_IRQ => s.irq() as u32,
            reg::AUX_ENABLES => s.enables,
            reg::IO => s.rx.pop_front().unwrap_or(0) as u32,
            reg::IER => s.ier,
            reg::LCR => s.lcr,
            reg::MCR => s.mcr,
            reg::BAUD => s.baud,
            reg::CNTL => s.cntl,
            reg::LSR => {
                let mut v = 0;
                if !s.rx.is_empty() {
                    v |= lsr::DATA_READY;
                }
                if core::mem::take(&mut s.overrun) {
                    v |= lsr::OVERRUN;
                }
                if s.tx.len() < FIFO {
                    v |= lsr::TX_EMPTY;
                }
                if s.tx.is_empty() {
                    v |= lsr::TX_IDLE;
                }
                v
            }
            reg::STAT => {
                let mut v = 0;
                if !s.rx.is_empty() {
                    v |= stat::SYMBOL_AVAILABLE;
                }
                if s.tx.len() < FIFO {
                    v |= stat::SPACE_AVAILABLE;
                }
                if s.tx.is_empty() {
                    v |= stat::TX_FIFO_EMPTY;
                }
                v | (s.rx.len() as u32) << 16 | (s.tx.len() as u32) << 24
            }
            _ => 0,
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        let mut s = self.0.borrow_mut();
        s.writes.push((offset, value));
        if !s.mu_reg(offset, "write") {
            return;
        }
        match offset {
            reg::AUX_ENABLES => s.enables = value & 7,
            reg::IO => {
                if s.tx.len() == FIFO {
                    s.violations.push(std::format!(
                        "{:?} written into a full FIFO",
                        value as u8 as char
                    ));
                } else {
                    s.tx.push_back(value as u8);
                }
            }
            reg::IER => s.ier = value & 0xf,
            reg::IIR => {
                if value & 0b010 != 0 {
                    s.rx.clear();
                }
                if value & 0b100 != 0 {
                    s.tx.clear();
                }
            }
            reg::LCR => s.lcr = value,
            reg::MCR => s.mcr = value,
            reg::BAUD => s.baud = value & 0xffff,
            reg::CNTL => s.cntl = value,
            _ => {}
        }
    }
}

fn ready(f: &Fake) -> MiniUart<&Fake> {
    let mut u = MiniUart::new(f);
    u.init(115_200, rpi4b::CORE_CLOCK_HZ).expect("init");
    u
}

#[test]
fn init_enables_the_mini_uart_before_touching_it_and_keeps_the_spi_masters() {
    // SPI1 and SPI2 enabled by someone else; the mini UART off, as after reset.
    let f = Fake::with_enables(0b110);
    let _u = ready(&f);
    let s = f.0.borrow();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.enables, 0b111);
    assert_eq!(s.writes[0], (reg::AUX_ENABLES, 0b111), "{:x?}", s.writes);
    assert_eq!(s.lcr, LCR_8BIT);
    assert_eq!(s.cntl, cntl::RX_ENABLE | cntl::TX_ENABLE);
    assert_eq!(s.ier, 0, "interrupts stay masked until the driver asks");
    assert_eq!(s.baud, 542, "500 MHz / (8 * 543) = 115101 baud");
}

#[test]
fn init_clears_what_a_previous_incarnation_left() {
    let f = Fake::with_enables(ENABLE_MINI_UART);
    {
        let mut s = f.0.borrow_mut();
        s.cntl = cntl::RX_ENABLE | cntl::TX_ENABLE;
        s.ier = ier::TX | ier::RX;
        s.rx.extend(b"stale");
        s.overrun = true;
    }
    let mut u = ready(&f);
    assert_eq!(f.0.borrow().ier, 0);
    assert_eq!(
        u.try_read(),
        Ok(None),
        "the stale bytes and overrun are gone"
    );
}

#[test]
fn init_refuses_a_page_with_no_mini_uart() {
    // Nothing answers: every read 0 (an unassigned page), writes lost.
    struct Dead;
    impl Regs for Dead {
        fn read(&self, _: usize) -> u32 {
            0
        }
        fn write(&mut self, _: usize, _: u32) {}
    }
    assert_eq!(
        MiniUart::new(Dead).init(115_200, rpi4b::CORE_CLOCK_HZ),
        Err(InitError::NotThere)
    );
    let f = Fake::default();
    assert_eq!(
        MiniUart::new(&f).init(0, rpi4b::CORE_CLOCK_HZ),
        Err(InitError::BadBaudRate)
    );
}

#[test]
fn baud_divisors() {
    // The value every Pi tutorial uses for a 250 MHz core clock.
    assert_eq!(baud_divisor(250_000_000, 115_200), Some(270));
    assert_eq!(baud_divisor(500_000_000, 115_200), Some(542));
    assert_eq!(baud_divisor(500_000_000, 300), None, "beyond 16 bits");
    assert_eq!(baud_divisor(500_000_000, 0), None);
    assert_eq!(baud_divisor(1, 115_200), None);
}

#[test]
fn writes_wait_for_room_in_a_slow_transmitter() {
    let f = Fake::with_enables(0);
    let mut u = ready(&f);
    let text = b"client_a 17\nclient_b 42\n-- a line longer than the FIFO --\n";
    let mut sent = 0;
    let mut refused = 0;
    while sent < text.len() {
        if u.try_write(text[sent]) {
            sent += 1;
        } else {
            refused += 1;
            // The line is slower than the CPU: one byte leaves per refusal.
            f.0.borrow_mut().drain(1);
        }
    }
    f.0.borrow_mut().drain(usize::MAX);
    let s = f.0.borrow();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert!(refused > 0, "the FIFO never filled: the test tests nothing");
    assert_eq!(s.wire, text);
}

#[test]
fn reads_take_every_byte_and_report_an_overrun_once() {
    let f = Fake::with_enables(0);
    let mut u = ready(&f);
    for b in b"0123456789" {
        f.0.borrow_mut().receive(*b);
    }
    assert_eq!(u.try_read(), Err(RxError::Overrun));
    let mut got = Vec::new();
    while let Some(b) = u.try_read().expect("the overrun was reported already") {
        got.push(b);
    }
    assert_eq!(got, b"01234567", "the bytes that fit, in order");
    assert!(f.0.borrow().violations.is_empty());
}

#[test]
fn reading_the_status_or_writing_does_not_eat_an_overrun() {
    let f = Fake::with_enables(0);
    let mut u = ready(&f);
    u.set_irq_mask(Irqs::RX | Irqs::RX_TIMEOUT);
    for b in 0..9 {
        f.0.borrow_mut().receive(b);
    }
    assert_eq!(u.irq_status(), Irqs::RX);
    assert!(u.try_write(b'x'));
    assert_eq!(u.try_read(), Err(RxError::Overrun));
}

#[test]
fn the_mask_drives_ier_and_the_status_follows_the_fifos() {
    let f = Fake::with_enables(0);
    let mut u = ready(&f);
    let line = |f: &Fake| f.0.borrow().irq();
    // Masked: a waiting byte raises nothing, and nothing is reported.
    f.0.borrow_mut().receive(b'a');
    assert_eq!(u.irq_status(), Irqs::NONE);
    assert!(!line(&f));
    u.set_irq_mask(Irqs::RX | Irqs::RX_TIMEOUT);
    assert_eq!(f.0.borrow().ier & (ier::RX | ier::TX), ier::RX);
    assert_eq!(f.0.borrow().ier & ier::RX_REQUIRED, ier::RX_REQUIRED);
    assert!(line(&f));
    assert_eq!(u.irq_status(), Irqs::RX);
    // The level drops once the FIFO is read empty; clearing is a no-op.
    u.clear_irqs(Irqs::ALL);
    assert!(line(&f));
    assert_eq!(u.try_read(), Ok(Some(b'a')));
    assert!(!line(&f));
    assert_eq!(u.irq_status(), Irqs::NONE);
    // Transmit: pending while the FIFO is empty, not while it holds bytes.
    u.set_irq_mask(Irqs::TX);
    assert_eq!(f.0.borrow().ier, ier::TX);
    assert_eq!(u.irq_status(), Irqs::TX);
    assert!(u.try_write(b'z'));
    assert_eq!(u.irq_status(), Irqs::NONE);
    assert!(!line(&f));
    f.0.borrow_mut().drain(1);
    assert_eq!(u.irq_status(), Irqs::TX);
    assert!(line(&f));
    u.set_irq_mask(Irqs::NONE);
    assert_eq!(f.0.borrow().ier, 0);
    assert_eq!(u.irq_status(), Irqs::NONE);
}

/// serial-core's test links (heap memory standing in for the SDF's regions).
#[path = "../../serial-core/tests/common/mod.rs"]
mod common;

/// serial-core's driver end to end over the mini UART: a client's numbered messages go out
/// whole and in order through a slow transmitter, typed bytes come in through the receive
/// interrupt, and the driver wakes only for an interrupt the fake's line raises.
#[test]
fn the_serial_driver_runs_over_the_mini_uart() {
    use axolotl_serial_core::Server;
    use common::{IDS, Link, msg};

    let f = Fake::with_enables(0);
    let links = [Link::new()];
    let rx_link = Link::with_data(IDS * 256);
    let mut client = links[0].seq_client("alpha", 4, Some(20));
    let mut rx = rx_link.rx_client();
    let ring = 1;
    for l in links.iter().chain([&rx_link]) {
        l.start_server(ring);
    }
    let mut s: Server<MiniUart<&Fake>, 1, IDS> =
        Server::new(ready(&f), [links[0].conn()], Some(rx_link.conn()), ring - 1).unwrap();
    let typed = b"ping 1\nping 2\n";
    let mut received = Vec::new();
    let mut irqs = 0;
    // Sending: the driver runs on the line, and on the client's notifications (every
    // eighth round here: the FIFO drains in four, so the transmit interrupt must do it).
    let mut act = s.poll();
    for round in 0..2000 {
        assert!(act.faults.is_empty(), "{act:?}");
        let _ = client.poll().unwrap();
        let _ = rx.poll(|b| received.extend_from_slice(b)).unwrap();
        // The line sends two bytes per round: far slower than the driver fills the FIFO.
        f.0.borrow_mut().drain(2);
        let line = f.0.borrow().irq();
        if line {
            irqs += 1;
            act = s.on_irq();
        } else if round % 8 == 0 {
            act = s.poll();
        }
        if client.is_done() && f.0.borrow().tx.is_empty() {
            break;
        }
    }
    assert!(client.is_done(), "{:?}", client.stats());
    assert!(irqs > 0, "the transmit interrupt never woke the driver");
    // Receiving, idle otherwise: only the line wakes the driver. Typed at one byte a round
    // (a burst beyond the 8-byte FIFO would overrun, as on the real UART).
    assert!(
        !f.0.borrow().irq(),
        "the line stays raised with nothing to do"
    );
    for b in typed {
        f.0.borrow_mut().receive(*b);
        if f.0.borrow().irq() {
            let act = s.on_irq();
            assert!(act.irqs.contains(Irqs::RX), "{act:?}");
        }
        let _ = rx.poll(|b| received.extend_from_slice(b)).unwrap();
    }
    for _ in 0..4 {
        if f.0.borrow().irq() {
            let _ = s.on_irq();
        }
        let _ = rx.poll(|b| received.extend_from_slice(b)).unwrap();
    }
    f.0.borrow_mut().drain(usize::MAX);
    let st = f.0.borrow();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let want: Vec<u8> = (0..20).flat_map(|i| msg("alpha", i)).collect();
    assert_eq!(
        String::from_utf8_lossy(&st.wire),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(received, typed);
    assert_eq!(s.stats().rx_errors, 0);
    // Idle: no interrupt left enabled that would hold the line up.
    assert!(!st.irq(), "the line stays raised with nothing to do");
}
