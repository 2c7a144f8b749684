//! The serial byte ring against a `VecDeque<u8>` model, and its validation.
// Real-build layout and atomics; the loom build runs only tests/loom.rs.
#![cfg(not(feature = "loom"))]

mod common;

use std::collections::VecDeque;

use axolotl_ring::{ByteConsumer, ByteProducer, Corruption, Index, Signal, Wait, byte_ring_bytes};
use common::{Mem, Q_HEAD, Q_TAIL};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<u8>),
    Read(usize),
    PrepareWait,
    SignalNeeded,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Write),
        (0usize..40).prop_map(Op::Read),
        Just(Op::PrepareWait),
        Just(Op::SignalNeeded),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn byte_ring_matches_vecdeque(cap_log in 0u32..6, ops in prop::collection::vec(op(), 0..100)) {
        let cap = 1u32 << cap_log;
        let mem = Mem::new(byte_ring_bytes(cap).unwrap());
        let mut p = ByteProducer::new(mem.region(), cap).unwrap();
        let mut c = ByteConsumer::new(mem.region(), cap).unwrap();
        let mut model = VecDeque::new();
        let mut flag = false;
        for op in ops {
            match op {
                Op::Write(bytes) => {
                    let room = cap as usize - model.len();
                    let n = p.write(&bytes).unwrap();
                    prop_assert_eq!(n, room.min(bytes.len()));
                    model.extend(&bytes[..n]);
                }
                Op::Read(k) => {
                    let mut buf = vec![0; k];
                    let n = c.read(&mut buf).unwrap();
                    let want: Vec<u8> = model.drain(..k.min(model.len())).collect();
                    prop_assert_eq!(&buf[..n], &want[..]);
                }
                Op::PrepareWait => {
                    flag = true;
                    let want = if model.is_empty() { Wait::Block } else { Wait::Retry };
                    prop_assert_eq!(c.prepare_wait().unwrap(), want);
                }
                Op::SignalNeeded => {
                    let want = if flag { Signal::Notify } else { Signal::Quiet };
                    flag = false;
                    prop_assert_eq!(p.signal_needed(), want);
                }
            }
        }
    }
}

#[test]
fn byte_ring_rejects_impossible_indices() {
    let mem = Mem::new(byte_ring_bytes(8).unwrap());
    let mut p = ByteProducer::new(mem.region(), 8).unwrap();
    let mut c = ByteConsumer::new(mem.region(), 8).unwrap();
    mem.write_u32(Q_TAIL, 9);
    assert_eq!(
        c.read(&mut [0; 4]),
        Err(Corruption::IndexOverrun {
            index: Index::Tail,
            head: 0,
            tail: 9,
            capacity: 8
        })
    );
    mem.write_u32(Q_HEAD, 1);
    assert_eq!(
        p.write(b"x"),
        Err(Corruption::IndexOverrun {
            index: Index::Head,
            head: 1,
            tail: 0,
            capacity: 8
        })
    );
}
