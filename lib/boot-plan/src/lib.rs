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

/// The monitor's requests to the root task (a Call on `cspace::ROOT_SERVICE_CAP`).
pub mod root_service {
    /// Restart PD `MR0` from its pristine image with a generation of at least `MR1`, and
    /// journal the record the message carries (as `RECORD`; none if its length is 0) once it
    /// runs again. Reply label 0 with the generation given in MR0 (the root task's count is
    /// the authority) and in MR1 1 if the PD was switched to its standby incarnation, 0 if
    /// restored in place: the PD runs again; [`REFUSED`] with the reason in MR0 otherwise.
    pub const RESTART: u64 = 1;
    /// Signal the monitor's timer channel (`MONITOR_TIMER_ID`) once the physical counter
    /// reaches `MR0` (at once if it has); `MR0 = 0`: never. Replaces any earlier request.
    pub const SET_TIMER: u64 = 2;
    /// Journal PD `MR0`'s restart bookkeeping, a record (`MR1` unused). The root task keeps
    /// it, opaque, for a restarted monitor.
    pub const RECORD: u64 = 3;
    /// What a restarted monitor re-learns about PD `MR0`: reply label 0, `MR0` the root task's
    /// generation of the PD, the journaled record (length 0: nothing journaled).
    pub const RECALL: u64 = 4;
    /// Stop (suspend) PD `MR0`: one the monitor holds although no fault stopped it (hung,
    /// or a reporter found lying). Reply label 0, or [`REFUSED`] with the reason in MR0.
    pub const STOP: u64 = 5;
    /// A record travels as its byte count in `MR2` and its bytes, packed little-endian, from
    /// `MR3` on.
    pub const RECORD_LEN_MR: usize = 2;
    pub const REFUSED: u64 = 1;
    /// Reasons.
    pub const BAD_PD: u64 = 1;
    pub const FAILED: u64 = 2;
    pub const UNKNOWN: u64 = 3;
    /// The most bytes a record carries (the message registers after the first three).
    pub const RECORD_BYTES: usize = 8 * (axolotl_abi::MSG_MAX_LENGTH - RECORD_LEN_MR - 1);

    /// Message words a message with a record of `len` bytes has.
    pub const fn words_for(len: usize) -> usize {
        RECORD_LEN_MR + 1 + len.div_ceil(8)
    }

    /// Word `i` of `bytes` packed little-endian, zero-padded.
    pub fn word_of(bytes: &[u8], i: usize) -> u64 {
        let mut w = [0u8; 8];
        if let Some(chunk) = bytes.chunks(8).nth(i) {
            w[..chunk.len()].copy_from_slice(chunk);
        }
        u64::from_le_bytes(w)
    }

    /// Unpacks `out.len()` bytes from words `word(0)`, `word(1)`, …
    pub fn unpack(out: &mut [u8], word: impl Fn(usize) -> u64) {
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&word(i).to_le_bytes()[..chunk.len()]);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn bytes_survive_packing() {
            let bytes: [u8; 21] = core::array::from_fn(|i| i as u8 * 7 + 1);
            let words: [u64; 3] = core::array::from_fn(|i| word_of(&bytes, i));
            assert_eq!(words[2] >> 40, 0, "padding is zero");
            assert_eq!(word_of(&bytes, 3), 0);
            let mut back = [0u8; 21];
            unpack(&mut back, |i| words[i]);
            assert_eq!(back, bytes);
            assert_eq!(words_for(0), 3);
            assert_eq!(words_for(21), 6);
            assert_eq!(words_for(RECORD_BYTES), axolotl_abi::MSG_MAX_LENGTH);
        }
    }
}

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
