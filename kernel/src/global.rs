//! Kernel global state.
//!
//! The kernel runs on one core with interrupts masked whenever it executes (exceptions are
//! taken only from EL0 or from the idle loop's WFI), so kernel code is never re-entered:
//! the same discipline as seL4's big-lock-free uniprocessor kernel. `Global` encodes that
//! assumption in one place instead of sprinkling `static mut`.

use core::cell::UnsafeCell;

pub struct Global<T>(UnsafeCell<T>);

// SAFETY: single core, never re-entered (see module docs).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }

    /// # Safety
    /// No other reference obtained from this `Global` may be live. Kernel entry points call
    /// this once and pass the reference down.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.0.get() }
    }
}
