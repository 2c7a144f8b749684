//! The client end of a link: owns its buffers, keeps every receive buffer posted, sends
//! frames, and gets back across a server restart whatever the server held.

use axolotl_ring::{Client, ClientEvent, Corruption, Error, Generations, LayoutError};

use crate::link::{
    BUF_SIZE, CAPACITY, FrameBuf, IDS, LinkRegions, MAX_FRAME, MIN_FRAME, buffer_offset,
};
use axolotl_ring::DataRegion;

/// Which connection of a link something is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Rx,
    Tx,
}

/// What one [`NetClient::poll`] or [`crate::NetServer::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Something was published or the handshake moved: notify the peer.
    pub notify: bool,
    /// The peer broke the protocol on this connection (first fault seen): report it. The
    /// connection stays poisoned until the peer's generation changes.
    pub fault: Option<(Dir, Corruption)>,
    /// The peer restarted (its generation moved) during this poll.
    pub peer_restarted: bool,
    /// The poll stopped at its work bound: poll again.
    pub again: bool,
}

impl Activity {
    fn fault(&mut self, dir: Dir, c: Corruption) {
        if self.fault.is_none() {
            self.fault = Some((dir, c));
        }
    }
}

/// Counters of a client, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub rx_frames: u64,
    /// Completions with a length outside `MIN_FRAME..=MAX_FRAME`: dropped, buffer re-posted.
    pub rx_bad_len: u64,
    /// Receive buffers the server held when it restarted (re-posted).
    pub rx_reclaimed: u64,
    pub tx_frames: u64,
    /// Frames the server held when it restarted: dropped (the buffer is ours again).
    pub tx_dropped: u64,
    pub server_restarts: u64,
}

/// Why [`NetClient::send`] did not take a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Not (yet, or no longer) connected: poll.
    NotConnected,
    /// Every transmit buffer is with the server: wait for its completions.
    NoBuffer,
    /// Outside `MIN_FRAME..=MAX_FRAME`.
    BadLength(usize),
    /// The server is corrupt.
    Corrupt(Corruption),
}

/// Events handled per connection in one poll before it returns with `again` (keeps a PD
/// responsive to its other channels and its heartbeat when a peer floods it).
const POLL_BOUND: usize = 4 * IDS + 8;

/// The client end of a link (a virtualiser client, or the virtualiser towards the driver).
pub struct NetClient {
    rx: Client<IDS>,
    tx: Client<IDS>,
    rx_data: DataRegion,
    tx_data: DataRegion,
    /// Receive buffers currently with the server (bit = id).
    rx_posted: u64,
    /// Transmit buffers currently with the server.
    tx_busy: u64,
    rx_fault: bool,
    tx_fault: bool,
    stats: ClientStats,
    frame: FrameBuf,
}

const ALL: u64 = if IDS == 64 { u64::MAX } else { (1 << IDS) - 1 };

impl NetClient {
    /// Starts (or restarts) on a link; `rx`/`tx` are this side's generations on each
    /// connection (the same PD pair, so the same words; two values because lib/ring's handle
    /// is not shared).
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
        let (rxd, txd) = unsafe { (DataRegion::alias(&rx_data), DataRegion::alias(&tx_data)) };
        Ok(Self {
            rx: Client::new(rx_rings, rx_data, CAPACITY, rx)?,
            tx: Client::new(tx_rings, tx_data, CAPACITY, tx)?,
            rx_data: rxd,
            tx_data: txd,
            rx_posted: 0,
            tx_busy: 0,
            rx_fault: false,
            tx_fault: false,
            stats: ClientStats::default(),
            frame: FrameBuf::new(),
        })
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Receive buffers with the server.
    pub fn rx_posted(&self) -> u32 {
        self.rx_posted.count_ones()
    }

    /// Transmit buffers free for [`NetClient::send`].
    pub fn tx_free(&self) -> u32 {
        IDS as u32 - self.tx_busy.count_ones()
    }

    pub fn is_connected(&self) -> bool {
        self.rx.is_connected() && self.tx.is_connected()
    }

    /// The server generation of the receive connection (0: none yet).
    pub fn server_generation(&self) -> u32 {
        self.rx.server_generation()
    }

    /// Drives both connections: handshake, received frames (each handed to `on_frame` once,
    /// its buffer re-posted), transmit completions, server restarts (every buffer the server
    /// held comes back: receive buffers are posted again, frames being sent are dropped).
    pub fn poll(&mut self, on_frame: impl FnMut(&[u8])) -> Activity {
        self.poll_limited(usize::MAX, on_frame)
    }

    /// [`NetClient::poll`] handing out at most `max_frames` received frames (`again` set if
    /// it stopped there): for a client that answers each frame before taking the next.
    pub fn poll_limited(&mut self, max_frames: usize, mut on_frame: impl FnMut(&[u8])) -> Activity {
        let mut act = Activity::default();
        self.poll_rx(&mut act, max_frames, &mut on_frame);
        self.post_rx(&mut act);
        self.poll_tx(&mut act);
        act
    }

    fn poll_rx(&mut self, act: &mut Activity, max_frames: usize, on_frame: &mut impl FnMut(&[u8])) {
        let mut frames = 0;
        for _ in 0..POLL_BOUND {
            if frames >= max_frames {
                act.again = true;
                return;
            }
            let ev = match self.rx.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    self.rx_fault = false;
                    return;
                }
                Err(Error::Corrupt(c)) => {
                    if !self.rx_fault {
                        self.rx_fault = true;
                        act.fault(Dir::Rx, c);
                    }
                    return;
                }
                Err(_) => return,
            };
            match ev {
                ClientEvent::Connected { .. } => act.notify = true,
                ClientEvent::ServerRestarted { .. } => {
                    self.stats.server_restarts += 1;
                    act.peer_restarted = true;
                    act.notify = true;
                }
                ClientEvent::Completed(d) => {
                    self.rx_posted &= !(1 << d.id);
                    let len = d.len as usize;
                    if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
                        self.stats.rx_bad_len += 1;
                        continue;
                    }
                    let frame = &mut self.frame.0[..len];
                    if self.rx_data.copy_out(d.offset as usize, frame) {
                        self.stats.rx_frames += 1;
                        frames += 1;
                        on_frame(frame);
                    }
                }
                ClientEvent::Reclaimed(d) => {
                    self.rx_posted &= !(1 << d.id);
                    self.stats.rx_reclaimed += 1;
                }
            }
        }
        act.again = true;
    }

    /// Posts every receive buffer not with the server.
    fn post_rx(&mut self, act: &mut Activity) {
        if !self.rx.is_connected() {
            return;
        }
        for id in 0..IDS as u32 {
            if self.rx_posted & (1 << id) != 0 {
                continue;
            }
            match self.rx.submit(id, buffer_offset(id), BUF_SIZE as u32) {
                Ok(_) => {
                    self.rx_posted |= 1 << id;
                    act.notify = true;
                }
                Err(Error::Corrupt(c)) => {
                    if !self.rx_fault {
                        self.rx_fault = true;
                        act.fault(Dir::Rx, c);
                    }
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn poll_tx(&mut self, act: &mut Activity) {
        for _ in 0..POLL_BOUND {
            let ev = match self.tx.poll() {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    self.tx_fault = false;
                    return;
                }
                Err(Error::Corrupt(c)) => {
                    if !self.tx_fault {
                        self.tx_fault = true;
                        act.fault(Dir::Tx, c);
                    }
                    return;
                }
                Err(_) => return,
            };
            match ev {
                ClientEvent::Connected { .. } => act.notify = true,
                ClientEvent::ServerRestarted { .. } => {
                    act.peer_restarted = true;
                    act.notify = true;
                }
                ClientEvent::Completed(d) => self.tx_busy &= !(1 << d.id),
                ClientEvent::Reclaimed(d) => {
                    self.tx_busy &= !(1 << d.id);
                    self.stats.tx_dropped += 1;
                }
            }
        }
        act.again = true;
    }

    /// Copies `frame` into a free transmit buffer and hands it to the server. `Ok(())`: the
    /// caller notifies the server.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Err(SendError::BadLength(frame.len()));
        }
        if !self.tx.is_connected() {
            return Err(SendError::NotConnected);
        }
        let free = !self.tx_busy & ALL;
        if free == 0 {
            return Err(SendError::NoBuffer);
        }
        let id = free.trailing_zeros();
        let offset = buffer_offset(id);
        if !self.tx_data.copy_in(offset as usize, frame) {
            return Err(SendError::BadLength(frame.len()));
        }
        match self.tx.submit(id, offset, frame.len() as u32) {
            Ok(_) => {
                self.tx_busy |= 1 << id;
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(Error::Corrupt(c)) => Err(SendError::Corrupt(c)),
            Err(Error::Full) => Err(SendError::NoBuffer),
            Err(_) => Err(SendError::NotConnected),
        }
    }
}
