//! Host tests: the kernel console's transmitter against a FIFO that drains slower than the
//! CPU writes, and the serial driver's `Uart` against a register-level fake of the meson UART
//! ([`Fake`]) that does what matters to a driver: FIFOs of the board's depth, a transmitter
//! slower than the CPU, sticky error bits that only CONTROL's CLEAR_ERR clears, FIFO resets,
//! and interrupts that are events (a byte entering the receive FIFO, one leaving the
//! transmit FIFO, each against MISC's threshold) latched as the GIC latches an edge.

extern crate std;

use core::cell::{Cell, RefCell};
use core::fmt::Write;
use std::collections::VecDeque;
use std::format;
use std::string::String;
use std::vec::Vec;

use super::*;

/// A console UART whose transmit FIFO holds `fifo` bytes and drains one byte every
/// `drain_every` status reads (the wire is slower than the CPU).
struct ConsoleFake {
    control: Cell<u32>,
    fifo: usize,
    queued: Cell<usize>,
    drain_every: u32,
    reads: Cell<u32>,
    wire: Vec<u8>,
    overruns: u32,
    writes: Vec<(usize, u32)>,
}

impl ConsoleFake {
    fn new(control: u32) -> Self {
        Self {
            control: Cell::new(control),
            fifo: 4,
            queued: Cell::new(0),
            drain_every: 3,
            reads: Cell::new(0),
            wire: Vec::new(),
            overruns: 0,
            writes: Vec::new(),
        }
    }
}

impl Regs for ConsoleFake {
    fn read(&self, offset: usize) -> u32 {
        match offset {
            reg::CONTROL => self.control.get(),
            reg::STATUS => {
                self.reads.set(self.reads.get() + 1);
                if self.reads.get().is_multiple_of(self.drain_every) && self.queued.get() > 0 {
                    self.queued.set(self.queued.get() - 1);
                }
                let mut s = 0;
                if self.queued.get() == self.fifo {
                    s |= status::TX_FULL;
                }
                if self.queued.get() == 0 {
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
            reg::CONTROL => self.control.set(value),
            reg::WFIFO => {
                if self.control.get() & control::TX_EN == 0 {
                    return;
                }
                if self.queued.get() == self.fifo {
                    self.overruns += 1;
                } else {
                    self.queued.set(self.queued.get() + 1);
                    self.wire.push(value as u8);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn bytes_wait_for_room_in_the_fifo() {
    let mut u = MesonUart::new(ConsoleFake::new(control::TX_EN | control::TWO_WIRE_EN));
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
    let mut u = MesonUart::new(ConsoleFake::new(left));
    u.write_byte(b'x');
    let f = u.regs();
    assert_eq!(
        f.control.get(),
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
    let mut u = MesonUart::new(ConsoleFake::new(control::TX_EN | control::RX_EN));
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

#[test]
fn the_driver_s_uarts_are_found_by_their_page() {
    assert_eq!(driver_uart_at(0xffd2_4000), Some(odroid_c4::UART_A));
    assert_eq!(driver_uart_at(0xc110_8000), Some(odroid_c2::UART_A));
    assert_eq!(odroid_c2::UART_A.offset(), 0x4c0);
    assert_eq!(odroid_c4::UART_A.offset(), 0);
    // The consoles (UART_AO) are the kernel's, never the driver's.
    assert_eq!(driver_uart_at(0xff80_3000), None);
    assert_eq!(driver_uart_at(0xc810_0000), None);
    assert_eq!(
        driver_uart_at(0xc110_84c0),
        None,
        "a page, not the registers"
    );
}

// ---------------------------------------------------------------------------------------
// The serial driver's UART.

use axolotl_serial_core::{ConnId, Irqs, RxError, Server, Uart};

/// UART_A's FIFOs.
const FIFO: u32 = 128;

/// What arrives on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rx {
    Byte(u8),
    /// A byte with a bad stop bit (it enters the FIFO, STATUS says FRAME_ERR).
    Framing,
    /// A byte with a bad parity bit.
    Parity,
}

#[derive(Default)]
struct State {
    fifo: usize,
    control: u32,
    misc: u32,
    reg5: u32,
    tx: VecDeque<u8>,
    rx: VecDeque<u8>,
    frame_err: bool,
    parity_err: bool,
    overflow: bool,
    werr: bool,
    wire: Vec<u8>,
    /// Every good byte the receive FIFO took, in order.
    arrived: Vec<u8>,
    /// The interrupt line's edge, latched until the test delivers it (the GIC's pending).
    irq: bool,
    events: u32,
    /// Rules the driver broke.
    violations: Vec<String>,
    writes: Vec<(usize, u32)>,
    /// The driver's worst moment, just before an interrupt it enables takes effect: one byte
    /// arrives before RX_INT_EN is on, or the transmitter sends all it holds before
    /// TX_INT_EN is on.
    arrive_before_rx_int: Option<u8>,
    drain_before_tx_int: bool,
}

struct Fake(RefCell<State>);

impl Fake {
    fn new(fifo: u32) -> Self {
        Fake(RefCell::new(State {
            fifo: fifo as usize,
            ..State::default()
        }))
    }

    fn s(&self) -> std::cell::RefMut<'_, State> {
        self.0.borrow_mut()
    }

    /// The GIC hands the latched edge to the driver PD.
    fn take_irq(&self) -> bool {
        core::mem::take(&mut self.s().irq)
    }
}

impl State {
    fn raise(&mut self) {
        self.irq = true;
        self.events += 1;
    }

    /// The transmitter shifts up to `n` bytes out (only while enabled), raising an event
    /// for each that leaves the FIFO below the transmit threshold.
    fn drain(&mut self, n: usize) {
        if self.control & control::TX_EN == 0 {
            return;
        }
        for _ in 0..n {
            let Some(b) = self.tx.pop_front() else { break };
            self.wire.push(b);
            let threshold = ((self.misc >> 8) & 0xff) as usize;
            if self.control & control::TX_INT_EN != 0 && self.tx.len() < threshold {
                self.raise();
            }
        }
    }

    /// Something arrives on the line (ignored while the receiver is off).
    fn receive(&mut self, what: Rx) {
        if self.control & control::RX_EN == 0 {
            return;
        }
        if self.rx.len() == self.fifo {
            self.overflow = true;
            return;
        }
        let b = match what {
            Rx::Byte(b) => {
                self.arrived.push(b);
                b
            }
            Rx::Framing => {
                self.frame_err = true;
                0xee
            }
            Rx::Parity => {
                self.parity_err = true;
                0xdd
            }
        };
        self.rx.push_back(b);
        let threshold = (self.misc & 0xff) as usize;
        if self.control & control::RX_INT_EN != 0 && self.rx.len() >= threshold {
            self.raise();
        }
    }

    fn status(&self) -> u32 {
        let mut v = (self.rx.len() as u32).min(status::RX_COUNT_MASK)
            | (self.tx.len() as u32).min(0x7f) << 8;
        for (on, bit) in [
            (self.parity_err, status::PARITY_ERR),
            (self.frame_err, status::FRAME_ERR),
            (self.werr, status::TX_FIFO_WERR),
            (self.rx.len() == self.fifo, status::RX_FULL),
            (self.rx.is_empty(), status::RX_EMPTY),
            (self.tx.len() == self.fifo, status::TX_FULL),
            (self.tx.is_empty(), status::TX_EMPTY),
            (self.overflow, status::RX_OVERFLOW),
            (!self.tx.is_empty(), status::XMIT_BUSY),
        ] {
            if on {
                v |= bit;
            }
        }
        v
    }
}

impl Regs for &Fake {
    fn read(&self, offset: usize) -> u32 {
        let mut s = self.s();
        match offset {
            reg::RFIFO => match s.rx.pop_front() {
                Some(b) => b as u32,
                None => {
                    s.violations.push("read of an empty receive FIFO".into());
                    0
                }
            },
            reg::CONTROL => s.control,
            reg::STATUS => s.status(),
            reg::MISC => s.misc,
            reg::REG5 => s.reg5,
            reg::WFIFO => 0,
            _ => {
                s.violations.push(format!("read of {offset:#x}"));
                0
            }
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        let mut s = self.s();
        s.writes.push((offset, value));
        match offset {
            reg::WFIFO => {
                if s.tx.len() == s.fifo {
                    s.werr = true;
                    s.violations.push(format!(
                        "{:?} written into a full FIFO",
                        value as u8 as char
                    ));
                } else {
                    s.tx.push_back(value as u8);
                }
            }
            reg::CONTROL => {
                let was = s.control;
                if value & control::RX_INT_EN != 0
                    && was & control::RX_INT_EN == 0
                    && let Some(b) = s.arrive_before_rx_int.take()
                    && s.rx.len() < s.fifo
                {
                    s.receive(Rx::Byte(b));
                }
                if value & control::TX_INT_EN != 0
                    && was & control::TX_INT_EN == 0
                    && core::mem::take(&mut s.drain_before_tx_int)
                {
                    s.drain(usize::MAX);
                }
                s.control = value;
                if value & control::CLEAR_ERR != 0 {
                    s.frame_err = false;
                    s.parity_err = false;
                    s.overflow = false;
                    s.werr = false;
                }
                if value & control::TX_RST != 0 {
                    s.tx.clear();
                }
                if value & control::RX_RST != 0 {
                    s.rx.clear();
                }
            }
            reg::MISC => s.misc = value,
            reg::REG5 => s.reg5 = value,
            _ => s.violations.push(format!("write of {offset:#x}")),
        }
    }
}

fn ready(f: &Fake) -> MesonSerial<&Fake> {
    let mut u = MesonSerial::new(f, f.s().fifo as u32);
    u.init(BAUD, odroid_c4::UART_A.xtal_hz).expect("init");
    u
}

fn no_violations(f: &Fake) {
    let s = f.s();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}

#[test]
fn init_sets_8n1_from_the_crystal_and_resets_a_uart_that_was_not_running() {
    let f = Fake::new(FIFO);
    {
        let mut s = f.s();
        // As found: receiver and transmitter off, the interrupts on, 7E2, junk and an error
        // in the FIFOs (reset values nobody vouches for), and a bit of CONTROL's that is not
        // the driver's (the old 12-bit divisor).
        s.control = control::RX_INT_EN
            | control::TX_INT_EN
            | control::PARITY_EN
            | (1 << 16)
            | (1 << 20)
            | 0x123;
        s.rx.extend(b"junk");
        s.tx.extend(b"stale");
        s.frame_err = true;
    }
    let mut u = ready(&f);
    {
        let s = f.s();
        assert_eq!(
            s.control,
            control::TX_EN | control::RX_EN | control::TWO_WIRE_EN | 0x123,
            "{:#x}",
            s.control
        );
        assert_eq!(s.reg5, 68 | reg5::BAUD_USE | reg5::BAUD_XTAL);
        assert_eq!(
            s.misc,
            1 | 64 << 8,
            "every byte in; half the 128-byte FIFO out"
        );
        assert!(s.tx.is_empty() && s.rx.is_empty() && !s.frame_err);
        // The interrupts went off before anything else was touched.
        let first = s.writes[0];
        assert_eq!(first.0, reg::CONTROL);
        assert_eq!(first.1 & (control::RX_INT_EN | control::TX_INT_EN), 0);
    }
    assert_eq!(u.try_read(), Ok(None));
    assert_eq!(u.irq_status(), Irqs::NONE);
    no_violations(&f);
}

#[test]
fn a_restarted_driver_keeps_what_its_fifos_hold() {
    let f = Fake::new(FIFO);
    {
        let mut u = ready(&f);
        u.set_irq_mask(Irqs::RX | Irqs::TX);
        for b in b"tail\n" {
            assert!(u.try_write(*b));
        }
    }
    {
        // Typed while the driver was dead; an overflow it never saw.
        let mut s = f.s();
        s.receive(Rx::Byte(b'k'));
        s.overflow = true;
        s.writes.clear();
    }
    let mut u = ready(&f);
    let s = f.s();
    assert_eq!(s.control & (control::RX_INT_EN | control::TX_INT_EN), 0);
    assert_eq!(
        s.tx, b"tail\n",
        "the completed message's tail still goes out"
    );
    assert_eq!(s.rx, b"k", "input nobody read");
    assert!(
        s.writes.iter().all(|&(o, _)| o != reg::REG5),
        "the divisor is not rewritten under a byte on the wire"
    );
    drop(s);
    // The error goes with the input: reported by the successor, once.
    assert_eq!(u.try_read(), Err(RxError::Overrun));
    assert_eq!(u.try_read(), Ok(Some(b'k')));
    assert_eq!(u.try_read(), Ok(None));
    no_violations(&f);
}

#[test]
fn init_refuses_a_uart_that_does_not_answer() {
    // Nothing answers: every read 0 (an unassigned page, a gated clock), writes lost.
    struct Dead;
    impl Regs for Dead {
        fn read(&self, _: usize) -> u32 {
            0
        }
        fn write(&mut self, _: usize, _: u32) {}
    }
    assert_eq!(
        MesonSerial::new(Dead, FIFO).init(BAUD, 24_000_000),
        Err(InitError::NotThere)
    );
    let f = Fake::new(FIFO);
    assert_eq!(
        MesonSerial::new(&f, FIFO).init(0, 24_000_000),
        Err(InitError::BadBaudRate)
    );
    assert_eq!(
        MesonSerial::new(&f, 512).init(BAUD, 24_000_000),
        Err(InitError::BadFifo)
    );
}

#[test]
fn writes_wait_for_room_in_a_slow_transmitter() {
    let f = Fake::new(8);
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
            f.s().drain(1);
        }
    }
    f.s().drain(usize::MAX);
    no_violations(&f);
    assert!(refused > 0, "the FIFO never filled: the test tests nothing");
    assert_eq!(f.s().wire, text);
}

#[test]
fn an_overflow_is_reported_once_and_the_bytes_that_fit_are_kept() {
    let f = Fake::new(8);
    let mut u = ready(&f);
    for b in b"0123456789" {
        f.s().receive(Rx::Byte(*b));
    }
    assert_eq!(u.try_read(), Err(RxError::Overrun));
    let mut got = Vec::new();
    while let Some(b) = u.try_read().expect("reported already") {
        got.push(b);
    }
    assert_eq!(got, b"01234567");
    let s = f.s();
    assert_eq!(
        s.control & control::CLEAR_ERR,
        0,
        "CLEAR_ERR is not left set"
    );
    assert!(!s.overflow);
    drop(s);
    no_violations(&f);
}

#[test]
fn a_damaged_byte_is_dropped_and_reported_and_the_rest_kept() {
    let f = Fake::new(FIFO);
    let mut u = ready(&f);
    let read = |u: &mut MesonSerial<&Fake>| {
        let mut out = Vec::new();
        loop {
            match u.try_read() {
                Ok(Some(b)) => out.push(Ok(b)),
                Ok(None) => return out,
                Err(e) => out.push(Err(e)),
            }
        }
    };
    // Read as the driver does, as the bytes come: the damaged one is the head.
    f.s().receive(Rx::Byte(b'a'));
    assert_eq!(read(&mut u), [Ok(b'a')]);
    f.s().receive(Rx::Framing);
    f.s().receive(Rx::Byte(b'b'));
    // The framing error was seen with 0xee and 'b' queued: 0xee is the one dropped.
    assert_eq!(read(&mut u), [Err(RxError::Framing), Ok(b'b')]);
    f.s().receive(Rx::Parity);
    f.s().receive(Rx::Byte(b'c'));
    assert_eq!(read(&mut u), [Err(RxError::Parity), Ok(b'c')]);
    // An overflow and a damaged byte together: both reported, in that order.
    let mut s = f.s();
    s.receive(Rx::Framing);
    s.receive(Rx::Byte(b'd'));
    s.overflow = true;
    drop(s);
    assert_eq!(
        read(&mut u),
        [Err(RxError::Overrun), Err(RxError::Framing), Ok(b'd')]
    );
    let s = f.s();
    assert!(!s.frame_err && !s.parity_err && !s.overflow);
    assert_eq!(s.control & control::CLEAR_ERR, 0);
    drop(s);
    no_violations(&f);
}

#[test]
fn the_mask_drives_control_s_enables_and_the_status_follows_the_fifos() {
    let f = Fake::new(8);
    let mut u = ready(&f);
    let enables = |f: &Fake| f.s().control & (control::RX_INT_EN | control::TX_INT_EN);
    // Masked: a byte arriving raises no event, and nothing is reported.
    f.s().receive(Rx::Byte(b'a'));
    assert!(!f.take_irq());
    assert_eq!(u.irq_status(), Irqs::NONE);
    u.set_irq_mask(Irqs::RX | Irqs::RX_TIMEOUT);
    assert_eq!(enables(&f), control::RX_INT_EN);
    // The byte that came before the enable raised nothing; the status says it waits.
    assert!(!f.take_irq());
    assert_eq!(u.irq_status(), Irqs::RX);
    f.s().receive(Rx::Byte(b'b'));
    assert!(f.take_irq(), "a byte in with RX_INT_EN on is an event");
    u.clear_irqs(Irqs::ALL);
    assert_eq!(u.try_read(), Ok(Some(b'a')));
    assert_eq!(u.try_read(), Ok(Some(b'b')));
    assert_eq!(u.irq_status(), Irqs::NONE);
    // Transmit: pending while the FIFO has room; events as bytes leave below half.
    u.set_irq_mask(Irqs::TX);
    assert_eq!(enables(&f), control::TX_INT_EN);
    assert_eq!(u.irq_status(), Irqs::TX);
    // Bounded: a driver that ignored TX_FULL would never be refused.
    for _ in 0..64 {
        if !u.try_write(b'z') {
            break;
        }
    }
    assert_eq!(u.irq_status(), Irqs::NONE);
    f.s().drain(1);
    assert_eq!(u.irq_status(), Irqs::TX, "room for one");
    assert!(
        !f.take_irq(),
        "7 of 8 bytes left: not below the threshold of 4"
    );
    f.s().drain(4);
    assert!(f.take_irq(), "3 left");
    u.set_irq_mask(Irqs::NONE);
    assert_eq!(enables(&f), 0);
    assert_eq!(u.irq_status(), Irqs::NONE);
    no_violations(&f);
}

/// serial-core's test links (heap memory standing in for the SDF's regions).
#[path = "../../serial-core/tests/common/mod.rs"]
mod common;

use common::{IDS, Link, msg};

type Driver<'f, const N: usize> = Server<MesonSerial<&'f Fake>, N, IDS>;

/// The driver (re)started with ring generation `ring` over `f`, as the PD starts it.
fn driver<'f, const N: usize>(
    f: &'f Fake,
    links: &[Link; N],
    rx: &Link,
    ring: u32,
) -> Driver<'f, N> {
    let mut pd = 0;
    for l in links.iter().chain([rx]) {
        pd = l.start_server(ring);
    }
    Server::new(
        ready(f),
        core::array::from_fn(|i| links[i].conn()),
        Some(rx.conn()),
        pd,
    )
    .unwrap()
}

/// serial-core's driver end to end over the meson UART, woken only by its clients'
/// notifications and by the interrupt events the fake raises: a client's numbered messages
/// go out whole and in order through a slow transmitter, typed bytes come in (a damaged one
/// counted and dropped), and an idle driver leaves no interrupt enabled that would fire.
#[test]
fn the_serial_driver_runs_over_the_meson_uart() {
    let f = Fake::new(16);
    let links = [Link::new()];
    let rx_link = Link::with_data(IDS * 256);
    let mut client = links[0].seq_client("alpha", 4, Some(20));
    let mut rx = rx_link.rx_client();
    let mut s: Driver<1> = driver(&f, &links, &rx_link, 1);
    let mut received = Vec::new();
    let mut irqs = 0;
    let mut driver_woken = true;
    for _ in 0..4000 {
        let act = if driver_woken {
            driver_woken = false;
            s.poll()
        } else if f.take_irq() {
            irqs += 1;
            s.on_irq()
        } else {
            Default::default()
        };
        assert!(act.faults.is_empty(), "{act:?}");
        if act.notify.contains(ConnId::Tx(0)) || !client.is_done() {
            driver_woken |= client.poll().unwrap().notify;
        }
        driver_woken |= rx.poll(|b| received.extend_from_slice(b)).unwrap().notify;
        // The line sends a byte per round: far slower than the driver fills the FIFO.
        f.s().drain(1);
        if client.is_done() && f.s().tx.is_empty() && !driver_woken {
            break;
        }
    }
    assert!(client.is_done(), "{:?}", client.stats());
    assert!(irqs > 0, "the transmit interrupt never woke the driver");
    // Receiving, idle otherwise: only the line's events wake the driver.
    assert_eq!(
        f.s().control & control::TX_INT_EN,
        0,
        "the transmit interrupt stays on with nothing to send"
    );
    let typed = [
        Rx::Byte(b'p'),
        Rx::Byte(b'i'),
        Rx::Framing,
        Rx::Byte(b'n'),
        Rx::Byte(b'g'),
        Rx::Byte(b'\n'),
    ];
    for what in typed {
        f.s().receive(what);
        while f.take_irq() {
            let act = s.on_irq();
            assert!(act.irqs.contains(Irqs::RX), "{act:?}");
        }
        let _ = rx.poll(|b| received.extend_from_slice(b)).unwrap();
    }
    no_violations(&f);
    let want: Vec<u8> = (0..20).flat_map(|i| msg("alpha", i)).collect();
    assert_eq!(
        String::from_utf8_lossy(&f.s().wire),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(received, b"ping\n");
    assert_eq!(s.stats().rx_errors, 1);
}

/// Runs the driver, a transmit client and the receiving client as a system would: a PD only
/// when notified, the driver also on an interrupt event; the line sends a byte per round.
fn run_on_events<const N: usize>(
    f: &Fake,
    s: &mut Driver<'_, N>,
    client: &mut Option<axolotl_serial_core::SeqClient<IDS>>,
    rx: &mut axolotl_serial_core::RxClient<IDS>,
    received: &mut Vec<u8>,
    rounds: usize,
) {
    let mut driver_woken = true;
    for _ in 0..rounds {
        let act = if driver_woken {
            driver_woken = false;
            s.poll()
        } else if f.take_irq() {
            s.on_irq()
        } else {
            Default::default()
        };
        assert!(act.faults.is_empty(), "{act:?}");
        driver_woken |= act.again;
        if let Some(c) = client.as_mut()
            && act.notify.contains(ConnId::Tx(0))
        {
            driver_woken |= c.poll().unwrap().notify;
        }
        if act.notify.contains(ConnId::Rx) {
            driver_woken |= rx.poll(|b| received.extend_from_slice(b)).unwrap().notify;
        }
        f.s().drain(1);
    }
}

/// A byte arrives just after the driver's last look at the receive FIFO, before the receive
/// interrupt it enables takes effect: no event. Woken by nothing else, the driver must
/// still take it (serial-core looks at the causes right after enabling: without that, the
/// byte waits in the UART for good).
#[test]
fn a_byte_arriving_just_before_the_receive_interrupt_is_on_is_taken() {
    let f = Fake::new(8);
    let rx_link = Link::with_data(IDS * 256);
    let mut rx = rx_link.rx_client();
    f.s().arrive_before_rx_int = Some(b'!');
    let mut s: Driver<0> = driver(&f, &[], &rx_link, 1);
    let mut received = Vec::new();
    let _ = rx.poll(|b| received.extend_from_slice(b)).unwrap();
    run_on_events(&f, &mut s, &mut None, &mut rx, &mut received, 50);
    assert!(f.s().arrive_before_rx_int.is_none(), "the race happened");
    assert_eq!(received, b"!", "the byte waits in the UART");
    no_violations(&f);
}

/// The transmitter empties the FIFO after the driver found it full, before the transmit
/// interrupt it enables takes effect: no event. The driver must refill it anyway (without
/// serial-core's look at the causes, the rest of the messages wait for good).
#[test]
fn a_fifo_emptied_just_before_the_transmit_interrupt_is_on_is_refilled() {
    // Four bytes: the FIFO fills in the middle of "alpha 0\n", with no completion to have
    // the client wake the driver.
    let f = Fake::new(4);
    let links = [Link::new()];
    let rx_link = Link::with_data(IDS * 256);
    let mut client = Some(links[0].seq_client("alpha", 4, Some(8)));
    let mut rx = rx_link.rx_client();
    f.s().drain_before_tx_int = true;
    let mut s: Driver<1> = driver(&f, &links, &rx_link, 1);
    let mut received = Vec::new();
    let _ = client.as_mut().unwrap().poll().unwrap();
    let _ = rx.poll(|b| received.extend_from_slice(b)).unwrap();
    run_on_events(&f, &mut s, &mut client, &mut rx, &mut received, 2000);
    assert!(!f.s().drain_before_tx_int, "the race happened");
    let c = client.unwrap();
    assert!(c.is_done(), "the transmitter stalled: {:?}", c.stats());
    let want: Vec<u8> = (0..8).flat_map(|i| msg("alpha", i)).collect();
    assert_eq!(f.s().wire, want);
    no_violations(&f);
}

mod restarts {
    //! Two sequence clients, a receiving client and the driver over the meson fake under
    //! random schedules with driver restarts at arbitrary points (a new `MesonSerial` and
    //! `Server` over the same UART and regions, generation + 1, as the monitor restarts the
    //! PD from a clean image), then a schedule driven by notifications and interrupt events
    //! alone: every message completes exactly once and in order and is on the wire, input
    //! arrives in order and never twice, damaged bytes are counted, nothing stalls.

    use super::*;
    use axolotl_serial_core::{RxClient, SeqClient};
    use common::contains;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Client(usize),
        Rx,
        Driver,
        Irq,
        Shift(u8),
        Inject(u8),
        Damaged,
        Restart,
        /// The line at the driver's worst moment (the fake's `arrive_before_rx_int`,
        /// `drain_before_tx_int`), next time it enables that interrupt.
        RaceRx,
        RaceTx,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2usize).prop_map(Op::Client),
            2 => Just(Op::Rx),
            3 => Just(Op::Driver),
            3 => Just(Op::Irq),
            3 => (1..12u8).prop_map(Op::Shift),
            1 => (1..24u8).prop_map(Op::Inject),
            1 => Just(Op::Damaged),
            1 => Just(Op::Restart),
            1 => Just(Op::RaceRx),
            1 => Just(Op::RaceTx),
        ]
    }

    const NAMES: [&str; 2] = ["left", "right"];

    struct Rig<'f> {
        f: &'f Fake,
        links: [Link; 2],
        rx_link: Link,
        clients: [SeqClient<IDS>; 2],
        rx: RxClient<IDS>,
        driver: Option<Driver<'f, 2>>,
        ring: u32,
        completed: [Vec<u32>; 2],
        injected: Vec<u8>,
        damaged: u64,
        received: Vec<u8>,
        next_byte: u8,
        /// Errors counted by the incarnations before this one.
        errors_before: u64,
        /// Who has a notification (or event) pending: the clients, echo_rx, the driver.
        woken: [bool; 2],
        rx_woken: bool,
        driver_woken: bool,
    }

    impl<'f> Rig<'f> {
        fn new(f: &'f Fake, n: u32, windows: [usize; 2]) -> Box<Self> {
            let links = [Link::new(), Link::new()];
            let rx_link = Link::with_data(IDS * 256);
            let clients = [0, 1].map(|i| links[i].seq_client(NAMES[i], windows[i], Some(n)));
            let rx = rx_link.rx_client();
            let mut rig = Box::new(Rig {
                f,
                links,
                rx_link,
                clients,
                rx,
                driver: None,
                ring: 1,
                completed: [Vec::new(), Vec::new()],
                injected: Vec::new(),
                damaged: 0,
                received: Vec::new(),
                next_byte: 0,
                errors_before: 0,
                woken: [true; 2],
                rx_woken: true,
                driver_woken: true,
            });
            rig.driver = Some(driver(f, &rig.links, &rig.rx_link, 1));
            rig
        }

        fn d(&mut self) -> &mut Driver<'f, 2> {
            self.driver.as_mut().unwrap()
        }

        fn after_driver(&mut self, act: axolotl_serial_core::Activity) {
            assert!(act.faults.is_empty(), "honest clients reported: {act:?}");
            for i in 0..2 {
                self.woken[i] |= act.notify.contains(ConnId::Tx(i));
            }
            self.rx_woken |= act.notify.contains(ConnId::Rx);
            self.driver_woken |= act.again;
        }

        fn client(&mut self, i: usize) {
            self.woken[i] = false;
            let act = self.clients[i]
                .poll()
                .unwrap_or_else(|e| panic!("{}: {e:?}", NAMES[i]));
            self.completed[i].extend(act.first_completed..act.first_completed + act.completed);
            self.driver_woken |= act.notify;
        }

        fn receiver(&mut self) {
            self.rx_woken = false;
            let received = &mut self.received;
            let act = self.rx.poll(|b| received.extend_from_slice(b)).unwrap();
            self.driver_woken |= act.notify;
        }

        fn step(&mut self, op: Op) {
            match op {
                Op::Client(i) => self.client(i),
                Op::Rx => self.receiver(),
                Op::Driver => {
                    self.driver_woken = false;
                    let act = self.d().poll();
                    self.after_driver(act);
                }
                Op::Irq => {
                    if self.f.take_irq() {
                        let act = self.d().on_irq();
                        self.after_driver(act);
                    }
                }
                Op::Shift(n) => self.f.s().drain(n as usize),
                Op::Inject(n) => {
                    // At most 255 distinct bytes, so that order and duplicates show.
                    for _ in 0..n {
                        let mut st = self.f.s();
                        if self.injected.len() == 255 || st.rx.len() == st.fifo {
                            break;
                        }
                        st.receive(Rx::Byte(self.next_byte));
                        self.injected.push(self.next_byte);
                        self.next_byte = self.next_byte.wrapping_add(1);
                    }
                }
                Op::Damaged => {
                    // Into an empty FIFO only: behind queued bytes the UART gives no way to
                    // tell which one its error is for (the blame falls on the head).
                    if self.f.s().rx.is_empty() {
                        self.f.s().receive(Rx::Framing);
                        self.damaged += 1;
                    }
                }
                Op::RaceRx => {
                    if self.injected.len() < 255 {
                        self.f.s().arrive_before_rx_int = Some(self.next_byte);
                        self.injected.push(self.next_byte);
                        self.next_byte = self.next_byte.wrapping_add(1);
                    }
                }
                Op::RaceTx => self.f.s().drain_before_tx_int = true,
                Op::Restart => {
                    let old = self.driver.take().unwrap();
                    self.errors_before += old.stats().rx_errors;
                    drop(old);
                    self.ring += 1;
                    self.driver = Some(driver(self.f, &self.links, &self.rx_link, self.ring));
                    // A new incarnation polls at once (its `init`).
                    self.driver_woken = true;
                }
            }
        }

        /// Runs everyone as a system would: a PD only when notified, the driver also on
        /// an interrupt event; the line sends a byte per round.
        fn settle(&mut self, rounds: usize) {
            for _ in 0..rounds {
                if self.driver_woken {
                    self.step(Op::Driver);
                }
                self.step(Op::Irq);
                for i in 0..2 {
                    if self.woken[i] {
                        self.client(i);
                    }
                }
                if self.rx_woken {
                    self.receiver();
                }
                self.f.s().drain(1);
            }
        }
    }

    fn is_subsequence(sub: &[u8], full: &[u8]) -> bool {
        let mut it = full.iter();
        sub.iter().all(|b| it.any(|c| c == b))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn restarts_anywhere_lose_no_completion_and_nothing_stalls(
            n in 1..16u32,
            w0 in 1..=IDS,
            w1 in 1..=IDS,
            fifo in prop_oneof![Just(2u32), Just(8), Just(128)],
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let f = Fake::new(fifo);
            let mut rig = Rig::new(&f, n, [w0, w1]);
            // Clients start by saying hello (their `init`).
            for i in 0..2 {
                rig.client(i);
            }
            rig.receiver();
            for &op in &ops {
                rig.step(op);
            }
            rig.settle(20_000);
            let restarts = ops.iter().filter(|o| matches!(o, Op::Restart)).count();
            for (i, name) in NAMES.iter().enumerate() {
                let want: Vec<u32> = (0..n).collect();
                prop_assert_eq!(&rig.completed[i], &want, "{}: completions", name);
                for seq in 0..n {
                    prop_assert!(
                        contains(&f.s().wire, &msg(name, seq)),
                        "{} {} missing from the wire", name, seq
                    );
                }
            }
            prop_assert!(f.s().tx.is_empty());
            prop_assert!(f.s().rx.is_empty(), "input left in the UART");
            // What the UART took (a race byte only if the race came about).
            let arrived = f.s().arrived.clone();
            if restarts == 0 {
                prop_assert_eq!(&rig.received, &arrived);
            } else {
                // The dead driver loses what it had moved into a buffer it never completed.
                prop_assert!(is_subsequence(&rig.received, &arrived));
            }
            // Every damaged byte counted once (no overflow here: bytes arrive only while
            // there is room), by whichever incarnation saw it.
            let errors = rig.errors_before + rig.d().stats().rx_errors;
            prop_assert_eq!(errors, rig.damaged);
            let st = f.s();
            prop_assert!(st.violations.is_empty(), "{:?}", st.violations);
            prop_assert_eq!(
                st.control & (control::TX_INT_EN | control::CLEAR_ERR),
                0,
                "idle with the transmit interrupt on, or CLEAR_ERR left set"
            );
        }
    }
}
