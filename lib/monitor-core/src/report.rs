//! Corruption reports: a PD's claim that what it shares with a peer over a channel (a ring)
//! is corrupt, so the peer should be restarted. A claim, not a verdict: the monitor cannot
//! look inside the ring, and the reporter may be the broken one, or lying. So a report
//!
//! - names a channel, and only the PD at its other end, if the monitor manages it (a
//!   parentless PD other than the monitor and the reporter: a child is its parent's);
//! - names the peer's incarnation (PD generation) it accuses, as the reporter knew it when it
//!   found the corruption: one that is gone is declined as stale (a report that crossed the
//!   peer's restart, which must not restart the fresh incarnation again) and costs the
//!   reporter nothing; a generation the peer never had is declined too (only a broken or
//!   lying reporter names one, and a number alone proves nothing about anyone);
//! - is read at most [`REPORT_BURST`] times per [`REPORT_WINDOW_MS`] per reporter, the
//!   rest is declined unread;
//! - never holds a PD: when the peer cannot be restarted (`restart="never"` or its limit),
//!   the reporter is restarted instead ([`Cause::ConnectionReset`]), which resets their
//!   connection whichever of the two was at fault; if neither can be, the report is
//!   declined; the peer keeps running, watched (only what the monitor sees itself, a fault
//!   or a missed heartbeat, can stop a PD for good);
//! - against a peer the monitor restarted on this reporter's word, from its pristine image,
//!   within [`FALSE_REPORT_WINDOW_MS`] of that restart, and that has not failed on its own
//!   since, while the reporter's incarnation that saw it restart still runs, is not
//!   believed: the peer checks out clean, so the reporter is the suspect and is restarted
//!   itself ([`Cause::FalseReport`]), by its own policy. (Reporters accuse again when a
//!   link stays corrupt across the accused's restart, lib/net's `Accuser`: a reporter whose
//!   own state is broken used to fall silent instead, its link dead for good.) Past the
//!   window the peer has served long enough that a new fault of its own is the likelier
//!   story, and the report is judged afresh.
//!
//! All but the rate limit is decided from the trackers, which the journal keeps: a
//! restarted monitor judges as its predecessor would have.

use core::fmt;

use axolotl_boot_plan::{BootPlan, MAX_PDS};
use heapless::Deque;

use crate::{Cause, Decision, State, Tracker};

/// Reports one PD may make within [`REPORT_WINDOW_MS`] before more are declined unread.
pub const REPORT_BURST: usize = 4;
/// The rate limit's sliding window.
pub const REPORT_WINDOW_MS: u64 = 1000;
/// How long after a peer's restart on a reporter's word another accusation of it by that
/// reporter discredits the reporter. Far above what a reporter takes to find that the
/// restart repaired nothing (lib/net's `Accuser::GRACE_US`, a client's one-second progress
/// deadline), far below the time a fresh incarnation serves before a fault of its own is
/// as likely as the reporter's.
pub const FALSE_REPORT_WINDOW_MS: u64 = 5000;

/// What the monitor does about a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Believed: restart `peer` (cause [`Cause::Corruption`]), by its policy.
    Believe { peer: u8 },
    /// Not believed: restart the reporter (cause [`Cause::FalseReport`] against `peer`).
    Discredit { peer: u8 },
    /// `peer` cannot be restarted: restart the reporter instead (cause
    /// [`Cause::ConnectionReset`]), which resets their connection whoever was at fault.
    Reset { peer: u8 },
    /// Nothing done.
    Decline(Declined),
}

/// Why a report changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declined {
    /// The reporter has no channel with this id.
    NoChannel { ch: u64 },
    /// The PD at the other end is not the monitor's to restart: a child (its parent
    /// manages it), the monitor, or the reporter itself.
    NotManaged { peer: u8 },
    /// More than [`REPORT_BURST`] reports within [`REPORT_WINDOW_MS`].
    RateLimited,
    /// The peer is held already.
    Held { peer: u8 },
    /// Neither the peer nor the reporter can be restarted (policy or limit), and a report
    /// does not hold a PD.
    LimitReached { peer: u8 },
    /// The report names no incarnation of the peer (a message too short to carry one).
    NoGeneration,
    /// The report accuses an incarnation of the peer that is gone: it was restarted since
    /// (for this or another reason), and the new one is not what the reporter saw.
    Stale {
        peer: u8,
        accused: u32,
        current: u32,
    },
    /// The report accuses a generation the peer never had: no reporter learns one from the
    /// root task's generation table, so it comes from a broken or lying reporter.
    Unborn {
        peer: u8,
        accused: u32,
        current: u32,
    },
}

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Declined::NoChannel { ch } => write!(f, "no channel {ch}"),
            Declined::NotManaged { peer } => {
                write!(f, "pd {peer} is not the monitor's to restart")
            }
            Declined::RateLimited => write!(
                f,
                "more than {REPORT_BURST} reports in {REPORT_WINDOW_MS} ms"
            ),
            Declined::Held { peer } => write!(f, "pd {peer} is held"),
            Declined::LimitReached { peer } => write!(
                f,
                "neither pd {peer} nor the reporter can be restarted (policy or limit), and a report \
                 holds no PD"
            ),
            Declined::NoGeneration => write!(f, "it names no generation of the peer"),
            Declined::Stale {
                peer,
                accused,
                current,
            } => write!(
                f,
                "pd {peer}'s generation {accused} is gone (stale report; now generation {current})"
            ),
            Declined::Unborn {
                peer,
                accused,
                current,
            } => write!(
                f,
                "pd {peer} never had generation {accused} (it is at generation {current})"
            ),
        }
    }
}

/// The PD a report by `reporter` about its channel `ch` names, if the monitor manages it.
pub fn report_peer(plan: &BootPlan, reporter: u8, ch: u64) -> Result<u8, Declined> {
    let peer = plan
        .channels
        .iter()
        .find_map(|c| match c.ends {
            [a, b] | [b, a] if a.pd == reporter && u64::from(a.id) == ch => Some(b.pd),
            _ => None,
        })
        .ok_or(Declined::NoChannel { ch })?;
    let managed = plan
        .pds
        .get(peer as usize)
        .is_some_and(|p| p.parent.is_none())
        && plan.monitor != Some(peer)
        && peer != reporter;
    if managed {
        Ok(peer)
    } else {
        Err(Declined::NotManaged { peer })
    }
}

/// The reports' rate limit: when each PD's recent reports were read.
pub struct Reports {
    read: [Deque<u64, REPORT_BURST>; MAX_PDS],
}

impl Default for Reports {
    fn default() -> Self {
        Self::new()
    }
}

impl Reports {
    pub const fn new() -> Self {
        Reports {
            read: [const { Deque::new() }; MAX_PDS],
        }
    }

    /// Judges `reporter`'s report at `now_ms` about its channel `ch`; `trackers` are the
    /// monitor's, indexed by PD. Changes nothing but the rate limit's count: the caller
    /// acts on the verdict.
    pub fn judge(
        &mut self,
        plan: &BootPlan,
        trackers: &[Tracker],
        reporter: u8,
        ch: u64,
        accused: Option<u32>,
        now_ms: u64,
    ) -> Verdict {
        let Some(read) = self.read.get_mut(reporter as usize) else {
            return Verdict::Decline(Declined::RateLimited);
        };
        while read
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= REPORT_WINDOW_MS)
        {
            read.pop_front();
        }
        if read.push_back(now_ms).is_err() {
            return Verdict::Decline(Declined::RateLimited);
        }
        let Some(accused) = accused else {
            return Verdict::Decline(Declined::NoGeneration);
        };
        let peer = match report_peer(plan, reporter, ch) {
            Ok(p) => p,
            Err(d) => return Verdict::Decline(d),
        };
        let (Some(p), Some(r)) = (trackers.get(peer as usize), trackers.get(reporter as usize))
        else {
            return Verdict::Decline(Declined::NotManaged { peer });
        };
        // Before credibility: a report about an incarnation that is gone was true of it, and
        // says nothing about the one running now (nor about the reporter).
        let current = p.generation();
        if accused < current {
            return Verdict::Decline(Declined::Stale {
                peer,
                accused,
                current,
            });
        }
        if accused > current {
            return Verdict::Decline(Declined::Unborn {
                peer,
                accused,
                current,
            });
        }
        match p.state() {
            State::Held(_) => return Verdict::Decline(Declined::Held { peer }),
            // Already to be restarted: the report changes nothing, and is not a lie.
            State::Restarting { .. } => return Verdict::Believe { peer },
            State::Running => {}
        }
        let restarted_on_our_word = p.restarts() > 0
            && p.last_cause() == Some(Cause::Corruption { reporter })
            && r.started_ms() <= p.started_ms()
            && now_ms.saturating_sub(p.started_ms()) < FALSE_REPORT_WINDOW_MS;
        if restarted_on_our_word {
            return Verdict::Discredit { peer };
        }
        let mut trial = p.clone();
        if let Decision::RestartAt { .. } = trial.on_failure(now_ms, Cause::Corruption { reporter })
        {
            return Verdict::Believe { peer };
        }
        // The peer cannot be restarted (`restart="never"`, or its limit). Declining left the
        // connection dead: the reporter kept refusing the ring and the peer waited for good
        // (the serial driver's fault-injection campaign, docs/resilience.md). Either the peer
        // is broken, or the reporter is (its own fault made a sound ring look corrupt): a
        // restart of the reporter resets every connection it has, the peer resynchronises
        // with the new generation, and a report still holds nobody.
        let mut me = r.clone();
        match me.on_failure(now_ms, Cause::ConnectionReset { peer }) {
            Decision::RestartAt { .. } => Verdict::Reset { peer },
            Decision::Hold { .. } => Verdict::Decline(Declined::LimitReached { peer }),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    use axolotl_boot_plan::model::{Channel, ChannelEnd, Pd, Resilience, RestartPolicy};

    use super::*;

    const REPORTER: u8 = 0;
    const PEER: u8 = 1;
    const PARENT: u8 = 2;
    const CHILD: u8 = 3;
    const MONITOR: u8 = 4;

    fn end(pd: u8, id: u8) -> ChannelEnd {
        ChannelEnd {
            pd,
            id,
            pp: false,
            notify: true,
        }
    }

    fn restartable(limit: u32) -> Resilience {
        Resilience {
            restart: RestartPolicy::OnFailure,
            restart_limit: limit,
            restart_window_ms: 10_000,
            restart_backoff_ms: 10,
            restart_backoff_max_ms: 100,
            ..Default::default()
        }
    }

    /// 0 reporter, 1 its peer (channel 0 of both), 2 a parent, 3 its child (channel 1 of
    /// the reporter), 4 the monitor; channel 2 of the reporter leads to itself, channel 3
    /// to the monitor.
    fn plan(peer_limit: u32) -> BootPlan {
        let mut plan = BootPlan::default();
        for i in 0..5u8 {
            let mut pd = Pd {
                resilience: restartable(if i == PEER { peer_limit } else { 3 }),
                ..Default::default()
            };
            if i == CHILD {
                pd.parent = Some(PARENT);
                pd.child_id = Some(0);
            }
            plan.pds.push(pd).unwrap();
        }
        plan.monitor = Some(MONITOR);
        for (a, b) in [
            (end(REPORTER, 0), end(PEER, 0)),
            (end(CHILD, 5), end(REPORTER, 1)),
            (end(REPORTER, 2), end(REPORTER, 7)),
            (end(REPORTER, 3), end(MONITOR, 0)),
        ] {
            plan.channels.push(Channel { ends: [a, b] }).unwrap();
        }
        plan
    }

    fn trackers(plan: &BootPlan, now: u64) -> Vec<Tracker> {
        plan.pds
            .iter()
            .map(|p| Tracker::new(&p.resilience, now))
            .collect()
    }

    #[test]
    fn a_report_names_the_peer_of_the_channel() {
        let plan = plan(3);
        assert_eq!(report_peer(&plan, REPORTER, 0), Ok(PEER));
        assert_eq!(report_peer(&plan, PEER, 0), Ok(REPORTER));
        assert_eq!(
            report_peer(&plan, REPORTER, 9),
            Err(Declined::NoChannel { ch: 9 })
        );
        // The channel id is the reporter's, not the peer's.
        assert_eq!(
            report_peer(&plan, PEER, 5),
            Err(Declined::NoChannel { ch: 5 })
        );
    }

    /// Issue #20 (suspected, confirmed): the monitor restarted the PD at the other end of
    /// any channel, so a sibling could have a child its parent manages restarted or held.
    #[test]
    fn a_child_its_parent_manages_is_not_the_monitors_to_restart() {
        let plan = plan(3);
        assert_eq!(
            report_peer(&plan, REPORTER, 1),
            Err(Declined::NotManaged { peer: CHILD })
        );
        assert_eq!(
            report_peer(&plan, REPORTER, 2),
            Err(Declined::NotManaged { peer: REPORTER })
        );
        assert_eq!(
            report_peer(&plan, REPORTER, 3),
            Err(Declined::NotManaged { peer: MONITOR })
        );
        let mut r = Reports::new();
        assert_eq!(
            judge(&mut r, &plan, &trackers(&plan, 0), REPORTER, 1, 100),
            Verdict::Decline(Declined::NotManaged { peer: CHILD })
        );
    }

    /// `r.judge` of a report accusing the peer's current incarnation, as an honest reporter
    /// that found the corruption just now does.
    fn judge(
        r: &mut Reports,
        plan: &BootPlan,
        t: &[Tracker],
        reporter: u8,
        ch: u64,
        now: u64,
    ) -> Verdict {
        let current = report_peer(plan, reporter, ch)
            .ok()
            .and_then(|p| t.get(p as usize))
            .map_or(0, Tracker::generation);
        r.judge(plan, t, reporter, ch, Some(current), now)
    }

    /// Restarts `peer` as the monitor does on a believed report at `now`.
    fn restart_on_report(t: &mut [Tracker], reporter: u8, peer: u8, now: u64) -> u64 {
        let Decision::RestartAt { at_ms, .. } =
            t[peer as usize].on_failure(now, Cause::Corruption { reporter })
        else {
            panic!("held on a report");
        };
        t[peer as usize].on_restarted(at_ms);
        at_ms
    }

    /// Issue #20 (1): a report against a peer the monitor restarted on this reporter's word,
    /// from its pristine image, is not believed: the reporter is the suspect.
    #[test]
    fn a_second_report_against_a_fresh_peer_discredits_the_reporter() {
        let plan = plan(3);
        let mut t = trackers(&plan, 0);
        let mut r = Reports::new();
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, 100),
            Verdict::Believe { peer: PEER }
        );
        let at = restart_on_report(&mut t, REPORTER, PEER, 100);
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, at + 1),
            Verdict::Discredit { peer: PEER }
        );
        // Once the reporter itself was restarted, its new incarnation is believed again.
        t[REPORTER as usize].on_failure(at + 2, Cause::FalseReport { peer: PEER });
        t[REPORTER as usize].on_restarted(at + 2);
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, at + 3),
            Verdict::Believe { peer: PEER }
        );
    }

    /// Issue #21 (the virtualiser's campaign id 242): the repeated accusation counts only
    /// soon after the restart it caused; a peer that has served clean for long may have
    /// failed anew.
    #[test]
    fn a_second_report_long_after_the_peers_restart_is_believed() {
        let plan = plan(3);
        let mut t = trackers(&plan, 0);
        let mut r = Reports::new();
        let at = restart_on_report(&mut t, REPORTER, PEER, 100);
        assert_eq!(
            judge(
                &mut r,
                &plan,
                &t,
                REPORTER,
                0,
                at + FALSE_REPORT_WINDOW_MS - 1
            ),
            Verdict::Discredit { peer: PEER }
        );
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, at + FALSE_REPORT_WINDOW_MS),
            Verdict::Believe { peer: PEER }
        );
    }

    /// Issue #20: a report of a corruption found against generation 0, reaching the monitor
    /// after another reporter's word restarted the peer, restarted the fresh generation 1
    /// a second time. It is declined, and does not count against the reporter: it was true
    /// of the incarnation it named.
    #[test]
    fn a_report_against_a_gone_incarnation_is_stale() {
        let plan = plan(3);
        let mut t = trackers(&plan, 0);
        let mut r = Reports::new();
        // Another PD's report restarted the peer: generation 1.
        let at = restart_on_report(&mut t, CHILD, PEER, 100);
        assert_eq!(t[PEER as usize].generation(), 1);
        assert_eq!(
            r.judge(&plan, &t, REPORTER, 0, Some(0), at + 1),
            Verdict::Decline(Declined::Stale {
                peer: PEER,
                accused: 0,
                current: 1
            })
        );
        // Nor when the restart was on this reporter's own word: a stale report is no
        // second report against the fresh incarnation.
        let mut t = trackers(&plan, 0);
        assert_eq!(
            r.judge(&plan, &t, REPORTER, 0, Some(0), 100),
            Verdict::Believe { peer: PEER }
        );
        let at = restart_on_report(&mut t, REPORTER, PEER, 100);
        assert_eq!(
            r.judge(&plan, &t, REPORTER, 0, Some(0), at + 1),
            Verdict::Decline(Declined::Stale {
                peer: PEER,
                accused: 0,
                current: 1
            })
        );
        // The incarnation that runs now is still judged as before.
        assert_eq!(
            r.judge(&plan, &t, REPORTER, 0, Some(1), at + 2),
            Verdict::Discredit { peer: PEER }
        );
        assert_eq!(
            Declined::Stale {
                peer: PEER,
                accused: 0,
                current: 1
            }
            .to_string(),
            "pd 1's generation 0 is gone (stale report; now generation 1)"
        );
    }

    /// A report too short to name a generation is declined, and counts against the rate.
    #[test]
    fn a_report_naming_no_generation_is_declined() {
        let plan = plan(3);
        let t = trackers(&plan, 0);
        let mut r = Reports::new();
        for i in 0..REPORT_BURST as u64 {
            assert_eq!(
                r.judge(&plan, &t, REPORTER, 0, None, 100 + i),
                Verdict::Decline(Declined::NoGeneration)
            );
        }
        assert_eq!(
            r.judge(&plan, &t, REPORTER, 0, Some(0), 200),
            Verdict::Decline(Declined::RateLimited)
        );
    }

    /// A generation the peer never had is declined: the peer keeps running, untouched.
    #[test]
    fn a_report_against_an_unborn_generation_is_declined() {
        let plan = plan(3);
        let t = trackers(&plan, 0);
        let mut r = Reports::new();
        for accused in [1, u32::MAX] {
            assert_eq!(
                r.judge(&plan, &t, REPORTER, 0, Some(accused), 100),
                Verdict::Decline(Declined::Unborn {
                    peer: PEER,
                    accused,
                    current: 0
                })
            );
        }
        assert_eq!(t[PEER as usize].state(), State::Running);
        assert_eq!(t[PEER as usize].restarts(), 0);
        assert_eq!(
            Declined::Unborn {
                peer: PEER,
                accused: 7,
                current: 0
            }
            .to_string(),
            "pd 1 never had generation 7 (it is at generation 0)"
        );
    }

    /// The peer failing on its own since its restart gives the reporter its credit back.
    #[test]
    fn a_peer_that_failed_on_its_own_since_is_reported_again() {
        let plan = plan(5);
        let mut t = trackers(&plan, 0);
        let mut r = Reports::new();
        let at = restart_on_report(&mut t, REPORTER, PEER, 100);
        t[PEER as usize].on_failure(at + 500, Cause::Hang { heartbeat_ms: 100 });
        t[PEER as usize].on_restarted(at + 600);
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, at + 2000),
            Verdict::Believe { peer: PEER }
        );
        // Another reporter's word does not discredit this one.
        let plan2 = plan;
        let mut t = trackers(&plan2, 0);
        restart_on_report(&mut t, CHILD, PEER, 100);
        assert_eq!(
            judge(&mut r, &plan2, &t, REPORTER, 0, 3000),
            Verdict::Believe { peer: PEER }
        );
    }

    /// Issue #20 (1): a report never holds a PD. Past its limit the peer keeps running.
    #[test]
    fn a_report_the_limit_would_refuse_is_declined() {
        let plan = plan(1);
        let mut t = trackers(&plan, 0);
        let mut r = Reports::new();
        // The peer's one restart in the window went on a fault of its own.
        t[PEER as usize].on_failure(100, Cause::Panic { ip: 0 });
        t[PEER as usize].on_restarted(100);
        // The reporter can be restarted: it is, which resets the connection.
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, 200),
            Verdict::Reset { peer: PEER }
        );
        assert_eq!(t[PEER as usize].state(), State::Running);
        // The reporter past its own limit too: declined, nobody held.
        let mut spent = t.clone();
        for at in [210, 220, 230] {
            spent[REPORTER as usize].on_failure(at, Cause::Panic { ip: 0 });
            spent[REPORTER as usize].on_restarted(at);
        }
        assert_eq!(
            judge(&mut Reports::new(), &plan, &spent, REPORTER, 0, 240),
            Verdict::Decline(Declined::LimitReached { peer: PEER })
        );
        // A held peer is declined too.
        t[PEER as usize].on_failure(300, Cause::Panic { ip: 0 });
        assert!(matches!(t[PEER as usize].state(), State::Held(_)));
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, 5000),
            Verdict::Decline(Declined::Held { peer: PEER })
        );
    }

    #[test]
    fn a_pending_restart_absorbs_reports() {
        let plan = plan(3);
        let mut t = trackers(&plan, 0);
        let mut r = Reports::new();
        t[PEER as usize].on_failure(100, Cause::Corruption { reporter: REPORTER });
        t[PEER as usize].on_restarted(100);
        // Failing again at once: its restart waits.
        t[PEER as usize].on_failure(110, Cause::Panic { ip: 0 });
        assert!(t[PEER as usize].due_at().is_some_and(|d| d > 110));
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, 111),
            Verdict::Believe { peer: PEER }
        );
    }

    #[test]
    fn reports_are_rate_limited_per_reporter() {
        let plan = plan(3);
        let t = trackers(&plan, 0);
        let mut r = Reports::new();
        for i in 0..REPORT_BURST as u64 {
            assert_eq!(
                judge(&mut r, &plan, &t, REPORTER, 9, 100 + i),
                Verdict::Decline(Declined::NoChannel { ch: 9 })
            );
        }
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, 200),
            Verdict::Decline(Declined::RateLimited)
        );
        // Another reporter has its own budget.
        assert_eq!(
            judge(&mut r, &plan, &t, PEER, 0, 200),
            Verdict::Believe { peer: REPORTER }
        );
        // The window slides: the first report is out of it a window later.
        assert_eq!(
            judge(&mut r, &plan, &t, REPORTER, 0, 100 + REPORT_WINDOW_MS),
            Verdict::Believe { peer: PEER }
        );
        assert_eq!(
            judge(&mut r, &plan, &t, 200, 0, 100),
            Verdict::Decline(Declined::RateLimited)
        );
    }
}
