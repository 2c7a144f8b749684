//! The client's end-to-end check on a connection: requests in flight that stop completing.
//!
//! The ring protocol catches a peer that breaks its rules, the monitor's heartbeat a peer that
//! stops running. Neither sees a server that runs, answers heartbeats and obeys the ring's
//! rules, but no longer serves one connection: a notification lost, a connection it believes
//! faulty, a bit flipped in its own state. Only the client can see that, by the one thing it
//! waits for: completions. [`Deadline`] is checked at moments the client gets anyway (the
//! monitor's heartbeat pings, `lib/pd`'s `Handler::heartbeat`); it needs no timer of its own.

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
