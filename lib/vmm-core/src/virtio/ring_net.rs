//! virtio-net's backend over lib/net's [`NetClient`]: the VMM as a client of the network
//! virtualiser (docs/vmm.md, "Backends"; docs/network.md).
//!
//! Frames are copied once each way, between guest RAM and the link's buffers, with no
//! staging buffer between: a received frame stays in its link buffer
//! ([`NetClient::poll_in_place`]) until it is copied into the guest's receive buffers, and
//! a transmitted one goes from the guest's chain straight into a link transmit buffer
//! ([`NetClient::send_with`]). The virtualiser and the driver never see guest memory.
//! While the guest has no receive buffers posted, received frames wait in the link's
//! buffers, which are not posted again until the guest took them, so back-pressure reaches
//! the virtualiser (which holds frames for us, then drops, as a switch does) instead of
//! anything being lost here silently. A frame the guest transmits while the virtualiser is
//! gone (restarting) stays on the guest's transmit ring until it is back; a frame the old
//! virtualiser held is dropped (TCP resends it).
//!
//! Every received frame is verified against the check its producer (the net driver)
//! carried in the link buffer's trailer, in the VMM's own copy into guest RAM
//! (`RxFrame::Region` with the check: virtio-net's `receive_frame`), and the verdict goes
//! to the [`NetClient`] as its own copies' do ([`NetClient::rx_judge`]): a frame damaged
//! before the VMM is dropped and the virtualiser reported (`Activity::fault`); one the
//! VMM's copy damaged is `Contradiction::Copy` (`Activity::contradiction`), on which the
//! VMM fail-stops.

use axolotl_net::check::{self, Verdict};
use axolotl_net::{Activity, Dir, MAX_FRAME, MIN_FRAME, NetClient, SendError};
use axolotl_ring::Corruption;

use super::mem::GuestMemory;
use super::net::{NetBackend, RxFrame, TxDest, TxOutcome, VirtioNet};

/// Rounds of "device, then link" one [`NetRing::poll`] runs at most (the client stops at
/// its own work bound too): a flooding peer cannot hold the VMM; the next notification
/// resumes.
const ROUNDS: usize = 8;

/// A [`NetBackend`] over a link to the virtualiser. `FRAMES` is kept for the VMM's type
/// (the frames waiting for the guest are the link's own buffers now, at most
/// `axolotl_net::IDS`).
pub struct NetRing<const FRAMES: usize> {
    client: NetClient,
    /// A frame went to the virtualiser since the last poll: notify it.
    sent: bool,
    /// Frames the guest sent that the link refused for good (bad length, corrupt peer).
    pub tx_refused: u64,
    /// A received frame failed its check, the virtualiser's fault: for the poll's
    /// `Activity::fault`.
    fault: Option<(Dir, Corruption)>,
}

impl<const FRAMES: usize> NetRing<FRAMES> {
    pub fn new(client: NetClient) -> Self {
        // Frames are left in place unverified (`set_verify_in_place` off): the copy into
        // guest RAM verifies them, and itself, in its own loop (module doc), where a read
        // of its own before it cost a fifth of the guest's TCP receive rate
        // (docs/benchmarks.md, "The frame check").
        Self {
            client,
            sent: false,
            tx_refused: 0,
            fault: None,
        }
    }

    pub fn client(&self) -> &NetClient {
        &self.client
    }

    /// Frames waiting for the guest's receive buffers.
    pub fn queued(&self) -> usize {
        self.client.rx_kept()
    }

    /// Moves frames both ways as far as the guest's buffers and the link have room: the
    /// whole burst the virtualiser completed, in one call. Call it when the virtualiser
    /// notifies and after the guest's QueueNotify. `notify`: tell the virtualiser;
    /// `fault`: report it; `contradiction`: this VMM is corrupt itself, fail-stop.
    pub fn poll<M: GuestMemory + ?Sized>(&mut self, dev: &mut VirtioNet, mem: &mut M) -> Activity {
        let mut total = self.poll_rounds(dev, mem);
        if total.fault.is_none() {
            total.fault = self.fault.take();
        }
        self.fault = None;
        total.contradiction = total.contradiction.or(self.client.contradiction());
        total
    }

    fn poll_rounds<M: GuestMemory + ?Sized>(
        &mut self,
        dev: &mut VirtioNet,
        mem: &mut M,
    ) -> Activity {
        let mut total = Activity::default();
        if self.client.contradiction().is_some() {
            // Corrupt itself: no more copies until the VMM is restarted.
            return total;
        }
        for _ in 0..ROUNDS {
            // The device first: it frees link buffers (delivery into the guest; the
            // client's transmit completions come in the poll after).
            let before = self.client.rx_kept();
            dev.process(mem, self);
            if self.client.contradiction().is_some() {
                return total;
            }
            let left = self.client.rx_kept();
            let act = self.client.poll_in_place();
            let arrived = self.client.rx_kept() - left;
            total.notify |= act.notify || core::mem::take(&mut self.sent);
            total.peer_restarted |= act.peer_restarted;
            if total.fault.is_none() {
                total.fault = act.fault;
            }
            total.again = act.again;
            if act.contradiction.is_some() {
                total.contradiction = act.contradiction;
                break;
            }
            if left == before && arrived == 0 && !act.again && !act.notify {
                break;
            }
        }
        // What arrived last goes to the guest now; anything it sent is announced.
        let before = self.client.rx_kept();
        dev.process(mem, self);
        if self.client.contradiction().is_some() {
            return total;
        }
        if self.client.rx_kept() < before {
            // Their buffers go back to the virtualiser now, not at the next notification.
            let act = self.client.poll_in_place();
            total.notify |= act.notify;
            if total.fault.is_none() {
                total.fault = act.fault;
            }
            total.contradiction = total.contradiction.or(act.contradiction);
        }
        total.notify |= core::mem::take(&mut self.sent);
        total
    }
}

impl<const FRAMES: usize> NetBackend for NetRing<FRAMES> {
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(TxDest<'_>) -> bool) -> TxOutcome {
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            self.tx_refused += 1;
            return TxOutcome::Dropped;
        }
        match self
            .client
            .send_forward(len, |region, at| fill(TxDest::Region(region, at)))
        {
            Ok(()) => {
                self.sent = true;
                TxOutcome::Sent
            }
            // The guest changed its chain under us: nothing went out.
            Err(SendError::Refused) => TxOutcome::Dropped,
            // Back when the virtualiser completes a frame, or once it is (re)connected.
            Err(SendError::NoBuffer | SendError::NotConnected) => TxOutcome::Busy,
            Err(SendError::BadLength(_) | SendError::Corrupt(_)) => {
                self.tx_refused += 1;
                TxOutcome::Dropped
            }
        }
    }

    fn peek_rx(&mut self) -> Option<RxFrame<'_>> {
        loop {
            let (offset, len) = self.client.rx_peek()?;
            // Read once, here: what the copy is verified against.
            if let Some(c) = check::read(self.client.rx_region(), offset) {
                return Some(RxFrame::Region(
                    self.client.rx_region(),
                    offset,
                    len,
                    Some(c),
                ));
            }
            // A buffer whose trailer is not in the region (misaligned): no honest peer's.
            self.rx_verdict(Verdict::Source);
            self.client.rx_consume();
        }
    }

    fn peek_rx_at(&self, k: usize) -> Option<RxFrame<'_>> {
        let (offset, len) = self.client.rx_peek_at(k)?;
        // A buffer whose trailer is not in the region is the single path's to refuse.
        let c = check::read(self.client.rx_region(), offset)?;
        Some(RxFrame::Region(
            self.client.rx_region(),
            offset,
            len,
            Some(c),
        ))
    }

    fn pop_rx(&mut self) {
        self.client.rx_consume();
    }

    fn rx_verdict(&mut self, v: Verdict) {
        if let Some(f) = self.client.rx_judge(v) {
            self.fault.get_or_insert(f);
        }
    }
}

#[cfg(test)]
#[path = "ring_net_tests.rs"]
mod tests;
