//! TxStream (issue #17): an arbitrary byte stream reaches the wire whole and in order,
//! across driver restarts at any point (at least once: a chunk in flight may repeat).

mod common;

use axolotl_serial_core::{FakeUart, MSG_SLOT};
use common::*;
use proptest::prelude::*;

/// Polls client and driver until neither has work, shifting the wire out.
fn run(
    s: &mut Driver<1>,
    c: &mut axolotl_serial_core::TxStream<IDS>,
    wire: &mut Vec<u8>,
    rounds: usize,
) {
    for _ in 0..rounds {
        let _ = c.poll().unwrap();
        let _ = s.poll();
        while let Some(b) = s.uart_mut().shift_out() {
            wire.push(b);
        }
        let _ = s.on_irq();
    }
}

#[test]
fn a_stream_longer_than_the_slots_goes_out_in_order() {
    let links = [Link::new()];
    let mut c = links[0].tx_stream();
    let mut s = driver(FakeUart::new(8), &links, None, 1);
    let msg: Vec<u8> = (0..=255u8).cycle().take(IDS * MSG_SLOT * 3 + 5).collect();
    let mut sent = 0;
    let mut wire = Vec::new();
    while sent < msg.len() || c.pending() > 0 {
        sent += c.write(&msg[sent..]);
        run(&mut s, &mut c, &mut wire, 4);
    }
    assert_eq!(wire, msg);
    assert_eq!(c.room(), IDS * MSG_SLOT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Driver restarts at arbitrary points: every byte reaches the wire in order, and what
    /// the wire shows is the stream with some chunks repeated (a restart resends the chunk
    /// in flight), never a byte lost or reordered.
    #[test]
    fn restarts_lose_nothing(
        // Every byte value once: the stream is a subsequence of the wire only if every byte
        // reached it, in order.
        len in 1..=256usize,
        restarts in prop::collection::vec(0..40usize, 0..4),
        fifo in 1..=16usize,
    ) {
        let links = [Link::new()];
        let mut c = links[0].tx_stream();
        let mut generation = 1;
        let mut s = driver(FakeUart::new(fifo), &links, None, generation);
        let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut sent = 0;
        let mut wire = Vec::new();
        let mut step = 0;
        let mut restarts = restarts.into_iter().peekable();
        let mut guard = 0;
        while sent < msg.len() || c.pending() > 0 {
            guard += 1;
            prop_assert!(guard < 10_000, "stuck: {} of {} sent, {} pending", sent, len, c.pending());
            sent += c.write(&msg[sent..]);
            run(&mut s, &mut c, &mut wire, 1);
            step += 1;
            if restarts.peek().is_some_and(|&at| at <= step) {
                restarts.next();
                generation += 1;
                let uart = s.into_uart();
                s = driver(uart, &links, None, generation);
            }
        }
        // The wire is the stream as a subsequence-with-repeats: it begins with the stream's
        // first byte, ends with its last, and the stream is a subsequence of it.
        let mut i = 0;
        for &b in &wire {
            if i < msg.len() && b == msg[i] {
                i += 1;
            }
        }
        prop_assert_eq!(i, msg.len(), "the stream is not on the wire in order");
        if generation == 1 {
            prop_assert_eq!(&wire, &msg);
        }
    }
}
