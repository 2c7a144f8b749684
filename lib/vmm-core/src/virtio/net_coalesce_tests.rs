//! virtio-net's receive coalescing (`VIRTIO_NET_F_GUEST_TSO4`): a TCP flow's segments that
//! wait together reach the guest as one packet that, segmented again by `gso_size`, gives
//! back exactly the segments the link carried; anything that is not such a run goes
//! through as it came.
extern crate std;

use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::tests::{Guest, RX_BUFS};
use super::*;
use crate::virtio::F_VERSION_1;
use crate::virtio::net_offload::tests::{
    reference_checksum, tcp_packet, verify_segment, with_tcp_checksum,
};

pub(super) const GSO: u64 =
    F_VERSION_1 | F_MRG_RXBUF | offload::F_GUEST_CSUM | offload::F_GUEST_TSO4;
pub(super) const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

pub(super) fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(13) ^ seed).collect()
}

/// A segment of flow `port` as slirp sends it: ACK (and `flags`), 12 bytes of options,
/// checksums right.
pub(super) fn segment(port: u16, seq: u32, data: &[u8], flags: u8) -> Vec<u8> {
    let mut f = tcp_packet(data, flags, false, 0, 12, seq, seq as u16);
    f[34..36].copy_from_slice(&port.to_be_bytes());
    let ip = reference_checksum(&[&f[14..24], &[0, 0], &f[26..34]].concat());
    f[24..26].copy_from_slice(&ip.to_be_bytes());
    with_tcp_checksum(&f)
}

/// Posts `n` receive buffers of `len` bytes from slot `first` on; their heads' addresses.
fn post(g: &mut Guest, first: u64, n: u64, len: u32, at: &mut HashMap<u32, u64>) {
    for i in first..first + n {
        let h = g.post_rx(i, len);
        at.insert(u32::from(h), RX_BUFS + i * 0x1000);
    }
}

/// The packets the guest got since the last call: each one's virtio-net header and bytes,
/// gathered over its `num_buffers` used entries.
fn packets(g: &mut Guest, at: &HashMap<u32, u64>) -> Vec<([u8; 12], Vec<u8>)> {
    let used = g.rxq.take_used(&g.ram);
    let mut out = Vec::new();
    let mut i = 0;
    while i < used.len() {
        let (id, len) = used[i];
        let first = at[&id];
        let mut hdr = [0u8; 12];
        hdr.copy_from_slice(g.ram.get(first, 12));
        let n = usize::from(u16::from_le_bytes([hdr[10], hdr[11]]));
        let mut bytes = g.ram.get(first + 12, len as usize - 12).to_vec();
        for &(id, len) in &used[i + 1..i + n] {
            bytes.extend_from_slice(g.ram.get(at[&id], len as usize));
        }
        out.push((hdr, bytes));
        i += n;
    }
    out
}

/// What the guest's stack does with a `NEEDS_CSUM` packet that leaves it: the checksum
/// summed from `csum_start` into `csum_offset` (the field holding the pseudo-header's sum).
fn complete(hdr: &[u8; 12], p: &mut [u8]) {
    if hdr[0] & offload::HDR_F_NEEDS_CSUM != 0 {
        let start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
        let off = start + usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
        let c = reference_checksum(&p[start..]);
        p[off..off + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// A received packet cut back into the segments it stands for: (port, seq, flags, payload)
/// each; a coalesced one by its `gso_size`, PSH on the last only.
fn resegment(hdr: &[u8; 12], p: &[u8]) -> Vec<(u16, u32, u8, Vec<u8>)> {
    let hlen = 34 + usize::from(p[46] >> 4) * 4;
    let port = u16::from_be_bytes([p[34], p[35]]);
    let seq = u32::from_be_bytes([p[38], p[39], p[40], p[41]]);
    let flags = p[47];
    if hdr[1] == offload::GSO_NONE {
        return vec![(port, seq, flags, p[hlen..].to_vec())];
    }
    assert_eq!(hdr[1], offload::GSO_TCPV4);
    assert_eq!(usize::from(u16::from_le_bytes([hdr[2], hdr[3]])), hlen);
    let mss = usize::from(u16::from_le_bytes([hdr[4], hdr[5]]));
    let chunks: Vec<&[u8]> = p[hlen..].chunks(mss).collect();
    assert!(chunks.len() >= 2, "a coalesced packet of one segment");
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let last = i + 1 == chunks.len();
            let f = if last { flags } else { flags & !PSH };
            (port, seq.wrapping_add((i * mss) as u32), f, c.to_vec())
        })
        .collect()
}

#[test]
fn a_flows_segments_waiting_together_go_to_the_guest_as_one_packet() {
    let mut frames = Vec::new();
    let mut data = Vec::new();
    for (i, n) in [1000usize, 1000, 1000, 500].into_iter().enumerate() {
        let d = payload(n, i as u8);
        let flags = if i == 3 { ACK | PSH } else { ACK };
        frames.push(segment(40000, 7000 + 1000 * i as u32, &d, flags));
        data.extend_from_slice(&d);
    }
    let mut g = Guest::new(GSO);
    let mut at = HashMap::new();
    post(&mut g, 0, 8, 1536, &mut at);
    g.be.rx.extend(frames.iter().cloned());
    g.dev.process(&mut g.ram, &mut g.be);
    assert!(g.be.rx.is_empty());
    let mut got = packets(&mut g, &at);
    assert_eq!(got.len(), 1, "one packet");
    let (hdr, p) = &mut got[0];
    // NEEDS_CSUM, TCPV4, hdr_len 66, gso_size 1000, csum at 34 + 16, three buffers.
    assert_eq!(*hdr, [1, 1, 66, 0, 0xe8, 3, 34, 0, 16, 0, 3, 0]);
    assert_eq!(p.len(), 66 + 3500);
    assert_eq!(
        &p[..34 + 13],
        &{
            let mut h = frames[0][..47].to_vec();
            h[16..18].copy_from_slice(&(3500u16 + 52).to_be_bytes());
            h[24..26].copy_from_slice(&p[24..26]);
            h
        }[..]
    );
    assert_eq!(p[47], ACK | PSH, "the last segment's PSH");
    assert_eq!(&p[66..], &data[..]);
    complete(hdr, p);
    verify_segment(p);
    assert_eq!(
        (g.dev.counters.rx_frames, g.dev.counters.rx_coalesced),
        (4, 3)
    );

    // Not negotiated: four packets, as they came.
    let mut g = Guest::new(F_VERSION_1 | F_MRG_RXBUF | offload::F_GUEST_CSUM);
    let mut at = HashMap::new();
    post(&mut g, 0, 8, 1536, &mut at);
    g.be.rx.extend(frames.iter().cloned());
    g.dev.process(&mut g.ram, &mut g.be);
    let got: Vec<Vec<u8>> = packets(&mut g, &at).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, frames);
    assert_eq!(g.dev.counters.rx_coalesced, 0);
}

/// Each way a second frame may fail to continue the first: both go to the guest as they
/// came, one packet each.
#[test]
fn a_frame_that_does_not_continue_the_flow_goes_alone() {
    let first = segment(40000, 1, &payload(800, 1), ACK);
    let next = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = segment(40000, 801, &payload(800, 2), ACK);
        f(&mut p);
        p
    };
    let fix = |p: &mut Vec<u8>| {
        let ip = reference_checksum(&[&p[14..24], &[0, 0], &p[26..34]].concat());
        p[24..26].copy_from_slice(&ip.to_be_bytes());
        *p = with_tcp_checksum(p);
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a gap", segment(40000, 802, &payload(800, 2), ACK)),
        ("another flow", segment(40001, 801, &payload(800, 2), ACK)),
        (
            "longer than the first",
            segment(40000, 801, &payload(900, 2), ACK),
        ),
        ("FIN", segment(40000, 801, &payload(800, 2), ACK | 0x01)),
        ("no payload", segment(40000, 801, &[], ACK)),
        ("a TCP checksum wrong", next(&|p| p[100] ^= 0x40)),
        ("an IP checksum wrong", next(&|p| p[25] ^= 1)),
        (
            "another acknowledgement",
            next(&|p| {
                p[45] ^= 1;
                fix(p)
            }),
        ),
        (
            "another window",
            next(&|p| {
                p[49] ^= 1;
                fix(p)
            }),
        ),
        (
            "other options",
            next(&|p| {
                p[60] = 0;
                fix(p)
            }),
        ),
        (
            "another TOS",
            next(&|p| {
                p[15] = 3;
                fix(p)
            }),
        ),
        (
            "a fragment",
            next(&|p| {
                p[20] = 0x20;
                fix(p)
            }),
        ),
        (
            "padded",
            next(&|p| {
                p.extend_from_slice(&[0; 4]);
            }),
        ),
    ];
    for (what, second) in cases {
        let mut g = Guest::new(GSO);
        let mut at = HashMap::new();
        post(&mut g, 0, 4, 2048, &mut at);
        g.be.rx.extend([first.clone(), second.clone()]);
        g.dev.process(&mut g.ram, &mut g.be);
        let got: Vec<_> = packets(&mut g, &at);
        assert_eq!(got.len(), 2, "{what}");
        assert_eq!(got[0].1, first, "{what}");
        assert_eq!(got[1].1, second, "{what}");
        assert!(got.iter().all(|(h, _)| h[1] == offload::GSO_NONE), "{what}");
        assert_eq!(g.dev.counters.rx_coalesced, 0, "{what}");
    }
    // A PSH ends a packet: the frame after it starts the next.
    let mut g = Guest::new(GSO);
    let mut at = HashMap::new();
    post(&mut g, 0, 8, 2048, &mut at);
    g.be.rx.extend([
        segment(40000, 1, &payload(800, 1), ACK),
        segment(40000, 801, &payload(800, 2), ACK | PSH),
        segment(40000, 1601, &payload(800, 3), ACK),
        segment(40000, 2401, &payload(100, 4), ACK),
    ]);
    g.dev.process(&mut g.ram, &mut g.be);
    let got = packets(&mut g, &at);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].1.len(), got[1].1.len()), (66 + 1600, 66 + 900));
}

/// Receive buffers for part of a run: as many frames as they hold go as one packet, the
/// rest wait for more buffers.
#[test]
fn a_run_longer_than_the_buffers_is_cut_to_what_they_hold() {
    let mut g = Guest::new(GSO);
    let mut at = HashMap::new();
    // 3,080 bytes: the header, the first frame (66 + 1000) and two more payloads of 1000,
    // 3,078 bytes.
    post(&mut g, 0, 2, 1540, &mut at);
    for i in 0..4u32 {
        g.be.rx
            .push_back(segment(40000, 1000 * i, &payload(1000, i as u8), ACK));
    }
    g.dev.process(&mut g.ram, &mut g.be);
    let got = packets(&mut g, &at);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), 66 + 3000);
    assert_eq!(g.be.rx.len(), 1, "the fourth waits");
    assert_eq!(g.dev.counters.rx_coalesced, 2);
    post(&mut g, 2, 1, 1536, &mut at);
    g.dev.process(&mut g.ram, &mut g.be);
    let got = packets(&mut g, &at);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, segment(40000, 3000, &payload(1000, 3), ACK));
}

/// A link's worth of frames from two flows, in any interleaving, with gaps, PSH, FIN and
/// damaged checksums here and there, received into buffers of any size posted a few at a
/// time.
/// A frame to receive: (flow, sequence gap before it, flags, payload bytes, damaged).
type Spec = (u16, u32, u8, usize, bool);

fn traffic() -> impl Strategy<Value = (Vec<Spec>, Vec<u32>)> {
    let frame = (
        0u16..2,
        prop::sample::select(vec![0u32, 0, 0, 0, 0, 1]),
        prop::sample::select(vec![ACK, ACK, ACK, ACK | PSH, ACK | 0x01]),
        prop::sample::select(vec![300usize, 300, 300, 300, 120, 0]),
        prop::bool::weighted(0.1),
    );
    (
        prop::collection::vec(frame, 1..24),
        prop::collection::vec(
            prop::sample::select(vec![64u32, 400, 700, 1536, 4096]),
            1..40,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Cut back by `gso_size`, what the guest gets is exactly what the link carried, frame
    /// by frame and in order; a coalesced packet's checksums are right once the guest
    /// completes them, and no frame with a wrong checksum is ever inside one.
    #[test]
    fn coalesced_packets_resegment_to_the_frames_received((spec, bufs) in traffic()) {
        let mut frames = Vec::new();
        let mut want = Vec::new();
        let mut seq = [1000u32, 50_000];
        for (i, &(flow, gap, flags, n, damaged)) in spec.iter().enumerate() {
            let damaged = damaged && n > 4;
            let port = 40000 + flow;
            let s = &mut seq[usize::from(flow)];
            *s = s.wrapping_add(gap);
            let d = payload(n, i as u8);
            let mut f = segment(port, *s, &d, flags);
            if damaged {
                f[70] ^= 0x10;
            }
            *s = s.wrapping_add(n as u32);
            want.push((port, u32::from_be_bytes([f[38], f[39], f[40], f[41]]), flags, f[66..].to_vec(), damaged));
            frames.push(f);
        }
        let mut g = Guest::new(GSO);
        let mut at = HashMap::new();
        g.be.rx.extend(frames.iter().cloned());
        let mut got = Vec::new();
        let mut slot = 0u64;
        let mut rounds = 0;
        while !g.be.rx.is_empty() {
            rounds += 1;
            prop_assert!(rounds < 200, "stalled with {} frames left", g.be.rx.len());
            for &len in bufs.iter().cycle().skip(rounds).take(3) {
                // Slots come back once used: a queue of 16 holds at most 16 posted.
                post(&mut g, slot % 64, 1, len.max(12), &mut at);
                slot += 1;
            }
            g.dev.process(&mut g.ram, &mut g.be);
            got.extend(packets(&mut g, &at));
            // Buffers too small for what waits: more, larger ones next round.
            post(&mut g, slot % 64, 1, 4096, &mut at);
            slot += 1;
            g.dev.process(&mut g.ram, &mut g.be);
            got.extend(packets(&mut g, &at));
        }
        let mut segs = Vec::new();
        for (hdr, mut p) in got {
            let coalesced = hdr[1] != offload::GSO_NONE;
            if coalesced {
                complete(&hdr, &mut p);
                verify_segment(&p);
            }
            for (port, s, f, d) in resegment(&hdr, &p) {
                segs.push((port, s, f, d, coalesced));
            }
        }
        prop_assert_eq!(segs.len(), want.len());
        for (got, want) in segs.iter().zip(&want) {
            prop_assert_eq!(&got.0, &want.0);
            prop_assert_eq!(&got.1, &want.1);
            prop_assert_eq!(&got.2, &want.2);
            prop_assert_eq!(&got.3, &want.3);
            prop_assert!(!(got.4 && want.4), "a damaged frame inside a coalesced packet");
        }
    }
}
