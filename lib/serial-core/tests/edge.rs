//! A UART whose interrupts are events, not levels (the meson UART's, edge-triggered at the
//! GIC): an interrupt is raised when a byte enters the receive FIFO or leaves the transmit
//! FIFO while it is enabled, never for what happened before. The driver enables an interrupt
//! only after finding it needed (the receive FIFO read dry with a buffer posted, the
//! transmit FIFO full with bytes waiting); what the line does in between must not leave it
//! waiting for an interrupt that never comes.
//!
//! The PDs here run only when the other side notified them, as in a system: a driver that
//! went idle is woken by its clients or by its interrupt, not by the test's loop.

mod common;

use axolotl_serial_core::{ConnId, FakeUart, Irqs, RxError, Server, Uart};
use common::*;

/// [`FakeUart`] with the line scripted at the driver's worst moment, just before an
/// interrupt it enables takes effect (after its last look at the FIFOs): one byte arrives
/// before the receive interrupt is on, or the transmit FIFO drains whole before the transmit
/// interrupt is on.
struct Racy {
    inner: FakeUart,
    arrive_before_rx_irq: Option<u8>,
    drain_before_tx_irq: bool,
    wire: Vec<u8>,
}

impl Racy {
    fn new(depth: usize) -> Self {
        Self {
            inner: FakeUart::new(depth),
            arrive_before_rx_irq: None,
            drain_before_tx_irq: false,
            wire: Vec::new(),
        }
    }
}

impl Uart for Racy {
    fn try_write(&mut self, byte: u8) -> bool {
        self.inner.try_write(byte)
    }

    fn try_read(&mut self) -> Result<Option<u8>, RxError> {
        self.inner.try_read()
    }

    fn set_irq_mask(&mut self, mask: Irqs) {
        let was = self.inner.mask();
        if mask.contains(Irqs::RX)
            && !was.contains(Irqs::RX)
            && let Some(b) = self.arrive_before_rx_irq.take()
        {
            assert!(self.inner.inject_rx(b));
        }
        if mask.contains(Irqs::TX)
            && !was.contains(Irqs::TX)
            && std::mem::take(&mut self.drain_before_tx_irq)
        {
            while let Some(b) = self.inner.shift_out() {
                self.wire.push(b);
            }
        }
        self.inner.set_irq_mask(mask)
    }

    fn irq_status(&self) -> Irqs {
        self.inner.irq_status()
    }

    fn clear_irqs(&mut self, irqs: Irqs) {
        self.inner.clear_irqs(irqs)
    }
}

/// A byte that arrives between the driver's last read of the dry receive FIFO and its
/// enabling the receive interrupt raises no event: the driver must take it anyway.
#[test]
fn a_byte_arriving_before_the_receive_interrupt_is_enabled_is_taken() {
    let rx_link = Link::with_data(IDS * 256);
    let mut rx = rx_link.rx_client();
    let mut uart = Racy::new(8);
    uart.arrive_before_rx_irq = Some(b'x');
    let pd = rx_link.start_server(1);
    let mut s: Server<Racy, 0, IDS> = Server::new(uart, [], Some(rx_link.conn()), pd).unwrap();
    let mut received = Vec::new();
    // Notifications only: each side runs when the other asked for it.
    let mut to_driver = true;
    for _ in 0..20 {
        let act = if to_driver {
            s.poll()
        } else {
            Default::default()
        };
        assert!(act.faults.is_empty(), "{act:?}");
        let to_client = act.notify.contains(ConnId::Rx) || !to_driver;
        to_driver = false;
        if to_client {
            let a = rx.poll(|b| received.extend_from_slice(b)).unwrap();
            to_driver = a.notify;
        }
        if !to_driver && !to_client {
            break;
        }
    }
    assert!(s.held(ConnId::Rx) > 0, "buffers posted");
    assert!(s.irq_mask().contains(Irqs::RX), "waiting for input");
    assert_eq!(
        received, b"x",
        "the byte waits in the UART, which will raise no interrupt for it"
    );
}

/// The transmit FIFO draining whole between the driver's refused write and its enabling
/// the transmit interrupt raises no event either: the driver must fill it again itself.
#[test]
fn a_fifo_drained_before_the_transmit_interrupt_is_enabled_is_refilled() {
    let links = [Link::new()];
    let mut c = links[0].seq_client("alpha", 4, Some(4));
    let pd = links[0].start_server(1);
    let mut uart = Racy::new(4);
    // The FIFO holds 4 bytes ("alpha 0\n" is 8): it fills, the write after is refused, and
    // the line sends everything before the driver enables the interrupt.
    uart.drain_before_tx_irq = true;
    let mut s: Server<Racy, 1, IDS> = Server::new(uart, [links[0].conn()], None, pd).unwrap();
    let mut to_driver = c.poll().unwrap().notify;
    for _ in 0..20 {
        if to_driver {
            let act = s.poll();
            assert!(act.faults.is_empty(), "{act:?}");
            if !s.uart().drain_before_tx_irq {
                assert_eq!(
                    s.uart().wire,
                    b"alph",
                    "the line took the first FIFO's worth"
                );
                assert!(
                    s.uart().inner.tx_level() > 0,
                    "bytes wait with an empty FIFO: the UART will raise no interrupt for \
                     them ({} bytes written)",
                    s.stats().tx_bytes
                );
                return;
            }
            if !act.notify.contains(ConnId::Tx(0)) {
                to_driver = false;
            }
        }
        to_driver |= c.poll().unwrap().notify;
    }
    panic!("the FIFO never filled: the test tests nothing");
}
