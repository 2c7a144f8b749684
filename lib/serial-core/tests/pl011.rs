//! The PL011 implementation against a memory-backed register block: which
//! registers it touches, with what values, at which offsets.

use std::ptr::NonNull;

use axolotl_serial_core::{Irqs, Pl011, QEMU_VIRT_UARTCLK, RxError, Uart};

const DR: usize = 0;
const FR: usize = 0x18 / 4;
const IBRD: usize = 0x24 / 4;
const FBRD: usize = 0x28 / 4;
const LCR_H: usize = 0x2c / 4;
const CR: usize = 0x30 / 4;
const IFLS: usize = 0x34 / 4;
const IMSC: usize = 0x38 / 4;
const MIS: usize = 0x40 / 4;
const ICR: usize = 0x44 / 4;

struct Regs(Box<[u32; 1024]>);

impl Regs {
    fn new() -> Self {
        Self(Box::new([0; 1024]))
    }
    fn uart(&mut self) -> Pl011 {
        // SAFETY: a 4 KiB block that outlives the Pl011 in each test; the
        // test reads it only between Pl011 calls.
        unsafe { Pl011::new(NonNull::new(self.0.as_mut_ptr().cast()).unwrap()) }
    }
    fn get(&self, i: usize) -> u32 {
        // SAFETY: in bounds; the Pl011 writes it with volatile stores.
        unsafe { std::ptr::read_volatile(&self.0[i]) }
    }
    fn set(&mut self, i: usize, v: u32) {
        // SAFETY: as in `get`.
        unsafe { std::ptr::write_volatile(&mut self.0[i], v) }
    }
}

#[test]
fn init_programs_8n1_fifos_levels_and_masks() {
    let mut r = Regs::new();
    r.set(IMSC, 0x7ff);
    r.uart().init(115_200, QEMU_VIRT_UARTCLK).unwrap();
    // 24 MHz / (16 * 115200) = 13.02: IBRD 13, FBRD round(0.02 * 64) = 1.
    assert_eq!((r.get(IBRD), r.get(FBRD)), (13, 1));
    assert_eq!(r.get(LCR_H), 0x70, "WLEN 8 bits, FEN");
    assert_eq!(r.get(CR), 0x301, "UARTEN, TXE, RXE");
    assert_eq!(r.get(IFLS), 0x12, "RX and TX at half");
    assert_eq!(r.get(IMSC), 0, "all masked");
    assert_eq!(r.get(ICR), 0x7ff, "all cleared");
    assert!(r.uart().init(115_200, 0).is_err());
}

#[test]
fn fifo_flags_gate_data_register_access() {
    let mut r = Regs::new();
    assert!(r.uart().try_write(b'x'));
    assert_eq!(r.get(DR), u32::from(b'x'));
    r.set(FR, 1 << 5); // TXFF
    r.set(DR, 0);
    assert!(!r.uart().try_write(b'y'));
    assert_eq!(r.get(DR), 0, "not written when full");
    r.set(FR, 1 << 4); // RXFE
    r.set(DR, u32::from(b'q'));
    assert_eq!(r.uart().try_read(), Ok(None));
    r.set(FR, 0);
    assert_eq!(r.uart().try_read(), Ok(Some(b'q')));
    r.set(DR, u32::from(b'q') | 1 << 8); // FE
    assert_eq!(r.uart().try_read(), Err(RxError::Framing));
    r.set(DR, 1 << 11); // OE
    assert_eq!(r.uart().try_read(), Err(RxError::Overrun));
}

#[test]
fn interrupt_registers() {
    let mut r = Regs::new();
    r.uart()
        .set_irq_mask(Irqs::TX | Irqs::RX | Irqs::RX_TIMEOUT);
    assert_eq!(r.get(IMSC), 0x70);
    r.set(MIS, 0x20);
    assert_eq!(r.uart().irq_status(), Irqs::TX);
    r.uart().clear_irqs(Irqs::TX);
    assert_eq!(r.get(ICR), 0x20);
}
