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
/// Size of a small page and of the IPC buffer frame.
pub const PAGE_BITS: u32 = 12;
