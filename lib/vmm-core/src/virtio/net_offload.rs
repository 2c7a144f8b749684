//! virtio-net's offloads: on transmit (virtio 1.2 §5.1.6.2) the checksum the guest leaves to
//! the device (`VIRTIO_NET_F_CSUM`) and TCP segmentation (`VIRTIO_NET_F_HOST_TSO4`); on
//! receive (§5.1.6.4) checksums the device vouches for (`VIRTIO_NET_F_GUEST_CSUM`) and a
//! TCP flow's segments handed over as one packet (`VIRTIO_NET_F_GUEST_TSO4`,
//! [`rx_segment`], [`continues`], [`coalesced_headers`]).
//!
//! Why the VMM does this work: the link behind it (the virtualiser, the net driver, QEMU's
//! user network on the QEMU board) carries plain Ethernet frames of at most 1,514 bytes, so
//! whoever takes the guest's 64 KiB TCP packets must cut them and fill in the checksums.
//! Doing it in the guest costs it the segmentation of every packet in its own stack and a
//! checksum pass over every byte; doing it here costs a header per segment (the payload is
//! copied once either way, guest RAM to the link's buffer) and a sum over the segment's
//! words. docs/network.md, "Offloads", has the measurements.
//!
//! Everything in the header is the guest's claim: the offsets are checked against the
//! frame, the headers are parsed here from the frame's own bytes (the header's `hdr_len`
//! is only a hint, as the spec says), and a packet this device cannot segment is dropped
//! and counted (`tx_malformed`), never sent half-made.

/// `VIRTIO_NET_F_CSUM`: the device computes the checksums the guest marks.
pub const F_CSUM: u64 = 1 << 0;
/// `VIRTIO_NET_F_GUEST_CSUM`: the driver takes received packets whose checksum the device
/// vouches for (`VIRTIO_NET_HDR_F_DATA_VALID`).
pub const F_GUEST_CSUM: u64 = 1 << 1;
/// `VIRTIO_NET_F_GUEST_TSO4`: the driver takes received TCP/IPv4 packets longer than a
/// segment (`gso_type` TCPV4, `gso_size` the sender's segment size).
pub const F_GUEST_TSO4: u64 = 1 << 7;
/// `VIRTIO_NET_F_HOST_TSO4`: the device segments TCP over IPv4.
pub const F_HOST_TSO4: u64 = 1 << 11;

/// `virtio_net_hdr.flags`: `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
pub const HDR_F_NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr.flags`: `VIRTIO_NET_HDR_F_DATA_VALID` (on a received packet).
pub const HDR_F_DATA_VALID: u8 = 2;
/// `virtio_net_hdr.gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;

/// The largest Ethernet frame a segment may be (the link's, without a frame check).
pub const MAX_SEGMENT_FRAME: usize = 1514;
/// The most header bytes a TCP/IPv4 segment can have: Ethernet with one VLAN tag, IPv4 and
/// TCP with the most options.
pub const MAX_HEADERS: usize = 18 + 60 + 60;
/// The bytes of a received frame [`rx_checksum_valid`] reads: Ethernet with one VLAN tag
/// and IPv4 with the most options.
pub const RX_HEADERS: usize = 18 + 60;

/// The header bytes of a received frame [`rx_segment`] reads: Ethernet, IPv4 without
/// options, TCP with the most options.
pub const RX_SEGMENT_HEADERS: usize = 14 + 20 + 60;
/// Where a coalesced packet's TCP header starts (Ethernet, IPv4 without options): its
/// `csum_start`.
pub const RX_TCP: usize = 14 + 20;

/// The first fields of `struct virtio_net_hdr` (little-endian, VERSION_1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl NetHdr {
    pub fn parse(b: &[u8; 10]) -> Self {
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        NetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        }
    }
}

/// What the device does with a transmitted packet of `len` frame bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPlan {
    /// Sent as it is.
    Plain,
    /// Sent as it is, with the ones' complement checksum of bytes `start..` stored at
    /// `start + offset` (the guest has put the pseudo-header's sum there).
    Csum { start: usize, offset: usize },
    /// Cut into TCP segments.
    Tso(Tso),
}

/// Why a packet's offload request cannot be carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// An offload the driver did not negotiate, or a `gso_type` this device does not offer.
    NotNegotiated,
    /// `csum_start` / `csum_offset` outside the frame.
    CsumRange,
    /// Not Ethernet / IPv4 / TCP as segmentation needs (fragments, a bad header length).
    Headers,
    /// `gso_size` of 0, or segments that would not fit the link's frames.
    SegmentSize,
}

/// A TCP/IPv4 packet to cut: its headers (as the guest wrote them), where IP and TCP begin,
/// and the payload's size and cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tso {
    headers: [u8; MAX_HEADERS],
    /// Ethernet (and VLAN) header length: where IPv4 begins.
    ip: usize,
    /// Where TCP begins.
    tcp: usize,
    /// All the headers: where the payload begins.
    pub hlen: usize,
    /// Payload bytes per segment (the last may be shorter).
    pub mss: usize,
    /// Payload bytes of the whole packet.
    pub payload: usize,
}

/// What `hdr` asks for a frame of `len` bytes whose first bytes are `head` (at least
/// `MAX_HEADERS` of them, or the whole frame if shorter), under the `features` the driver
/// negotiated.
pub fn plan(hdr: &NetHdr, features: u64, head: &[u8], len: usize) -> Result<TxPlan, Malformed> {
    if hdr.gso_type == GSO_NONE {
        if hdr.flags & HDR_F_NEEDS_CSUM == 0 {
            return Ok(TxPlan::Plain);
        }
        if features & F_CSUM == 0 {
            return Err(Malformed::NotNegotiated);
        }
        let (start, offset) = (usize::from(hdr.csum_start), usize::from(hdr.csum_offset));
        if start + offset + 2 > len {
            return Err(Malformed::CsumRange);
        }
        return Ok(TxPlan::Csum { start, offset });
    }
    if hdr.gso_type != GSO_TCPV4 || features & F_HOST_TSO4 == 0 || features & F_CSUM == 0 {
        return Err(Malformed::NotNegotiated);
    }
    Tso::parse(head, len, usize::from(hdr.gso_size)).map(TxPlan::Tso)
}

impl Tso {
    /// The packet's headers from its first bytes `head`, the frame `len` bytes long.
    pub fn parse(head: &[u8], len: usize, mss: usize) -> Result<Tso, Malformed> {
        let be16 = |i: usize| head.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let ip = match be16(12) {
            Some(0x0800) => 14,
            Some(0x8100) if be16(16) == Some(0x0800) => 18,
            _ => return Err(Malformed::Headers),
        };
        let vihl = *head.get(ip).ok_or(Malformed::Headers)?;
        let ihl = usize::from(vihl & 0xf) * 4;
        if vihl >> 4 != 4 || ihl < 20 {
            return Err(Malformed::Headers);
        }
        // A fragment cannot be segmented (and TCP is never sent so).
        let frag = be16(ip + 6).ok_or(Malformed::Headers)?;
        if head.get(ip + 9) != Some(&6) || frag & 0x3fff != 0 {
            return Err(Malformed::Headers);
        }
        let tcp = ip + ihl;
        let doff = usize::from(*head.get(tcp + 12).ok_or(Malformed::Headers)? >> 4) * 4;
        let hlen = tcp + doff;
        if doff < 20 || hlen > head.len() || hlen > len {
            return Err(Malformed::Headers);
        }
        // IPv4's total length bounds a packet, and so the work one chain makes.
        if mss == 0 || hlen + mss > MAX_SEGMENT_FRAME || len - ip > usize::from(u16::MAX) {
            return Err(Malformed::SegmentSize);
        }
        let mut headers = [0; MAX_HEADERS];
        headers[..hlen].copy_from_slice(&head[..hlen]);
        Ok(Tso {
            headers,
            ip,
            tcp,
            hlen,
            mss,
            payload: len - hlen,
        })
    }

    /// How many segments the packet is cut into (one for a packet with no payload).
    pub fn segments(&self) -> usize {
        self.payload.div_ceil(self.mss).max(1)
    }

    /// Segment `i`'s payload: where it begins in the packet's payload and its length.
    pub fn payload_of(&self, i: usize) -> (usize, usize) {
        let from = i * self.mss;
        (from, self.mss.min(self.payload.saturating_sub(from)))
    }

    /// Segment `i`'s headers into `out` (at least `hlen` bytes): IPv4's total length, its
    /// identification (the packet's, plus `i`, as NICs do) and header checksum; TCP's
    /// sequence number, FIN and PSH only on the last segment and CWR only on the first,
    /// and the checksum field 0 (for [`Tso::finish`]). Returns the segment frame's length.
    pub fn header(&self, i: usize, out: &mut [u8]) -> usize {
        let (from, n) = self.payload_of(i);
        let (ip, tcp, hlen) = (self.ip, self.tcp, self.hlen);
        let h = &mut out[..hlen];
        h.copy_from_slice(&self.headers[..hlen]);
        let total = (hlen - ip + n) as u16;
        h[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        let id = u16::from_be_bytes([h[ip + 4], h[ip + 5]]).wrapping_add(i as u16);
        h[ip + 4..ip + 6].copy_from_slice(&id.to_be_bytes());
        h[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let ip_sum = !fold(sum_be(&h[ip..tcp], 0));
        h[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
        let seq = u32::from_be_bytes([h[tcp + 4], h[tcp + 5], h[tcp + 6], h[tcp + 7]])
            .wrapping_add(from as u32);
        h[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        let last = i + 1 == self.segments();
        if !last {
            h[tcp + 13] &= !(0x01 | 0x08);
        }
        if i != 0 {
            h[tcp + 13] &= !0x80;
        }
        h[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
        hlen + n
    }

    /// Where TCP begins in a segment (the checksum's start; the field is 16 bytes in).
    pub fn tcp(&self) -> usize {
        self.tcp
    }

    /// The TCP checksum of a segment of `frame_len` bytes whose bytes from TCP's start on
    /// (checksum field 0) sum to `tcp_sum` ([`sum_be`]'s accumulator): the pseudo-header
    /// (addresses, protocol, TCP length) added, folded, complemented, never 0.
    pub fn finish(&self, frame_len: usize, tcp_sum: u64) -> u16 {
        let ip = self.ip;
        let pseudo = sum_be(
            &self.headers[ip + 12..ip + 20],
            6 + (frame_len - self.tcp) as u64,
        );
        nonzero(!fold(add(tcp_sum, pseudo)))
    }
}

/// Whether a received frame of `len` bytes, whose first bytes are `head` (at least its
/// Ethernet and IPv4 headers, or the whole frame) and whose bytes sum to `frame_sum`
/// ([`sum_be`]'s accumulator over all of them), is TCP or UDP over IPv4 with a right
/// checksum: what lets the device set DATA_VALID. Anything else is false and the guest
/// checks for itself: another protocol, IPv6, a fragment, a UDP datagram without a
/// checksum, and a frame with bytes after the IP packet (Ethernet's padding of a short
/// frame, which the sum would count).
pub fn rx_checksum_valid(head: &[u8], len: usize, frame_sum: u64) -> bool {
    let be16 = |i: usize| head.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ip = match be16(12) {
        Some(0x0800) => 14,
        Some(0x8100) if be16(16) == Some(0x0800) => 18,
        _ => return false,
    };
    let Some(&vihl) = head.get(ip) else {
        return false;
    };
    let ihl = usize::from(vihl & 0xf) * 4;
    let (Some(total), Some(frag), Some(&proto)) = (be16(ip + 2), be16(ip + 6), head.get(ip + 9))
    else {
        return false;
    };
    let l4 = ip + ihl;
    let ok = vihl >> 4 == 4
        && ihl >= 20
        && head.len() >= l4
        && frag & 0x3fff == 0
        && ip + usize::from(total) == len
        && l4 + 8 <= len;
    if !ok {
        return false;
    }
    match proto {
        6 if l4 + 20 <= len => {}
        // A UDP checksum of 0 is none at all.
        17 if len >= l4 + 8 && head.get(l4 + 6..l4 + 8).is_some_and(|c| c != [0, 0]) => {}
        // The UDP checksum lies past `head` only with IP options longer than `head` holds.
        _ => return false,
    }
    let l4_sum = add(
        u64::from(fold(frame_sum)),
        u64::from(!fold(sum_be(&head[..l4], 0))),
    );
    let pseudo = sum_be(
        &head[ip + 12..ip + 20],
        u64::from(proto) + (len - l4) as u64,
    );
    // A right checksum sums to zero, which ones' complement writes two ways.
    fold(add(l4_sum, pseudo)).is_multiple_of(0xffff)
}

/// A received frame that may be handed to the guest together with the next segments of its
/// TCP flow (`VIRTIO_NET_F_GUEST_TSO4`), from [`rx_segment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxSegment {
    /// Ethernet, IPv4 and TCP header bytes.
    pub hlen: usize,
    pub seq: u32,
    /// TCP payload bytes (never 0).
    pub payload: usize,
    /// PSH: the sender's end of a write, the last segment a packet may take.
    pub psh: bool,
}

/// TCP flags a coalesced segment may carry: ACK, and PSH on the last one. Anything else
/// (SYN, FIN, RST, URG, ECE, CWR, the reserved bits) is the receiver's to see on its own,
/// as Linux's GRO leaves it.
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// `head`: the first bytes (up to [`RX_SEGMENT_HEADERS`]) of a received frame of `len`
/// bytes, `frame_sum` the ones' complement sum of all its bytes ([`sum_be`]'s accumulator).
/// `Some` for a TCP/IPv4 segment with payload that a coalesced packet may carry: an
/// untagged Ethernet frame with no padding, IPv4 without options and not a fragment, flags
/// ACK or ACK|PSH, and both checksums right (the device vouches for them when it hands the
/// packet over with `NEEDS_CSUM`: §5.1.6.4.1).
pub fn rx_segment(head: &[u8], len: usize, frame_sum: u64) -> Option<RxSegment> {
    let be16 = |i: usize| u16::from_be_bytes([head[i], head[i + 1]]);
    if head.len() < RX_TCP + 20
        || head[12..14] != [0x08, 0x00]
        || head[14] != 0x45
        || be16(20) & 0xbfff != 0
        || head[23] != 6
        || usize::from(be16(16)) + 14 != len
    {
        return None;
    }
    let hlen = RX_TCP + usize::from(head[RX_TCP + 12] >> 4) * 4;
    let flags = head[RX_TCP + 13];
    if hlen < RX_TCP + 20
        || hlen >= len
        || hlen > head.len()
        || head[RX_TCP + 12] & 0x0f != 0
        || (flags != ACK && flags != ACK | PSH)
        || fold(sum_be(&head[14..RX_TCP], 0)) != 0xffff
        || !rx_checksum_valid(head, len, frame_sum)
    {
        return None;
    }
    Some(RxSegment {
        hlen,
        seq: u32::from_be_bytes([head[38], head[39], head[40], head[41]]),
        payload: len - hlen,
        psh: flags & PSH != 0,
    })
}

/// Whether segment `b` (headers `b_head`) continues a packet whose last segment so far is
/// `a` (`a_head`), every segment before the last `mss` bytes long: the same flow, addresses,
/// IP fields and TCP header but for the sequence number (`a`'s end), IP id, checksums and
/// PSH, which only `b` may carry.
pub fn continues(a_head: &[u8], a: &RxSegment, b_head: &[u8], b: &RxSegment, mss: usize) -> bool {
    let same = |r: core::ops::Range<usize>| a_head[r.clone()] == b_head[r];
    !a.psh
        && a.payload == mss
        && b.payload <= mss
        && a.hlen == b.hlen
        && b.seq == a.seq.wrapping_add(a.payload as u32)
        // Ethernet; version, IHL and TOS; flags and fragment offset, TTL and protocol;
        // addresses.
        && same(0..16)
        && same(20..24)
        && same(26..RX_TCP)
        // Ports; then acknowledgement, data offset, window, urgent pointer and options.
        && same(RX_TCP..RX_TCP + 4)
        && same(RX_TCP + 8..RX_TCP + 13)
        && same(RX_TCP + 14..RX_TCP + 16)
        && same(RX_TCP + 18..a.hlen)
}

/// Makes the first segment's headers (`head[..hlen]`) those of a coalesced packet of
/// `len` frame bytes: IPv4 total length and header checksum, PSH if the last segment had
/// it, and TCP's checksum field the pseudo-header's sum, as `NEEDS_CSUM` asks (the driver
/// sums from [`RX_TCP`] to the end into it if it needs the whole checksum).
pub fn coalesced_headers(head: &mut [u8], len: usize, psh: bool) {
    let ip_len = (len - 14) as u16;
    head[16..18].copy_from_slice(&ip_len.to_be_bytes());
    head[24..26].copy_from_slice(&[0, 0]);
    let c = !fold(sum_be(&head[14..RX_TCP], 0));
    head[24..26].copy_from_slice(&c.to_be_bytes());
    if psh {
        head[RX_TCP + 13] |= PSH;
    }
    let pseudo = fold(sum_be(&head[26..RX_TCP], 6 + (len - RX_TCP) as u64));
    head[RX_TCP + 16..RX_TCP + 18].copy_from_slice(&pseudo.to_be_bytes());
}

/// The ones' complement sum of `bytes` as big-endian 16-bit words (a last odd byte padded
/// with zero), added to `acc`, unfolded (any `u64` accumulator folds to the same sum): lib/net's
/// Internet checksum sum, kept in 64 bits here to combine with the frame check's word sums.
pub fn sum_be(bytes: &[u8], acc: u64) -> u64 {
    add(acc, u64::from(axolotl_net::eth::ones_sum(0, bytes)))
}

/// `a + b` with the carry out of bit 63 added back in (ones' complement on 64 bits, which
/// folds to the 16-bit sum: 2^16 - 1 divides 2^64 - 1).
#[inline(always)]
pub fn add(a: u64, b: u64) -> u64 {
    let (s, c) = a.overflowing_add(b);
    s + u64::from(c)
}

/// A 64-bit ones' complement sum folded to 16 bits.
pub fn fold(s: u64) -> u16 {
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The sum of a frame's little-endian 64-bit words (as a data region hands them, the last
/// one zero-padded) as [`sum_be`]'s accumulator of the same bytes: the ones' complement sum
/// does not care about byte order but for a swap of the folded result (RFC 1071 §2).
pub fn le_words_to_be(le_sum: u64) -> u64 {
    u64::from(fold(le_sum).swap_bytes())
}

/// A computed checksum of 0 is sent as 0xffff (the same value in ones' complement): UDP
/// reads 0 as "no checksum", as QEMU's devices know.
pub fn nonzero(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

#[cfg(test)]
#[path = "net_offload_tests.rs"]
pub(crate) mod tests;
