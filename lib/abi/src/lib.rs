//! The binary interface between the axolotl kernel and user level.
//!
//! Modelled on seL4's aarch64 ABI so that its users recognise it: the capability to invoke is
//! passed in `x0`, the message info in `x1`, the first message registers in `x2..=x5`, and the
//! syscall number in `x7`. Everything here is plain data with stable encodings; both the kernel
//! and every PD depend on this crate, and nothing else crosses the boundary. Fault messages
//! and their replies are typed (`Fault`, `Resume`), and so is the AArch64 syndrome both
//! sides decode (`syndrome`).

#![no_std]

pub mod bootinfo;
mod error;
mod fault;
mod ipc;
mod msginfo;
mod object;
mod rights;
pub mod syndrome;
mod syscall;
pub mod vcpu;

pub use bootinfo::{BootInfo, UntypedDesc};
pub use error::Error;
pub use fault::*;
pub use ipc::*;
pub use msginfo::MessageInfo;
pub use object::{Invocation, ObjectType};
pub use rights::Rights;
pub use syscall::Syscall;

/// Capability address: a path through the caller's CSpace, resolved most significant bit first.
pub type CPtr = u64;

/// Message registers passed in CPU registers (x2..=x5); the rest live in the IPC buffer.
pub const MSG_REGISTERS_IN_CPU: usize = 4;
/// Largest message, in words, as in seL4.
pub const MSG_MAX_LENGTH: usize = 120;
/// Largest number of capabilities transferred with one message.
pub const MSG_MAX_EXTRA_CAPS: usize = 3;
/// Most objects one `UntypedRetype` may create (seL4's `CONFIG_RETYPE_FAN_OUT_LIMIT`
/// default): a caller creating more retypes in batches.
pub const RETYPE_FAN_OUT_LIMIT: u64 = 256;
/// Number of thread priorities; 0 is lowest.
pub const NUM_PRIORITIES: usize = 256;
/// Scheduling domains (seL4's `CONFIG_NUM_DOMAINS`, Microkit's limit): a thread is in one,
/// and the kernel runs only the current domain's threads (docs/ARCHITECTURE.md, "Scheduling domains").
pub const NUM_DOMAINS: usize = 16;
/// Entries of the kernel's fixed domain schedule table (`DomainSetSchedule`).
pub const MAX_DOMAIN_SCHEDULE: usize = 64;
/// Longest domain schedule entry, in microseconds (56 bits of an entry word).
pub const MAX_DOMAIN_LENGTH_US: u64 = (1 << 56) - 1;

/// One domain schedule entry as `DomainSetSchedule` takes it: the domain in bits 63..56,
/// its length in microseconds below.
pub const fn domain_entry(domain: u8, length_us: u64) -> u64 {
    (domain as u64) << 56 | (length_us & MAX_DOMAIN_LENGTH_US)
}

/// Size of a small page and of the IPC buffer frame.
pub const PAGE_BITS: u32 = 12;
