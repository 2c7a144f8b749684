//! virtio-net (virtio 1.2 §5.1): one receive and one transmit queue.
//!
//! Features: VERSION_1, MAC, STATUS (link up, changeable with [`VirtioNet::set_link`]),
//! MRG_RXBUF (the guest posts small, page-fragment receive buffers and the device
//! spreads a frame over as many as it needs: no 1.5 KiB-per-slot waste, and the
//! driver's cheaper buffer path), EVENT_IDX (fewer notifications and interrupts,
//! each one an exit), INDIRECT_DESC, the transmit offloads CSUM and HOST_TSO4
//! ([`super::net_offload`]): the guest's checksums and TCP segmentation are done here, in
//! the copy into the backend's buffers, so the backend still gets plain Ethernet frames
//! both ways; GUEST_CSUM: a received frame whose TCP or UDP checksum the device
//! verified (from its frame check's sum) is marked DATA_VALID; and GUEST_TSO4: received
//! segments of one TCP flow that are waiting together go to the guest as one packet
//! (`receive_coalesced`: one pass through the guest's stack and one acknowledgement
//! instead of one each, as a NIC's large receive offload gives).
//!
//! TX back-pressure: a frame leaves the ring only when the backend takes it. RX: a
//! frame goes into the guest's buffers when there are enough of them; otherwise the
//! backend keeps it (and it is offered again once the guest posts buffers).
//!
//! RX verification: a frame that carries its producer's check (lib/net `check`, from a
//! link buffer) is verified in the copy into the guest's buffers, each word read back
//! from guest RAM after its store, across every chain and descriptor it spans; only a
//! frame that matches is published on the used ring. One that does not goes unseen: its
//! chains are given back untouched as far as the guest can tell (no used entry), and the
//! backend hears the verdict (docs/network.md, "The frame check").

use axolotl_net::check::{self, Check, PieceSummer, Verdict};
use axolotl_ring::DataRegion;

use super::mem::GuestMemory;
use super::mmio::{Transport, bump};
use super::net_offload::{
    self as offload, GSO_NONE, HDR_F_NEEDS_CSUM, MAX_HEADERS, NetHdr, TxPlan,
};
use super::queue::{Chain, QueueError};
use super::{F_EVENT_IDX, F_INDIRECT_DESC};
use crate::bus::{Access, DeviceError, MmioDevice};

pub const DEVICE_ID: u32 = 1;

pub const F_MAC: u64 = 1 << 5;
pub const F_MRG_RXBUF: u64 = 1 << 15;
pub const F_STATUS: u64 = 1 << 16;

/// `status` field: link up.
pub const S_LINK_UP: u16 = 1;

/// struct virtio_net_hdr_v1 (VERSION_1 always has `num_buffers`).
pub const HDR_LEN: u32 = 12;
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
pub const QUEUE_MAX: u16 = 256;
/// Receive buffers one frame may span (Linux's mergeable buffers are at least
/// 1.5 KiB, so an Ethernet frame takes one or two).
pub const MAX_MERGE: usize = 32;
/// Largest frame either way: 64 KiB (no GSO is offered, so a real frame is at most
/// 1514 bytes plus VLAN tags; this only bounds what a backend could hand in).
pub const MAX_FRAME: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    pub mac: [u8; 6],
    pub link_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Taken (the guest gets its buffer back).
    Sent,
    /// Full: the frame stays on the ring and is offered again later.
    Busy,
    /// Never sendable (too large, malformed): dropped, and counted by the device.
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxOutcome {
    Delivered,
    /// The guest has not posted enough buffers: keep the frame and offer it again.
    NoBuffers,
    /// Dropped and counted: larger than [`MAX_FRAME`] or than the buffers can hold,
    /// empty, or the driver is not running the device.
    Dropped,
    /// The frame's copy did not match the check it carried: not delivered, its chains
    /// given back unused. `Source` (the frame was damaged before it reached the VMM) is
    /// counted; `OwnCopy` (the VMM's own copy went wrong) is the VMM's to fail-stop on.
    Failed(Verdict),
}

/// Where a frame the guest transmits goes: a buffer of exactly its length, or `len`
/// bytes of a data region shared with a peer at `offset` (a link's transmit buffer: the
/// frame is copied from guest RAM straight into it, no staging copy), where the device
/// writes the frame's check after it (lib/net `check`: the buffer's trailer), computed in
/// the same pass over the buffer that gives a segment's checksum.
pub enum TxDest<'a> {
    Bytes(&'a mut [u8]),
    Region(&'a DataRegion, usize),
}

/// A received frame: bytes, or `len` bytes of a shared data region at `offset` (a link's
/// receive buffer, copied straight into the guest's buffers) with the check its producer
/// carried, if it is to be verified in that copy (`None`: delivered unverified).
#[derive(Clone, Copy)]
pub enum RxFrame<'a> {
    Bytes(&'a [u8]),
    Region(&'a DataRegion, usize, usize, Option<Check>),
}

impl RxFrame<'_> {
    pub fn len(&self) -> usize {
        match self {
            RxFrame::Bytes(b) => b.len(),
            RxFrame::Region(_, _, len, _) => *len,
        }
    }

    /// Whether the copy into the guest verifies it.
    pub fn checked(&self) -> bool {
        matches!(self, RxFrame::Region(_, _, _, Some(_)))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The network side, e.g. a client of the network virtualiser over a ring pair.
pub trait NetBackend {
    /// Offers one frame of `len` bytes from the guest. To take it, the backend calls
    /// `fill` once with where the frame's `len` bytes go; when `fill` returns false (the
    /// guest changed the frame under the device) the backend drops it and answers
    /// [`TxOutcome::Dropped`].
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(TxDest<'_>) -> bool) -> TxOutcome;
    /// The oldest received frame the guest has not got yet.
    fn peek_rx(&mut self) -> Option<RxFrame<'_>>;
    /// The frame `k` places behind the one `peek_rx` returns (`k` = 0: that one), if the
    /// backend holds it already and can show it without consuming anything: what the
    /// device coalesces (`VIRTIO_NET_F_GUEST_TSO4`). The default shows none.
    fn peek_rx_at(&self, _k: usize) -> Option<RxFrame<'_>> {
        None
    }
    /// Consumes the frame `peek_rx` returned (delivered or dropped).
    fn pop_rx(&mut self);
    /// What the device's verifying copy found of the frame `peek_rx` returned, for a frame
    /// that carried a check ([`RxFrame::checked`]), before it is popped (`Good`,
    /// `Source`) or not (`OwnCopy`: the VMM's own copy went wrong, and the backend makes
    /// that a fail-stop). The default ignores it: for backends whose frames carry none.
    fn rx_verdict(&mut self, _v: Verdict) {}
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub tx_frames: u32,
    /// Segments cut from TCP packets (`VIRTIO_NET_F_HOST_TSO4`) and handed to the backend
    /// (sent, counted in `tx_frames`, or dropped, in `tx_dropped`).
    pub tx_segments: u32,
    /// TX chains without a whole header, or whose offload request cannot be carried out
    /// (`net_offload::Malformed`): returned unsent.
    pub tx_malformed: u32,
    /// Frames the backend dropped.
    pub tx_dropped: u32,
    pub rx_frames: u32,
    /// Times a frame waited for receive buffers.
    pub rx_no_buffers: u32,
    /// Frames dropped: too large or empty.
    pub rx_dropped: u32,
    /// Frames dropped because the driver was not running the device.
    pub rx_not_ready: u32,
    /// Frames that went to the guest inside a packet another frame began
    /// (`VIRTIO_NET_F_GUEST_TSO4`; counted in `rx_frames` too).
    pub rx_coalesced: u32,
    /// Frames whose copy into the guest failed their check, damaged before the VMM
    /// (`Verdict::Source`): dropped, never seen by the guest.
    pub rx_check_failed: u32,
}

pub struct VirtioNet {
    pub transport: Transport<2>,
    config: NetConfig,
    pub counters: NetCounters,
    /// The transmit chain being cut into segments when the backend ran out of room: the
    /// transport's epoch (a reset starts a new one: the same head is then another chain),
    /// the chain's head and the first segment not yet sent. Not part of the saved state: a
    /// restarted VMM sends that chain's segments again from the first (duplicates, which
    /// TCP drops, as it does every chain taken and not completed; `VirtioNet::restore`).
    tx_progress: Option<(u32, u16, u16)>,
}

/// How a transmit chain went.
enum Sent {
    /// Taken by the backend (or dropped and counted): the chain goes back to the guest.
    Done,
    /// The backend has no room: the chain stays on the ring.
    Busy,
    /// The guest changed the chain while the device read it.
    Changed,
}

/// How [`VirtioNet::receive_coalesced`] went.
enum Coalesced {
    /// The first `frames` frames went to the guest as one packet; bit k of `checked`: frame
    /// k carried a check (its verdict, `Good`, goes to the backend).
    Delivered { frames: usize, checked: u32 },
    /// Deliver the next `n` frames one by one (no run of two, no room for one, or a frame
    /// of the run failed its verifying copy: the single path gives it its verdict).
    Single(usize),
}

/// A received frame's headers as [`VirtioNet::receive_coalesced`] reads them: 8-aligned,
/// so that the copy out of the link buffer moves whole words.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Head([u8; HEAD]);
const HEAD: usize = offload::RX_SEGMENT_HEADERS.next_multiple_of(8);

/// The shortest frame coalescing looks into: headers without TCP options and 10 bytes of
/// payload (a minimum Ethernet frame, an acknowledgement padded, is 60).
const MIN_COALESCE: usize = 64;

/// The most frames one coalesced packet carries: 16 full segments stay far below 64 KiB.
/// Runs up to the IPv4 bound (44 segments) were no faster with links of 64 buffers
/// (docs/benchmarks.md, "Links of 64 buffers"), and cost 4 KiB of headers to set up.
pub const MAX_COALESCE: usize = 16;

/// Writes bytes `from..from + len` of `frame` at byte `pos` of the packet spread over
/// `chains` (their writable parts end to end), through `sum` if the frame is verified.
fn put_piece<M: GuestMemory + ?Sized>(
    mem: &mut M,
    chains: &[Option<Chain>],
    pos: usize,
    frame: RxFrame<'_>,
    from: usize,
    len: usize,
    mut sum: Option<&mut PieceSummer>,
) -> Result<(), QueueError> {
    let (mut start, mut pos, mut from, mut left) = (0usize, pos, from, len);
    for c in chains.iter().flatten() {
        if left == 0 {
            break;
        }
        let w = c.writable as usize;
        if pos < start + w {
            let off = pos - start;
            let take = (w - off).min(left);
            match (frame, sum.as_deref_mut()) {
                (RxFrame::Bytes(b), _) => c.write(mem, off as u32, &b[from..from + take])?,
                (RxFrame::Region(region, at, _, _), Some(s)) => {
                    c.write_from_region_summed(mem, off as u32, region, at + from, take, s)?
                }
                (RxFrame::Region(region, at, _, _), None) => {
                    c.write_from_region(mem, off as u32, region, at + from, take)?
                }
            }
            pos += take;
            from += take;
            left -= take;
        }
        start += w;
    }
    Ok(())
}

/// A received frame's first bytes (at most `out.len()`) and the ones' complement sum of all
/// its bytes: a verified frame's from the check it carries (a claim until its copy is
/// verified), a byte frame's summed here. `None` for a frame in a region without a check:
/// it is not coalesced.
fn rx_head(frame: RxFrame<'_>, out: &mut [u8]) -> Option<(usize, u64)> {
    let n = frame.len().min(out.len());
    match frame {
        RxFrame::Bytes(b) => {
            out[..n].copy_from_slice(&b[..n]);
            Some((n, offload::sum_be(b, 0)))
        }
        RxFrame::Region(region, at, len, Some(c)) => {
            region.copy_out(at, &mut out[..n]).then(|| {
                (
                    n,
                    offload::le_words_to_be(offload::add(c.sum, !(len as u64))),
                )
            })
        }
        RxFrame::Region(_, _, _, None) => None,
    }
}

/// The ones' complement sum ([`offload::sum_be`]'s accumulator) of bytes `from..to` of the
/// frame at `at` in `region` (8-aligned: a link buffer). The frame's words are summed from
/// its start, where the region's words are whole, and the bytes before `from` taken off
/// again: `prefix` if the caller has them (a segment's own headers), read back otherwise.
/// An odd `from` (no IP packet's checksum starts there) is summed a byte at a time.
fn region_sum_be(
    region: &DataRegion,
    at: usize,
    from: usize,
    to: usize,
    prefix: Option<&[u8]>,
) -> Option<u64> {
    if from > to {
        return None;
    }
    let mut buf = [0u8; 128];
    if from % 2 == 1 || from > buf.len() {
        let mut s = 0;
        let mut pos = from;
        while pos < to {
            // Even-sized pieces: the pairs stay the frame's.
            let n = (to - pos).min(buf.len());
            if !region.copy_out(at + pos, &mut buf[..n]) {
                return None;
            }
            s = offload::sum_be(&buf[..n], s);
            pos += n;
        }
        return Some(s);
    }
    let mut le = 0u64;
    if !region.words(at, to, |w| le = offload::add(le, w)) {
        return None;
    }
    let before = match prefix {
        Some(p) if p.len() == from => offload::sum_be(p, 0),
        _ => {
            if !region.copy_out(at, &mut buf[..from]) {
                return None;
            }
            offload::sum_be(&buf[..from], 0)
        }
    };
    let whole = offload::fold(offload::le_words_to_be(le));
    Some(offload::add(
        u64::from(whole),
        u64::from(!offload::fold(before)),
    ))
}

/// The check of the `len`-byte frame at `at` (lib/net `check`) into its buffer's trailer.
fn seal(region: &DataRegion, at: usize, len: usize) -> bool {
    check::region_check(region, at, len).is_some_and(|c| check::write(region, at, c))
}

/// A segment of `len` bytes at `at` in `region`, its TCP checksum field 0, made whole from
/// `c`, its frame check as its copy into the buffer computed it (lib/net `check`): that sum,
/// less the length the check adds and the bytes before TCP (`prefix`, the caller's own
/// headers), is TCP's ([`offload::le_words_to_be`]): `finish` makes the checksum of it,
/// which is stored, and the check is brought up to date for those two bytes rather than
/// summed again (`sum` by their value, `weighted` by it times the words from theirs to the
/// end), then written to the buffer's trailer.
fn seal_segment(
    region: &DataRegion,
    at: usize,
    len: usize,
    mut c: Check,
    prefix: &[u8],
    finish: impl FnOnce(u64) -> u16,
) -> bool {
    let le = offload::add(c.sum, !(len as u64));
    let whole = offload::fold(offload::le_words_to_be(le));
    let tcp_sum = offload::add(
        u64::from(whole),
        u64::from(!offload::fold(offload::sum_be(prefix, 0))),
    );
    let field = prefix.len() + 16;
    let csum = finish(tcp_sum);
    if !write_be16(region, at + field, csum) {
        return false;
    }
    let words = len.div_ceil(8);
    for (j, b) in csum.to_be_bytes().into_iter().enumerate() {
        let p = field + j;
        let d = u64::from(b) << (8 * (p % 8));
        let s = offload::add(c.sum, d);
        c.sum = if s == u64::MAX { 0 } else { s };
        c.weighted = c
            .weighted
            .wrapping_add(d.wrapping_mul((words - p / 8) as u64));
    }
    check::write(region, at, c)
}

/// Stores `v` big-endian at `offset` of `region`.
fn write_be16(region: &DataRegion, offset: usize, v: u16) -> bool {
    let [a, b] = v.to_be_bytes();
    region.write_u8(offset, a) && region.write_u8(offset + 1, b)
}

impl VirtioNet {
    pub fn new(config: NetConfig, ram: (u64, u64)) -> Self {
        let features = F_MAC
            | F_STATUS
            | F_MRG_RXBUF
            | F_EVENT_IDX
            | F_INDIRECT_DESC
            | offload::F_CSUM
            | offload::F_GUEST_CSUM
            | offload::F_GUEST_TSO4
            | offload::F_HOST_TSO4;
        Self {
            transport: Transport::new(DEVICE_ID, features, QUEUE_MAX, ram),
            config,
            counters: NetCounters::default(),
            tx_progress: None,
        }
    }

    pub fn irq_level(&self) -> bool {
        self.transport.irq_level()
    }

    /// Changes the link state the guest sees (a configuration-change interrupt).
    pub fn set_link(&mut self, up: bool) {
        if self.config.link_up != up {
            self.config.link_up = up;
            self.transport.config_changed();
        }
    }

    /// struct virtio_net_config: mac, status (max_virtqueue_pairs and mtu are not
    /// offered and read as zero).
    fn config_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.config.mac);
        let status = if self.config.link_up { S_LINK_UP } else { 0 };
        b[6..8].copy_from_slice(&status.to_le_bytes());
        b
    }

    fn error(&mut self, e: QueueError) {
        self.transport.device_error(e);
    }

    fn notify<M: GuestMemory + ?Sized>(&mut self, mem: &M, q: usize) {
        if !self.transport.live() {
            return;
        }
        match self.transport.queues[q].should_notify(mem) {
            Ok(true) => self.transport.interrupt_used(),
            Ok(false) => {}
            Err(e) => self.error(e),
        }
    }

    /// Sends what the guest queued and delivers what the backend holds, as far as
    /// both sides have room. Call it after a QueueNotify, when frames arrive and when
    /// the backend has room again.
    pub fn process<M: GuestMemory + ?Sized, B: NetBackend + ?Sized>(
        &mut self,
        mem: &mut M,
        backend: &mut B,
    ) {
        self.transport.take_notified();
        if !self.transport.live() {
            // Nobody would ever take these frames: dropping beats stalling the backend.
            while backend.peek_rx().is_some() {
                bump(&mut self.counters.rx_not_ready);
                backend.pop_rx();
            }
            return;
        }
        self.transmit(mem, backend);
        // Frames to deliver one by one before coalescing is tried again: those of a packet
        // that failed its verifying copy, so that each gets its own verdict.
        let mut single = 0usize;
        let gso = offload::F_GUEST_TSO4 | offload::F_GUEST_CSUM;
        let coalescing = self.transport.features() & gso == gso;
        loop {
            if backend.peek_rx().is_none() {
                break;
            }
            if coalescing && single == 0 {
                match self.receive_coalesced(mem, &*backend) {
                    Coalesced::Delivered { frames, checked } => {
                        for k in 0..frames {
                            if checked & (1 << k) != 0 {
                                backend.rx_verdict(Verdict::Good);
                            }
                            backend.pop_rx();
                        }
                        continue;
                    }
                    Coalesced::Single(n) => single = n,
                }
            }
            single = single.saturating_sub(1);
            let Some(frame) = backend.peek_rx() else {
                break;
            };
            let checked = frame.checked();
            match self.receive_frame(mem, frame) {
                RxOutcome::NoBuffers => break,
                RxOutcome::Delivered => {
                    if checked {
                        backend.rx_verdict(Verdict::Good);
                    }
                    backend.pop_rx();
                }
                RxOutcome::Dropped => backend.pop_rx(),
                RxOutcome::Failed(v) => {
                    backend.rx_verdict(v);
                    if v == Verdict::OwnCopy {
                        // This VMM's copies are not to be trusted: nothing more until it
                        // is restarted.
                        break;
                    }
                    backend.pop_rx();
                }
            }
        }
    }

    fn transmit<M: GuestMemory + ?Sized, B: NetBackend + ?Sized>(
        &mut self,
        mem: &mut M,
        backend: &mut B,
    ) {
        while self.transport.live() {
            let chain = match self.transport.queues[TX_QUEUE].pop(mem) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    self.error(e);
                    break;
                }
            };
            match self.transmit_chain(&*mem, backend, &chain) {
                Sent::Done => {}
                Sent::Busy => {
                    self.transport.queues[TX_QUEUE].unpop();
                    break;
                }
                Sent::Changed => {
                    self.error(QueueError::ChainChanged);
                    break;
                }
            }
            self.tx_progress = None;
            if let Err(e) = self.transport.queues[TX_QUEUE].push_used(mem, chain.head, 0) {
                self.error(e);
            }
        }
        self.notify(&*mem, TX_QUEUE);
    }

    /// Sends one chain's packet: as it is, with its checksum filled in, or cut into TCP
    /// segments (`net_offload`). A packet whose segments the backend could not all take
    /// yet is `Busy`, and the segments sent are remembered (`tx_progress`) so that the next
    /// try goes on from the first one not sent.
    fn transmit_chain<M: GuestMemory + ?Sized, B: NetBackend + ?Sized>(
        &mut self,
        m: &M,
        backend: &mut B,
        chain: &Chain,
    ) -> Sent {
        if chain.readable < HDR_LEN {
            bump(&mut self.counters.tx_malformed);
            return Sent::Done;
        }
        let len = (chain.readable - HDR_LEN) as usize;
        let mut h = [0u8; 10];
        if chain.read(m, 0, &mut h).is_err() {
            return Sent::Changed;
        }
        let hdr = NetHdr::parse(&h);
        let plan = if hdr.gso_type == GSO_NONE && hdr.flags & HDR_F_NEEDS_CSUM == 0 {
            Ok(TxPlan::Plain)
        } else {
            let mut head = [0u8; MAX_HEADERS];
            let n = len.min(MAX_HEADERS);
            if chain.read(m, HDR_LEN, &mut head[..n]).is_err() {
                return Sent::Changed;
            }
            offload::plan(&hdr, self.transport.features(), &head[..n], len)
        };
        match plan {
            Err(_) => {
                bump(&mut self.counters.tx_malformed);
                Sent::Done
            }
            Ok(TxPlan::Plain) => self.send(backend, len, &mut |dest| match dest {
                TxDest::Bytes(buf) => buf.len() == len && chain.read(m, HDR_LEN, buf).is_ok(),
                TxDest::Region(region, at) => {
                    // The check comes out of the copy (each word as stored, read back).
                    let mut sum = PieceSummer::new(len);
                    let mut cursor = chain.cursor();
                    chain
                        .read_to_region_summed_with(
                            m,
                            &mut cursor,
                            HDR_LEN,
                            region,
                            at,
                            len,
                            &mut sum,
                        )
                        .is_ok()
                        && sum.finish().is_some_and(|c| check::write(region, at, c))
                }
            }),
            Ok(TxPlan::Csum { start, offset }) => self.send(backend, len, &mut |dest| match dest {
                TxDest::Bytes(buf) => {
                    buf.len() == len && chain.read(m, HDR_LEN, buf).is_ok() && {
                        let c = offload::nonzero(!offload::fold(offload::sum_be(&buf[start..], 0)));
                        buf[start + offset..start + offset + 2].copy_from_slice(&c.to_be_bytes());
                        true
                    }
                }
                TxDest::Region(region, at) => {
                    chain.read_to_region(m, HDR_LEN, region, at, len).is_ok()
                        && region_sum_be(region, at, start, len, None).is_some_and(|s| {
                            let c = offload::nonzero(!offload::fold(s));
                            write_be16(region, at + start + offset, c)
                        })
                        && seal(region, at, len)
                }
            }),
            Ok(TxPlan::Tso(t)) => {
                let epoch = self.transport.epoch();
                // The segments' payloads are read in order: one walk of the chain for all.
                let mut cursor = chain.cursor();
                let first = match self.tx_progress {
                    Some((e, head, next)) if (e, head) == (epoch, chain.head) => usize::from(next),
                    _ => 0,
                };
                for i in first..t.segments() {
                    let mut seg = [0u8; MAX_HEADERS];
                    let seg_len = t.header(i, &mut seg);
                    let (from, n) = t.payload_of(i);
                    let (hlen, tcp) = (t.hlen, t.tcp());
                    let at_payload = HDR_LEN + (hlen + from) as u32;
                    let sent = self.send(backend, seg_len, &mut |dest| match dest {
                        TxDest::Bytes(buf) => {
                            buf.len() == seg_len
                                && chain.read(m, at_payload, &mut buf[hlen..]).is_ok()
                                && {
                                    buf[..hlen].copy_from_slice(&seg[..hlen]);
                                    let c = t.finish(seg_len, offload::sum_be(&buf[tcp..], 0));
                                    buf[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
                                    true
                                }
                        }
                        TxDest::Region(region, at) => {
                            // Headers and payload into the link buffer, the frame's check
                            // out of that copy; then the TCP checksum from the check.
                            let mut sum = PieceSummer::new(seg_len);
                            sum.copy_in(region, at, &seg[..hlen])
                                && chain
                                    .read_to_region_summed_with(
                                        m,
                                        &mut cursor,
                                        at_payload,
                                        region,
                                        at + hlen,
                                        n,
                                        &mut sum,
                                    )
                                    .is_ok()
                                && sum.finish().is_some_and(|c| {
                                    seal_segment(region, at, seg_len, c, &seg[..tcp], |s| {
                                        t.finish(seg_len, s)
                                    })
                                })
                        }
                    });
                    match sent {
                        Sent::Done => bump(&mut self.counters.tx_segments),
                        Sent::Busy => {
                            self.tx_progress = Some((epoch, chain.head, i as u16));
                            return Sent::Busy;
                        }
                        Sent::Changed => return Sent::Changed,
                    }
                }
                Sent::Done
            }
        }
    }

    /// One frame of `len` bytes to the backend, `fill` putting it where the backend says.
    fn send<B: NetBackend + ?Sized>(
        &mut self,
        backend: &mut B,
        len: usize,
        fill: &mut dyn FnMut(TxDest<'_>) -> bool,
    ) -> Sent {
        let mut copied = true;
        let answer = backend.transmit(len, &mut |dest| {
            copied = fill(dest);
            copied
        });
        match answer {
            TxOutcome::Busy => return Sent::Busy,
            TxOutcome::Sent if copied => bump(&mut self.counters.tx_frames),
            TxOutcome::Sent | TxOutcome::Dropped => bump(&mut self.counters.tx_dropped),
        }
        if copied { Sent::Done } else { Sent::Changed }
    }

    /// Delivers the frames at the head of the backend's queue that continue one TCP flow
    /// in sequence as one packet (`VIRTIO_NET_F_GUEST_TSO4`, virtio 1.2 §5.1.6.4): the
    /// first frame whole, the payloads of the others after it, the first's headers made
    /// the packet's ([`offload::coalesced_headers`]), `gso_size` the first's payload and
    /// `NEEDS_CSUM` over TCP. Every frame is verified in its copy as a single one is (the
    /// headers of the later ones, not copied, from the bytes the decision was made on);
    /// nothing is published unless all of them are good.
    fn receive_coalesced<M: GuestMemory + ?Sized, B: NetBackend + ?Sized>(
        &mut self,
        mem: &mut M,
        backend: &B,
    ) -> Coalesced {
        // A frame too short to carry a segment's worth of payload is not looked into; one
        // that cannot start a run (an acknowledgement without payload, most often: a
        // transmitting guest receives one for every segment or two) only as far as that
        // takes: the arrays below, two kilobytes to set up, are not set up for it.
        let Some(frame) = backend.peek_rx_at(0).filter(|f| f.len() >= MIN_COALESCE) else {
            return Coalesced::Single(1);
        };
        let mut head = Head([0; HEAD]);
        let Some(seg) = rx_head(frame, &mut head.0)
            .and_then(|(h, sum)| offload::rx_segment(&head.0[..h], frame.len(), sum))
            .filter(|seg| !seg.psh)
        else {
            return Coalesced::Single(1);
        };
        let mut run = [None::<(RxFrame<'_>, offload::RxSegment)>; MAX_COALESCE];
        let mut heads = [Head([0; HEAD]); MAX_COALESCE];
        (run[0], heads[0]) = (Some((frame, seg)), head);
        let mss = seg.payload;
        let mut m = 1;
        let mut bytes = frame.len();
        while m < MAX_COALESCE {
            let Some(frame) = backend.peek_rx_at(m) else {
                break;
            };
            let Some((h, sum)) = rx_head(frame, &mut heads[m].0) else {
                break;
            };
            let Some(seg) = offload::rx_segment(&heads[m].0[..h], frame.len(), sum) else {
                break;
            };
            if let Some((_, prev)) = run[m - 1]
                && !offload::continues(&heads[m - 1].0, &prev, &heads[m].0, &seg, mss)
            {
                break;
            }
            // The IPv4 length bounds the packet.
            if bytes + seg.payload > 65_535 + 14 {
                break;
            }
            bytes += seg.payload;
            run[m] = Some((frame, seg));
            m += 1;
            if seg.psh {
                break;
            }
        }
        if m < 2 {
            return Coalesced::Single(1);
        }
        // Receive buffers for as many of the run's frames as they hold.
        let merge = self.transport.features() & F_MRG_RXBUF != 0;
        let limit = if merge { MAX_MERGE } else { 1 };
        let mut chains = [None::<Chain>; MAX_MERGE];
        let mut n = 0;
        let mut room = 0usize;
        let total = HDR_LEN as usize + bytes;
        while room < total && n < limit {
            match self.transport.queues[RX_QUEUE].pop(mem) {
                // A chain without room for a header is the single path's to refuse.
                Ok(Some(c)) if c.writable >= HDR_LEN => {
                    room += c.writable as usize;
                    chains[n] = Some(c);
                    n += 1;
                }
                Ok(Some(_)) => {
                    self.transport.queues[RX_QUEUE].unpop();
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(e);
                    return Coalesced::Single(1);
                }
            }
        }
        let unpop = |dev: &mut Self, k: usize| {
            for _ in 0..k {
                dev.transport.queues[RX_QUEUE].unpop();
            }
        };
        while HDR_LEN as usize + bytes > room && m > 0 {
            m -= 1;
            let (f, seg) = run[m].expect("in the run");
            bytes -= if m == 0 { f.len() } else { seg.payload };
        }
        if m < 2 {
            unpop(self, n);
            return Coalesced::Single(1);
        }
        let total = HDR_LEN as usize + bytes;
        // The chains the packet fills; the rest go back.
        let mut needed = 0;
        let mut filled = 0usize;
        while filled < total {
            filled += chains[needed].map_or(0, |c| c.writable as usize);
            needed += 1;
        }
        unpop(self, n - needed);
        let n = needed;
        let chains = &chains[..n];
        let mut pos = HDR_LEN as usize;
        let mut checked = 0u32;
        for (k, &(frame, seg)) in run.iter().take(m).flatten().enumerate() {
            let mut sum = match frame {
                RxFrame::Region(_, _, len, Some(_)) => Some(PieceSummer::new(len)),
                _ => None,
            };
            let (from, len) = if k == 0 {
                (0, frame.len())
            } else {
                if let Some(s) = sum.as_mut() {
                    // The headers the decision was made on: verified as the frame's.
                    s.push_bytes(&heads[k].0[..seg.hlen]);
                }
                (seg.hlen, seg.payload)
            };
            if let Err(e) = put_piece(mem, chains, pos, frame, from, len, sum.as_mut()) {
                self.error(e);
                return Coalesced::Single(m);
            }
            pos += len;
            if let (Some(s), RxFrame::Region(region, at, _, Some(carried))) = (sum, frame) {
                if s.verdict(region, at, carried) != Verdict::Good {
                    // Taken and written, never published: the frames up to this one go
                    // one by one, each with its own verdict.
                    unpop(self, n);
                    return Coalesced::Single(k + 1);
                }
                checked |= 1 << k;
            }
        }
        let (_, first) = run[0].expect("in the run");
        let (_, last) = run[m - 1].expect("in the run");
        let mut head = heads[0].0;
        offload::coalesced_headers(&mut head[..first.hlen], bytes, last.psh);
        let mut hdr = [0u8; HDR_LEN as usize];
        hdr[0] = offload::HDR_F_NEEDS_CSUM;
        hdr[1] = offload::GSO_TCPV4;
        hdr[2..4].copy_from_slice(&(first.hlen as u16).to_le_bytes());
        hdr[4..6].copy_from_slice(&(first.payload as u16).to_le_bytes());
        hdr[6..8].copy_from_slice(&(offload::RX_TCP as u16).to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        hdr[10..12].copy_from_slice(&(n as u16).to_le_bytes());
        let headers = RxFrame::Bytes(&head[..first.hlen]);
        if let Err(e) = put_piece(mem, chains, HDR_LEN as usize, headers, 0, first.hlen, None)
            .and_then(|()| chains[0].expect("popped").write(mem, 0, &hdr))
        {
            self.error(e);
            return Coalesced::Single(m);
        }
        let mut start = 0usize;
        for c in chains.iter().flatten() {
            let used = (c.writable as usize).min(total - start);
            start += c.writable as usize;
            if let Err(e) = self.transport.queues[RX_QUEUE].push_used(mem, c.head, used as u32) {
                self.error(e);
                return Coalesced::Single(m);
            }
        }
        self.counters.rx_frames = self.counters.rx_frames.wrapping_add(m as u32);
        self.counters.rx_coalesced = self.counters.rx_coalesced.wrapping_add(m as u32 - 1);
        self.notify(&*mem, RX_QUEUE);
        Coalesced::Delivered { frames: m, checked }
    }

    /// Puts one received frame into the guest's receive buffers.
    pub fn receive<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, frame: &[u8]) -> RxOutcome {
        self.receive_frame(mem, RxFrame::Bytes(frame))
    }

    /// [`VirtioNet::receive`] of a frame that may lie in a shared region: copied from
    /// there straight into the guest's buffers, and verified in that copy if it carries a
    /// check. The chains are written first and published on the used ring only once the
    /// whole frame is in them (and verified): the guest never sees part of a frame, nor a
    /// frame that failed.
    pub fn receive_frame<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        frame: RxFrame<'_>,
    ) -> RxOutcome {
        if !self.transport.live() {
            bump(&mut self.counters.rx_not_ready);
            return RxOutcome::Dropped;
        }
        if frame.is_empty() || frame.len() > MAX_FRAME {
            bump(&mut self.counters.rx_dropped);
            return RxOutcome::Dropped;
        }
        let total = HDR_LEN + frame.len() as u32;
        let merge = self.transport.features() & F_MRG_RXBUF != 0;
        let limit = if merge { MAX_MERGE } else { 1 };
        // Filled as taken: an array of MAX_MERGE `Option<Chain>`s was a kilobyte zeroed for
        // every frame, most of which take one chain.
        let mut chains = heapless::Vec::<Chain, MAX_MERGE>::new();
        let mut n = 0;
        let mut room = 0u32;
        while room < total && n < limit {
            match self.transport.queues[RX_QUEUE].pop(mem) {
                Ok(Some(c)) if c.writable < HDR_LEN => {
                    // §5.1.6.3: every receive buffer holds at least a header.
                    self.error(QueueError::MissingHeader);
                    bump(&mut self.counters.rx_dropped);
                    return RxOutcome::Dropped;
                }
                Ok(Some(c)) => {
                    room = room.saturating_add(c.writable);
                    // n < limit <= MAX_MERGE: there is room.
                    let _ = chains.push(c);
                    n += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(e);
                    bump(&mut self.counters.rx_dropped);
                    return RxOutcome::Dropped;
                }
            }
        }
        if room < total {
            for _ in 0..n {
                self.transport.queues[RX_QUEUE].unpop();
            }
            if n == limit {
                // Even the most buffers a frame may span cannot hold it.
                bump(&mut self.counters.rx_dropped);
                return RxOutcome::Dropped;
            }
            bump(&mut self.counters.rx_no_buffers);
            return RxOutcome::NoBuffers;
        }
        let mut hdr = [0u8; HDR_LEN as usize];
        hdr[10..12].copy_from_slice(&(n as u16).to_le_bytes());
        let mut sum = match frame {
            RxFrame::Region(_, _, len, Some(_)) => Some(PieceSummer::new(len)),
            _ => None,
        };
        let mut used = [0u32; MAX_MERGE];
        let mut sent = 0usize;
        for (k, c) in chains.iter().enumerate() {
            let off = if k == 0 { HDR_LEN } else { 0 };
            let take = ((c.writable - off) as usize).min(frame.len() - sent);
            let r = match (frame, sum.as_mut()) {
                (RxFrame::Bytes(b), _) => c.write(mem, off, &b[sent..sent + take]),
                (RxFrame::Region(region, at, _, _), Some(sum)) => {
                    c.write_from_region_summed(mem, off, region, at + sent, take, sum)
                }
                (RxFrame::Region(region, at, _, _), None) => {
                    c.write_from_region(mem, off, region, at + sent, take)
                }
            };
            if let Err(e) = r {
                self.error(e);
                return RxOutcome::Dropped;
            }
            sent += take;
            used[k] = off + take as u32;
        }
        // The ones' complement sum of the frame's bytes, where it is known without another
        // pass: a verified frame's is its check's (the copy matched it), less the length
        // the check adds.
        let mut frame_sum = None;
        if let (Some(sum), RxFrame::Region(region, at, len, Some(carried))) = (sum, frame) {
            let v = sum.verdict(region, at, carried);
            if v != Verdict::Good {
                // Taken and written, never published: the guest's to fill again.
                for _ in 0..n {
                    self.transport.queues[RX_QUEUE].unpop();
                }
                if v == Verdict::Source {
                    bump(&mut self.counters.rx_check_failed);
                }
                return RxOutcome::Failed(v);
            }
            frame_sum = Some(offload::le_words_to_be(offload::add(
                carried.sum,
                !(len as u64),
            )));
        }
        if self.transport.features() & offload::F_GUEST_CSUM != 0 {
            // DATA_VALID only for a checksum this device verified itself: the guest then
            // skips its own pass over the frame.
            let mut head = [0u8; offload::RX_HEADERS];
            let h = frame.len().min(head.len());
            let (got, sum) = match frame {
                RxFrame::Bytes(b) => {
                    head[..h].copy_from_slice(&b[..h]);
                    (true, Some(offload::sum_be(b, 0)))
                }
                RxFrame::Region(region, at, _, _) => {
                    (region.copy_out(at, &mut head[..h]), frame_sum)
                }
            };
            if got && sum.is_some_and(|s| offload::rx_checksum_valid(&head[..h], frame.len(), s)) {
                hdr[0] = offload::HDR_F_DATA_VALID;
            }
        }
        if let Some(c) = chains.first()
            && let Err(e) = c.write(mem, 0, &hdr)
        {
            self.error(e);
            return RxOutcome::Dropped;
        }
        for (c, &len) in chains.iter().zip(&used) {
            if let Err(e) = self.transport.queues[RX_QUEUE].push_used(mem, c.head, len) {
                self.error(e);
                return RxOutcome::Dropped;
            }
        }
        bump(&mut self.counters.rx_frames);
        self.notify(&*mem, RX_QUEUE);
        RxOutcome::Delivered
    }
}

impl MmioDevice for VirtioNet {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError> {
        let config = self.config_bytes();
        Ok(self.transport.read(a, &config))
    }

    fn write(&mut self, a: Access, value: u64) -> Result<(), DeviceError> {
        self.transport.write(a, value);
        Ok(())
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "net_check_tests.rs"]
mod check_tests;

#[cfg(test)]
#[path = "net_coalesce_tests.rs"]
mod coalesce_tests;

impl VirtioNet {
    /// For the state region: the transport is all virtio-net keeps (frames waiting for
    /// receive buffers are the backend's, see `NetRing`).
    pub fn save(&self) -> super::TransportState<2> {
        self.transport.save()
    }

    /// A restarted VMM's device: the transport restored (checked; on error nothing
    /// changed), the used rings caught up with guest memory and every chain taken and not
    /// completed taken again (virtio-net completes in the order it takes: transmit when
    /// the backend took the frame, receive buffers as they fill). A frame sent twice is
    /// what a duplicating link gives; TCP drops it. Returns the chains to take again.
    pub fn restore<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        st: &super::TransportState<2>,
    ) -> Result<u32, super::VirtioStateError> {
        let mut t = self.transport.clone();
        t.restore(st)?;
        let n = t.reissue_in_flight(mem);
        // Buffers the dead VMM used after its commit may never have been signalled.
        if t.status() & super::status::DRIVER_OK != 0 {
            t.interrupt_used();
        }
        self.transport = t;
        Ok(n)
    }
}
