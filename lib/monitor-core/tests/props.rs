//! Property tests: the tracker's limit, backoff and generations; the watchdog's reports.

use axolotl_boot_plan::model::{Resilience, RestartPolicy, Span};
use axolotl_monitor_core::{Cause, Decision, MIN_RUN_MS, State, Tracker, Watchdog};
use proptest::prelude::*;

fn resilience() -> impl Strategy<Value = Resilience> {
    (
        prop_oneof![Just(RestartPolicy::OnFailure), Just(RestartPolicy::Always)],
        0u32..8,
        0u64..500,
        0u64..50,
        0u64..200,
    )
        .prop_map(|(restart, limit, window, backoff, extra)| Resilience {
            restart,
            restart_limit: limit,
            restart_window_ms: window,
            restart_backoff_ms: backoff,
            restart_backoff_max_ms: backoff + extra,
            heartbeat_ms: None,
            depends_on: Span::default(),
            standby: false,
        })
}

/// A failure `gap` ms after the PD (re)started, a clean exit or not, a duplicate report
/// while the restart is pending or not, and the restart `late` ms after it was due.
fn events() -> impl Strategy<Value = Vec<(u64, bool, bool, u64)>> {
    prop::collection::vec((0u64..300, any::<bool>(), any::<bool>(), 0u64..20), 1..60)
}

proptest! {
    #[test]
    fn tracker_limit_backoff_generations(r in resilience(), evs in events()) {
        let mut t = Tracker::new(&r, 0);
        let mut now = 0u64;
        let mut restarts: Vec<u64> = Vec::new();
        let mut last_gen = 0u32;
        let mut prev_delay: Option<u64> = None;
        for (gap, exit, dup, late) in evs {
            now += gap;
            let cause = if exit { Cause::Exited } else { Cause::Panic { ip: now } };
            let (started, restarted) = (t.started_ms(), t.restarts() > 0);
            let d = t.on_failure(now, cause);
            if dup {
                prop_assert_eq!(t.on_failure(now, Cause::Hang { heartbeat_ms: 1 }), d);
            }
            match d {
                Decision::RestartAt { at_ms, generation } => {
                    prop_assert!(!(exit && r.restart == RestartPolicy::OnFailure));
                    // Generations strictly increase, by one per restart.
                    prop_assert_eq!(generation, last_gen + 1);
                    // Backoff: none for the first restart of a run, then capped, exact,
                    // monotone within the run; under it the floor of a restarted PD's
                    // minimum run.
                    let delay = at_ms - now;
                    let n = t.consecutive() - 1;
                    let backoff = if n == 0 { 0 } else { t.backoff(n - 1) };
                    prop_assert!(backoff <= r.restart_backoff_max_ms);
                    let floor = if restarted {
                        (started + MIN_RUN_MS).saturating_sub(now)
                    } else {
                        0
                    };
                    prop_assert_eq!(delay, backoff.max(floor));
                    if n == 0 {
                        prev_delay = None;
                    }
                    if let Some(p) = prev_delay {
                        prop_assert!(backoff >= p);
                    }
                    prev_delay = Some(backoff);
                    now = at_ms + late;
                    prop_assert_eq!(t.on_restarted(now), Some(generation));
                    prop_assert_eq!(t.generation(), generation);
                    last_gen = generation;
                    restarts.push(now);
                }
                Decision::Hold { .. } => {
                    prop_assert!(matches!(t.state(), State::Held(_)));
                    break;
                }
            }
        }
        prop_assert_eq!(t.restarts() as usize, restarts.len());
        // The floor: no restarted incarnation ran less than MIN_RUN_MS.
        for w in restarts.windows(2) {
            prop_assert!(w[1] - w[0] >= MIN_RUN_MS, "restarts at {} and {}", w[0], w[1]);
        }
        // Never more than the limit within any window.
        if r.restart_limit != 0 && r.restart_window_ms != 0 {
            for (i, &ri) in restarts.iter().enumerate() {
                let within = restarts[..=i]
                    .iter()
                    .filter(|&&rj| ri - rj < r.restart_window_ms)
                    .count();
                prop_assert!(within <= r.restart_limit as usize, "{within} restarts in a window at {ri}: {restarts:?}");
            }
        }
    }

    #[test]
    fn tracker_held_is_final(r in resilience(), evs in events()) {
        let mut t = Tracker::new(&r, 0);
        let mut now = 0;
        let mut held = None;
        for (gap, exit, _, _) in evs {
            now += gap;
            let cause = if exit { Cause::Exited } else { Cause::Panic { ip: 0 } };
            let d = t.on_failure(now, cause);
            if let Some(h) = held {
                prop_assert_eq!(d, h);
                prop_assert_eq!(t.on_restarted(now), None);
                continue;
            }
            match d {
                Decision::Hold { .. } => held = Some(d),
                Decision::RestartAt { at_ms, .. } => {
                    now = at_ms;
                    t.on_restarted(now);
                }
            }
        }
    }

    /// PD 0 beats within its period; PD 1 beats with arbitrary gaps. The monitor polls on
    /// arbitrary ticks (after the tick's beats). PD 0 never expires; PD 1 is reported once per
    /// gap in which it was overdue at a poll, at the first such poll.
    #[test]
    fn watchdog_reports_each_miss_once(
        good_period in 1u64..50,
        good_gaps in prop::collection::vec(0.0f64..=1.0, 1..200),
        bad_period in 1u64..50,
        bad_gaps in prop::collection::vec(1u64..150, 0..40),
        polls in prop::collection::vec(any::<bool>(), 2000),
    ) {
        let horizon = polls.len() as u64;
        let good_beats: Vec<u64> = good_gaps
            .iter()
            .scan(0u64, |t, f| {
                *t += 1 + ((good_period - 1) as f64 * f) as u64;
                Some(*t)
            })
            .collect();
        let bad_beats: Vec<u64> = bad_gaps
            .iter()
            .scan(0u64, |t, g| {
                *t += g;
                Some(*t)
            })
            .collect();
        let mut w = Watchdog::new();
        w.watch(0, good_period, 0);
        w.watch(1, bad_period, 0);
        let mut reports = Vec::new();
        for now in 0..horizon {
            if good_beats.contains(&now) {
                w.beat(0, now);
            }
            if bad_beats.contains(&now) {
                w.beat(1, now);
            }
            if polls[now as usize] {
                let before = w.next_wakeup();
                let got: Vec<(u8, u64)> = w.expired(now).collect();
                // next_wakeup is exact: something expires iff it is due.
                prop_assert_eq!(!got.is_empty(), before.is_some_and(|t| t <= now));
                for (pd, period) in got {
                    prop_assert_eq!(pd, 1, "pd 0 beat on time but expired at {}", now);
                    prop_assert_eq!(period, bad_period);
                    reports.push(now);
                }
            }
            if good_beats.last().is_some_and(|&l| now >= l) {
                w.pause(0);
            }
        }
        // Expected: per interval [b, next beat) from start 0, the first poll p with
        // b + period < p < next.
        let mut starts = vec![0u64];
        starts.extend(bad_beats.iter().copied().filter(|&b| b < horizon));
        let mut expected = Vec::new();
        for (i, &b) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(horizon).min(horizon);
            if let Some(p) = (b + bad_period + 1..end).find(|&p| polls[p as usize]) {
                expected.push(p);
            }
        }
        prop_assert_eq!(reports, expected);
    }
}
