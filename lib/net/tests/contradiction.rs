//! A PD whose own records its ring contradicts (docs/resilience.md, the virtualiser's
//! campaign id 118): the contradiction is reported, sticky, for the PD to fail-stop on;
//! never ignored, never blamed on the peer.

mod common;

use axolotl_net::{Contradiction, Dir, IDS, MAX_FRAME, SendError};
use axolotl_ring::{Error, Progress};
use common::{Link, frame, settle};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const G: [u8; 6] = [2, 0, 0, 0, 0, 2];

#[test]
fn a_receive_buffer_the_ring_holds_but_the_records_forgot_is_a_contradiction() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    assert_eq!(c.rx_posted(), IDS as u32);
    // Buffer 3 is with the server, but our records lose it (a flipped bit, or a submit
    // whose success was misread): the next poll posts it again and lib/ring refuses.
    c.inject_forget(Dir::Rx, 3);
    let act = c.poll(|_| {});
    let want = Contradiction::Refused {
        dir: Dir::Rx,
        id: 3,
        error: Error::IdInUse { id: 3 },
    };
    assert_eq!(act.contradiction, Some(want));
    assert_eq!(act.fault, None, "nothing the peer did");
    // Sticky: the PD's records are not to be trusted from now on.
    assert_eq!(c.poll(|_| {}).contradiction, Some(want));
    assert_eq!(c.contradiction(), Some(want));
    assert_eq!(c.send(&frame(G, A, 1, 60)), Err(SendError::NotConnected));
}

#[test]
fn a_completion_for_a_buffer_the_records_do_not_hold_out_is_a_contradiction() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    c.send(&frame(G, A, 1, 100)).unwrap();
    c.inject_forget(Dir::Tx, 0);
    s.poll();
    let mut out = [0u8; MAX_FRAME];
    let mut notify = false;
    assert!(s.take_tx(&mut out, &mut notify).is_some());
    let act = c.poll(|_| {});
    assert_eq!(
        act.contradiction,
        Some(Contradiction::Unexpected {
            dir: Dir::Tx,
            id: 0
        })
    );
    assert_eq!(s.contradiction(), None, "the server is sound");
}

#[test]
fn a_transmit_id_the_ring_holds_but_the_records_forgot_is_a_contradiction() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    c.send(&frame(G, A, 1, 100)).unwrap();
    c.inject_forget(Dir::Tx, 0);
    assert_eq!(c.send(&frame(G, A, 2, 100)), Err(SendError::NotConnected));
    assert_eq!(
        c.contradiction(),
        Some(Contradiction::Refused {
            dir: Dir::Tx,
            id: 0,
            error: Error::IdInUse { id: 0 },
        })
    );
}

#[test]
fn a_response_the_ring_refuses_is_the_servers_contradiction() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    s.inject_pending_tx(5);
    let mut out = [0u8; MAX_FRAME];
    let mut notify = false;
    assert_eq!(s.take_tx(&mut out, &mut notify), None);
    let want = Contradiction::Refused {
        dir: Dir::Tx,
        id: 5,
        error: Error::NotInService { id: 5 },
    };
    assert_eq!(s.contradiction(), Some(want));
    assert_eq!(s.poll().contradiction, Some(want));
    assert_eq!(c.poll(|_| {}).contradiction, None, "the client is sound");
}

/// The progress deadline the virtualiser and the native clients keep on their transmit
/// connection (fix (b) of docs/resilience.md): frames handed over that never come back.
#[test]
fn frames_the_server_never_takes_are_overdue_and_a_quiet_link_is_not() {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    let mut d = axolotl_ring::Deadline::new(1_000_000);
    // Quiet: every receive buffer is with the server, nothing sent. Never overdue.
    for t in 0..10 {
        c.poll(|_| {});
        let st = c.stats();
        assert_eq!(c.tx_in_flight(), 0);
        assert_eq!(
            d.check(t * 500_000, c.tx_in_flight(), st.tx_returned),
            Progress::Fine
        );
    }
    // Served: sent and taken, back at once.
    c.send(&frame(G, A, 1, 100)).unwrap();
    settle_tx(&mut c, &mut s);
    assert_eq!(c.tx_in_flight(), 0);
    assert_eq!(c.stats().tx_returned, 1);
    // Stalled: the server stops taking frames.
    c.send(&frame(G, A, 2, 100)).unwrap();
    assert_eq!(c.tx_in_flight(), 1);
    let st = c.stats();
    assert_eq!(
        d.check(10_000_000, c.tx_in_flight(), st.tx_returned),
        Progress::Fine
    );
    assert_eq!(
        d.check(11_000_000, c.tx_in_flight(), st.tx_returned),
        Progress::Overdue {
            stalled_us: 1_000_000
        }
    );
}

fn settle_tx(c: &mut axolotl_net::NetClient, s: &mut axolotl_net::NetServer) {
    let mut out = [0u8; MAX_FRAME];
    let mut notify = false;
    s.poll();
    while s.take_tx(&mut out, &mut notify).is_some() {}
    c.poll(|_| {});
}
