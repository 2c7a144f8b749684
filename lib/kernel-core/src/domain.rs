//! The domain schedule (seL4's domain scheduler): a fixed table of `(domain, length)` entries
//! the kernel walks cyclically, one tick at a time. Only threads of the current entry's domain
//! run; when its length is used up the next entry's domain takes the CPU, whatever runs.
//!
//! The table is static kernel memory of [`MAX_DOMAIN_SCHEDULE`] entries: setting a schedule
//! (`DomainSetSchedule`, by the holder of the domain cap) copies into it and allocates
//! nothing. Lengths arrive in microseconds and are kept in ticks, rounded up, so an entry
//! never runs shorter than asked. An empty schedule is seL4's default: domain 0, forever.

use axolotl_abi::{MAX_DOMAIN_SCHEDULE, NUM_DOMAINS};

use crate::SyscallError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub domain: u8,
    /// At least 1.
    pub ticks: u64,
}

/// `repr(C)` with the table last: the kernel's hot paths read `domain`, which then stays
/// near the start of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct DomainSchedule {
    /// The domain of the entry that runs now, kept apart so the scheduler and the IPC fast
    /// path read one byte.
    domain: u8,
    len: usize,
    /// The entry that runs now.
    index: usize,
    /// Ticks left in it.
    left: u64,
    entries: [Entry; MAX_DOMAIN_SCHEDULE],
}

impl Default for DomainSchedule {
    fn default() -> Self {
        Self::new()
    }
}

const NO_ENTRY: Entry = Entry {
    domain: 0,
    ticks: 0,
};

impl DomainSchedule {
    pub const fn new() -> Self {
        DomainSchedule {
            domain: 0,
            len: 0,
            index: 0,
            left: 0,
            entries: [NO_ENTRY; MAX_DOMAIN_SCHEDULE],
        }
    }

    /// Checks `words` (a `DomainSetSchedule`'s entries, [`axolotl_abi::domain_entry`]
    /// encoded): at most [`MAX_DOMAIN_SCHEDULE`] entries, domains below [`NUM_DOMAINS`],
    /// lengths of at least 1 µs. The error names the offending message register (the count
    /// is `mr0`, entry `i` is `mr(i + 1)`).
    pub fn check(words: impl ExactSizeIterator<Item = u64>) -> Result<(), SyscallError> {
        if words.len() > MAX_DOMAIN_SCHEDULE {
            return Err(SyscallError::RangeError {
                min: 0,
                max: MAX_DOMAIN_SCHEDULE as u64,
            });
        }
        for (i, w) in words.enumerate() {
            if (w >> 56) as usize >= NUM_DOMAINS || w & axolotl_abi::MAX_DOMAIN_LENGTH_US == 0 {
                return Err(SyscallError::InvalidArgument { arg: i as u32 + 1 });
            }
        }
        Ok(())
    }

    /// Installs a schedule [`check`](Self::check) accepted, for a kernel with ticks of
    /// `tick_us`; its first entry starts now, with its full length.
    pub fn install(&mut self, words: impl Iterator<Item = u64>, tick_us: u64) {
        self.len = 0;
        for (i, w) in words.take(MAX_DOMAIN_SCHEDULE).enumerate() {
            self.entries[i] = Entry {
                domain: (w >> 56) as u8 % NUM_DOMAINS as u8,
                ticks: (w & axolotl_abi::MAX_DOMAIN_LENGTH_US)
                    .div_ceil(tick_us.max(1))
                    .max(1),
            };
            self.len = i + 1;
        }
        self.index = 0;
        self.left = self.entries[0].ticks;
        self.domain = if self.len == 0 {
            0
        } else {
            self.entries[0].domain
        };
    }

    /// The domain whose threads may run.
    pub fn current(&self) -> u8 {
        self.domain
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// One timer tick; true when it ended the current entry and the next one's domain may
    /// differ (the caller reschedules).
    pub fn tick(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        self.left = self.left.saturating_sub(1);
        if self.left > 0 {
            return false;
        }
        let before = self.domain;
        self.index = (self.index + 1) % self.len;
        let e = self.entries[self.index % MAX_DOMAIN_SCHEDULE];
        self.left = e.ticks;
        self.domain = e.domain;
        self.domain != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_abi::domain_entry;
    use std::vec::Vec;

    fn schedule(e: &[(u8, u64)], tick_us: u64) -> DomainSchedule {
        let words: Vec<u64> = e.iter().map(|&(d, us)| domain_entry(d, us)).collect();
        DomainSchedule::check(words.iter().copied()).unwrap();
        let mut s = DomainSchedule::new();
        s.install(words.into_iter(), tick_us);
        s
    }

    fn run(s: &mut DomainSchedule, ticks: usize) -> Vec<u8> {
        (0..ticks)
            .map(|_| {
                s.tick();
                s.current()
            })
            .collect()
    }

    #[test]
    fn empty_schedule_is_domain_zero_forever() {
        let mut s = DomainSchedule::new();
        assert_eq!(s.current(), 0);
        assert!(run(&mut s, 10).iter().all(|&d| d == 0));
        s.install([].into_iter(), 2000);
        assert!(!s.tick());
        assert_eq!(s.current(), 0);
    }

    #[test]
    fn entries_run_their_lengths_in_turn_and_wrap() {
        // 2 ms ticks: 6000 us = 3 ticks, 2000 us = 1, 3000 us rounds up to 2.
        let mut s = schedule(&[(0, 6000), (1, 2000), (2, 3000)], 2000);
        assert_eq!(s.current(), 0);
        assert_eq!(run(&mut s, 12), [0, 0, 1, 2, 2, 0, 0, 0, 1, 2, 2, 0]);
    }

    #[test]
    fn tick_says_when_the_domain_changes() {
        let mut s = schedule(&[(3, 1), (3, 1), (5, 1)], 1);
        assert!(!s.tick(), "same domain twice in a row: no switch");
        assert!(s.tick());
        assert_eq!(s.current(), 5);
        assert!(s.tick());
        assert_eq!(s.current(), 3);
    }

    #[test]
    fn bad_schedules_are_refused_with_the_register() {
        let d = |w: Vec<u64>| DomainSchedule::check(w.into_iter());
        assert_eq!(
            d(vec![domain_entry(0, 1), domain_entry(16, 5)]),
            Err(SyscallError::InvalidArgument { arg: 2 })
        );
        assert_eq!(
            d(vec![domain_entry(1, 0)]),
            Err(SyscallError::InvalidArgument { arg: 1 })
        );
        assert!(matches!(
            d(vec![domain_entry(0, 1); MAX_DOMAIN_SCHEDULE + 1]),
            Err(SyscallError::RangeError { .. })
        ));
        assert!(d(vec![domain_entry(15, 1); MAX_DOMAIN_SCHEDULE]).is_ok());
    }

    #[test]
    fn installing_restarts_at_the_first_entry() {
        let mut s = schedule(&[(0, 2), (1, 2)], 1);
        run(&mut s, 3);
        assert_eq!(s.current(), 1);
        s.install([domain_entry(4, 1)].into_iter(), 1);
        assert_eq!(s.current(), 4);
        assert_eq!(s.entries().len(), 1);
    }
}
