//! Code scrubbing: the schedule on which the monitor has the root task compare each running
//! PD's code with its pristine image (`Request::Scrub`).
//!
//! A PD maps its code read-only, so no check of its own, no ring rule and no heartbeat sees a
//! bit that flips in it below the PD (a RAM upset, a stray DMA, a bug writing through another
//! mapping): the PD runs on with a wrong instruction, maybe answering its heartbeats while it
//! serves nobody (the campaigns' persistent `code` flips, docs/resilience.md). The flip lasts
//! until the PD is restarted from its image, which is what a found difference leads to
//! (`Cause::CodeCorrupt`). One PD per step, in turn, so that one step costs one PD's code
//! compare (its text, read once) and the whole round `SCRUB_STEP_MS` times the PDs.

/// Time between two scrub steps (one PD each).
pub const SCRUB_STEP_MS: u64 = 250;

/// Whose code is compared next, and when.
#[derive(Clone, Copy, Debug)]
pub struct Scrubber {
    next_ms: u64,
    /// The PD after the last one scrubbed.
    cursor: usize,
}

impl Scrubber {
    /// The first step `SCRUB_STEP_MS` after `now_ms`.
    pub const fn new(now_ms: u64) -> Self {
        Scrubber {
            next_ms: now_ms.saturating_add(SCRUB_STEP_MS),
            cursor: 0,
        }
    }

    /// When the next step is due.
    pub fn next_wakeup(&self) -> u64 {
        self.next_ms
    }

    /// At `now_ms`, the PD to scrub now, if a step is due: the next of `pds` PDs, in turn,
    /// for which `eligible` holds (running ones; not the monitor). A step with none eligible
    /// is skipped. The next step is due `SCRUB_STEP_MS` from now, whatever this one found
    /// (a late wake-up does not make steps pile up).
    pub fn due(
        &mut self,
        now_ms: u64,
        pds: usize,
        eligible: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if now_ms < self.next_ms || pds == 0 {
            return None;
        }
        self.next_ms = now_ms.saturating_add(SCRUB_STEP_MS);
        for k in 0..pds {
            let pd = (self.cursor + k) % pds;
            if eligible(pd) {
                self.cursor = (pd + 1) % pds;
                return Some(pd);
            }
        }
        None
    }
}

/// The longest a monitor may go without a timer event of its own: its scrubber asks for one
/// every `SCRUB_STEP_MS`, so many times that is not a slow system but a broken timer path.
pub const TICK_STALL_MS: u64 = 8 * SCRUB_STEP_MS;

/// At a heartbeat ping from the root task (`now_ms`), with the last timer event at
/// `last_tick_ms`: how long the monitor's timer path has been stalled, if too long. The event
/// loop answers pings by itself, so a monitor whose own state no longer arms its timer (a
/// flipped bit, the monitor campaign's id 1: no pings for its PDs, no restarts, no control
/// requests served) would pass the root task's watchdog for ever; failing on purpose hands
/// it to the root task, which restarts it from its image and journal.
pub fn timer_stalled(now_ms: u64, last_tick_ms: u64) -> Option<u64> {
    let stalled = now_ms.saturating_sub(last_tick_ms);
    (stalled > TICK_STALL_MS).then_some(stalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_path_silent_for_many_steps_is_stalled() {
        assert_eq!(timer_stalled(1000, 900), None);
        assert_eq!(
            timer_stalled(TICK_STALL_MS, 0),
            None,
            "at the limit: not yet"
        );
        assert_eq!(
            timer_stalled(5000 + TICK_STALL_MS + 1, 5000),
            Some(TICK_STALL_MS + 1)
        );
        assert_eq!(
            timer_stalled(10, 20),
            None,
            "a tick after the ping's clock read"
        );
    }

    #[test]
    fn every_eligible_pd_in_turn_one_per_step() {
        let mut s = Scrubber::new(0);
        assert_eq!(s.due(SCRUB_STEP_MS - 1, 4, |_| true), None, "not yet");
        let mut t = SCRUB_STEP_MS;
        let mut seen = [0; 4];
        for _ in 0..8 {
            let pd = s.due(t, 4, |pd| pd != 2).unwrap();
            seen[pd] += 1;
            assert_eq!(s.due(t, 4, |_| true), None, "one PD per step");
            t = s.next_wakeup();
        }
        assert_eq!(seen, [3, 3, 0, 2], "round robin, PD 2 never");
    }

    #[test]
    fn a_late_wakeup_does_not_pile_steps_up() {
        let mut s = Scrubber::new(0);
        assert_eq!(s.due(10 * SCRUB_STEP_MS, 3, |_| true), Some(0));
        assert_eq!(s.due(10 * SCRUB_STEP_MS, 3, |_| true), None);
        assert_eq!(s.next_wakeup(), 11 * SCRUB_STEP_MS);
    }

    #[test]
    fn nothing_eligible_skips_the_step() {
        let mut s = Scrubber::new(0);
        assert_eq!(s.due(SCRUB_STEP_MS, 3, |_| false), None);
        assert_eq!(s.next_wakeup(), 2 * SCRUB_STEP_MS);
        assert_eq!(s.due(s.next_wakeup(), 0, |_| true), None);
    }
}
