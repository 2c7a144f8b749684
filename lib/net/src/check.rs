//! The frame check: computed by a frame's producer over the frame it is handed, carried with
//! the frame in the link buffer's trailer, forwarded unchanged by the virtualiser, and
//! verified by the last PD to copy the frame (the net driver into its DMA buffer on
//! transmit, the client out of its link on receive: the VMM into guest RAM,
//! [`PieceSummer`]). The network's own checksums drop a damaged frame at its end (the
//! host's UDP or TCP checksum), where nobody in the system sees it: the net driver's
//! 1,000-injection campaign had four frames damaged in the driver's own copy, undetected
//! (docs/resilience.md). With the check, a copy that went wrong is a detection, and the
//! verifier can tell whose copy it was ([`Verdict`]).
//!
//! # The check
//!
//! Over the frame's bytes as little-endian 64-bit words `w_0 .. w_{n-1}` (the last one
//! zero-padded), two 64-bit words:
//!
//! * `sum`: the ones' complement sum (end-around carry) of the length and every `w_i`;
//! * `weighted`: Fletcher's second sum: the wrapping sum, after each word, of the running
//!   wrapping (modulo `2^64`) sum of the length and the words, i.e. each word weighted by
//!   its distance from the end. (Not of the ones' complement `sum`: that one cannot tell
//!   a word of all zeros from one of all ones, and its running values would not either.)
//!
//! Why it catches what a copy does wrong: a single flipped bit changes one word by
//! `±2^k`, hence `sum` by `±2^k` modulo `2^64 - 1`, which is never 0 for `k < 64`: every
//! single bit flip is caught (proptest `any_single_bit_flip_is_caught`), and so is any
//! damage confined to one word (a skipped store leaving a stale word, a store of a damaged
//! register) unless the damaged word equals the right one modulo `2^64 - 1`, i.e. the
//! frame is undamaged or the word changed between all zeros and all ones, which
//! `weighted` sees (it changes by the word's weight, never 0 modulo `2^64`). A word dropped
//! or duplicated *with a shift* (the rest of the frame one word off), or two words
//! swapped, leaves `sum` as it was but moves words to other weights: `weighted` changes
//! unless the moved words are equal. The length is in `sum`, so a frame cut short by
//! whole zero words is caught too. What it costs: three instructions a word (`adds`,
//! `cinc`, `add` on aarch64: [`Summer`]) folded into the copy's own loop (lib/ring
//! `DataRegion::copy_in_raw_words` / `copy_out_raw_words` / `copy_out_raw_piece`): the
//! frame is read once.
//!
//! # Where it is carried
//!
//! In the link buffer, after the frame's room: bytes [`CHECK_AT`]`..`[`CHECK_AT`]` + 16` of
//! every 2 KiB buffer (`sum`, then `weighted`, little-endian), written by whoever fills the
//! buffer before the descriptor is published (lib/ring's Release orders it), read once by
//! whoever takes it. The descriptor and the frame's bytes are unchanged: the wire format of
//! lib/ring is the same, and a frame still starts at its buffer's offset (8-aligned).
//! Receive buffers must be at least [`BUF_NEEDED`] bytes (the client posts 2 KiB).

use axolotl_ring::{BLOCK, BlockSums, DataRegion, WordCarry};

use crate::link::{BUF_SIZE, MAX_FRAME};

/// Where a link buffer carries its frame's check: the first 8-aligned offset past the
/// largest frame.
pub const CHECK_AT: usize = MAX_FRAME.next_multiple_of(8);
/// Bytes of the check.
pub const CHECK_BYTES: usize = 16;
/// The least a buffer must hold: the largest frame's room and the check.
pub const BUF_NEEDED: usize = CHECK_AT + CHECK_BYTES;

const _: () = assert!(BUF_NEEDED <= BUF_SIZE);

/// A frame's check (module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Check {
    pub sum: u64,
    pub weighted: u64,
}

/// The check computed a word at a time, inside a copy's loop: three instructions a word
/// (`adds`, `cinc`, `add` on aarch64). The ones' complement `sum` is not kept as such: it is
/// the plain sum's value plus the number of times it wrapped (`2^64` is `1` modulo
/// `2^64 - 1`), folded in [`Summer::finish`], so the plain sum's own add counts the carries.
#[derive(Clone, Copy, Debug)]
pub struct Summer {
    plain: u64,
    carries: u64,
    weighted: u64,
}

impl Summer {
    /// For a frame of `len` bytes.
    #[inline(always)]
    pub fn new(len: usize) -> Self {
        Summer {
            plain: len as u64,
            carries: 0,
            weighted: 0,
        }
    }

    /// The next word (little-endian bytes `8k..8k + 8` of the frame).
    #[inline(always)]
    pub fn add(&mut self, w: u64) {
        let (p, carry) = self.plain.overflowing_add(w);
        self.plain = p;
        // At most one a word: never near overflow.
        self.carries += u64::from(carry);
        self.weighted = self.weighted.wrapping_add(p);
    }

    /// The next `sums.words` words at once, from their sums (a vector copy's: lib/ring
    /// `DataRegion::copy_out_raw_blocks`): the same as [`Summer::add`] of each. The plain
    /// sum after word `i` of the run is the one before it plus the run's words up to `i`,
    /// so the running sums add up to `words` times the one before plus the run's weighted
    /// sum; the carries are the exact sum's bits above 64.
    #[inline(always)]
    pub fn add_sums(&mut self, sums: BlockSums) {
        self.weighted = self
            .weighted
            .wrapping_add(self.plain.wrapping_mul(sums.words as u64))
            .wrapping_add(sums.weighted);
        let t = u128::from(self.plain) + sums.total;
        self.plain = t as u64;
        self.carries += (t >> 64) as u64;
    }

    pub fn finish(self) -> Check {
        let (s, carry) = self.plain.overflowing_add(self.carries);
        // No overflow: with a carry, s = plain + carries - 2^64 <= 2^64 - 2.
        let sum = s + u64::from(carry);
        Check {
            // Ones' complement has two zeros; one spelling for both.
            sum: if sum == u64::MAX { 0 } else { sum },
            weighted: self.weighted,
        }
    }
}

/// The check of `frame`.
pub fn check(frame: &[u8]) -> Check {
    let mut s = Summer::new(frame.len());
    let mut chunks = frame.chunks_exact(8);
    for c in &mut chunks {
        s.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        s.add(u64::from_le_bytes(last));
    }
    s.finish()
}

/// The check of the `len` bytes at `offset` of `region`, as they are now; `None` if the
/// range is outside.
pub fn region_check(region: &DataRegion, offset: usize, len: usize) -> Option<Check> {
    let mut s = Summer::new(len);
    region.words(offset, len, |w| s.add(w)).then(|| s.finish())
}

/// The check carried by the link buffer at `buf`; `None` if the buffer's trailer is
/// outside the region or misaligned (a buffer no honest peer names).
pub fn read(region: &DataRegion, buf: usize) -> Option<Check> {
    let at = buf.checked_add(CHECK_AT)?;
    Some(Check {
        sum: u64::from_le(region.read_u64(at)?),
        weighted: u64::from_le(region.read_u64(at.checked_add(8)?)?),
    })
}

/// Writes `check` into the trailer of the link buffer at `buf`; `false` if outside.
pub fn write(region: &DataRegion, buf: usize, check: Check) -> bool {
    let Some(at) = buf.checked_add(CHECK_AT) else {
        return false;
    };
    region.contains(at, CHECK_BYTES)
        && region.write_u64(at, check.sum.to_le())
        && region.write_u64(at + 8, check.weighted.to_le())
}

/// Copies `frame` into the link buffer at `buf` and writes its check, computed in the
/// copy's loop over the caller's bytes (the frame as the producer was handed it); `false`
/// (nothing usable written) if the buffer is outside the region.
pub fn copy_in(region: &DataRegion, buf: usize, frame: &[u8]) -> bool {
    let mut s = Summer::new(frame.len());
    // Whole blocks in the vector loop, summed as loaded; the rest word by word.
    let blocks = frame.len() / BLOCK;
    let head = blocks * BLOCK;
    // SAFETY: a slice is `len` readable bytes, not inside the shared region.
    let ok = unsafe {
        region
            .copy_in_raw_blocks::<false>(buf, frame.as_ptr(), blocks)
            .map(|b| s.add_sums(b))
            .is_some()
            && region.copy_in_raw_words(
                buf + head,
                frame.as_ptr().add(head),
                frame.len() - head,
                |w| s.add(w),
            )
    };
    ok && write(region, buf, s.finish())
}

/// What a verifying copy found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The copy matches the check its producer carried.
    Good,
    /// The copy does not match, but the source still does: this PD's own copy went wrong
    /// (its registers, its code, its loop): it is corrupt itself and fail-stops.
    OwnCopy,
    /// The source does not match its check either (or carries none it could read): the
    /// peer, or a hop before it, delivered a damaged frame. Dropped; the peer is reported.
    Source,
}

/// Copies the frame of `dst.len()` bytes in the link buffer at `buf` of `src` into `dst`
/// (this PD's own memory: the driver's DMA buffer, a client's frame buffer) and verifies
/// the copy, read back from `dst` in the copy's loop, against the check the buffer
/// carries. On a mismatch the source is checked again, to tell whose fault it is.
pub fn copy_out(src: &DataRegion, buf: usize, dst: &mut [u8]) -> Verdict {
    copy_out_flipping::<false>(src, buf, dst, None)
}

/// [`copy_out`] whose copy damages bit `flip` of the frame (counted from the first byte's
/// bit 0) on its way into `dst`, as a flipped register between the load and the store
/// would, if `INJECT`: for tests of the verdicts only (`INJECT` is false in every real
/// build, and the copy's loop has no trace of it).
pub(crate) fn copy_out_flipping<const INJECT: bool>(
    src: &DataRegion,
    buf: usize,
    dst: &mut [u8],
    flip: Option<usize>,
) -> Verdict {
    let Some(carried) = read(src, buf) else {
        return Verdict::Source;
    };
    let mut s = Summer::new(dst.len());
    let (at, len) = (dst.as_mut_ptr(), dst.len());
    if !INJECT {
        // One piece: the frame's copy into a guest's buffers, whole blocks in the vector
        // loop and the rest word by word, each as read back.
        let mut piece = PieceSummer::new(len);
        // SAFETY: a mutable slice is `len` writable bytes no one else reaches.
        unsafe { piece.copy_out_raw(src, buf, at, len) };
        return piece.verdict(src, buf, carried);
    }
    let mut k = 0;
    // SAFETY: a mutable slice is `len` writable bytes no one else reaches.
    let copied = unsafe {
        src.copy_out_raw_words(buf, at, len, |w| {
            let w = match flip {
                Some(bit) if INJECT && bit / 64 == k && bit / 8 < len => {
                    // The damaged word is what lies in `dst` now, as after a bad store.
                    at.add(bit / 8)
                        .write(at.add(bit / 8).read() ^ 1 << (bit % 8));
                    w ^ 1 << (bit % 64)
                }
                _ => w,
            };
            if INJECT {
                k += 1;
            }
            s.add(w)
        })
    };
    if copied && s.finish() == carried {
        return Verdict::Good;
    }
    judge(src, buf, dst.len(), carried)
}

/// The check of a frame copied out in pieces, over the copy as read back from where each
/// piece was stored: the VMM's copy into a guest's receive buffers, a piece a descriptor
/// of any length (lib/vmm-core `GuestMemory::write_from_region_summed`), verified as
/// [`copy_out`] verifies a copy into one buffer. The word a piece ends in is carried into
/// the next.
#[derive(Clone, Copy, Debug)]
pub struct PieceSummer {
    summer: Summer,
    carry: WordCarry,
    len: usize,
    done: usize,
}

impl PieceSummer {
    /// For a frame of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self {
            summer: Summer::new(len),
            carry: WordCarry::new(),
            len,
            done: 0,
        }
    }

    /// Copies the frame's next `len` bytes, at `offset` of `src`, to `dst`, and folds them
    /// in as read back from `dst` in the copy's loop (lib/ring
    /// `DataRegion::copy_out_raw_piece`); `false` (nothing copied) if outside the region.
    ///
    /// # Safety
    /// `dst..dst + len` must be writable and not inside `src`.
    #[inline]
    pub unsafe fn copy_out_raw(
        &mut self,
        src: &DataRegion,
        offset: usize,
        dst: *mut u8,
        len: usize,
    ) -> bool {
        if !src.contains(offset, len) {
            return false;
        }
        // Worked on in locals and stored back: the loop's stores into the destination could
        // be stores into `self` as far as the compiler knows, which then kept the sums in
        // memory, two more stores a word.
        let (mut summer, mut carry) = (self.summer, self.carry);
        // The bytes that complete the word the last piece ended in, whole blocks in the
        // vector loop, the rest word by word (each inside the region: checked above).
        let lead = carry.missing().min(len);
        let blocks = (len - lead) / BLOCK;
        let tail = lead + blocks * BLOCK;
        // SAFETY: the caller's, for the three parts of its range.
        unsafe {
            src.copy_out_raw_piece(offset, dst, lead, &mut carry, |w| summer.add(w));
            if let Some(b) = src.copy_out_raw_blocks(offset + lead, dst.add(lead), blocks) {
                summer.add_sums(b);
            }
            src.copy_out_raw_piece(offset + tail, dst.add(tail), len - tail, &mut carry, |w| {
                summer.add(w)
            });
        }
        (self.summer, self.carry) = (summer, carry);
        self.done += len;
        true
    }

    /// Writes the frame's next `len` bytes, from `src`, at `offset` of `dst` (the link
    /// buffer a producer fills) and folds them in as read back from `dst` in the copy's loop
    /// (lib/ring `DataRegion::copy_in_raw_piece`): the producer's check in its copy, no pass
    /// of its own. `false` (nothing copied) if outside the region.
    ///
    /// # Safety
    /// `src..src + len` must be readable and not inside `dst`.
    #[inline]
    pub unsafe fn copy_in_raw(
        &mut self,
        dst: &DataRegion,
        offset: usize,
        src: *const u8,
        len: usize,
    ) -> bool {
        if !dst.contains(offset, len) {
            return false;
        }
        // In locals, in three parts, as in `copy_out_raw`.
        let (mut summer, mut carry) = (self.summer, self.carry);
        let lead = carry.missing().min(len);
        let blocks = (len - lead) / BLOCK;
        let tail = lead + blocks * BLOCK;
        // SAFETY: the caller's, for the three parts of its range.
        unsafe {
            dst.copy_in_raw_piece(offset, src, lead, &mut carry, |w| summer.add(w));
            if let Some(b) = dst.copy_in_raw_blocks::<true>(offset + lead, src.add(lead), blocks) {
                summer.add_sums(b);
            }
            dst.copy_in_raw_piece(offset + tail, src.add(tail), len - tail, &mut carry, |w| {
                summer.add(w)
            });
        }
        (self.summer, self.carry) = (summer, carry);
        self.done += len;
        true
    }

    /// [`PieceSummer::copy_in_raw`] of `bytes`.
    pub fn copy_in(&mut self, dst: &DataRegion, offset: usize, bytes: &[u8]) -> bool {
        // SAFETY: a slice is readable, and no slice of ours lies in a shared region.
        unsafe { self.copy_in_raw(dst, offset, bytes.as_ptr(), bytes.len()) }
    }

    /// Folds in the frame's next bytes as the caller read them back from where it stored
    /// them (a copy through a staging buffer).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let Self { summer, carry, .. } = self;
        carry.push_bytes(bytes, |w| summer.add(w));
        self.done += bytes.len();
    }

    /// The check of what was folded in; `None` unless it was the whole frame.
    pub fn finish(self) -> Option<Check> {
        let Self {
            mut summer, carry, ..
        } = self;
        carry.finish(|w| summer.add(w));
        (self.done == self.len).then(|| summer.finish())
    }

    /// What the copy found against `carried`, the check of the frame in the link buffer at
    /// `buf` of `src` it was copied from: on a mismatch (or a copy that did not cover the
    /// frame) the source is checked again, as in [`copy_out`].
    pub fn verdict(self, src: &DataRegion, buf: usize, carried: Check) -> Verdict {
        let len = self.len;
        if self.finish() == Some(carried) {
            Verdict::Good
        } else {
            judge(src, buf, len, carried)
        }
    }
}

/// After a copy that did not match `carried`: whose fault.
fn judge(src: &DataRegion, buf: usize, len: usize, carried: Check) -> Verdict {
    if region_check(src, buf, len) == Some(carried) {
        Verdict::OwnCopy
    } else {
        Verdict::Source
    }
}

/// Verifies the frame of `len` bytes in the link buffer at `buf` where it lies (a client
/// that copies it on itself, into guest RAM): `Good` or `Source`.
pub fn verify_in_place(region: &DataRegion, buf: usize, len: usize) -> Verdict {
    match (read(region, buf), region_check(region, buf, len)) {
        (Some(c), Some(d)) if c == d => Verdict::Good,
        _ => Verdict::Source,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::link::BUF_SIZE;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn the_length_counts() {
        assert_ne!(check(&[0; 60]), check(&[0; 64]));
        assert_ne!(check(&[0; 64]), check(&[0; 56]));
    }

    proptest! {
        /// A run of words folded in from its sums is the same as the run folded in a word at
        /// a time, wherever in the frame it lies (the sums before it, the carries, the
        /// weights).
        #[test]
        fn sums_fold_in_as_their_words(
            words in proptest::collection::vec(
                prop_oneof![Just(u64::MAX), Just(0u64), Just(0xffff_ffff), any::<u64>()],
                0..80,
            ),
            cut in any::<proptest::sample::Index>(),
            run in any::<proptest::sample::Index>(),
        ) {
            let len = 8 * words.len();
            let mut one = Summer::new(len);
            words.iter().for_each(|&w| one.add(w));
            let a = cut.index(words.len() + 1);
            let b = a + run.index(words.len() - a + 1);
            let mut folded = Summer::new(len);
            words[..a].iter().for_each(|&w| folded.add(w));
            folded.add_sums(BlockSums::of(&words[a..b]));
            words[b..].iter().for_each(|&w| folded.add(w));
            prop_assert_eq!(folded.finish(), one.finish());
        }
    }

    #[test]
    fn a_word_changed_between_all_zeros_and_all_ones_is_caught() {
        // The ones' complement sum cannot tell 0 from !0 in one word; the weighted sum,
        // over plain running sums, does.
        let a = [0u8; 64];
        let mut b = [0u8; 64];
        b[8..16].fill(0xff);
        assert_ne!(check(&a), check(&b));
    }

    /// A link buffer (in a region of its own) holding `frame` and its check.
    fn sealed(words: &mut [u64], frame: &[u8]) -> DataRegion {
        use core::ptr::NonNull;
        let r = NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer outlives the region in each test.
        let region =
            unsafe { DataRegion::alias(&axolotl_ring::SharedRegion::new(r, words.len() * 8)) };
        assert!(copy_in(&region, 0, frame));
        region
    }

    /// The frame's bytes copied in pieces of `cuts` bytes (the rest in a last one), each
    /// to a buffer of its own 4 bytes past 8-aligned, as a guest's receive buffers after
    /// virtio-net's header: the verdict and the bytes as copied.
    fn copy_in_pieces(region: &DataRegion, len: usize, cuts: &[usize]) -> (Verdict, Vec<u8>) {
        let mut s = PieceSummer::new(len);
        let mut out = Vec::new();
        let mut at = 0;
        for n in cuts.iter().copied().chain([usize::MAX]) {
            let n = n.min(len - at);
            let mut buf = [0u64; MAX_FRAME / 8 + 2];
            let dst = buf.as_mut_ptr().cast::<u8>().wrapping_add(4);
            // SAFETY: `n` <= MAX_FRAME bytes of `buf` from byte 4, outside the region.
            assert!(unsafe { s.copy_out_raw(region, at, dst, n) });
            // SAFETY: as above.
            out.extend_from_slice(unsafe { core::slice::from_raw_parts(dst, n) });
            at += n;
        }
        let carried = read(region, 0).unwrap();
        (s.verdict(region, 0, carried), out)
    }

    #[test]
    fn a_frame_copied_in_odd_pieces_verifies() {
        let frame: Vec<u8> = (0..1514u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut words = [0u64; BUF_SIZE / 8];
        let region = sealed(&mut words, &frame);
        for cuts in [&[][..], &[1502], &[1, 2, 3, 5, 8, 13], &[700, 1], &[1514]] {
            assert_eq!(
                copy_in_pieces(&region, frame.len(), cuts),
                (Verdict::Good, frame.clone()),
                "{cuts:?}"
            );
        }
    }

    /// A copy that went wrong after its store (what a read-back sees, fed as a staging copy
    /// would be) is this side's own fault; so is one that did not cover the frame.
    #[test]
    fn a_piecewise_copy_that_differs_from_the_source_is_its_own_fault() {
        let frame: Vec<u8> = (0..333u32).map(|i| i as u8).collect();
        let mut words = [0u64; BUF_SIZE / 8];
        let region = sealed(&mut words, &frame);
        let carried = read(&region, 0).unwrap();
        let mut bad = frame.clone();
        bad[200] ^= 0x10;
        let mut s = PieceSummer::new(frame.len());
        s.push_bytes(&bad[..101]);
        s.push_bytes(&bad[101..]);
        assert_eq!(s.verdict(&region, 0, carried), Verdict::OwnCopy);
        let mut s = PieceSummer::new(frame.len());
        s.push_bytes(&frame[..332]);
        assert_eq!(s.finish(), None);
        let mut s = PieceSummer::new(frame.len());
        s.push_bytes(&frame[..101]);
        s.push_bytes(&frame[101..]);
        assert_eq!(s.verdict(&region, 0, carried), Verdict::Good);
    }

    /// The check as the module doc defines it, with the end-around carry at every word.
    fn reference(frame: &[u8]) -> Check {
        let (mut sum, mut plain, mut weighted) = (frame.len() as u64, frame.len() as u64, 0u64);
        for c in frame.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            let w = u64::from_le_bytes(b);
            let (s, carry) = sum.overflowing_add(w);
            sum = s + u64::from(carry);
            plain = plain.wrapping_add(w);
            weighted = weighted.wrapping_add(plain);
        }
        Check {
            sum: if sum == u64::MAX { 0 } else { sum },
            weighted,
        }
    }

    #[test]
    fn the_carry_counting_sum_is_the_ones_complement_sum_at_its_edges() {
        for frame in [
            [0xffu8; 64].to_vec(),
            [0u8; 64].to_vec(),
            // Words that make the ones' complement sum all ones, then wrap it again.
            [&[0xff; 8][..], &(u64::MAX - 16).to_le_bytes(), &[0xff; 8]].concat(),
            (u64::MAX - 8).to_le_bytes().to_vec(),
        ] {
            assert_eq!(check(&frame), reference(&frame), "{frame:x?}");
        }
    }

    proptest! {
        #[test]
        fn the_carry_counting_sum_is_the_ones_complement_sum(
            frame in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..=MAX_FRAME),
        ) {
            prop_assert_eq!(check(&frame), reference(&frame));
        }

        #[test]
        fn any_single_bit_flip_is_caught(
            frame in proptest::collection::vec(any::<u8>(), 14..=MAX_FRAME),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let good = check(&frame);
            let mut bad = frame.clone();
            let i = at.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert_ne!(check(&bad), good);
        }

        /// Any bit flipped in the source of a copy in pieces (the link buffer, before the
        /// copy) is caught and is the source's, wherever the pieces are cut.
        #[test]
        fn any_bit_flipped_before_a_piecewise_copy_is_the_sources(
            frame in proptest::collection::vec(any::<u8>(), 14..=MAX_FRAME),
            cuts in proptest::collection::vec(1usize..600, 0..5),
            at in any::<prop::sample::Index>(),
        ) {
            let mut words = [0u64; BUF_SIZE / 8];
            let region = sealed(&mut words, &frame);
            prop_assert_eq!(copy_in_pieces(&region, frame.len(), &cuts).0, Verdict::Good);
            let bit = at.index(8 * frame.len());
            let b = region.read_u8(bit / 8).unwrap();
            prop_assert!(region.write_u8(bit / 8, b ^ 1 << (bit % 8)));
            prop_assert_eq!(copy_in_pieces(&region, frame.len(), &cuts).0, Verdict::Source);
        }

        #[test]
        fn a_word_dropped_or_duplicated_with_a_shift_is_caught(
            frame in proptest::collection::vec(any::<u8>(), 32..=MAX_FRAME),
            at in any::<prop::sample::Index>(),
            dup in any::<bool>(),
        ) {
            let words = frame.len() / 8;
            let k = at.index(words - 1);
            let mut bad: Vec<u8> = frame.clone();
            if dup {
                // Word k written twice, everything after it one word late (the length kept).
                bad.splice(8 * k..8 * k, frame[8 * k..8 * k + 8].iter().copied());
            } else {
                // Word k skipped, everything after it one word early, the end stale.
                bad.drain(8 * k..8 * k + 8);
                bad.extend_from_slice(&frame[frame.len() - 8..]);
            }
            bad.truncate(frame.len());
            prop_assume!(bad != frame);
            prop_assert_ne!(check(&bad), check(&frame));
        }
    }
}
