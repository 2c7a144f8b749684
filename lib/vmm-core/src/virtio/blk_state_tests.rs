//! Requests in flight across a VMM restart: each completed to the guest exactly once,
//! whatever order the backend completed them in and wherever the VMM died.
extern crate std;

use std::vec;
use std::vec::Vec;

use super::super::tests::{FakeBackend, Guest, config};
use super::*;
use crate::virtio::blk::{BlkOp, Completion, S_OK, T_GET_ID, T_IN, T_OUT};
use crate::virtio::testutil::RAM_BASE;

const RAM: (u64, u64) = (RAM_BASE, crate::virtio::testutil::RAM_SIZE as u64);

/// Three requests at the backend (write 0, read 1, write 2); the read completed first.
fn three_at_the_backend() -> (Guest, [u16; 3]) {
    let mut g = Guest::new();
    let a = g.add(T_OUT, 0, Some(&[0xAA; 512]), 0);
    let b = g.add(T_IN, 1, None, 512);
    let c = g.add(T_OUT, 2, Some(&[0xCC; 512]), 0);
    g.kick();
    assert_eq!(g.be.taken.len(), 3);
    let read = g.be.taken[1].0;
    assert_eq!(g.complete(read.id, S_OK, &[7; 512]), Completion::Done);
    assert_eq!(g.used(), vec![(u32::from(b.head), 513)]);
    (g, [a.head, b.head, c.head])
}

/// The restarted VMM's device over the same guest memory, with a new backend.
fn restarted(g: &mut Guest, saved: &(TransportState<1>, BlkState)) -> usize {
    let mut dev = VirtioBlk::new(config(), RAM);
    let n = dev.restore(&mut g.ram, &saved.0, &saved.1).unwrap();
    g.dev = dev;
    g.be = FakeBackend::default();
    g.dev.process(&mut g.ram, &mut g.be);
    n
}

#[test]
fn requests_held_are_reissued_and_completed_once() {
    let (mut g, [a, _, c]) = three_at_the_backend();
    let saved = g.dev.save();
    assert_eq!(saved.1.count, 2);
    let old: Vec<u64> = g.be.taken.iter().map(|(r, _)| r.id).collect();
    assert_eq!(restarted(&mut g, &saved), 2);
    // Handed over again, oldest first, with the same data.
    let again: Vec<(BlkOp, u64, Vec<u8>)> =
        g.be.taken
            .iter()
            .map(|(r, d)| (r.op, r.sector, d.clone()))
            .collect();
    assert_eq!(
        again,
        vec![
            (BlkOp::Write, 0, vec![0xAA; 512]),
            (BlkOp::Write, 2, vec![0xCC; 512])
        ]
    );
    // The dead VMM's backend completing its ids: matches nothing, reaches no ring.
    for id in old {
        assert_eq!(g.complete(id, S_OK, &[]), Completion::UnknownId);
    }
    assert!(g.used().is_empty());
    let ids: Vec<u64> = g.be.taken.iter().map(|(r, _)| r.id).collect();
    for id in ids {
        assert_eq!(g.complete(id, S_OK, &[]), Completion::Done);
    }
    let mut used: Vec<u32> = g.used().into_iter().map(|(h, _)| h).collect();
    used.sort_unstable();
    assert_eq!(used, [u32::from(a), u32::from(c)]);
    assert_eq!(g.dev.in_flight(), 0);
}

/// The dead VMM wrote a completion to the used ring after its last commit: the driver
/// was told, so that request is done, not re-issued.
#[test]
fn a_completion_written_after_the_commit_is_not_reissued() {
    let (mut g, [a, _, c]) = three_at_the_backend();
    let saved = g.dev.save();
    let first = g.be.taken[0].0;
    assert_eq!(g.complete(first.id, S_OK, &[]), Completion::Done);
    assert_eq!(g.used(), vec![(u32::from(a), 1)]);
    assert_eq!(restarted(&mut g, &saved), 1);
    assert_eq!(g.be.taken.len(), 1);
    assert_eq!(g.be.taken[0].0.sector, 2);
    let id = g.be.taken[0].0.id;
    assert_eq!(g.complete(id, S_OK, &[]), Completion::Done);
    assert_eq!(g.used(), vec![(u32::from(c), 1)]);
}

#[test]
fn inconsistent_requests_are_refused() {
    let (mut g, _) = three_at_the_backend();
    let (t, st) = g.dev.save();
    let mut dev = VirtioBlk::new(config(), RAM);
    // More than the table holds.
    let bad = BlkState {
        count: TABLE + 1,
        ..st
    };
    assert!(dev.restore(&mut g.ram, &t, &bad).is_err());
    // The used ring names a request that was not held (the completed read again).
    let mut t2 = t;
    t2.queues[0].next_used = t2.queues[0].next_used.wrapping_sub(1);
    assert!(dev.restore(&mut g.ram, &t2, &st).is_err());
    // A head beyond the queue.
    let mut bad = st;
    bad.heads[0] = 999;
    assert!(dev.restore(&mut g.ram, &t, &bad).is_err());
    // Refused restores leave the device as it was: a fresh one.
    assert_eq!(dev.in_flight(), 0);
    assert_eq!(dev.transport.status(), 0);
}

/// The dead VMM took three requests after its last commit and completed the middle one (a
/// GET_ID, which the device answers itself) before it died: the used ring is ahead of the
/// commit with a head the commit never held. The first is handed over again after the one
/// the commit held, the third is taken anew, the GET_ID is not answered twice.
#[test]
fn requests_taken_and_completed_after_the_commit() {
    let mut g = Guest::new();
    let a = g.add(T_OUT, 0, Some(&[0xAA; 512]), 0);
    g.kick();
    let saved = g.dev.save();
    let b = g.add(T_IN, 1, None, 512);
    let c = g.add(T_GET_ID, 0, None, 20);
    let d = g.add(T_IN, 3, None, 512);
    g.kick();
    assert_eq!(g.be.taken.len(), 3);
    assert_eq!(g.used(), vec![(u32::from(c.head), 21)]);
    restarted(&mut g, &saved);
    let again: Vec<(BlkOp, u64)> = g.be.taken.iter().map(|(r, _)| (r.op, r.sector)).collect();
    assert_eq!(
        again,
        vec![(BlkOp::Write, 0), (BlkOp::Read, 1), (BlkOp::Read, 3)]
    );
    // The restarted device raises an interrupt for what the dead one may not have signalled.
    assert!(g.dev.irq_level());
    let ids: Vec<u64> = g.be.taken.iter().map(|(r, _)| r.id).collect();
    for id in ids {
        assert_eq!(g.complete(id, S_OK, &[1; 512]), Completion::Done);
    }
    let mut used: Vec<u32> = g.used().into_iter().map(|(h, _)| h).collect();
    used.sort_unstable();
    let mut want = vec![u32::from(a.head), u32::from(b.head), u32::from(d.head)];
    want.sort_unstable();
    assert_eq!(used, want);
    assert_eq!(g.dev.in_flight(), 0);
}
