//! The server end of a link (the driver towards the virtualiser, the virtualiser towards
//! each client): takes the client's free receive buffers and fills them, takes the frames it
//! sends. Every descriptor is validated by lib/ring; lengths here.

use axolotl_ring::{Descriptor, Error, Generations, LayoutError, Server, ServerEvent};

use crate::bytes::Bytes;
use crate::client::{Activity, Dir};
use crate::link::{CAPACITY, IDS, LinkRegions, MAX_FRAME, MIN_FRAME};

const POLL_BOUND: usize = 4 * IDS + 8;

/// Counters of a server, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Frames delivered into the client's buffers.
    pub rx_delivered: u64,
    /// Frames to deliver while the client had no buffer posted: dropped.
    pub rx_no_buffer: u64,
    /// Receive buffers posted shorter than `MAX_FRAME`: handed back empty.
    pub rx_short_buffers: u64,
    /// Frames taken from the client.
    pub tx_taken: u64,
    /// Frames with a length outside `MIN_FRAME..=MAX_FRAME`: answered with length 0, never
    /// forwarded.
    pub tx_bad_len: u64,
    pub client_restarts: u64,
}

/// The server end of a link.
pub struct NetServer {
    rx: Server<IDS>,
    tx: Server<IDS>,
    rx_data: Bytes,
    tx_data: Bytes,
    /// The client's posted receive buffers, oldest first.
    free: [Descriptor; IDS],
    free_head: usize,
    free_len: usize,
    /// A transmit request taken from the ring but not yet handed out by `take_tx`.
    tx_pending: Option<Descriptor>,
    rx_fault: bool,
    tx_fault: bool,
    stats: ServerStats,
}

const EMPTY: Descriptor = Descriptor {
    offset: 0,
    len: 0,
    id: 0,
    tag: 0,
};

impl NetServer {
    pub fn new(
        regions: LinkRegions,
        rx: Generations,
        tx: Generations,
    ) -> Result<Self, LayoutError> {
        let LinkRegions {
            rx_rings,
            rx_data,
            tx_rings,
            tx_data,
        } = regions;
        // SAFETY: the views live next to the endpoints that own the regions.
        let (rxd, txd) = unsafe { (Bytes::alias(&rx_data), Bytes::alias(&tx_data)) };
        Ok(Self {
            rx: Server::new(rx_rings, rx_data, CAPACITY, rx)?,
            tx: Server::new(tx_rings, tx_data, CAPACITY, tx)?,
            rx_data: rxd,
            tx_data: txd,
            free: [EMPTY; IDS],
            free_head: 0,
            free_len: 0,
            tx_pending: None,
            rx_fault: false,
            tx_fault: false,
            stats: ServerStats::default(),
        })
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The client's receive buffers we hold.
    pub fn rx_buffers(&self) -> usize {
        self.free_len
    }

    pub fn is_connected(&self) -> bool {
        self.rx.is_connected() && self.tx.is_connected()
    }

    /// The client generation of the receive connection (0: none yet).
    pub fn client_generation(&self) -> u32 {
        self.rx.client_generation()
    }

    /// Drives both connections: handshake, the client's receive buffers, a client restart
    /// (whatever of its buffers we held is forgotten), and takes the next frame to send if
    /// one is queued ([`NetServer::take_tx`] hands it out).
    pub fn poll(&mut self) -> Activity {
        let mut act = Activity::default();
        self.poll_rx(&mut act);
        self.poll_tx(&mut act);
        act
    }

    fn poll_rx(&mut self, act: &mut Activity) {
        for _ in 0..POLL_BOUND {
            let ev = match self.rx.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    self.rx_fault = false;
                    return;
                }
                Err(Error::Corrupt(c)) => {
                    if !self.rx_fault {
                        self.rx_fault = true;
                        act.fault = act.fault.or(Some((Dir::Rx, c)));
                    }
                    return;
                }
                Err(_) => return,
            };
            match ev {
                ServerEvent::Connected { .. } => act.notify = true,
                ServerEvent::ClientRestarted { .. } => {
                    self.stats.client_restarts += 1;
                    act.peer_restarted = true;
                    act.notify = true;
                }
                ServerEvent::Abandoned { request, .. } => self.forget(request.id),
                ServerEvent::Request(d) => {
                    if (d.len as usize) < MAX_FRAME {
                        // Too short for a frame: back at once, empty.
                        self.stats.rx_short_buffers += 1;
                        if self.rx.respond(d.id, 0).is_ok() {
                            act.notify = true;
                        }
                    } else if self.free_len < IDS {
                        self.free[(self.free_head + self.free_len) % IDS] = d;
                        self.free_len += 1;
                    }
                    // (lib/ring refuses a request id already in service, so more than IDS
                    // cannot be taken.)
                }
            }
        }
        act.again = true;
    }

    /// Removes buffer `id` from the free list (its client restarted).
    fn forget(&mut self, id: u32) {
        let mut kept = 0;
        for i in 0..self.free_len {
            let d = self.free[(self.free_head + i) % IDS];
            if d.id != id {
                self.free[(self.free_head + kept) % IDS] = d;
                kept += 1;
            }
        }
        self.free_len = kept;
    }

    fn poll_tx(&mut self, act: &mut Activity) {
        for _ in 0..POLL_BOUND {
            if self.tx_pending.is_some() {
                return;
            }
            let ev = match self.tx.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    self.tx_fault = false;
                    return;
                }
                Err(Error::Corrupt(c)) => {
                    if !self.tx_fault {
                        self.tx_fault = true;
                        act.fault = act.fault.or(Some((Dir::Tx, c)));
                    }
                    return;
                }
                Err(_) => return,
            };
            match ev {
                ServerEvent::Connected { .. } => act.notify = true,
                ServerEvent::ClientRestarted { .. } => {
                    self.tx_pending = None;
                    act.peer_restarted = true;
                    act.notify = true;
                }
                ServerEvent::Abandoned { .. } => {}
                ServerEvent::Request(d) => {
                    let len = d.len as usize;
                    if (MIN_FRAME..=MAX_FRAME).contains(&len) {
                        self.tx_pending = Some(d);
                    } else {
                        self.stats.tx_bad_len += 1;
                        if self.tx.respond(d.id, 0).is_ok() {
                            act.notify = true;
                        }
                    }
                }
            }
        }
        act.again = true;
    }

    /// Whether a frame is waiting for [`NetServer::take_tx`].
    pub fn tx_ready(&self) -> bool {
        self.tx_pending.is_some()
    }

    /// Copies the next frame the client sends into `out` and gives its buffer back; the
    /// frame's length, or `None` if nothing is queued. Call only when there is room for the
    /// frame downstream: once taken, it is this side's to deliver or drop. The caller
    /// notifies the client if `notify` was set.
    pub fn take_tx(&mut self, out: &mut [u8; MAX_FRAME], notify: &mut bool) -> Option<usize> {
        if self.tx_pending.is_none() {
            let mut act = Activity::default();
            self.poll_tx(&mut act);
            *notify |= act.notify;
        }
        let d = self.tx_pending.take()?;
        let len = d.len as usize;
        let ok = self.tx_data.read(d.offset as usize, &mut out[..len]);
        // Answered with the length sent; the buffer is the client's again.
        if self.tx.respond(d.id, if ok { d.len } else { 0 }).is_ok() {
            *notify = true;
        }
        if !ok {
            return None;
        }
        self.stats.tx_taken += 1;
        Some(len)
    }

    /// Whether a client receive buffer is posted.
    pub fn rx_ready(&self) -> bool {
        self.free_len > 0 && self.rx.is_connected()
    }

    /// Copies `frame` into the client's oldest posted buffer and completes it. `false`: no
    /// buffer (or not connected), the frame is dropped and counted. `true`: notify the client.
    pub fn deliver(&mut self, frame: &[u8]) -> bool {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) || !self.rx_ready() {
            self.stats.rx_no_buffer += 1;
            return false;
        }
        let d = self.free[self.free_head];
        self.free_head = (self.free_head + 1) % IDS;
        self.free_len -= 1;
        if !self.rx_data.write(d.offset as usize, frame) {
            // Cannot happen for a validated descriptor of at least MAX_FRAME bytes.
            let _ = self.rx.respond(d.id, 0);
            return true;
        }
        match self.rx.respond(d.id, frame.len() as u32) {
            Ok(_) => {
                self.stats.rx_delivered += 1;
                true
            }
            Err(_) => {
                // The client restarted under us: `poll` hands its buffers back.
                self.stats.rx_no_buffer += 1;
                false
            }
        }
    }
}
