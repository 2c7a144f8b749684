//! The sizes of the storage driver's connection and DMA region (the SDF gives the regions;
//! `docs/storage.md`).

use crate::{SECTOR_SIZE, data_region_bytes};

/// Queue capacity of the connection's rings.
pub const CAPACITY: u32 = 16;
/// Request ids (= client buffers) per connection; ≤ capacity, so a response queue never
/// fills up.
pub const IDS: usize = 16;
/// Bytes one request moves at most: a connection buffer. 1 MiB: every request is a round
/// trip through the VMM, the driver and QEMU (docs/benchmarks.md, issue #15), and a guest's
/// 1 MiB O_DIRECT request was 4 of them at 256 KiB (64 at the first version's 16 KiB); now
/// one (the VMM's SEG_MAX: 256 pages of 4 KiB). Bounded by the data region (`IDS` of them,
/// 2 MiB pages) and, in the bounce mode, by the DMA region (`BOUNCE_SLOTS` bounce buffers in
/// its 2 MiB page).
pub const MAX_BYTES: usize = 1024 * 1024;
/// Sectors one request moves at most.
pub const MAX_SECTORS: u32 = (MAX_BYTES / SECTOR_SIZE) as u32;
/// Requests the driver keeps in the device at once when it DMAs straight into the client's
/// buffers. virtio-drivers' blk queue has 16 descriptors and a read or write takes 3
/// (header, data, status) without indirect descriptors (they need its `alloc` feature): 5
/// fit.
pub const SLOTS: usize = 5;
/// The same with bounce buffers (no `blk_client_data_paddr`): as many buffers of
/// `MAX_BYTES` as the DMA region holds besides its four pages of queue and headers.
pub const BOUNCE_SLOTS: usize = (DMA_BYTES - 4 * 4096) / MAX_BYTES;
/// The ring region: one page.
pub const RINGS_BYTES: usize = 0x1000;
/// The data region: the command page and `IDS` buffers of `MAX_BYTES`.
pub const DATA_BYTES: usize = data_region_bytes(IDS * MAX_BYTES);
/// The driver's DMA region: one 2 MiB page (physically contiguous by construction).
pub const DMA_BYTES: usize = 0x20_0000;

// The driver's bounce buffers, its queue (2 pages), headers (1) and bounce pool (1) fit the
// DMA region, with at least one buffer.
const _: () = assert!(BOUNCE_SLOTS >= 1 && BOUNCE_SLOTS * MAX_BYTES + 4 * 4096 <= DMA_BYTES);
