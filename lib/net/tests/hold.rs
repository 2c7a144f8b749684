//! A server end that loses no frame it accepted for its client across the client's restart
//! or while the client has no buffer posted (`FrameQueue`, `poll_holding`,
//! `deliver_holding`).
// A dropped end stands for a dead PD; the drop says so to the reader.
#![allow(clippy::drop_non_drop)]

mod common;

use axolotl_net::{FrameQueue, IDS};
use common::{Link, frame, settle};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const G: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn settle_holding(
    c: &mut axolotl_net::NetClient,
    s: &mut axolotl_net::NetServer,
    hold: &mut FrameQueue<16>,
    got: &mut Vec<Vec<u8>>,
) {
    for _ in 0..64 {
        let a = s.poll_holding(hold);
        let b = c.poll(|f| got.push(f.to_vec()));
        if !a.notify && !b.notify && !a.again && !b.again {
            return;
        }
    }
    panic!("no quiescence");
}

/// The virtualiser dies with frames the driver delivered into its buffers unread: its next
/// incarnation gets exactly those, in order, once; what it had read is not repeated.
#[test]
fn a_client_restart_loses_no_frame_it_never_read() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    let mut hold = FrameQueue::<16>::new();
    let mut got = Vec::new();
    settle_holding(&mut c, &mut s, &mut hold, &mut got);
    let frames: Vec<_> = (0..5)
        .map(|i| frame(A, G, i, 60 + 300 * i as usize))
        .collect();
    for f in &frames {
        assert!(s.deliver_holding(f, &mut hold));
    }
    // The client reads two of them, then dies.
    let _ = c.poll_limited(2, |f| got.push(f.to_vec()));
    assert_eq!(got, frames[..2]);
    drop(c);
    let mut c = l.client();
    let mut again = Vec::new();
    settle_holding(&mut c, &mut s, &mut hold, &mut again);
    assert_eq!(again, frames[2..], "the unread ones, in order, once");
    assert_eq!(s.stats().rx_unread_kept, 3);
    assert!(hold.is_empty());
    assert_eq!(c.rx_posted(), IDS as u32);
    // And the link goes on.
    assert!(s.deliver_holding(&frame(A, G, 9, 80), &mut hold));
    settle_holding(&mut c, &mut s, &mut hold, &mut again);
    assert_eq!(again.last(), Some(&frame(A, G, 9, 80)));
}

/// Without a hold queue (plain `poll`), the same restart loses those frames: the test
/// above can fail.
#[test]
fn without_a_hold_queue_the_unread_frames_are_lost_and_counted() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    let mut got = Vec::new();
    settle(&mut c, &mut s, &mut got);
    for i in 0..3 {
        assert!(s.deliver(&frame(A, G, i, 100)));
    }
    drop(c);
    let mut c = l.client();
    let mut again = Vec::new();
    settle(&mut c, &mut s, &mut again);
    assert!(again.is_empty());
    assert_eq!(s.stats().rx_unread_lost, 3);
}

/// Frames for a client with no buffer posted (a restarted virtualiser whose clients have
/// not re-attached yet) wait, in order, and go out as buffers arrive; a full queue drops.
#[test]
fn frames_wait_for_buffers_in_order_and_a_full_queue_drops() {
    let mut l = Link::new();
    let mut s = l.server();
    let mut hold = FrameQueue::<16>::new();
    let frames: Vec<_> = (0..18).map(|i| frame(A, G, i, 64)).collect();
    for f in &frames {
        s.deliver_holding(f, &mut hold);
    }
    assert_eq!(hold.len(), 16);
    assert_eq!(hold.dropped, 2);
    assert!(!s.can_deliver(&hold));
    let mut c = l.client();
    let mut got = Vec::new();
    // More than a link's worth: the rest waits for re-posted buffers.
    settle_holding(&mut c, &mut s, &mut hold, &mut got);
    assert_eq!(got, frames[..16]);
    assert!(hold.is_empty() && s.can_deliver(&hold));
    assert_eq!(s.stats().rx_no_buffer, 0);
}

/// A frame handed over while others wait goes behind them, even if a buffer is free.
#[test]
fn a_new_frame_never_overtakes_held_ones() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    let mut hold = FrameQueue::<16>::new();
    let mut got = Vec::new();
    settle_holding(&mut c, &mut s, &mut hold, &mut got);
    // IDS + 2 frames: two wait.
    for i in 0..IDS as u32 + 2 {
        s.deliver_holding(&frame(A, G, i, 64), &mut hold);
    }
    assert_eq!(hold.len(), 2);
    // The client reads some and posts their buffers again; the server takes them (a poll
    // that does not flush this hold queue), so a buffer is free while two frames wait.
    let _ = c.poll_limited(4, |f| got.push(f.to_vec()));
    let _ = s.poll();
    assert!(s.rx_ready() && hold.len() == 2);
    s.deliver_holding(&frame(A, G, 99, 64), &mut hold);
    settle_holding(&mut c, &mut s, &mut hold, &mut got);
    let want: Vec<_> = (0..IDS as u32 + 2)
        .chain([99])
        .map(|i| frame(A, G, i, 64))
        .collect();
    assert_eq!(got, want);
}

#[derive(Clone, Debug)]
enum Op {
    /// The server has frames for the client.
    Deliver(u8),
    /// The client reads up to this many.
    Read(u8),
    ServerPoll,
    /// The client dies (mid-anything) and a new one starts.
    RestartClient,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Deliver),
        4 => (0u8..8).prop_map(Op::Read),
        2 => Just(Op::ServerPoll),
        1 => Just(Op::RestartClient),
    ]
}

proptest::proptest! {
    /// Across any sequence of client restarts, every frame the server accepted reaches
    /// exactly one client incarnation, in order, never twice; the only losses are the ones
    /// counted (a full hold queue).
    #[test]
    fn client_restarts_lose_and_repeat_no_accepted_frame(
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let mut l = Link::new();
        let mut c = l.client();
        let mut s = l.server();
        let mut hold = FrameQueue::<16>::new();
        let mut got: Vec<u32> = Vec::new();
        let mut sent = 0u32;
        let seq = |f: &[u8]| u32::from_le_bytes(f[14..18].try_into().unwrap());
        for op in &ops {
            match op {
                Op::Deliver(n) => {
                    for _ in 0..*n {
                        s.deliver_holding(&frame(A, G, sent, 64 + sent as usize % 900), &mut hold);
                        sent += 1;
                    }
                }
                Op::Read(n) => {
                    let _ = c.poll_limited(usize::from(*n), |f| got.push(seq(f)));
                }
                Op::ServerPoll => {
                    let _ = s.poll_holding(&mut hold);
                }
                Op::RestartClient => {
                    drop(c);
                    c = l.client();
                }
            }
        }
        for _ in 0..256 {
            let a = s.poll_holding(&mut hold);
            let b = c.poll(|f| got.push(seq(f)));
            if !a.notify && !b.notify && !a.again && !b.again && hold.is_empty() {
                break;
            }
        }
        proptest::prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, once: {:?}", got);
        // A full hold queue counts both the new frames it refused and the unread ones it
        // had no room for (those also in `rx_unread_lost`).
        let lost = hold.dropped;
        proptest::prop_assert!(s.stats().rx_unread_lost <= lost);
        proptest::prop_assert_eq!(got.len() as u64 + lost, u64::from(sent), "got {:?}", got);
    }
}
