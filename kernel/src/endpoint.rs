//! Endpoint objects (16 bytes): a queue of waiting threads in the object's own memory,
//! linked through the TCBs, so IPC never allocates. The queue type serves notifications too
//! (`notification.rs`); message passing itself is `ipc.rs`.

use core::ptr::null_mut;

use crate::thread::Tcb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpState {
    Idle,
    /// Senders are queued.
    Send,
    /// Receivers are queued.
    Recv,
}

/// An intrusive FIFO of threads: head and tail pointers.
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
    /// `t` is a live thread in no queue.
    pub unsafe fn push(&mut self, t: *mut Tcb) {
        // SAFETY: forwarded; queue members are live threads.
        unsafe {
            (*t).next = null_mut();
            (*t).prev = self.tail;
            if self.tail.is_null() {
                self.head = t;
            } else {
                (*self.tail).next = t;
            }
        }
        self.tail = t;
    }

    /// # Safety
    /// `t` is a live thread in this queue.
    pub unsafe fn remove(&mut self, t: *mut Tcb) {
        // SAFETY: forwarded; neighbours are live queue members.
        unsafe {
            let (p, n) = ((*t).prev, (*t).next);
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
            (*t).next = null_mut();
            (*t).prev = null_mut();
        }
    }

    /// # Safety
    /// Queue members are live.
    pub unsafe fn pop(&mut self) -> Option<*mut Tcb> {
        let h = self.head;
        if h.is_null() {
            return None;
        }
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
