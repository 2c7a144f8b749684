extern crate std;
use std::vec::Vec;

use super::*;

type Uart = Pl011<Vec<u8>>;

impl TxSink for Vec<u8> {
    fn put(&mut self, byte: u8) {
        self.push(byte)
    }
}

fn at(offset: u64, size: u8) -> Access {
    Access {
        vcpu: 0,
        region: 0,
        offset,
        size,
    }
}

fn rd(u: &mut Uart, off: u64) -> u32 {
    u.read(at(off, 4)).unwrap() as u32
}

fn wr(u: &mut Uart, off: u64, v: u32) {
    u.write(at(off, 4), v.into()).unwrap()
}

#[test]
fn amba_ids_match_linux_probe() {
    let mut u = Uart::new(Vec::new());
    let mut pid = 0u32;
    let mut cid = 0u32;
    for i in 0..4 {
        pid |= (rd(&mut u, 0xFE0 + 4 * i) & 0xFF) << (8 * i);
        cid |= (rd(&mut u, 0xFF0 + 4 * i) & 0xFF) << (8 * i);
    }
    assert_eq!(cid, 0xB105_F00D);
    // amba-pl011 matches id 0x00041011 under mask 0x000fffff.
    assert_eq!(pid & 0x000F_FFFF, 0x0004_1011);
    // Revision 1 -> Linux uses a 16-deep FIFO.
    assert_eq!((pid >> 20) & 0xF, 1);
}

#[test]
fn reset_values() {
    let mut u = Uart::new(Vec::new());
    assert_eq!(rd(&mut u, FR), FR_TXFE | FR_RXFE);
    assert_eq!(rd(&mut u, CR), 0x300);
    assert_eq!(rd(&mut u, IFLS), 0x12);
    assert_eq!(rd(&mut u, IMSC), 0);
    assert_eq!(rd(&mut u, RIS), 0);
    assert!(!u.irq_level());
}

#[test]
fn tx_bytes_reach_sink_in_every_width() {
    let mut u = Uart::new(Vec::new());
    u.write(at(DR, 1), 0x141).unwrap(); // writeb: only the low byte counts
    u.write(at(DR, 2), 0x42).unwrap(); // writew
    wr(&mut u, DR, 0xFFFF_FF43); // writel
    assert_eq!(u.sink(), b"ABC");
    assert_eq!(rd(&mut u, FR) & (FR_BUSY | FR_TXFF | FR_TXFE), FR_TXFE);
}

#[test]
fn tx_interrupt_raised_by_write_cleared_by_icr() {
    let mut u = Uart::new(Vec::new());
    wr(&mut u, DR, b'x'.into());
    assert_eq!(rd(&mut u, RIS) & INT_TX, INT_TX);
    assert!(!u.irq_level(), "masked until IMSC.TXIM");
    wr(&mut u, IMSC, INT_TX);
    assert!(u.irq_level());
    assert_eq!(rd(&mut u, MIS), INT_TX);
    wr(&mut u, ICR, INT_TX);
    assert_eq!(rd(&mut u, RIS), 0);
    assert!(!u.irq_level());
}

#[test]
fn rx_without_fifo_is_one_deep() {
    let mut u = Uart::new(Vec::new());
    assert!(u.push_rx(b'a'));
    // Behind the holding register, on the line: invisible to the guest.
    assert!(u.push_rx(b'b'));
    assert_eq!((u.rx_len(), u.line_len()), (1, 1));
    assert_eq!(rd(&mut u, FR) & (FR_RXFE | FR_RXFF), FR_RXFF);
    assert_eq!(rd(&mut u, RIS) & INT_RX, INT_RX);
    wr(&mut u, IMSC, INT_RX | INT_RT);
    assert!(u.irq_level());
    assert_eq!(rd(&mut u, DR), u32::from(b'a'));
    assert_eq!(
        rd(&mut u, DR),
        u32::from(b'b'),
        "the line refills the register"
    );
    assert_eq!(rd(&mut u, FR) & FR_RXFE, FR_RXFE);
    assert!(!u.irq_level());
    assert_eq!(rd(&mut u, DR), 0, "empty FIFO reads as zero");
}

/// Input the FIFO has no room for waits on the line (device state, kept across a VMM
/// restart), in order; only a full line pushes back.
#[test]
fn rx_line_holds_what_the_fifo_cannot_in_order() {
    let mut u = Uart::new(Vec::new());
    wr(&mut u, LCR_H, LCR_H_FEN | 0x60);
    assert_eq!(u.rx_room(), FIFO_DEPTH + LINE_BYTES);
    let total = FIFO_DEPTH + LINE_BYTES;
    for i in 0..total {
        assert!(u.push_rx(i as u8), "byte {i}");
    }
    assert_eq!(u.rx_room(), 0);
    assert!(!u.push_rx(0xFF), "both full: back-pressure");
    assert_eq!((u.rx_len(), u.line_len()), (FIFO_DEPTH, LINE_BYTES));
    // A read makes room on the line, never a place in the FIFO ahead of it.
    assert_eq!(rd(&mut u, DR), 0);
    assert_eq!(u.rx_room(), 1);
    assert!(u.push_rx(0xAB));
    for i in 1..total {
        assert_eq!(rd(&mut u, DR), u32::from(i as u8), "byte {i}");
    }
    assert_eq!(rd(&mut u, DR), 0xAB);
    assert_eq!(rd(&mut u, FR) & FR_RXFE, FR_RXFE);
    // Turning the FIFO on takes the line's bytes into it.
    wr(&mut u, LCR_H, 0x60);
    for b in 0..4 {
        assert!(u.push_rx(b));
    }
    assert_eq!((u.rx_len(), u.line_len()), (1, 3));
    wr(&mut u, LCR_H, LCR_H_FEN | 0x60);
    assert_eq!((u.rx_len(), u.line_len()), (4, 0));
}

#[test]
fn rx_fifo_trigger_and_timeout_levels() {
    let mut u = Uart::new(Vec::new());
    wr(&mut u, LCR_H, LCR_H_FEN | 0x60);
    wr(&mut u, IMSC, INT_RX | INT_RT);
    for b in 0..7u8 {
        assert!(u.push_rx(b));
    }
    // 7 < 8 (1/2 of 16): timeout, not RX.
    assert_eq!(rd(&mut u, MIS), INT_RT);
    assert!(u.push_rx(7));
    assert_eq!(rd(&mut u, MIS), INT_RX);
    for b in 8..16u8 {
        assert!(u.push_rx(b));
    }
    assert_eq!(u.rx_room(), LINE_BYTES, "the FIFO is full, the line empty");
    assert_eq!(rd(&mut u, FR) & FR_RXFF, FR_RXFF);
    for b in 0..16u8 {
        assert_eq!(u.read(at(DR, 2)).unwrap(), b.into());
    }
    assert_eq!(rd(&mut u, RIS), 0);
    // ICR does not hide data that is still waiting.
    u.push_rx(1);
    wr(&mut u, ICR, INT_ALL);
    assert_eq!(rd(&mut u, MIS), INT_RT);
    // IFLS 1/8 -> trigger at 2.
    wr(&mut u, IFLS, 0);
    u.push_rx(2);
    assert_eq!(rd(&mut u, MIS), INT_RX);
}

#[test]
fn disabling_fifo_keeps_oldest_byte() {
    let mut u = Uart::new(Vec::new());
    wr(&mut u, LCR_H, LCR_H_FEN);
    u.push_rx(b'1');
    u.push_rx(b'2');
    wr(&mut u, LCR_H, 0);
    assert_eq!(u.rx_len(), 1);
    assert_eq!(rd(&mut u, DR), u32::from(b'1'));
}

#[test]
fn config_registers_hold_implemented_bits() {
    let mut u = Uart::new(Vec::new());
    for (reg, mask) in [
        (ILPR, 0xFF),
        (IBRD, 0xFFFF),
        (FBRD, 0x3F),
        (LCR_H, 0xFF),
        (CR, 0xFF87),
        (IFLS, 0x3F),
        (IMSC, 0x7FF),
        (DMACR, 7),
    ] {
        wr(&mut u, reg, u32::MAX);
        assert_eq!(rd(&mut u, reg), mask, "reg {reg:#x}");
        wr(&mut u, reg, 0);
        assert_eq!(rd(&mut u, reg), 0);
    }
}

#[test]
fn read_only_and_reserved_offsets_are_raz_wi() {
    let mut u = Uart::new(Vec::new());
    for off in [FR, RIS, MIS, ID_BASE, 0x00C, 0x04C, 0x800, 0xFDC] {
        let before = rd(&mut u, off);
        wr(&mut u, off, u32::MAX);
        assert_eq!(rd(&mut u, off), before, "offset {off:#x}");
    }
    assert_eq!(rd(&mut u, 0x00C), 0);
    assert_eq!(rd(&mut u, RSR), 0);
    assert_eq!(rd(&mut u, ICR), 0);
    assert!(u.sink().is_empty());
}

#[test]
fn sub_word_lanes() {
    let mut u = Uart::new(Vec::new());
    wr(&mut u, IBRD, 0xABCD);
    assert_eq!(u.read(at(IBRD + 1, 1)).unwrap(), 0xAB);
    assert_eq!(u.read(at(IBRD + 2, 2)).unwrap(), 0);
    // Upper-lane writes are ignored.
    u.write(at(IBRD + 1, 1), 0x12).unwrap();
    assert_eq!(rd(&mut u, IBRD), 0xABCD);
    // Upper-lane DR read does not pop.
    u.push_rx(b'z');
    assert_eq!(u.read(at(DR + 1, 1)).unwrap(), 0);
    assert_eq!(u.rx_len(), 1);
    u.write(at(DR + 2, 2), 0x41).unwrap();
    assert!(u.sink().is_empty());
}

#[test]
fn bad_widths_and_alignment_abort() {
    let mut u = Uart::new(Vec::new());
    assert_eq!(u.read(at(DR, 8)), Err(DeviceError::Abort));
    assert_eq!(u.write(at(DR, 8), 0x41), Err(DeviceError::Abort));
    assert_eq!(u.read(at(FR + 1, 2)), Err(DeviceError::Abort));
    assert_eq!(u.write(at(CR + 2, 4), 0), Err(DeviceError::Abort));
    assert_eq!(u.read(at(0x1000, 4)), Err(DeviceError::Abort));
    assert!(u.sink().is_empty());
    assert_eq!(rd(&mut u, CR), 0x300);
}

#[test]
fn closure_sink() {
    let mut n = 0;
    {
        let mut u = Pl011::new(|_b: u8| n += 1);
        u.write(at(DR, 4), 1).unwrap();
        u.write(at(DR, 4), 2).unwrap();
    }
    assert_eq!(n, 2);
}

/// A sink with room for `cap` bytes the "wire" has not taken yet; `drain` bytes leave each
/// time it is asked whether it is full (a VMM collecting completions while the guest polls).
struct Bounded {
    wire: Vec<u8>,
    held: Vec<u8>,
    cap: usize,
    drain: usize,
    asked: usize,
}

impl Bounded {
    fn new(cap: usize, drain: usize) -> Self {
        Bounded {
            wire: Vec::new(),
            held: Vec::new(),
            cap,
            drain,
            asked: 0,
        }
    }

    fn send(&mut self, n: usize) {
        let n = n.min(self.held.len());
        self.wire.extend(self.held.drain(..n));
    }
}

impl TxSink for Bounded {
    fn put(&mut self, byte: u8) {
        assert!(self.held.len() < self.cap, "put while full");
        self.held.push(byte);
    }

    fn full(&mut self) -> bool {
        self.asked += 1;
        self.send(self.drain);
        self.held.len() >= self.cap
    }
}

#[test]
fn a_full_sink_reads_as_a_full_fifo_and_drops_a_write_as_the_hardware_does() {
    let mut u = Pl011::new(Bounded::new(2, 0));
    wr_b(&mut u, DR, b'a'.into());
    assert_eq!(rd_b(&mut u, FR) & (FR_TXFF | FR_TXFE | FR_BUSY), FR_TXFE);
    wr_b(&mut u, DR, b'b'.into());
    assert_eq!(
        rd_b(&mut u, FR) & (FR_TXFF | FR_TXFE | FR_BUSY),
        FR_TXFF | FR_BUSY
    );
    // Written while TXFF: lost, never handed to the sink (which would overflow it).
    wr_b(&mut u, DR, b'c'.into());
    assert_eq!(u.sink().held, b"ab");
    u.sink_mut().send(2);
    assert_eq!(rd_b(&mut u, FR) & (FR_TXFF | FR_TXFE), FR_TXFE);
    wr_b(&mut u, DR, b'd'.into());
    u.sink_mut().send(2);
    assert_eq!(u.sink().wire, b"abd");
}

#[test]
fn the_tx_interrupt_waits_for_room_when_the_sink_fills() {
    let mut u = Pl011::new(Bounded::new(2, 0));
    wr_b(&mut u, IMSC, INT_TX);
    wr_b(&mut u, DR, b'a'.into());
    assert!(u.irq_level(), "room left: TXRIS as before");
    wr_b(&mut u, DR, b'b'.into());
    assert_eq!(
        rd_b(&mut u, RIS) & INT_TX,
        0,
        "the write that filled it clears TXRIS"
    );
    assert!(!u.irq_level());
    // No room yet: nothing rises.
    assert!(!u.tx_room());
    assert!(!u.irq_level());
    u.sink_mut().send(1);
    assert!(u.tx_room());
    assert!(u.irq_level(), "room again: the guest's TX interrupt");
    assert_eq!(rd_b(&mut u, MIS), INT_TX);
    // Already raised: nothing to do.
    assert!(!u.tx_room());
}

#[test]
fn a_guest_polling_fr_makes_the_sink_progress() {
    // Each FR read lets one byte out, as the VMM collects its driver's completions then.
    let mut u = Pl011::new(Bounded::new(1, 0));
    let text = b"polled out\r\n";
    for &c in text {
        let mut spins = 0;
        while rd_b(&mut u, FR) & FR_TXFF != 0 {
            spins += 1;
            assert!(spins < 10, "FR polling never saw room");
            u.sink_mut().drain = 1;
        }
        wr_b(&mut u, DR, c.into());
    }
    u.sink_mut().send(1);
    assert_eq!(u.sink().wire, text, "every byte, once, in order");
    assert!(u.sink().asked > text.len());
}

fn rd_b(u: &mut Pl011<Bounded>, off: u64) -> u32 {
    u.read(at(off, 4)).unwrap() as u32
}

fn wr_b(u: &mut Pl011<Bounded>, off: u64, v: u32) {
    u.write(at(off, 4), v.into()).unwrap()
}
