//! The sizes of the storage driver's connection and DMA region (the SDF gives the regions;
//! `docs/storage.md`).

use crate::{SECTOR_SIZE, data_region_bytes};

/// Queue capacity of the connection's rings.
pub const CAPACITY: u32 = 16;
/// Request ids (= client buffers) per connection; ≤ capacity, so a response queue never
/// fills up.
pub const IDS: usize = 16;
/// Bytes one request moves at most: the driver's bounce buffer size.
pub const MAX_BYTES: usize = 16 * 1024;
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
