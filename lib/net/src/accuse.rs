//! When a PD reports the peer of a link it finds corrupt: once when the fault appears, and
//! once more if the link is still corrupt after the accused was restarted.
//!
//! A report says "the peer broke our ring". The monitor restarts the peer, whose new
//! incarnation resynchronises the link. If the reporter still finds the link corrupt after
//! that, the likelier culprit is the reporter itself: its own state (a flipped word in its
//! records, its stack) makes a sound ring look corrupt, and a fresh peer changes nothing
//! (the virtualiser's campaign id 242, docs/resilience.md). Reporting once and falling
//! silent left that link dead for good. Reporting again, against the peer's new
//! generation, lets the monitor see the pattern: a second accusation by the same reporter
//! against a peer it just had restarted discredits the reporter (monitor-core
//! `Verdict::Discredit`), whose own restart then repairs the link.
//!
//! A healthy reporter must not accuse twice: right after the accused's restart the root
//! task's table already shows the new generation, but the new incarnation has not yet
//! published it on the ring, so the link still reads as corrupt for a moment. Only a link
//! still corrupt [`Accuser::GRACE_US`] after the new generation appeared counts.

/// One link's accusations (the reporter keeps one per peer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Accuser {
    /// The peer generation last accused while the link has stayed corrupt.
    accused: Option<u32>,
    /// A newer peer generation first seen with the link still corrupt, and when.
    pending: Option<(u32, u64)>,
    /// Since when [`Accuser::check_link`] has been waiting for a restarted peer's first
    /// frame.
    awaiting_since: Option<u64>,
}

/// What [`Accuser::check`] says to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accusation {
    /// The link just went corrupt: report the peer's `generation`.
    First { generation: u32 },
    /// The link is still corrupt after the accused's restart: report the new `generation`
    /// (which, coming from the same reporter, the monitor holds against the reporter).
    Again { generation: u32 },
}

impl Accuser {
    /// How long a restarted peer has to resynchronise the link before its still being
    /// corrupt counts against the reporter: a new incarnation publishes its generation in
    /// its first moments, before its notification; far above that under a loaded QEMU.
    pub const GRACE_US: u64 = 500_000;

    pub const fn new() -> Self {
        Accuser {
            accused: None,
            pending: None,
            awaiting_since: None,
        }
    }

    /// How long [`Accuser::check_link`] waits for a restarted peer's first frame before it
    /// takes the link as repaired: the monitor's window for holding a second accusation
    /// against the reporter (monitor-core `FALSE_REPORT_WINDOW_MS`), past which it would
    /// believe one anyway.
    pub const AWAIT_US: u64 = 5_000_000;

    /// [`Accuser::check`] for a link whose standing fault may be damaged frames (lib/net
    /// `check`), which clears only when a frame passes. `awaiting`: the accused restarted
    /// and no frame of its new incarnation was judged yet (`NetServer::awaiting_frame`,
    /// `NetClient::awaiting_frame`). Then, with nothing else wrong, nothing is decided and
    /// nothing forgotten: a new incarnation that sends damaged frames too is accused again
    /// (evidence against the reporter, whose own check may be what is broken), and one that
    /// is merely quiet is not (the plain standing fault would have counted its silence
    /// against the reporter). Waiting ends after [`Accuser::AWAIT_US`]: the link is taken
    /// as repaired.
    pub fn check_link(
        &mut self,
        faulty: bool,
        awaiting: bool,
        peer: u32,
        now_us: u64,
    ) -> Option<Accusation> {
        if faulty || !awaiting {
            self.awaiting_since = None;
            return self.check(faulty, peer, now_us);
        }
        let since = *self.awaiting_since.get_or_insert(now_us);
        if now_us.saturating_sub(since) >= Self::AWAIT_US {
            self.accused = None;
            self.pending = None;
        }
        None
    }

    /// At `now_us`, with the link's standing fault (`faulty`) and the peer's generation as
    /// the root task publishes it (`peer`): whether to report, and which generation.
    pub fn check(&mut self, faulty: bool, peer: u32, now_us: u64) -> Option<Accusation> {
        if !faulty {
            self.accused = None;
            self.pending = None;
            return None;
        }
        match self.accused {
            None => {
                self.accused = Some(peer);
                self.pending = None;
                Some(Accusation::First { generation: peer })
            }
            Some(a) if a == peer => None,
            Some(_) => match self.pending {
                Some((g, since)) if g == peer => {
                    if now_us.saturating_sub(since) < Self::GRACE_US {
                        return None;
                    }
                    self.accused = Some(peer);
                    self.pending = None;
                    Some(Accusation::Again { generation: peer })
                }
                _ => {
                    self.pending = Some((peer, now_us));
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Accusation, Accuser};

    const MS: u64 = 1000;

    #[test]
    fn a_fault_is_reported_once_per_peer_generation() {
        let mut a = Accuser::new();
        assert_eq!(a.check(false, 3, 0), None);
        assert_eq!(
            a.check(true, 3, MS),
            Some(Accusation::First { generation: 3 })
        );
        for t in 2..100 {
            assert_eq!(a.check(true, 3, t * 100 * MS), None);
        }
    }

    #[test]
    fn a_link_still_corrupt_after_the_restart_is_reported_again_after_the_grace() {
        let mut a = Accuser::new();
        assert!(matches!(
            a.check(true, 3, 0),
            Some(Accusation::First { .. })
        ));
        // The peer restarted (generation 4): not yet, it may not have published.
        assert_eq!(a.check(true, 4, 10 * MS), None);
        assert_eq!(a.check(true, 4, 400 * MS), None);
        assert_eq!(
            a.check(true, 4, 510 * MS),
            Some(Accusation::Again { generation: 4 })
        );
        // Once: the monitor's answer (the reporter restarted) gets its time.
        assert_eq!(a.check(true, 4, 2000 * MS), None);
    }

    #[test]
    fn damaged_frames_from_the_restarted_peer_are_reported_again_but_its_silence_is_not() {
        let mut a = Accuser::new();
        assert_eq!(
            a.check_link(true, false, 3, 0),
            Some(Accusation::First { generation: 3 })
        );
        // Restarted (generation 4), no frame judged yet: quiet for 4 s.
        for t in 1..40 {
            assert_eq!(a.check_link(false, true, 4, t * 100 * MS), None);
        }
        // Its frames fail too: the reporter's own check is the likelier culprit.
        assert_eq!(a.check_link(true, false, 4, 4100 * MS), None);
        assert_eq!(
            a.check_link(true, false, 4, 4700 * MS),
            Some(Accusation::Again { generation: 4 })
        );
        // The plain standing fault, for comparison, accused the quiet peer.
        let mut b = Accuser::new();
        assert!(b.check(true, 3, 0).is_some());
        assert_eq!(b.check(true, 4, 100 * MS), None);
        assert_eq!(
            b.check(true, 4, 700 * MS),
            Some(Accusation::Again { generation: 4 })
        );
    }

    #[test]
    fn a_peer_quiet_past_the_wait_counts_as_repaired() {
        let mut a = Accuser::new();
        assert!(a.check_link(true, false, 3, 0).is_some());
        assert_eq!(a.check_link(false, true, 4, 100 * MS), None);
        assert_eq!(a.check_link(false, true, 4, 5200 * MS), None);
        // A fault long after is a new first accusation, not evidence against anyone.
        assert_eq!(
            a.check_link(true, false, 4, 6000 * MS),
            Some(Accusation::First { generation: 4 })
        );
    }

    #[test]
    fn a_link_the_restart_repaired_is_not_reported_again() {
        let mut a = Accuser::new();
        assert!(a.check(true, 3, 0).is_some());
        assert_eq!(a.check(true, 4, 10 * MS), None);
        // Resynchronised with the new incarnation.
        assert_eq!(a.check(false, 4, 20 * MS), None);
        assert_eq!(a.check(false, 4, 2000 * MS), None);
        // A new fault later is a new first accusation, not evidence against anyone.
        assert_eq!(
            a.check(true, 4, 5000 * MS),
            Some(Accusation::First { generation: 4 })
        );
    }
}
