//! A small network endpoint: one MAC and IPv4 address, answering ARP for its address and
//! echoing UDP datagrams on one port (RFC 862). What the native echo client PD runs.

use crate::MAX_FRAME;
use crate::eth::{
    ARP_LEN, ARP_REPLY, ARP_REQUEST, Arp, BROADCAST, ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    Ethernet, IP_PROTO_UDP, Ipv4, Ipv4Packet, Mac, ParseError, Udp, build_udp, write_ethernet,
};

/// Counters of an [`Echo`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    pub arp_replies: u64,
    pub echoed: u64,
    /// Frames for us that failed a check (length, checksum, version…).
    pub malformed: u64,
    /// Frames not for us, or of a kind we do not answer.
    pub ignored: u64,
}

pub struct Echo {
    pub mac: Mac,
    pub ip: Ipv4,
    pub port: u16,
    next_id: u16,
    stats: EchoStats,
}

impl Echo {
    pub const fn new(mac: Mac, ip: Ipv4, port: u16) -> Self {
        Self {
            mac,
            ip,
            port,
            next_id: 1,
            stats: EchoStats {
                arp_replies: 0,
                echoed: 0,
                malformed: 0,
                ignored: 0,
            },
        }
    }

    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// A gratuitous ARP request announcing our address (sent at start so neighbours learn
    /// our MAC at once); its length in `out`.
    pub fn announce(&self, out: &mut [u8; MAX_FRAME]) -> usize {
        write_ethernet(out, BROADCAST, self.mac, ETHERTYPE_ARP);
        Arp {
            op: ARP_REQUEST,
            sender_mac: self.mac,
            sender_ip: self.ip,
            target_mac: [0; 6],
            target_ip: self.ip,
        }
        .write(&mut out[ETH_HEADER..]);
        ETH_HEADER + ARP_LEN
    }

    /// The reply to `frame`, built in `out`: its length, or `None` (nothing to answer).
    pub fn handle(&mut self, frame: &[u8], out: &mut [u8; MAX_FRAME]) -> Option<usize> {
        match self.reply(frame, out) {
            Ok(Some(n)) => Some(n),
            Ok(None) => {
                self.stats.ignored += 1;
                None
            }
            Err(_) => {
                self.stats.malformed += 1;
                None
            }
        }
    }

    fn reply(
        &mut self,
        frame: &[u8],
        out: &mut [u8; MAX_FRAME],
    ) -> Result<Option<usize>, ParseError> {
        let eth = Ethernet::parse(frame)?;
        if eth.dst != self.mac && eth.dst != BROADCAST {
            return Ok(None);
        }
        match eth.ethertype {
            ETHERTYPE_ARP => {
                let arp = Arp::parse(eth.payload)?;
                if arp.op != ARP_REQUEST || arp.target_ip != self.ip || arp.sender_ip == self.ip {
                    return Ok(None);
                }
                write_ethernet(out, arp.sender_mac, self.mac, ETHERTYPE_ARP);
                Arp {
                    op: ARP_REPLY,
                    sender_mac: self.mac,
                    sender_ip: self.ip,
                    target_mac: arp.sender_mac,
                    target_ip: arp.sender_ip,
                }
                .write(&mut out[ETH_HEADER..]);
                self.stats.arp_replies += 1;
                Ok(Some(ETH_HEADER + ARP_LEN))
            }
            ETHERTYPE_IPV4 if eth.dst == self.mac => {
                let ip = Ipv4Packet::parse(eth.payload)?;
                if ip.dst != self.ip || ip.protocol != IP_PROTO_UDP {
                    return Ok(None);
                }
                let udp = Udp::parse(&ip)?;
                if udp.dst_port != self.port {
                    return Ok(None);
                }
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let n = build_udp(
                    out,
                    eth.src,
                    self.mac,
                    self.ip,
                    ip.src,
                    self.port,
                    udp.src_port,
                    udp.payload,
                    id,
                );
                if n.is_some() {
                    self.stats.echoed += 1;
                }
                Ok(n)
            }
            _ => Ok(None),
        }
    }
}
