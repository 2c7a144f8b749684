//! The monitor's heartbeat protocol: it pings every watched PD once per period (a signal on
//! the PD's notification with the `HEARTBEAT_PING` badge) and the PD's event loop answers
//! (a `HEARTBEAT` message on its fault endpoint). A PD is hung when no answer came for
//! `1 + SLACK_PERIODS` periods (one missed ping is forgiven: a ping can arrive just after
//! the PD answered the previous one, or while it handles a long event) and then none to a
//! last-chance ping within `LAST_CHANCE_MS` (a deadline can pass without the PD ever having
//! had the CPU: under an emulator the host may stop the whole machine for longer than a
//! period, and a live PD answers a ping within microseconds of getting it).
//!
//! A PD starved by a hung PD of higher priority (which the scheduler runs first, spinning)
//! cannot answer either: the fault-injection campaign on resilient-echo with watched
//! clients saw every hang of the serial driver (priority 200) also time out both of its
//! clients (100), which `restart="never"` then held, their service lost
//! (docs/resilience.md). So a PD is not confirmed hung while a watched PD of higher
//! priority is itself overdue (in its last chance, or confirmed hung in the same round):
//! it gets a fresh last chance, to answer once the hung one is stopped or restarted.
//! A higher-priority PD that has left a ping unanswered for longer than `LAST_CHANCE_MS`
//! counts as overdue for this too, before its own (longer) deadline passes: the
//! fault-injection campaign on control-pd (docs/resilience.md) saw every hang of control
//! (priority 120, 250 ms) restart the innocent hello_logger (50, 200 ms), whose shorter
//! deadline passed while control's had not yet.
//!
//! Neither rule sees a higher-priority PD that hung too recently to have left a ping
//! unanswered for that long: control's campaign (id 17 of 1,050 on main) had hello_logger,
//! just restarted at control's request, miss its first ping because control hung a moment
//! before it; at the logger's last chance control's next regular ping was 2 ms old, so the
//! innocent logger was restarted again. So a PD's last chance is also a roll call: every
//! watched PD of higher priority is pinged with it, and one that cannot answer has been
//! silent for longer than `LAST_CHANCE_MS` when that chance ends: overdue, as above.
//!
//! The deadlines are a [`Watchdog`] whose period is the whole allowance; the ping schedule
//! is kept beside it. Everything is in monitor milliseconds.

use axolotl_boot_plan::model::{BootPlan, MAX_PDS};

use crate::Watchdog;

/// Missed periods forgiven before a PD counts as hung.
pub const SLACK_PERIODS: u64 = 1;

/// How long a PD has to answer the ping sent when its deadline passed (at most a period).
pub const LAST_CHANCE_MS: u64 = 50;

/// Pings and answer deadlines of up to `MAX_PDS` PDs, by PD index.
#[derive(Clone, Debug)]
pub struct Heartbeats {
    dog: Watchdog,
    /// 0: not watched.
    period_ms: [u64; MAX_PDS],
    next_ping_ms: [u64; MAX_PDS],
    /// Its deadline passed and it was pinged a last time.
    last_chance: [bool; MAX_PDS],
    /// Scheduling priority (the SDF's): a hung PD starves the ones below it.
    priority: [u8; MAX_PDS],
    /// When it was sent the first ping it has not answered yet.
    unanswered_since: [Option<u64>; MAX_PDS],
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self::new()
    }
}

impl Heartbeats {
    pub const fn new() -> Self {
        Heartbeats {
            dog: Watchdog::new(),
            period_ms: [0; MAX_PDS],
            next_ping_ms: [0; MAX_PDS],
            last_chance: [false; MAX_PDS],
            priority: [0; MAX_PDS],
            unanswered_since: [None; MAX_PDS],
        }
    }

    /// Watches every PD the monitor pings (`BootPlan::watched`), all started at `now_ms`.
    pub fn from_plan(plan: &BootPlan, now_ms: u64) -> Self {
        let mut h = Self::new();
        for pd in (0..plan.pds.len()).filter(|&pd| plan.watched(pd)) {
            let period = plan.pds[pd].resilience.heartbeat_ms.unwrap_or(0);
            h.watch(pd as u8, period, now_ms);
            h.set_priority(pd as u8, plan.pds[pd].priority);
        }
        h
    }

    /// `pd`'s scheduling priority (0 unless set): while a watched PD of higher priority is
    /// overdue, `pd` is not confirmed hung.
    pub fn set_priority(&mut self, pd: u8, priority: u8) {
        if let Some(p) = self.priority.get_mut(pd as usize) {
            *p = priority;
        }
    }

    /// Watches `pd` with `period_ms` from `now_ms` (0: not at all): first ping a period
    /// away, hung if no answer for `(1 + SLACK_PERIODS) * period_ms`.
    pub fn watch(&mut self, pd: u8, period_ms: u64, now_ms: u64) {
        let i = pd as usize;
        if i >= MAX_PDS {
            return;
        }
        self.period_ms[i] = period_ms;
        self.next_ping_ms[i] = now_ms.saturating_add(period_ms);
        self.last_chance[i] = false;
        self.unanswered_since[i] = None;
        self.dog
            .watch(pd, period_ms.saturating_mul(1 + SLACK_PERIODS), now_ms);
    }

    /// The period of `pd` (0: not watched).
    pub fn period(&self, pd: u8) -> u64 {
        self.period_ms.get(pd as usize).copied().unwrap_or(0)
    }

    /// `pd` answered at `now_ms`. Ignored while it is paused (a restart is pending): only
    /// its restart re-arms it.
    pub fn answered(&mut self, pd: u8, now_ms: u64) {
        if self.dog.deadline(pd).is_none() {
            return;
        }
        let i = pd as usize;
        self.unanswered_since[i] = None;
        if self.last_chance[i] {
            // Back to the whole allowance.
            self.last_chance[i] = false;
            self.dog.watch(
                pd,
                self.period_ms[i].saturating_mul(1 + SLACK_PERIODS),
                now_ms,
            );
        } else {
            self.dog.beat(pd, now_ms);
        }
    }

    /// `pd` was restarted at `now_ms`: watched afresh, as at boot.
    pub fn restarted(&mut self, pd: u8, now_ms: u64) {
        let period = self.period(pd);
        if period != 0 {
            self.watch(pd, period, now_ms);
        }
    }

    /// `pd` is stopped or about to be restarted: neither pinged nor timed until restarted.
    pub fn pause(&mut self, pd: u8) {
        self.dog.pause(pd);
        if let Some(l) = self.last_chance.get_mut(pd as usize) {
            *l = false;
        }
        if let Some(u) = self.unanswered_since.get_mut(pd as usize) {
            *u = None;
        }
    }

    /// Whether `pd` is watched and not paused.
    pub fn armed(&self, pd: u8) -> bool {
        self.dog.deadline(pd).is_some()
    }

    /// The PDs to ping at `now_ms`, by index; each one's next ping is then a period after
    /// `now_ms` (late pings are not caught up).
    pub fn pings_due(&mut self, now_ms: u64) -> impl Iterator<Item = u8> + '_ {
        self.dog.armed_pds().filter(move |&pd| {
            let i = pd as usize;
            let due = self.next_ping_ms[i] <= now_ms;
            if due {
                self.next_ping_ms[i] = now_ms.saturating_add(self.period_ms[i]);
                self.unanswered_since[i].get_or_insert(now_ms);
            }
            due
        })
    }

    /// The PDs hung at `now_ms` with their period (`Cause::Hang`), each reported once and
    /// then paused. A PD whose deadline has just passed is not hung yet: it is due a
    /// last-chance ping now (`pings_due`) and has `LAST_CHANCE_MS` to answer it.
    pub fn hung(&mut self, now_ms: u64) -> heapless::Vec<(u8, u64), MAX_PDS> {
        let mut expired = heapless::Vec::<u8, MAX_PDS>::new();
        for (pd, _) in self.dog.expired(now_ms) {
            let _ = expired.push(pd);
        }
        // The highest priority among the PDs overdue now: in their last chance (armed,
        // not answered since their deadline passed), silent to a ping for longer than a
        // live PD takes to answer one, or just expired.
        let silent = |pd: u8| {
            self.unanswered_since[pd as usize]
                .is_some_and(|t| now_ms.saturating_sub(t) > LAST_CHANCE_MS)
        };
        let overdue = self
            .dog
            .armed_pds()
            .filter(|&pd| self.last_chance[pd as usize] || silent(pd))
            .chain(expired.iter().copied())
            .map(|pd| self.priority[pd as usize])
            .max();
        let mut hung = heapless::Vec::new();
        // The lowest priority of a PD whose last chance begins now.
        let mut roll_call: Option<u8> = None;
        for pd in expired {
            let i = pd as usize;
            let period = self.period_ms[i];
            let starved = overdue.is_some_and(|top| top > self.priority[i]);
            if self.last_chance[i] && !starved {
                self.last_chance[i] = false;
                let _ = hung.push((pd, period));
            } else {
                self.last_chance[i] = true;
                self.dog.watch(pd, LAST_CHANCE_MS.min(period), now_ms);
                self.next_ping_ms[i] = now_ms;
                roll_call = Some(roll_call.map_or(self.priority[i], |p| p.min(self.priority[i])));
            }
        }
        // The roll call: every watched PD above one in its last chance is pinged now, so
        // that at the end of that chance one of them that cannot answer is silent.
        if let Some(lowest) = roll_call {
            let above: heapless::Vec<u8, MAX_PDS> = self
                .dog
                .armed_pds()
                .filter(|&j| self.priority[j as usize] > lowest)
                .collect();
            for j in above {
                self.next_ping_ms[j as usize] = self.next_ping_ms[j as usize].min(now_ms);
            }
        }
        hung
    }

    /// When something is next due: a ping, or a deadline passing.
    pub fn next_wakeup(&self) -> Option<u64> {
        let ping = self
            .dog
            .armed_pds()
            .map(|pd| self.next_ping_ms[pd as usize])
            .min();
        crate::earliest(ping, self.dog.next_wakeup())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn pings(h: &mut Heartbeats, now: u64) -> Vec<u8> {
        h.pings_due(now).collect()
    }
    fn hung(h: &mut Heartbeats, now: u64) -> Vec<(u8, u64)> {
        h.hung(now).into_iter().collect()
    }

    /// The deadline passes at `at`: a last-chance ping, then hung `LAST_CHANCE_MS` (at most
    /// a period) later without an answer.
    fn hang_confirmed(h: &mut Heartbeats, pd: u8, period: u64, at: u64) {
        assert!(hung(h, at).is_empty(), "a last chance first");
        assert_eq!(pings(h, at), [pd]);
        let grace = LAST_CHANCE_MS.min(period);
        // The next period's ping may come first.
        assert_eq!(h.next_wakeup(), Some((at + grace + 1).min(at + period)));
        assert!(hung(h, at + grace).is_empty());
        assert_eq!(hung(h, at + grace + 1), [(pd, period)]);
    }

    #[test]
    fn pinged_every_period_and_answering_is_never_hung() {
        let mut h = Heartbeats::new();
        h.watch(2, 100, 0);
        assert_eq!(h.next_wakeup(), Some(100));
        assert!(pings(&mut h, 99).is_empty());
        for k in 1..50u64 {
            let t = k * 100;
            assert_eq!(pings(&mut h, t), [2]);
            assert!(pings(&mut h, t).is_empty(), "one ping per period");
            h.answered(2, t + 3);
            assert!(hung(&mut h, t + 99).is_empty());
            assert_eq!(h.next_wakeup(), Some(t + 100));
        }
    }

    #[test]
    fn one_missed_period_is_forgiven_two_are_a_hang() {
        let mut h = Heartbeats::new();
        h.watch(1, 100, 0);
        assert_eq!(pings(&mut h, 100), [1]);
        h.answered(1, 105);
        // Silent from here: pinged at 200 and 300, deadline 105 + 200.
        assert_eq!(pings(&mut h, 200), [1]);
        assert!(hung(&mut h, 300).is_empty());
        assert_eq!(pings(&mut h, 300), [1]);
        assert!(
            hung(&mut h, 305).is_empty(),
            "exactly on the deadline is on time"
        );
        assert_eq!(h.next_wakeup(), Some(306));
        hang_confirmed(&mut h, 1, 100, 306);
        // Reported once, then paused: no pings, no second report, nothing to wake for.
        assert!(hung(&mut h, 10_000).is_empty());
        assert!(pings(&mut h, 10_000).is_empty());
        assert_eq!(h.next_wakeup(), None);
        // A late answer from the hung PD does not re-arm it; its restart does.
        h.answered(1, 10_001);
        assert!(!h.armed(1));
        h.restarted(1, 20_000);
        assert!(h.armed(1));
        assert_eq!(h.next_wakeup(), Some(20_100));
        assert!(hung(&mut h, 20_200).is_empty());
        hang_confirmed(&mut h, 1, 100, 20_201);
    }

    #[test]
    fn an_answer_to_the_last_chance_is_not_a_hang() {
        // The whole machine stood still past the deadline (an emulator's host did not run
        // it): the PD answers the last-chance ping at once and is watched as before.
        let mut h = Heartbeats::new();
        h.watch(0, 100, 0);
        assert!(hung(&mut h, 5_000).is_empty());
        assert_eq!(pings(&mut h, 5_000), [0]);
        h.answered(0, 5_000);
        assert!(hung(&mut h, 5_051).is_empty(), "the whole allowance again");
        assert!(hung(&mut h, 5_200).is_empty());
        hang_confirmed(&mut h, 0, 100, 5_201);
    }

    #[test]
    fn a_hang_right_after_the_start_is_found_within_two_periods() {
        let mut h = Heartbeats::new();
        h.watch(0, 50, 1000);
        assert_eq!(pings(&mut h, 1050), [0]);
        assert_eq!(pings(&mut h, 1100), [0]);
        assert!(hung(&mut h, 1100).is_empty());
        hang_confirmed(&mut h, 0, 50, 1101);
    }

    /// The serial campaign with watched clients: the driver (priority 200) spins, so its
    /// clients (100) answer nothing either. Only the driver is hung; the clients get a
    /// fresh last chance, which they use once the driver is restarted.
    #[test]
    fn a_pd_starved_by_a_hung_higher_priority_pd_is_not_hung() {
        let mut h = Heartbeats::new();
        let (driver, client) = (0u8, 1u8);
        h.watch(driver, 100, 0);
        h.watch(client, 100, 0);
        h.set_priority(driver, 200);
        h.set_priority(client, 100);
        // Neither answers from the start; both deadlines pass at 200.
        let at = 201;
        assert!(hung(&mut h, at).is_empty(), "a last chance first");
        let mut p = pings(&mut h, at);
        p.sort();
        assert_eq!(p, [driver, client]);
        let grace = LAST_CHANCE_MS.min(100);
        assert_eq!(hung(&mut h, at + grace + 1), [(driver, 100)]);
        // The driver is restarted; the client now runs and answers its new last chance.
        h.restarted(driver, at + grace + 1);
        h.answered(client, at + grace + 5);
        assert!(hung(&mut h, at + 2 * grace + 2).is_empty());
        // A client that really hangs (the driver answering) is found as before.
        let from = at + grace + 5;
        for t in (from..from + 400).step_by(50) {
            h.answered(driver, t);
        }
        let expiry = from + 200 + 1;
        assert!(hung(&mut h, expiry).is_empty());
        assert_eq!(hung(&mut h, expiry + grace + 1), [(client, 100)]);
    }

    /// control-pd's campaign system: control (priority 120, 250 ms) above hello_logger
    /// (50, 200 ms), both watched from 0 and each having answered its first ping (the
    /// logger's at 200, control's at 250).
    fn control_and_logger() -> (Heartbeats, u8, u8) {
        let mut h = Heartbeats::new();
        let (control, logger) = (1u8, 4u8);
        h.watch(control, 250, 0);
        h.watch(logger, 200, 0);
        h.set_priority(control, 120);
        h.set_priority(logger, 50);
        assert_eq!(pings(&mut h, 200), [logger]);
        h.answered(logger, 200);
        assert_eq!(pings(&mut h, 250), [control]);
        h.answered(control, 250);
        (h, control, logger)
    }

    /// The control-pd campaign: control (priority 120, 250 ms) spins; hello_logger (50,
    /// 200 ms) is starved, and its deadline passes before control's. control has left a
    /// ping unanswered for longer than a live PD takes: the logger is not hung.
    #[test]
    fn a_pd_starved_by_a_silent_higher_priority_pd_with_a_longer_period_is_not_hung() {
        let (mut h, control, logger) = control_and_logger();
        // Both answered their first pings; control hangs at 260, after the one of 250.
        assert_eq!(pings(&mut h, 400), [logger]);
        assert_eq!(pings(&mut h, 500), [control]);
        // The logger's deadline (200 + 400) passes; control's (250 + 500) has not. The
        // logger's last chance is a roll call: control is pinged with it.
        assert!(hung(&mut h, 601).is_empty(), "a last chance first");
        let mut p = pings(&mut h, 601);
        p.sort();
        assert_eq!(p, [control, logger]);
        let grace = LAST_CHANCE_MS;
        assert!(
            hung(&mut h, 601 + grace + 1).is_empty(),
            "starved by control, silent since its ping at 500"
        );
        // control is found hung at its own deadline; the logger answers once control is
        // restarted.
        assert!(hung(&mut h, 751).is_empty());
        let mut p = pings(&mut h, 751);
        p.sort();
        assert_eq!(p, [control, logger]);
        assert_eq!(hung(&mut h, 751 + grace + 1), [(control, 250)]);
        h.restarted(control, 751 + grace + 1);
        h.answered(logger, 751 + grace + 3);
        assert!(hung(&mut h, 1000).is_empty());
        // Without the silent control, a logger that stops answering is hung as before.
        let mut h = Heartbeats::new();
        h.watch(control, 250, 0);
        h.watch(logger, 200, 0);
        h.set_priority(control, 120);
        h.set_priority(logger, 50);
        for t in (0..2000).step_by(10) {
            for pd in pings(&mut h, t) {
                if pd == control {
                    h.answered(control, t);
                }
            }
            if t == 600 {
                break;
            }
        }
        assert!(hung(&mut h, 601).is_empty());
        let mut p = pings(&mut h, 601);
        p.sort();
        assert_eq!(p, [control, logger]);
        h.answered(control, 602);
        assert_eq!(hung(&mut h, 601 + grace + 1), [(logger, 200)]);
    }

    /// control's campaign, id 17: hello_logger (50, 200 ms), just restarted, misses its
    /// first ping because control (120, 250 ms) hung a moment before it; at the logger's
    /// last chance, control's regular ping is only 2 ms old, so control is not overdue by
    /// the rules above. The roll call pings control with the logger's last chance: control
    /// stays silent, the logger is not confirmed hung; control is, at its own deadline.
    #[test]
    fn a_pd_starved_by_a_higher_priority_pd_that_hung_just_before_is_not_hung() {
        let (mut h, control, logger) = control_and_logger();
        // The logger is restarted at 300 (first ping at 500, deadline 700); control answers
        // its ping of 500 and hangs at 501, before the logger could answer its own.
        h.restarted(logger, 300);
        let mut p = pings(&mut h, 500);
        p.sort();
        assert_eq!(p, [control, logger]);
        h.answered(control, 500);
        // control's next regular ping: 750; the logger's deadline passes at 700.
        assert!(hung(&mut h, 701).is_empty(), "a last chance first");
        let mut p = pings(&mut h, 701);
        p.sort();
        assert_eq!(p, [control, logger], "the roll call pings control");
        assert!(pings(&mut h, 750).is_empty(), "control's ping moved to 701");
        let grace = LAST_CHANCE_MS;
        // Without the roll call, control's ping of 750 would be 2 ms old here.
        assert!(
            hung(&mut h, 752).is_empty(),
            "control has not answered since the logger's last chance began"
        );
        // control's own deadline (500 + 500) passes: it is the one found hung.
        let mut found = Vec::new();
        for t in 753..1200 {
            let _ = pings(&mut h, t);
            for (pd, _) in hung(&mut h, t) {
                found.push((pd, t));
                if pd == control {
                    h.restarted(control, t);
                }
            }
            if found.iter().any(|&(pd, _)| pd == control) {
                break;
            }
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, control);
        assert!(
            found[0].1 > 1000 && found[0].1 <= 1001 + grace + 1,
            "{found:?}"
        );
    }

    #[test]
    fn paused_pds_are_neither_pinged_nor_timed() {
        let mut h = Heartbeats::new();
        h.watch(3, 10, 0);
        h.watch(4, 30, 0);
        h.pause(3);
        assert_eq!(h.next_wakeup(), Some(30));
        assert_eq!(pings(&mut h, 1000), [4]);
        hang_confirmed(&mut h, 4, 30, 1000);
        assert_eq!(h.next_wakeup(), None);
    }

    #[test]
    fn unwatched_pds_stay_out() {
        let mut h = Heartbeats::new();
        h.watch(5, 0, 0);
        h.restarted(5, 10);
        h.answered(5, 10);
        h.watch(200, 10, 0);
        assert!(!h.armed(5));
        assert_eq!(h.next_wakeup(), None);
        assert!(pings(&mut h, u64::MAX).is_empty());
        assert!(hung(&mut h, u64::MAX).is_empty());
    }

    #[test]
    fn late_pings_are_not_caught_up() {
        let mut h = Heartbeats::new();
        h.watch(0, 10, 0);
        h.answered(0, 5);
        assert_eq!(pings(&mut h, 25), [0]);
        assert_eq!(h.next_wakeup(), Some(26), "deadline 5 + 20 passes first");
        h.answered(0, 25);
        assert_eq!(h.next_wakeup(), Some(35));
    }
}
