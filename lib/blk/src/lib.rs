//! The block protocol between a storage driver PD and its clients (issue #15,
//! `docs/storage.md`): sDDF blk's shape over `lib/ring`.
//!
//! A connection is a `lib/ring` connection (ring region + data region). The data region
//! starts with the *command area*, one [`CMD_BYTES`] record per request id (`id *
//! CMD_BYTES`); the rest, from [`DATA_START`], is the *data area* that requests' buffers
//! point into. A request is a ring descriptor `{offset, len, id}` naming its buffer (`len`
//! bytes, a multiple of [`SECTOR_SIZE`]; 0 for a flush) plus its command record:
//!
//! ```text
//! record +0   op      u32   (Op: 0 read, 1 write, 2 flush)
//!        +4   reserved
//!        +8   sector  u64   (first 512-byte sector)
//!        +16  status  u32   (Status; the client writes PENDING, the server the answer)
//! ```
//!
//! The response is the ring completion of the same id (`len` = bytes transferred) with the
//! status written into the record before it is posted (the ring's Release/Acquire orders
//! it). Everything the server reads from the client is copied once and checked
//! ([`BlkServer`]); everything the client reads back is checked too ([`BlkClient`]).
//!
//! [`BlkClient`] keeps every request until it completes, and re-issues what a driver
//! restart reclaimed, in the original order, so that each request completes to its user
//! exactly once. [`BlkServer`] is the driver's side over any [`BlockDevice`].
#![no_std]

mod client;
pub mod layout;
pub mod pattern;
mod server;
#[cfg(feature = "virtio")]
pub mod virtio;

pub use axolotl_ring::DataRegion;
pub use client::{
    BlkClient, ClientActivity, ClientConfigError, ClientError, ClientStats, Completion, SubmitError,
};
pub use server::{
    Activity, BlkServer, BlockDevice, DeviceError, DeviceOp, DeviceStatus, MAX_SLOTS, ServerError,
    ServerStats,
};

/// Bytes per sector: the unit of `sector` and of buffer lengths.
pub const SECTOR_SIZE: usize = 512;
/// Bytes of one command record.
pub const CMD_BYTES: usize = 32;
/// Where the data area starts in a data region: after one page of command records.
pub const DATA_START: usize = 4096;
/// The most ids a connection can have (command records in the command area; its last
/// record holds the storage info).
pub const MAX_IDS: usize = DATA_START / CMD_BYTES - 1;
/// Where the server publishes what the client needs to know of the device (sDDF's
/// `blk_storage_info`): the command area's last record.
///
/// ```text
/// +0  ready        u32  (INFO_READY once the fields below are written)
/// +4  sector_size  u32  (SECTOR_SIZE)
/// +8  capacity     u64  (SECTOR_SIZE sectors)
/// ```
pub const INFO_OFFSET: usize = MAX_IDS * CMD_BYTES;
/// `ready` of a published storage info ("BLK1").
pub const INFO_READY: u32 = 0x424c_4b31;
/// The largest capacity a client believes (in sectors: 2^48 × 512 bytes, far beyond any
/// device here; a larger one is a corrupt record).
pub const MAX_CAPACITY: u64 = 1 << 48;

/// The device's geometry as the server published it ([`INFO_OFFSET`]), checked by the
/// client ([`BlkClient::storage_info`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageInfo {
    /// Size in [`SECTOR_SIZE`] sectors, 1..=[`MAX_CAPACITY`].
    pub capacity: u64,
}

/// Byte offsets inside a command record.
pub(crate) const REC_OP: usize = 0;
pub(crate) const REC_SECTOR: usize = 8;
pub(crate) const REC_STATUS: usize = 16;

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Device → buffer.
    Read,
    /// Buffer → device; completed only once the device completed it.
    Write,
    /// Makes every write completed before it durable; requests after it wait for it
    /// (it is also a barrier).
    Flush,
}

impl Op {
    pub const fn code(self) -> u32 {
        match self {
            Op::Read => 0,
            Op::Write => 1,
            Op::Flush => 2,
        }
    }

    pub const fn from_code(code: u32) -> Option<Op> {
        match code {
            0 => Some(Op::Read),
            1 => Some(Op::Write),
            2 => Some(Op::Flush),
            _ => None,
        }
    }
}

/// A request's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    /// The device failed it.
    IoError,
    /// An op the server does not know, or the device does not support.
    Unsupported,
    /// Sectors past the end of the disk.
    OutOfRange,
    /// A buffer outside the data area, of no sectors, not a whole number of sectors, or
    /// longer than the server takes in one request.
    BadBuffer,
}

impl Status {
    /// What the client writes before submitting: no answer yet.
    pub const PENDING: u32 = u32::MAX;

    pub const fn code(self) -> u32 {
        match self {
            Status::Ok => 0,
            Status::IoError => 1,
            Status::Unsupported => 2,
            Status::OutOfRange => 3,
            Status::BadBuffer => 4,
        }
    }

    pub const fn from_code(code: u32) -> Option<Status> {
        match code {
            0 => Some(Status::Ok),
            1 => Some(Status::IoError),
            2 => Some(Status::Unsupported),
            3 => Some(Status::OutOfRange),
            4 => Some(Status::BadBuffer),
            _ => None,
        }
    }
}

/// One request as the client's user sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub op: Op,
    /// First sector (ignored for a flush).
    pub sector: u64,
    /// The buffer: byte offset in the data region (at or after [`DATA_START`]).
    pub offset: u32,
    /// Buffer bytes, a multiple of [`SECTOR_SIZE`] (0 for a flush).
    pub len: u32,
}

/// Bytes of a data region with a data area of `data_bytes`.
pub const fn data_region_bytes(data_bytes: usize) -> usize {
    DATA_START + data_bytes
}
