//! A client that leaves received frames in their link buffers until it copied them where
//! they go (`poll_in_place`), and fills transmit buffers in place (`send_with`): the VMM's
//! one-copy path (docs/network.md, "Copies").
// A dropped end stands for a dead PD; the drop says so to the reader.
#![allow(clippy::drop_non_drop)]

mod common;

use axolotl_net::{IDS, MAX_FRAME, NetClient, NetServer, SendError};
use common::{Link, frame, settle};
use proptest::prelude::*;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const G: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Copies out every kept frame and consumes it.
fn drain(c: &mut NetClient) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some((off, len)) = c.rx_peek() {
        let mut f = vec![0; len];
        assert!(c.rx_region().copy_out(off, &mut f));
        got.push(f);
        c.rx_consume();
    }
    got
}

fn connect() -> (Link, NetClient, NetServer) {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    assert_eq!(s.rx_buffers(), IDS);
    (l, c, s)
}

/// The buffer of a kept frame is the client's until it consumed the frame: the server
/// gets no more buffers than were consumed (back-pressure), and a consumed one is posted
/// again at the next poll. Without the `rx_kept` mask in `post_rx`, the poll re-posts the
/// kept buffers at once and the server overwrites frames the client still reads.
#[test]
fn kept_frames_hold_their_buffers_until_consumed() {
    let (_l, mut c, mut s) = connect();
    let rx: Vec<_> = (0..IDS as u32)
        .map(|i| frame(A, G, i, 60 + 90 * i as usize % (MAX_FRAME - 60)))
        .collect();
    for f in &rx {
        assert!(s.deliver(f));
    }
    c.poll_in_place();
    s.poll();
    assert_eq!(c.rx_kept(), IDS);
    assert_eq!(c.rx_posted(), 0);
    assert_eq!(
        s.rx_buffers(),
        0,
        "no buffer goes back before its frame is read"
    );
    assert!(
        !s.deliver(&frame(A, G, 99, 60)),
        "the server has nowhere to put it"
    );

    // Read three, then poll: exactly those three go back.
    let mut got = Vec::new();
    for _ in 0..3 {
        let (off, len) = c.rx_peek().unwrap();
        let mut f = vec![0; len];
        assert!(c.rx_region().copy_out(off, &mut f));
        got.push(f);
        c.rx_consume();
    }
    assert!(c.poll_in_place().notify);
    s.poll();
    assert_eq!(s.rx_buffers(), 3);
    // New frames land in the freed buffers and leave the unread ones alone.
    for i in 0..3 {
        assert!(s.deliver(&frame(A, G, 100 + i, 1514)));
    }
    c.poll_in_place();
    got.extend(drain(&mut c));
    let mut want = rx.clone();
    want.extend((0..3).map(|i| frame(A, G, 100 + i, 1514)));
    assert_eq!(got, want, "every frame once, in order, unaltered");
    c.poll_in_place();
    s.poll();
    assert_eq!(c.rx_posted(), IDS as u32);
    assert_eq!(s.rx_buffers(), IDS);
}

/// A server restart gives back the buffers it held; the kept ones stay readable, and
/// afterwards every buffer is posted once.
#[test]
fn kept_frames_survive_a_server_restart() {
    let (mut l, mut c, mut s) = connect();
    for i in 0..5 {
        assert!(s.deliver(&frame(A, G, i, 200)));
    }
    c.poll_in_place();
    assert_eq!(c.rx_kept(), 5);
    drop(s);
    let mut s = l.server();
    for _ in 0..4 {
        c.poll_in_place();
        s.poll();
    }
    assert_eq!(c.rx_kept(), 5);
    assert_eq!(c.rx_posted(), IDS as u32 - 5);
    let got = drain(&mut c);
    assert_eq!(got, (0..5).map(|i| frame(A, G, i, 200)).collect::<Vec<_>>());
    c.poll_in_place();
    s.poll();
    assert_eq!(c.rx_posted(), IDS as u32);
    assert_eq!(s.rx_buffers(), IDS);
}

/// `send_with` fills the transmit buffer in place; a fill that fails submits nothing and
/// keeps the buffer free.
#[test]
fn send_with_fills_in_place_and_a_failed_fill_sends_nothing() {
    let (_l, mut c, mut s) = connect();
    let f = frame(G, A, 7, 900);
    assert_eq!(c.send_with(f.len(), |_, _| false), Err(SendError::Refused));
    assert_eq!(c.tx_free(), IDS as u32);
    assert_eq!(
        c.send_with(MAX_FRAME + 1, |_, _| panic!("never asked to fill")),
        Err(SendError::BadLength(MAX_FRAME + 1))
    );
    c.send_with(f.len(), |r, at| r.copy_in(at, &f)).unwrap();
    s.poll();
    let mut out = [0u8; MAX_FRAME];
    let n = s.take_tx(&mut out, &mut false).unwrap();
    assert_eq!(&out[..n], &f[..]);
    assert_eq!(
        s.take_tx(&mut out, &mut false),
        None,
        "the refused fill sent nothing"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Deliver(u16),
    PollClient,
    Consume(u8),
    PollServer,
    RestartServer,
    RestartClient,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (60u16..1514).prop_map(Op::Deliver),
        3 => Just(Op::PollClient),
        3 => (1u8..6).prop_map(Op::Consume),
        3 => Just(Op::PollServer),
        1 => Just(Op::RestartServer),
        1 => Just(Op::RestartClient),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random deliveries, reads in place and restarts of either end: every frame read is
    /// one the server delivered, unaltered, at most once and in order; once everything
    /// is read and both sides settle, every receive buffer is posted and held once.
    #[test]
    fn in_place_reads_leak_no_buffer_and_alter_no_frame(ops in prop::collection::vec(op(), 1..200)) {
        let (mut l, mut c, mut s) = connect();
        let mut seq = 0u32;
        let mut sent = std::collections::HashMap::new();
        let mut last: Option<u32> = None;
        let read = |c: &mut NetClient, n: usize, sent: &std::collections::HashMap<u32, Vec<u8>>, last: &mut Option<u32>| -> Result<(), TestCaseError> {
            for _ in 0..n {
                let Some((off, len)) = c.rx_peek() else { break };
                let mut f = vec![0; len];
                prop_assert!(c.rx_region().copy_out(off, &mut f));
                let q = u32::from_le_bytes(f[14..18].try_into().unwrap());
                prop_assert_eq!(sent.get(&q), Some(&f), "frame {} altered", q);
                prop_assert!(last.is_none_or(|l| q > l), "frame {} after {:?}: repeated or reordered", q, last);
                *last = Some(q);
                c.rx_consume();
            }
            Ok(())
        };
        for o in ops {
            match o {
                Op::Deliver(n) => {
                    let f = frame(A, G, seq, n as usize);
                    sent.insert(seq, f.clone());
                    seq += 1;
                    s.deliver(&f);
                }
                Op::PollClient => { prop_assert_eq!(c.poll_in_place().fault, None); }
                Op::Consume(n) => read(&mut c, n as usize, &sent, &mut last)?,
                Op::PollServer => { prop_assert_eq!(s.poll().fault, None); }
                Op::RestartServer => { drop(s); s = l.server(); }
                Op::RestartClient => { drop(c); c = l.client(); }
            }
        }
        for _ in 0..8 {
            c.poll_in_place();
            read(&mut c, IDS, &sent, &mut last)?;
            s.poll();
        }
        prop_assert!(c.is_connected() && s.is_connected());
        prop_assert_eq!(c.rx_kept(), 0);
        prop_assert_eq!(c.rx_posted(), IDS as u32);
        prop_assert_eq!(s.rx_buffers(), IDS);
    }
}

/// The virtualiser's path: frames read in place from the driver's link go straight into
/// the client's link, or into its hold while it has no buffer, in order, unaltered; the
/// driver's buffers go back as they are consumed.
#[test]
fn frames_move_link_to_link_with_one_copy_and_wait_in_order() {
    let (_dl, mut virt, mut driver) = connect();
    let (_cl, mut client, mut server) = connect();
    let mut hold = axolotl_net::FrameQueue::<8>::new();
    let rx: Vec<_> = (0..IDS as u32 + 4)
        .map(|i| frame(A, G, i, 18 + 70 * i as usize % (MAX_FRAME - 18)))
        .collect();
    let mut got = Vec::new();
    let mut next = 0;
    for _ in 0..8 {
        while next < rx.len() && driver.deliver(&rx[next]) {
            next += 1;
        }
        virt.poll_in_place();
        while let Some((off, len)) = virt.rx_peek() {
            server.deliver_holding_from(virt.rx_region(), off, len, &mut hold);
            virt.rx_consume();
        }
        virt.poll_in_place();
        driver.poll();
        // The client reads only every other round: frames wait in the hold meanwhile.
        if got.len() < IDS {
            client.poll(|f| got.push(f.to_vec()));
        }
        server.poll_holding(&mut hold);
    }
    for _ in 0..8 {
        client.poll(|f| got.push(f.to_vec()));
        server.poll_holding(&mut hold);
    }
    assert_eq!(hold.dropped, 0);
    assert_eq!(got, rx, "every frame once, in order, byte-identical");
    assert_eq!(virt.rx_posted(), IDS as u32, "every driver buffer back");
}

/// The virtualiser's transmit path: a client's unicast frame for the wire goes from its
/// buffer straight into the driver's link, byte-identical; anything else (spoofed source,
/// a group, another client's MAC) is left to the copying path.
#[test]
fn unicast_frames_for_the_wire_cross_with_one_copy_and_nothing_else_does() {
    use axolotl_net::{Direct, Router};
    const B: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const REMOTE: [u8; 6] = [2, 0, 0, 0, 0, 9];
    let router = Router::new([A, B]).unwrap();
    let (_dl, mut virt, mut driver) = connect();
    let (_cl, mut client, mut server) = connect();
    let cases = [
        (frame(REMOTE, A, 1, 1514), Direct::Sent),
        (frame(REMOTE, B, 2, 60), Direct::Elsewhere),
        (frame([0xff; 6], A, 3, 60), Direct::Elsewhere),
        (frame(B, A, 4, 60), Direct::Elsewhere),
        (frame(REMOTE, A, 5, 18), Direct::Sent),
    ];
    for (f, want) in &cases {
        client.send(f).unwrap();
        server.poll();
        let mut got = None;
        let n = server
            .take_tx_with(&mut false, |src, off, len| {
                got = Some(router.to_wire_direct(0, src, off, len, &mut virt));
            })
            .unwrap();
        assert_eq!(n, f.len());
        assert_eq!(got, Some(*want), "frame {:?}", &f[..14]);
    }
    driver.poll();
    let mut out = [0u8; MAX_FRAME];
    for (f, want) in &cases {
        if *want == Direct::Sent {
            let n = driver.take_tx(&mut out, &mut false).unwrap();
            assert_eq!(&out[..n], &f[..]);
        }
    }
    assert_eq!(driver.take_tx(&mut out, &mut false), None);
    client.poll(|_| {});
    assert_eq!(client.tx_free(), IDS as u32, "every client buffer back");
}
