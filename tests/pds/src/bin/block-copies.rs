//! lib/ring's block copies (`DataRegion::copy_in_raw_blocks` / `copy_out_raw_blocks`) as the
//! aarch64 build runs them: the vector loop, which the host's tests never reach (they run
//! the same lanes stepped in Rust). Every block count from 0 to 20 (the four-block rounds,
//! the single blocks after them, both), every alignment of the caller's side from 0 to 15,
//! into the region and out of it, summed as loaded and as read back, over words that make
//! every lane wrap (all ones, ones in one half): the bytes must land exactly, nothing around
//! them may change, and the sums must be `BlockSums::of` the words. Prints one line when
//! all hold; panics on the first that does not (tests/tests/net.rs).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use core::ptr::NonNull;

    use axolotl_pd::{Channel, Handler, println};
    use axolotl_ring::{BLOCK, BlockSums, DataRegion, SharedRegion};

    const MAX_BLOCKS: usize = 20;
    const BYTES: usize = MAX_BLOCKS * BLOCK;
    /// Room around the copied bytes on the caller's side, to see that nothing else changes.
    const PAD: usize = 32;

    #[repr(C, align(16))]
    struct Buf([u8; BYTES + 2 * PAD]);

    static mut REGION: Buf = Buf([0; BYTES + 2 * PAD]);
    static mut CALLER: Buf = Buf([0; BYTES + 2 * PAD]);

    /// The test pattern's byte `i` for seed `s`: words of all ones, of ones in their lower or
    /// upper half, and a pseudo-random mix.
    fn pattern(s: usize, i: usize) -> u8 {
        let word = i / 8 + s;
        match word % 4 {
            0 => 0xff,
            1 if i % 8 < 4 => 0xff,
            2 if i % 8 >= 4 => 0xff,
            3 => (word.wrapping_mul(0x9e37_79b9) >> (i % 8)) as u8 ^ i as u8,
            _ => 0,
        }
    }

    fn words(bytes: &[u8], out: &mut [u64; BYTES / 8]) -> usize {
        for (w, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        }
        bytes.len() / 8
    }

    fn check_all() -> usize {
        // This PD's own statics, reached only from here (one thread); the region's through
        // the DataRegion and, between copies, through short-lived slices, as a PD reaches a
        // region it shares.
        let rp = core::ptr::addr_of_mut!(REGION).cast::<u8>();
        let cp = core::ptr::addr_of_mut!(CALLER).cast::<u8>();
        let size = BYTES + 2 * PAD;
        // SAFETY: the static's bytes; the slices below live no longer than a copy's checks.
        let region = || unsafe { core::slice::from_raw_parts_mut(rp, size) };
        // SAFETY: as above.
        let caller = || unsafe { core::slice::from_raw_parts_mut(cp, size) };
        // SAFETY: the static outlives the region and the alias; nothing else reaches it.
        let r = unsafe { DataRegion::alias(&SharedRegion::new(NonNull::new_unchecked(rp), size)) };
        let mut checked = 0;
        let mut want_words = [0u64; BYTES / 8];
        for blocks in 0..=MAX_BLOCKS {
            let len = blocks * BLOCK;
            for align in 0..16 {
                for way in 0..3 {
                    let seed = blocks * 16 + align + way;
                    let mut data = [0u8; BYTES];
                    for (i, b) in data[..len].iter_mut().enumerate() {
                        *b = pattern(seed, i);
                    }
                    let n = words(&data[..len], &mut want_words);
                    let want = BlockSums::of(&want_words[..n]);
                    region().fill(0x5a);
                    caller().fill(0xa5);
                    let at = PAD + align;
                    let got = if way < 2 {
                        caller()[at..at + len].copy_from_slice(&data[..len]);
                        // SAFETY: `at` < size.
                        let src = unsafe { cp.add(at) }.cast_const();
                        // SAFETY: `len` bytes of the caller's static from `at`.
                        unsafe {
                            if way == 0 {
                                r.copy_in_raw_blocks::<false>(PAD, src, blocks)
                            } else {
                                r.copy_in_raw_blocks::<true>(PAD, src, blocks)
                            }
                        }
                    } else {
                        region()[PAD..PAD + len].copy_from_slice(&data[..len]);
                        // SAFETY: `at` < size.
                        let dst = unsafe { cp.add(at) };
                        // SAFETY: `len` bytes of the caller's static from `at`.
                        unsafe { r.copy_out_raw_blocks(PAD, dst, blocks) }
                    };
                    let (into, at, around) = if way < 2 {
                        (region(), PAD, 0x5a)
                    } else {
                        (caller(), at, 0xa5)
                    };
                    assert_eq!(
                        got,
                        Some(want),
                        "block-copies: {blocks} blocks, caller's side {align} past 16-aligned, way {way}: sums"
                    );
                    assert_eq!(
                        &into[at..at + len],
                        &data[..len],
                        "block-copies: {blocks} blocks, caller's side {align} past 16-aligned, way {way}: bytes"
                    );
                    assert!(
                        into[..at]
                            .iter()
                            .chain(&into[at + len..])
                            .all(|&b| b == around),
                        "block-copies: {blocks} blocks, caller's side {align} past 16-aligned, way {way}: wrote outside"
                    );
                    checked += 1;
                }
            }
        }
        checked
    }

    struct BlockCopies;

    impl Handler for BlockCopies {
        fn init(&mut self) {
            let n = check_all();
            println!("block-copies: {n} copies as defined");
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(BlockCopies);
}

#[cfg(not(target_os = "none"))]
fn main() {}
