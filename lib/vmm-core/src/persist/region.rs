//! The state region's words: header, redo journal and image, and the commit that moves a
//! set of chunks from one consistent image to the next (docs/vmm.md, "Restart: the device
//! state region").
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
pub const VERSION: u64 = 1;

const HEADER_WORDS: usize = 16;
/// Header words: 0 magic, 1 version, 2 region words, 3..=9 configuration, 15 checksum.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_SIZE: usize = 2;
pub(crate) const H_CONFIG: usize = 3;
pub(crate) const H_CONFIG_WORDS: usize = 7;
const H_SUM: usize = 15;

/// Journal: seal, generation, entry count, checksum, then entries (chunk id, payload).
const J_BASE: usize = HEADER_WORDS;
const J_SEAL: usize = J_BASE;
const J_GEN: usize = J_BASE + 1;
const J_COUNT: usize = J_BASE + 2;
const J_SUM: usize = J_BASE + 3;
const J_ENTRIES: usize = J_BASE + 4;
const J_CAPACITY: usize = {
    let mut n = 0;
    let mut id = 0;
    while id < COUNT {
        n += 1 + chunk::len(id);
        id += 1;
    }
    n
};

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

fn chunk_sum(id: usize, payload: impl Iterator<Item = u64>) -> u64 {
    payload.fold(Sum::new(id as u64), Sum::add).get()
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
        if count == 0 || count > COUNT as u64 {
            return Err(StateError::Journal);
        }
        let mut sum = Sum::new(SEAL_KEY);
        let mut at = J_ENTRIES;
        let mut seen = 0u64;
        for _ in 0..count {
            let id = self.mem.load(at);
            // Ascending, as commits write them: each id once, and `apply` can walk them.
            if id >= COUNT as u64 || seen >> id != 0 {
                return Err(StateError::Journal);
            }
            seen |= 1 << id;
            let len = chunk::len(id as usize);
            sum = (at..at + 1 + len).fold(sum, |s, i| s.add(self.mem.load(i)));
            at += 1 + len;
        }
        if sum.add(generation).add(count).get() != self.mem.load(J_SUM) {
            return Err(StateError::Journal);
        }
        self.apply(seen);
        self.mem.store(J_SEAL, 0);
        self.generation = generation;
        Ok(())
    }

    /// Copies the journal's entries, chunks `ids` in ascending order, into the image.
    fn apply(&mut self, ids: u64) {
        let mut at = J_ENTRIES;
        let mut rest = ids;
        while rest != 0 {
            let id = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let len = chunk::len(id);
            let base = IMAGE_OFF[id];
            for i in 0..len {
                let w = self.mem.load(at + 1 + i);
                self.mem.store(base + i, w);
            }
            let sum = chunk_sum(id, (at + 1..at + 1 + len).map(|i| self.mem.load(i)));
            self.mem.store(base + len, sum);
            at += 1 + len;
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

    /// One commit: every chunk in `candidates` is encoded; those that differ from the image
    /// go through the journal. Returns how many chunks changed (0: no store at all).
    pub(crate) fn commit(
        &mut self,
        candidates: u64,
        mut encode: impl FnMut(usize, &mut [u64]),
    ) -> usize {
        let mut sum = Sum::new(SEAL_KEY);
        let mut at = J_ENTRIES;
        let mut count = 0u64;
        let mut written = 0u64;
        let mut rest = candidates;
        while rest != 0 {
            let id = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if id >= COUNT {
                break;
            }
            let mut buf = [0u64; chunk::MAX_LEN];
            let payload = &mut buf[..chunk::len(id)];
            encode(id, payload);
            if payload.iter().copied().eq(self.image(id)) {
                continue;
            }
            self.mem.store(at, id as u64);
            sum = sum.add(id as u64);
            for (i, w) in payload.iter().enumerate() {
                self.mem.store(at + 1 + i, *w);
                sum = sum.add(*w);
            }
            at += 1 + payload.len();
            count += 1;
            written |= 1 << id;
        }
        if count == 0 {
            return 0;
        }
        let generation = self.generation.wrapping_add(1);
        self.mem.store(J_GEN, generation);
        self.mem.store(J_COUNT, count);
        self.mem.store(J_SUM, sum.add(generation).add(count).get());
        // The commit point.
        self.mem.store(J_SEAL, seal(generation));
        self.apply(written);
        self.mem.store(J_SEAL, 0);
        self.generation = generation;
        count as usize
    }
}
