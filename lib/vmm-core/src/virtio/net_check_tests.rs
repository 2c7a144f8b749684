//! virtio-net's receive path verifying frames against the check they carry (lib/net
//! `check`), in its copy into the guest's buffers: every bit damaged before the VMM is the
//! source's, a store that went wrong is the VMM's own, the guest sees neither, and frames
//! without a check are delivered as before.
extern crate std;

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::vec;
use std::vec::Vec;

use axolotl_net::check::{self, CHECK_AT, CHECK_BYTES};
use axolotl_ring::SharedRegion;
use proptest::prelude::*;

use super::tests::{Guest, RX_BUFS};
use super::*;
use crate::virtio::testutil::*;
use crate::virtio::{F_VERSION_1, status};

/// Link buffers as lib/net lays them out: 2 KiB each, the check in the trailer.
const BUF: usize = 2048;

struct Link {
    words: Vec<u64>,
}

impl Link {
    fn new() -> Self {
        Self {
            words: vec![0; 4 * BUF / 8],
        }
    }

    fn region(&mut self) -> DataRegion {
        let len = self.words.len() * 8;
        let ptr = NonNull::new(self.words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the vector outlives every region of a test, and is not resized.
        unsafe { DataRegion::alias(&SharedRegion::new(ptr, len)) }
    }

    /// Buffer `i` holding `frame` and its check, as the net driver fills it.
    fn fill(&mut self, i: usize, frame: &[u8]) -> usize {
        assert!(check::copy_in(&self.region(), i * BUF, frame));
        i * BUF
    }

    fn flip(&mut self, at: usize, bit: u8) {
        let r = self.region();
        let b = r.read_u8(at).unwrap();
        assert!(r.write_u8(at, b ^ 1 << bit));
    }
}

/// A backend of frames in link buffers, recording the verdicts it hears.
struct LinkNet {
    link: Link,
    region: DataRegion,
    rx: VecDeque<(usize, usize)>,
    verify: bool,
    verdicts: Vec<Verdict>,
}

impl LinkNet {
    fn new(verify: bool) -> Self {
        let mut link = Link::new();
        let region = link.region();
        Self {
            link,
            region,
            rx: VecDeque::new(),
            verify,
            verdicts: Vec::new(),
        }
    }
}

impl NetBackend for LinkNet {
    fn transmit(&mut self, _: usize, _: &mut dyn FnMut(TxDest<'_>) -> bool) -> TxOutcome {
        TxOutcome::Busy
    }

    fn peek_rx(&mut self) -> Option<RxFrame<'_>> {
        let &(at, len) = self.rx.front()?;
        let c = self.verify.then(|| check::read(&self.region, at).unwrap());
        Some(RxFrame::Region(&self.region, at, len, c))
    }

    fn peek_rx_at(&self, k: usize) -> Option<RxFrame<'_>> {
        let &(at, len) = self.rx.get(k)?;
        let c = self.verify.then(|| check::read(&self.region, at).unwrap());
        Some(RxFrame::Region(&self.region, at, len, c))
    }

    fn pop_rx(&mut self) {
        self.rx.pop_front();
    }

    fn rx_verdict(&mut self, v: Verdict) {
        self.verdicts.push(v);
    }
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(29) ^ seed).collect()
}

/// Receive chains of several descriptors each, of odd lengths at odd addresses: a frame
/// of 200 bytes is cut into pieces of 37 (after the 12-byte header), 21, 13, 1, 100 and 28
/// bytes over three chains. The chains' heads, and each piece's (gpa, len) in order.
fn odd_chains(g: &mut Guest) -> (Vec<u16>, Vec<(u64, usize)>) {
    let layout: [&[(u64, u32)]; 3] = [
        &[(RX_BUFS + 3, 49), (RX_BUFS + 0x100 + 5, 21)],
        &[(RX_BUFS + 0x1000 + 1, 13), (RX_BUFS + 0x1100 + 4, 1)],
        &[(RX_BUFS + 0x2000 + 7, 100), (RX_BUFS + 0x2100, 0x400)],
    ];
    let mut heads = Vec::new();
    let mut pieces = Vec::new();
    for chain in layout {
        let bufs: Vec<(u64, u32, bool)> = chain.iter().map(|&(a, l)| (a, l, true)).collect();
        heads.push(g.rxq.add(&mut g.ram, &bufs));
        for &(a, l) in chain {
            let (a, l) = if a == RX_BUFS + 3 {
                (a + 12, l - 12)
            } else {
                (a, l)
            };
            pieces.push((a, l as usize));
        }
    }
    (heads, pieces)
}

/// What the guest got in its buffers: `len` bytes over `pieces`.
fn gather(g: &Guest, pieces: &[(u64, usize)], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for &(a, l) in pieces {
        let n = l.min(len - out.len());
        out.extend_from_slice(g.ram.get(a, n));
    }
    out
}

fn merged() -> Guest {
    Guest::new(F_VERSION_1 | F_MRG_RXBUF)
}

#[test]
fn a_frame_over_odd_pieces_of_several_chains_is_verified_and_delivered() {
    let mut g = merged();
    let (heads, pieces) = odd_chains(&mut g);
    let mut link = Link::new();
    let f = frame(200, 1);
    let at = link.fill(1, &f);
    let r = link.region();
    let c = check::read(&r, at);
    assert_eq!(
        g.dev
            .receive_frame(&mut g.ram, RxFrame::Region(&r, at, 200, c)),
        RxOutcome::Delivered
    );
    assert_eq!(gather(&g, &pieces, 200), f);
    assert_eq!(
        g.rxq.take_used(&g.ram),
        vec![
            (heads[0].into(), 70),
            (heads[1].into(), 14),
            (heads[2].into(), 128)
        ]
    );
    assert_eq!(g.dev.counters.rx_frames, 1);
}

/// Every single bit of the frame, and of the check it carries, flipped in the link buffer
/// before the copy: caught, blamed on the source, and the guest sees nothing (its chains
/// are taken again by the next frame).
#[test]
fn every_bit_flipped_in_the_link_buffer_is_the_sources_and_unseen() {
    let mut g = merged();
    let (heads, pieces) = odd_chains(&mut g);
    let mut link = Link::new();
    let f = frame(200, 2);
    let at = link.fill(0, &f);
    let bytes = (0..f.len()).chain(CHECK_AT..CHECK_AT + CHECK_BYTES);
    let mut flips = 0;
    for byte in bytes {
        for bit in 0..8 {
            let r = link.region();
            let c = check::read(&r, at);
            link.flip(at + byte, bit);
            let c = if byte >= CHECK_AT {
                check::read(&r, at)
            } else {
                c
            };
            assert_eq!(
                g.dev
                    .receive_frame(&mut g.ram, RxFrame::Region(&r, at, f.len(), c)),
                RxOutcome::Failed(Verdict::Source),
                "byte {byte} bit {bit}"
            );
            assert!(g.rxq.take_used(&g.ram).is_empty(), "byte {byte} bit {bit}");
            link.flip(at + byte, bit);
            flips += 1;
        }
    }
    assert_eq!(g.dev.counters.rx_check_failed, flips);
    assert_eq!(g.dev.counters.rx_frames, 0);
    assert!(g.dev.transport.live());
    let r = link.region();
    let c = check::read(&r, at);
    assert_eq!(
        g.dev
            .receive_frame(&mut g.ram, RxFrame::Region(&r, at, f.len(), c)),
        RxOutcome::Delivered
    );
    let used: Vec<u32> = g.rxq.take_used(&g.ram).iter().map(|u| u.0).collect();
    assert_eq!(
        used,
        heads.iter().map(|&h| u32::from(h)).collect::<Vec<_>>()
    );
    assert_eq!(gather(&g, &pieces, f.len()), f);
}

/// A store into guest RAM that went wrong (the byte stored, then damaged: only a read-back
/// sees it) while the link buffer still matches its check: the VMM's own copy, never
/// published; the backend hears `OwnCopy` and the frame stays with it.
#[test]
fn a_store_that_went_wrong_is_the_vmms_own_and_unseen() {
    let mut g = merged();
    let (_, pieces) = odd_chains(&mut g);
    let mut be = LinkNet::new(true);
    let f = frame(200, 3);
    let at = be.link.fill(2, &f);
    be.rx.push_back((at, f.len()));
    // Byte 5 of the third piece (frame byte 37 + 21 + 5).
    let mut mem = Damaging {
        ram: &mut g.ram,
        damage: Some(pieces[2].0 + 5),
    };
    g.dev.process(&mut mem, &mut be);
    assert_eq!(be.verdicts, vec![Verdict::OwnCopy]);
    assert_eq!(be.rx.len(), 1, "not popped: the VMM fail-stops");
    assert!(g.rxq.take_used(&g.ram).is_empty());
    assert_eq!(g.dev.counters.rx_check_failed, 0);
    assert_eq!(g.dev.counters.rx_frames, 0);
    // The same copy with nothing damaged passes.
    let mut mem = Damaging {
        ram: &mut g.ram,
        damage: None,
    };
    g.dev.process(&mut mem, &mut be);
    assert_eq!(be.verdicts, vec![Verdict::OwnCopy, Verdict::Good]);
    assert!(be.rx.is_empty());
    assert_eq!(gather(&g, &pieces, f.len()), f);
}

/// Through the device's `process`: a damaged frame is dropped and the backend told, the
/// next one delivered into the same buffers.
#[test]
fn a_damaged_frame_is_dropped_and_the_next_one_delivered() {
    let mut g = merged();
    let h = g.post_rx(0, 2048);
    let mut be = LinkNet::new(true);
    let (bad, good) = (frame(1514, 4), frame(1514, 5));
    let a = be.link.fill(0, &bad);
    let b = be.link.fill(1, &good);
    be.link.flip(a + 1000, 3);
    be.rx.extend([(a, bad.len()), (b, good.len())]);
    g.dev.process(&mut g.ram, &mut be);
    assert_eq!(be.verdicts, vec![Verdict::Source, Verdict::Good]);
    assert!(be.rx.is_empty());
    assert_eq!(g.rxq.take_used(&g.ram), vec![(h.into(), 12 + 1514)]);
    assert_eq!(g.ram.get(RX_BUFS + 12, 1514), &good[..]);
    assert_eq!(
        (g.dev.counters.rx_check_failed, g.dev.counters.rx_frames),
        (1, 1)
    );
}

/// Coalescing (`VIRTIO_NET_F_GUEST_TSO4`) verifies every frame of a run in its copy: with the
/// third of four damaged, nothing of the run is published; the frames up to the damaged
/// one go one by one (two delivered, the damaged one unseen and the source blamed), and
/// the fourth on its own.
#[test]
fn a_damaged_frame_in_a_run_is_judged_alone_and_the_rest_delivered() {
    use super::coalesce_tests::{ACK, GSO, payload, segment};
    let mut g = Guest::new(GSO);
    for i in 0..4 {
        g.post_rx(i, 2048);
    }
    let mut be = LinkNet::new(true);
    let frames: Vec<Vec<u8>> = (0..4u32)
        .map(|i| segment(40000, 800 * i, &payload(800, i as u8), ACK))
        .collect();
    for (i, f) in frames.iter().enumerate() {
        let at = be.link.fill(i, f);
        be.rx.push_back((at, f.len()));
    }
    be.link.flip(2 * BUF + 500, 6);
    g.dev.process(&mut g.ram, &mut be);
    assert_eq!(
        be.verdicts,
        vec![Verdict::Good, Verdict::Good, Verdict::Source, Verdict::Good]
    );
    assert!(be.rx.is_empty());
    let used = g.rxq.take_used(&g.ram);
    assert_eq!(used.len(), 3);
    for (k, (&(id, len), f)) in used
        .iter()
        .zip([&frames[0], &frames[1], &frames[3]])
        .enumerate()
    {
        assert_eq!(len as usize, 12 + f.len(), "packet {k}");
        let gpa = RX_BUFS + u64::from(id) * 0x1000;
        assert_eq!(g.ram.get(gpa + 1, 1)[0], 0, "packet {k}: no GSO");
        assert_eq!(g.ram.get(gpa + 12, f.len()), &f[..], "packet {k}");
    }
    assert_eq!(g.dev.counters.rx_check_failed, 1);
    assert_eq!(g.dev.counters.rx_coalesced, 0);
    // Undamaged, the same frames are one packet.
    let mut g = Guest::new(GSO);
    for i in 0..4 {
        g.post_rx(i, 2048);
    }
    let mut be = LinkNet::new(true);
    for (i, f) in frames.iter().enumerate() {
        let at = be.link.fill(i, f);
        be.rx.push_back((at, f.len()));
    }
    g.dev.process(&mut g.ram, &mut be);
    assert_eq!(be.verdicts, vec![Verdict::Good; 4]);
    assert_eq!(g.rxq.take_used(&g.ram).len(), 2);
    assert_eq!(g.dev.counters.rx_coalesced, 3);
}

/// A backend that does not verify (no check with its frames) is delivered to as before,
/// damaged or not, and never hears a verdict.
#[test]
fn frames_without_a_check_are_delivered_unverified() {
    let mut g = merged();
    let (_, pieces) = odd_chains(&mut g);
    let mut be = LinkNet::new(false);
    let f = frame(200, 6);
    let at = be.link.fill(0, &f);
    be.link.flip(at + 17, 0);
    be.rx.push_back((at, f.len()));
    g.dev.process(&mut g.ram, &mut be);
    assert!(be.verdicts.is_empty());
    assert!(be.rx.is_empty());
    let mut want = f.clone();
    want[17] ^= 1;
    assert_eq!(gather(&g, &pieces, f.len()), want);
    assert_eq!(g.rxq.take_used(&g.ram).len(), 3);
}

/// A frame the guest has no room for yet waits, unjudged: no copy was made.
#[test]
fn a_frame_waiting_for_buffers_is_not_judged() {
    let mut g = merged();
    g.post_rx(0, 100);
    let mut be = LinkNet::new(true);
    let f = frame(1514, 7);
    let at = be.link.fill(0, &f);
    be.rx.push_back((at, f.len()));
    g.dev.process(&mut g.ram, &mut be);
    assert!(be.verdicts.is_empty());
    assert_eq!(be.rx.len(), 1);
    assert_eq!(g.dev.transport.status() & status::DEVICE_NEEDS_RESET, 0);
}

proptest! {
    /// Frames of any length over chains of any layout (descriptor lengths and address
    /// alignments), through the VMM's one-copy path and the staging default: an undamaged
    /// frame is delivered whole, with one used entry per chain it filled; one with any bit
    /// flipped in its link buffer is the source's and the guest sees none of it.
    #[test]
    fn any_layout_delivers_good_frames_and_hides_damaged_ones(
        len in 14usize..=1514,
        seed in any::<u8>(),
        chains in proptest::collection::vec(
            proptest::collection::vec((1u32..700, 0u64..8), 1..4), 1..5),
        flip in proptest::option::of(any::<prop::sample::Index>()),
        staged in any::<bool>(),
    ) {
        let mut g = merged();
        let mut pieces = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            let mut bufs = Vec::new();
            for (j, &(l, a)) in chain.iter().enumerate() {
                let gpa = RX_BUFS + 0x1000 * i as u64 + 0x300 * j as u64 + a;
                // Every receive buffer holds a header (§5.1.6.3), the first the frame's.
                let l = if j == 0 { l.max(12) } else { l };
                bufs.push((gpa, l, true));
                let (gpa, l) = if i == 0 && j == 0 { (gpa + 12, l - 12) } else { (gpa, l) };
                pieces.push((gpa, l as usize));
            }
            g.rxq.add(&mut g.ram, &bufs);
        }
        let room: usize = pieces.iter().map(|p| p.1).sum();
        let mut link = Link::new();
        let f = frame(len, seed);
        let at = link.fill(1, &f);
        if let Some(bit) = flip {
            let bit = bit.index(8 * len);
            link.flip(at + bit / 8, (bit % 8) as u8);
        }
        let r = link.region();
        let c = check::read(&r, at);
        let got = if staged {
            let mut mem = Damaging { ram: &mut g.ram, damage: None };
            g.dev.receive_frame(&mut mem, RxFrame::Region(&r, at, len, c))
        } else {
            g.dev.receive_frame(&mut g.ram, RxFrame::Region(&r, at, len, c))
        };
        let used = g.rxq.take_used(&g.ram);
        if room < len {
            prop_assert!(matches!(got, RxOutcome::NoBuffers | RxOutcome::Dropped));
            prop_assert!(used.is_empty());
        } else if flip.is_some() {
            prop_assert_eq!(got, RxOutcome::Failed(Verdict::Source));
            prop_assert!(used.is_empty());
        } else {
            prop_assert_eq!(got, RxOutcome::Delivered);
            prop_assert_eq!(gather(&g, &pieces, len), f);
            let filled: usize = used.iter().map(|u| u.1 as usize).sum();
            prop_assert_eq!(filled, 12 + len);
        }
    }
}

/// A verified frame from a link: its TCP checksum is judged from the sum its check already
/// carries, over pieces of several chains; DATA_VALID only when that checksum is right (a
/// producer's check over a wrong packet vouches for the bytes, not for TCP).
#[test]
fn a_verified_frames_tcp_checksum_is_judged_from_its_check() {
    use crate::virtio::net_offload::tests::{tcp_packet, with_tcp_checksum};
    use crate::virtio::net_offload::{F_GUEST_CSUM, HDR_F_DATA_VALID};
    let good = with_tcp_checksum(&tcp_packet(&frame(134, 4), 0x18, false, 0, 0, 7, 7));
    assert_eq!(good.len(), 188);
    let mut wrong = good.clone();
    wrong[150] ^= 0x10;
    for (f, want) in [(&good, HDR_F_DATA_VALID), (&wrong, 0)] {
        let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF | F_GUEST_CSUM);
        let (_, pieces) = odd_chains(&mut g);
        let mut link = Link::new();
        let at = link.fill(1, f);
        let r = link.region();
        let c = check::read(&r, at);
        assert_eq!(
            g.dev
                .receive_frame(&mut g.ram, RxFrame::Region(&r, at, f.len(), c)),
            RxOutcome::Delivered
        );
        assert_eq!(gather(&g, &pieces, f.len()), *f);
        assert_eq!(g.ram.get(RX_BUFS + 3, 1)[0], want);
        assert_eq!(g.ram.get(RX_BUFS + 3 + 10, 2), [3, 0], "num_buffers");
    }
}
