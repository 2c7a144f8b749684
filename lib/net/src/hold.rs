//! Frames on their way to a client that cannot take them yet: a bounded FIFO with room for
//! `N` frames, owned by the server end (a static in a PD: the buffers are too large for a
//! PD's stack).

use crate::check::{Check, check};
use crate::link::{FrameBuf, MAX_FRAME, MIN_FRAME};

/// Up to `N` frames of `MIN_FRAME..=MAX_FRAME` bytes, oldest first, each with the check
/// it travels with (`crate::check`): a held frame is delivered with the check its producer
/// computed, not one made up from the held copy.
pub struct FrameQueue<const N: usize> {
    frames: [FrameBuf; N],
    len: [u16; N],
    checks: [Check; N],
    head: usize,
    count: usize,
    /// Frames refused because the queue was full (or of an impossible length).
    pub dropped: u64,
}

impl<const N: usize> Default for FrameQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameQueue<N> {
    pub const fn new() -> Self {
        Self {
            frames: [FrameBuf::new(); N],
            len: [0; N],
            checks: [Check {
                sum: 0,
                weighted: 0,
            }; N],
            head: 0,
            count: 0,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count == N
    }

    /// Forgets every frame (their client is gone for good).
    pub fn clear(&mut self) {
        self.head = 0;
        self.count = 0;
    }

    /// Appends a frame filled by `fill` (`len` bytes; `fill` says whether it succeeded),
    /// carrying `check`. `false`: full or an impossible length, counted in `dropped`.
    pub fn push_back_with(
        &mut self,
        len: usize,
        check: Check,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> bool {
        if self.count == N || !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            self.dropped += 1;
            return false;
        }
        let at = (self.head + self.count) % N;
        if !fill(&mut self.frames[at].0[..len]) {
            self.dropped += 1;
            return false;
        }
        self.len[at] = len as u16;
        self.checks[at] = check;
        self.count += 1;
        true
    }

    /// Appends `frame` (this PD its producer: the check is computed over `frame`).
    pub fn push_back(&mut self, frame: &[u8]) -> bool {
        self.push_back_with(frame.len(), check(frame), |b| {
            b.copy_from_slice(frame);
            true
        })
    }

    /// Puts a frame before all others (one older than everything queued). `false`: full or
    /// an impossible length, counted in `dropped`.
    pub fn push_front_with(
        &mut self,
        len: usize,
        check: Check,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> bool {
        if self.count == N || !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            self.dropped += 1;
            return false;
        }
        let at = (self.head + N - 1) % N;
        if !fill(&mut self.frames[at].0[..len]) {
            self.dropped += 1;
            return false;
        }
        self.len[at] = len as u16;
        self.checks[at] = check;
        self.head = at;
        self.count += 1;
        true
    }

    /// The oldest frame and its check.
    pub fn front(&self) -> Option<(&[u8], Check)> {
        (self.count > 0).then(|| {
            (
                &self.frames[self.head].0[..usize::from(self.len[self.head])],
                self.checks[self.head],
            )
        })
    }

    pub fn pop_front(&mut self) {
        if self.count > 0 {
            self.head = (self.head + 1) % N;
            self.count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(tag: u8, n: usize) -> [u8; MAX_FRAME] {
        let mut b = [tag; MAX_FRAME];
        b[0] = n as u8;
        b
    }

    #[test]
    fn keeps_order_front_and_back_and_refuses_when_full() {
        let mut q = FrameQueue::<3>::new();
        assert!(q.push_back(&f(1, 20)[..20]));
        assert!(q.push_back(&f(2, 30)[..30]));
        assert!(q.push_front_with(40, check(&f(0, 40)[..40]), |b| {
            b.copy_from_slice(&f(0, 40)[..40]);
            true
        }));
        assert!(q.is_full());
        assert!(!q.push_back(&f(9, 20)[..20]));
        assert!(!q.push_front_with(20, Check::default(), |_| true));
        assert_eq!(q.dropped, 2);
        for (tag, n) in [(0u8, 40usize), (1, 20), (2, 30)] {
            let (got, c) = q.front().unwrap();
            assert_eq!(c, check(got));
            assert_eq!(got.len(), n);
            assert_eq!(got[1], tag);
            q.pop_front();
        }
        assert!(q.front().is_none());
    }

    #[test]
    fn refuses_impossible_lengths_and_failed_fills() {
        let mut q = FrameQueue::<2>::new();
        assert!(!q.push_back(&[0; 13]));
        assert!(!q.push_back_with(MAX_FRAME + 1, Check::default(), |_| true));
        assert!(!q.push_back_with(60, Check::default(), |_| false));
        assert!(q.is_empty());
        assert_eq!(q.dropped, 3);
        let mut z = FrameQueue::<0>::new();
        assert!(!z.push_back(&[0; 60]), "a queue of none keeps nothing");
    }
}
