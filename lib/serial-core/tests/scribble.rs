//! A client (or someone on its behalf) scribbling anywhere in its shared
//! regions at any time: nothing panics, the driver reports the connection at
//! most once per client generation, and the other client is served in full.

mod common;

use axolotl_serial_core::{ConnId, FakeUart};
use common::*;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Client(usize),
    Driver,
    Irq,
    Shift(u8),
    /// A word of connection 0's ring region.
    ScribbleRings {
        word: usize,
        value: u32,
    },
    /// A word of connection 0's data region.
    ScribbleData {
        word: usize,
        value: u32,
    },
}

fn value() -> impl Strategy<Value = u32> {
    prop_oneof![
        0..8u32,
        Just(u32::MAX),
        Just(1 << 31),
        any::<u32>(),
        (0..600u32),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ring_words = axolotl_ring::ring_region_bytes(CAP).unwrap() / 4;
    let data_words = IDS * axolotl_serial_core::MSG_SLOT / 4;
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Client),
        3 => Just(Op::Driver),
        2 => Just(Op::Irq),
        3 => (1..12u8).prop_map(Op::Shift),
        1 => (0..ring_words, value()).prop_map(|(word, value)| Op::ScribbleRings { word, value }),
        1 => (0..data_words, value()).prop_map(|(word, value)| Op::ScribbleData { word, value }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn scribbles_are_contained(ops in proptest::collection::vec(op(), 0..300)) {
        let links = [Link::new(), Link::new()];
        let mut victim = links[0].seq_client("v", 3, None);
        let n = 12;
        let mut good = links[1].seq_client("g", 2, Some(n));
        let mut s = driver(FakeUart::new(8), &links, None, 1);
        let mut faults = 0;
        let mut completed = Vec::new();
        let mut wire = Vec::new();
        let mut step = |op: Op, s: &mut Driver<2>, victim: &mut axolotl_serial_core::SeqClient<IDS>, good: &mut axolotl_serial_core::SeqClient<IDS>| {
            match op {
                Op::Client(0) => {
                    // Errors are expected: its rings are being scribbled on.
                    let _ = victim.poll();
                }
                Op::Client(_) => {
                    let act = good.poll().expect("the other client is unaffected");
                    completed.extend(act.first_completed..act.first_completed + act.completed);
                }
                Op::Driver | Op::Irq => {
                    let act = if matches!(op, Op::Irq) { s.on_irq() } else { s.poll() };
                    assert!(!act.faults.contains(ConnId::Tx(1)));
                    if act.faults.contains(ConnId::Tx(0)) {
                        faults += 1;
                    }
                }
                Op::Shift(k) => {
                    for _ in 0..k {
                        if let Some(b) = s.uart_mut().shift_out() {
                            wire.push(b);
                        }
                    }
                }
                Op::ScribbleRings { word, value } => links[0].rings.write_u32(4 * word, value),
                Op::ScribbleData { word, value } => links[0].data.write_u32(4 * word, value),
            }
        };
        for &op in &ops {
            step(op, &mut s, &mut victim, &mut good);
        }
        let fair = [Op::Client(1), Op::Driver, Op::Shift(8), Op::Irq, Op::Client(0)];
        for k in 0..5_000 {
            if good.is_done() {
                break;
            }
            step(fair[k % fair.len()], &mut s, &mut victim, &mut good);
        }
        prop_assert!(good.is_done());
        prop_assert_eq!(completed, (0..n).collect::<Vec<_>>());
        // One report per client generation: a scribbled generation word
        // looks like a client restart, after which the driver may report again.
        let generation_scribbles = ops
            .iter()
            .filter(|o| matches!(o, Op::ScribbleRings { word: 0, .. }))
            .count();
        prop_assert!(faults <= 1 + generation_scribbles);
        while let Some(b) = s.uart_mut().shift_out() {
            wire.push(b);
        }
        for seq in 0..n {
            prop_assert!(contains(&wire, &msg("g", seq)));
        }
    }
}
