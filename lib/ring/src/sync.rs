//! The only place that names concrete atomics, so `--features loom` can swap
//! every shared-memory access for a model-checked one.
//!
//! Descriptor slots are relaxed atomic words in the real build: the peer is
//! untrusted and may write a slot at any time, and a relaxed word access is
//! the race-free equivalent of a volatile access (a plain `ldr`/`str` on
//! aarch64). Under loom a slot is a `loom::cell::UnsafeCell` instead, so the
//! model checker proves that a slot is never touched by both sides at once:
//! ownership really does move with `head`/`tail`.

#[cfg(not(feature = "loom"))]
pub(crate) use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(feature = "loom")]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};

/// One descriptor slot: four 32-bit words.
#[cfg(not(feature = "loom"))]
#[repr(transparent)]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout)]
pub struct Slot([AtomicU32; 4]);

#[cfg(not(feature = "loom"))]
impl Slot {
    pub(crate) const fn new() -> Self {
        Self([
            AtomicU32::new(0),
            AtomicU32::new(0),
            AtomicU32::new(0),
            AtomicU32::new(0),
        ])
    }

    pub(crate) fn load(&self) -> [u32; 4] {
        // Relaxed: the Acquire load of `tail` that licensed this read
        // already ordered it after the producer's writes.
        self.0.each_ref().map(|w| w.load(Ordering::Relaxed))
    }

    pub(crate) fn store(&self, words: [u32; 4]) {
        // Relaxed: published by the Release store of `tail` that follows.
        for (w, v) in self.0.iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
    }
}

/// One descriptor slot: four 32-bit words.
#[cfg(feature = "loom")]
pub struct Slot(loom::cell::UnsafeCell<[u32; 4]>);

#[cfg(feature = "loom")]
impl Slot {
    pub(crate) fn new() -> Self {
        Self(loom::cell::UnsafeCell::new([0; 4]))
    }

    pub(crate) fn load(&self) -> [u32; 4] {
        // SAFETY: loom checks that no write to this slot is concurrent.
        self.0.with(|p| unsafe { *p })
    }

    pub(crate) fn store(&self, words: [u32; 4]) {
        // SAFETY: loom checks that no access to this slot is concurrent.
        self.0.with_mut(|p| unsafe { *p = words })
    }
}

/// One byte of a byte ring.
#[cfg(not(feature = "loom"))]
#[repr(transparent)]
pub struct ByteCell(core::sync::atomic::AtomicU8);

#[cfg(not(feature = "loom"))]
impl ByteCell {
    pub(crate) const fn new() -> Self {
        Self(core::sync::atomic::AtomicU8::new(0))
    }

    pub(crate) fn load(&self) -> u8 {
        // Relaxed: ordered by the Acquire load of `tail`, as for slots.
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn store(&self, v: u8) {
        // Relaxed: published by the Release store of `tail`.
        self.0.store(v, Ordering::Relaxed)
    }
}

/// One byte of a byte ring.
#[cfg(feature = "loom")]
pub struct ByteCell(loom::cell::UnsafeCell<u8>);

#[cfg(feature = "loom")]
impl ByteCell {
    pub(crate) fn new() -> Self {
        Self(loom::cell::UnsafeCell::new(0))
    }

    pub(crate) fn load(&self) -> u8 {
        // SAFETY: loom checks that no write to this byte is concurrent.
        self.0.with(|p| unsafe { *p })
    }

    pub(crate) fn store(&self, v: u8) {
        // SAFETY: loom checks that no access to this byte is concurrent.
        self.0.with_mut(|p| unsafe { *p = v })
    }
}
