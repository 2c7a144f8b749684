//! Boot-time physical memory allocator: the only allocation the kernel ever makes, used to
//! build the root task before any user code runs. What is left becomes Untyped memory.

#[derive(Debug)]
pub struct BootAlloc {
    next: u64,
    end: u64,
}

impl BootAlloc {
    pub const fn new(start: u64, end: u64) -> Self {
        BootAlloc { next: start, end }
    }

    /// A naturally aligned block of `1 << size_bits` bytes (not zeroed).
    pub fn alloc(&mut self, size_bits: u32) -> Option<u64> {
        let size = 1u64.checked_shl(size_bits)?;
        let base = self.next.checked_add(size - 1)? & !(size - 1);
        let top = base.checked_add(size)?;
        if top > self.end {
            return None;
        }
        self.next = top;
        Some(base)
    }

    /// The memory not handed out: `[next, end)`.
    pub const fn remaining(&self) -> (u64, u64) {
        (self.next, self.end)
    }
}

/// Splits `[lo, hi)` into the largest naturally aligned power-of-two blocks.
pub fn blocks(mut lo: u64, hi: u64, mut f: impl FnMut(u64, u32)) {
    while lo < hi {
        let align = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let fit = 63 - (hi - lo).leading_zeros();
        let bits = align.min(fit).min(47);
        if bits >= 4 {
            f(lo, bits);
        }
        lo += 1 << bits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn aligns_and_runs_out() {
        let mut a = BootAlloc::new(0x1000_0800, 0x1000_4000);
        assert_eq!(a.alloc(12), Some(0x1000_1000));
        assert_eq!(a.alloc(4), Some(0x1000_2000));
        assert_eq!(a.alloc(13), None, "0x1000_4000 + 0x2000 is past the end");
        assert_eq!(a.alloc(12), Some(0x1000_3000));
        assert_eq!(a.alloc(12), None);
        assert_eq!(a.remaining(), (0x1000_4000, 0x1000_4000));
        assert_eq!(a.alloc(64), None);
    }

    #[test]
    fn blocks_are_aligned_and_cover_the_range() {
        let mut v = Vec::new();
        blocks(0x4024_a000, 0x8000_0000, |p, b| v.push((p, b)));
        let mut at = 0x4024_a000;
        for &(p, b) in &v {
            assert_eq!(p, at);
            assert_eq!(p % (1 << b), 0);
            at += 1 << b;
        }
        assert_eq!(at, 0x8000_0000);
        assert!(v.len() < 40);
    }
}
