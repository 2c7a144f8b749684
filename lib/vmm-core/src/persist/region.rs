//! The state region's words: header, redo journal and image, and the commit that moves the
//! image from one consistent state to the next, word by changed word (docs/vmm.md,
//! "Restart: the device state region").
//!
//! Crash consistency rests on two facts: the VMM's stores to the region become visible in
//! program order once it is dead (a fault is synchronous, and the kernel's exception entry
//! and context switch complete every earlier store), and a naturally aligned 64-bit store is
//! single-copy atomic. Every store here is volatile, so the compiler keeps that order too.
//! The journal's seal is the one store that decides: before it, the image is the old one;
//! after it, recovery replays the journal and the image is the new one.

use super::StateError;
use super::chunk::{self, COUNT};

/// Word-addressed memory the state region lives in: the SDF region mapped into the VMM
/// (`[u64]`), or a test double that stops storing at a chosen point.
pub trait Words {
    fn word_count(&self) -> usize;
    fn load(&self, i: usize) -> u64;
    fn store(&mut self, i: usize, v: u64);
}

impl Words for [u64] {
    fn word_count(&self) -> usize {
        self.len()
    }

    #[inline]
    fn load(&self, i: usize) -> u64 {
        self[i]
    }

    #[inline]
    fn store(&mut self, i: usize, v: u64) {
        let w = &mut self[i];
        // SAFETY: `w` is a live, aligned, exclusive reference; volatile only stops the
        // compiler from merging or reordering region stores (see the module comment).
        unsafe { core::ptr::write_volatile(w, v) };
    }
}

/// "AXVMMST\0": the region has been formatted.
pub const MAGIC: u64 = 0x0054_534D_4D56_5841;
/// Bumped on any change of layout or encoding: an older or newer region is refused.
pub const VERSION: u64 = 3;

const HEADER_WORDS: usize = 16;
/// Header words: 0 magic, 1 version, 2 region words, 3..=9 configuration, 15 checksum.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_SIZE: usize = 2;
pub(crate) const H_CONFIG: usize = 3;
pub(crate) const H_CONFIG_WORDS: usize = 7;
const H_SUM: usize = 15;

/// Journal: seal, generation, entry count, checksum, then entries: (image word, value).
const J_BASE: usize = HEADER_WORDS;
const J_SEAL: usize = J_BASE;
const J_GEN: usize = J_BASE + 1;
const J_COUNT: usize = J_BASE + 2;
const J_SUM: usize = J_BASE + 3;
const J_ENTRIES: usize = J_BASE + 4;
/// Image words, checksums included: a commit writes each at most once.
const IMAGE_WORDS: usize = {
    let mut n = 0;
    let mut id = 0;
    while id < COUNT {
        n += 1 + chunk::len(id);
        id += 1;
    }
    n
};
const J_CAPACITY: usize = 2 * IMAGE_WORDS;

/// Image: each chunk's payload followed by its checksum, at a fixed place.
const IMAGE_BASE: usize = J_ENTRIES + J_CAPACITY;
const IMAGE_OFF: [usize; COUNT + 1] = {
    let mut t = [0; COUNT + 1];
    let mut off = IMAGE_BASE;
    let mut id = 0;
    while id < COUNT {
        t[id] = off;
        off += chunk::len(id) + 1;
        id += 1;
    }
    t[COUNT] = off;
    t
};

/// Words the layout needs; the SDF region must be at least this big.
pub const REGION_WORDS: usize = IMAGE_OFF[COUNT];
/// [`REGION_WORDS`] in bytes, rounded up to whole 4 KiB pages: the SDF region's size.
pub const REGION_BYTES: usize = (REGION_WORDS * 8).next_multiple_of(0x1000);

const SEAL_KEY: u64 = 0x5EA1_ED00_C0FF_EE00;

const fn seal(generation: u64) -> u64 {
    // Never 0 (the "no journal" value) for any generation.
    (generation ^ SEAL_KEY) | 1
}

/// A word-at-a-time hash: each step is a bijection of the running value, so any change
/// confined to one word always changes the result; wider damage escapes with probability
/// about 2^-64. The seed keeps a chunk's payload from passing as another chunk's.
#[derive(Clone, Copy)]
pub(crate) struct Sum(u64);

impl Sum {
    pub(crate) const fn new(seed: u64) -> Self {
        Sum(seed ^ 0x243F_6A88_85A3_08D3)
    }

    #[inline]
    pub(crate) const fn add(self, w: u64) -> Self {
        Sum((self.0 ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29))
    }

    pub(crate) const fn get(self) -> u64 {
        self.0
    }
}

/// A chunk's checksum: the wrapping sum of a keyed bijection of each word, so a commit
/// updates it from the words it changes alone, and any change confined to one word always
/// changes it (wider damage escapes with probability about 2^-64). The key holds the chunk
/// and the word's place, so words cannot move unnoticed.
#[inline]
fn word_sum(id: usize, i: usize, w: u64) -> u64 {
    let key = ((id as u64) << 32 | i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (w ^ key ^ 0x2545_F491_4F6C_DD1D).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn chunk_sum(id: usize, payload: impl Iterator<Item = u64>) -> u64 {
    payload
        .enumerate()
        .fold(0u64, |s, (i, w)| s.wrapping_add(word_sum(id, i, w)))
}

/// The VMM's state region. Construct it over the memory the SDF maps (`setvar_vaddr`),
/// [`REGION_BYTES`] long; then either format it from a fresh [`crate::Vm`] (first start) or
/// recover a `Vm` from it (restart).
pub struct StateRegion<'a, W: Words + ?Sized> {
    mem: &'a mut W,
    generation: u64,
}

impl<'a, W: Words + ?Sized> StateRegion<'a, W> {
    pub fn new(mem: &'a mut W) -> Result<Self, StateError> {
        if mem.word_count() < REGION_WORDS {
            return Err(StateError::TooSmall);
        }
        let generation = mem.load(J_GEN);
        Ok(Self { mem, generation })
    }

    /// Whether a formatting ever completed (the magic is its last store).
    pub fn is_formatted(&self) -> bool {
        self.mem.load(H_MAGIC) == MAGIC
    }

    /// Commits made to this region (wraps); for logs and tests.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn into_inner(self) -> &'a mut W {
        self.mem
    }

    fn image(&self, id: usize) -> impl Iterator<Item = u64> + '_ {
        (IMAGE_OFF[id]..IMAGE_OFF[id] + chunk::len(id)).map(|i| self.mem.load(i))
    }

    /// Writes a whole image and header. Not crash-atomic, and needs not be: until the magic
    /// (its last store) is written, recovery refuses the region as unformatted.
    pub(crate) fn format(
        &mut self,
        config: &[u64; H_CONFIG_WORDS],
        mut encode: impl FnMut(usize, &mut [u64]),
    ) {
        self.mem.store(H_MAGIC, 0);
        self.mem.store(J_SEAL, 0);
        for id in 0..COUNT {
            let mut buf = [0u64; chunk::MAX_LEN];
            let payload = &mut buf[..chunk::len(id)];
            encode(id, payload);
            self.write_image(id, payload.iter().copied());
        }
        self.mem.store(H_VERSION, VERSION);
        self.mem.store(H_SIZE, REGION_WORDS as u64);
        for (i, w) in config.iter().enumerate() {
            self.mem.store(H_CONFIG + i, *w);
        }
        for i in H_CONFIG + H_CONFIG_WORDS..H_SUM {
            self.mem.store(i, 0);
        }
        let sum = self.header_sum(MAGIC);
        self.mem.store(H_SUM, sum);
        self.mem.store(H_MAGIC, MAGIC);
    }

    fn header_sum(&self, magic: u64) -> u64 {
        (1..H_SUM)
            .map(|i| self.mem.load(i))
            .fold(Sum::new(magic), Sum::add)
            .get()
    }

    fn write_image(&mut self, id: usize, payload: impl Iterator<Item = u64> + Clone) {
        let base = IMAGE_OFF[id];
        let mut n = 0;
        for (i, w) in payload.clone().enumerate() {
            self.mem.store(base + i, w);
            n += 1;
        }
        self.mem.store(base + n, chunk_sum(id, payload));
    }

    /// Header checks, then the journal replayed if a commit was sealed but not finished.
    pub(crate) fn open(&mut self, config: &[u64; H_CONFIG_WORDS]) -> Result<(), StateError> {
        if self.mem.load(H_MAGIC) != MAGIC {
            return Err(StateError::Unformatted);
        }
        if self.mem.load(H_SUM) != self.header_sum(MAGIC) {
            return Err(StateError::HeaderChecksum);
        }
        let version = self.mem.load(H_VERSION);
        if version != VERSION {
            return Err(StateError::Version(version));
        }
        if self.mem.load(H_SIZE) != REGION_WORDS as u64 {
            return Err(StateError::Layout);
        }
        if (0..H_CONFIG_WORDS).any(|i| self.mem.load(H_CONFIG + i) != config[i]) {
            return Err(StateError::ConfigMismatch);
        }
        self.replay()
    }

    /// Finishes a sealed commit (idempotent: a crash during replay replays again).
    fn replay(&mut self) -> Result<(), StateError> {
        let s = self.mem.load(J_SEAL);
        let generation = self.mem.load(J_GEN);
        if s == 0 {
            self.generation = generation;
            return Ok(());
        }
        if s != seal(generation) {
            return Err(StateError::Journal);
        }
        let count = self.mem.load(J_COUNT);
        if count == 0 || count > IMAGE_WORDS as u64 {
            return Err(StateError::Journal);
        }
        let mut sum = Sum::new(SEAL_KEY);
        for e in 0..count as usize {
            let at = self.mem.load(J_ENTRIES + 2 * e);
            if !(IMAGE_BASE as u64..REGION_WORDS as u64).contains(&at) {
                return Err(StateError::Journal);
            }
            sum = sum.add(at).add(self.mem.load(J_ENTRIES + 2 * e + 1));
        }
        if sum.add(generation).add(count).get() != self.mem.load(J_SUM) {
            return Err(StateError::Journal);
        }
        self.apply(count as usize);
        self.mem.store(J_SEAL, 0);
        self.generation = generation;
        Ok(())
    }

    fn apply(&mut self, count: usize) {
        for e in 0..count {
            let at = self.mem.load(J_ENTRIES + 2 * e) as usize;
            let w = self.mem.load(J_ENTRIES + 2 * e + 1);
            self.mem.store(at, w);
        }
    }

    /// Chunk `id`'s committed payload into `out` (its length), if its checksum holds.
    pub(crate) fn read(&self, id: usize, out: &mut [u64]) -> Result<(), StateError> {
        for (o, w) in out.iter_mut().zip(self.image(id)) {
            *o = w;
        }
        let sum = self.mem.load(IMAGE_OFF[id] + chunk::len(id));
        if chunk_sum(id, out.iter().copied()) != sum {
            return Err(StateError::Checksum(id as u8));
        }
        Ok(())
    }

    /// Starts a commit: put the words of each chunk (one chunk after the other), then
    /// [`Txn::finish`].
    pub(crate) fn begin(&mut self) -> Txn<'_, 'a, W> {
        Txn {
            region: self,
            count: 0,
            sum: Sum::new(SEAL_KEY),
            chunk: usize::MAX,
            delta: 0,
            changed: false,
        }
    }
}

/// One commit in the making: the words that differ from the image go into the journal,
/// with the new checksum of each chunk they change.
pub(crate) struct Txn<'r, 'a, W: Words + ?Sized> {
    region: &'r mut StateRegion<'a, W>,
    count: usize,
    sum: Sum,
    chunk: usize,
    /// What the current chunk's changed words add to its checksum.
    delta: u64,
    changed: bool,
}

impl<W: Words + ?Sized> Txn<'_, '_, W> {
    fn entry(&mut self, at: usize, w: u64) {
        let j = J_ENTRIES + 2 * self.count;
        self.region.mem.store(j, at as u64);
        self.region.mem.store(j + 1, w);
        self.sum = self.sum.add(at as u64).add(w);
        self.count += 1;
    }

    /// Ends the current chunk: its new checksum joins the journal if a word changed.
    fn close_chunk(&mut self) {
        if self.changed {
            let at = IMAGE_OFF[self.chunk] + chunk::len(self.chunk);
            let sum = self.region.mem.load(at).wrapping_add(self.delta);
            self.entry(at, sum);
        }
        self.changed = false;
        self.delta = 0;
    }

    /// Word `i` of chunk `id` is `w` after this commit. All words of a chunk must be put
    /// before those of the next.
    #[inline]
    pub(crate) fn put(&mut self, id: usize, i: usize, w: u64) {
        let at = IMAGE_OFF[id] + i;
        let old = self.region.mem.load(at);
        if old == w {
            return;
        }
        if id != self.chunk {
            self.close_chunk();
            self.chunk = id;
        }
        self.delta = self
            .delta
            .wrapping_add(word_sum(id, i, w))
            .wrapping_sub(word_sum(id, i, old));
        self.changed = true;
        self.entry(at, w);
    }

    /// Words `0..` of chunk `id`: a fast comparison, the journal only for what differs.
    pub(crate) fn put_words(&mut self, id: usize, words: &[u64]) {
        let base = IMAGE_OFF[id];
        for (i, w) in words.iter().enumerate() {
            if self.region.mem.load(base + i) != *w {
                self.put(id, i, *w);
            }
        }
    }

    /// Whether any word changed so far.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Seals, applies and clears the journal. Returns the number of words written to the
    /// image (0: no store at all).
    pub(crate) fn finish(mut self) -> usize {
        self.close_chunk();
        if self.count == 0 {
            return 0;
        }
        let generation = self.region.generation.wrapping_add(1);
        let count = self.count as u64;
        let mem = &mut *self.region.mem;
        mem.store(J_GEN, generation);
        mem.store(J_COUNT, count);
        mem.store(J_SUM, self.sum.add(generation).add(count).get());
        // The commit point.
        mem.store(J_SEAL, seal(generation));
        self.region.apply(self.count);
        self.region.mem.store(J_SEAL, 0);
        self.region.generation = generation;
        self.count
    }
}

/// For tests: where chunk `id`'s payload starts in the region.
#[cfg(test)]
pub(crate) fn image_offset(id: usize) -> usize {
    IMAGE_OFF[id]
}

/// For tests: image word `at` set to `value` with its chunk's checksum made to match, as
/// damage that checksums cannot catch.
#[cfg(test)]
pub(crate) fn rewrite_sealed<W: Words + ?Sized>(mem: &mut W, at: usize, value: u64) {
    let id = (0..COUNT).rfind(|&id| IMAGE_OFF[id] <= at).unwrap();
    mem.store(at, value);
    let range = IMAGE_OFF[id]..IMAGE_OFF[id] + chunk::len(id);
    let sum = chunk_sum(id, range.map(|i| mem.load(i)));
    mem.store(IMAGE_OFF[id] + chunk::len(id), sum);
}
