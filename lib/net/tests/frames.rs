//! Parsers, the echo endpoint, the virtualiser's routing and the driver's device checks.

use axolotl_net::device::{DeviceError, Tokens, rx_frame_len};
use axolotl_net::eth::{self, Arp, Ethernet, Ipv4Packet, ParseError, Udp};
use axolotl_net::{Echo, MAX_FRAME, Router, Targets};
use proptest::prelude::*;

const ME: [u8; 6] = [0x52, 0x54, 0, 0xa, 0, 0x15];
const GW: [u8; 6] = [0x52, 0x55, 0xa, 0, 2, 2];
const IP: [u8; 4] = [10, 0, 2, 15];
const GW_IP: [u8; 4] = [10, 0, 2, 2];

fn udp_to_me(payload: &[u8], port: u16) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = eth::build_udp(&mut out, ME, GW, GW_IP, IP, 40000, port, payload, 9).unwrap();
    out[..n].to_vec()
}

#[test]
fn echo_answers_udp_byte_identical_with_valid_checksums() {
    let mut e = Echo::new(ME, IP, 7);
    let mut out = [0u8; MAX_FRAME];
    let n = e
        .handle(&udp_to_me(b"seq 17 hello", 7), &mut out)
        .expect("a reply");
    let f = Ethernet::parse(&out[..n]).unwrap();
    assert_eq!((f.dst, f.src, f.ethertype), (GW, ME, eth::ETHERTYPE_IPV4));
    let ip = Ipv4Packet::parse(f.payload).unwrap();
    assert_eq!((ip.src, ip.dst), (IP, GW_IP));
    let u = Udp::parse(&ip).unwrap();
    assert_eq!(
        (u.src_port, u.dst_port, u.payload),
        (7, 40000, &b"seq 17 hello"[..])
    );
    assert_eq!(e.stats().echoed, 1);
}

#[test]
fn echo_ignores_other_ports_and_hosts_and_refuses_damage() {
    let mut e = Echo::new(ME, IP, 7);
    let mut out = [0u8; MAX_FRAME];
    assert_eq!(e.handle(&udp_to_me(b"x", 8), &mut out), None);
    let mut bad = udp_to_me(b"abc", 7);
    let last = bad.len() - 1;
    bad[last] ^= 1; // UDP checksum no longer verifies
    assert_eq!(e.handle(&bad, &mut out), None);
    let mut bad_ip = udp_to_me(b"abc", 7);
    bad_ip[14 + 8] ^= 1; // TTL: header checksum fails
    assert_eq!(e.handle(&bad_ip, &mut out), None);
    assert_eq!(e.stats().malformed, 2);
    assert_eq!(e.stats().ignored, 1);
}

#[test]
fn ipv4_and_udp_length_fields_are_checked() {
    let f = udp_to_me(b"hello", 7);
    let ip = &f[14..];
    // Total length beyond the frame.
    let mut p = ip.to_vec();
    let l = p.len() as u16 + 1;
    p[2..4].copy_from_slice(&l.to_be_bytes());
    assert_eq!(Ipv4Packet::parse(&p), Err(ParseError::Truncated));
    // IHL below 5.
    let mut p = ip.to_vec();
    p[0] = 0x44;
    assert_eq!(Ipv4Packet::parse(&p), Err(ParseError::BadLength));
    // A fragment.
    let mut p = ip.to_vec();
    p[6] = 0x20;
    p[10..12].copy_from_slice(&[0, 0]);
    let c = eth::checksum(eth::ones_sum(0, &p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(Ipv4Packet::parse(&p), Err(ParseError::Fragment));
    // UDP length beyond the IP payload.
    let good = Ipv4Packet::parse(ip).unwrap();
    let mut u = good.payload.to_vec();
    let l = u.len() as u16 + 1;
    u[4..6].copy_from_slice(&l.to_be_bytes());
    let bad = Ipv4Packet {
        payload: &u,
        ..good
    };
    assert_eq!(Udp::parse(&bad), Err(ParseError::BadLength));
    // Link padding past the total length is cut, not echoed.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0xee; 10]);
    let ip = Ipv4Packet::parse(&padded[14..]).unwrap();
    assert_eq!(Udp::parse(&ip).unwrap().payload, b"hello");
}

#[test]
fn arp_request_for_our_address_is_answered_others_not() {
    let mut e = Echo::new(ME, IP, 7);
    let mut req = [0u8; 42];
    eth::write_ethernet(&mut req, eth::BROADCAST, GW, eth::ETHERTYPE_ARP);
    let mut a = Arp {
        op: eth::ARP_REQUEST,
        sender_mac: GW,
        sender_ip: GW_IP,
        target_mac: [0; 6],
        target_ip: IP,
    };
    a.write(&mut req[14..]);
    let mut out = [0u8; MAX_FRAME];
    let n = e.handle(&req, &mut out).expect("reply");
    let r = Arp::parse(&out[14..n]).unwrap();
    assert_eq!(
        (r.op, r.sender_mac, r.sender_ip, r.target_mac),
        (eth::ARP_REPLY, ME, IP, GW)
    );
    a.target_ip = [10, 0, 2, 16];
    a.write(&mut req[14..]);
    assert_eq!(e.handle(&req, &mut out), None);
    // Announcing ourselves is a well-formed request for our own address.
    let n = e.announce(&mut out);
    let g = Arp::parse(&out[14..n]).unwrap();
    assert_eq!((g.sender_ip, g.target_ip), (IP, IP));
}

proptest! {
    /// Nothing a peer can put in a frame makes the parsers or the endpoint panic.
    #[test]
    fn random_frames_never_panic(f in prop::collection::vec(any::<u8>(), 0..1600)) {
        let mut e = Echo::new(ME, IP, 7);
        let mut out = [0u8; MAX_FRAME];
        let _ = e.handle(&f, &mut out);
        if let Ok(eth) = Ethernet::parse(&f) {
            let _ = Arp::parse(eth.payload);
            if let Ok(ip) = Ipv4Packet::parse(eth.payload) {
                let _ = Udp::parse(&ip);
            }
        }
    }

    /// A valid frame with one byte of its IP header or UDP datagram flipped is never echoed
    /// altered: either refused or (a flip in an ignored field) echoed with what it carried.
    #[test]
    fn flipped_bits_are_caught(at in 14usize..60, bit in 0u8..8) {
        let f = udp_to_me(b"0123456789abcdefghijklmn", 7);
        let mut g = f.clone();
        g[at] ^= 1 << bit;
        let mut e = Echo::new(ME, IP, 7);
        let mut out = [0u8; MAX_FRAME];
        if let Some(n) = e.handle(&g, &mut out) {
            let ip = Ipv4Packet::parse(&out[14..n]).unwrap();
            prop_assert_eq!(Udp::parse(&ip).unwrap().payload, &b"0123456789abcdefghijklmn"[..]);
        }
    }
}

#[test]
fn router_demultiplexes_by_mac_and_floods_groups() {
    let a = [2, 0, 0, 0, 0, 0xa];
    let b = [2, 0, 0, 0, 0, 0xb];
    let r = Router::new([a, b]).unwrap();
    let to = |d: [u8; 6], s: [u8; 6]| {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&d);
        f[6..12].copy_from_slice(&s);
        f
    };
    assert_eq!(r.rx_targets(&to(a, GW)), 0b01);
    assert_eq!(r.rx_targets(&to(b, GW)), 0b10);
    assert_eq!(r.rx_targets(&to(eth::BROADCAST, GW)), 0b11);
    assert_eq!(
        r.rx_targets(&to([0x33, 0x33, 0, 0, 0, 1], GW)),
        0b11,
        "multicast"
    );
    assert_eq!(r.rx_targets(&to(GW, a)), 0, "someone else's");
    assert_eq!(r.rx_targets(&[0; 10]), 0, "runt");
    assert_eq!(
        r.tx_targets(0, &to(GW, a)),
        Targets {
            clients: 0,
            wire: true
        }
    );
    assert_eq!(
        r.tx_targets(0, &to(b, a)),
        Targets {
            clients: 0b10,
            wire: false
        },
        "looped to b"
    );
    assert_eq!(
        r.tx_targets(1, &to(eth::BROADCAST, b)),
        Targets {
            clients: 0b01,
            wire: true
        }
    );
    assert_eq!(
        r.tx_targets(0, &to(GW, b)),
        Targets::default(),
        "a spoofing b's MAC"
    );
    assert!(Router::new([a, a]).is_none());
    assert!(Router::new([a, eth::BROADCAST]).is_none());
}

#[test]
fn router_transmits_round_robin() {
    let mut r = Router::new([[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]]).unwrap();
    let order: Vec<_> = (0..6).filter_map(|_| r.next_tx(0b111)).collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    assert_eq!(r.next_tx(0b101), Some(0));
    assert_eq!(r.next_tx(0b101), Some(2));
    assert_eq!(r.next_tx(0), None);
}

#[test]
fn device_tokens_refuse_unknown_ids_and_long_lengths() {
    let mut t = Tokens::<4>::new();
    assert!(t.insert(2, 7));
    assert!(!t.insert(2, 8), "taken");
    assert!(!t.insert(4, 0), "out of range");
    assert_eq!(
        t.peek(1),
        Err(DeviceError::UnknownToken(1)),
        "never made available"
    );
    assert_eq!(t.peek(900), Err(DeviceError::UnknownToken(900)));
    assert_eq!(t.peek(2), Ok(7));
    assert_eq!(t.remove(2), Some(7));
    assert_eq!(t.peek(2), Err(DeviceError::UnknownToken(2)), "already used");
    assert!(t.is_empty());
    assert_eq!(rx_frame_len(0, 12 + 60, 12, 2048), Ok(60));
    assert!(
        rx_frame_len(0, 4000, 12, 2048).is_err(),
        "longer than the buffer"
    );
    assert!(
        rx_frame_len(0, 11, 12, 2048).is_err(),
        "shorter than the header"
    );
    assert!(
        rx_frame_len(0, 12 + 1515, 12, 2048).is_err(),
        "above the MTU"
    );
}
