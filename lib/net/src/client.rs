//! The client end of a link: owns its buffers, keeps every receive buffer posted, sends
//! frames, and gets back across a server restart whatever the server held.

use axolotl_ring::{Client, ClientEvent, Corruption, Error, Generations, LayoutError};

use crate::check::{self, Check, Verdict};
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
    /// This side's own records are contradicted by its ring: the PD is corrupt itself and
    /// must fail-stop ([`Contradiction`]). Sticky: every later poll says it again.
    pub contradiction: Option<Contradiction>,
}

/// Proof that a PD's own state is corrupt: lib/ring, which keeps its own table of the ids
/// out, refuses an id (or buffer) this side's records hold free, or hands back one they do
/// not hold out. No peer wrote anything wrong, so there is nobody to report; and going on
/// lets the records and the ring drift further apart (a buffer never posted again, a frame
/// never sent: a link that stalls while the PD runs and answers heartbeats, the
/// virtualiser's campaign id 118, docs/resilience.md). The PD panics on it, and the monitor
/// restarts it from its clean image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contradiction {
    /// lib/ring refused request (or response) `id`, which this side held free (or in
    /// service), with `error` (`IdInUse`, `IdOutOfRange`, `NotInService`, `BadBuffer`: all
    /// "caller bug").
    Refused { dir: Dir, id: u32, error: Error },
    /// lib/ring completed or reclaimed `id`, which this side did not hold out.
    Unexpected { dir: Dir, id: u32 },
    /// This side's copy of frame `id` out of the peer's buffer did not match the check the
    /// frame carried, while the peer's buffer still does (`crate::check::Verdict::OwnCopy`):
    /// the copy went wrong here (a register, the loop, the code), and the copy is in hand
    /// of nothing the peer wrote.
    Copy { dir: Dir, id: u32 },
}

impl Contradiction {
    /// Whether lib/ring's answer to a request this side's records allowed contradicts them.
    pub(crate) fn of(dir: Dir, id: u32, e: Error) -> Option<Self> {
        match e {
            Error::IdInUse { .. }
            | Error::IdOutOfRange { .. }
            | Error::NotInService { .. }
            | Error::BadBuffer { .. } => Some(Contradiction::Refused { dir, id, error: e }),
            Error::NotConnected | Error::Full | Error::Corrupt(_) => None,
        }
    }
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
    /// Received frames (left in place: kept for the caller, which may still find them
    /// failing their check, [`NetClient::rx_judge`], and count them below too).
    pub rx_frames: u64,
    /// Received frames that failed their check, the server's buffer too
    /// (`crate::check`): dropped, buffer re-posted, the server reported.
    pub rx_check_failed: u64,
    /// Completions with a length outside `MIN_FRAME..=MAX_FRAME`: dropped, buffer re-posted.
    pub rx_bad_len: u64,
    /// Receive buffers the server held when it restarted (re-posted).
    pub rx_reclaimed: u64,
    pub tx_frames: u64,
    /// Transmit buffers back from the server: completed, or reclaimed across its restart
    /// (with [`NetClient::tx_in_flight`], what a progress deadline watches).
    pub tx_returned: u64,
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
    /// [`NetClient::send_with`]'s `fill` could not provide the frame: nothing was sent.
    Refused,
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
    /// The standing fault of each connection (reported once by `Activity::fault`; cleared
    /// when the connection works again).
    rx_fault: Option<Corruption>,
    tx_fault: Option<Corruption>,
    /// A received frame that failed its check (`Corruption::DataCheck`): standing until a
    /// frame passes, as `NetServer`'s.
    rx_bad: Option<Corruption>,
    /// The server restarted while `rx_bad` stood, and no frame of its new incarnation was
    /// judged yet (as `NetServer::awaiting_frame`).
    rx_awaiting: bool,
    /// Whether frames left in place ([`NetClient::poll_in_place`]) are verified against
    /// their check when they arrive (a client that copies them on itself, the VMM), or
    /// not (the virtualiser, which forwards them with their check unchanged).
    verify_in_place: bool,
    /// A bit to flip in the next verified copy (tests of the verdicts only).
    #[cfg(feature = "fault-injection")]
    flip: Option<usize>,
    /// Set once for good: this incarnation's records are not to be trusted.
    contradiction: Option<Contradiction>,
    stats: ClientStats,
    frame: FrameBuf,
    /// Received frames left in their buffers for the caller to copy out in place
    /// ([`NetClient::poll_in_place`]): oldest first, neither posted nor free until
    /// [`NetClient::rx_consume`]. Bit set `rx_kept` mirrors it for `post_rx`.
    kept: [(u32, u32, u32); IDS],
    kept_head: usize,
    kept_len: usize,
    rx_kept: u64,
}

/// Where a poll puts received frames: a callback given a copy, or (`None`) nowhere, left
/// in place ([`NetClient::poll_in_place`]).
type FrameSink<'a> = Option<&'a mut dyn FnMut(&[u8])>;

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
            rx_fault: None,
            tx_fault: None,
            rx_bad: None,
            rx_awaiting: false,
            verify_in_place: false,
            #[cfg(feature = "fault-injection")]
            flip: None,
            contradiction: None,
            stats: ClientStats::default(),
            frame: FrameBuf::new(),
            kept: [(0, 0, 0); IDS],
            kept_head: 0,
            kept_len: 0,
            rx_kept: 0,
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

    /// The link for a deadline: the less advanced of its two connections.
    pub fn link_state(&self) -> axolotl_ring::LinkState {
        use axolotl_ring::LinkState::*;
        match (self.rx.link_state(), self.tx.link_state()) {
            (Connected, Connected) => Connected,
            (Absent, Absent) => Absent,
            _ => Waiting,
        }
    }

    /// The server generation of the receive connection (0: none yet).
    pub fn server_generation(&self) -> u32 {
        self.rx.server_generation()
    }

    /// The connection found corrupt and not working since (a poll that saw nothing wrong
    /// clears it), if any: what an [`crate::Accuser`] watches across the accused's restart.
    pub fn fault(&self) -> Option<(Dir, Corruption)> {
        self.rx_fault
            .map(|c| (Dir::Rx, c))
            .or(self.tx_fault.map(|c| (Dir::Tx, c)))
            .or(self.rx_bad.map(|c| (Dir::Rx, c)))
    }

    /// As [`crate::NetServer::awaiting_frame`], for received frames.
    pub fn awaiting_frame(&self) -> bool {
        self.rx_awaiting
    }

    /// Verify frames left in place against their check as they arrive (one read of the
    /// frame of its own): for a client that copies them on itself without verifying that
    /// copy; a frame that fails is dropped and the server reported. Off by default: the
    /// virtualiser forwards frames with their check and leaves the verifying to the last
    /// copier, and the VMM verifies in its own copy into guest RAM
    /// ([`NetClient::rx_judge`]), which also covers that copy, for less.
    pub fn set_verify_in_place(&mut self, on: bool) {
        self.verify_in_place = on;
    }

    /// This incarnation's records contradicted by its ring: fail-stop.
    pub fn contradiction(&self) -> Option<Contradiction> {
        self.contradiction
    }

    /// Frames handed to the server and not yet back (lib/ring's count, not ours: a
    /// submit whose success we missed still counts).
    pub fn tx_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// Forgets that buffer `id` is with the server, as a bit flipped in this PD's records
    /// would: tests of [`Contradiction`] only.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_forget(&mut self, dir: Dir, id: u32) {
        let bit = 1u64.checked_shl(id).unwrap_or(0);
        match dir {
            Dir::Rx => self.rx_posted &= !bit,
            Dir::Tx => self.tx_busy &= !bit,
        }
    }

    /// Damages bit `bit` of the next received frame this client copies out, in its copy:
    /// tests of the frame check's verdicts only.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_copy_flip(&mut self, bit: usize) {
        self.flip = Some(bit);
    }

    fn contradicted(&mut self, c: Contradiction) {
        self.contradiction.get_or_insert(c);
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
        self.poll_sink(max_frames, Some(&mut on_frame))
    }

    /// [`NetClient::poll`] that copies nothing: each received frame stays in its link
    /// buffer, queued for [`NetClient::rx_peek`], until the caller copied it out where it
    /// goes (a VMM straight into guest RAM, the virtualiser into another link) and
    /// [`NetClient::rx_consume`]d it; the buffer is posted again at the next poll. A
    /// caller with nowhere to put frames leaves them there, and the server, short of
    /// buffers, holds back: back-pressure without a copy. A frame can only be changed
    /// under the caller by a server that breaks the protocol, and then only this
    /// client's own bytes; its length was checked when it arrived.
    pub fn poll_in_place(&mut self) -> Activity {
        self.poll_sink(usize::MAX, None)
    }

    /// The oldest frame [`NetClient::poll_in_place`] kept: `(offset, len)` in
    /// [`NetClient::rx_region`], `len` within `MIN_FRAME..=MAX_FRAME` and the range
    /// inside the region (both checked when it arrived).
    pub fn rx_peek(&self) -> Option<(usize, usize)> {
        (self.kept_len > 0).then(|| {
            let (_, off, len) = self.kept[self.kept_head];
            (off as usize, len as usize)
        })
    }

    /// The frame `k` places behind the oldest kept one (`k` = 0: [`NetClient::rx_peek`]'s),
    /// checked as that one's.
    pub fn rx_peek_at(&self, k: usize) -> Option<(usize, usize)> {
        (k < self.kept_len).then(|| {
            let (_, off, len) = self.kept[(self.kept_head + k) % IDS];
            (off as usize, len as usize)
        })
    }

    /// Frames kept for [`NetClient::rx_peek`].
    pub fn rx_kept(&self) -> usize {
        self.kept_len
    }

    /// The receive half of the link's data region, where [`NetClient::rx_peek`]'s
    /// offsets point.
    pub fn rx_region(&self) -> &DataRegion {
        &self.rx_data
    }

    /// Done with the frame [`NetClient::rx_peek`] named (delivered or dropped): its
    /// buffer goes back to the server at the next poll.
    pub fn rx_consume(&mut self) {
        if self.kept_len == 0 {
            return;
        }
        let (id, _, _) = self.kept[self.kept_head];
        self.kept_head = (self.kept_head + 1) % IDS;
        self.kept_len -= 1;
        self.rx_kept &= !(1u64 << id);
    }

    /// The verdict of the caller's own verifying copy of the frame [`NetClient::rx_peek`]
    /// names (a frame left in place unverified and copied out by the caller, which
    /// verifies it in that copy's loop: the VMM into guest RAM, `crate::check::PieceSummer`),
    /// acted on as this client's own copies' verdicts are: `Good` ends a standing check
    /// failure; `Source` is counted and stands as `Corruption::DataCheck` until a frame
    /// passes, and the first of a run is returned, for the caller to report the server;
    /// `OwnCopy` is [`Contradiction::Copy`] (sticky: the PD fail-stops). The frame stays
    /// queued: the caller [`NetClient::rx_consume`]s it (dropped, unless `Good`).
    pub fn rx_judge(&mut self, v: Verdict) -> Option<(Dir, Corruption)> {
        if self.kept_len == 0 {
            return None;
        }
        let (id, _, _) = self.kept[self.kept_head];
        let mut act = Activity::default();
        self.judged(&mut act, id, v);
        act.fault
    }

    fn keep(&mut self, id: u32, offset: u32, len: u32) {
        // At most IDS buffers exist, and a kept one is neither posted nor completed again.
        if self.kept_len < IDS {
            self.kept[(self.kept_head + self.kept_len) % IDS] = (id, offset, len);
            self.kept_len += 1;
            self.rx_kept |= 1u64 << id;
        }
    }

    fn poll_sink(&mut self, max_frames: usize, mut on_frame: FrameSink<'_>) -> Activity {
        let mut act = Activity::default();
        if self.contradiction.is_none() {
            self.poll_rx(&mut act, max_frames, &mut on_frame);
        }
        if self.contradiction.is_none() {
            self.post_rx(&mut act);
        }
        if self.contradiction.is_none() {
            self.poll_tx(&mut act);
        }
        act.contradiction = self.contradiction;
        act
    }

    fn poll_rx(&mut self, act: &mut Activity, max_frames: usize, on_frame: &mut FrameSink<'_>) {
        let mut frames = 0;
        for _ in 0..POLL_BOUND {
            if frames >= max_frames {
                act.again = true;
                return;
            }
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
                    if self.rx_bad.take().is_some() {
                        self.rx_awaiting = true;
                    }
                    act.peer_restarted = true;
                    act.notify = true;
                }
                ClientEvent::Completed(d) => {
                    if !self.take_rx(d.id) {
                        return;
                    }
                    let len = d.len as usize;
                    if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
                        self.stats.rx_bad_len += 1;
                        continue;
                    }
                    let Some(on_frame) = on_frame.as_mut() else {
                        // In place: lib/ring checked the descriptor inside the region.
                        if !self.rx_data.contains(d.offset as usize, len) {
                            continue;
                        }
                        if self.verify_in_place {
                            let v = check::verify_in_place(&self.rx_data, d.offset as usize, len);
                            if !self.judged(act, d.id, v) {
                                continue;
                            }
                        }
                        self.stats.rx_frames += 1;
                        frames += 1;
                        self.keep(d.id, d.offset, d.len);
                        continue;
                    };
                    let frame = &mut self.frame.0[..len];
                    #[cfg(feature = "fault-injection")]
                    let flip = self.flip.take();
                    #[cfg(not(feature = "fault-injection"))]
                    let flip: Option<usize> = None;
                    let v = check::copy_out_flipping::<{ cfg!(feature = "fault-injection") }>(
                        &self.rx_data,
                        d.offset as usize,
                        frame,
                        flip,
                    );
                    if self.judged(act, d.id, v) {
                        self.stats.rx_frames += 1;
                        frames += 1;
                        on_frame(&self.frame.0[..len]);
                    } else if self.contradiction.is_some() {
                        return;
                    }
                }
                ClientEvent::Reclaimed(d) => {
                    if !self.take_rx(d.id) {
                        return;
                    }
                    self.stats.rx_reclaimed += 1;
                }
            }
        }
        act.again = true;
    }

    /// Acts on the verdict on received frame `id`; `true`: the frame is good.
    fn judged(&mut self, act: &mut Activity, id: u32, v: Verdict) -> bool {
        if v != Verdict::OwnCopy {
            self.rx_awaiting = false;
        }
        match v {
            Verdict::Good => {
                self.rx_bad = None;
                true
            }
            Verdict::OwnCopy => {
                self.contradicted(Contradiction::Copy { dir: Dir::Rx, id });
                false
            }
            Verdict::Source => {
                self.stats.rx_check_failed += 1;
                let c = Corruption::DataCheck { id };
                if self.rx_bad.replace(c).is_none() {
                    act.fault(Dir::Rx, c);
                }
                false
            }
        }
    }

    /// Takes receive buffer `id` back from the server; `false` (and the PD is corrupt) if
    /// our records did not have it out.
    fn take_rx(&mut self, id: u32) -> bool {
        let bit = 1u64.checked_shl(id).unwrap_or(0);
        if self.rx_posted & bit == 0 {
            self.contradicted(Contradiction::Unexpected { dir: Dir::Rx, id });
            return false;
        }
        self.rx_posted &= !bit;
        true
    }

    /// Takes transmit buffer `id` back from the server, as [`NetClient::take_rx`].
    fn take_tx(&mut self, id: u32) -> bool {
        let bit = 1u64.checked_shl(id).unwrap_or(0);
        if self.tx_busy & bit == 0 {
            self.contradicted(Contradiction::Unexpected { dir: Dir::Tx, id });
            return false;
        }
        self.tx_busy &= !bit;
        self.stats.tx_returned += 1;
        true
    }

    /// Posts every receive buffer not with the server.
    fn post_rx(&mut self, act: &mut Activity) {
        if !self.rx.is_connected() {
            return;
        }
        // The ids neither posted nor kept, lowest first: most polls have none, and a walk
        // of all sixteen ids was most of an idle poll's instructions once the rings' own
        // idle answer got short (docs/benchmarks.md, "Idle polls").
        let mut free = !(self.rx_posted | self.rx_kept) & ALL;
        while free != 0 {
            let id = free.trailing_zeros();
            free &= free - 1;
            match self.rx.submit(id, buffer_offset(id), BUF_SIZE as u32) {
                Ok(_) => {
                    self.rx_posted |= 1 << id;
                    act.notify = true;
                }
                Err(Error::Corrupt(c)) => {
                    if self.rx_fault.replace(c).is_none() {
                        act.fault(Dir::Rx, c);
                    }
                    return;
                }
                Err(e) => {
                    // The id is free by our records: a refusal of it is our own corruption
                    // (it used to be ignored, and the buffer was never posted again).
                    if let Some(c) = Contradiction::of(Dir::Rx, id, e) {
                        self.contradicted(c);
                    }
                    return;
                }
            }
        }
    }

    fn poll_tx(&mut self, act: &mut Activity) {
        for _ in 0..POLL_BOUND {
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
                ClientEvent::Completed(d) => {
                    if !self.take_tx(d.id) {
                        return;
                    }
                }
                ClientEvent::Reclaimed(d) => {
                    if !self.take_tx(d.id) {
                        return;
                    }
                    self.stats.tx_dropped += 1;
                }
            }
        }
        act.again = true;
    }

    /// Copies `frame` into a free transmit buffer and hands it to the server. `Ok(())`: the
    /// caller notifies the server. A refusal that contradicts our records is
    /// `NotConnected` here (callers' matches stay as they are) and
    /// [`NetClient::contradiction`] from now on, which the PD turns into a fail-stop.
    ///
    /// This side is the frame's producer: its check is computed over `frame`, the
    /// caller's bytes, in the copy's own loop (`crate::check`), and carried in the buffer.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        self.send_forward(frame.len(), |region, offset| {
            check::copy_in(region, offset, frame)
        })
    }

    /// [`NetClient::send`] of a frame this side forwards with the check its producer
    /// computed (the virtualiser's group frames), unchanged.
    pub fn send_checked(&mut self, frame: &[u8], c: Check) -> Result<(), SendError> {
        self.send_forward(frame.len(), |region, offset| {
            region.copy_in(offset, frame) && check::write(region, offset, c)
        })
    }

    /// [`NetClient::send`] of a frame of `len` bytes that `fill` copies straight into the
    /// transmit buffer (the region and the offset of its `len` bytes) from wherever it is
    /// (a VMM: guest RAM): no staging copy. `fill` returning `false` (the source changed
    /// or vanished) submits nothing, and the send is `Err(Refused)`.
    ///
    /// The check is computed over the buffer after `fill` (a second read of the frame):
    /// it covers every hop after this one, not `fill`'s own copy (the VMM's from guest
    /// RAM, whose chain of guest buffers lib/net does not see).
    pub fn send_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&DataRegion, usize) -> bool,
    ) -> Result<(), SendError> {
        self.send_forward(len, |region, offset| {
            fill(region, offset)
                && check::region_check(region, offset, len)
                    .is_some_and(|c| check::write(region, offset, c))
        })
    }

    /// [`NetClient::send_with`] whose `fill` writes the frame's check too (at
    /// `crate::check::CHECK_AT` of the buffer): the virtualiser, copying a client's frame
    /// and its check straight into the driver's link.
    pub fn send_forward(
        &mut self,
        len: usize,
        fill: impl FnOnce(&DataRegion, usize) -> bool,
    ) -> Result<(), SendError> {
        if self.contradiction.is_some() {
            return Err(SendError::NotConnected);
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            return Err(SendError::BadLength(len));
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
        if !self.tx_data.contains(offset as usize, len) {
            return Err(SendError::BadLength(len));
        }
        if !fill(&self.tx_data, offset as usize) {
            return Err(SendError::Refused);
        }
        match self.tx.submit(id, offset, len as u32) {
            Ok(_) => {
                self.tx_busy |= 1 << id;
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(Error::Corrupt(c)) => Err(SendError::Corrupt(c)),
            Err(Error::Full) => Err(SendError::NoBuffer),
            Err(e) => {
                if let Some(c) = Contradiction::of(Dir::Tx, id, e) {
                    self.contradicted(c);
                }
                Err(SendError::NotConnected)
            }
        }
    }
}
