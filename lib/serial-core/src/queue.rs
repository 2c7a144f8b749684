//! A fixed-size FIFO of the requests a connection has handed the driver.

use axolotl_ring::Descriptor;

/// A request the driver holds, and how many of its bytes are done
/// (TX: in the FIFO; RX: filled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) d: Descriptor,
    pub(crate) done: u32,
}

impl Held {
    pub(crate) fn finished(&self) -> bool {
        self.done >= self.d.len
    }
}

pub(crate) struct HeldQueue<const IDS: usize> {
    buf: [Held; IDS],
    head: usize,
    len: usize,
}

impl<const IDS: usize> HeldQueue<IDS> {
    pub(crate) fn new() -> Self {
        Self {
            buf: [Held::default(); IDS],
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `false` when full (the ring never gives more than `IDS` requests).
    pub(crate) fn push(&mut self, d: Descriptor) -> bool {
        if self.len == IDS {
            return false;
        }
        self.buf[(self.head + self.len) % IDS] = Held { d, done: 0 };
        self.len += 1;
        true
    }

    pub(crate) fn front_mut(&mut self) -> Option<&mut Held> {
        if self.len == 0 {
            return None;
        }
        Some(&mut self.buf[self.head])
    }

    pub(crate) fn pop(&mut self) -> Option<Held> {
        if self.len == 0 {
            return None;
        }
        let h = self.buf[self.head];
        self.head = (self.head + 1) % IDS;
        self.len -= 1;
        Some(h)
    }

    /// The request with id `id`, if held.
    pub(crate) fn get(&self, id: u32) -> Option<Held> {
        (0..self.len)
            .map(|k| self.buf[(self.head + k) % IDS])
            .find(|h| h.d.id == id)
    }

    /// Removes the request with id `id`, keeping the others in order.
    /// Returns whether it was at the front.
    pub(crate) fn remove(&mut self, id: u32) -> Option<bool> {
        let pos = (0..self.len).find(|&k| self.buf[(self.head + k) % IDS].d.id == id)?;
        for k in pos..self.len - 1 {
            self.buf[(self.head + k) % IDS] = self.buf[(self.head + k + 1) % IDS];
        }
        self.len -= 1;
        Some(pos == 0)
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}
