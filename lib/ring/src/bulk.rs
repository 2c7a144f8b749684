//! Whole-word copies where either side is memory a peer or a guest may write at any moment.

use core::sync::atomic::{AtomicU64, Ordering};

/// Copies `words` 8-byte words from `src` to `dst`.
///
/// Either side may be a data region a peer writes concurrently, or guest RAM: the copy then
/// holds some mix of old and new words (what the peer gets for racing), never undefined
/// behaviour. On aarch64 the body is an assembly loop, 128 bytes an iteration, which the
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
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
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
/// `ld1`/`st1` of four vector registers: 64 bytes an instruction, two 64-byte blocks a round
/// (six instructions for 128 bytes, against twelve with pairs of quad registers and twenty
/// with general ones: under `-icount` the copy of a blk read's data was ~0.75 instructions
/// a word). Byte elements need no alignment beyond a byte's, so the copy holds on any
/// memory type, not only on Normal memory, and whatever the two sides' alignments.
///
/// # Safety
/// As [`copy_words`].
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[inline(always)]
unsafe fn blocks(dst: *mut u64, src: *const u64, words: usize) -> (*mut u64, *const u64, usize) {
    use core::arch::asm;
    let n = words / 8;
    if n == 0 {
        return (dst, src, words);
    }
    let (mut d, mut s) = (dst.cast::<u8>(), src.cast::<u8>());
    if n % 2 == 1 {
        // SAFETY: one 64-byte block inside both ranges (the caller's).
        unsafe {
            asm!(
                "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{s}], #64",
                "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{d}], #64",
                s = inout(reg) s,
                d = inout(reg) d,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                options(nostack),
            );
        }
    }
    if n >= 2 {
        // SAFETY: `n / 2` rounds of 128 bytes inside both ranges (the caller's).
        unsafe {
            asm!(
                "2:",
                "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{s}], #64",
                "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{s}], #64",
                "subs {r}, {r}, #1",
                "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{d}], #64",
                "st1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{d}], #64",
                "b.ne 2b",
                s = inout(reg) s,
                d = inout(reg) d,
                r = inout(reg) n / 2 => _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                options(nostack),
            );
        }
    }
    (d.cast(), s.cast(), words % 8)
}

/// Bytes a block of [`copy_blocks_summed`] moves: one vector register's. The loop takes
/// four at a time where it can; a frame's tail (a frame is rarely a multiple of 64 bytes, and
/// a coalesced segment's payload lies anywhere) goes in single blocks, where the word-wise
/// path it fell to before was a byte at a time whenever the region's side was not
/// 8-aligned.
pub const BLOCK: usize = 16;

/// Sums over a run of 8-byte words `w_0 .. w_{m-1}` (each the little-endian value of its
/// bytes), all a check over them needs (lib/net's frame check) without the words
/// themselves: a copy that hands these is free to move its words in whatever registers
/// are widest, where handing them one at a time would pin it to general registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockSums {
    /// The words' sum, exact.
    pub total: u128,
    /// `sum over j of (m - j) * w_j` modulo `2^64`: each word weighted by its distance from
    /// the run's end (so the running sums after each word, added up, are this plus `m`
    /// times the running sum before the run).
    pub weighted: u64,
    /// `m`.
    pub words: usize,
}

impl BlockSums {
    /// The sums of `words` by their definition, a word at a time (what the copies' sums are
    /// tested against).
    pub fn of(words: &[u64]) -> Self {
        let m = words.len();
        let mut total = 0u128;
        let mut weighted = 0u64;
        for (j, &w) in words.iter().enumerate() {
            total += u128::from(w);
            weighted = weighted.wrapping_add(((m - j) as u64).wrapping_mul(w));
        }
        BlockSums {
            total,
            weighted,
            words: m,
        }
    }
}

/// The running state of [`copy_blocks_summed`]'s loop: two 64-bit lanes, one for the even
/// and one for the odd words (the halves of a 16-byte vector), each with its wrapping sum
/// `s`, the wrapping sum `t` of `s` after every step (Fletcher's second sum, per lane), and
/// the exact sum `h` of the words' upper 32-bit halves (from which the wrapping sum's
/// carries are recovered: [`Lanes::sums`]). Three vector instructions a 16-byte step.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(16))]
struct Lanes {
    s: [u64; 2],
    t: [u64; 2],
    h: [u64; 2],
}

impl Lanes {
    /// One 16-byte step: the even word `q[0]` and the odd word `q[1]` after it. What the
    /// vector loop does, for the targets without one (and the host's tests of the sums).
    #[cfg_attr(
        all(target_arch = "aarch64", target_feature = "neon"),
        allow(dead_code)
    )]
    fn step(&mut self, q: [u64; 2]) {
        for (l, w) in q.into_iter().enumerate() {
            self.s[l] = self.s[l].wrapping_add(w);
            self.t[l] = self.t[l].wrapping_add(self.s[l]);
            self.h[l] = self.h[l].wrapping_add(w >> 32);
        }
    }

    /// The run's sums after `words` words (an even number: whole steps).
    fn sums(self, words: usize) -> BlockSums {
        // The lanes' upper halves, exact: each below 2^32 * words / 2.
        let h = u128::from(self.h[0]) + u128::from(self.h[1]);
        // The sum is `h << 32` plus the lower halves' sum, which lies in 0 .. 2^64 (fewer
        // than 2^32 words): the wrapping sum's distance from `h << 32`, modulo 2^64, is it.
        let base = h << 32;
        let wrapped = self.s[0].wrapping_add(self.s[1]);
        let total = base + u128::from(wrapped.wrapping_sub(base as u64));
        // Word j = 2i + l (step i of M = words / 2, lane l) is in lane l's `t` M - i times;
        // its weight is words - j = 2 (M - i) - l.
        let weighted = self.t[0]
            .wrapping_add(self.t[1])
            .wrapping_mul(2)
            .wrapping_sub(self.s[1]);
        BlockSums {
            total,
            weighted,
            words,
        }
    }
}

/// Copies `blocks` blocks of [`BLOCK`] bytes from `src` to `dst` and returns the sums of the
/// copied words: as read back from `dst` after the stores if `BACK` (a verifier's check
/// must see what its copy left, since a store that went wrong leaves the source intact),
/// as loaded from `src` otherwise (a producer's check is of what it was handed).
///
/// On aarch64 one vector loop: a load, a store (and a read-back) of 64 bytes, twelve
/// vector adds, the loop's two instructions; then single blocks the same way: about two
/// instructions a word, where the
/// check folded into a general-register copy cost six to nine (docs/benchmarks.md). As
/// [`copy_words`]: either side may be memory a peer or a guest writes at any moment (the
/// sums are then of some mix of old and new bytes, which the check the caller compares
/// them with finds), byte elements need no alignment, and no memory access moves across
/// the assembly.
///
/// # Safety
/// `src..src + BLOCK * blocks` readable, `dst..dst + BLOCK * blocks` writable, the two not
/// overlapping.
pub(crate) unsafe fn copy_blocks_summed<const BACK: bool>(
    dst: *mut u8,
    src: *const u8,
    blocks: usize,
) -> BlockSums {
    let mut lanes = Lanes::default();
    if blocks > 0 {
        // SAFETY: forwarded.
        unsafe { lanes_of::<BACK>(dst, src, blocks, &mut lanes) };
    }
    lanes.sums(blocks * BLOCK / 8)
}

/// Three vector adds of one register's two words into the lanes (`Lanes`): `v16` the
/// wrapping sums, `v17` their running sums, `v18` the exact sums of the upper halves.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
macro_rules! lanes_step {
    ($v:literal) => {
        concat!(
            "add v16.2d, v16.2d, ",
            $v,
            ".2d\n",
            "add v17.2d, v17.2d, v16.2d\n",
            "usra v18.2d, ",
            $v,
            ".2d, #32",
        )
    };
}

/// [`copy_blocks_summed`]'s loop, in both its forms: `$store4` / `$store1` store the four
/// blocks (or one) just loaded into v0-v3 (and read them back into v4-v7), `$w` are the
/// registers summed. Four blocks a round, then the rest one at a time; the lanes are stored
/// into `$out` in the order `Lanes` lays them out.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
macro_rules! summed_loop {
    ($dst:expr, $src:expr, $blocks:expr, $out:expr, $store4:expr, $store1:expr,
     [$w0:literal, $w1:literal, $w2:literal, $w3:literal]) => {
        core::arch::asm!(
            "movi v16.2d, #0",
            "movi v17.2d, #0",
            "movi v18.2d, #0",
            "cbz {n}, 3f",
            "2:",
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{s}], #64",
            $store4,
            lanes_step!($w0),
            lanes_step!($w1),
            lanes_step!($w2),
            lanes_step!($w3),
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "3:",
            "cbz {r}, 5f",
            "4:",
            "ld1 {{v0.16b}}, [{s}], #16",
            $store1,
            lanes_step!($w0),
            "subs {r}, {r}, #1",
            "b.ne 4b",
            "5:",
            "st1 {{v16.2d, v17.2d, v18.2d}}, [{o}]",
            s = inout(reg) $src => _,
            d = inout(reg) $dst => _,
            n = inout(reg) $blocks / 4 => _,
            r = inout(reg) $blocks % 4 => _,
            o = in(reg) core::ptr::from_mut($out),
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v16") _, out("v17") _, out("v18") _,
            options(nostack),
        )
    };
}

/// [`copy_blocks_summed`]'s loop; `blocks > 0`.
///
/// # Safety
/// As [`copy_blocks_summed`].
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[inline(always)]
unsafe fn lanes_of<const BACK: bool>(dst: *mut u8, src: *const u8, blocks: usize, out: &mut Lanes) {
    if BACK {
        // SAFETY: `blocks` blocks inside both ranges (the caller's); `out` is 48 writable
        // bytes. Each store is read back (into v4-v7) from where it went, and that is summed.
        unsafe {
            summed_loop!(
                dst,
                src,
                blocks,
                out,
                concat!(
                    "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{d}]\n",
                    "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{d}], #64",
                ),
                concat!("st1 {{v0.16b}}, [{d}]\n", "ld1 {{v4.16b}}, [{d}], #16"),
                ["v4", "v5", "v6", "v7"]
            );
        }
    } else {
        // SAFETY: as above; what was loaded is summed.
        unsafe {
            summed_loop!(
                dst,
                src,
                blocks,
                out,
                "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{d}], #64",
                "st1 {{v0.16b}}, [{d}], #16",
                ["v0", "v1", "v2", "v3"]
            );
        }
    }
}

/// [`copy_blocks_summed`]'s loop where there is no vector one: byte by byte through
/// atomics (either side may be shared), the lanes stepped as the vector loop steps them.
///
/// # Safety
/// As [`copy_blocks_summed`].
#[cfg(not(all(target_arch = "aarch64", target_feature = "neon")))]
unsafe fn lanes_of<const BACK: bool>(dst: *mut u8, src: *const u8, blocks: usize, out: &mut Lanes) {
    use core::sync::atomic::AtomicU8;
    // SAFETY: i < BLOCK * blocks: inside the caller's ranges; alignment 1.
    let at = |p: *const u8, i: usize| unsafe { AtomicU8::from_ptr(p.add(i).cast_mut()) };
    for q in 0..blocks * BLOCK / 16 {
        let mut v = [0u8; 16];
        for (j, b) in v.iter_mut().enumerate() {
            let i = 16 * q + j;
            let x = at(src, i).load(Ordering::Relaxed);
            at(dst, i).store(x, Ordering::Relaxed);
            *b = if BACK {
                at(dst, i).load(Ordering::Relaxed)
            } else {
                x
            };
        }
        let (lo, hi) = v.split_at(8);
        out.step([
            u64::from_le_bytes(lo.try_into().unwrap_or_default()),
            u64::from_le_bytes(hi.try_into().unwrap_or_default()),
        ]);
    }
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
