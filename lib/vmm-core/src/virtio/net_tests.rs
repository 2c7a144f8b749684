//! virtio-net: transmit with back-pressure, receive into (merged) guest buffers.
extern crate std;

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::bus::MmioDevice;
use crate::virtio::mmio::{CONFIG, QUEUE_NOTIFY, STATUS};
use crate::virtio::net_offload as offload;
use crate::virtio::testutil::*;
use crate::virtio::{F_EVENT_IDX, F_VERSION_1, isr, status};
use axolotl_net::check;

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

#[derive(Default)]
pub struct FakeNet {
    pub sent: Vec<Vec<u8>>,
    pub busy: bool,
    pub drop_all: bool,
    pub rx: VecDeque<Vec<u8>>,
    /// Frames it takes before it is busy (`None`: no limit).
    pub room: Option<usize>,
    /// Frames go into a data region (as a link's transmit buffer), not a byte buffer.
    pub via_region: bool,
}

impl NetBackend for FakeNet {
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(TxDest<'_>) -> bool) -> TxOutcome {
        if self.busy || self.room == Some(0) {
            return TxOutcome::Busy;
        }
        if self.drop_all {
            return TxOutcome::Dropped;
        }
        let mut b = vec![0; len];
        if self.via_region && len > axolotl_net::MAX_FRAME {
            // A link refuses it before anything is copied (`NetRing`): its check's trailer
            // lies past the largest frame.
            return TxOutcome::Dropped;
        }
        if self.via_region {
            // A link buffer 8-aligned in its region, stale bytes around it.
            let mut words =
                vec![0x5a5a_5a5a_5a5a_5a5au64; (64 + len.max(check::BUF_NEEDED)) / 8 + 1];
            let ptr = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: `words` outlives the region, which dies in this block.
            let region = unsafe {
                axolotl_ring::DataRegion::alias(&axolotl_ring::SharedRegion::new(
                    ptr,
                    words.len() * 8,
                ))
            };
            if !fill(TxDest::Region(&region, 64)) || !region.copy_out(64, &mut b) {
                return TxOutcome::Dropped;
            }
            // The device wrote the frame's check, and it is the frame's.
            assert_eq!(
                check::read(&region, 64),
                check::region_check(&region, 64, len),
                "the check of a {len}-byte frame"
            );
        } else if !fill(TxDest::Bytes(&mut b)) {
            return TxOutcome::Dropped;
        }
        self.sent.push(b);
        if let Some(r) = self.room.as_mut() {
            *r -= 1;
        }
        TxOutcome::Sent
    }

    fn peek_rx(&mut self) -> Option<RxFrame<'_>> {
        self.rx.front().map(|f| RxFrame::Bytes(&f[..]))
    }

    fn peek_rx_at(&self, k: usize) -> Option<RxFrame<'_>> {
        self.rx.get(k).map(|f| RxFrame::Bytes(&f[..]))
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

    /// Queues a packet with virtio-net header `hdr`, its bytes cut at `cuts` into
    /// descriptors that lie at odd addresses (as page fragments may), none empty.
    pub fn send_cut(
        &mut self,
        i: u64,
        hdr: &[u8; HDR_LEN as usize],
        packet: &[u8],
        cuts: &[usize],
    ) -> u16 {
        let base = TX_BUFS + i * 0x10000;
        self.ram.put(base, hdr);
        let mut bufs = vec![(base, HDR_LEN, false)];
        let mut at = base + 0x101;
        let mut from = 0;
        for &to in cuts.iter().chain([&packet.len()]) {
            if to == from {
                // No empty descriptor: the device answers one with NEEDS_RESET.
                continue;
            }
            self.ram.put(at, &packet[from..to]);
            bufs.push((at, (to - from) as u32, false));
            at += (to - from) as u64 + 0x23;
            from = to;
        }
        self.txq.add(&mut self.ram, &bufs)
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
    for bit in [
        F_VERSION_1,
        F_MAC,
        F_STATUS,
        F_MRG_RXBUF,
        F_EVENT_IDX,
        offload::F_CSUM,
        offload::F_HOST_TSO4,
    ] {
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

/// A virtio-net header asking for segmentation of TCP/IPv4 into `mss`-byte payloads.
fn tso_hdr(mss: u16) -> [u8; HDR_LEN as usize] {
    let mut h = [0u8; HDR_LEN as usize];
    h[0] = offload::HDR_F_NEEDS_CSUM;
    h[1] = offload::GSO_TCPV4;
    h[2..4].copy_from_slice(&66u16.to_le_bytes());
    h[4..6].copy_from_slice(&mss.to_le_bytes());
    h[6..8].copy_from_slice(&34u16.to_le_bytes());
    h[8..10].copy_from_slice(&16u16.to_le_bytes());
    h
}

const OFFLOADS: u64 = F_VERSION_1 | offload::F_CSUM | offload::F_HOST_TSO4;

#[test]
fn a_tso_packet_goes_out_as_valid_segments_into_bytes_or_a_region() {
    use crate::virtio::net_offload::tests::{tcp_packet, verify_segment};
    for via_region in [false, true] {
        let mut g = Guest::new(OFFLOADS);
        g.be.via_region = via_region;
        let payload = frame(10_000, 9);
        let p = tcp_packet(&payload, 0x19, false, 0, 12, 0xffff_f000, 7);
        // Headers and a little payload in one piece, the rest in three (odd addresses).
        let h = g.send_cut(0, &tso_hdr(1448), &p, &[100, 3001, 7000]);
        g.kick(1);
        assert_eq!(g.be.sent.len(), 7, "region {via_region}");
        let mut joined = Vec::new();
        for s in &g.be.sent {
            let (_, _, hl) = verify_segment(s);
            assert_eq!(hl, 66);
            joined.extend_from_slice(&s[hl..]);
        }
        assert_eq!(joined, payload, "region {via_region}");
        assert_eq!(g.txq.take_used(&g.ram), vec![(h.into(), 0)]);
        assert_eq!(g.dev.counters.tx_segments, 7);
        assert_eq!(g.dev.counters.tx_frames, 7);
    }
}

#[test]
fn a_tso_packet_the_backend_takes_in_parts_is_sent_once_and_completed_once() {
    use crate::virtio::net_offload::tests::tcp_packet;
    let mut g = Guest::new(OFFLOADS);
    let payload = frame(20_000, 3);
    let p = tcp_packet(&payload, 0x18, false, 0, 12, 1, 1);
    let h = g.send_cut(0, &tso_hdr(1000), &p, &[66]);
    let next = frame(80, 4);
    g.send(5, &next);
    g.be.room = Some(6);
    g.kick(1);
    assert_eq!(g.be.sent.len(), 6);
    assert!(
        g.txq.take_used(&g.ram).is_empty(),
        "not done with the packet"
    );
    for round in 0..2 {
        g.be.room = Some(5);
        g.dev.process(&mut g.ram, &mut g.be);
        assert_eq!(g.be.sent.len(), 11 + 5 * round);
    }
    assert!(g.txq.take_used(&g.ram).is_empty());
    g.be.room = None;
    g.dev.process(&mut g.ram, &mut g.be);
    // 20 segments, each once, in order; then the next frame.
    assert_eq!(g.be.sent.len(), 21);
    let mut joined = Vec::new();
    for s in &g.be.sent[..20] {
        joined.extend_from_slice(&s[66..]);
    }
    assert_eq!(joined, payload);
    assert_eq!(g.be.sent[20], next);
    let used = g.txq.take_used(&g.ram);
    assert_eq!(used.len(), 2);
    assert_eq!(used[0], (h.into(), 0));
}

#[test]
fn a_packet_that_asks_for_its_checksum_gets_it() {
    use crate::virtio::net_offload::tests::reference_checksum;
    for via_region in [false, true] {
        let mut g = Guest::new(OFFLOADS);
        g.be.via_region = via_region;
        // UDP/IPv4 with the pseudo-header's sum in the checksum field, as Linux leaves it.
        let data = frame(333, 5);
        let mut p = vec![0u8; 14];
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        let udp_len = (8 + data.len()) as u16;
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(20 + udp_len).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2]);
        p.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35]);
        p.extend_from_slice(&udp_len.to_be_bytes());
        let mut pseudo = vec![10, 0, 2, 15, 10, 0, 2, 2, 0, 17];
        pseudo.extend_from_slice(&udp_len.to_be_bytes());
        let partial = !reference_checksum(&pseudo);
        p.extend_from_slice(&partial.to_be_bytes());
        p.extend_from_slice(&data);
        let mut hdr = [0u8; HDR_LEN as usize];
        hdr[0] = offload::HDR_F_NEEDS_CSUM;
        hdr[6..8].copy_from_slice(&34u16.to_le_bytes());
        hdr[8..10].copy_from_slice(&6u16.to_le_bytes());
        g.send_cut(0, &hdr, &p, &[40, 201]);
        g.kick(1);
        assert_eq!(g.be.sent.len(), 1);
        let s = &g.be.sent[0];
        let mut check = pseudo.clone();
        check.extend_from_slice(&s[34..]);
        assert_eq!(
            reference_checksum(&check),
            0,
            "UDP checksum, region {via_region}"
        );
        assert_eq!(s[..40], p[..40]);
        assert_eq!(s[42..], p[42..]);
    }
}

#[test]
fn offloads_the_driver_did_not_negotiate_or_cannot_be_done_are_dropped_and_counted() {
    use crate::virtio::net_offload::tests::tcp_packet;
    let p = tcp_packet(&frame(3000, 1), 0x10, false, 0, 0, 0, 0);
    let mut out_of_range = tso_hdr(0);
    out_of_range[1] = 0;
    out_of_range[6..8].copy_from_slice(&3050u16.to_le_bytes());
    for (what, features, hdr) in [
        (
            "TSO not negotiated",
            F_VERSION_1 | offload::F_CSUM,
            tso_hdr(1448),
        ),
        ("checksum not negotiated", F_VERSION_1, out_of_range),
        ("gso_size 0", OFFLOADS, tso_hdr(0)),
        ("segments larger than a frame", OFFLOADS, tso_hdr(1461)),
        ("checksum offset past the end", OFFLOADS, out_of_range),
    ] {
        let mut g = Guest::new(features);
        let h = g.send_cut(0, &hdr, &p, &[]);
        let ok = frame(70, 2);
        g.send(3, &ok);
        g.kick(1);
        assert_eq!(g.be.sent, vec![ok], "{what}");
        assert_eq!(g.dev.counters.tx_malformed, 1, "{what}");
        assert_eq!(g.txq.take_used(&g.ram)[0], (h.into(), 0), "{what}");
        assert!(g.dev.transport.live(), "{what}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever a guest puts in the header and the packet (a real TCP packet with bytes
    /// damaged, or noise), the device neither panics nor stops: the chain comes back once,
    /// and what goes out is either nothing (counted malformed) or segments no longer than
    /// a frame.
    #[test]
    fn hostile_offload_headers_and_packets(
        flags in proptest::prelude::any::<u8>(),
        gso_type in proptest::prop_oneof![proptest::strategy::Just(1u8), proptest::prelude::any::<u8>()],
        hdr_rest in proptest::prelude::any::<[u8; 8]>(),
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000),
        damage in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 0..4),
        noise in proptest::prelude::any::<bool>(),
        cut in 0usize..200,
        via_region in proptest::prelude::any::<bool>(),
    ) {
        use crate::virtio::net_offload::tests::tcp_packet;
        let mut p = if noise { payload.clone() } else { tcp_packet(&payload, 0x18, false, 0, 12, 5, 5) };
        for (at, v) in damage {
            if let Some(b) = p.get_mut(at) {
                *b = v;
            }
        }
        let mut hdr = [0u8; HDR_LEN as usize];
        hdr[0] = flags;
        hdr[1] = gso_type;
        hdr[2..10].copy_from_slice(&hdr_rest);
        let mut g = Guest::new(OFFLOADS);
        g.be.via_region = via_region;
        let cuts: Vec<usize> = if cut > 0 && cut < p.len() { vec![cut] } else { vec![] };
        let h = g.send_cut(0, &hdr, &p, &cuts);
        g.kick(1);
        proptest::prop_assert!(g.dev.transport.live());
        proptest::prop_assert_eq!(g.txq.take_used(&g.ram), vec![(u32::from(h), 0)]);
        for s in &g.be.sent {
            proptest::prop_assert!(s.len() <= p.len().max(offload::MAX_SEGMENT_FRAME));
        }
    }
}

/// The sum of a frame's bytes from any offset, read from a data region, is the bytes' own:
/// an even start from the region's words less the bytes before it (given or read back), an
/// odd or distant start a piece at a time.
#[test]
fn region_sums_match_byte_sums_from_any_start() {
    let bytes = frame(1514, 77);
    let mut words = vec![0x5a5a_5a5a_5a5a_5a5au64; 2048 / 8];
    let ptr = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `words` outlives the region.
    let region =
        unsafe { DataRegion::alias(&axolotl_ring::SharedRegion::new(ptr, words.len() * 8)) };
    assert!(region.copy_in(64, &bytes));
    for from in [0, 1, 2, 33, 34, 35, 127, 128, 129, 130, 300, 1513, 1514] {
        for to in [from, from + 1, 1000, 1514] {
            if to < from || to > 1514 {
                continue;
            }
            // Ones' complement has two zeros.
            let zero = |v: u16| if v == 0xffff { 0 } else { v };
            let want = zero(offload::fold(offload::sum_be(&bytes[from..to], 0)));
            let given = (from % 2 == 0 && from <= 128).then(|| &bytes[..from]);
            for prefix in [None, given] {
                let got =
                    region_sum_be(&region, 64, from, to, prefix).map(|s| zero(offload::fold(s)));
                assert_eq!(
                    got,
                    Some(want),
                    "from {from} to {to} prefix {}",
                    prefix.is_some()
                );
            }
        }
    }
    assert_eq!(region_sum_be(&region, 64, 10, 9, None), None);
}

#[test]
fn received_frames_with_a_checksum_the_device_verified_are_marked_data_valid() {
    use crate::virtio::net_offload::tests::{tcp_packet, with_tcp_checksum};
    let good = with_tcp_checksum(&tcp_packet(&frame(1000, 1), 0x18, false, 0, 12, 5, 5));
    let mut bad = good.clone();
    bad[500] ^= 1;
    for (features, f, want) in [
        (
            F_VERSION_1 | offload::F_GUEST_CSUM,
            &good,
            offload::HDR_F_DATA_VALID,
        ),
        (F_VERSION_1 | offload::F_GUEST_CSUM, &bad, 0),
        (F_VERSION_1, &good, 0),
    ] {
        let mut g = Guest::new(features);
        g.post_rx(0, 2048);
        g.be.rx.push_back(f.clone());
        g.dev.process(&mut g.ram, &mut g.be);
        assert_eq!(g.rxq.take_used(&g.ram).len(), 1);
        assert_eq!(g.ram.get(RX_BUFS, 1)[0], want, "features {features:#x}");
        assert_eq!(g.ram.get(RX_BUFS + u64::from(HDR_LEN), f.len()), &f[..]);
    }
}

/// A device reset while a packet was half sent: the next packet, whatever its head, goes
/// out whole; the first one's progress is not applied to it.
#[test]
fn a_reset_forgets_the_half_sent_packet() {
    use crate::virtio::net_offload::tests::tcp_packet;
    let mut g = Guest::new(OFFLOADS);
    let first = tcp_packet(&frame(20_000, 1), 0x18, false, 0, 12, 1, 1);
    let h = g.send_cut(0, &tso_hdr(1000), &first, &[]);
    g.be.room = Some(3);
    g.kick(1);
    assert_eq!(g.be.sent.len(), 3);
    // The driver starts over: reset, the same rings set up afresh.
    g.rxq = DriverQueue::new(0, 16, RAM_BASE + 0x1_0000);
    g.txq = DriverQueue::new(1, 16, RAM_BASE + 0x2_0000);
    init(&mut g.dev, OFFLOADS, &[g.rxq.clone(), g.txq.clone()]);
    let payload = frame(20_000, 2);
    let second = tcp_packet(&payload, 0x18, false, 0, 12, 1, 1);
    assert_eq!(
        g.send_cut(0, &tso_hdr(1000), &second, &[]),
        h,
        "the same head again"
    );
    g.be.room = None;
    g.kick(1);
    let mut joined = Vec::new();
    for s in &g.be.sent[3..] {
        joined.extend_from_slice(&s[66..]);
    }
    assert!(
        joined == payload,
        "all 20 segments of the second packet: {} of {} bytes",
        joined.len(),
        payload.len()
    );
}
