//! The offloads' arithmetic and segmentation against the definitions (RFC 791, 793, 1071).
extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// The Internet checksum of `bytes` the textbook way: 16-bit big-endian words, end-around
/// carries, complemented.
pub fn reference_checksum(bytes: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for p in bytes.chunks(2) {
        let w = u32::from(p[0]) << 8 | u32::from(*p.get(1).unwrap_or(&0));
        s += w;
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A TCP/IPv4 packet in an Ethernet frame (with a VLAN tag if `vlan`), `ip_opts` and
/// `tcp_opts` bytes of options, sequence number `seq`, IP id `id` and TCP `flags`.
pub fn tcp_packet(
    payload: &[u8],
    flags: u8,
    vlan: bool,
    ip_opts: usize,
    tcp_opts: usize,
    seq: u32,
    id: u16,
) -> Vec<u8> {
    let mut f = vec![
        0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0xab, 0xcd, 0xef,
    ];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ihl = 20 + ip_opts;
    let doff = 20 + tcp_opts;
    let total = (ihl + doff + payload.len()) as u16;
    let ip = f.len();
    f.push(0x40 | (ihl / 4) as u8);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0]); // DF
    f.extend_from_slice(&[64, 6, 0, 0]);
    f.extend_from_slice(&[10, 0, 2, 15, 10, 0, 2, 2]);
    f.extend(core::iter::repeat_n(1u8, ip_opts)); // NOPs
    let c = reference_checksum(&f[ip..ip + ihl]);
    f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&8080u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    f.push(((doff / 4) as u8) << 4);
    f.push(flags);
    f.extend_from_slice(&[0xff, 0xff, 0x12, 0x34, 0, 0]); // window, checksum (junk), urgent
    f.extend(core::iter::repeat_n(1u8, tcp_opts));
    f.extend_from_slice(payload);
    f
}

/// Checks `seg` the way a receiving host does: IPv4's header checksum, its total length,
/// TCP's checksum over the pseudo-header. Returns (ip offset, tcp offset, headers' length).
pub fn verify_segment(seg: &[u8]) -> (usize, usize, usize) {
    let ip = if seg[12..14] == [0x81, 0x00] { 18 } else { 14 };
    let ihl = usize::from(seg[ip] & 0xf) * 4;
    assert_eq!(
        reference_checksum(&seg[ip..ip + ihl]),
        0,
        "IPv4 header checksum"
    );
    let total = usize::from(u16::from_be_bytes([seg[ip + 2], seg[ip + 3]]));
    assert_eq!(total, seg.len() - ip, "IPv4 total length");
    let tcp = ip + ihl;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&seg[ip + 12..ip + 20]);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&((seg.len() - tcp) as u16).to_be_bytes());
    pseudo.extend_from_slice(&seg[tcp..]);
    assert_eq!(reference_checksum(&pseudo), 0, "TCP checksum");
    let doff = usize::from(seg[tcp + 12] >> 4) * 4;
    (ip, tcp, tcp + doff)
}

/// Cuts `packet` with `mss` through [`Tso`] the way the device does with a byte buffer.
fn cut(packet: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let t = Tso::parse(&packet[..packet.len().min(MAX_HEADERS)], packet.len(), mss).unwrap();
    (0..t.segments())
        .map(|i| {
            let mut seg = vec![0u8; MAX_HEADERS.max(t.hlen + mss)];
            let len = t.header(i, &mut seg);
            seg.truncate(len);
            let (from, n) = t.payload_of(i);
            seg[t.hlen..].copy_from_slice(&packet[t.hlen + from..t.hlen + from + n]);
            let c = t.finish(len, sum_be(&seg[t.tcp()..], 0));
            seg[t.tcp() + 16..t.tcp() + 18].copy_from_slice(&c.to_be_bytes());
            seg
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A frame's sum from its little-endian words (as a data region hands them) is the
    /// big-endian sum of its bytes: what lets the device sum a segment in a data region
    /// word by word.
    #[test]
    fn word_sums_are_byte_sums(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut le = 0u64;
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            le = add(le, u64::from_le_bytes(w));
        }
        prop_assert_eq!(fold(le_words_to_be(le)), fold(sum_be(&bytes, 0)));
        prop_assert_eq!(!fold(sum_be(&bytes, 0)), reference_checksum(&bytes));
    }

    /// Every segment is a packet a host accepts (checksums, lengths), the payloads put
    /// together are the packet's, sequence numbers and IP ids advance, FIN and PSH only on
    /// the last segment, CWR only on the first, the rest of the headers unchanged.
    #[test]
    fn segments_are_valid_packets_that_add_up_to_the_original(
        payload in proptest::collection::vec(any::<u8>(), 0..5000),
        mss in 1usize..1460,
        flags in prop_oneof![Just(0x10u8), Just(0x18), Just(0x19), Just(0x98), Just(0xd9)],
        vlan in any::<bool>(),
        ip_opts in prop_oneof![Just(0usize), Just(4), Just(40)],
        tcp_opts in prop_oneof![Just(0usize), Just(12), Just(40)],
        seq in any::<u32>(),
        id in any::<u16>(),
    ) {
        let p = tcp_packet(&payload, flags, vlan, ip_opts, tcp_opts, seq, id);
        let hlen = p.len() - payload.len();
        prop_assume!(hlen + mss <= MAX_SEGMENT_FRAME);
        let segs = cut(&p, mss);
        prop_assert_eq!(segs.len(), payload.len().div_ceil(mss).max(1));
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let (ip, tcp, h) = verify_segment(s);
            prop_assert_eq!(h, hlen);
            prop_assert!(s.len() - h <= mss);
            let s_seq = u32::from_be_bytes([s[tcp + 4], s[tcp + 5], s[tcp + 6], s[tcp + 7]]);
            prop_assert_eq!(s_seq, seq.wrapping_add(joined.len() as u32));
            prop_assert_eq!(u16::from_be_bytes([s[ip + 4], s[ip + 5]]), id.wrapping_add(i as u16));
            let last = i + 1 == segs.len();
            let want = flags & !(if last { 0 } else { 0x09 }) & !(if i == 0 { 0 } else { 0x80 });
            prop_assert_eq!(s[tcp + 13], want);
            // Everything else in the headers is the packet's.
            for k in (0..h).filter(|&k| {
                !(ip + 2..ip + 6).contains(&k)
                    && !(ip + 10..ip + 12).contains(&k)
                    && !(tcp + 4..tcp + 8).contains(&k)
                    && k != tcp + 13
                    && !(tcp + 16..tcp + 18).contains(&k)
            }) {
                prop_assert_eq!(s[k], p[k], "header byte {}", k);
            }
            joined.extend_from_slice(&s[h..]);
        }
        prop_assert_eq!(joined, payload);
    }
}

#[test]
fn plans_follow_the_header_and_the_negotiated_features() {
    let p = tcp_packet(&[7; 3000], 0x18, false, 0, 12, 1, 1);
    let all = F_CSUM | F_HOST_TSO4;
    let plain = NetHdr::default();
    assert_eq!(
        plan(&plain, 0, &p[..MAX_HEADERS], p.len()),
        Ok(TxPlan::Plain)
    );
    let csum = NetHdr {
        flags: HDR_F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..NetHdr::default()
    };
    assert_eq!(
        plan(&csum, all, &p[..MAX_HEADERS], p.len()),
        Ok(TxPlan::Csum {
            start: 34,
            offset: 16
        })
    );
    assert_eq!(
        plan(&csum, F_HOST_TSO4, &p[..MAX_HEADERS], p.len()),
        Err(Malformed::NotNegotiated)
    );
    let beyond = NetHdr {
        csum_start: 3050,
        csum_offset: 16,
        ..csum
    };
    assert_eq!(
        plan(&beyond, all, &p[..MAX_HEADERS], p.len()),
        Err(Malformed::CsumRange)
    );
    let tso = NetHdr {
        gso_type: GSO_TCPV4,
        gso_size: 1448,
        ..csum
    };
    assert!(matches!(
        plan(&tso, all, &p[..MAX_HEADERS], p.len()),
        Ok(TxPlan::Tso(t)) if t.segments() == 3 && t.hlen == 66
    ));
    assert_eq!(
        plan(&tso, F_CSUM, &p[..MAX_HEADERS], p.len()),
        Err(Malformed::NotNegotiated)
    );
    for bad_type in [3u8, 4, 5, 0x81] {
        let h = NetHdr {
            gso_type: bad_type,
            ..tso
        };
        assert_eq!(
            plan(&h, all, &p[..MAX_HEADERS], p.len()),
            Err(Malformed::NotNegotiated),
            "gso_type {bad_type:#x}"
        );
    }
    for mss in [0u16, 1449, 60000] {
        let h = NetHdr {
            gso_size: mss,
            ..tso
        };
        assert_eq!(
            plan(&h, all, &p[..MAX_HEADERS], p.len()),
            Err(Malformed::SegmentSize),
            "gso_size {mss}"
        );
    }
}

#[test]
fn segmentation_refuses_what_is_not_tcp_over_ipv4() {
    let good = tcp_packet(&[1; 100], 0x10, false, 0, 0, 0, 0);
    let parse = |p: &[u8]| Tso::parse(&p[..p.len().min(MAX_HEADERS)], p.len(), 536);
    assert!(parse(&good).is_ok());
    let mut v6 = good.clone();
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut udp = good.clone();
    udp[14 + 9] = 17;
    let mut ihl = good.clone();
    ihl[14] = 0x44;
    let mut frag = good.clone();
    frag[14 + 6] = 0x20; // more fragments
    let mut doff = good.clone();
    doff[34 + 12] = 0x40;
    let mut doff_past = good.clone();
    doff_past[34 + 12] = 0xf0;
    for (what, p) in [
        ("IPv6", &v6[..]),
        ("UDP", &udp),
        ("IHL 16", &ihl),
        ("a fragment", &frag),
        ("TCP data offset 16", &doff),
        ("headers past the frame", &doff_past[..60]),
        ("a runt", &good[..20]),
    ] {
        assert_eq!(parse(p), Err(Malformed::Headers), "{what}");
    }
}

#[test]
fn a_computed_checksum_of_zero_goes_out_as_all_ones() {
    assert_eq!(nonzero(0), 0xffff);
    assert_eq!(nonzero(0x1234), 0x1234);
}

/// `packet` (as `tcp_packet` makes it) with its TCP checksum made right, by the textbook.
pub fn with_tcp_checksum(packet: &[u8]) -> Vec<u8> {
    let ip = if packet[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    let tcp = ip + usize::from(packet[ip] & 0xf) * 4;
    let mut p = packet.to_vec();
    p[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
    let mut pseudo = p[ip + 12..ip + 20].to_vec();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&((p.len() - tcp) as u16).to_be_bytes());
    pseudo.extend_from_slice(&p[tcp..]);
    let c = reference_checksum(&pseudo);
    p[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
    p
}

/// A UDP/IPv4 datagram in an Ethernet frame with a right checksum (or 0: none).
pub fn udp_packet(data: &[u8], with_checksum: bool) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    p.extend_from_slice(&[0x08, 0x00]);
    let udp_len = (8 + data.len()) as u16;
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(20 + udp_len).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 2, 2, 10, 0, 2, 15]);
    let c = reference_checksum(&p[14..34]);
    p[24..26].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&[0x00, 0x35, 0x9c, 0x40]);
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    if with_checksum {
        let mut pseudo = vec![10, 0, 2, 2, 10, 0, 2, 15, 0, 17];
        pseudo.extend_from_slice(&udp_len.to_be_bytes());
        pseudo.extend_from_slice(&p[34..]);
        let c = nonzero(reference_checksum(&pseudo));
        p[40..42].copy_from_slice(&c.to_be_bytes());
    }
    p
}

fn rx_valid(frame: &[u8]) -> bool {
    rx_checksum_valid(
        &frame[..frame.len().min(RX_HEADERS)],
        frame.len(),
        sum_be(frame, 0),
    )
}

#[test]
fn received_checksums_are_vouched_for_only_when_right_and_known() {
    let tcp = with_tcp_checksum(&tcp_packet(&[9; 1448], 0x10, false, 0, 12, 77, 3));
    verify_segment(&tcp);
    assert!(rx_valid(&tcp));
    let vlan = with_tcp_checksum(&tcp_packet(&[1; 100], 0x18, true, 4, 0, 1, 1));
    assert!(rx_valid(&vlan));
    let ack = with_tcp_checksum(&tcp_packet(&[], 0x10, false, 0, 12, 1, 1));
    assert!(rx_valid(&ack));
    assert!(rx_valid(&udp_packet(&[5; 300], true)));
    assert!(!rx_valid(&udp_packet(&[5; 300], false)), "no UDP checksum");
    let mut bad = tcp.clone();
    bad[1000] ^= 0x40;
    assert!(!rx_valid(&bad), "a damaged payload");
    let mut padded = with_tcp_checksum(&tcp_packet(&[], 0x10, false, 0, 0, 1, 1));
    padded.extend_from_slice(&[0; 6]);
    assert!(!rx_valid(&padded), "Ethernet padding");
    let mut frag = tcp.clone();
    frag[14 + 6] |= 0x20;
    assert!(!rx_valid(&frag), "a fragment");
    let mut v6 = tcp.clone();
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert!(!rx_valid(&v6), "IPv6");
    let mut icmp = tcp.clone();
    icmp[14 + 9] = 1;
    assert!(!rx_valid(&icmp), "ICMP");
    assert!(!rx_valid(&tcp[..40]), "a runt");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever bytes a frame has, DATA_VALID is claimed only for TCP/IPv4 whose checksum
    /// over the pseudo-header is right by the textbook.
    #[test]
    fn data_valid_only_for_what_the_definition_calls_right(
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
        damage in proptest::collection::vec((0usize..1600, any::<u8>()), 0..3),
    ) {
        let mut f = with_tcp_checksum(&tcp_packet(&payload, 0x18, false, 0, 12, 9, 9));
        let untouched = f.clone();
        for (at, v) in damage {
            if let Some(b) = f.get_mut(at) {
                *b = v;
            }
        }
        let claimed = rx_valid(&f);
        if f == untouched {
            prop_assert!(claimed);
        }
        if claimed {
            let tcp = 34;
            let mut pseudo = f[26..34].to_vec();
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&((f.len() - tcp) as u16).to_be_bytes());
            pseudo.extend_from_slice(&f[tcp..]);
            prop_assert_eq!(reference_checksum(&pseudo), 0);
            prop_assert_eq!(usize::from(u16::from_be_bytes([f[16], f[17]])), f.len() - 14);
        }
    }
}
