//! The link protocol between two ends, across restarts of either, and against a hostile peer.
// A dropped end stands for a dead PD; the drop says so to the reader.
#![allow(clippy::drop_non_drop)]

mod common;

use axolotl_net::link::CAPACITY;
use axolotl_net::{BUF_SIZE, Dir, IDS, MAX_FRAME, SendError};
use axolotl_ring::Corruption;
use common::{Link, frame, settle};
use proptest::prelude::*;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const G: [u8; 6] = [2, 0, 0, 0, 0, 2];

#[test]
fn frames_cross_both_ways_byte_identical() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    let mut got = Vec::new();
    settle(&mut c, &mut s, &mut got);
    assert!(c.is_connected() && s.is_connected());
    assert_eq!(c.rx_posted(), IDS as u32);
    assert_eq!(s.rx_buffers(), IDS);

    let sent: Vec<_> = (0..3)
        .map(|i| frame(G, A, i, 60 + 500 * i as usize))
        .collect();
    for f in &sent {
        c.send(f).unwrap();
    }
    s.poll();
    let mut out = [0u8; MAX_FRAME];
    let mut notify = false;
    for f in &sent {
        let n = s.take_tx(&mut out, &mut notify).expect("a frame");
        assert_eq!(&out[..n], &f[..]);
    }
    assert_eq!(s.take_tx(&mut out, &mut notify), None);

    let rx: Vec<_> = (0..3).map(|i| frame(A, G, 100 + i, 1514)).collect();
    for f in &rx {
        assert!(s.deliver(f));
    }
    settle(&mut c, &mut s, &mut got);
    assert_eq!(got, rx);
    assert_eq!(c.tx_free(), IDS as u32, "every transmit buffer back");
    assert_eq!(
        c.rx_posted(),
        IDS as u32,
        "every receive buffer posted again"
    );
}

#[test]
fn send_refuses_bad_lengths_and_runs_out_of_buffers() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    assert_eq!(c.send(&[0; 13]), Err(SendError::BadLength(13)));
    assert_eq!(
        c.send(&[0; MAX_FRAME + 1]),
        Err(SendError::BadLength(MAX_FRAME + 1))
    );
    for i in 0..IDS as u32 {
        c.send(&frame(G, A, i, 60)).unwrap();
    }
    assert_eq!(c.send(&frame(G, A, 99, 60)), Err(SendError::NoBuffer));
}

#[test]
fn server_restart_gives_every_buffer_back() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    let mut got = Vec::new();
    settle(&mut c, &mut s, &mut got);
    for i in 0..5 {
        c.send(&frame(G, A, i, 100)).unwrap();
    }
    // One delivered and completed, but the client has not looked yet.
    assert!(s.deliver(&frame(A, G, 7, 80)));
    drop(s);
    let mut s = l.server();
    settle(&mut c, &mut s, &mut got);
    assert_eq!(
        got,
        vec![frame(A, G, 7, 80)],
        "the old server's completion is taken"
    );
    let st = c.stats();
    assert_eq!(st.server_restarts, 1);
    assert_eq!(st.rx_reclaimed, IDS as u64 - 1);
    assert_eq!(st.tx_dropped, 5);
    assert_eq!(c.tx_free(), IDS as u32);
    assert_eq!(c.rx_posted(), IDS as u32);
    assert_eq!(
        s.rx_buffers(),
        IDS,
        "the new server holds every receive buffer"
    );
}

#[test]
fn client_restart_makes_the_server_forget_its_buffers() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    c.send(&frame(G, A, 1, 100)).unwrap();
    drop(c);
    let mut c = l.client();
    // Before the new client posts anything, the server holds none of the old one's buffers.
    for _ in 0..4 {
        s.poll();
    }
    assert_eq!(s.stats().client_restarts, 1);
    assert_eq!(s.rx_buffers(), 0, "the dead client's buffers are forgotten");
    let mut got = Vec::new();
    settle(&mut c, &mut s, &mut got);
    assert_eq!(
        s.rx_buffers(),
        IDS,
        "only the new client's buffers, once each"
    );
    let mut out = [0u8; MAX_FRAME];
    assert_eq!(
        s.take_tx(&mut out, &mut false),
        None,
        "the dead client's frame is abandoned"
    );
    assert!(s.deliver(&frame(A, G, 2, 64)));
    settle(&mut c, &mut s, &mut got);
    assert_eq!(got, vec![frame(A, G, 2, 64)]);
}

#[test]
fn oversized_and_undersized_transmit_frames_are_never_forwarded() {
    let mut l = Link::new();
    let mut raw = l.raw_tx_client();
    let mut s = l.server();
    let mut connected = false;
    for _ in 0..8 {
        s.poll();
        while let Ok(Some(ev)) = raw.poll() {
            connected |= matches!(ev, axolotl_ring::ClientEvent::Connected { .. });
        }
    }
    assert!(connected);
    // (The good one carries its check, in the transmit half of the data region.)
    l.seal(IDS * BUF_SIZE + 4096, 60);
    for (id, offset, len) in [(0, 0, 2000), (1, 2048, 10), (2, 4096, 60)] {
        let _ = raw.submit(id, offset, len).unwrap();
    }
    s.poll();
    let mut out = [0u8; MAX_FRAME];
    assert_eq!(
        s.take_tx(&mut out, &mut false),
        Some(60),
        "only the good one"
    );
    assert_eq!(s.stats().tx_bad_len, 2);
    let mut back = Vec::new();
    while let Ok(Some(axolotl_ring::ClientEvent::Completed(d))) = raw.poll() {
        back.push((d.id, d.len));
    }
    assert_eq!(
        back,
        vec![(0, 0), (1, 0), (2, 60)],
        "every buffer comes back once"
    );
}

/// The receive connection's response queue as a hostile server would write it.
fn forge_completion(l: &Link, index: u32, id: u32, len: u32) {
    let q = Link::RX_RESP_Q;
    // The request the client posted for `id` (request queue slots at 128 + 128).
    let req = 256 + 16 * id as usize;
    let (offset, tag) = (l.rings.read_u32(req), l.rings.read_u32(req + 12));
    let slot = q + 128 + 16 * (index % CAPACITY) as usize;
    let d = axolotl_ring::Descriptor {
        offset,
        len,
        id,
        tag,
    };
    // Sealed with its position, as lib/ring's producer writes it.
    for (i, w) in axolotl_ring::slot_words(d, index).into_iter().enumerate() {
        l.rings.write_u32(slot + 4 * i, w);
    }
    // With the check of what the buffer holds: the frame is intact, only the ring lies.
    if len as usize <= MAX_FRAME {
        l.seal(offset as usize, len as usize);
    }
    l.rings.write_u32(q, index + 1);
}

#[test]
fn a_completion_shorter_than_a_frame_is_dropped_and_the_buffer_reposted() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    drop(s);
    forge_completion(&l, 0, 0, 5);
    let mut got = Vec::new();
    let act = c.poll(|f| got.push(f.to_vec()));
    assert_eq!(act.fault, None);
    assert!(got.is_empty());
    assert_eq!(c.stats().rx_bad_len, 1);
    assert_eq!(c.rx_posted(), IDS as u32, "posted again");
}

#[test]
fn a_buffer_completed_twice_is_reported() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    drop(s);
    // Two completions of id 3 before the client looks: the second names a buffer that is
    // no longer with the server.
    forge_completion(&l, 0, 3, 60);
    forge_completion(&l, 1, 3, 60);
    let mut got = 0;
    let act = c.poll(|_| got += 1);
    assert_eq!(got, 1);
    assert_eq!(
        act.fault,
        Some((Dir::Rx, Corruption::DuplicateCompletion { id: 3 }))
    );
}

/// The standing fault an `Accuser` watches: there while the link is poisoned, poll after
/// poll, and over once the peer's restart has resynchronised it.
#[test]
fn the_standing_fault_lasts_until_the_peers_restart_repairs_the_link() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    drop(s);
    forge_completion(&l, 0, 3, 60);
    forge_completion(&l, 1, 3, 60);
    let want = Some((Dir::Rx, Corruption::DuplicateCompletion { id: 3 }));
    assert_eq!(c.poll(|_| {}).fault, want);
    for _ in 0..4 {
        assert_eq!(c.poll(|_| {}).fault, None, "reported once");
        assert_eq!(c.fault(), want, "but still standing");
    }
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    assert!(c.is_connected());
    assert_eq!(c.fault(), None);
}

#[test]
fn a_completion_outside_the_data_region_is_reported() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    drop(s);
    let q = Link::RX_RESP_Q;
    let tag = l.rings.read_u32(256 + 12);
    let d = axolotl_ring::Descriptor {
        offset: 0x10_0000,
        len: 60,
        id: 0,
        tag,
    };
    for (i, w) in axolotl_ring::slot_words(d, 0).into_iter().enumerate() {
        l.rings.write_u32(q + 128 + 4 * i, w);
    }
    l.rings.write_u32(q, 1);
    let act = c.poll(|_| panic!("nothing may be delivered"));
    assert!(
        matches!(
            act.fault,
            Some((Dir::Rx, Corruption::CompletionMismatch { id: 0 }))
        ),
        "{act:?}"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Send(u16),
    Deliver(u16),
    Take,
    PollClient,
    PollServer,
    RestartServer,
    RestartClient,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (60u16..1514).prop_map(Op::Send),
        4 => (60u16..1514).prop_map(Op::Deliver),
        4 => Just(Op::Take),
        3 => Just(Op::PollClient),
        3 => Just(Op::PollServer),
        1 => Just(Op::RestartServer),
        1 => Just(Op::RestartClient),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random traffic with restarts of either end at any point: no frame is delivered
    /// twice or altered, and once things settle every buffer is where it belongs (none
    /// leaked: the client has all its transmit buffers back and all its receive buffers
    /// posted, and the server holds each of them once).
    #[test]
    fn restarts_leak_no_buffer_and_duplicate_no_frame(ops in prop::collection::vec(op(), 1..200)) {
        let mut l = Link::new();
        let mut c = l.client();
        let mut s = l.server();
        let (mut tx_seq, mut rx_seq) = (0u32, 0u32);
        let mut sent_tx = std::collections::HashMap::new();
        let mut sent_rx = std::collections::HashMap::new();
        let mut seen_tx = std::collections::HashSet::new();
        let mut seen_rx = std::collections::HashSet::new();
        let mut out = [0u8; MAX_FRAME];
        let check_rx = |f: &[u8], sent_rx: &std::collections::HashMap<u32, Vec<u8>>, seen: &mut std::collections::HashSet<u32>| {
            let seq = u32::from_le_bytes(f[14..18].try_into().unwrap());
            assert_eq!(sent_rx.get(&seq).map(|v| &v[..]), Some(f), "frame {seq} altered");
            assert!(seen.insert(seq), "frame {seq} delivered twice");
        };
        for o in ops {
            match o {
                Op::Send(n) => {
                    let f = frame(G, A, tx_seq, n as usize);
                    if c.send(&f).is_ok() {
                        sent_tx.insert(tx_seq, f);
                        tx_seq += 1;
                    }
                }
                Op::Deliver(n) => {
                    let f = frame(A, G, rx_seq, n as usize);
                    sent_rx.insert(rx_seq, f.clone());
                    rx_seq += 1;
                    s.deliver(&f);
                }
                Op::Take => {
                    if let Some(n) = s.take_tx(&mut out, &mut false) {
                        let seq = u32::from_le_bytes(out[14..18].try_into().unwrap());
                        prop_assert_eq!(sent_tx.get(&seq).map(|v| &v[..]), Some(&out[..n]));
                        prop_assert!(seen_tx.insert(seq), "transmit frame {} taken twice", seq);
                    }
                }
                Op::PollClient => {
                    let mut got = Vec::new();
                    let act = c.poll(|f| got.push(f.to_vec()));
                    prop_assert_eq!(act.fault, None);
                    for f in got { check_rx(&f, &sent_rx, &mut seen_rx); }
                }
                Op::PollServer => { prop_assert_eq!(s.poll().fault, None); }
                Op::RestartServer => { drop(s); s = l.server(); }
                Op::RestartClient => { drop(c); c = l.client(); seen_rx.clear(); sent_rx.clear(); }
            }
        }
        // Settle: the server takes whatever is queued, then both sides go quiet.
        for _ in 0..8 {
            let mut got = Vec::new();
            settle(&mut c, &mut s, &mut got);
            for f in got { check_rx(&f, &sent_rx, &mut seen_rx); }
            while let Some(n) = s.take_tx(&mut out, &mut false) {
                let seq = u32::from_le_bytes(out[14..18].try_into().unwrap());
                prop_assert!(seen_tx.insert(seq), "transmit frame {} taken twice", seq);
                let _ = n;
            }
        }
        prop_assert!(c.is_connected() && s.is_connected());
        prop_assert_eq!(c.tx_free(), IDS as u32);
        prop_assert_eq!(c.rx_posted(), IDS as u32);
        prop_assert_eq!(s.rx_buffers(), IDS);
    }
}
