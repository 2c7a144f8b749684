//! Notification objects (32 bytes): a word of pending bits, the threads waiting for it, and
//! an optional bound thread. Signalling and waiting are `ipc.rs`.

use crate::endpoint::Queue;
use crate::thread::Tcb;

/// A notification: a word of pending bits, its waiters, and an optional bound thread.
#[repr(C)]
pub struct Notification {
    pub word: u64,
    pub waiters: Queue,
    pub bound: *mut Tcb,
}

const _: () = assert!(core::mem::size_of::<Notification>() == 32);

impl Notification {
    /// # Safety
    /// `ptr` is a live notification object.
    pub unsafe fn at<'a>(ptr: u64) -> &'a mut Notification {
        // SAFETY: forwarded.
        unsafe { &mut *(ptr as *mut Notification) }
    }
}
