//! Access to a data region shared with a peer.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::SharedRegion;
use crate::bulk::{self, BLOCK, BlockSums};

/// A data region (lib/blk's command records and buffers, lib/net's frames), reached only
/// through relaxed atomics, eight bytes at a time where aligned: the
/// race-free equivalent of volatile accesses to memory the peer may write at any moment. No
/// `&[u8]` is ever formed over it. The ring's Acquire/Release on the queue indices orders
/// these accesses against the peer's. Every access is bounds-checked here, whatever the
/// caller checked.
#[derive(Debug)]
pub struct DataRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: accessed only through atomics.
unsafe impl Send for DataRegion {}

/// The bytes of a word not complete yet, carried from one piece of a range copied out in
/// several into the next ([`DataRegion::copy_out_raw_piece`]): the range's words are
/// numbered from its start, wherever its pieces end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WordCarry {
    /// The bytes so far, little-endian from bit 0.
    word: u64,
    bytes: u32,
}

impl WordCarry {
    pub const fn new() -> Self {
        Self { word: 0, bytes: 0 }
    }

    /// No word started.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Bytes that complete the word started (0 if none is).
    pub fn missing(&self) -> usize {
        if self.bytes == 0 {
            0
        } else {
            8 - self.bytes as usize
        }
    }

    /// The range's next byte; hands the word once it is whole.
    #[inline(always)]
    pub fn push(&mut self, b: u8, word: &mut impl FnMut(u64)) {
        self.word |= u64::from(b) << (8 * self.bytes);
        self.bytes += 1;
        if self.bytes == 8 {
            word(self.word);
            *self = Self::new();
        }
    }

    /// The range's next bytes: whole words at once once the carried one is complete (a
    /// received frame's headers, pushed in front of its copied payload, were eight
    /// instructions a byte).
    pub fn push_bytes(&mut self, bytes: &[u8], mut word: impl FnMut(u64)) {
        let lead = self.missing().min(bytes.len());
        for &b in &bytes[..lead] {
            self.push(b, &mut word);
        }
        let mut words = bytes[lead..].chunks_exact(8);
        for w in &mut words {
            word(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        for &b in words.remainder() {
            self.push(b, &mut word);
        }
    }

    /// The range's end: hands its last word, zero-padded, if one was started.
    pub fn finish(self, mut word: impl FnMut(u64)) {
        if self.bytes != 0 {
            word(self.word);
        }
    }
}

impl DataRegion {
    /// A view of the same memory as `region`, which stays with lib/ring.
    ///
    /// # Safety
    /// The memory must stay mapped as long as the view lives (true when the view lives next
    /// to the ring endpoint that owns `region`).
    pub unsafe fn alias(region: &SharedRegion) -> Self {
        Self {
            ptr: region.as_ptr(),
            len: region.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `offset..offset + len` lies inside the region.
    pub fn contains(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }

    fn aligned<T>(&self, offset: usize) -> Option<*mut T> {
        if !self.contains(offset, size_of::<T>()) {
            return None;
        }
        // SAFETY: in bounds (checked just above).
        let p = unsafe { self.ptr.as_ptr().add(offset) };
        p.cast::<T>().is_aligned().then_some(p.cast())
    }

    /// The aligned `u32` at `offset`; `None` if outside or misaligned.
    pub fn read_u32(&self, offset: usize) -> Option<u32> {
        let p = self.aligned::<u32>(offset)?;
        // SAFETY: in bounds and aligned; every access to the shared region is atomic.
        Some(unsafe { AtomicU32::from_ptr(p) }.load(Ordering::Relaxed))
    }

    /// Writes the aligned `u32` at `offset`; `false` if outside or misaligned.
    pub fn write_u32(&self, offset: usize, v: u32) -> bool {
        let Some(p) = self.aligned::<u32>(offset) else {
            return false;
        };
        // SAFETY: as in `read_u32`.
        unsafe { AtomicU32::from_ptr(p) }.store(v, Ordering::Relaxed);
        true
    }

    /// The aligned `u64` at `offset`.
    pub fn read_u64(&self, offset: usize) -> Option<u64> {
        let p = self.aligned::<u64>(offset)?;
        // SAFETY: as in `read_u32`.
        Some(unsafe { AtomicU64::from_ptr(p) }.load(Ordering::Relaxed))
    }

    /// Writes the aligned `u64` at `offset`.
    pub fn write_u64(&self, offset: usize, v: u64) -> bool {
        let Some(p) = self.aligned::<u64>(offset) else {
            return false;
        };
        // SAFETY: as in `read_u32`.
        unsafe { AtomicU64::from_ptr(p) }.store(v, Ordering::Relaxed);
        true
    }

    /// The byte at `offset`; `None` past the end. For byte streams (a UART's FIFO is fed a
    /// byte at a time); bulk data goes through [`DataRegion::copy_out`].
    pub fn read_u8(&self, offset: usize) -> Option<u8> {
        (offset < self.len).then(|| self.byte(offset).load(Ordering::Relaxed))
    }

    /// Writes the byte at `offset`; `false` past the end.
    pub fn write_u8(&self, offset: usize, v: u8) -> bool {
        if offset >= self.len {
            return false;
        }
        self.byte(offset).store(v, Ordering::Relaxed);
        true
    }

    fn byte(&self, offset: usize) -> &AtomicU8 {
        debug_assert!(offset < self.len);
        // SAFETY: callers check bounds; alignment 1; all accesses atomic.
        unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset)) }
    }

    /// Copies `src` to `offset..offset + src.len()`; `false` (nothing copied) if that is not
    /// inside the region. Bytes up to the first aligned word, then whole words in a loop
    /// without per-word checks (the range was checked once), then the tail: the data path
    /// copies every frame and block through here, several times per hop.
    pub fn copy_in(&self, offset: usize, src: &[u8]) -> bool {
        // SAFETY: a slice is `len` readable bytes.
        unsafe { self.copy_in_raw(offset, src.as_ptr(), src.len()) }
    }

    /// [`DataRegion::copy_in`] from `len` bytes at `src`: for a source no Rust reference may
    /// be formed over either (a VMM copying guest RAM straight into the region, with no
    /// staging buffer between).
    ///
    /// # Safety
    /// `src..src + len` must be readable and not inside this region.
    pub unsafe fn copy_in_raw(&self, offset: usize, src: *const u8, len: usize) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let head = self.head(offset, len);
        for i in 0..head {
            // SAFETY: i < len bytes from `src`, the caller's.
            let b = unsafe { src.add(i).read() };
            self.byte(offset + i).store(b, Ordering::Relaxed);
        }
        let words = (len - head) / 8;
        // SAFETY: `offset + head` is 8-aligned and `words` words from it lie inside the
        // region (checked above).
        let base = unsafe { self.ptr.as_ptr().add(offset + head) }.cast::<u64>();
        // SAFETY: head <= len.
        let body = unsafe { src.add(head) };
        if body.cast::<u64>().is_aligned() {
            // The usual case (aligned buffers on both sides): whole-word loads. Assembling
            // a word from bytes costs ~2 instructions a byte on a target with strict
            // alignment (aarch64-unknown-none), which was most of a blk request's time.
            // SAFETY: `words` aligned words of `src` from `body`; the region's as above.
            unsafe { bulk::copy_words(base, body.cast::<u64>(), words) };
        } else if body.cast::<u32>().is_aligned() {
            // Half-aligned (a frame 12 bytes into a guest's buffer, after virtio-net's
            // header): two word loads, not eight byte loads, per region word.
            let s = body.cast::<u32>();
            for k in 0..words {
                // SAFETY: `2 * words` aligned u32s of `src` from `s`; the region's as above.
                let v = unsafe {
                    let (lo, hi) = (s.add(2 * k).read(), s.add(2 * k + 1).read());
                    u64::from(lo) | u64::from(hi) << 32
                };
                let v = if cfg!(target_endian = "little") {
                    v
                } else {
                    v.rotate_left(32)
                };
                // SAFETY: in bounds and aligned (above); every access to the region is atomic.
                unsafe { AtomicU64::from_ptr(base.add(k)) }.store(v, Ordering::Relaxed);
            }
        } else {
            // SAFETY: `words` words of `src` from `body` (the caller's `len` bytes).
            unsafe {
                shifted_words(body, words, |k, v| {
                    // SAFETY: in bounds and aligned (above); every access to the region
                    // is atomic.
                    AtomicU64::from_ptr(base.add(k)).store(v, Ordering::Relaxed)
                })
            };
        }
        for i in head + words * 8..len {
            // SAFETY: i < len bytes from `src`, the caller's.
            let b = unsafe { src.add(i).read() };
            self.byte(offset + i).store(b, Ordering::Relaxed);
        }
        true
    }

    /// Copies `offset..offset + dst.len()` into `dst`; `false` (nothing copied) if that is
    /// not inside the region. As [`DataRegion::copy_in`], word by word where aligned.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> bool {
        // SAFETY: a mutable slice is `len` writable bytes no one else reaches.
        unsafe { self.copy_out_raw(offset, dst.as_mut_ptr(), dst.len()) }
    }

    /// [`DataRegion::copy_out`] to `len` bytes at `dst` (guest RAM, for a VMM: no staging
    /// buffer between the region and the guest's).
    ///
    /// # Safety
    /// `dst..dst + len` must be writable and not inside this region.
    pub unsafe fn copy_out_raw(&self, offset: usize, dst: *mut u8, len: usize) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let head = self.head(offset, len);
        for i in 0..head {
            let b = self.byte(offset + i).load(Ordering::Relaxed);
            // SAFETY: i < len bytes from `dst`, the caller's.
            unsafe { dst.add(i).write(b) };
        }
        let words = (len - head) / 8;
        // SAFETY: as in `copy_in_raw`.
        let base = unsafe { self.ptr.as_ptr().add(offset + head) }.cast::<u64>();
        // SAFETY: head <= len.
        let body = unsafe { dst.add(head) };
        if body.cast::<u64>().is_aligned() {
            // As in `copy_in_raw`: whole-word stores where `dst` allows them.
            // SAFETY: `words` aligned words of `dst` from `body`; the region's as above.
            unsafe { bulk::copy_words(body.cast::<u64>(), base, words) };
        } else if body.cast::<u32>().is_aligned() {
            // Half-aligned, as in `copy_in_raw`: two word stores per region word.
            let d = body.cast::<u32>();
            for k in 0..words {
                // SAFETY: as in `copy_in_raw`.
                let v = unsafe { AtomicU64::from_ptr(base.add(k)) }.load(Ordering::Relaxed);
                let v = if cfg!(target_endian = "little") {
                    v
                } else {
                    v.rotate_left(32)
                };
                // SAFETY: `2 * words` aligned u32s of `dst` from `d`.
                unsafe {
                    d.add(2 * k).write(v as u32);
                    d.add(2 * k + 1).write((v >> 32) as u32);
                }
            }
        } else {
            for k in 0..words {
                // SAFETY: as in `copy_in_raw`.
                let v = unsafe { AtomicU64::from_ptr(base.add(k)) }.load(Ordering::Relaxed);
                // SAFETY: 8 bytes of `dst` (unaligned write).
                unsafe { body.add(8 * k).cast::<u64>().write_unaligned(v) };
            }
        }
        for i in head + words * 8..len {
            let b = self.byte(offset + i).load(Ordering::Relaxed);
            // SAFETY: i < len bytes from `dst`, the caller's.
            unsafe { dst.add(i).write(b) };
        }
        true
    }

    /// Copies `len` bytes at `offset` into `dst` at `dst_offset` (a frame from one peer's
    /// region into another's, with no staging buffer between); `false` (nothing copied)
    /// if either range is outside its region. Whole words where both sides are 8-aligned
    /// (link buffers are), otherwise through a small stack buffer.
    pub fn copy_to(&self, offset: usize, dst: &DataRegion, dst_offset: usize, len: usize) -> bool {
        if !self.contains(offset, len) || !dst.contains(dst_offset, len) {
            return false;
        }
        let (src_at, dst_at) = (
            self.ptr.as_ptr() as usize + offset,
            dst.ptr.as_ptr() as usize + dst_offset,
        );
        if src_at.is_multiple_of(8) && dst_at.is_multiple_of(8) {
            let words = len / 8;
            // SAFETY: both ranges checked above, both 8-aligned; every access is atomic.
            let (s, d) = unsafe {
                (
                    self.ptr.as_ptr().add(offset).cast::<u64>(),
                    dst.ptr.as_ptr().add(dst_offset).cast::<u64>(),
                )
            };
            // SAFETY: `words` words inside both regions (checked above), 8-aligned.
            unsafe { bulk::copy_words(d, s, words) };
            for i in words * 8..len {
                let b = self.byte(offset + i).load(Ordering::Relaxed);
                dst.byte(dst_offset + i).store(b, Ordering::Relaxed);
            }
            return true;
        }
        let mut chunk = [0u64; 32];
        // SAFETY: the array's 256 bytes, ours alone.
        let chunk: &mut [u8; 256] = unsafe { &mut *chunk.as_mut_ptr().cast() };
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            self.copy_out(offset + done, &mut chunk[..n]);
            dst.copy_in(dst_offset + done, &chunk[..n]);
            done += n;
        }
        true
    }

    /// Copies `blocks` blocks of [`BLOCK`] bytes from `src` to `offset..` and returns the
    /// sums of the copied words (numbered from `offset`): as read back from the region after
    /// the stores if `BACK`, as loaded from `src` otherwise (lib/ring `bulk`'s vector loop:
    /// about two instructions a word for copy and sums, either side of any alignment).
    /// `None` (nothing copied) if the range is not inside the region.
    ///
    /// # Safety
    /// As [`DataRegion::copy_in_raw`], for `BLOCK * blocks` bytes.
    pub unsafe fn copy_in_raw_blocks<const BACK: bool>(
        &self,
        offset: usize,
        src: *const u8,
        blocks: usize,
    ) -> Option<BlockSums> {
        let at = self.blocks_at(offset, blocks)?;
        // SAFETY: inside the region; `src` the caller's; a region no caller's memory lies in.
        Some(unsafe { bulk::copy_blocks_summed::<BACK>(at, src, blocks) })
    }

    /// Where `blocks` blocks of [`BLOCK`] bytes from `offset` lie, if inside the region.
    fn blocks_at(&self, offset: usize, blocks: usize) -> Option<*mut u8> {
        let len = blocks.checked_mul(BLOCK)?;
        // SAFETY: in bounds (checked first).
        self.contains(offset, len)
            .then(|| unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Copies `blocks` blocks of [`BLOCK`] bytes at `offset..` to `dst` and returns the sums
    /// of the words as read back from `dst` after the stores ([`DataRegion::copy_out_raw_words`]'
    /// words, as [`BlockSums`]). `None` (nothing copied) if the range is not inside the
    /// region.
    ///
    /// # Safety
    /// As [`DataRegion::copy_out_raw`], for `BLOCK * blocks` bytes.
    pub unsafe fn copy_out_raw_blocks(
        &self,
        offset: usize,
        dst: *mut u8,
        blocks: usize,
    ) -> Option<BlockSums> {
        let at = self.blocks_at(offset, blocks)?;
        // SAFETY: as in `copy_in_raw_blocks`.
        Some(unsafe { bulk::copy_blocks_summed::<true>(dst, at, blocks) })
    }

    /// [`DataRegion::copy_in_raw`] that also hands `word` every 8-byte word of the
    /// source, in order, as it is copied: word `k` is the little-endian value of bytes
    /// `8k..8k + 8` of the copied range, the last one zero-padded. For a check word
    /// computed in the copy's own loop (lib/net's frame check): one pass, not two. Where
    /// the region's range is not 8-aligned the copy is the plain one and the words are
    /// read from the source after it.
    ///
    /// # Safety
    /// As [`DataRegion::copy_in_raw`].
    pub unsafe fn copy_in_raw_words(
        &self,
        offset: usize,
        src: *const u8,
        len: usize,
        mut word: impl FnMut(u64),
    ) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let words = len / 8;
        if self.head(offset, len) != 0 {
            // SAFETY: forwarded.
            unsafe { self.copy_in_raw(offset, src, len) };
            for k in 0..words {
                // SAFETY: 8 of the caller's `len` bytes.
                word(u64::from_le(unsafe {
                    src.add(8 * k).cast::<u64>().read_unaligned()
                }));
            }
        } else {
            // SAFETY: `offset` is 8-aligned and `words` words from it lie inside the
            // region (checked above).
            let base = unsafe { self.ptr.as_ptr().add(offset) }.cast::<u64>();
            let store = |k: usize, v: u64| {
                // SAFETY: k < words, inside the region; every access is atomic.
                unsafe { AtomicU64::from_ptr(base.add(k)) }.store(v, Ordering::Relaxed)
            };
            if src.cast::<u64>().is_aligned() {
                let s = src.cast::<u64>();
                for k in 0..words {
                    // SAFETY: `words` aligned words of the caller's.
                    let v = unsafe { s.add(k).read() };
                    store(k, v);
                    word(u64::from_le(v));
                }
            } else if src.cast::<u32>().is_aligned() {
                let s = src.cast::<u32>();
                for k in 0..words {
                    // SAFETY: `2 * words` aligned u32s of the caller's.
                    let (lo, hi) = unsafe { (s.add(2 * k).read(), s.add(2 * k + 1).read()) };
                    let v = if cfg!(target_endian = "little") {
                        u64::from(lo) | u64::from(hi) << 32
                    } else {
                        u64::from(lo) << 32 | u64::from(hi)
                    };
                    store(k, v);
                    word(u64::from_le(v));
                }
            } else {
                // SAFETY: `words` words of the caller's from `src`.
                unsafe {
                    shifted_words(src, words, |k, v| {
                        store(k, v);
                        word(u64::from_le(v));
                    })
                };
            }
            for i in words * 8..len {
                // SAFETY: i < len bytes from `src`, the caller's.
                let b = unsafe { src.add(i).read() };
                self.byte(offset + i).store(b, Ordering::Relaxed);
            }
        }
        if !len.is_multiple_of(8) {
            let mut last = [0u8; 8];
            for (j, b) in last.iter_mut().enumerate().take(len % 8) {
                // SAFETY: inside the caller's `len` bytes.
                *b = unsafe { src.add(words * 8 + j).read() };
            }
            word(u64::from_le_bytes(last));
        }
        true
    }

    /// [`DataRegion::copy_out_raw`] that hands `word` every 8-byte word *of the
    /// destination, read back after its store* (numbered as in
    /// [`DataRegion::copy_in_raw_words`]): what a check over the copy must see, since a
    /// store that went wrong (skipped, or of a damaged register) leaves the source intact.
    /// The read-back is volatile, so the compiler cannot answer it from the register just
    /// stored.
    ///
    /// # Safety
    /// As [`DataRegion::copy_out_raw`].
    pub unsafe fn copy_out_raw_words(
        &self,
        offset: usize,
        dst: *mut u8,
        len: usize,
        mut word: impl FnMut(u64),
    ) -> bool {
        let mut carry = WordCarry::new();
        // SAFETY: forwarded.
        if !unsafe { self.copy_out_raw_piece(offset, dst, len, &mut carry, &mut word) } {
            return false;
        }
        carry.finish(word);
        true
    }

    /// One piece of a range copied out in several ([`DataRegion::copy_out_raw_words`]
    /// for a range whose destination is not one buffer: a frame spread over a guest's
    /// receive buffers, each piece one descriptor of any length). `carry` holds the bytes
    /// of the range's last word that the pieces before this one ended in; the words
    /// handed are the whole range's, as read back from the destination, and
    /// [`WordCarry::finish`] hands the last one after the last piece. `false` (nothing
    /// copied, `carry` unchanged) if the piece is not inside the region.
    ///
    /// Whole words where the region's side is 8-aligned once the carried word is complete
    /// (a link buffer's frame is) and the destination 8- or 4-aligned (a frame lands 12
    /// bytes into a guest's buffer, after virtio-net's header): a load, the stores, the
    /// read-back and `word` per word, in one loop. Otherwise a byte at a time.
    ///
    /// # Safety
    /// As [`DataRegion::copy_out_raw`].
    pub unsafe fn copy_out_raw_piece(
        &self,
        offset: usize,
        dst: *mut u8,
        len: usize,
        carry: &mut WordCarry,
        mut word: impl FnMut(u64),
    ) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        // The bytes that complete the word the last piece ended in.
        let lead = carry.missing().min(len);
        for i in 0..lead {
            // SAFETY: i < len: inside the region (checked above) and the caller's bytes.
            unsafe { self.copy_byte_back(offset + i, dst.add(i), carry, &mut word) };
        }
        let (offset, len) = (offset + lead, len - lead);
        // SAFETY: lead <= len bytes of the caller's.
        let dst = unsafe { dst.add(lead) };
        // With the carried word complete (or the piece used up), whole words where the
        // region allows them.
        let words = if carry.is_empty() && self.head(offset, len) == 0 {
            len / 8
        } else {
            0
        };
        if words > 0 {
            // SAFETY: `offset` is 8-aligned and `words` words from it lie inside the
            // region (checked above).
            let base = unsafe { self.ptr.as_ptr().add(offset) }.cast::<u64>();
            let load =
                // SAFETY: k < words: inside the region; every access to it is atomic.
                |k: usize| unsafe { AtomicU64::from_ptr(base.add(k)) }.load(Ordering::Relaxed);
            // The loops run two words a round: the loop's own count and branch were two
            // of a word's eleven or twelve instructions otherwise (docs/benchmarks.md,
            // "The frame check in the VMM's copy").
            if dst.cast::<u64>().is_aligned() {
                let d = dst.cast::<u64>();
                // SAFETY: k < words: `words` aligned words of the caller's from `d`.
                let one = |k: usize| unsafe {
                    d.add(k).write(load(k));
                    u64::from_le(d.add(k).read_volatile())
                };
                for pair in 0..words / 2 {
                    word(one(2 * pair));
                    word(one(2 * pair + 1));
                }
                if words % 2 == 1 {
                    word(one(words - 1));
                }
            } else if cfg!(target_endian = "little") && dst.cast::<u32>().is_aligned() {
                // Half-aligned (a frame 12 bytes into a guest's buffer, after virtio-net's
                // header), with no unaligned access (a strict-alignment target has none):
                // the destination's own aligned words are stored whole, each the upper half
                // of one region word and the lower half of the next (`extr` on aarch64),
                // and read back whole; region word `k` is the upper half of read-back `k`
                // and the lower half of read-back `k + 1`. The range's first and last four
                // bytes are stored and read back alone: the bytes beside them are not its.
                let d32 = dst.cast::<u32>();
                let mut v = load(0);
                // SAFETY: the range's first 4 bytes, 4-aligned.
                let mut r = u64::from(unsafe {
                    d32.write(v as u32);
                    d32.read_volatile()
                }) << 32;
                // SAFETY: 1 <= k < words: bytes 8k - 4 .. 8k + 4 of the range, 8-aligned.
                let mut one = |k: usize| unsafe {
                    let next = load(k);
                    let a = dst.add(8 * k - 4).cast::<u64>();
                    a.write(v >> 32 | next << 32);
                    let back = a.read_volatile();
                    let w = r >> 32 | back << 32;
                    (v, r) = (next, back);
                    w
                };
                for pair in 0..(words - 1) / 2 {
                    word(one(2 * pair + 1));
                    word(one(2 * pair + 2));
                }
                if (words - 1) % 2 == 1 {
                    word(one(words - 1));
                }
                // SAFETY: the last 4 bytes of the words, 4-aligned.
                let last = u64::from(unsafe {
                    let p = d32.add(2 * words - 1);
                    p.write((v >> 32) as u32);
                    p.read_volatile()
                });
                word(r >> 32 | last << 32);
            } else if dst.cast::<u32>().is_aligned() {
                // Half-aligned on a big-endian target: two stores and two read-backs per
                // region word.
                let d = dst.cast::<u32>();
                for k in 0..words {
                    let v = load(k);
                    // SAFETY: k < words: `2 * words` aligned u32s of the caller's from `d`.
                    let (a, b) = unsafe {
                        d.add(2 * k).write((v >> 32) as u32);
                        d.add(2 * k + 1).write(v as u32);
                        (
                            d.add(2 * k).read_volatile(),
                            d.add(2 * k + 1).read_volatile(),
                        )
                    };
                    word(u64::from_le(u64::from(a) << 32 | u64::from(b)));
                }
            } else {
                for k in 0..words {
                    // SAFETY: 8 of the caller's bytes (unaligned write, byte read-backs).
                    let back = unsafe {
                        let p = dst.add(8 * k);
                        p.cast::<u64>().write_unaligned(load(k));
                        let mut b = [0u8; 8];
                        for (j, x) in b.iter_mut().enumerate() {
                            *x = p.add(j).read_volatile();
                        }
                        b
                    };
                    word(u64::from_le_bytes(back));
                }
            }
        }
        for i in words * 8..len {
            // SAFETY: i < len: inside the region (checked above) and the caller's bytes.
            unsafe { self.copy_byte_back(offset + i, dst.add(i), carry, &mut word) };
        }
        true
    }

    /// [`DataRegion::copy_in_raw`] of one piece of a range written in several (a frame
    /// built from its headers and the pieces of a guest's packet, straight into a link
    /// buffer), handing `word` each of the range's words as read back from the region once
    /// it is whole: the words a check is computed over (lib/net `check`), in the copy's own
    /// loop instead of a pass of their own after it. `carry` holds the bytes of the word the
    /// pieces before ended in, as in [`DataRegion::copy_out_raw_piece`]. `false` (nothing
    /// copied, `carry` unchanged) if the piece is not inside the region.
    ///
    /// # Safety
    /// As [`DataRegion::copy_in_raw`].
    pub unsafe fn copy_in_raw_piece(
        &self,
        offset: usize,
        src: *const u8,
        len: usize,
        carry: &mut WordCarry,
        mut word: impl FnMut(u64),
    ) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let lead = carry.missing().min(len);
        for i in 0..lead {
            // SAFETY: i < len: inside the region (checked above) and the caller's bytes.
            unsafe { self.put_byte_back(offset + i, src.add(i), carry, &mut word) };
        }
        let (offset, len) = (offset + lead, len - lead);
        // SAFETY: lead <= len bytes of the caller's.
        let src = unsafe { src.add(lead) };
        let words = if carry.is_empty() && self.head(offset, len) == 0 {
            len / 8
        } else {
            0
        };
        if words > 0 {
            // SAFETY: `offset` is 8-aligned and `words` words from it lie inside the
            // region (checked above).
            let base = unsafe { self.ptr.as_ptr().add(offset) }.cast::<u64>();
            // Stored, then read back: the word the region holds is the one handed on.
            let put = |k: usize, v: u64| {
                // SAFETY: k < words: inside the region; every access to it is atomic.
                let a = unsafe { AtomicU64::from_ptr(base.add(k)) };
                a.store(v, Ordering::Relaxed);
                u64::from_le(a.load(Ordering::Relaxed))
            };
            if src.cast::<u64>().is_aligned() {
                let s = src.cast::<u64>();
                for k in 0..words {
                    // SAFETY: k < words aligned words of the caller's from `s`.
                    word(put(k, unsafe { s.add(k).read() }));
                }
            } else if src.cast::<u32>().is_aligned() {
                let s = src.cast::<u32>();
                for k in 0..words {
                    // SAFETY: `2 * words` aligned u32s of the caller's from `s`.
                    let (lo, hi) = unsafe { (s.add(2 * k).read(), s.add(2 * k + 1).read()) };
                    let v = if cfg!(target_endian = "little") {
                        u64::from(lo) | u64::from(hi) << 32
                    } else {
                        u64::from(hi) | u64::from(lo) << 32
                    };
                    word(put(k, v));
                }
            } else {
                // SAFETY: `words` words of the caller's from `src`.
                unsafe { shifted_words(src, words, |k, v| word(put(k, v))) };
            }
        }
        for i in words * 8..len {
            // SAFETY: i < len: inside the region (checked above) and the caller's bytes.
            unsafe { self.put_byte_back(offset + i, src.add(i), carry, &mut word) };
        }
        true
    }

    /// Stores the caller's byte at `src` at `offset` (inside the region) and pushes it, read
    /// back, onto `carry`.
    ///
    /// # Safety
    /// `src` must be readable.
    #[inline(always)]
    unsafe fn put_byte_back(
        &self,
        offset: usize,
        src: *const u8,
        carry: &mut WordCarry,
        word: &mut impl FnMut(u64),
    ) {
        // SAFETY: the caller's.
        let b = unsafe { src.read() };
        let at = self.byte(offset);
        at.store(b, Ordering::Relaxed);
        carry.push(at.load(Ordering::Relaxed), word);
    }

    /// Copies the byte at `offset` (inside the region) to `dst` and pushes it, read back,
    /// onto `carry`.
    ///
    /// # Safety
    /// `dst` must be writable and not inside this region.
    #[inline(always)]
    unsafe fn copy_byte_back(
        &self,
        offset: usize,
        dst: *mut u8,
        carry: &mut WordCarry,
        word: &mut impl FnMut(u64),
    ) {
        let b = self.byte(offset).load(Ordering::Relaxed);
        // SAFETY: the caller's.
        let back = unsafe {
            dst.write(b);
            dst.read_volatile()
        };
        carry.push(back, word);
    }

    /// Hands `word` the 8-byte words of `offset..offset + len` (numbered as in
    /// [`DataRegion::copy_in_raw_words`]) without copying them anywhere; `false` (no word
    /// handed) if the range is not inside the region.
    pub fn words(&self, offset: usize, len: usize, mut word: impl FnMut(u64)) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        let words = len / 8;
        if self.head(offset, len) == 0 {
            // SAFETY: as in `copy_in_raw_words`.
            let base = unsafe { self.ptr.as_ptr().add(offset) }.cast::<u64>();
            for k in 0..words {
                // SAFETY: k < words, inside the region; atomic.
                word(u64::from_le(
                    unsafe { AtomicU64::from_ptr(base.add(k)) }.load(Ordering::Relaxed),
                ));
            }
        } else {
            for k in 0..words {
                let mut b = [0u8; 8];
                for (j, x) in b.iter_mut().enumerate() {
                    *x = self.byte(offset + 8 * k + j).load(Ordering::Relaxed);
                }
                word(u64::from_le_bytes(b));
            }
        }
        if !len.is_multiple_of(8) {
            let mut last = [0u8; 8];
            for (j, b) in last.iter_mut().enumerate().take(len % 8) {
                *b = self.byte(offset + words * 8 + j).load(Ordering::Relaxed);
            }
            word(u64::from_le_bytes(last));
        }
        true
    }

    /// Bytes from `offset` to the first 8-aligned address, at most `len`.
    fn head(&self, offset: usize, len: usize) -> usize {
        let addr = self.ptr.as_ptr() as usize + offset;
        (addr.next_multiple_of(8) - addr).min(len)
    }
}

/// Hands `f(k, v)` each 8-byte word `k < words` of the bytes at `src`, which is not
/// 8-aligned, in order: the native-endian value of bytes `8k..8k + 8`.
///
/// On a strict-alignment target (aarch64-unknown-none) an unaligned 8-byte load is eight
/// byte loads and the shifts to put them together, about twenty instructions a word. A
/// guest's transmitted frame lies 2 bytes off 8-aligned (Linux's headers pushed in front
/// of a linear skb) and the payload of a segment cut from a TSO chain anywhere, so the
/// VMM's copy of every frame it sends went that way. Here each word is one aligned load
/// of the source and two shifts: word `k` is the high part of the aligned word it starts
/// in and the low part of the next. No byte outside `src..src + 8 * words` is read: the
/// first word's low part and the last word's high part are put together from bytes.
///
/// # Safety
/// `src..src + 8 * words` readable.
#[inline(always)]
unsafe fn shifted_words(src: *const u8, words: usize, mut f: impl FnMut(usize, u64)) {
    if words == 0 {
        return;
    }
    let r = src as usize % 8;
    // Bytes `a..b` of the source as the low bytes of a little-endian word.
    let bytes = |a: usize, b: usize| {
        let mut v = 0u64;
        for i in a..b {
            // SAFETY: i < 8 * words, the caller's.
            v |= u64::from(unsafe { src.add(i).read() }) << (8 * (i - a));
        }
        v
    };
    if cfg!(target_endian = "big") || r == 0 {
        // Not the case this is for (an aligned source has its own path; no big-endian
        // target runs these copies): one word at a time, as plainly as it gets.
        for k in 0..words {
            // SAFETY: 8 of the caller's bytes (unaligned read).
            f(k, unsafe { src.add(8 * k).cast::<u64>().read_unaligned() });
        }
        return;
    }
    let (lo, hi) = (8 * r as u32, 64 - 8 * r as u32);
    // The aligned words from the first one after `src`: aligned word `j` holds bytes
    // `8j + 8 - r .. 8j + 16 - r` of the source.
    let aligned = src.wrapping_add(8 - r).cast::<u64>();
    let mut carry = bytes(0, 8 - r);
    for k in 0..words - 1 {
        // SAFETY: aligned word `k` ends at byte 8k + 16 - r <= 8 * words of the source
        // (k <= words - 2, r >= 1); volatile: guest RAM the guest may be writing.
        let next = unsafe { aligned.add(k).read_volatile() };
        f(k, carry | next << hi);
        carry = next >> lo;
    }
    let last = 8 * (words - 1);
    f(words - 1, carry | bytes(last + 8 - r, last + 8) << hi);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// A region over a u64-aligned buffer (as the SDF's page-aligned regions are).
    fn region(words: &mut [u64]) -> DataRegion {
        let len = words.len() * 8;
        let ptr = NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer outlives the region in each test.
        unsafe { DataRegion::alias(&SharedRegion::new(ptr, len)) }
    }

    proptest! {
        /// Word-wise copies move exactly the bytes asked for, at any offset and length,
        /// and nothing around them; anything past the end copies nothing.
        #[test]
        fn copies_are_exact_at_any_alignment(
            offset in 0usize..80,
            data in proptest::collection::vec(any::<u8>(), 0..70),
        ) {
            let mut words = [0x5a5a_5a5a_5a5a_5a5au64; 16];
            let r = region(&mut words);
            let fits = offset + data.len() <= r.len();
            prop_assert_eq!(r.copy_in(offset, &data), fits);
            let mut back = vec![0u8; data.len()];
            prop_assert_eq!(r.copy_out(offset, &mut back), fits);
            let mut all = vec![0u8; r.len()];
            prop_assert!(r.copy_out(0, &mut all));
            for (i, b) in all.iter().enumerate() {
                let inside = fits && (offset..offset + data.len()).contains(&i);
                let want = if inside { data[i - offset] } else { 0x5a };
                prop_assert_eq!(*b, want, "byte {}", i);
            }
            if fits {
                prop_assert_eq!(back, data);
            }
        }
    }

    /// Both word paths: the caller's buffer aligned like the region (whole-word loads and
    /// stores on both sides) and not (words assembled from bytes).
    #[test]
    fn copies_are_exact_whatever_the_callers_alignment() {
        let mut backing = [0u64; 8];
        let src: &mut [u8] = {
            // SAFETY: the u64 array's bytes, for the test's length.
            unsafe { core::slice::from_raw_parts_mut(backing.as_mut_ptr().cast(), 64) }
        };
        for (i, b) in src.iter_mut().enumerate() {
            *b = i as u8 ^ 0xa5;
        }
        for start in 0..8 {
            for offset in [0, 8, 3, 4, 12] {
                let mut words = [0u64; 16];
                let r = region(&mut words);
                let data = &src[start..start + 40];
                assert!(r.copy_in(offset, data));
                let mut out = [0u64; 8];
                // SAFETY: as above.
                let back: &mut [u8] = unsafe {
                    core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>().add(start), 40)
                };
                assert!(r.copy_out(offset, back));
                assert_eq!(&*back, data, "start {start} offset {offset}");
            }
        }
    }

    /// Region to region: exact at any alignment of either side, nothing outside touched,
    /// a range past either end refused whole.
    #[test]
    fn region_to_region_copies_are_exact_and_bounded() {
        for (from, to, len) in [(0, 0, 60), (8, 16, 43), (3, 0, 29), (0, 5, 64), (4, 12, 33)] {
            let mut a = [0u64; 16];
            let mut b = [0x5a5a_5a5a_5a5a_5a5au64; 16];
            let (ra, rb) = (region(&mut a), region(&mut b));
            let data: vec::Vec<u8> = (0..len).map(|i| i as u8 ^ 0xc3).collect();
            assert!(ra.copy_in(from, &data));
            assert!(ra.copy_to(from, &rb, to, len));
            let mut all = [0u8; 128];
            assert!(rb.copy_out(0, &mut all));
            for (i, v) in all.iter().enumerate() {
                let want = if (to..to + len).contains(&i) {
                    data[i - to]
                } else {
                    0x5a
                };
                assert_eq!(*v, want, "from {from} to {to} len {len} byte {i}");
            }
        }
        let mut a = [0u64; 4];
        let mut b = [0u64; 4];
        let (ra, rb) = (region(&mut a), region(&mut b));
        assert!(!ra.copy_to(0, &rb, 1, 32));
        assert!(!ra.copy_to(1, &rb, 0, 32));
        assert!(!ra.copy_to(usize::MAX, &rb, 0, 2));
    }

    proptest! {
        /// The word-handing copies copy exactly as the plain ones and hand the range's
        /// words, little-endian, the last zero-padded, whatever either side's alignment.
        #[test]
        fn word_copies_hand_the_ranges_words(
            offset in 0usize..40,
            start in 0usize..8,
            data in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            let want: vec::Vec<u64> = data
                .chunks(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(b)
                })
                .collect();
            let mut words = [0u64; 16];
            let r = region(&mut words);
            let mut src = [0u64; 9];
            // SAFETY: the array's bytes.
            let s: &mut [u8] = unsafe { core::slice::from_raw_parts_mut(src.as_mut_ptr().cast(), 72) };
            s[start..start + data.len()].copy_from_slice(&data);
            let mut got = vec::Vec::new();
            // SAFETY: `data.len()` bytes of `s`, outside the region.
            let ok = unsafe { r.copy_in_raw_words(offset, s.as_ptr().add(start), data.len(), |w| got.push(w)) };
            prop_assert!(ok);
            prop_assert_eq!(&got, &want);
            got.clear();
            prop_assert!(r.words(offset, data.len(), |w| got.push(w)));
            prop_assert_eq!(&got, &want);
            got.clear();
            let mut out = [0u64; 9];
            // SAFETY: as above.
            let o: &mut [u8] = unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), 72) };
            // SAFETY: `data.len()` bytes of `o`.
            let ok = unsafe { r.copy_out_raw_words(offset, o.as_mut_ptr().add(start), data.len(), |w| got.push(w)) };
            prop_assert!(ok);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(&o[start..start + data.len()], &data[..]);
            prop_assert!(!r.words(120, 9, |_| ()));
        }
    }

    proptest! {
        /// A range written in pieces of any lengths, each from a source of any alignment
        /// (a frame's headers, then a guest's packet pieces), with the partial word carried
        /// between them: the region holds the range's bytes and nothing outside it changed,
        /// and the words handed are the range's 8-byte words (the last zero-padded).
        #[test]
        fn a_range_written_in_pieces_hands_the_ranges_words(
            offset in 0usize..24,
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec((0usize..80, 0usize..8), 0..8),
        ) {
            let mut words = [0x5a5a_5a5a_5a5a_5a5au64; 48];
            let r = region(&mut words);
            let mut pieces = vec::Vec::new();
            let mut at = 0;
            for &(n, align) in &cuts {
                let n = n.min(data.len() - at);
                pieces.push((at, n, align));
                at += n;
            }
            pieces.push((at, data.len() - at, 3));
            let mut carry = WordCarry::new();
            let mut got = vec::Vec::new();
            for &(at, n, align) in &pieces {
                // Each piece from its own source buffer, `align` bytes past 8-aligned.
                let mut src = [0u64; 40];
                let base = src.as_mut_ptr().cast::<u8>();
                // SAFETY: `align + n` <= 8 + 300 bytes of the 320-byte array.
                unsafe { core::ptr::copy_nonoverlapping(data[at..].as_ptr(), base.add(align), n) };
                // SAFETY: the array's bytes, outside the region.
                let ok = unsafe {
                    r.copy_in_raw_piece(offset + at, base.add(align), n, &mut carry, |w| got.push(w))
                };
                prop_assert!(ok);
            }
            carry.finish(|w| got.push(w));
            let mut back = vec![0u8; data.len()];
            prop_assert!(r.copy_out(offset, &mut back));
            prop_assert_eq!(&back, &data);
            let mut around = [0u8; 24];
            prop_assert!(r.copy_out(0, &mut around[..offset]));
            prop_assert!(around[..offset].iter().all(|&b| b == 0x5a));
            let mut after = [0u8; 8];
            let end = offset + data.len();
            prop_assert!(r.copy_out(end, &mut after));
            prop_assert!(after.iter().all(|&b| b == 0x5a));
            let want: vec::Vec<u64> = data
                .chunks(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect();
            prop_assert_eq!(&got, &want);
        }
    }

    proptest! {
        /// A range copied out in pieces of any lengths, each to a destination of any
        /// alignment (a frame over a guest's receive buffers), with the partial word
        /// carried between them: every byte lands where its piece says, and the words
        /// handed are the whole range's, the same as the byte-at-a-time path's (each
        /// destination byte pushed onto a `WordCarry`), whichever of the word paths (8-,
        /// 4-aligned or neither) each piece took.
        #[test]
        fn a_range_copied_in_pieces_hands_the_ranges_words(
            offset in 0usize..24,
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec((0usize..80, 0usize..8), 0..8),
        ) {
            let mut words = [0u64; 48];
            let r = region(&mut words);
            prop_assert!(r.copy_in(offset, &data));
            let mut pieces = vec::Vec::new();
            let mut at = 0;
            for &(n, align) in &cuts {
                let n = n.min(data.len() - at);
                pieces.push((at, n, align));
                at += n;
            }
            pieces.push((at, data.len() - at, 4));
            let mut carry = WordCarry::new();
            let mut got = vec::Vec::new();
            let mut by_bytes = WordCarry::new();
            let mut want = vec::Vec::new();
            for &(at, n, align) in &pieces {
                // Each piece its own destination buffer, `align` bytes past 8-aligned.
                let mut out = [0u64; 40];
                let base = out.as_mut_ptr().cast::<u8>();
                // SAFETY: `align + n` <= 8 + 300 bytes of the 320-byte array, outside the region.
                let ok = unsafe {
                    r.copy_out_raw_piece(offset + at, base.add(align), n, &mut carry, |w| got.push(w))
                };
                prop_assert!(ok);
                // SAFETY: the array's bytes.
                let o: &[u8] = unsafe { core::slice::from_raw_parts(base, 320) };
                prop_assert_eq!(&o[align..align + n], &data[at..at + n]);
                by_bytes.push_bytes(&o[align..align + n], |w| want.push(w));
            }
            carry.finish(|w| got.push(w));
            by_bytes.finish(|w| want.push(w));
            prop_assert_eq!(&got, &want);
            // Both against the definition: the range's 8-byte words, the last zero-padded.
            let words: vec::Vec<u64> = data
                .chunks(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect();
            prop_assert_eq!(&want, &words);
        }
    }

    #[test]
    fn a_piece_outside_the_region_copies_nothing_and_keeps_the_carry() {
        let mut words = [0u64; 2];
        let r = region(&mut words);
        let mut carry = WordCarry::new();
        let mut out = [0u8; 8];
        // SAFETY: 3 bytes of `out`.
        assert!(unsafe { r.copy_out_raw_piece(0, out.as_mut_ptr(), 3, &mut carry, |_| ()) });
        let before = carry;
        // SAFETY: 8 bytes of `out`.
        assert!(!unsafe { r.copy_out_raw_piece(12, out.as_mut_ptr(), 8, &mut carry, |_| ()) });
        assert_eq!(carry, before);
    }

    #[test]
    fn a_range_that_overflows_is_refused() {
        let mut words = [0u64; 2];
        let r = region(&mut words);
        assert!(!r.copy_in(usize::MAX, &[1]));
        assert!(!r.copy_out(15, &mut [0, 0]));
        assert!(r.copy_out(14, &mut [0, 0]));
    }

    #[test]
    fn single_bytes_stay_inside() {
        let mut words = [0u64; 2];
        let r = region(&mut words);
        assert!(r.write_u8(15, 7));
        assert_eq!(r.read_u8(15), Some(7));
        assert!(!r.write_u8(16, 7));
        assert_eq!(r.read_u8(16), None);
        assert_eq!(r.read_u8(usize::MAX), None);
    }

    /// Words of `bytes` (a multiple of 8), little-endian.
    fn le_words(bytes: &[u8]) -> Vec<u64> {
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Bytes for the block copies: words of all ones (every lane's sum wraps), of ones in
    /// their upper or lower half only (the lower halves' sum then crosses a multiple of
    /// 2^64 the upper halves' does not: what the total's recovery must get right), zero,
    /// random.
    fn block_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        let (lo, hi) = (
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
            [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        );
        proptest::collection::vec(
            prop_oneof![
                Just([0xffu8; 8]),
                Just(lo),
                Just(hi),
                Just([0u8; 8]),
                any::<[u8; 8]>()
            ],
            0..max,
        )
        .prop_map(|w| w.concat())
    }

    proptest! {
        /// Block copies into and out of a region, from and to memory of any alignment at any
        /// offset: the bytes land whole, nothing around them is touched, and the sums are
        /// the copied words' by their definition; a range past the end copies nothing.
        #[test]
        fn block_copies_move_the_blocks_and_sum_them(
            data in block_bytes(40),
            offset in 0usize..24,
            align in 0usize..16,
            back: bool,
        ) {
            let blocks = data.len() / BLOCK;
            let data = &data[..blocks * BLOCK];
            let want = BlockSums::of(&le_words(data));
            let mut words = vec![0x5a5a_5a5a_5a5a_5a5au64; 44];
            let r = region(&mut words);
            let fits = offset + data.len() <= r.len();
            let mut src = vec![0u8; data.len() + 16];
            src[align..align + data.len()].copy_from_slice(data);
            // SAFETY: `data.len()` bytes of `src` from `align`, outside the region.
            let got = unsafe {
                if back {
                    r.copy_in_raw_blocks::<true>(offset, src.as_ptr().add(align), blocks)
                } else {
                    r.copy_in_raw_blocks::<false>(offset, src.as_ptr().add(align), blocks)
                }
            };
            prop_assert_eq!(got, fits.then_some(want));
            let mut all = vec![0u8; r.len()];
            prop_assert!(r.copy_out(0, &mut all));
            for (i, b) in all.iter().enumerate() {
                let inside = fits && (offset..offset + data.len()).contains(&i);
                let want = if inside { data[i - offset] } else { 0x5a };
                prop_assert_eq!(*b, want, "byte {}", i);
            }
            if fits {
                let mut out = vec![0xa5u8; data.len() + 32];
                // SAFETY: `data.len()` bytes of `out` from `align`, outside the region.
                let got = unsafe { r.copy_out_raw_blocks(offset, out.as_mut_ptr().add(align), blocks) };
                prop_assert_eq!(got, Some(want));
                prop_assert_eq!(&out[align..align + data.len()], data);
                prop_assert!(out[..align].iter().chain(&out[align + data.len()..]).all(|&b| b == 0xa5));
            }
        }
    }

    /// Many blocks of all-ones words: every lane wraps on every word, and the total (far
    /// past 2^64) and the weights (far past the run's length squared) still come out as
    /// their definitions.
    #[test]
    fn block_sums_survive_long_runs_of_wrapping_words() {
        let blocks = 1201;
        let data = vec![0xffu8; blocks * BLOCK];
        let mut words = vec![0u64; blocks * BLOCK / 8];
        let r = region(&mut words);
        // SAFETY: the whole region's bytes from `data`.
        let got = unsafe { r.copy_in_raw_blocks::<true>(0, data.as_ptr(), blocks) };
        assert_eq!(got, Some(BlockSums::of(&le_words(&data))));
        assert_eq!(
            got.map(|b| b.total),
            Some(u128::from(u64::MAX) * (blocks * BLOCK / 8) as u128)
        );
        // SAFETY: `data` holds the blocks (refused: one byte past the region's end).
        assert!(unsafe { r.copy_in_raw_blocks::<false>(1, data.as_ptr(), blocks) }.is_none());
        let mut out = vec![0u8; data.len()];
        // SAFETY: `out` holds the region's bytes.
        let back = unsafe { r.copy_out_raw_blocks(0, out.as_mut_ptr(), blocks) };
        assert_eq!(back, got);
    }
}
