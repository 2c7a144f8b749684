//! The frame check end to end over links (lib/net `check`): a frame damaged in the
//! verifier's own copy is its own fault (fail-stop), one damaged before it reached the
//! verifier is the peer's (dropped, reported); the net driver's campaign ids 471, 485,
//! 550, 664 and the virtualiser's 195/699 (docs/resilience.md) are of these kinds.

mod common;

use axolotl_net::check::{self, CHECK_AT, PieceSummer};
use axolotl_net::{
    BUF_SIZE, Contradiction, Dir, Direct, IDS, MAX_FRAME, NetClient, NetServer, Router, Verdict,
};
use axolotl_ring::{Corruption, DataRegion};
use common::{Link, frame, settle};
use proptest::prelude::*;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const G: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Offset of transmit buffer `id` in the link's data region.
fn tx_buf(id: usize) -> usize {
    IDS * BUF_SIZE + id * BUF_SIZE
}

/// Flips bit `bit` of the frame in the buffer at `buf` of `d` (a copy that went wrong
/// before the verifier, in memory the verifier reads).
fn flip(d: &DataRegion, buf: usize, bit: usize) {
    let at = buf + bit / 8;
    let b = d.read_u8(at).unwrap();
    assert!(d.write_u8(at, b ^ 1 << (bit % 8)));
}

/// The driver's transmit path: takes the next frame into a "DMA buffer" with
/// verification; what the device would have been handed, if anything.
fn take(s: &mut NetServer) -> Option<Vec<u8>> {
    let mut dma = [0u8; MAX_FRAME];
    let mut sent = None;
    s.poll();
    s.take_tx_verified(&mut false, |len, fill| {
        if fill(&mut dma[..len]) {
            sent = Some(dma[..len].to_vec());
        }
    })?;
    sent
}

fn connected() -> (Link, NetClient, NetServer) {
    let mut l = Link::new();
    let mut c = l.client();
    let mut s = l.server();
    settle(&mut c, &mut s, &mut Vec::new());
    assert!(c.is_connected() && s.is_connected());
    (l, c, s)
}

#[test]
fn a_good_frame_goes_on_unchanged() {
    let (_l, mut c, mut s) = connected();
    let f = frame(G, A, 1, 333);
    c.send(&f).unwrap();
    assert_eq!(take(&mut s), Some(f));
    assert_eq!((s.fault(), s.contradiction()), (None, None));
}

/// The VMM's way (`send_with`: its own fill, straight from guest RAM): the check is
/// computed over the buffer after the fill, and the frame passes; damage after it does not.
#[test]
fn a_frame_filled_in_place_carries_its_check() {
    let (l, mut c, mut s) = connected();
    let f = frame(G, A, 3, 777);
    c.send_with(f.len(), |r, at| r.copy_in(at, &f)).unwrap();
    assert_eq!(take(&mut s), Some(f.clone()));
    c.poll(|_| {});
    c.send_with(f.len(), |r, at| r.copy_in(at, &f)).unwrap();
    flip(&l.data_view(), tx_buf(0), 8 * 700 + 1);
    assert_eq!(take(&mut s), None);
    assert!(s.fault().is_some());
}

#[test]
fn a_frame_damaged_in_the_drivers_own_copy_is_its_own_fault() {
    let (_l, mut c, mut s) = connected();
    c.send(&frame(G, A, 1, 200)).unwrap();
    s.inject_copy_flip(8 * 77 + 3);
    assert_eq!(take(&mut s), None, "never handed to the device");
    assert_eq!(
        s.contradiction(),
        Some(Contradiction::Copy {
            dir: Dir::Tx,
            id: 0
        }),
        "fail-stop"
    );
    assert_eq!(s.fault(), None, "the client is not blamed");
    assert_eq!(s.stats().tx_check_failed, 0);
}

#[test]
fn a_frame_damaged_before_the_driver_is_the_peers_and_is_dropped() {
    let (l, mut c, mut s) = connected();
    c.send(&frame(G, A, 1, 200)).unwrap();
    // The virtualiser's copy into its buffer went wrong (ids 195, 699).
    flip(&l.data_view(), tx_buf(0), 8 * 150 + 6);
    assert_eq!(take(&mut s), None, "dropped");
    assert_eq!(s.contradiction(), None, "the driver is sound");
    assert_eq!(
        s.fault(),
        Some((Dir::Tx, Corruption::DataCheck { id: 0 })),
        "the virtualiser is reported"
    );
    assert_eq!(s.stats().tx_check_failed, 1);
    // Standing until a frame passes (what the Accuser watches across the peer's restart).
    s.poll();
    assert!(s.fault().is_some());
    let f = frame(G, A, 2, 90);
    c.poll(|_| {});
    c.send(&f).unwrap();
    assert_eq!(take(&mut s), Some(f));
    assert_eq!(s.fault(), None);
}

/// After the client that sent a damaged frame restarts, the standing fault is its old
/// incarnation's: the link awaits the new one's first frame (for `Accuser::check_link`).
#[test]
fn a_restarted_client_is_awaited_not_held_to_its_predecessors_frames() {
    let (mut l, mut c, mut s) = connected();
    c.send(&frame(G, A, 1, 200)).unwrap();
    flip(&l.data_view(), tx_buf(0), 5);
    assert_eq!(take(&mut s), None);
    assert!(s.fault().is_some() && !s.awaiting_frame());
    let _ = c;
    let mut c = l.client();
    settle(&mut c, &mut s, &mut Vec::new());
    assert_eq!(s.fault(), None);
    assert!(s.awaiting_frame());
    for (seq, damage) in [(2, true), (3, false)] {
        let f = frame(G, A, seq, 100);
        c.send(&f).unwrap();
        if damage {
            flip(&l.data_view(), tx_buf(0), 9);
        }
        let got = take(&mut s);
        assert!(!s.awaiting_frame(), "judged");
        assert_eq!(s.fault().is_some(), damage);
        assert_eq!(got, (!damage).then_some(f));
        c.poll(|_| {});
    }
}

#[test]
fn a_frame_without_its_check_is_refused() {
    let (l, mut c, mut s) = connected();
    c.send(&frame(G, A, 1, 64)).unwrap();
    let d = l.data_view();
    assert!(d.write_u64(tx_buf(0) + CHECK_AT, 0));
    assert!(d.write_u64(tx_buf(0) + CHECK_AT + 8, 0));
    assert_eq!(take(&mut s), None);
    assert!(matches!(
        s.fault(),
        Some((Dir::Tx, Corruption::DataCheck { .. }))
    ));
}

#[test]
fn a_received_frame_damaged_in_the_clients_copy_is_its_own_fault() {
    let (_l, mut c, mut s) = connected();
    assert!(s.deliver(&frame(A, G, 1, 400)));
    c.inject_copy_flip(8 * 399 + 7);
    let mut got = 0;
    let act = c.poll(|_| got += 1);
    assert_eq!(got, 0);
    assert_eq!(
        act.contradiction,
        Some(Contradiction::Copy {
            dir: Dir::Rx,
            id: 0
        })
    );
    assert_eq!(act.fault, None);
}

#[test]
fn a_received_frame_damaged_before_the_client_is_the_servers() {
    let (l, mut c, mut s) = connected();
    assert!(s.deliver(&frame(A, G, 1, 400)));
    // Buffer 0 of the receive half: damaged after the server's check went with it.
    flip(&l.data_view(), 0, 9);
    let mut got = Vec::new();
    let act = c.poll(|f| got.push(f.to_vec()));
    assert!(got.is_empty(), "dropped");
    assert_eq!(act.fault, Some((Dir::Rx, Corruption::DataCheck { id: 0 })));
    assert_eq!(act.contradiction, None);
    assert_eq!(c.stats().rx_check_failed, 1);
    assert_eq!(c.rx_posted(), IDS as u32, "the buffer is posted again");
    let f = frame(A, G, 2, 60);
    assert!(s.deliver(&f));
    settle(&mut c, &mut s, &mut got);
    assert_eq!(got, vec![f]);
    assert_eq!(c.fault(), None, "a good frame ends the standing fault");
}

#[test]
fn a_client_verifying_in_place_drops_a_damaged_frame() {
    let (l, mut c, mut s) = connected();
    c.set_verify_in_place(true);
    assert!(s.deliver(&frame(A, G, 1, 100)));
    assert!(s.deliver(&frame(A, G, 2, 100)));
    flip(&l.data_view(), 0, 100);
    let act = c.poll_in_place();
    assert_eq!(act.fault, Some((Dir::Rx, Corruption::DataCheck { id: 0 })));
    assert_eq!(c.rx_kept(), 1, "only the good one is kept");
    let (off, len) = c.rx_peek().unwrap();
    let mut out = vec![0u8; len];
    assert!(c.rx_region().copy_out(off, &mut out));
    assert_eq!(out, frame(A, G, 2, 100));
}

/// The caller's own verifying copy of a frame left in place (the VMM's into guest RAM,
/// `PieceSummer`), its verdict acted on by the client.
fn judge_own_copy(c: &mut NetClient) -> (Verdict, Option<(Dir, Corruption)>) {
    let (off, len) = c.rx_peek().unwrap();
    let mut out = vec![0u8; len];
    let mut sum = PieceSummer::new(len);
    let r = c.rx_region();
    // SAFETY: `len` bytes of `out`, outside the region.
    assert!(unsafe { sum.copy_out_raw(r, off, out.as_mut_ptr(), len) });
    let v = sum.verdict(r, off, check::read(r, off).unwrap());
    (v, c.rx_judge(v))
}

#[test]
fn a_client_judging_its_own_copies_reports_a_damaged_frame_once() {
    let (l, mut c, mut s) = connected();
    for seq in 1..=4 {
        assert!(s.deliver(&frame(A, G, seq, 100)));
    }
    // Frames 1 and 2 (buffers 0 and 1) damaged after the server's check went with them.
    flip(&l.data_view(), 0, 100);
    flip(&l.data_view(), BUF_SIZE, 7);
    let act = c.poll_in_place();
    assert_eq!(act.fault, None, "left in place unverified");
    assert_eq!(c.rx_kept(), 4);
    let fault = Some((Dir::Rx, Corruption::DataCheck { id: 0 }));
    assert_eq!(judge_own_copy(&mut c), (Verdict::Source, fault));
    c.rx_consume();
    assert_eq!(
        judge_own_copy(&mut c),
        (Verdict::Source, None),
        "reported once a run"
    );
    c.rx_consume();
    assert_eq!(c.stats().rx_check_failed, 2);
    assert!(c.fault().is_some(), "standing until a frame passes");
    assert_eq!(judge_own_copy(&mut c), (Verdict::Good, None));
    c.rx_consume();
    assert_eq!(c.fault(), None);
    assert_eq!(c.contradiction(), None);
    // The caller's own copy found wrong: fail-stop, the server not blamed.
    assert_eq!(c.rx_judge(Verdict::OwnCopy), None);
    assert!(matches!(
        c.contradiction(),
        Some(Contradiction::Copy { dir: Dir::Rx, .. })
    ));
    assert_eq!(c.fault(), None);
    assert_eq!(c.poll_in_place().contradiction, c.contradiction(), "sticky");
}

/// Frames held by a server (its client re-attaching) keep their producer's check: a
/// frame forwarded from another link arrives verified.
#[test]
fn held_and_forwarded_frames_keep_their_producers_check() {
    let mut up = Link::new();
    let (mut uc, mut us) = (up.client(), up.server());
    settle(&mut uc, &mut us, &mut Vec::new());
    let mut down = Link::new();
    let mut ds = down.server();
    // The virtualiser: the driver's link's client, in place; a client's server.
    uc.poll_in_place();
    let f = frame(A, G, 7, 500);
    assert!(us.deliver(&f));
    uc.poll_in_place();
    let (off, len) = uc.rx_peek().unwrap();
    let mut hold = axolotl_net::FrameQueue::<4>::new();
    // Nobody attached downstream yet: held, with the check.
    ds.poll_holding(&mut hold);
    ds.deliver_holding_from(uc.rx_region(), off, len, &mut hold);
    assert_eq!(hold.len(), 1);
    uc.rx_consume();
    let mut dc = down.client();
    let mut got = Vec::new();
    for _ in 0..16 {
        ds.poll_holding(&mut hold);
        dc.poll(|x| got.push(x.to_vec()));
    }
    assert_eq!(got, vec![f]);
    assert_eq!(dc.fault(), None);
}

/// The virtualiser's transmit path: a client's frame forwarded into the driver's link
/// with its check unchanged passes the driver; damage in the forwarding copy does not.
#[test]
fn the_virtualisers_forwarding_keeps_the_check_and_its_damage_is_caught() {
    let mut cl = Link::new();
    let (mut client, mut vs) = (cl.client(), cl.server());
    settle(&mut client, &mut vs, &mut Vec::new());
    let mut dl = Link::new();
    let (mut vc, mut driver) = (dl.client(), dl.server());
    settle(&mut vc, &mut driver, &mut Vec::new());
    let router = Router::new([A, [2, 0, 0, 0, 0, 9]]).unwrap();
    for (seq, damage) in [(1, false), (2, true)] {
        let f = frame(G, A, seq, 300);
        client.send(&f).unwrap();
        vs.poll();
        let mut r = None;
        vs.take_tx_with(&mut false, |src, offset, len| {
            r = Some(router.to_wire_direct(0, src, offset, len, &mut vc));
        });
        assert_eq!(r, Some(Direct::Sent));
        // (Buffer 0 each time: its completion came back before the next send.)
        if damage {
            flip(&dl.data_view(), tx_buf(0), 8 * 200);
        }
        let got = take(&mut driver);
        if damage {
            assert_eq!(got, None);
            assert!(matches!(
                driver.fault(),
                Some((Dir::Tx, Corruption::DataCheck { .. }))
            ));
        } else {
            assert_eq!(got, Some(f));
        }
        vc.poll(|_| {});
        client.poll(|_| {});
    }
}

proptest! {
    /// Any single bit flipped in a frame on its way (in the buffer the driver copies from)
    /// is caught and blamed on the peer; any flipped in the driver's own copy is caught
    /// and is the driver's.
    #[test]
    fn any_single_bit_flip_in_transit_is_caught(
        len in 18..=MAX_FRAME,
        seq in any::<u32>(),
        at in any::<prop::sample::Index>(),
        own in any::<bool>(),
    ) {
        let (l, mut c, mut s) = connected();
        let bit = at.index(8 * len);
        c.send(&frame(G, A, seq, len)).unwrap();
        if own {
            s.inject_copy_flip(bit);
        } else {
            flip(&l.data_view(), tx_buf(0), bit);
        }
        prop_assert_eq!(take(&mut s), None);
        if own {
            prop_assert!(s.contradiction().is_some());
            prop_assert_eq!(s.fault(), None);
        } else {
            prop_assert_eq!(s.contradiction(), None);
            prop_assert!(s.fault().is_some());
        }
    }
}
