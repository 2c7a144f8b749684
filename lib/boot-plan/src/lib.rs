//! The boot plan: everything the root task needs to build each PD (and the monitor to rebuild
//! a restarted one), computed on the host from a validated SDF and the program images.
//!
//! # Encoding
//! The plan is [`postcard`]-encoded. Its tables are `heapless::Vec`s with the capacities in
//! [`model`] (`MAX_*`), so [`decode`] needs no allocator: the root task decodes into a value
//! of `size_of::<BootPlan>()` bytes (see [`PLAN_SIZE_LIMIT`]) that it keeps in a static. Borrowed
//! slices were the alternative, but postcard borrows only `&str`/`&[u8]`, not `&[Struct]`.
//! The tables are flat (one per kind, PDs hold [`Span`]s into them) so capacity is paid once per
//! kind, not once per PD.
//!
//! # Features
//! `std` (off by default) adds the host builder ([`build()`]), ELF reading ([`ElfInfo`]) and the
//! [`summary`]. The root task and monitor depend on the crate without features.
//!
//! The CSpace layout follows Microkit: see [`cspace`] and `docs/boot-plan.md`.

#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod cspace;
pub mod generations;
pub mod model;
pub mod pack;

pub use model::*;

/// Where the root task maps the encoded plan, read-only, into the monitor: an 8-byte
/// little-endian length, then the postcard bytes.
pub const MONITOR_PLAN_VADDR: u64 = 0x1000_0000;

/// Upper bound on the decoded plan's size, checked at compile time.
pub const PLAN_SIZE_LIMIT: usize = 128 * 1024;
const _: () = assert!(core::mem::size_of::<BootPlan>() <= PLAN_SIZE_LIMIT);

/// Decodes a plan without allocating.
pub fn decode(bytes: &[u8]) -> Result<BootPlan, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Encodes into `buf`, returning the used prefix.
pub fn encode<'b>(plan: &BootPlan, buf: &'b mut [u8]) -> Result<&'b mut [u8], postcard::Error> {
    postcard::to_slice(plan, buf)
}

#[cfg(feature = "std")]
mod build;
#[cfg(feature = "std")]
mod elf;
#[cfg(feature = "std")]
mod error;
#[cfg(feature = "std")]
pub mod limits;
#[cfg(feature = "std")]
mod monitor;
#[cfg(feature = "std")]
mod summary;

#[cfg(feature = "std")]
pub use build::{DEFAULT_IPC_BUFFER, IPC_BUFFER_SYMBOL, build};
#[cfg(feature = "std")]
pub use elf::{ElfInfo, ElfSegment};
#[cfg(feature = "std")]
pub use error::BuildError;
#[cfg(feature = "std")]
pub use limits::build_for_board;
#[cfg(feature = "std")]
pub use monitor::{MONITOR_NAME, MONITOR_PRIORITY, MONITOR_STACK, build_with_monitor};
