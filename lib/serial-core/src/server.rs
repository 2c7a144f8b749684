//! The driver: `N` transmit connections and an optional receive connection
//! over one UART.

use axolotl_ring::{
    Authority, Corruption, Error, Generations, LayoutError, ServerEvent, SharedRegion, Signal, Wait,
};

use crate::queue::HeldQueue;
use crate::uart::{Irqs, Uart};
use axolotl_ring::DataRegion;

/// Most transmit connections a [`Server`] takes (bit 31 of a [`ConnSet`] is
/// the receive connection).
pub const MAX_TX_CONNECTIONS: usize = 31;

/// Bytes read from the RX FIFO per [`Server::poll`] round, so that a UART
/// reporting errors forever cannot hold the driver.
const RX_BURST: usize = 64;

/// Received bytes a restarted receiving client is owed: what the driver had handed its dead
/// predecessor in buffers it never read (one page: the receive data region of every system).
/// Beyond it, bytes are dropped and counted ([`ServerStats::rx_dropped`]).
pub const RX_CARRY: usize = 4096;

/// Work rounds per [`Server::poll`] before it returns with
/// [`Activity::again`] set; bounds the time spent in one call.
const MAX_ROUNDS: usize = 64;

/// A connection's two shared regions, as the PD maps them.
pub struct Connection {
    /// `axolotl_ring::ring_region_bytes(capacity)` bytes at least.
    pub rings: SharedRegion,
    /// The buffers descriptors point into.
    pub data: SharedRegion,
    /// Queue capacity (a power of two, at least `IDS`).
    pub capacity: u32,
    /// Where the authority that restarts PDs publishes the client's generation: the
    /// client's word in the ring region is believed only when this confirms it.
    pub client: Authority,
}

/// Names one of the server's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnId {
    /// Transmit connection `i` (clients' messages to the wire).
    Tx(usize),
    /// The receive connection (bytes from the wire to one client).
    Rx,
}

/// A set of connections: bit `i` is `Tx(i)`, bit 31 is `Rx`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnSet(u32);

impl ConnSet {
    fn bit(id: ConnId) -> u32 {
        match id {
            ConnId::Tx(i) => 1 << i,
            ConnId::Rx => 1 << 31,
        }
    }

    pub fn insert(&mut self, id: ConnId) {
        self.0 |= Self::bit(id);
    }

    pub fn contains(self, id: ConnId) -> bool {
        self.0 & Self::bit(id) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// The members, transmit connections first.
    pub fn iter(self) -> impl Iterator<Item = ConnId> {
        (0..MAX_TX_CONNECTIONS)
            .map(ConnId::Tx)
            .chain(core::iter::once(ConnId::Rx))
            .filter(move |&id| self.contains(id))
    }
}

/// What a [`Server::poll`] or [`Server::on_irq`] did that the PD must act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Activity {
    /// Clients to notify (they asked to be woken, or the handshake moved).
    pub notify: ConnSet,
    /// Connections whose client was newly found corrupt: report each to the
    /// monitor ([`Server::fault`] says what). A corrupt client is reported
    /// once; it is not served again until it restarts (new generation).
    pub faults: ConnSet,
    /// The call stopped at its work bound: call `poll` again before waiting.
    pub again: bool,
    /// The UART interrupts that were pending ([`Server::on_irq`] only).
    pub irqs: Irqs,
    /// Bytes a receiving client died without reading, kept for its successor in this call
    /// (worth a log line: a VMM restart that would otherwise have lost typed input).
    pub rx_carried: u32,
}

/// Why a [`Server`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A region does not fit the ring layout.
    Layout(ConnId, LayoutError),
    /// More than [`MAX_TX_CONNECTIONS`].
    TooManyConnections,
    /// A queue capacity below `IDS`: the response queue could fill up.
    CapacityBelowIds(ConnId),
}

/// Counters for the PD to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Bytes put into the TX FIFO.
    pub tx_bytes: u64,
    /// Transmit requests completed (all bytes in the FIFO).
    pub tx_completed: u64,
    /// Bytes taken from the RX FIFO into client buffers.
    pub rx_bytes: u64,
    /// Receive buffers handed back filled.
    pub rx_completed: u64,
    /// Damaged received bytes (dropped).
    pub rx_errors: u64,
    /// Requests handed back because their client restarted.
    pub abandoned: u64,
    /// Corruptions reported.
    pub faults: u64,
    /// Received bytes a dead receiving client never read, kept for its successor.
    pub rx_carried: u64,
    /// Of those, bytes beyond [`RX_CARRY`], dropped.
    pub rx_dropped: u64,
}

struct Conn<const IDS: usize> {
    ring: axolotl_ring::Server<IDS>,
    data: DataRegion,
    held: HeldQueue<IDS>,
    /// With the ring generation of the client it was found against.
    fault: Option<(Corruption, u32)>,
}

impl<const IDS: usize> Conn<IDS> {
    fn new(id: ConnId, c: Connection, generation: u32) -> Result<Self, ConfigError> {
        if (c.capacity as usize) < IDS {
            return Err(ConfigError::CapacityBelowIds(id));
        }
        // SAFETY: the view lives next to the ring endpoint owning `c.data`.
        let data = unsafe { DataRegion::alias(&c.data) };
        let generations = Generations {
            own: generation,
            peer: c.client,
        };
        let ring = axolotl_ring::Server::new(c.rings, c.data, c.capacity, generations)
            .map_err(|e| ConfigError::Layout(id, e))?;
        Ok(Self {
            ring,
            data,
            held: HeldQueue::new(),
            fault: None,
        })
    }
}

/// The serial driver's state: serves `N` transmit connections (ids
/// `0..IDS` each) and optionally one receive connection over one UART.
///
/// Transmit: a request names a message in the client's data region. The
/// server copies its bytes into the TX FIFO as room allows, one message at a
/// time (messages are never interleaved on the wire), taking connections
/// round-robin per message and each connection's requests in order. A
/// request is completed (response with `len` = its length) exactly when its
/// last byte is in the FIFO. The TX interrupt is enabled only while bytes
/// are waiting for FIFO room.
///
/// Receive: the receiving client posts empty buffers as requests; received
/// bytes fill the oldest one, which is completed (`len` = bytes received)
/// when full or when the RX FIFO runs dry. The RX interrupts are enabled only
/// while a buffer is posted; otherwise bytes wait in the UART (flow control;
/// the hardware drops what overflows its FIFO).
///
/// Start and restart are the same: build a new `Server` over the same shared
/// regions with the monitor's generation; lib/ring's resynchronisation
/// (driven by [`Server::poll`]) has the surviving clients drain what the old
/// incarnation completed and take the rest back, to re-submit.
pub struct Server<U: Uart, const N: usize, const IDS: usize> {
    uart: U,
    tx: [Conn<IDS>; N],
    rx: Option<Conn<IDS>>,
    /// Received bytes owed to a restarted receiving client: what the driver completed to a
    /// client that died before reading it, oldest first, copied out when the restart is seen
    /// (the dead client's buffers are the new one's as soon as it posts them); they go to the
    /// successor ahead of anything still in the UART.
    carry: heapless::Deque<u8, RX_CARRY>,
    /// Transmit connection whose front message is partly in the FIFO.
    current: Option<usize>,
    /// Where the round-robin search for the next message starts.
    next_rr: usize,
    /// Bytes are waiting for FIFO room (so the TX interrupt is wanted).
    tx_blocked: bool,
    mask: Irqs,
    stats: ServerStats,
}

impl<U: Uart, const N: usize, const IDS: usize> Server<U, N, IDS> {
    /// Starts (or restarts) the driver with its PD `generation` (as the root task
    /// started it: `x0`): publishes its ring generation on every connection and
    /// masks and clears the UART's interrupts (a previous incarnation may have
    /// left some enabled). Then call [`Server::poll`].
    pub fn new(
        mut uart: U,
        tx: [Connection; N],
        rx: Option<Connection>,
        generation: u32,
    ) -> Result<Self, ConfigError> {
        if N > MAX_TX_CONNECTIONS {
            return Err(ConfigError::TooManyConnections);
        }
        let mut i = 0;
        let built = tx.map(|c| {
            let id = ConnId::Tx(i);
            i += 1;
            Conn::new(id, c, generation)
        });
        if let Some(Err(e)) = built.iter().find(|r| r.is_err()) {
            return Err(*e);
        }
        let tx = built.map(|r| match r {
            Ok(c) => c,
            Err(_) => unreachable!("checked above"),
        });
        let rx = match rx {
            Some(c) => Some(Conn::new(ConnId::Rx, c, generation)?),
            None => None,
        };
        uart.set_irq_mask(Irqs::NONE);
        uart.clear_irqs(Irqs::ALL);
        Ok(Self {
            uart,
            tx,
            rx,
            carry: heapless::Deque::new(),
            current: None,
            next_rr: 0,
            tx_blocked: false,
            mask: Irqs::NONE,
            stats: ServerStats::default(),
        })
    }

    pub fn uart(&self) -> &U {
        &self.uart
    }

    pub fn uart_mut(&mut self) -> &mut U {
        &mut self.uart
    }

    /// Gives the UART back (the hardware outlives a driver incarnation).
    pub fn into_uart(self) -> U {
        self.uart
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The interrupt mask last written to the UART.
    pub fn irq_mask(&self) -> Irqs {
        self.mask
    }

    fn conn(&self, id: ConnId) -> Option<&Conn<IDS>> {
        match id {
            ConnId::Tx(i) => self.tx.get(i),
            ConnId::Rx => self.rx.as_ref(),
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn<IDS>> {
        match id {
            ConnId::Tx(i) => self.tx.get_mut(i),
            ConnId::Rx => self.rx.as_mut(),
        }
    }

    /// This incarnation's generation.
    pub fn generation(&self) -> u32 {
        match (self.tx.first(), &self.rx) {
            (Some(c), _) | (None, Some(c)) => c.ring.generation(),
            (None, None) => 0,
        }
    }

    /// The corruption a connection's client was reported for, until it
    /// restarts.
    pub fn fault(&self, id: ConnId) -> Option<Corruption> {
        self.conn(id).and_then(|c| c.fault).map(|(c, _)| c)
    }

    /// The PD generation of the client a connection's fault was found against (`None`: no
    /// fault, or found before any client attached): the incarnation to report, even if
    /// another has attached since.
    pub fn fault_generation(&self, id: ConnId) -> Option<u32> {
        self.conn(id)
            .and_then(|c| c.fault)
            .and_then(|(_, g)| axolotl_ring::pd_generation(g))
    }

    pub fn is_connected(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.ring.is_connected())
    }

    /// Requests held on a connection (taken, not yet completed).
    pub fn held(&self, id: ConnId) -> usize {
        self.conn(id).map_or(0, |c| c.held.len())
    }

    /// Handles the UART interrupt: reads and clears what is pending, then
    /// does all the work there is ([`Server::poll`]). The PD acknowledges the
    /// IRQ to the kernel afterwards.
    pub fn on_irq(&mut self) -> Activity {
        let pending = self.uart.irq_status();
        self.uart.clear_irqs(pending);
        let mut act = self.poll();
        act.irqs = pending;
        act
    }

    /// Does all the work there is: handshakes and resynchronisation on every
    /// connection, new requests, received bytes, transmission. Returns once
    /// nothing more can be done without a notification or an interrupt, with
    /// every queue's "signal me" flag armed, so the PD may then wait.
    pub fn poll(&mut self) -> Activity {
        let mut act = Activity::default();
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;
            for i in 0..N {
                progress |= self.poll_ring(ConnId::Tx(i), &mut act);
            }
            if self.rx.is_some() {
                progress |= self.poll_ring(ConnId::Rx, &mut act);
            }
            progress |= self.pump_rx(&mut act);
            progress |= self.pump_tx(&mut act);
            if !progress && self.arm_waits(&mut act) {
                self.uart.flush();
                if self.update_mask() {
                    // An interrupt enabled just now whose cause already holds (a byte came
                    // in after the FIFO read dry, the FIFO drained after it was found full):
                    // a UART whose interrupts are events (edge-triggered: the meson UART)
                    // raises none for it, and the driver would wait for nothing. The work is
                    // done here instead; a level-triggered one would interrupt at once.
                    continue;
                }
                return act;
            }
        }
        // `again` has the PD poll once more, which looks at the causes again.
        act.again = true;
        self.uart.flush();
        let _ = self.update_mask();
        act
    }

    fn report(&mut self, id: ConnId, c: Corruption, act: &mut Activity) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.fault.is_none() {
            conn.fault = Some((c, conn.ring.client_generation()));
            act.faults.insert(id);
            self.stats.faults += 1;
        }
    }

    /// Takes every event the ring has for one connection.
    fn poll_ring(&mut self, id: ConnId, act: &mut Activity) -> bool {
        let mut progress = false;
        for _ in 0..4 * IDS + 8 {
            let Some(conn) = self.conn_mut(id) else {
                return false;
            };
            let acked = conn.ring.client_generation();
            let r = conn.ring.poll();
            if conn.ring.client_generation() != acked {
                // We acknowledged a new client generation: it waits for that.
                act.notify.insert(id);
            }
            let ev = match r {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(Error::Corrupt(c)) => {
                    self.report(id, c, act);
                    break;
                }
                // `poll` reports nothing else.
                Err(_) => break,
            };
            progress = true;
            match ev {
                ServerEvent::Connected { .. } => act.notify.insert(id),
                ServerEvent::ClientRestarted { .. } => {
                    conn.fault = None;
                    act.notify.insert(id);
                    if id == ConnId::Rx {
                        act.rx_carried += self.carry_unread();
                    }
                }
                ServerEvent::Request(d) => {
                    // lib/ring validated it; checked again where it is used.
                    if !conn.data.contains(d.offset as usize, d.len as usize) {
                        let c = Corruption::BufferOutOfBounds {
                            offset: d.offset,
                            len: d.len,
                            region_len: conn.data.len(),
                        };
                        self.report(id, c, act);
                    } else if !conn.held.push(d) {
                        self.report(id, Corruption::DuplicateId { id: d.id }, act);
                    }
                }
                ServerEvent::Abandoned { request, .. } => {
                    let partial = conn.held.get(request.id).filter(|h| h.done > 0);
                    let was_front = conn.held.remove(request.id);
                    // Input taken off the UART into a receive buffer never answered (the
                    // connection broke first): the UART accepted it, so the successor
                    // gets it, as it gets what the dead client never read.
                    if id == ConnId::Rx
                        && let Some(h) = partial
                    {
                        act.rx_carried += self.carry_bytes(h.d.offset, h.done);
                    }
                    self.stats.abandoned += 1;
                    if was_front == Some(true) && self.current == Some(tx_index(id)) {
                        // Its client is gone: the rest of the message is not
                        // sent (the wire keeps a fragment).
                        self.current = None;
                    }
                }
            }
        }
        progress
    }

    /// Keeps what the dead receiving client was given and never read (its responses lib/ring
    /// saw unconsumed): without this, input typed while a VMM restarts would be lost although
    /// the driver had taken it off the UART.
    fn carry_unread(&mut self) -> u32 {
        let before = self.stats.rx_carried;
        let Some(rx) = self.rx.as_mut() else {
            return 0;
        };
        while let Some(d) = rx.ring.take_unread() {
            Self::carry_into(&mut self.carry, &mut self.stats, &rx.data, d.offset, d.len);
        }
        (self.stats.rx_carried - before) as u32
    }

    /// Carries `len` bytes the driver wrote at `offset` of the receive data region; how many.
    fn carry_bytes(&mut self, offset: u32, len: u32) -> u32 {
        let before = self.stats.rx_carried;
        if let Some(rx) = self.rx.as_ref() {
            Self::carry_into(&mut self.carry, &mut self.stats, &rx.data, offset, len);
        }
        (self.stats.rx_carried - before) as u32
    }

    fn carry_into(
        carry: &mut heapless::Deque<u8, RX_CARRY>,
        stats: &mut ServerStats,
        data: &DataRegion,
        offset: u32,
        len: u32,
    ) {
        let mut chunk = [0u8; 64];
        let mut done = 0;
        while done < len as usize {
            let n = chunk.len().min(len as usize - done);
            let at = (offset as usize).saturating_add(done);
            // Our own bytes, within a buffer we filled; checked anyway.
            if !data.copy_out(at, &mut chunk[..n]) {
                break;
            }
            for &b in &chunk[..n] {
                if carry.push_back(b).is_ok() {
                    stats.rx_carried += 1;
                } else {
                    stats.rx_dropped += 1;
                }
            }
            done += n;
        }
    }

    /// Moves message bytes into the TX FIFO; completes finished requests.
    fn pump_tx(&mut self, act: &mut Activity) -> bool {
        let mut progress = false;
        // Connections that cannot complete right now (response queue full,
        // client gone): skipped until the next call.
        let mut stalled = 0u32;
        self.tx_blocked = false;
        while let Some(i) = self.current.or_else(|| self.pick_tx(stalled)) {
            self.current = Some(i);
            let conn = &mut self.tx[i];
            let Some(h) = conn.held.front_mut() else {
                self.current = None;
                continue;
            };
            let mut bad = None;
            while !h.finished() {
                let at = (h.d.offset as usize).saturating_add(h.done as usize);
                let Some(b) = conn.data.read_u8(at) else {
                    // Checked when taken; never followed if it were not.
                    bad = Some(Corruption::BufferOutOfBounds {
                        offset: h.d.offset,
                        len: h.d.len,
                        region_len: conn.data.len(),
                    });
                    break;
                };
                if !self.uart.try_write(b) {
                    self.tx_blocked = true;
                    return progress;
                }
                h.done += 1;
                self.stats.tx_bytes += 1;
                progress = true;
            }
            if let Some(c) = bad {
                conn.held.clear();
                self.current = None;
                stalled |= 1 << i;
                self.report(ConnId::Tx(i), c, act);
                continue;
            }
            // The whole message is in the FIFO: complete it, exactly once.
            let (id, len) = (h.d.id, h.d.len);
            self.current = None;
            match conn.ring.respond(id, len) {
                Ok(signal) => {
                    conn.held.pop();
                    self.stats.tx_completed += 1;
                    if signal == Signal::Notify {
                        act.notify.insert(ConnId::Tx(i));
                    }
                    self.next_rr = (i + 1) % N.max(1);
                    progress = true;
                }
                Err(Error::Corrupt(c)) => {
                    stalled |= 1 << i;
                    self.report(ConnId::Tx(i), c, act);
                }
                // Full or NotConnected: retried later (a restarted client's
                // requests come back through `poll` as abandoned).
                Err(Error::Full | Error::NotConnected) => stalled |= 1 << i,
                // Not in service: cannot happen, as the ring handed it to us.
                Err(_) => {
                    conn.held.pop();
                }
            }
        }
        progress
    }

    fn pick_tx(&self, stalled: u32) -> Option<usize> {
        (0..N)
            .map(|k| (self.next_rr + k) % N)
            .find(|&i| stalled & (1 << i) == 0 && !self.tx[i].held.is_empty())
    }

    /// Moves received bytes into posted buffers; completes a buffer when it
    /// is full or the RX FIFO is dry.
    fn pump_rx(&mut self, act: &mut Activity) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        let mut progress = false;
        let mut budget = RX_BURST;
        while let Some(h) = rx.held.front_mut() {
            let mut dry = false;
            while !h.finished() && budget > 0 {
                budget -= 1;
                // Owed bytes first: they arrived before anything still in the UART.
                let next = match self.carry.pop_front() {
                    Some(b) => Ok(Some(b)),
                    None => self.uart.try_read(),
                };
                match next {
                    Ok(Some(b)) => {
                        let at = (h.d.offset as usize).saturating_add(h.done as usize);
                        // In bounds: checked when the buffer was taken, and
                        // again by `write`.
                        let _ = rx.data.write_u8(at, b);
                        h.done += 1;
                        self.stats.rx_bytes += 1;
                        progress = true;
                    }
                    Ok(None) => {
                        dry = true;
                        break;
                    }
                    Err(_) => {
                        self.stats.rx_errors += 1;
                        progress = true;
                    }
                }
            }
            // A zero-length buffer goes back at once; others once they hold
            // something and are full or the FIFO is dry.
            if h.d.len != 0 && (h.done == 0 || !(h.finished() || dry)) {
                break;
            }
            match rx.ring.respond(h.d.id, h.done) {
                Ok(signal) => {
                    rx.held.pop();
                    self.stats.rx_completed += 1;
                    if signal == Signal::Notify {
                        act.notify.insert(ConnId::Rx);
                    }
                    progress = true;
                }
                Err(Error::Corrupt(c)) => {
                    self.report(ConnId::Rx, c, act);
                    break;
                }
                Err(_) => break,
            }
            if dry {
                break;
            }
        }
        progress
    }

    /// Arms every queue's "signal me" flag; `false` if requests arrived
    /// meanwhile (poll again).
    fn arm_waits(&mut self, act: &mut Activity) -> bool {
        let mut idle = true;
        for k in 0..=N {
            let id = if k < N { ConnId::Tx(k) } else { ConnId::Rx };
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            match conn.ring.prepare_wait() {
                Ok(Wait::Block) => {}
                Ok(Wait::Retry) => idle = false,
                Err(Error::Corrupt(c)) => self.report(id, c, act),
                Err(_) => {}
            }
        }
        idle
    }

    /// TX interrupt only while bytes wait for FIFO room; RX interrupts only
    /// while a receive buffer is posted. Written only when it changes. Whether an
    /// interrupt it enabled has its cause holding already ([`Uart::irq_status`]).
    fn update_mask(&mut self) -> bool {
        let mut want = Irqs::NONE;
        if self.tx_blocked {
            want = want | Irqs::TX;
        }
        // Not for a receiving client found corrupt: its buffers cannot be answered, and a
        // UART whose level interrupt nobody drains would interrupt the driver without end
        // until the client restarts (or forever, if it cannot). The input waits in the UART.
        if self
            .rx
            .as_ref()
            .is_some_and(|c| !c.held.is_empty() && c.fault.is_none())
        {
            want = want | Irqs::RX | Irqs::RX_TIMEOUT;
        }
        if want == self.mask {
            return false;
        }
        let enabled = Irqs::from_bits(want.bits() & !self.mask.bits());
        self.mask = want;
        self.uart.set_irq_mask(want);
        !enabled.is_empty() && self.uart.irq_status().intersects(enabled)
    }
}

fn tx_index(id: ConnId) -> usize {
    match id {
        ConnId::Tx(i) => i,
        ConnId::Rx => usize::MAX,
    }
}
