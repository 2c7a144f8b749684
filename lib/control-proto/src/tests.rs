use std::vec;
use std::vec::Vec;

use super::*;

fn to_vec<T: Serialize>(msg: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut buf = [0u8; MAX_FRAME];
    postcard::to_slice(msg, &mut buf).map(|b| b.to_vec())
}

fn frame_of<T: Serialize>(id: u16, msg: &T) -> Vec<u8> {
    let mut out = [0u8; FRAME_BUFFER];
    let n = encode(id, msg, &mut out).unwrap();
    out[..n].to_vec()
}

/// The frame's bytes without the delimiter.
fn body(mut f: Vec<u8>) -> Vec<u8> {
    assert_eq!(f.pop(), Some(0));
    f
}

fn full_text(c: char) -> Text {
    core::iter::repeat_n(c, TEXT_LEN).collect()
}

fn full_name(c: char) -> Name {
    core::iter::repeat_n(c, NAME_LEN).collect()
}

/// The largest reply there is: every string full, every number as long as postcard makes it.
fn largest_pd() -> Reply {
    Reply::Pd {
        total: u8::MAX,
        status: PdStatus {
            index: u8::MAX,
            name: full_name('x'),
            state: PdState::Held {
                reason: full_text('r'),
            },
            generation: u32::MAX,
            restarts: u32::MAX,
            restarts_in_window: u32::MAX,
            restart_limit: u32::MAX,
            last_cause: Some(full_text('c')),
            last_recovery_us: Some(u64::MAX),
            heartbeat_ms: Some(u64::MAX),
            heartbeat_age_ms: Some(u64::MAX),
            memory_bytes: u64::MAX,
            cpu_us: Some(u64::MAX),
            guest_cpu_us: Some(u64::MAX),
            managed: true,
            vm: Some(full_name('v')),
        },
    }
}

fn largest_log() -> Reply {
    Reply::Log(Some(LogEntry {
        seq: u32::MAX,
        at_ms: u64::MAX,
        pd: full_name('p'),
        event: Event::Injected,
        generation: u32::MAX,
        cause: full_text('c'),
        latency_us: Some(u64::MAX),
    }))
}

fn largest_injected() -> Reply {
    Reply::Injected(Injected::RingCorruption {
        region: full_name('r'),
        offset: u32::MAX,
        word: RingWord::RequestHead,
        old: u32::MAX,
        new: u32::MAX,
    })
}

#[test]
fn bit_targets_exist_or_are_refused() {
    assert_eq!(
        BitTarget::new(34, 63).map(BitTarget::register_name),
        Some("tpidr_el0")
    );
    assert_eq!(BitTarget::new(35, 0), None);
    assert_eq!(BitTarget::new(0, 64), None);
    assert_eq!(BitTarget::parse_register("x7"), Some(10));
    assert_eq!(BitTarget::parse_register("pc"), Some(0));
    assert_eq!(BitTarget::parse_register("34"), Some(34));
    assert_eq!(BitTarget::parse_register("35"), None);
    assert_eq!(BitTarget::parse_register("x31"), None);
    assert_eq!(BitTarget::parse_register("-1"), None);
}

#[test]
fn injections_say_where() {
    use std::string::ToString;
    let flip = Injected::BitFlip(BitTarget::new(10, 12).unwrap());
    assert_eq!(flip.to_string(), " (x7 bit 12)");
    let ww = Injected::WildWrite {
        vaddr: 0x20_1008,
        old: 0,
        new: 0xdead,
    };
    assert_eq!(ww.to_string(), " (0x201008: 0x0 -> 0xdead)");
    let ring = Injected::RingCorruption {
        region: name("a_rings").unwrap(),
        offset: 128,
        word: RingWord::RequestTail,
        old: 5,
        new: 0x8000_0005,
    };
    assert_eq!(
        ring.to_string(),
        " (a_rings+0x80, request tail: 0x5 -> 0x80000005)"
    );
}

#[test]
fn round_trips() {
    for req in [
        Request::Inject {
            pd: name("serial_driver").unwrap(),
            kind: FaultKind::Crash,
            at: None,
        },
        Request::Inject {
            pd: name("hello_logger").unwrap(),
            kind: FaultKind::BitFlip,
            at: BitTarget::new(10, 63),
        },
    ] {
        let mut f = body(frame_of(7, &req));
        assert!(!f.contains(&0));
        assert_eq!(decode::<Request>(&mut f), Ok((7, req)));
    }
    for reply in [
        largest_pd(),
        largest_log(),
        largest_injected(),
        Reply::Injected(Injected::Done),
        Reply::Injected(Injected::BitFlip(BitTarget {
            register: 0,
            bit: 1,
        })),
        Reply::Done,
        Reply::Error(Error::NotGranted),
        Reply::Error(Error::NoRing),
    ] {
        let mut f = body(frame_of(u16::MAX, &reply));
        assert_eq!(decode::<Reply>(&mut f), Ok((u16::MAX, reply)));
    }
}

#[test]
fn the_largest_replies_fit_a_frame() {
    for reply in [largest_pd(), largest_log(), largest_injected()] {
        let f = frame_of(u16::MAX, &reply);
        assert!(f.len() <= FRAME_BUFFER, "{} bytes", f.len());
    }
    let req = Request::Vm {
        name: full_name('v'),
        op: VmOp::Reboot,
    };
    assert!(frame_of(1, &req).len() <= FRAME_BUFFER);
}

#[test]
fn a_flipped_bit_is_a_crc_error() {
    let f = body(frame_of(3, &Request::Status { index: 2 }));
    // Flip each bit of the decoded payload, re-encode with COBS: the frame is well-formed,
    // only the CRC can tell.
    let mut payload = f.clone();
    let n = cobs::decode_in_place(&mut payload).unwrap();
    for bit in 0..n * 8 {
        let mut p = payload[..n].to_vec();
        p[bit / 8] ^= 1 << (bit % 8);
        let mut g = [0u8; FRAME_BUFFER];
        let m = cobs::encode(&p, &mut g);
        assert_eq!(
            decode::<Request>(&mut g[..m]),
            Err((0, Error::BadCrc)),
            "bit {bit}"
        );
    }
}

/// A payload with a good CRC, from raw parts.
fn raw(version: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let mut p = vec![version];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(body);
    let crc = crc32fast::hash(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    let mut g = vec![0u8; p.len() + p.len() / 254 + 2];
    let m = cobs::encode(&p, &mut g);
    g.truncate(m);
    g
}

#[test]
fn another_version_is_named() {
    let body = to_vec(&Request::Status { index: 0 }).unwrap();
    let mut f = raw(1, 9, &body);
    assert_eq!(
        decode::<Request>(&mut f),
        Err((
            9,
            Error::Version {
                got: 1,
                supported: VERSION
            }
        ))
    );
}

#[test]
fn unknown_variants_truncations_and_trailing_bytes_are_malformed() {
    // Request has 7 variants: 7 is none.
    let mut f = raw(VERSION, 4, &[7]);
    assert_eq!(decode::<Request>(&mut f), Err((4, Error::Malformed)));
    let mut f = raw(VERSION, 4, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(decode::<Request>(&mut f), Err((4, Error::Malformed)));
    let good = to_vec(&Request::Restart {
        pd: name("client_a").unwrap(),
        if_generation: None,
    })
    .unwrap();
    for cut in 0..good.len() {
        let mut f = raw(VERSION, 5, &good[..cut]);
        assert_eq!(
            decode::<Request>(&mut f),
            Err((5, Error::Malformed)),
            "{cut}"
        );
    }
    let mut long = good.clone();
    long.push(0);
    let mut f = raw(VERSION, 5, &long);
    assert_eq!(decode::<Request>(&mut f), Err((5, Error::Malformed)));
    // A name longer than any PD's.
    let mut over = vec![2u8, (NAME_LEN + 1) as u8];
    over.extend(core::iter::repeat_n(b'a', NAME_LEN + 1));
    let mut f = raw(VERSION, 6, &over);
    assert_eq!(decode::<Request>(&mut f), Err((6, Error::Malformed)));
}

#[test]
fn short_empty_oversize_and_non_cobs_frames_are_bad() {
    assert_eq!(decode::<Request>(&mut []), Err((0, Error::BadFrame)));
    assert_eq!(decode::<Request>(&mut [1]), Err((0, Error::BadFrame)));
    assert_eq!(
        decode::<Request>(&mut [5, 1, 1, 1]),
        Err((0, Error::BadFrame))
    );
    let mut big = vec![1u8; MAX_FRAME + 1];
    assert_eq!(decode::<Request>(&mut big), Err((0, Error::Oversize)));
    assert_eq!(decode::<Request>(&mut [2, 0, 3]), Err((0, Error::BadFrame)));
}

#[test]
fn serve_answers_every_frame() {
    let mut out = [0u8; FRAME_BUFFER];
    let mut f = body(frame_of(11, &Request::Status { index: 0 }));
    let n = serve(
        &mut f,
        |r| {
            assert_eq!(r, Request::Status { index: 0 });
            Reply::Done
        },
        &mut out,
    );
    assert_eq!(decode::<Reply>(&mut out[..n - 1]), Ok((11, Reply::Done)));
    let n = serve(&mut [1, 2, 3], |_| unreachable!(), &mut out);
    assert_eq!(
        decode::<Reply>(&mut out[..n - 1]),
        Ok((0, Reply::Error(Error::BadFrame)))
    );
}

#[test]
fn the_deframer_splits_resyncs_and_drops_oversize() {
    let mut d = Deframer::<8>::new();
    let mut got = Vec::new();
    for b in [0, 0, 1, 2, 0, 3, 4, 5, 6, 7, 8, 9, 10, 99, 0, 11, 0] {
        match d.push(b) {
            Some(Frame::Complete(f)) => got.push(Ok(f.to_vec())),
            Some(Frame::Oversize) => got.push(Err(())),
            None => {}
        }
    }
    assert_eq!(got, vec![Ok(vec![1, 2]), Err(()), Ok(vec![11])]);
}

#[test]
fn texts_are_cut_at_char_boundaries() {
    let s: std::string::String = core::iter::repeat_n('é', TEXT_LEN).collect();
    let t = text(&s);
    assert_eq!(t.len(), TEXT_LEN);
    assert_eq!(text("short").as_str(), "short");
    assert!(name(&s).is_none());
}

#[test]
fn fault_kinds_parse_as_printed() {
    for k in FaultKind::ALL {
        assert_eq!(FaultKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(FaultKind::parse("melt"), None);
}

/// The relay's path (control-pd): the host's frame unframed to its payload, carried to the
/// monitor as bytes, opened there; the monitor's sealed reply framed as it came. Every byte
/// the relay could damage on the way, either way, is found by the far end's CRC: what a
/// relay that decoded and re-encoded could not give (the control campaign's SDC, id 463:
/// a code flip in control's relay changed status rows' memory figures, and the host took
/// them, the frame's CRC being control's own).
#[test]
fn a_relay_that_damages_any_byte_is_found_at_the_far_end() {
    let req = Request::Restart {
        pd: name("serial_driver").unwrap(),
        if_generation: Some(3),
    };
    let mut frame = body(frame_of(0x1234, &req));
    let payload = unframe(&mut frame).unwrap().to_vec();
    assert_eq!(payload_id(&payload), Some(0x1234));
    assert_eq!(open::<Request>(&payload), Ok((0x1234, req.clone())));
    for i in 0..payload.len() {
        for bit in 0..8 {
            let mut p = payload.clone();
            p[i] ^= 1 << bit;
            assert_eq!(
                open::<Request>(&p),
                Err((0, Error::BadCrc)),
                "request byte {i} bit {bit}"
            );
            assert_eq!(payload_id(&p), None);
        }
    }
    // The monitor's reply, sealed; the host decodes what the relay framed.
    for reply in [largest_pd(), largest_log(), largest_injected(), Reply::Done] {
        let mut sealed = [0u8; MAX_PAYLOAD];
        let n = seal(0x1234, &reply, &mut sealed).unwrap();
        let mut out = [0u8; FRAME_BUFFER];
        let m = frame_payload(&sealed[..n], &mut out).unwrap();
        // As the host's `encode` would have made it.
        assert_eq!(out[..m], frame_of(0x1234, &reply)[..]);
        let mut f = out[..m - 1].to_vec();
        assert_eq!(decode::<Reply>(&mut f), Ok((0x1234, reply.clone())));
        for i in 0..n {
            let mut s = sealed[..n].to_vec();
            s[i] ^= 0x10;
            let m = frame_payload(&s, &mut out).unwrap();
            let mut f = out[..m - 1].to_vec();
            assert_eq!(
                decode::<Reply>(&mut f),
                Err((0, Error::BadCrc)),
                "reply byte {i}"
            );
        }
    }
}

#[test]
fn seal_refuses_what_does_not_fit() {
    let mut small = [0u8; HEADER + CRC - 1];
    assert_eq!(seal(1, &Reply::Done, &mut small), Err(TooLarge));
    let mut short = [0u8; 16];
    assert_eq!(seal(1, &largest_pd(), &mut short), Err(TooLarge));
    let mut enough = [0u8; MAX_PAYLOAD];
    let n = seal(1, &largest_pd(), &mut enough).unwrap();
    assert_eq!(open::<Reply>(&enough[..n]), Ok((1, largest_pd())));
    // A payload too long to frame.
    assert_eq!(
        frame_payload(&[1u8; MAX_FRAME], &mut [0u8; FRAME_BUFFER + 8]),
        Err(TooLarge)
    );
}
