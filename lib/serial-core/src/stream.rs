//! A transmit client for an arbitrary byte stream (issue #17: control-pd's replies to the
//! host), where [`SeqClient`](crate::SeqClient) sends numbered test lines.
//!
//! The stream is cut into chunks of at most [`MSG_SLOT`] bytes, one per data-region slot
//! (the slot of the chunk's id), submitted in order. The driver completes a connection's
//! requests in order, so a completion must be of the oldest chunk in flight; anything else
//! is an error. Across a driver restart the semantics are `SeqClient`'s: chunks the old
//! driver completed stay completed, every other one is handed back and resubmitted, oldest
//! first, before any new one; so every byte reaches the wire at least once and in order,
//! and a chunk the old driver had partly or wholly sent may appear twice. A consumer that
//! needs exactly-once (the control protocol) frames its messages and checks them.

use axolotl_ring::{ClientEvent, Error, Generations, LayoutError, SharedRegion, Signal, Wait};

use crate::MSG_SLOT;
use axolotl_ring::DataRegion;

/// What went wrong on a [`TxStream`]'s connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStreamError {
    /// The ring (lib/ring's checks: a corrupt or lying driver).
    Ring(Error),
    /// The driver completed chunk `id` before an older one: not the order it owes us.
    OutOfOrder { id: u32 },
    /// The driver says it sent `sent` bytes of a chunk of `len`.
    Short { len: u32, sent: u32 },
}

/// What a [`TxStream::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct TxActivity {
    /// Notify the driver.
    pub notify: bool,
    /// Bytes completed in this call (room freed for [`TxStream::write`]).
    pub completed: usize,
    /// The driver restarted (its generation moved) in this call.
    pub driver_restarted: bool,
}

/// A byte-stream transmit client with `IDS` chunk slots.
pub struct TxStream<const IDS: usize> {
    ring: axolotl_ring::Client<IDS>,
    data: DataRegion,
    /// The chunks not completed, oldest first: (id, len). The first `submitted` are in the
    /// ring.
    chunks: Chunks<IDS>,
    submitted: usize,
    /// Whether each id's slot holds a chunk not completed.
    used: [bool; IDS],
}

impl<const IDS: usize> TxStream<IDS> {
    /// Starts the client on its connection (rings, data) to the driver.
    pub fn new(
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
    ) -> Result<Self, LayoutError> {
        const { assert!(IDS <= u8::MAX as usize && MSG_SLOT <= u8::MAX as usize) };
        if data.len() < IDS * MSG_SLOT {
            return Err(LayoutError::TooSmall {
                needed: IDS * MSG_SLOT,
                len: data.len(),
            });
        }
        // SAFETY: the view lives next to the ring endpoint owning `data`.
        let view = unsafe { DataRegion::alias(&data) };
        let ring = axolotl_ring::Client::new(rings, data, capacity, generations)?;
        Ok(Self {
            ring,
            data: view,
            chunks: Chunks::new(),
            submitted: 0,
            used: [false; IDS],
        })
    }

    /// Queues as much of `bytes` as there is room for: how many were taken. Call
    /// [`TxStream::poll`] to send them.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        while taken < bytes.len() {
            let Some(id) = self.used.iter().position(|u| !u) else {
                break;
            };
            let chunk = &bytes[taken..bytes.len().min(taken + MSG_SLOT)];
            // Slots lie inside the region (checked at construction).
            let _ = self.data.copy_in(id * MSG_SLOT, chunk);
            if self
                .chunks
                .push_back((id as u8, chunk.len() as u8))
                .is_err()
            {
                break;
            }
            self.used[id] = true;
            taken += chunk.len();
        }
        taken
    }

    /// Bytes queued and not completed.
    pub fn pending(&self) -> usize {
        (0..self.chunks.len)
            .filter_map(|i| self.chunks.get(i))
            .map(|(_, len)| len as usize)
            .sum()
    }

    /// Room for [`TxStream::write`], in bytes.
    pub fn room(&self) -> usize {
        self.used.iter().filter(|u| !**u).count() * MSG_SLOT
    }

    pub fn is_connected(&self) -> bool {
        self.ring.is_connected()
    }

    /// The PD generation of the driver this client is (or was last) connected to.
    pub fn driver_generation(&self) -> Option<u32> {
        axolotl_ring::pd_generation(self.ring.server_generation())
    }

    /// Does all there is to do: handshake and resync, completions (checked), submissions.
    /// Returns with the "signal me" flag armed, so the PD may then wait.
    pub fn poll(&mut self) -> Result<TxActivity, TxStreamError> {
        let mut act = TxActivity::default();
        loop {
            let acked = self.ring.server_generation();
            let r = self.ring.poll();
            if self.ring.server_generation() != acked {
                act.notify = true;
            }
            if let Some(ev) = r.map_err(TxStreamError::Ring)? {
                act.notify = true;
                self.handle(ev, &mut act)?;
                continue;
            }
            if self.submit_more(&mut act)? {
                continue;
            }
            match self.ring.prepare_wait() {
                Ok(Wait::Block) => return Ok(act),
                Ok(Wait::Retry) => continue,
                Err(e) => return Err(TxStreamError::Ring(e)),
            }
        }
    }

    fn handle(&mut self, ev: ClientEvent, act: &mut TxActivity) -> Result<(), TxStreamError> {
        match ev {
            // Nothing is in flight (first connection, or all completed or handed back):
            // (re)submit from the oldest chunk.
            ClientEvent::Connected { .. } => self.submitted = 0,
            ClientEvent::ServerRestarted { .. } => act.driver_restarted = true,
            ClientEvent::Completed(d) => {
                let Some((id, len)) = self.chunks.get(0).filter(|_| self.submitted > 0) else {
                    return Err(TxStreamError::OutOfOrder { id: d.id });
                };
                if d.id != id as u32 {
                    return Err(TxStreamError::OutOfOrder { id: d.id });
                }
                if d.len != len as u32 {
                    return Err(TxStreamError::Short {
                        len: len as u32,
                        sent: d.len,
                    });
                }
                self.chunks.pop_front();
                self.submitted -= 1;
                self.used[id as usize] = false;
                act.completed += len as usize;
            }
            // Resubmitted once `Connected`, in order.
            ClientEvent::Reclaimed(_) => {}
        }
        Ok(())
    }

    fn submit_more(&mut self, act: &mut TxActivity) -> Result<bool, TxStreamError> {
        let mut any = false;
        while self.ring.is_connected() && self.submitted < self.chunks.len() {
            let Some((id, len)) = self.chunks.get(self.submitted) else {
                break;
            };
            let offset = id as usize * MSG_SLOT;
            match self.ring.submit(id as u32, offset as u32, len as u32) {
                Ok(signal) => act.notify |= signal == Signal::Notify,
                Err(Error::Full | Error::NotConnected) => break,
                Err(e) => return Err(TxStreamError::Ring(e)),
            }
            self.submitted += 1;
            any = true;
        }
        Ok(any)
    }
}

/// A FIFO of at most `N` (id, len) chunks.
struct Chunks<const N: usize> {
    items: [(u8, u8); N],
    head: usize,
    len: usize,
}

impl<const N: usize> Chunks<N> {
    const fn new() -> Self {
        Self {
            items: [(0, 0); N],
            head: 0,
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> Option<(u8, u8)> {
        (i < self.len).then(|| self.items[(self.head + i) % N])
    }

    fn push_back(&mut self, c: (u8, u8)) -> Result<(), ()> {
        if self.len == N {
            return Err(());
        }
        self.items[(self.head + self.len) % N] = c;
        self.len += 1;
        Ok(())
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % N;
            self.len -= 1;
        }
    }
}
