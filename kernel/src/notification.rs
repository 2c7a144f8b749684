//! Notification objects (32 bytes): a word of pending bits, the threads waiting for it, and
//! an optional bound thread. Signalling and waiting are `ipc.rs`.

use crate::endpoint::Queue;
use crate::thread::Tcb;

/// Bit 0 of `Notification::bound_active`: a signal is pending.
const ACTIVE: u64 = 1;

/// A notification: a word of pending bits, its waiters, and an optional bound thread.
#[repr(C)]
pub struct Notification {
    word: u64,
    pub waiters: Queue,
    /// The bound thread's address, bit 0 set while a signal is pending (seL4's Active
    /// state). The word alone cannot say so: a signal through an unbadged cap ORs in 0, and
    /// seL4 keeps it pending all the same (the root task's standby refresher, signalled
    /// before it first waited, slept through such a signal). TCBs are 2 KiB-aligned, so
    /// bit 0 is free and the object stays 32 bytes, as seL4 packs its state bits.
    bound_active: u64,
}

const _: () = assert!(core::mem::size_of::<Notification>() == 32);

impl Notification {
    /// # Safety
    /// `ptr` is a live notification object.
    pub unsafe fn at<'a>(ptr: u64) -> &'a mut Notification {
        // SAFETY: forwarded.
        unsafe { &mut *(ptr as *mut Notification) }
    }

    /// The bound thread (null: none).
    pub fn bound(&self) -> *mut Tcb {
        (self.bound_active & !ACTIVE) as *mut Tcb
    }

    /// Binds `t` (null: unbinds); a pending signal stays pending.
    pub fn set_bound(&mut self, t: *mut Tcb) {
        debug_assert!(t as u64 & ACTIVE == 0, "TCBs are aligned");
        self.bound_active = t as u64 | (self.bound_active & ACTIVE);
    }

    /// A signal nobody took yet: pending, whatever its badge (0 included).
    pub fn post(&mut self, badge: u64) {
        self.word |= badge;
        self.bound_active |= ACTIVE;
    }

    /// Whether a signal is pending (a Wait would return at once).
    pub fn pending(&self) -> bool {
        self.bound_active & ACTIVE != 0
    }

    /// Takes the pending signals: their badges ORed (0 when none is pending, or all came
    /// through unbadged caps). The notification is idle afterwards.
    pub fn take(&mut self) -> u64 {
        let w = self.word;
        self.word = 0;
        self.bound_active &= !ACTIVE;
        w
    }
}
