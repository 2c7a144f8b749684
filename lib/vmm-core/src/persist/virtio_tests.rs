//! The virtio chunks: a VMM that dies at any store of a commit that follows virtio-blk work
//! (a queue notification, the backend's completions) is restarted, and every request the
//! guest made completes to it exactly once, with the same data; the words themselves are
//! checked.
extern crate std;

use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::super::tests::{Mem, TestVm, layout, new_vm};
use super::*;
use crate::persist::{StateRegion, region};
use crate::virtio::blk::tests::{FakeBackend, Guest, config};
use crate::virtio::blk::{BlkOp, Completion, S_OK, T_GET_ID, T_IN, T_OUT};
use crate::virtio::testutil::{RAM_BASE, RAM_SIZE};

const RAM: (u64, u64) = (RAM_BASE, RAM_SIZE as u64);
const BLK_ONLY: Devices = Devices {
    net: false,
    blk: true,
};

#[derive(Debug, Clone)]
enum Op {
    Read(u8),
    Write(u8),
    GetId,
    Kick,
    /// The backend completes the `n % len`-th request it holds.
    Complete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<u8>().prop_map(Op::Read),
        2 => any::<u8>().prop_map(Op::Write),
        1 => Just(Op::GetId),
        3 => Just(Op::Kick),
        3 => any::<u8>().prop_map(Op::Complete),
    ]
}

struct Run {
    g: Guest,
    vm: TestVm,
    mem: Mem,
    /// Requests made, per head.
    made: HashMap<u16, usize>,
    /// Completions the guest saw, per head.
    seen: HashMap<u16, usize>,
}

impl Run {
    fn new() -> Self {
        let g = Guest::new();
        let mut vm = new_vm(true, 1);
        vm.set_devices(BLK_ONLY);
        vm.keep_virtio(None, Some(&g.dev));
        let mut mem = Mem::new();
        vm.persist_format(&mut StateRegion::new(&mut mem).unwrap());
        Run {
            g,
            vm,
            mem,
            made: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    fn step(&mut self, op: &Op) {
        // The fake driver takes descriptors round-robin, never reusing a freed one out of
        // turn: past 64 (three a request) it would overwrite chains still in flight, which
        // a real driver never does and which the restore rightly refuses as a broken queue.
        let made = self.made.values().sum::<usize>();
        if matches!(op, Op::Read(_) | Op::Write(_) | Op::GetId) && made >= 64 / 3 {
            return;
        }
        let g = &mut self.g;
        let head = match *op {
            Op::Read(s) => Some(g.add(T_IN, s.into(), None, 512).head),
            Op::Write(s) => Some(g.add(T_OUT, s.into(), Some(&[s; 512]), 0).head),
            Op::GetId => Some(g.add(T_GET_ID, 0, None, 20).head),
            Op::Kick => {
                g.kick();
                None
            }
            Op::Complete(n) => {
                if !g.be.taken.is_empty() {
                    let (r, _) = g.be.taken.remove(usize::from(n) % g.be.taken.len());
                    let data = if r.op == BlkOp::Read {
                        vec![r.sector as u8; r.len as usize]
                    } else {
                        vec![]
                    };
                    assert_eq!(g.complete(r.id, S_OK, &data), Completion::Done);
                }
                None
            }
        };
        if let Some(h) = head {
            *self.made.entry(h).or_default() += 1;
        }
        self.collect();
    }

    fn collect(&mut self) {
        for (h, _) in self.g.used() {
            *self.seen.entry(h as u16).or_default() += 1;
        }
    }

    fn commit(&mut self, budget: usize) {
        self.vm.keep_virtio(None, Some(&self.g.dev));
        self.mem.left = budget;
        self.vm
            .commit(&mut StateRegion::new(&mut self.mem).unwrap());
        self.mem.left = usize::MAX;
    }

    /// The restarted VMM: the VM and its disk from the region, over the same guest memory,
    /// with a new backend; then the backends (old and new) complete all they hold.
    fn restart_and_drain(&mut self) {
        let old = core::mem::take(&mut self.g.be.taken);
        let vm = Vm::recover_with(
            &mut StateRegion::new(&mut self.mem).unwrap(),
            layout(true),
            1,
            4,
            BLK_ONLY,
            Vec::new(),
        )
        .unwrap();
        let (t, st) = vm.kept_blk().unwrap();
        let mut dev = VirtioBlk::new(config(), RAM);
        dev.restore(&mut self.g.ram, &t, &st).unwrap();
        self.g.dev = dev;
        self.g.be = FakeBackend::default();
        self.g.dev.process(&mut self.g.ram, &mut self.g.be);
        self.g.kick();
        // The dead VMM's backend answering its requests: they reach no ring.
        for (r, _) in old {
            let c = self.g.dev.complete(&mut self.g.ram, r.id, S_OK, &[]);
            assert_eq!(c, Completion::UnknownId);
        }
        while let Some((r, _)) = self.g.be.taken.pop() {
            let data = if r.op == BlkOp::Read {
                vec![r.sector as u8; r.len as usize]
            } else {
                vec![]
            };
            assert_eq!(self.g.complete(r.id, S_OK, &data), Completion::Done);
        }
        self.collect();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random block traffic committed after every step; the VMM dies at a random store of a
    /// random step's commit (or after it), is restarted, and every request completes to the
    /// guest exactly once.
    #[test]
    fn a_vmm_restart_anywhere_completes_every_blk_request_once(
        ops in proptest::collection::vec(op(), 1..40),
        at in any::<prop::sample::Index>(),
        cut in 0usize..600,
    ) {
        let mut run = Run::new();
        let crash = at.index(ops.len());
        for (i, o) in ops.iter().enumerate() {
            run.step(o);
            if i == crash {
                run.commit(cut);
                break;
            }
            run.commit(usize::MAX);
        }
        run.restart_and_drain();
        prop_assert_eq!(&run.seen, &run.made);
        prop_assert_eq!(run.g.dev.in_flight(), 0);
    }
}

/// Every store of one commit that took a write, a GET_ID and a read at once: recovered
/// from the state before and after, and from any cut between.
#[test]
fn a_notify_commit_cut_after_every_store_recovers() {
    let steps = [
        Op::Write(1),
        Op::Kick,
        Op::Write(2),
        Op::GetId,
        Op::Read(3),
        Op::Kick,
    ];
    let mut probe = Run::new();
    steps.iter().for_each(|o| probe.step(o));
    let before = probe.mem.stores;
    probe.commit(usize::MAX);
    let total = probe.mem.stores - before;
    assert!(total > 10, "{total}");
    for cut in 0..=total {
        let mut run = Run::new();
        for (i, o) in steps.iter().enumerate() {
            run.step(o);
            if i + 1 < steps.len() && matches!(o, Op::Kick) {
                run.commit(usize::MAX);
            }
        }
        run.commit(cut);
        run.restart_and_drain();
        assert_eq!(run.seen, run.made, "cut after {cut} of {total} stores");
    }
}

/// Words the encoding cannot produce are refused by the recovery, never taken.
#[test]
fn damaged_virtio_words_are_refused() {
    let mut run = Run::new();
    for o in [Op::Write(1), Op::Read(2), Op::Kick] {
        run.step(&o);
    }
    run.commit(usize::MAX);
    let recover = |mem: &mut Mem| {
        Vm::recover_with(
            &mut StateRegion::new(mem).unwrap(),
            layout(true),
            1,
            4,
            BLK_ONLY,
            Vec::new(),
        )
        .map(|_| ())
    };
    assert_eq!(recover(&mut run.mem.clone()), Ok(()));
    // Another device set: another guest.
    let other = Vm::recover_with(
        &mut StateRegion::new(&mut run.mem.clone()).unwrap(),
        layout(true),
        1,
        4,
        Devices {
            net: true,
            blk: true,
        },
        Vec::new(),
    );
    assert_eq!(other.err(), Some(StateError::ConfigMismatch));
    // A count past the table, a sequence number past 48 bits, a head past the count: each
    // with a checksum that holds, so the field checks must catch them.
    let blk = region::image_offset(chunk::BLK);
    let heads = region::image_offset(chunk::BLK_HEADS);
    for (at, value) in [
        (blk + BLK_COUNT, TABLE as u64 + 1),
        (blk + BLK_SEQ, 1 << 48),
        (heads + 1, 7),
        (blk + BLK_COUNT + 1, 1),
    ] {
        let mut m = run.mem.clone();
        region::rewrite_sealed(&mut m, at, value);
        assert!(
            matches!(recover(&mut m), Err(StateError::Invalid(_))),
            "word {at} = {value}"
        );
    }
}
