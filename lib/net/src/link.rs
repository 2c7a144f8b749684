//! A link: the two lib/ring connections between a net client and its server (receive and
//! transmit), laid out in two regions.

use axolotl_ring::{LayoutError, SharedRegion};

/// Bytes of a buffer: one Ethernet frame (`MAX_FRAME`) with room to spare, a power of two so
/// buffer `id` sits at `id * BUF_SIZE`.
pub const BUF_SIZE: usize = 2048;
/// The largest frame a link carries: 14 bytes of Ethernet header and an MTU of 1500 (no FCS,
/// no VLAN tag): what every peer's length is checked against.
pub const MAX_FRAME: usize = 1514;
/// The smallest: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// A frame's worth of bytes, 8-aligned (and so padded to 1,520 in arrays): lib/ring copies
/// between such a buffer and a link's buffers a word at a time, where an unaligned one
/// costs a byte-by-byte assembly of every word on a strict-alignment target.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct FrameBuf(pub [u8; MAX_FRAME]);

impl FrameBuf {
    pub const fn new() -> Self {
        Self([0; MAX_FRAME])
    }
}

impl Default for FrameBuf {
    fn default() -> Self {
        Self::new()
    }
}
/// Buffers per direction, and ids of each connection.
pub const IDS: usize = 64;
/// Queue capacity of each connection (≥ `IDS`, so a response queue never fills up).
pub const CAPACITY: u32 = 64;
/// Where the transmit connection starts in the rings region (the receive one is at 0).
pub const TX_RINGS_OFFSET: usize = 4096;
/// The rings region of a link: two pages, a connection in each.
pub const RINGS_BYTES: usize = 8192;
/// The data region of a link: `IDS` receive buffers, then `IDS` transmit buffers.
pub const DATA_BYTES: usize = 2 * IDS * BUF_SIZE;

const _: () = {
    assert!(MAX_FRAME <= BUF_SIZE);
    assert!(IDS <= CAPACITY as usize);
    assert!(IDS <= 64, "buffer sets are u64 masks");
    assert!(
        CONNECTION_BYTES <= TX_RINGS_OFFSET && TX_RINGS_OFFSET + CONNECTION_BYTES <= RINGS_BYTES
    );
};

/// lib/ring's region size of one connection (control 128, two queues of 128 + 16 C):
/// `ring_region_bytes(CAPACITY)`, which is not const (a test checks they agree).
const CONNECTION_BYTES: usize = 128 + 2 * (128 + 16 * CAPACITY as usize);

/// Offset of buffer `id` in its direction's half of the data region.
pub const fn buffer_offset(id: u32) -> u32 {
    id * BUF_SIZE as u32
}

/// A link's regions cut into its connections' regions.
pub struct LinkRegions {
    pub rx_rings: SharedRegion,
    pub rx_data: SharedRegion,
    pub tx_rings: SharedRegion,
    pub tx_data: SharedRegion,
}

impl LinkRegions {
    /// Cuts `rings` (at least [`RINGS_BYTES`]) and `data` (at least [`DATA_BYTES`]).
    pub fn split(rings: SharedRegion, data: SharedRegion) -> Result<Self, LayoutError> {
        let (rx_rings, rest) = rings.split_at(TX_RINGS_OFFSET)?;
        let (tx_rings, _) = rest.split_at(RINGS_BYTES - TX_RINGS_OFFSET)?;
        let half = IDS * BUF_SIZE;
        let (rx_data, rest) = data.split_at(half)?;
        let (tx_data, _) = rest.split_at(half)?;
        Ok(Self {
            rx_rings,
            rx_data,
            tx_rings,
            tx_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_size_is_lib_rings() {
        assert_eq!(
            axolotl_ring::ring_region_bytes(CAPACITY),
            Ok(CONNECTION_BYTES)
        );
    }
}
