//! The server end of a link (the driver towards the virtualiser, the virtualiser towards
//! each client): takes the client's free receive buffers and fills them, takes the frames it
//! sends. Every descriptor is validated by lib/ring; lengths here.

use axolotl_ring::{Corruption, Descriptor, Error, Generations, LayoutError, Server, ServerEvent};

use crate::check::{self, BUF_NEEDED, Check, Verdict};
use crate::client::{Activity, Contradiction, Dir};
use crate::hold::FrameQueue;
use crate::link::{CAPACITY, IDS, LinkRegions, MAX_FRAME, MIN_FRAME};
use axolotl_ring::DataRegion;

const POLL_BOUND: usize = 4 * IDS + 8;

/// Counters of a server, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Frames delivered into the client's buffers.
    pub rx_delivered: u64,
    /// Frames to [`NetServer::deliver`] while the client had no buffer posted: dropped
    /// (`deliver_holding` holds them instead).
    pub rx_no_buffer: u64,
    /// Receive buffers posted shorter than a frame's room and its check
    /// (`check::BUF_NEEDED`): handed back empty.
    pub rx_short_buffers: u64,
    /// Frames taken from the client.
    pub tx_taken: u64,
    /// Frames with a length outside `MIN_FRAME..=MAX_FRAME`: answered with length 0, never
    /// forwarded.
    pub tx_bad_len: u64,
    pub client_restarts: u64,
    /// Frames delivered to a client that died before reading them, kept for its next
    /// incarnation ([`NetServer::poll_holding`]).
    pub rx_unread_kept: u64,
    /// Such frames that could not be kept (no hold queue, or it was full: then also in
    /// the queue's `dropped`).
    pub rx_unread_lost: u64,
    /// Frames taken whose copy did not match the check the client carried, and whose
    /// source did not either: dropped, the client reported (`crate::check`).
    pub tx_check_failed: u64,
}

/// The server end of a link.
pub struct NetServer {
    rx: Server<IDS>,
    tx: Server<IDS>,
    rx_data: DataRegion,
    tx_data: DataRegion,
    /// The client's posted receive buffers, oldest first.
    free: [Descriptor; IDS],
    free_head: usize,
    free_len: usize,
    /// A transmit request taken from the ring but not yet handed out by `take_tx`.
    tx_pending: Option<Descriptor>,
    /// The standing fault of each connection, as in [`crate::NetClient`].
    rx_fault: Option<Corruption>,
    tx_fault: Option<Corruption>,
    /// A frame the client sent that failed its check (`Corruption::DataCheck`): a standing
    /// fault until a frame passes, so that a client still sending damaged frames after its
    /// restart is accused again, which the monitor holds against this PD (`Accuser`).
    tx_bad: Option<Corruption>,
    /// The client restarted while `tx_bad` stood: no verdict on its new incarnation's
    /// frames yet (`NetServer::awaiting_frame`).
    tx_awaiting: bool,
    /// A bit to flip in the next verified copy (tests of the verdicts only).
    #[cfg(feature = "fault-injection")]
    flip: Option<usize>,
    /// Set once for good: lib/ring refused a response our records allowed.
    contradiction: Option<Contradiction>,
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
        let (rxd, txd) = unsafe { (DataRegion::alias(&rx_data), DataRegion::alias(&tx_data)) };
        Ok(Self {
            rx: Server::new(rx_rings, rx_data, CAPACITY, rx)?,
            tx: Server::new(tx_rings, tx_data, CAPACITY, tx)?,
            rx_data: rxd,
            tx_data: txd,
            free: [EMPTY; IDS],
            free_head: 0,
            free_len: 0,
            tx_pending: None,
            rx_fault: None,
            tx_fault: None,
            tx_bad: None,
            tx_awaiting: false,
            #[cfg(feature = "fault-injection")]
            flip: None,
            contradiction: None,
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

    /// The connection found corrupt and not working since, if any (as
    /// [`crate::NetClient::fault`]).
    pub fn fault(&self) -> Option<(Dir, Corruption)> {
        self.rx_fault
            .map(|c| (Dir::Rx, c))
            .or(self.tx_fault.map(|c| (Dir::Tx, c)))
            .or(self.tx_bad.map(|c| (Dir::Tx, c)))
    }

    /// The client restarted after sending frames that failed their check, and its new
    /// incarnation has not had a frame judged yet: for [`crate::Accuser::check_link`],
    /// which then neither accuses nor forgets.
    pub fn awaiting_frame(&self) -> bool {
        self.tx_awaiting
    }

    /// This incarnation's records contradicted by its ring (a response to a request it
    /// took and holds, refused as not in service): fail-stop, as [`Contradiction`] says.
    pub fn contradiction(&self) -> Option<Contradiction> {
        self.contradiction
    }

    /// Takes transmit request `id` as pending though lib/ring does not have it in service,
    /// as a bit flipped in this PD's records would: tests of [`Contradiction`] only.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_pending_tx(&mut self, id: u32) {
        self.tx_pending = Some(Descriptor {
            offset: 0,
            len: MIN_FRAME as u32,
            id,
            tag: 0,
        });
    }

    /// Damages bit `bit` of the next frame this server copies out with verification, in
    /// its copy (as a flipped register in the copy's loop would): tests of the frame
    /// check's verdicts only.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_copy_flip(&mut self, bit: usize) {
        self.flip = Some(bit);
    }

    /// Answers request `id` on `dir`'s connection; `Some(notify)` when sent. A refusal our
    /// records contradict is kept for [`NetServer::contradiction`].
    fn respond(&mut self, dir: Dir, id: u32, len: u32) -> Option<bool> {
        let conn = match dir {
            Dir::Rx => &mut self.rx,
            Dir::Tx => &mut self.tx,
        };
        match conn.respond(id, len) {
            Ok(_) => Some(true),
            Err(e) => {
                if let Some(c) = Contradiction::of(dir, id, e) {
                    self.contradiction.get_or_insert(c);
                }
                None
            }
        }
    }

    /// Drives both connections: handshake, the client's receive buffers, a client restart
    /// (whatever of its buffers we held is forgotten), and takes the next frame to send if
    /// one is queued ([`NetServer::take_tx`] hands it out).
    pub fn poll(&mut self) -> Activity {
        self.poll_holding(&mut FrameQueue::<0>::new())
    }

    /// [`NetServer::poll`] for a server that holds frames its client cannot take yet
    /// (`hold`, see [`NetServer::deliver_holding`]): when the client restarts, the frames
    /// delivered to it that it never read are copied into `hold` (before anything held,
    /// being older), and whatever `hold` has goes into the client's buffers as it posts
    /// them, oldest first.
    pub fn poll_holding<const N: usize>(&mut self, hold: &mut FrameQueue<N>) -> Activity {
        let mut act = Activity::default();
        if self.contradiction.is_none() {
            self.poll_rx(&mut act, hold);
            self.flush(hold, &mut act);
            self.poll_tx(&mut act);
        }
        act.contradiction = self.contradiction;
        act
    }

    /// Copies the frames the dead client never read out of its buffers into `hold`, oldest
    /// first, before the new client can post (and we overwrite) those buffers. Lengths are
    /// our own records (lib/ring's private copy of each response), checked again anyway.
    fn keep_unread<const N: usize>(&mut self, hold: &mut FrameQueue<N>) {
        let mut unread = [EMPTY; IDS];
        let mut n = 0;
        while let Some(d) = self.rx.take_unread() {
            if n < IDS {
                unread[n] = d;
                n += 1;
            }
        }
        let data = &self.rx_data;
        for d in unread[..n].iter().rev() {
            // With the check this PD wrote with it (the client never verified it).
            let c = check::read(data, d.offset as usize).unwrap_or_default();
            if hold.push_front_with(d.len as usize, c, |b| data.copy_out(d.offset as usize, b)) {
                self.stats.rx_unread_kept += 1;
            } else {
                self.stats.rx_unread_lost += 1;
            }
        }
    }

    /// Moves held frames into the client's posted buffers while both last.
    fn flush<const N: usize>(&mut self, hold: &mut FrameQueue<N>, act: &mut Activity) {
        while self.rx_ready() {
            let Some((f, c)) = hold.front() else { return };
            let Some(notify) = self.deliver_now_checked(f, c) else {
                return;
            };
            act.notify |= notify;
            hold.pop_front();
        }
    }

    fn poll_rx<const N: usize>(&mut self, act: &mut Activity, hold: &mut FrameQueue<N>) {
        for _ in 0..POLL_BOUND {
            let ev = match self.rx.poll() {
                // Working (a poisoned connection gives nothing but errors and the peer's
                // restart): the standing fault is over.
                Ok(Some(ev)) => {
                    self.rx_fault = None;
                    ev
                }
                Ok(None) => {
                    self.rx_fault = None;
                    return;
                }
                Err(Error::Corrupt(c)) => {
                    if self.rx_fault.replace(c).is_none() {
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
                    self.keep_unread(hold);
                }
                ServerEvent::Abandoned { request, .. } => self.forget(request.id),
                ServerEvent::Request(d) => {
                    if (d.len as usize) < BUF_NEEDED {
                        // Too short for a frame and its check: back at once, empty.
                        self.stats.rx_short_buffers += 1;
                        if self.respond(Dir::Rx, d.id, 0).is_some() {
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
                // Working (a poisoned connection gives nothing but errors and the peer's
                // restart): the standing fault is over.
                Ok(Some(ev)) => {
                    self.tx_fault = None;
                    ev
                }
                Ok(None) => {
                    self.tx_fault = None;
                    return;
                }
                Err(Error::Corrupt(c)) => {
                    if self.tx_fault.replace(c).is_none() {
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
                    // Damaged frames were the old incarnation's; whether the new one's
                    // are is for its first frame to say.
                    if self.tx_bad.take().is_some() {
                        self.tx_awaiting = true;
                    }
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
                        if self.respond(Dir::Tx, d.id, 0).is_some() {
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
    ///
    /// The copy is verified against the check the client carried (as
    /// [`NetServer::take_tx_verified`]): `None` for a frame that failed it.
    pub fn take_tx(&mut self, out: &mut [u8; MAX_FRAME], notify: &mut bool) -> Option<usize> {
        let mut good = None;
        self.take_tx_verified(notify, |len, fill| {
            good = fill(&mut out[..len]).then_some(len);
        })?;
        good
    }

    /// [`NetServer::take_tx_with`] for the PD that copies the frame last (the driver, into
    /// its DMA buffer): `send` is given the frame's length and `fill`, which copies the
    /// frame into the buffer it is handed and verifies the copy, read back in the copy's
    /// own loop, against the check the client carried (`crate::check::copy_out`).
    /// `fill` returns `true` only for a good copy: only then may the frame go on. A copy
    /// that does not match while the client's buffer still does is this PD's own fault
    /// ([`Contradiction::Copy`], sticky: fail-stop, nothing more is taken); a client
    /// buffer that does not match either is the client's (or a hop before it): the frame
    /// is dropped, counted (`tx_check_failed`), and [`NetServer::fault`] holds
    /// `Corruption::DataCheck` until a frame passes. `None`: nothing taken; `Some(len)`:
    /// a frame was taken, whether `send` sent it or not.
    pub fn take_tx_verified(
        &mut self,
        notify: &mut bool,
        send: impl FnOnce(usize, &mut dyn FnMut(&mut [u8]) -> bool),
    ) -> Option<usize> {
        let mut verdict = None;
        #[cfg(feature = "fault-injection")]
        let flip = self.flip.take();
        #[cfg(not(feature = "fault-injection"))]
        let flip: Option<usize> = None;
        let (len, id) = self.take_tx_inner(notify, |src, offset, len| {
            send(len, &mut |b: &mut [u8]| {
                let v = if b.len() == len {
                    check::copy_out_flipping::<{ cfg!(feature = "fault-injection") }>(
                        src, offset, b, flip,
                    )
                } else {
                    // Not a buffer for this frame: nothing copied, nobody's fault yet.
                    return false;
                };
                verdict = Some(v);
                v == Verdict::Good
            });
        })?;
        if verdict.is_some_and(|v| v != Verdict::OwnCopy) {
            self.tx_awaiting = false;
        }
        match verdict {
            Some(Verdict::Good) => self.tx_bad = None,
            Some(Verdict::OwnCopy) => {
                self.contradiction
                    .get_or_insert(Contradiction::Copy { dir: Dir::Tx, id });
            }
            Some(Verdict::Source) => {
                self.stats.tx_check_failed += 1;
                self.tx_bad = Some(Corruption::DataCheck { id });
            }
            None => {}
        }
        Some(len)
    }

    /// [`NetServer::take_tx`] that hands `f` the frame where it lies (the client's
    /// buffer: region, offset, length, the range checked inside the region) instead of
    /// copying it out, then gives the buffer back. `f` copies what it needs (the
    /// virtualiser: straight into the driver's link) and must decide on its own copy,
    /// never on bytes it reads twice from the client's buffer, which the client can
    /// change at any moment.
    ///
    /// The check the client carried is at `crate::check::CHECK_AT` of the same buffer: a
    /// PD that forwards the frame (the virtualiser) copies it along unchanged.
    pub fn take_tx_with(
        &mut self,
        notify: &mut bool,
        f: impl FnOnce(&DataRegion, usize, usize),
    ) -> Option<usize> {
        self.take_tx_inner(notify, f).map(|(len, _)| len)
    }

    /// [`NetServer::take_tx_with`], with the request's id.
    fn take_tx_inner(
        &mut self,
        notify: &mut bool,
        f: impl FnOnce(&DataRegion, usize, usize),
    ) -> Option<(usize, u32)> {
        if self.contradiction.is_some() {
            return None;
        }
        if self.tx_pending.is_none() {
            let mut act = Activity::default();
            self.poll_tx(&mut act);
            *notify |= act.notify;
        }
        let d = self.tx_pending.take()?;
        let len = d.len as usize;
        let ok = self.tx_data.contains(d.offset as usize, len);
        if ok {
            f(&self.tx_data, d.offset as usize, len);
        }
        // Answered with the length sent; the buffer is the client's again.
        if self
            .respond(Dir::Tx, d.id, if ok { d.len } else { 0 })
            .is_some()
        {
            *notify = true;
        }
        // A frame lib/ring does not have in service is not the client's: never forwarded.
        // (`f` ran already; the PD fail-stops on the contradiction before it notifies.)
        if !ok || self.contradiction.is_some() {
            return None;
        }
        self.stats.tx_taken += 1;
        Some((len, d.id))
    }

    /// Whether a client receive buffer is posted.
    pub fn rx_ready(&self) -> bool {
        self.free_len > 0 && self.rx.is_connected()
    }

    /// Copies `frame` into the client's oldest posted buffer, with its check computed in
    /// the copy's loop (this PD is the frame's producer: the driver, from its DMA buffer),
    /// and completes it. `false`: no buffer (or not connected), the frame is dropped and
    /// counted. `true`: notify the client.
    pub fn deliver(&mut self, frame: &[u8]) -> bool {
        match self.deliver_now(frame) {
            Some(notify) => notify,
            None => {
                self.stats.rx_no_buffer += 1;
                false
            }
        }
    }

    /// [`NetServer::deliver`], except that a frame the client has no buffer for goes to
    /// `hold` (after whatever is held already, so the client gets them in order) instead of
    /// being dropped; only a full `hold` drops it (counted in `hold.dropped`). `true`:
    /// notify the client.
    pub fn deliver_holding<const N: usize>(
        &mut self,
        frame: &[u8],
        hold: &mut FrameQueue<N>,
    ) -> bool {
        let mut act = Activity::default();
        self.flush(hold, &mut act);
        if hold.is_empty()
            && let Some(notify) = self.deliver_now(frame)
        {
            return act.notify | notify;
        }
        hold.push_back(frame);
        act.notify
    }

    /// [`NetServer::deliver_holding`] of a frame this PD forwards (the virtualiser, from
    /// one client to another) with the check its producer computed, unchanged.
    pub fn deliver_holding_checked<const N: usize>(
        &mut self,
        frame: &[u8],
        check: Check,
        hold: &mut FrameQueue<N>,
    ) -> bool {
        let mut act = Activity::default();
        self.flush(hold, &mut act);
        if hold.is_empty()
            && let Some(notify) = self.deliver_now_checked(frame, check)
        {
            return act.notify | notify;
        }
        hold.push_back_with(frame.len(), check, |b| {
            b.copy_from_slice(frame);
            true
        });
        act.notify
    }

    /// [`NetServer::deliver_holding`] of the frame at `offset`, `len` bytes, in `src`
    /// (another link's buffer: the virtualiser's frames from the driver), copied from
    /// there straight into the client's buffer or, if it must wait, into `hold`: one copy
    /// either way, no staging buffer. `len` must be a frame's (checked again here). The
    /// check the frame carries in `src` goes along unchanged (read once, here).
    pub fn deliver_holding_from<const N: usize>(
        &mut self,
        src: &DataRegion,
        offset: usize,
        len: usize,
        hold: &mut FrameQueue<N>,
    ) -> bool {
        let mut act = Activity::default();
        self.flush(hold, &mut act);
        // An unreadable check (a buffer no honest peer names) travels as a wrong one: the
        // client that verifies the frame drops it.
        let c = check::read(src, offset).unwrap_or_default();
        if hold.is_empty()
            && let Some(notify) = self.deliver_now_with(len, |dst, at| {
                src.copy_to(offset, dst, at, len) && check::write(dst, at, c)
            })
        {
            return act.notify | notify;
        }
        hold.push_back_with(len, c, |b| src.copy_out(offset, b));
        act.notify
    }

    /// Whether a frame handed over now would go straight into a client buffer (nothing
    /// held before it, a buffer posted): a server with its own back-pressure (the driver,
    /// which can leave frames with the device) takes no more than this.
    pub fn can_deliver<const N: usize>(&self, hold: &FrameQueue<N>) -> bool {
        hold.is_empty() && self.rx_ready()
    }

    /// Into the oldest posted buffer, completed: `Some(notify)`; `None`: no buffer, or the
    /// frame's length is impossible (nothing consumed).
    fn deliver_now(&mut self, frame: &[u8]) -> Option<bool> {
        self.deliver_now_with(frame.len(), |dst, at| check::copy_in(dst, at, frame))
    }

    /// [`NetServer::deliver_now`] of a frame forwarded with its producer's `check`.
    fn deliver_now_checked(&mut self, frame: &[u8], c: Check) -> Option<bool> {
        self.deliver_now_with(frame.len(), |dst, at| {
            dst.copy_in(at, frame) && check::write(dst, at, c)
        })
    }

    /// [`NetServer::deliver_now`] of a frame of `len` bytes that `fill` copies into the
    /// client's buffer (the region and the offset of its first byte).
    fn deliver_now_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&DataRegion, usize) -> bool,
    ) -> Option<bool> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&len)
            || !self.rx_ready()
            || self.contradiction.is_some()
        {
            return None;
        }
        let d = self.free[self.free_head];
        self.free_head = (self.free_head + 1) % IDS;
        self.free_len -= 1;
        if !self.rx_data.contains(d.offset as usize, len) || !fill(&self.rx_data, d.offset as usize)
        {
            // Cannot happen for a validated descriptor of at least MAX_FRAME bytes and a
            // source range checked by the caller.
            let _ = self.respond(Dir::Rx, d.id, 0);
            return Some(true);
        }
        match self.respond(Dir::Rx, d.id, len as u32) {
            Some(_) => {
                self.stats.rx_delivered += 1;
                Some(true)
            }
            // The client restarted under us: `poll` hands its buffers back. The frame was
            // not taken (the next buffer is not used for it: the restart empties the free
            // list anyway). Or our records are contradicted (`contradiction`).
            None => None,
        }
    }
}
