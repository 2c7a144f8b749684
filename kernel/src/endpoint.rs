//! Endpoint objects (16 bytes): a queue of waiting threads in the object's own memory,
//! linked through the TCBs, so IPC never allocates. The queue type serves notifications too
//! (`notification.rs`); message passing itself is `ipc.rs`.

use core::ptr::null_mut;

use crate::thread::{Tcb, TcbRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpState {
    Idle,
    /// Senders are queued.
    Send,
    /// Receivers are queued.
    Recv,
}

/// An intrusive FIFO of threads: head and tail pointers.
///
/// The links (these and each member's `next`/`prev`) stay raw pointers: they live in object
/// memory, are null at the ends, and are rewritten in place. Threads enter and leave as
/// [`TcbRef`]s; a member is live because a thread leaves every queue (`ipc::cancel_ipc`)
/// before its TCB can be deleted, which is the one promise `pop` rests on.
#[repr(C)]
pub struct Queue {
    pub head: *mut Tcb,
    pub tail: *mut Tcb,
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `t` is in no queue; this queue's members are live.
    pub unsafe fn push(&mut self, mut t: TcbRef) {
        t.next = null_mut();
        t.prev = self.tail;
        if self.tail.is_null() {
            self.head = t.ptr();
        } else {
            // SAFETY: forwarded: the tail is a live member.
            unsafe { (*self.tail).next = t.ptr() };
        }
        self.tail = t.ptr();
    }

    /// # Safety
    /// `t` is in this queue, whose members are live.
    pub unsafe fn remove(&mut self, mut t: TcbRef) {
        let (p, n) = (t.prev, t.next);
        // SAFETY: forwarded: the neighbours are live members.
        unsafe {
            if p.is_null() {
                self.head = n;
            } else {
                (*p).next = n;
            }
            if n.is_null() {
                self.tail = p;
            } else {
                (*n).prev = p;
            }
        }
        t.next = null_mut();
        t.prev = null_mut();
    }

    /// # Safety
    /// This queue's members are live.
    pub unsafe fn pop(&mut self) -> Option<TcbRef> {
        if self.head.is_null() {
            return None;
        }
        // SAFETY: forwarded: the head is a live member.
        let h = unsafe { TcbRef::new(self.head) };
        // SAFETY: forwarded.
        unsafe { self.remove(h) };
        Some(h)
    }
}

/// An endpoint: a queue and what kind of threads wait in it, in 16 bytes. Thread states
/// are 256-byte aligned, so the state rides in the low bits of the head pointer.
#[repr(C)]
pub struct Endpoint {
    head_and_state: u64,
    tail: u64,
}

const _: () = assert!(core::mem::size_of::<Endpoint>() == 16);

impl Endpoint {
    /// # Safety
    /// `ptr` is a live endpoint object.
    pub unsafe fn at<'a>(ptr: u64) -> &'a mut Endpoint {
        // SAFETY: forwarded.
        unsafe { &mut *(ptr as *mut Endpoint) }
    }

    pub fn state(&self) -> EpState {
        match self.head_and_state & 3 {
            1 => EpState::Send,
            2 => EpState::Recv,
            _ => EpState::Idle,
        }
    }

    pub fn queue(&self) -> Queue {
        Queue {
            head: (self.head_and_state & !0xff) as *mut Tcb,
            tail: self.tail as *mut Tcb,
        }
    }

    /// Stores the queue back; the state follows from it (`Idle` when empty).
    pub fn set(&mut self, q: Queue, state: EpState) {
        let bits = match (q.is_empty(), state) {
            (true, _) | (_, EpState::Idle) => 0,
            (false, EpState::Send) => 1,
            (false, EpState::Recv) => 2,
        };
        self.head_and_state = q.head as u64 | bits;
        self.tail = q.tail as u64;
    }
}
