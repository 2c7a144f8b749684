//! Ethernet II, ARP (IPv4 over Ethernet), IPv4 and UDP: parsers that check every length and
//! checksum field before anything is believed, and builders for the replies.

pub type Mac = [u8; 6];
pub type Ipv4 = [u8; 4];

pub const BROADCAST: Mac = [0xff; 6];
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETH_HEADER: usize = 14;
pub const IP_PROTO_UDP: u8 = 17;

/// Why a frame was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its header, or than a length field claims.
    Truncated,
    /// A field with a value this stack does not speak (version, hardware type, options…).
    Unsupported,
    /// A length field that contradicts another.
    BadLength,
    /// A checksum that does not verify.
    BadChecksum,
    /// A fragment: not reassembled here.
    Fragment,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Whether a destination MAC addresses a group (broadcast or multicast): I/G bit set.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// An Ethernet II frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ethernet<'a> {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

impl<'a> Ethernet<'a> {
    pub fn parse(frame: &'a [u8]) -> Result<Self, ParseError> {
        if frame.len() < ETH_HEADER {
            return Err(ParseError::Truncated);
        }
        let mut dst = [0; 6];
        let mut src = [0; 6];
        dst.copy_from_slice(&frame[0..6]);
        src.copy_from_slice(&frame[6..12]);
        Ok(Self {
            dst,
            src,
            ethertype: be16(frame, 12),
            payload: &frame[ETH_HEADER..],
        })
    }
}

/// Writes an Ethernet header into `out[..14]`.
pub fn write_ethernet(out: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    out[0..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

pub const ARP_LEN: usize = 28;
pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

/// An ARP packet for IPv4 over Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4,
    pub target_mac: Mac,
    pub target_ip: Ipv4,
}

impl Arp {
    pub fn parse(p: &[u8]) -> Result<Self, ParseError> {
        if p.len() < ARP_LEN {
            return Err(ParseError::Truncated);
        }
        // Hardware Ethernet (1), protocol IPv4, address lengths 6 and 4: nothing else.
        if be16(p, 0) != 1 || be16(p, 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
            return Err(ParseError::Unsupported);
        }
        let op = be16(p, 6);
        if op != ARP_REQUEST && op != ARP_REPLY {
            return Err(ParseError::Unsupported);
        }
        let mut a = Arp {
            op,
            sender_mac: [0; 6],
            sender_ip: [0; 4],
            target_mac: [0; 6],
            target_ip: [0; 4],
        };
        a.sender_mac.copy_from_slice(&p[8..14]);
        a.sender_ip.copy_from_slice(&p[14..18]);
        a.target_mac.copy_from_slice(&p[18..24]);
        a.target_ip.copy_from_slice(&p[24..28]);
        Ok(a)
    }

    /// Writes the packet into `out[..ARP_LEN]`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&1u16.to_be_bytes());
        out[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        out[4] = 6;
        out[5] = 4;
        out[6..8].copy_from_slice(&self.op.to_be_bytes());
        out[8..14].copy_from_slice(&self.sender_mac);
        out[14..18].copy_from_slice(&self.sender_ip);
        out[18..24].copy_from_slice(&self.target_mac);
        out[24..28].copy_from_slice(&self.target_ip);
    }
}

/// The Internet checksum's one's-complement sum of `data` (odd tail padded with zero),
/// folded, starting from `sum`.
pub fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The checksum field value for data summing to `sum`.
pub fn checksum(sum: u32) -> u16 {
    !(ones_sum(sum, &[]) as u16)
}

pub const IPV4_HEADER: usize = 20;

/// An IPv4 packet (no options are produced; received ones are skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    pub src: Ipv4,
    pub dst: Ipv4,
    pub protocol: u8,
    pub ttl: u8,
    /// Exactly the bytes the total-length field covers past the header (link padding cut).
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    pub fn parse(p: &'a [u8]) -> Result<Self, ParseError> {
        if p.len() < IPV4_HEADER {
            return Err(ParseError::Truncated);
        }
        if p[0] >> 4 != 4 {
            return Err(ParseError::Unsupported);
        }
        let ihl = usize::from(p[0] & 0xf) * 4;
        if ihl < IPV4_HEADER {
            return Err(ParseError::BadLength);
        }
        let total = usize::from(be16(p, 2));
        if total < ihl {
            return Err(ParseError::BadLength);
        }
        if total > p.len() {
            return Err(ParseError::Truncated);
        }
        if ones_sum(0, &p[..ihl]) != 0xffff {
            return Err(ParseError::BadChecksum);
        }
        let frag = be16(p, 6);
        // More-fragments set, or a non-zero offset.
        if frag & 0x2000 != 0 || frag & 0x1fff != 0 {
            return Err(ParseError::Fragment);
        }
        let mut src = [0; 4];
        let mut dst = [0; 4];
        src.copy_from_slice(&p[12..16]);
        dst.copy_from_slice(&p[16..20]);
        Ok(Self {
            src,
            dst,
            protocol: p[9],
            ttl: p[8],
            payload: &p[ihl..total],
        })
    }
}

/// Writes a 20-byte IPv4 header (don't-fragment, TTL 64) for `payload_len` bytes into
/// `out[..20]`, checksum included.
pub fn write_ipv4(out: &mut [u8], src: Ipv4, dst: Ipv4, protocol: u8, payload_len: usize, id: u16) {
    let total = (IPV4_HEADER + payload_len) as u16;
    out[0] = 0x45;
    out[1] = 0;
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[4..6].copy_from_slice(&id.to_be_bytes());
    out[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    out[8] = 64;
    out[9] = protocol;
    out[10..12].copy_from_slice(&[0, 0]);
    out[12..16].copy_from_slice(&src);
    out[16..20].copy_from_slice(&dst);
    let c = checksum(ones_sum(0, &out[..IPV4_HEADER]));
    out[10..12].copy_from_slice(&c.to_be_bytes());
}

pub const UDP_HEADER: usize = 8;

/// A UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

fn pseudo_sum(src: Ipv4, dst: Ipv4, len: usize) -> u32 {
    let mut s = ones_sum(0, &src);
    s = ones_sum(s, &dst);
    s += u32::from(IP_PROTO_UDP);
    s + len as u32
}

impl<'a> Udp<'a> {
    /// Parses the payload of `ip` (its addresses enter the checksum).
    pub fn parse(ip: &Ipv4Packet<'a>) -> Result<Self, ParseError> {
        let p = ip.payload;
        if p.len() < UDP_HEADER {
            return Err(ParseError::Truncated);
        }
        let len = usize::from(be16(p, 4));
        if len < UDP_HEADER || len > p.len() {
            return Err(ParseError::BadLength);
        }
        let p = &p[..len];
        // Zero: the sender computed none (allowed over IPv4).
        if be16(p, 6) != 0 && ones_sum(pseudo_sum(ip.src, ip.dst, len), p) != 0xffff {
            return Err(ParseError::BadChecksum);
        }
        Ok(Self {
            src_port: be16(p, 0),
            dst_port: be16(p, 2),
            payload: &p[UDP_HEADER..],
        })
    }
}

/// Writes a UDP header for the `payload_len` bytes already at `out[8..]`, checksum included.
pub fn write_udp(
    out: &mut [u8],
    src: Ipv4,
    dst: Ipv4,
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
) {
    let len = UDP_HEADER + payload_len;
    out[0..2].copy_from_slice(&src_port.to_be_bytes());
    out[2..4].copy_from_slice(&dst_port.to_be_bytes());
    out[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    out[6..8].copy_from_slice(&[0, 0]);
    let mut c = checksum(ones_sum(pseudo_sum(src, dst, len), &out[..len]));
    // A computed zero is sent as all ones (zero means "none").
    if c == 0 {
        c = 0xffff;
    }
    out[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Builds a whole Ethernet/IPv4/UDP frame carrying `payload` into `out`; its length, or
/// `None` if it does not fit.
#[allow(clippy::too_many_arguments)]
pub fn build_udp(
    out: &mut [u8],
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4,
    dst: Ipv4,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    id: u16,
) -> Option<usize> {
    let udp_at = ETH_HEADER + IPV4_HEADER;
    let len = udp_at + UDP_HEADER + payload.len();
    if len > out.len() || len > crate::MAX_FRAME {
        return None;
    }
    out[udp_at + UDP_HEADER..len].copy_from_slice(payload);
    write_udp(
        &mut out[udp_at..len],
        src,
        dst,
        src_port,
        dst_port,
        payload.len(),
    );
    write_ipv4(
        &mut out[ETH_HEADER..udp_at],
        src,
        dst,
        IP_PROTO_UDP,
        UDP_HEADER + payload.len(),
        id,
    );
    write_ethernet(out, dst_mac, src_mac, ETHERTYPE_IPV4);
    Some(len)
}
