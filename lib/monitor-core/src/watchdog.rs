//! Heartbeat watchdog: a PD with `heartbeat_ms` must signal the monitor at least that often.
//!
//! A PD's deadline is its last beat (or its start) plus its period; it has missed it when
//! `now > deadline`, so a PD that beats exactly on its deadline is on time. Each miss is
//! reported once: the PD is then disarmed until it beats again or is restarted.

use axolotl_boot_plan::model::{BootPlan, MAX_PDS};

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// 0: not watched.
    period_ms: u64,
    deadline_ms: u64,
}

const _: () = assert!(MAX_PDS <= 64, "armed PDs are bits of a u64");

/// Deadlines of up to `MAX_PDS` PDs, indexed by PD index.
#[derive(Clone, Debug)]
pub struct Watchdog {
    slots: [Slot; MAX_PDS],
    /// Bit `pd` set while `pd` has a deadline: the monitor looks at the armed PDs after every
    /// restart (its next wake-up), and scanning all slots cost more than the rest of it.
    armed: u64,
}

impl Default for Watchdog {
    fn default() -> Self {
        Self::new()
    }
}

/// The set bits of `m`, lowest first, as PD indices.
fn bits(mut m: u64) -> impl Iterator<Item = u8> {
    core::iter::from_fn(move || {
        (m != 0).then(|| {
            let i = m.trailing_zeros() as u8;
            m &= m - 1;
            i
        })
    })
}

impl Watchdog {
    /// Watches nothing.
    pub const fn new() -> Self {
        Watchdog {
            slots: [Slot {
                period_ms: 0,
                deadline_ms: 0,
            }; MAX_PDS],
            armed: 0,
        }
    }

    /// Watches every PD of `plan` with a non-zero `heartbeat_ms`, all started at `now_ms`.
    pub fn from_plan(plan: &BootPlan, now_ms: u64) -> Self {
        let mut w = Self::new();
        for (i, pd) in plan.pds.iter().enumerate() {
            w.watch(i as u8, pd.resilience.heartbeat_ms.unwrap_or(0), now_ms);
        }
        w
    }

    fn set_armed(&mut self, pd: u8, on: bool) {
        if on {
            self.armed |= 1 << pd;
        } else {
            self.armed &= !(1 << pd);
        }
    }

    /// Watches `pd` with `period_ms` from `now_ms` on (0: stop watching it).
    pub fn watch(&mut self, pd: u8, period_ms: u64, now_ms: u64) {
        if let Some(s) = self.slots.get_mut(pd as usize) {
            *s = Slot {
                period_ms,
                deadline_ms: now_ms.saturating_add(period_ms),
            };
            self.set_armed(pd, period_ms != 0);
        }
    }

    /// `pd` signalled its heartbeat at `now_ms`: its next deadline is `now_ms + period`.
    pub fn beat(&mut self, pd: u8, now_ms: u64) {
        if let Some(s) = self.slots.get_mut(pd as usize)
            && s.period_ms != 0
        {
            s.deadline_ms = now_ms.saturating_add(s.period_ms);
            self.set_armed(pd, true);
        }
    }

    /// `pd` was restarted at `now_ms`: as a beat, its first deadline is a period away.
    pub fn restarted(&mut self, pd: u8, now_ms: u64) {
        self.beat(pd, now_ms);
    }

    /// `pd` is stopped (restart pending, or held): no deadline until it beats or restarts.
    pub fn pause(&mut self, pd: u8) {
        if (pd as usize) < MAX_PDS {
            self.set_armed(pd, false);
        }
    }

    /// The deadline of `pd`, if it is watched and armed.
    pub fn deadline(&self, pd: u8) -> Option<u64> {
        self.slots
            .get(pd as usize)
            .filter(|_| self.armed & (1 << pd) != 0)
            .map(|s| s.deadline_ms)
    }

    /// The PDs with a deadline, by increasing index.
    pub fn armed_pds(&self) -> impl Iterator<Item = u8> + use<> {
        bits(self.armed)
    }

    /// The PDs that missed their deadline by `now_ms`, by increasing index. Each one yielded
    /// is disarmed, so it is reported once per miss; one not yet yielded (the iterator was
    /// dropped early) is reported next time.
    pub fn expired(&mut self, now_ms: u64) -> Expired<'_> {
        let late = bits(self.armed)
            .filter(|&pd| now_ms > self.slots[pd as usize].deadline_ms)
            .fold(0u64, |m, pd| m | 1 << pd);
        Expired { dog: self, late }
    }

    /// When to wake up next: the earliest time at which [`Watchdog::expired`] would report a
    /// PD (one past the earliest deadline), or `None` if nothing is armed.
    pub fn next_wakeup(&self) -> Option<u64> {
        bits(self.armed)
            .map(|pd| self.slots[pd as usize].deadline_ms.saturating_add(1))
            .min()
    }
}

/// Iterator of [`Watchdog::expired`]: `(pd, heartbeat_ms)`.
pub struct Expired<'a> {
    dog: &'a mut Watchdog,
    /// The late PDs not yet yielded.
    late: u64,
}

impl Iterator for Expired<'_> {
    type Item = (u8, u64);

    fn next(&mut self) -> Option<(u8, u64)> {
        let pd = bits(self.late).next()?;
        self.late &= !(1 << pd);
        self.dog.set_armed(pd, false);
        Some((pd, self.dog.slots[pd as usize].period_ms))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn expired(w: &mut Watchdog, now: u64) -> Vec<u8> {
        w.expired(now).map(|(pd, _)| pd).collect()
    }

    #[test]
    fn on_time_beats_never_expire() {
        let mut w = Watchdog::new();
        w.watch(2, 100, 0);
        assert_eq!(w.next_wakeup(), Some(101));
        assert!(expired(&mut w, 100).is_empty());
        w.beat(2, 100);
        assert!(expired(&mut w, 200).is_empty());
        assert_eq!(w.deadline(2), Some(200));
    }

    #[test]
    fn a_miss_is_reported_once_until_a_beat_or_restart() {
        let mut w = Watchdog::new();
        w.watch(1, 50, 0);
        w.watch(4, 80, 0);
        assert_eq!(w.expired(51).collect::<Vec<_>>(), [(1, 50)]);
        assert!(expired(&mut w, 60).is_empty());
        assert_eq!(expired(&mut w, 81), [4]);
        assert_eq!(w.next_wakeup(), None);
        assert!(expired(&mut w, 1000).is_empty());
        w.beat(1, 1000);
        w.restarted(4, 1000);
        assert_eq!(w.next_wakeup(), Some(1051));
        assert_eq!(expired(&mut w, 2000), [1, 4]);
    }

    #[test]
    fn unwatched_and_paused_pds_never_expire() {
        let mut w = Watchdog::new();
        w.watch(0, 0, 0);
        w.beat(0, 0);
        w.beat(7, 0);
        w.watch(3, 10, 0);
        w.pause(3);
        assert_eq!(w.next_wakeup(), None);
        assert!(expired(&mut w, u64::MAX).is_empty());
        // Out-of-range indices are ignored.
        w.watch(200, 10, 0);
        w.beat(200, 0);
        assert_eq!(w.deadline(200), None);
    }

    #[test]
    fn an_unconsumed_miss_is_reported_next_time() {
        let mut w = Watchdog::new();
        w.watch(1, 10, 0);
        w.watch(2, 10, 0);
        assert_eq!(w.expired(11).next(), Some((1, 10)));
        assert_eq!(expired(&mut w, 12), [2]);
    }

    #[test]
    fn from_plan_watches_pds_with_a_heartbeat() {
        use axolotl_boot_plan::model::Pd;
        let mut plan = BootPlan::default();
        for hb in [None, Some(0), Some(30)] {
            let mut pd = Pd::default();
            pd.resilience.heartbeat_ms = hb;
            plan.pds.push(pd).unwrap();
        }
        let mut w = Watchdog::from_plan(&plan, 5);
        assert_eq!(w.deadline(0), None);
        assert_eq!(w.deadline(1), None);
        assert_eq!(w.deadline(2), Some(35));
        assert_eq!(expired(&mut w, 36), [2]);
    }
}
