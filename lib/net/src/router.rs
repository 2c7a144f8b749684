//! The network virtualiser's decisions (sDDF's shape): received frames go to the client
//! owning the destination MAC, group frames (broadcast, multicast) to every client; clients
//! transmit in turn; a frame one client sends to another's MAC (or to a group) is looped
//! back to it, so clients reach each other without the wire.

use axolotl_ring::DataRegion;

use crate::NetClient;
use crate::check;
use crate::eth::{Mac, is_group};
use crate::link::MIN_FRAME;

/// What [`Router::to_wire_direct`] did with a client's frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direct {
    /// In the driver's link (notify the driver).
    Sent,
    /// Not sent: the copy in the driver's buffer was not the frame the first look saw
    /// (the client changed it meanwhile), or the driver's link refused it.
    Refused,
    /// Not a unicast frame for the wire (for another client, a group, or not this
    /// client's to send): the caller copies it out and routes that copy.
    Elsewhere,
}

/// Where a frame goes: a set of clients (bit = index) and/or the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub clients: u32,
    pub wire: bool,
}

/// Routing over `N` clients (`N` ≤ 32), each with its MAC from the SDF.
pub struct Router<const N: usize> {
    macs: [Mac; N],
    next: usize,
}

impl<const N: usize> Router<N> {
    /// `None` if two clients share a MAC, one is a group address, or `N` > 32.
    pub fn new(macs: [Mac; N]) -> Option<Self> {
        if N > 32 {
            return None;
        }
        for (i, m) in macs.iter().enumerate() {
            if is_group(m) || macs[..i].contains(m) {
                return None;
            }
        }
        Some(Self { macs, next: 0 })
    }

    pub fn mac(&self, client: usize) -> Option<Mac> {
        self.macs.get(client).copied()
    }

    fn dst(frame: &[u8]) -> Option<Mac> {
        if frame.len() < MIN_FRAME {
            return None;
        }
        let mut d = [0; 6];
        d.copy_from_slice(&frame[..6]);
        Some(d)
    }

    fn all(&self) -> u32 {
        if N == 32 { u32::MAX } else { (1u32 << N) - 1 }
    }

    /// Clients a frame from the wire goes to.
    pub fn rx_targets(&self, frame: &[u8]) -> u32 {
        let Some(dst) = Self::dst(frame) else {
            return 0;
        };
        if is_group(&dst) {
            return self.all();
        }
        self.macs
            .iter()
            .position(|m| *m == dst)
            .map_or(0, |i| 1 << i)
    }

    /// Where a frame from client `from` goes; nowhere if its source MAC is not the client's
    /// own (no client speaks for another).
    pub fn tx_targets(&self, from: usize, frame: &[u8]) -> Targets {
        let (Some(dst), Some(own)) = (Self::dst(frame), self.macs.get(from)) else {
            return Targets::default();
        };
        if frame[6..12] != own[..] {
            return Targets::default();
        }
        if is_group(&dst) {
            return Targets {
                clients: self.all() & !(1 << from),
                wire: true,
            };
        }
        match self.macs.iter().position(|m| *m == dst) {
            Some(i) if i != from => Targets {
                clients: 1 << i,
                wire: false,
            },
            // To itself: nowhere.
            Some(_) => Targets::default(),
            None => Targets {
                clients: 0,
                wire: true,
            },
        }
    }

    /// Sends client `from`'s frame (`len` bytes at `offset` in its transmit buffer `src`)
    /// straight into the driver's link if it is a unicast frame for the wire: one copy.
    /// The first look at its header, in memory the client can still write, only picks
    /// the path; the decision is taken again on the copy in the driver's buffer, which
    /// the client cannot reach, and the frame is submitted only if both agree.
    pub fn to_wire_direct(
        &self,
        from: usize,
        src: &DataRegion,
        offset: usize,
        len: usize,
        driver: &mut NetClient,
    ) -> Direct {
        let mut header = [0u8; MIN_FRAME];
        if !src.copy_out(offset, &mut header) {
            return Direct::Elsewhere;
        }
        let peek = self.tx_targets(from, &header);
        if !peek.wire || peek.clients != 0 {
            return Direct::Elsewhere;
        }
        // The frame's check goes along unchanged, read once: the driver verifies it.
        let c = check::read(src, offset).unwrap_or_default();
        let sent = driver.send_forward(len, |dst, at| {
            src.copy_to(offset, dst, at, len)
                && check::write(dst, at, c)
                && dst.copy_out(at, &mut header)
                && self.tx_targets(from, &header) == peek
        });
        if sent.is_ok() {
            Direct::Sent
        } else {
            Direct::Refused
        }
    }

    /// The client to take the next transmit frame from among those `ready` (bit = index),
    /// round robin: each turn starts after the client served last.
    pub fn next_tx(&mut self, ready: u32) -> Option<usize> {
        (0..N)
            .map(|k| (self.next + k) % N)
            .find(|&i| ready & (1 << i) != 0)
            .inspect(|&i| self.next = (i + 1) % N)
    }
}
