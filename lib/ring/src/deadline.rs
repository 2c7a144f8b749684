//! The client's end-to-end check on a connection: requests in flight that stop completing.
//!
//! The ring protocol catches a peer that breaks its rules, the monitor's heartbeat a peer that
//! stops running. Neither sees a server that runs, answers heartbeats and obeys the ring's
//! rules, but no longer serves one connection: a notification lost, a connection it believes
//! faulty, a bit flipped in its own state. Only the client can see that, by the one thing it
//! waits for: completions. [`Deadline`] is checked at moments the client gets anyway (the
//! monitor's heartbeat pings, `lib/pd`'s `Handler::heartbeat`); it needs no timer of its own.
//!
//! A connection that never becomes `Connected` has nothing in flight, yet its client waits
//! all the same: for the server to acknowledge it. [`Deadline::check_link`] counts that wait
//! as a request in flight (the network virtualiser's campaign, id 541: a bit flipped on its
//! stack during the handshakes left every link short of `Connected`; every PD answered its
//! heartbeats, not one frame passed, and nothing was detected).

/// Whether a connection's requests still complete, as the client sees it.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    limit_us: u64,
    /// While requests are in flight: the completion count and when it last moved (or when
    /// they were first seen in flight).
    last: Option<(u64, u64)>,
}

/// What [`Deadline::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing in flight, or something completed since the last check within the limit.
    Fine,
    /// Requests in flight and none completed for `stalled_us` ≥ the limit: the server is no
    /// longer serving this connection. Reported once; the clock starts again.
    Overdue { stalled_us: u64 },
}

impl Deadline {
    /// A connection whose requests must complete within `limit_us` of each other (of the
    /// last completion, or of the first check that saw them in flight).
    pub const fn new(limit_us: u64) -> Self {
        Deadline {
            limit_us,
            last: None,
        }
    }

    /// The server was restarted (a new incarnation took the connection over): the wait
    /// starts again at the next check that sees requests in flight. What the old one let
    /// stall is not the new one's to answer for: without this, a client whose requests sat
    /// unanswered before the restart (the reason for it) accuses the new incarnation at its
    /// first check, before it could complete anything (the serial campaign's id 644).
    pub fn restart(&mut self) {
        self.last = None;
    }

    /// [`Deadline::check`] for a connection that may be short of `Connected`: a client
    /// whose server published itself but has not acknowledged it (or was found corrupt and
    /// is not restarted yet) waits for that as for a completion, so a server that runs but
    /// never finishes attaching this connection is reported as one that stopped
    /// completing. A server that has not published itself is still starting (the monitor's
    /// heartbeat watches that): nothing is waited for. Any change of state is progress:
    /// the wait starts again. A client whose own state keeps it from seeing the server's
    /// acknowledgement accuses the server once per limit, which the monitor's repeated
    /// accuser rule is for.
    pub fn check_link(
        &mut self,
        now_us: u64,
        link: crate::LinkState,
        in_flight: usize,
        completed: u64,
    ) -> Progress {
        use crate::LinkState::*;
        let waiting = match link {
            Connected => in_flight,
            Waiting => in_flight.max(1),
            Absent => 0,
        };
        let state = match link {
            Absent => 0,
            Waiting => 1,
            Connected => 2,
        };
        self.check(
            now_us,
            waiting,
            completed.wrapping_mul(3).wrapping_add(state),
        )
    }

    /// At `now_us`, with `in_flight` requests outstanding and `completed` completions so
    /// far (any counter that only grows while the connection serves). A clock that goes
    /// back (it should not) restarts the wait rather than firing.
    pub fn check(&mut self, now_us: u64, in_flight: usize, completed: u64) -> Progress {
        match self.last {
            Some((seen, since)) if in_flight > 0 && seen == completed && now_us >= since => {
                let stalled_us = now_us - since;
                if stalled_us < self.limit_us {
                    return Progress::Fine;
                }
                // Once per stall: the report's effect (a restart, a resync) gets a whole
                // limit to show before the next.
                self.last = Some((completed, now_us));
                Progress::Overdue { stalled_us }
            }
            // Idle: nothing to wait for; the wait starts when requests are next in flight.
            _ if in_flight == 0 => {
                self.last = None;
                Progress::Fine
            }
            _ => {
                self.last = Some((completed, now_us));
                Progress::Fine
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Deadline, Progress};
    use crate::LinkState::{Absent, Connected, Waiting};

    const MS: u64 = 1000;

    #[test]
    fn a_restarted_server_gets_a_whole_limit() {
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check(0, 8, 25), Progress::Fine);
        // Stalled 900 ms: the old server is reported and restarted; the client resubmits.
        d.restart();
        assert_eq!(d.check(900 * MS, 8, 25), Progress::Fine);
        assert_eq!(d.check(1300 * MS, 8, 25), Progress::Fine);
        assert_eq!(
            d.check(1400 * MS, 8, 25),
            Progress::Overdue {
                stalled_us: 500 * MS
            },
            "the new incarnation's own stall still counts"
        );
        // Without the restart, the first check after it would have fired.
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check(0, 8, 25), Progress::Fine);
        assert!(matches!(d.check(900 * MS, 8, 25), Progress::Overdue { .. }));
    }

    /// A link the server never acknowledges is a stall like requests that never complete;
    /// connecting, or reconnecting after a restart, restarts the wait; an idle connected
    /// link never fires, nor one whose server has not started.
    #[test]
    fn a_link_that_never_connects_fires() {
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check_link(0, Waiting, 0, 0), Progress::Fine);
        assert_eq!(d.check_link(400 * MS, Waiting, 0, 0), Progress::Fine);
        assert_eq!(
            d.check_link(500 * MS, Waiting, 0, 0),
            Progress::Overdue {
                stalled_us: 500 * MS
            }
        );
        // Without the link's state, nothing in flight is idle: no report, ever.
        let mut plain = Deadline::new(500 * MS);
        for t in 0..10 {
            assert_eq!(plain.check(t * 500 * MS, 0, 0), Progress::Fine);
        }
        // A server that has not published itself is starting, not stalled.
        let mut d = Deadline::new(500 * MS);
        for t in 0..10 {
            assert_eq!(d.check_link(t * 500 * MS, Absent, 0, 0), Progress::Fine);
        }
        // ... and its wait starts when it has.
        assert_eq!(d.check_link(5000 * MS, Waiting, 0, 0), Progress::Fine);
        assert!(matches!(
            d.check_link(5500 * MS, Waiting, 0, 0),
            Progress::Overdue { .. }
        ));

        // Waiting for 400 ms, then connected with requests in flight: their wait starts
        // at the connection, not at the first check.
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check_link(0, Waiting, 0, 0), Progress::Fine);
        assert_eq!(d.check_link(400 * MS, Connected, 3, 0), Progress::Fine);
        assert_eq!(d.check_link(800 * MS, Connected, 3, 0), Progress::Fine);
        assert!(matches!(
            d.check_link(900 * MS, Connected, 3, 0),
            Progress::Overdue { .. }
        ));
        // Connected and idle: never.
        let mut d = Deadline::new(500 * MS);
        for t in 0..10 {
            assert_eq!(d.check_link(t * 500 * MS, Connected, 0, 9), Progress::Fine);
        }
        // Connected with a stall, then the server restarts (a resync: progress), and its
        // successor never attaches: reported a limit later.
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check_link(0, Connected, 2, 5), Progress::Fine);
        assert_eq!(d.check_link(300 * MS, Waiting, 2, 5), Progress::Fine);
        assert_eq!(d.check_link(700 * MS, Waiting, 2, 5), Progress::Fine);
        assert!(matches!(
            d.check_link(800 * MS, Waiting, 2, 5),
            Progress::Overdue { .. }
        ));
    }

    #[test]
    fn idle_connections_never_fire() {
        let mut d = Deadline::new(500 * MS);
        for t in 0..100 {
            assert_eq!(d.check(t * 100 * MS, 0, 7), Progress::Fine);
        }
    }

    #[test]
    fn steady_completions_never_fire() {
        let mut d = Deadline::new(500 * MS);
        for t in 0..100 {
            assert_eq!(d.check(t * 400 * MS, 3, t), Progress::Fine);
        }
    }

    #[test]
    fn requests_that_stop_completing_fire_once_per_limit() {
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check(0, 2, 10), Progress::Fine);
        assert_eq!(d.check(250 * MS, 2, 10), Progress::Fine);
        assert_eq!(
            d.check(500 * MS, 2, 10),
            Progress::Overdue {
                stalled_us: 500 * MS
            }
        );
        // Not again at once: the report gets a whole limit to work.
        assert_eq!(d.check(750 * MS, 2, 10), Progress::Fine);
        assert_eq!(
            d.check(1000 * MS, 2, 10),
            Progress::Overdue {
                stalled_us: 500 * MS
            }
        );
        // Served again.
        assert_eq!(d.check(1250 * MS, 2, 11), Progress::Fine);
        assert_eq!(d.check(1500 * MS, 2, 11), Progress::Fine);
    }

    #[test]
    fn the_wait_starts_when_requests_are_first_seen_in_flight() {
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check(0, 0, 4), Progress::Fine);
        // Idle for long, then one request: its wait starts now, not at the idle check.
        assert_eq!(d.check(10_000 * MS, 1, 4), Progress::Fine);
        assert_eq!(d.check(10_400 * MS, 1, 4), Progress::Fine);
        assert!(matches!(
            d.check(10_500 * MS, 1, 4),
            Progress::Overdue { .. }
        ));
    }

    #[test]
    fn a_clock_going_back_restarts_the_wait() {
        let mut d = Deadline::new(500 * MS);
        assert_eq!(d.check(1000 * MS, 1, 0), Progress::Fine);
        assert_eq!(d.check(10 * MS, 1, 0), Progress::Fine);
        assert_eq!(d.check(400 * MS, 1, 0), Progress::Fine);
        assert!(matches!(d.check(510 * MS, 1, 0), Progress::Overdue { .. }));
    }
}
