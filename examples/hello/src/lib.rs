//! What the hello PDs share: the layout of the `log_ring` region, where the client appends
//! lines and the logger reads them.
//!
//! ```text
//! 0    count: u32   lines written so far (Release-stored by the client after the line)
//! 64   line[i % LINES]: 64 bytes each, NUL-padded
//! ```
//! The logger trusts nothing in it: a count that runs ahead by more than the ring holds or a
//! line without a terminator is reported, not followed.

#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};

pub const LINE: usize = 64;
pub const LINES: usize = 63;
pub const REGION_SIZE: usize = LINE * (LINES + 1);

/// The shared region at `base` (the vaddr the SDF maps it at).
pub struct LogRing {
    base: *mut u8,
}

impl LogRing {
    /// # Safety
    /// `base` must point to `REGION_SIZE` bytes mapped for the PD's lifetime.
    pub const unsafe fn new(base: *mut u8) -> Self {
        LogRing { base }
    }

    fn count(&self) -> &AtomicU32 {
        // SAFETY: the first word of the mapped region, 4-byte aligned.
        unsafe { &*(self.base as *const AtomicU32) }
    }

    fn slot(&self, i: u32) -> *mut u8 {
        // SAFETY: `i % LINES` keeps the line inside the region.
        unsafe { self.base.add(LINE * (1 + i as usize % LINES)) }
    }

    /// Appends `line` (cut to 63 bytes); the writer side.
    pub fn push(&self, line: &[u8]) {
        let n = self.count().load(Ordering::Relaxed);
        let dst = self.slot(n);
        let len = line.len().min(LINE - 1);
        for i in 0..LINE {
            let b = line.get(i).copied().filter(|_| i < len).unwrap_or(0);
            // SAFETY: inside the slot; volatile because the reader maps the same memory.
            unsafe { dst.add(i).write_volatile(b) };
        }
        self.count().store(n.wrapping_add(1), Ordering::Release);
    }

    /// Lines written so far.
    pub fn written(&self) -> u32 {
        self.count().load(Ordering::Acquire)
    }

    /// Copies line `i` into `out`, returning its length, or `None` if it has no terminator.
    pub fn read(&self, i: u32, out: &mut [u8; LINE]) -> Option<usize> {
        let src = self.slot(i);
        for (k, b) in out.iter_mut().enumerate() {
            // SAFETY: inside the slot.
            *b = unsafe { src.add(k).read_volatile() };
        }
        out.iter().position(|&b| b == 0)
    }
}

/// How many new lines a reader that has seen `seen` may read when the writer says `written`;
/// `None` if that count is impossible (ran backwards, or further ahead than the ring holds).
/// Counts are free-running: line `seen + k` (wrapping) is the k-th new one.
pub fn new_lines(seen: u32, written: u32) -> Option<u32> {
    let ahead = written.wrapping_sub(seen);
    (ahead as usize <= LINES).then_some(ahead)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn lines_round_trip_and_are_cut() {
        let mut mem = std::vec![0u64; REGION_SIZE / 8];
        // SAFETY: a region-sized, aligned buffer.
        let ring = unsafe { LogRing::new(mem.as_mut_ptr() as *mut u8) };
        ring.push(b"hello 1");
        ring.push(&[b'x'; 100]);
        assert_eq!(ring.written(), 2);
        let mut out = [0; LINE];
        assert_eq!(ring.read(0, &mut out), Some(7));
        assert_eq!(&out[..7], b"hello 1");
        assert_eq!(ring.read(1, &mut out), Some(63));
    }

    #[test]
    fn impossible_counts_are_reported() {
        assert_eq!(new_lines(3, 5), Some(2));
        assert_eq!(new_lines(5, 5), Some(0));
        assert_eq!(new_lines(5, 3), None, "count ran backwards");
        assert_eq!(new_lines(0, 64), None, "more than the ring holds");
        assert_eq!(new_lines(u32::MAX, 1), Some(2), "counts wrap");
    }
}
