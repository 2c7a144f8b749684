//! Saving, encoding and restoring a transport; requests in flight re-issued once.
extern crate std;

use proptest::prelude::*;
use std::vec::Vec;

use super::*;
use crate::bus::{Access, DeviceError, MmioDevice};
use crate::virtio::mmio::Transport;
use crate::virtio::testutil::{DriverQueue, RAM_BASE, RAM_SIZE, Ram, init};
use crate::virtio::{F_EVENT_IDX, F_VERSION_1, status};

const RAM: (u64, u64) = (RAM_BASE, RAM_SIZE as u64);

/// A bare transport on the bus, for the driver of testutil.
struct Dev(Transport<2>);

impl MmioDevice for Dev {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError> {
        Ok(self.0.read(a, &[]))
    }
    fn write(&mut self, a: Access, v: u64) -> Result<(), DeviceError> {
        self.0.write(a, v);
        Ok(())
    }
}

fn fresh() -> Transport<2> {
    Transport::new(1, F_EVENT_IDX, 8, RAM)
}

/// A driven device: both queues ready, `avail` chains made available on queue 0, `taken`
/// of them taken by the device, `done` of those completed.
fn driven(avail: u16, taken: u16, done: u16) -> (Dev, Ram, DriverQueue) {
    let mut dev = Dev(fresh());
    let mut ram = Ram::new();
    let q0 = DriverQueue::new(0, 8, RAM_BASE);
    let q1 = DriverQueue::new(1, 8, RAM_BASE + 0x1_0000);
    let s = init(&mut dev, F_VERSION_1 | F_EVENT_IDX, &[q0.clone(), q1]);
    assert_ne!(s & status::FEATURES_OK, 0);
    let mut q0 = q0;
    for i in 0..avail {
        q0.add(
            &mut ram,
            &[(RAM_BASE + 0x8_0000 + 0x100 * u64::from(i), 64, false)],
        );
    }
    let mut heads = Vec::new();
    for _ in 0..taken {
        heads.push(dev.0.queues[0].pop(&mut ram).unwrap().unwrap().head);
    }
    for h in heads.iter().take(done.into()) {
        dev.0.queues[0].push_used(&mut ram, *h, 0).unwrap();
    }
    (dev, ram, q0)
}

fn words(st: &TransportState<2>) -> Vec<u64> {
    let mut w = std::vec![0u64; TransportState::<2>::WORDS];
    st.encode(&mut w);
    w
}

#[test]
fn a_saved_transport_comes_back_the_same() {
    let (dev, _, _) = driven(5, 3, 1);
    let st = dev.0.save();
    let back = TransportState::<2>::decode(&words(&st)).unwrap();
    assert_eq!(back, st);
    let mut t = fresh();
    t.restore(&back).unwrap();
    let again = t.save();
    // Only the epoch moves on, and the ready queues count as notified.
    assert_eq!(again.epoch, st.epoch.wrapping_add(1));
    assert_eq!(again.notified, 0b11);
    assert_eq!(
        TransportState {
            epoch: st.epoch,
            notified: st.notified,
            ..again
        },
        st
    );
}

/// The chains taken and not completed when the VMM died are taken again, in order, each
/// once; the guest sees every chain completed exactly once.
#[test]
fn requests_in_flight_are_reissued_once() {
    let (dev, mut ram, mut q0) = driven(5, 3, 1);
    let mut t = fresh();
    t.restore(&dev.0.save()).unwrap();
    assert_eq!(t.reissue_in_flight(&ram), 2);
    let mut heads = Vec::new();
    while let Some(c) = t.queues[0].pop(&mut ram).unwrap() {
        heads.push(c.head);
    }
    // Heads 1 and 2 (in flight) again, then 3 and 4 (never taken).
    assert_eq!(heads, [1, 2, 3, 4]);
    for h in heads {
        t.queues[0].push_used(&mut ram, h, 0).unwrap();
    }
    let used: Vec<u32> = q0.take_used(&ram).into_iter().map(|(id, _)| id).collect();
    assert_eq!(used, [0, 1, 2, 3, 4]);
}

#[test]
fn impossible_states_are_refused() {
    let (dev, _, _) = driven(5, 3, 1);
    let st = dev.0.save();
    let refused = |f: &dyn Fn(&mut TransportState<2>)| {
        let mut s = st;
        f(&mut s);
        let mut t = fresh();
        let before = t.save();
        let r = t.restore(&s);
        if r.is_err() {
            assert_eq!(t.save(), before, "a refused restore changed nothing");
        }
        r
    };
    assert_eq!(
        refused(&|s| s.status &= !status::FEATURES_OK),
        Err(VirtioStateError::Transport)
    );
    assert_eq!(
        refused(&|s| s.status |= 0x10),
        Err(VirtioStateError::Transport)
    );
    assert_eq!(
        refused(&|s| s.driver_features |= 1 << 40),
        Err(VirtioStateError::Transport)
    );
    assert_eq!(refused(&|s| s.isr = 4), Err(VirtioStateError::Transport));
    assert_eq!(
        refused(&|s| s.notified = 4),
        Err(VirtioStateError::Transport)
    );
    // More taken than the ring holds, a ring outside RAM or misaligned, a size not the
    // one enabled, EVENT_IDX not as negotiated.
    assert_eq!(
        refused(&|s| s.queues[0].next_avail = s.queues[0].next_used.wrapping_add(9)),
        Err(VirtioStateError::Queue(0))
    );
    assert_eq!(
        refused(&|s| s.queues[1].desc = RAM_BASE + RAM_SIZE as u64),
        Err(VirtioStateError::Queue(1))
    );
    assert_eq!(
        refused(&|s| s.queues[1].avail |= 1),
        Err(VirtioStateError::Queue(1))
    );
    assert_eq!(
        refused(&|s| s.queues[0].size = 4),
        Err(VirtioStateError::Queue(0))
    );
    assert_eq!(
        refused(&|s| s.queues[0].event_idx = false),
        Err(VirtioStateError::Queue(0))
    );
    assert_eq!(
        refused(&|s| s.queues[0].size = 9),
        Err(VirtioStateError::Queue(0))
    );
    assert_eq!(refused(&|_| {}), Ok(()));
}

proptest! {
    /// Any word of the encoding damaged: refused, or it decodes and restores to a state
    /// the transport accepts as its own (saved again, the same words but epoch/notified).
    #[test]
    fn damaged_words_are_refused_or_consistent(
        avail in 0u16..8, taken in 0u16..8, done in 0u16..8,
        at in 0usize..TransportState::<2>::WORDS, bit in 0u32..64,
    ) {
        let taken = taken.min(avail);
        let (dev, _, _) = driven(avail, taken, done.min(taken));
        let mut w = words(&dev.0.save());
        w[at] ^= 1 << bit;
        if let Ok(st) = TransportState::<2>::decode(&w) {
            let mut t = fresh();
            if t.restore(&st).is_ok() {
                let q = &t.queues[0];
                prop_assert!(!q.ready || q.save().next_avail.wrapping_sub(q.save().next_used) <= q.size());
                let again = t.save();
                prop_assert_eq!(TransportState { epoch: st.epoch, notified: st.notified, ..again }, TransportState { notified: st.notified, ..st });
            }
        }
    }
}
