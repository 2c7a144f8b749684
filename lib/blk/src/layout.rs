//! The sizes of the storage driver's connection and DMA region (the SDF gives the regions;
//! `docs/storage.md`).

use crate::{SECTOR_SIZE, data_region_bytes};

/// Queue capacity of the connection's rings.
pub const CAPACITY: u32 = 16;
/// Request ids (= client buffers) per connection; ≤ capacity, so a response queue never
/// fills up.
pub const IDS: usize = 16;
/// Bytes one request moves at most: the driver's bounce buffer size. 256 KiB: a guest's
/// 1 MiB O_DIRECT write is 4 requests, not 64, and each request costs a round trip
/// through the VMM, the driver and QEMU (docs/benchmarks.md, issue #15). Bounded by the
/// DMA region (`SLOTS` bounce buffers in its 2 MiB page) and the data region (`IDS` of them).
pub const MAX_BYTES: usize = 256 * 1024;
/// Sectors one request moves at most.
pub const MAX_SECTORS: u32 = (MAX_BYTES / SECTOR_SIZE) as u32;
/// Requests the driver keeps in the device at once (bounce buffers). virtio-drivers' blk
/// queue has 16 descriptors and a read or write takes 3 (header, data, status) without
/// indirect descriptors (they need its `alloc` feature): 5 fit.
pub const SLOTS: usize = 5;
/// The ring region: one page.
pub const RINGS_BYTES: usize = 0x1000;
/// The data region: the command page and `IDS` buffers of `MAX_BYTES`.
pub const DATA_BYTES: usize = data_region_bytes(IDS * MAX_BYTES);
/// The driver's DMA region: one 2 MiB page (physically contiguous by construction).
pub const DMA_BYTES: usize = 0x20_0000;

// The driver's bounce buffers, its queue (2 pages), headers (1) and bounce pool (1) fit the
// DMA region.
const _: () = assert!(SLOTS * MAX_BYTES + 4 * 4096 <= DMA_BYTES);
