//! Issue #20, findings 3 and 4, at the serial driver's level: a driver that lies about
//! generations in the ring region it shares with its clients.
//!
//! 3. A driver raising its own generation word on one connection is not taken for a
//!    restarted driver: the client reclaims and resubmits nothing, its queues are not reset
//!    under the live driver (which therefore never sees the innocent client as corrupt), the
//!    client reports the driver; after the real restart every message completes once, in
//!    order.
//! 4. A driver writing the client's own generation word (`u32::MAX`, or lower) does not
//!    decide the client's next incarnation: the restarted client attaches.

mod common;

use axolotl_ring::{Corruption, Error};
use axolotl_serial_core::{FakeUart, SeqClient, SeqClientError};
use common::*;

// lib/ring's control block: the client's line, then the server's.
const CLIENT_GEN: usize = 0;
const SERVER_GEN: usize = 64;

fn run_until_done<const N: usize>(s: &mut Driver<N>, cs: &mut [&mut SeqClient<IDS>]) {
    for _ in 0..400 {
        for c in cs.iter_mut() {
            let _ = c.poll().expect("an honest driver gives no errors");
        }
        let act = s.poll();
        assert!(act.faults.is_empty(), "driver reported {act:?}");
        while s.uart_mut().shift_out().is_some() {}
        let _ = s.on_irq();
        if cs.iter().all(|c| c.is_done()) {
            return;
        }
    }
    panic!("clients not done");
}

#[test]
fn a_driver_raising_its_generation_is_reported_not_believed() {
    for forged in [2, u32::MAX] {
        let links = [Link::new(), Link::new()];
        let mut a = links[0].seq_client("alpha", 4, Some(12));
        let mut b = links[1].seq_client("beta", 4, Some(12));
        let mut s = driver(FakeUart::new(4), &links, None, 1);
        for _ in 0..3 {
            let _ = a.poll().unwrap();
            let _ = b.poll().unwrap();
            assert!(s.poll().faults.is_empty());
        }
        let (sent, in_flight) = (a.stats().sent, a.in_flight());
        assert!(in_flight > 0);
        // The driver lies to alpha: "I restarted".
        links[0].rings.write_u32(SERVER_GEN, forged);
        let lie = SeqClientError::Ring(Error::Corrupt(Corruption::GenerationUnconfirmed {
            observed: forged,
            confirmed: 1,
        }));
        assert_eq!(a.poll().map(|_| ()), Err(lie), "forged {forged}");
        assert_eq!(
            a.poll().map(|_| ()),
            Err(lie),
            "sticky until a real restart"
        );
        let st = a.stats();
        assert_eq!(
            (st.resubmitted, st.driver_restarts, a.in_flight(), st.sent),
            (0, 0, in_flight, sent),
            "nothing reclaimed or resubmitted on a lie"
        );
        // The live driver keeps serving both: alpha's queues were not reset under it, so it
        // has nothing against alpha.
        for _ in 0..10 {
            let act = s.poll();
            assert!(act.faults.is_empty(), "innocent client reported: {act:?}");
            while s.uart_mut().shift_out().is_some() {}
            let _ = s.on_irq();
            let _ = b.poll().unwrap();
        }
        // The monitor acts on alpha's report: the driver is restarted.
        let uart = s.into_uart();
        let mut s = driver(uart, &links, None, 2);
        run_until_done(&mut s, &mut [&mut a, &mut b]);
        assert_eq!(a.stats().driver_restarts, 1);
        assert_eq!(a.stats().sent, 12);
        assert_eq!(a.stats().completed, 12);
    }
}

#[test]
fn a_driver_writing_the_clients_generation_word_cannot_stop_its_restart() {
    // u32::MAX: a client deriving its generation from its old word could not start;
    // 0: it would come back at 1, below what the driver acknowledged, "regressed".
    for forged in [u32::MAX, 0] {
        let links = [Link::new()];
        let mut a = links[0].seq_client("alpha", 4, Some(8));
        let mut s = driver(FakeUart::new(4), &links, None, 1);
        for _ in 0..3 {
            let _ = a.poll().unwrap();
            let _ = s.poll();
        }
        links[0].rings.write_u32(CLIENT_GEN, forged);
        // The client is restarted (say it crashed): its generation comes from the authority.
        a = links[0].seq_client("alpha", 4, Some(8));
        run_until_done(&mut s, &mut [&mut a]);
        assert_eq!(a.stats().completed, 8, "forged {forged}");
        assert!(s.stats().abandoned > 0);
    }
}
