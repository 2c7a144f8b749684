//! Whole-word copies where either side is memory a peer or a guest may write at any moment.

use core::sync::atomic::{AtomicU64, Ordering};

/// Copies `words` 8-byte words from `src` to `dst`.
///
/// Either side may be a data region a peer writes concurrently, or guest RAM: the copy then
/// holds some mix of old and new words (what the peer gets for racing), never undefined
/// behaviour. On aarch64 the body is an assembly loop, 64 bytes an iteration, which the
/// language's memory model treats like a device access: the relaxed-atomic loop it replaces
/// cost about five instructions a word (LLVM neither widens nor unrolls atomics), and every
/// block and frame the VMM moves between guest RAM and a data region goes through here, so
/// under `-icount` (the benchmarks' clock) that loop was most of a 256 KiB blk request's
/// time. The words left over, and every word on other targets (host tests), go through
/// relaxed atomics. The ring's Acquire/Release on its indices orders all of it against the
/// peer's accesses, as before: the assembly is not `nomem`, so the compiler moves no memory
/// access across it.
///
/// # Safety
/// `src..src + 8 * words` readable, `dst..dst + 8 * words` writable, both 8-aligned.
/// Ranges that overlap (a hostile peer's offsets can make two buffers of one region do so)
/// get words in an unspecified order, nothing worse.
#[inline]
pub(crate) unsafe fn copy_words(dst: *mut u64, src: *const u64, words: usize) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: forwarded.
    let (dst, src, words) = unsafe { blocks(dst, src, words) };
    for k in 0..words {
        // SAFETY: k < words, inside both ranges (the caller's), 8-aligned.
        unsafe {
            let v = AtomicU64::from_ptr(src.add(k).cast_mut()).load(Ordering::Relaxed);
            AtomicU64::from_ptr(dst.add(k)).store(v, Ordering::Relaxed);
        }
    }
}

/// Copies the whole 64-byte blocks of [`copy_words`]' range; returns the rest of it.
///
/// # Safety
/// As [`copy_words`].
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn blocks(
    mut dst: *mut u64,
    mut src: *const u64,
    words: usize,
) -> (*mut u64, *const u64, usize) {
    use core::arch::asm;
    let n = words / 8;
    if n == 0 {
        return (dst, src, words);
    }
    // Quad registers where both sides are 16-aligned (page-aligned blk buffers, 16 KiB
    // slots): four loads and four stores a block. Pairs of general registers otherwise
    // (8-aligned, as every region word is): eight and eight, still a fifth of the atomic
    // loop's count. Neither form needs more than the alignment it is given, so the copy
    // holds on any memory type, not only on Normal memory.
    #[cfg(target_feature = "neon")]
    if (dst as usize | src as usize).is_multiple_of(16) {
        // SAFETY: `n` blocks of 64 bytes inside both ranges (the caller's), 16-aligned.
        unsafe {
            asm!(
                "2:",
                "ldp {a:q}, {b:q}, [{s}], #32",
                "ldp {c:q}, {e:q}, [{s}], #32",
                "subs {n}, {n}, #1",
                "stp {a:q}, {b:q}, [{d}], #32",
                "stp {c:q}, {e:q}, [{d}], #32",
                "b.ne 2b",
                s = inout(reg) src,
                d = inout(reg) dst,
                n = inout(reg) n => _,
                a = out(vreg) _,
                b = out(vreg) _,
                c = out(vreg) _,
                e = out(vreg) _,
                options(nostack),
            );
        }
        return (dst, src, words % 8);
    }
    // SAFETY: `n` blocks of 64 bytes inside both ranges (the caller's), 8-aligned.
    unsafe {
        asm!(
            "2:",
            "ldp {a}, {b}, [{s}], #16",
            "ldp {c}, {e}, [{s}], #16",
            "stp {a}, {b}, [{d}], #16",
            "stp {c}, {e}, [{d}], #16",
            "ldp {a}, {b}, [{s}], #16",
            "ldp {c}, {e}, [{s}], #16",
            "subs {n}, {n}, #1",
            "stp {a}, {b}, [{d}], #16",
            "stp {c}, {e}, [{d}], #16",
            "b.ne 2b",
            s = inout(reg) src,
            d = inout(reg) dst,
            n = inout(reg) n => _,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            e = out(reg) _,
            options(nostack),
        );
    }
    (dst, src, words % 8)
}

#[cfg(test)]
mod tests {
    use super::copy_words;

    /// Every length around the block size, every word in place, nothing past the end.
    #[test]
    fn copies_exactly_the_words_asked() {
        for words in 0..40 {
            let src: [u64; 48] =
                core::array::from_fn(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut dst = [0u64; 48];
            // SAFETY: both vectors hold 48 words; disjoint.
            unsafe { copy_words(dst.as_mut_ptr(), src.as_ptr(), words) };
            assert_eq!(dst[..words], src[..words], "{words} words");
            assert!(
                dst[words..].iter().all(|&w| w == 0),
                "{words} words: wrote past the end"
            );
        }
    }
}
