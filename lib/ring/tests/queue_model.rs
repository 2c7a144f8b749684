//! The queue against a `VecDeque` model under random operation sequences.
// Real-build layout and atomics; the loom build runs only tests/loom.rs.
#![cfg(not(feature = "loom"))]

mod common;

use std::collections::VecDeque;

use axolotl_ring::{Consumer, Descriptor, MAX_ID, Producer, PushError, Signal, Wait, queue_bytes};
use common::Mem;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Push(Descriptor),
    Pop,
    Len,
    Free,
    PrepareWait,
    SignalNeeded,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u32>(), any::<u32>(), 0u32..=MAX_ID, any::<u32>()).prop_map(|(offset, len, id, tag)| Op::Push(Descriptor { offset, len, id, tag })),
        // An id the slot cannot carry is refused whole, never truncated.
        1 => (MAX_ID + 1..=u32::MAX).prop_map(|id| Op::Push(Descriptor { offset: 0, len: 0, id, tag: 0 })),
        4 => Just(Op::Pop),
        1 => Just(Op::Len),
        1 => Just(Op::Free),
        1 => Just(Op::PrepareWait),
        1 => Just(Op::SignalNeeded),
    ]
}

/// Runs `ops` on a real queue and on the model; any divergence fails.
fn check(capacity: u32, ops: &[Op], start: u32) {
    let mem = Mem::new(queue_bytes(capacity).unwrap());
    // A queue whose free-running indices start at `start` (to cross the wrap).
    mem.write_u32(common::Q_TAIL, start);
    mem.write_u32(common::Q_HEAD, start);
    let mut p = Producer::new_at(mem.region(), capacity, start).unwrap();
    let mut c = Consumer::new_at(mem.region(), capacity, start).unwrap();
    let mut model: VecDeque<Descriptor> = VecDeque::new();
    let mut flag = false;
    for op in ops {
        match op {
            Op::Push(d) => {
                let r = p.push(*d);
                if d.id > MAX_ID {
                    assert_eq!(r, Err(PushError::IdTooLarge { id: d.id }));
                } else if model.len() == capacity as usize {
                    assert_eq!(r, Err(PushError::Full));
                } else {
                    assert_eq!(r, Ok(()));
                    model.push_back(*d);
                }
            }
            Op::Pop => assert_eq!(c.pop(), Ok(model.pop_front())),
            Op::Len => assert_eq!(c.len(), Ok(model.len() as u32)),
            Op::Free => assert_eq!(p.free(), Ok(capacity - model.len() as u32)),
            Op::PrepareWait => {
                flag = true;
                let want = if model.is_empty() {
                    Wait::Block
                } else {
                    Wait::Retry
                };
                assert_eq!(c.prepare_wait(), Ok(want));
            }
            Op::SignalNeeded => {
                let want = if flag { Signal::Notify } else { Signal::Quiet };
                flag = false;
                assert_eq!(p.signal_needed(), want);
            }
        }
    }
    // Drain: everything pushed comes out, in order, exactly once.
    while let Some(d) = model.pop_front() {
        assert_eq!(c.pop(), Ok(Some(d)));
    }
    assert_eq!(c.pop(), Ok(None));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn queue_matches_vecdeque(cap_log in 0u32..5, ops in prop::collection::vec(op(), 0..200)) {
        check(1 << cap_log, &ops, 0);
    }

    #[test]
    fn queue_matches_vecdeque_across_index_wrap(
        cap_log in 0u32..4,
        before in 0u32..40,
        ops in prop::collection::vec(op(), 0..200),
    ) {
        check(1 << cap_log, &ops, u32::MAX - before);
    }
}

#[test]
fn many_laps_keep_fifo_order() {
    let ops: Vec<Op> = (0..1000u32)
        .flat_map(|i| {
            let d = Descriptor {
                offset: i,
                len: 2 * i,
                id: 3,
                tag: 4,
            };
            [Op::Push(d), Op::Push(d), Op::Pop]
        })
        .collect();
    check(2, &ops, u32::MAX - 7);
}
