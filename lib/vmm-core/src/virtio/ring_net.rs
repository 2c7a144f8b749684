//! virtio-net's backend over lib/net's [`NetClient`]: the VMM as a client of the network
//! virtualiser (docs/vmm.md, "Backends"; docs/network.md).
//!
//! Frames are copied between guest RAM and the link's buffers; the virtualiser and the
//! driver never see guest memory. Received frames wait in a small queue here while the
//! guest has no receive buffers posted, and the client takes no more from the link than
//! that queue holds, so back-pressure reaches the virtualiser (which holds a few, then
//! drops, as a switch does) instead of anything being lost here silently. A frame the guest transmits while
//! the virtualiser is gone (restarting) stays on the guest's transmit ring until it is
//! back; a frame the old virtualiser held is dropped (TCP resends it).

use axolotl_net::{Activity, FrameBuf, MAX_FRAME, MIN_FRAME, NetClient, SendError};

use super::mem::GuestMemory;
use super::net::{NetBackend, TxOutcome, VirtioNet};

/// Rounds of "link, then device" one [`NetRing::poll`] runs at most (the client stops at
/// its own work bound too): a flooding peer cannot hold the VMM; the next notification
/// resumes.
const ROUNDS: usize = 8;

/// A [`NetBackend`] over a link to the virtualiser, queueing up to `FRAMES` received
/// frames for the guest.
pub struct NetRing<const FRAMES: usize> {
    client: NetClient,
    rx: [FrameBuf; FRAMES],
    rx_len: [u16; FRAMES],
    rx_head: usize,
    rx_count: usize,
    tx: FrameBuf,
    /// A frame went to the virtualiser since the last poll: notify it.
    sent: bool,
    /// Frames the guest sent that the link refused for good (bad length, corrupt peer).
    pub tx_refused: u64,
}

impl<const FRAMES: usize> NetRing<FRAMES> {
    pub fn new(client: NetClient) -> Self {
        Self {
            client,
            rx: [FrameBuf::new(); FRAMES],
            rx_len: [0; FRAMES],
            rx_head: 0,
            rx_count: 0,
            tx: FrameBuf::new(),
            sent: false,
            tx_refused: 0,
        }
    }

    pub fn client(&self) -> &NetClient {
        &self.client
    }

    /// Frames waiting for the guest's receive buffers.
    pub fn queued(&self) -> usize {
        self.rx_count
    }

    /// Moves frames both ways as far as the guest's buffers, the queue and the link have
    /// room. Call it when the virtualiser notifies and after the guest's QueueNotify.
    /// `notify`: tell the virtualiser; `fault`: report it.
    pub fn poll<M: GuestMemory + ?Sized>(&mut self, dev: &mut VirtioNet, mem: &mut M) -> Activity {
        let mut total = Activity::default();
        for _ in 0..ROUNDS {
            // The device first: it may free queue room (delivery) and link buffers (the
            // client's transmit completions come in the poll after).
            dev.process(mem, self);
            let room = FRAMES - self.rx_count;
            let mut got = 0usize;
            let (client, mut queue) = self.split();
            let act = client.poll_limited(room, |f| {
                queue.push(f);
                got += 1;
            });
            total.notify |= act.notify || core::mem::take(&mut self.sent);
            total.peer_restarted |= act.peer_restarted;
            if total.fault.is_none() {
                total.fault = act.fault;
            }
            total.again = act.again;
            if got == 0 && !act.again && !act.notify {
                break;
            }
        }
        // What arrived last goes to the guest now; anything it sent is announced.
        dev.process(mem, self);
        total.notify |= core::mem::take(&mut self.sent);
        total
    }

    fn split(&mut self) -> (&mut NetClient, RxQueue<'_, FRAMES>) {
        (
            &mut self.client,
            RxQueue {
                rx: &mut self.rx,
                rx_len: &mut self.rx_len,
                head: self.rx_head,
                count: &mut self.rx_count,
            },
        )
    }
}

/// The receive queue apart from the client, so the client's callback can fill it.
struct RxQueue<'a, const FRAMES: usize> {
    rx: &'a mut [FrameBuf; FRAMES],
    rx_len: &'a mut [u16; FRAMES],
    head: usize,
    count: &'a mut usize,
}

impl<const FRAMES: usize> RxQueue<'_, FRAMES> {
    fn push(&mut self, frame: &[u8]) {
        if *self.count == FRAMES || frame.len() > MAX_FRAME {
            // `poll_limited` hands out no more than there is room for.
            return;
        }
        let at = (self.head + *self.count) % FRAMES;
        self.rx[at].0[..frame.len()].copy_from_slice(frame);
        self.rx_len[at] = frame.len() as u16;
        *self.count += 1;
    }
}

impl<const FRAMES: usize> NetBackend for NetRing<FRAMES> {
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8]) -> bool) -> TxOutcome {
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            self.tx_refused += 1;
            return TxOutcome::Dropped;
        }
        let buf = &mut self.tx.0[..len];
        if !fill(buf) {
            return TxOutcome::Dropped;
        }
        match self.client.send(buf) {
            Ok(()) => {
                self.sent = true;
                TxOutcome::Sent
            }
            // Back when the virtualiser completes a frame, or once it is (re)connected.
            Err(SendError::NoBuffer | SendError::NotConnected) => TxOutcome::Busy,
            Err(SendError::BadLength(_) | SendError::Corrupt(_)) => {
                self.tx_refused += 1;
                TxOutcome::Dropped
            }
        }
    }

    fn peek_rx(&mut self) -> Option<&[u8]> {
        (self.rx_count > 0)
            .then(|| &self.rx[self.rx_head].0[..usize::from(self.rx_len[self.rx_head])])
    }

    fn pop_rx(&mut self) {
        if self.rx_count > 0 {
            self.rx_head = (self.rx_head + 1) % FRAMES;
            self.rx_count -= 1;
        }
    }
}

#[cfg(test)]
#[path = "ring_net_tests.rs"]
mod tests;
