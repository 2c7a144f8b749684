//! virtio-net: transmit with back-pressure, receive into (merged) guest buffers.
extern crate std;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::bus::MmioDevice;
use crate::virtio::mmio::{CONFIG, QUEUE_NOTIFY, STATUS};
use crate::virtio::testutil::*;
use crate::virtio::{F_EVENT_IDX, F_VERSION_1, isr, status};

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

#[derive(Default)]
pub struct FakeNet {
    pub sent: Vec<Vec<u8>>,
    pub busy: bool,
    pub drop_all: bool,
    pub rx: VecDeque<Vec<u8>>,
}

impl NetBackend for FakeNet {
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(TxDest<'_>) -> bool) -> TxOutcome {
        if self.busy {
            return TxOutcome::Busy;
        }
        if self.drop_all {
            return TxOutcome::Dropped;
        }
        let mut b = vec![0; len];
        if !fill(TxDest::Bytes(&mut b)) {
            return TxOutcome::Dropped;
        }
        self.sent.push(b);
        TxOutcome::Sent
    }

    fn peek_rx(&mut self) -> Option<RxFrame<'_>> {
        self.rx.front().map(|f| RxFrame::Bytes(&f[..]))
    }

    fn pop_rx(&mut self) {
        self.rx.pop_front();
    }
}

pub struct Guest {
    pub ram: Ram,
    pub rxq: DriverQueue,
    pub txq: DriverQueue,
    pub dev: VirtioNet,
    pub be: FakeNet,
}

pub const RX_BUFS: u64 = RAM_BASE + 0x4_0000;
pub const TX_BUFS: u64 = RAM_BASE + 0x8_0000;

impl Guest {
    pub fn new(features: u64) -> Self {
        let mut g = Self {
            ram: Ram::new(),
            rxq: DriverQueue::new(0, 16, RAM_BASE + 0x1_0000),
            txq: DriverQueue::new(1, 16, RAM_BASE + 0x2_0000),
            dev: VirtioNet::new(
                NetConfig {
                    mac: MAC,
                    link_up: true,
                },
                RAM,
            ),
            be: FakeNet::default(),
        };
        let s = init(&mut g.dev, features, &[g.rxq.clone(), g.txq.clone()]);
        assert_ne!(s & status::FEATURES_OK, 0);
        g
    }

    /// Posts receive buffer `i` of `len` bytes.
    pub fn post_rx(&mut self, i: u64, len: u32) -> u16 {
        self.rxq
            .add(&mut self.ram, &[(RX_BUFS + i * 0x1000, len, true)])
    }

    /// Queues a frame for transmission: header and frame in separate descriptors.
    pub fn send(&mut self, i: u64, frame: &[u8]) -> u16 {
        let at = TX_BUFS + i * 0x1000;
        self.ram.put(at, &[0; HDR_LEN as usize]);
        self.ram.put(at + 0x20, frame);
        self.txq.add(
            &mut self.ram,
            &[(at, HDR_LEN, false), (at + 0x20, frame.len() as u32, false)],
        )
    }

    pub fn kick(&mut self, q: u32) {
        wr(&mut self.dev, QUEUE_NOTIFY, q);
        self.dev.process(&mut self.ram, &mut self.be);
    }
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn config_space_and_features() {
    let mut g = Guest::new(F_VERSION_1);
    let f = offered(&mut g.dev);
    for bit in [F_VERSION_1, F_MAC, F_STATUS, F_MRG_RXBUF, F_EVENT_IDX] {
        assert_ne!(f & bit, 0);
    }
    let mac: Vec<u8> = (0..6)
        .map(|i| g.dev.read(acc(CONFIG + i, 1)).unwrap() as u8)
        .collect();
    assert_eq!(mac, MAC);
    assert_eq!(g.dev.read(acc(CONFIG + 6, 2)), Ok(u64::from(S_LINK_UP)));
    g.dev.set_link(false);
    assert_eq!(g.dev.read(acc(CONFIG + 6, 2)), Ok(0));
    assert_eq!(g.dev.transport.interrupt_status(), isr::CONFIG_CHANGE);
}

#[test]
fn transmit_strips_the_header() {
    let mut g = Guest::new(F_VERSION_1);
    let f = frame(60, 1);
    let h = g.send(0, &f);
    g.kick(1);
    assert_eq!(g.be.sent, vec![f]);
    assert_eq!(g.txq.take_used(&g.ram), vec![(h.into(), 0)]);
    assert!(g.dev.irq_level());
    assert_eq!(g.dev.counters.tx_frames, 1);
}

#[test]
fn transmit_waits_while_the_backend_is_full() {
    let mut g = Guest::new(F_VERSION_1);
    g.be.busy = true;
    let frames: Vec<Vec<u8>> = (0..3).map(|i| frame(100 + i, i as u8)).collect();
    for (i, f) in frames.iter().enumerate() {
        g.send(i as u64, f);
    }
    g.kick(1);
    assert!(g.be.sent.is_empty());
    assert!(
        g.txq.take_used(&g.ram).is_empty(),
        "nothing taken off the ring"
    );
    g.be.busy = false;
    g.dev.process(&mut g.ram, &mut g.be);
    assert_eq!(g.be.sent, frames);
    assert_eq!(g.txq.take_used(&g.ram).len(), 3);
}

#[test]
fn transmit_without_a_whole_header_is_returned_unsent() {
    let mut g = Guest::new(F_VERSION_1);
    let h = g.txq.add(&mut g.ram, &[(TX_BUFS, HDR_LEN - 1, false)]);
    g.kick(1);
    assert!(g.be.sent.is_empty());
    assert_eq!(g.txq.take_used(&g.ram), vec![(h.into(), 0)]);
    assert_eq!(g.dev.counters.tx_malformed, 1);
    assert!(g.dev.transport.live());
}

#[test]
fn transmit_dropped_by_the_backend_is_counted() {
    let mut g = Guest::new(F_VERSION_1);
    g.be.drop_all = true;
    let h = g.send(0, &frame(64, 0));
    g.kick(1);
    assert_eq!(g.txq.take_used(&g.ram), vec![(h.into(), 0)]);
    assert_eq!(g.dev.counters.tx_dropped, 1);
}

#[test]
fn receive_into_one_buffer() {
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF);
    let h = g.post_rx(0, 2048);
    g.kick(0);
    let f = frame(1514, 3);
    g.be.rx.push_back(f.clone());
    g.dev.process(&mut g.ram, &mut g.be);
    assert!(g.be.rx.is_empty());
    assert_eq!(g.rxq.take_used(&g.ram), vec![(h.into(), 12 + 1514)]);
    let hdr = g.ram.get(RX_BUFS, 12);
    assert_eq!(hdr[..10], [0; 10]);
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 1, "num_buffers");
    assert_eq!(g.ram.get(RX_BUFS + 12, 1514), &f[..]);
    assert!(g.dev.irq_level());
}

#[test]
fn receive_merges_buffers() {
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF);
    let hs: Vec<u16> = (0..3).map(|i| g.post_rx(i, 600)).collect();
    let f = frame(1514, 9);
    assert_eq!(g.dev.receive(&mut g.ram, &f), RxOutcome::Delivered);
    assert_eq!(
        g.rxq.take_used(&g.ram),
        vec![
            (hs[0].into(), 600),
            (hs[1].into(), 600),
            (hs[2].into(), 326)
        ]
    );
    let hdr = g.ram.get(RX_BUFS, 12);
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 3);
    let mut got = g.ram.get(RX_BUFS + 12, 588).to_vec();
    got.extend_from_slice(g.ram.get(RX_BUFS + 0x1000, 600));
    got.extend_from_slice(g.ram.get(RX_BUFS + 0x2000, 326));
    assert_eq!(got, f);
}

#[test]
fn receive_waits_for_buffers_and_the_backend_keeps_the_frame() {
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF);
    g.post_rx(0, 600);
    let f = frame(1000, 2);
    g.be.rx.push_back(f.clone());
    g.dev.process(&mut g.ram, &mut g.be);
    assert_eq!(g.be.rx.len(), 1, "kept");
    assert!(
        g.rxq.take_used(&g.ram).is_empty(),
        "the one buffer is not used"
    );
    assert_eq!(g.dev.counters.rx_no_buffers, 1);
    g.post_rx(1, 600);
    g.kick(0);
    assert!(g.be.rx.is_empty());
    assert_eq!(g.rxq.take_used(&g.ram).len(), 2);
}

#[test]
fn without_mergeable_buffers_a_frame_needs_one_large_buffer() {
    let mut g = Guest::new(F_VERSION_1);
    g.post_rx(0, 600);
    g.post_rx(1, 2048);
    assert_eq!(
        g.dev.receive(&mut g.ram, &frame(1000, 0)),
        RxOutcome::Dropped
    );
    assert_eq!(
        g.dev.receive(&mut g.ram, &frame(100, 0)),
        RxOutcome::Delivered
    );
    let hdr = g.ram.get(RX_BUFS, 12);
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 1);
    assert_eq!(g.dev.counters.rx_dropped, 1);
}

#[test]
fn receive_drops_oversized_and_empty_frames() {
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF);
    for i in 0..16 {
        g.post_rx(i, 64);
    }
    // 32 buffers at most per frame; 16 of 64 bytes cannot hold 2000 bytes either.
    assert_eq!(
        g.dev.receive(&mut g.ram, &frame(2000, 0)),
        RxOutcome::NoBuffers
    );
    assert_eq!(g.dev.receive(&mut g.ram, &[]), RxOutcome::Dropped);
    assert_eq!(
        g.dev.receive(&mut g.ram, &vec![0; MAX_FRAME + 1]),
        RxOutcome::Dropped
    );
    assert!(g.rxq.take_used(&g.ram).is_empty());
}

#[test]
fn a_receive_buffer_smaller_than_the_header_needs_reset() {
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF);
    g.post_rx(0, 8);
    assert_eq!(g.dev.receive(&mut g.ram, &frame(60, 0)), RxOutcome::Dropped);
    assert_ne!(g.dev.transport.status() & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn frames_are_dropped_while_the_driver_is_not_running() {
    let mut g = Guest::new(F_VERSION_1);
    wr(&mut g.dev, STATUS, 0);
    g.be.rx.push_back(frame(60, 0));
    g.dev.process(&mut g.ram, &mut g.be);
    assert!(g.be.rx.is_empty());
    assert_eq!(g.dev.counters.rx_not_ready, 1);
}

#[test]
fn event_idx_batches_interrupts() {
    let mut g = Guest::new(F_VERSION_1 | F_EVENT_IDX);
    // Interrupt only after the second frame is sent (used_event = 1).
    g.txq.set_used_event(&mut g.ram, 1);
    g.send(0, &frame(60, 0));
    g.kick(1);
    assert!(!g.dev.irq_level());
    g.send(1, &frame(60, 1));
    g.kick(1);
    assert!(g.dev.irq_level());
    // And the device asked to be notified at the next addition.
    let avail_event = g.txq.used + 4 + 8 * 16;
    assert_eq!(g.ram.get16(avail_event), 2);
}

/// The stream model: frames both ways with random sizes, buffer sizes, back-pressure and
/// interleavings. Nothing accepted is lost, duplicated, reordered or changed.
mod stream {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum SOp {
        /// The guest posts a receive buffer of this size.
        Post(u32),
        /// A frame of this size arrives from the network.
        Arrive(usize),
        /// The guest sends a frame of this size.
        Send(usize),
        Busy(bool),
        /// The guest handles its used rings (and the VMM runs `process`).
        Reap,
    }

    fn sop(merge: bool) -> impl Strategy<Value = SOp> {
        let post = if merge { 64u32..2048 } else { 1526u32..2048 };
        prop_oneof![
            3 => post.prop_map(SOp::Post),
            3 => (1usize..=1514).prop_map(SOp::Arrive),
            3 => (1usize..=1514).prop_map(SOp::Send),
            1 => any::<bool>().prop_map(SOp::Busy),
            3 => Just(SOp::Reap),
        ]
    }

    struct S {
        g: Guest,
        merge: bool,
        /// Receive buffers posted and not used yet, by descriptor index.
        rx_posted: std::collections::VecDeque<u16>,
        /// Sizes of the buffers behind each descriptor index.
        rx_len: [u32; 16],
        /// The frame being reassembled, and how many buffers it still needs.
        partial: Option<(Vec<u8>, u16)>,
        received: Vec<Vec<u8>>,
        arrived: Vec<Vec<u8>>,
        sent: Vec<Vec<u8>>,
        tx_out: usize,
        seed: u8,
    }

    impl S {
        fn frame(&mut self, n: usize) -> Vec<u8> {
            self.seed = self.seed.wrapping_add(1);
            frame(n, self.seed)
        }

        fn post(&mut self, len: u32) {
            if self.rx_posted.len() == 16 {
                return;
            }
            let i = self.g.rxq.avail_idx % 16;
            let h = self.g.rxq.add(
                &mut self.g.ram,
                &[(RX_BUFS + u64::from(i) * 0x1000, len, true)],
            );
            assert_eq!(h, i);
            self.rx_len[usize::from(i)] = len;
            self.rx_posted.push_back(i);
        }

        fn reap(&mut self) {
            self.g.dev.process(&mut self.g.ram, &mut self.g.be);
            for (id, len) in self.g.rxq.take_used(&self.g.ram) {
                let i = self.rx_posted.pop_front().expect("a posted buffer");
                assert_eq!(id, u32::from(i), "receive buffers are used in order");
                assert!(len <= self.rx_len[usize::from(i)]);
                let at = RX_BUFS + u64::from(i) * 0x1000;
                let first = self.partial.is_none();
                let (mut data, left) = match self.partial.take() {
                    Some(p) => (p.0, p.1),
                    None => {
                        let hdr = self.g.ram.get(at, 12);
                        let n = u16::from_le_bytes([hdr[10], hdr[11]]);
                        assert!(n >= 1 && (self.merge || n == 1));
                        (Vec::new(), n)
                    }
                };
                // The header opens the first buffer of a frame.
                let skip: u32 = if first { 12 } else { 0 };
                data.extend_from_slice(self.g.ram.get(at + u64::from(skip), (len - skip) as usize));
                if left == 1 {
                    self.received.push(data);
                } else {
                    self.partial = Some((data, left - 1));
                }
            }
            for (id, len) in self.g.txq.take_used(&self.g.ram) {
                assert_eq!(len, 0);
                let _ = id;
                self.tx_out -= 1;
            }
        }

        fn step(&mut self, op: &SOp) {
            match *op {
                SOp::Post(len) => {
                    self.post(len);
                    wr(&mut self.g.dev, QUEUE_NOTIFY, 0);
                    self.g.dev.process(&mut self.g.ram, &mut self.g.be);
                }
                SOp::Arrive(n) => {
                    let f = self.frame(n);
                    self.arrived.push(f.clone());
                    self.g.be.rx.push_back(f);
                    self.g.dev.process(&mut self.g.ram, &mut self.g.be);
                }
                SOp::Send(n) => {
                    if self.tx_out < 8 {
                        let f = self.frame(n);
                        let slot = u64::from(self.g.txq.avail_idx % 8);
                        self.g.send(slot, &f);
                        self.sent.push(f);
                        self.tx_out += 1;
                        self.g.kick(1);
                    }
                }
                SOp::Busy(b) => {
                    self.g.be.busy = b;
                    self.g.dev.process(&mut self.g.ram, &mut self.g.be);
                }
                SOp::Reap => self.reap(),
            }
        }
    }

    fn run(merge: bool, ops: &[SOp]) {
        let f = F_VERSION_1 | F_EVENT_IDX | if merge { F_MRG_RXBUF } else { 0 };
        let mut s = S {
            g: Guest::new(f),
            merge,
            rx_posted: Default::default(),
            rx_len: [0; 16],
            partial: None,
            received: Vec::new(),
            arrived: Vec::new(),
            sent: Vec::new(),
            tx_out: 0,
            seed: 0,
        };
        for op in ops {
            s.step(op);
        }
        // Drain: the network takes everything, the guest posts buffers until every frame is in.
        s.g.be.busy = false;
        for _ in 0..10_000 {
            s.reap();
            if s.g.be.rx.is_empty() && s.tx_out == 0 && s.partial.is_none() {
                break;
            }
            s.post(2048);
        }
        assert_eq!(s.received, s.arrived, "frames to the guest");
        assert_eq!(s.g.be.sent, s.sent, "frames from the guest");
        assert_eq!(s.g.dev.counters.rx_dropped, 0);
        assert!(s.g.dev.transport.live());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn frames_both_ways_mergeable(ops in proptest::collection::vec(sop(true), 1..120)) {
            run(true, &ops);
        }

        #[test]
        fn frames_both_ways_one_buffer_each(ops in proptest::collection::vec(sop(false), 1..120)) {
            run(false, &ops);
        }
    }
}

/// A GICv2 vGIC with the first virtio transport's SPI configured as Linux's GIC driver
/// does for QEMU virt's edge-rising virtio interrupts: group, edge, enable, distributor on.
fn edge_vgic() -> (crate::vgic::Vgic, u32) {
    use crate::mmio::size_mask;
    use crate::vgic::{GicVersion, REGION_GICD, Vgic, VgicConfig};
    let intid = 32 + crate::guest::virtio_transport(0).spi;
    let mut gic = Vgic::new(VgicConfig {
        version: GicVersion::V2,
        nr_vcpus: 1,
        nr_spis: 64,
        nr_lrs: 4,
    })
    .unwrap();
    let mut gicd = |off: u64, v: u64| {
        let a = crate::bus::Access {
            vcpu: 0,
            region: REGION_GICD,
            offset: off,
            size: 4,
        };
        gic.write(a, v & size_mask(4)).unwrap();
    };
    let bit = 1u64 << (intid % 32);
    gicd(0x080 + 4 * u64::from(intid / 32), bit);
    gicd(0xC00 + 4 * u64::from(intid / 16), 2 << (2 * (intid % 16)));
    gicd(0x100 + 4 * u64::from(intid / 32), bit);
    gicd(0x000, 3);
    (gic, intid)
}

/// Clears the SPI's pending bit (ICPENDR), as its delivery to the guest would.
fn clear_pending(gic: &mut crate::vgic::Vgic, intid: u32) {
    let a = crate::bus::Access {
        vcpu: 0,
        region: crate::vgic::REGION_GICD,
        offset: 0x280 + 4 * u64::from(intid / 32),
        size: 4,
    };
    gic.write(a, 1u64 << (intid % 32)).unwrap();
}

/// The interrupt glue with the real vGIC: the device tree says edge-rising, so the line
/// the VMM passes is latched on each rising edge; the guest's ACK lowers it, and the next
/// used buffer raises a new edge.
#[test]
fn interrupt_line_through_the_vgic() {
    use crate::virtio::mmio::{INTERRUPT_ACK, INTERRUPT_STATUS};
    let (mut gic, intid) = edge_vgic();

    let mut g = Guest::new(F_VERSION_1);
    g.send(0, &frame(60, 0));
    g.kick(1);
    gic.set_level(0, intid, g.dev.irq_level()).unwrap();
    assert_eq!(gic.next_pending(0).map(|p| p.0), Some(intid));
    clear_pending(&mut gic, intid); // delivered

    // Another frame before the guest ACKs: the line is already high, no new edge; the
    // guest's handler will find both used buffers.
    g.send(1, &frame(60, 1));
    g.kick(1);
    gic.set_level(0, intid, g.dev.irq_level()).unwrap();
    assert_eq!(gic.next_pending(0), None);

    // The handler: read InterruptStatus, ACK it (the line falls), then look at the rings.
    let isr = rd(&mut g.dev, INTERRUPT_STATUS);
    wr(&mut g.dev, INTERRUPT_ACK, isr);
    gic.set_level(0, intid, g.dev.irq_level()).unwrap();
    assert_eq!(g.txq.take_used(&g.ram).len(), 2);
    g.send(2, &frame(60, 2));
    g.kick(1);
    gic.set_level(0, intid, g.dev.irq_level()).unwrap();
    assert_eq!(gic.next_pending(0).map(|p| p.0), Some(intid));
}

/// `virtio::service`, as the VMM runs it after each register access: the guest's
/// InterruptACK and a frame the backend delivers in the same exit (before the VMM passes
/// the line on) make a second edge, so the guest is interrupted for that frame. With the
/// line passed on only after the backend's poll it would have stayed high throughout, and
/// with EVENT_IDX the guest would never look at its receive queue again (issue #15's
/// stalled requests).
#[test]
fn an_ack_and_a_completion_in_one_exit_make_a_second_edge() {
    use crate::virtio::mmio::{INTERRUPT_ACK, INTERRUPT_STATUS};
    let (mut gic, intid) = edge_vgic();
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF | F_EVENT_IDX);
    for i in 0..4 {
        g.post_rx(i, 2048);
    }
    g.kick(0);
    // First frame: used buffer, line up, delivered.
    g.be.rx.push_back(frame(200, 1));
    let Guest { ram, dev, be, .. } = &mut g;
    super::super::service(
        dev,
        |l| gic.set_level(0, intid, l).unwrap(),
        |d| d.process(ram, be),
    );
    assert_eq!(gic.next_pending(0).map(|p| p.0), Some(intid));
    clear_pending(&mut gic, intid);
    assert_eq!(g.rxq.take_used(&g.ram).len(), 1);
    // Linux re-enables callbacks: interrupt me on the next used buffer.
    g.rxq.set_used_event(&mut g.ram, 1);

    // The guest's handler acknowledges; in that exit the backend has the next frame.
    let isr = rd(&mut g.dev, INTERRUPT_STATUS);
    wr(&mut g.dev, INTERRUPT_ACK, isr);
    g.be.rx.push_back(frame(300, 2));
    let Guest { ram, dev, be, .. } = &mut g;
    super::super::service(
        dev,
        |l| gic.set_level(0, intid, l).unwrap(),
        |d| d.process(ram, be),
    );
    assert!(g.dev.irq_level());
    assert_eq!(
        gic.next_pending(0).map(|p| p.0),
        Some(intid),
        "no interrupt for the frame completed in the ACK's exit"
    );
    assert_eq!(g.rxq.take_used(&g.ram).len(), 1);
}
