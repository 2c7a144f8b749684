//! The user-side kernel API every PD uses (seL4's libsel4, in Rust): system calls, message
//! registers, typed capabilities with their invocations, and bump allocators.
//!
//! Invocation *encoding* ([`encode`]) and reply decoding ([`invoke::decode_reply`]) are pure
//! and tested on the host; the `svc` itself exists only on aarch64 bare metal, and calling
//! it elsewhere panics.

#![no_std]

// Strong memcpy/memmove/memset in place of compiler_builtins' weak ones, for every PD.
use axolotl_memfns as _;

pub mod alloc;
pub mod caps;
pub mod context;
mod debug;
pub mod encode;
pub mod invoke;
pub mod ipc;
pub mod mem;
pub mod syscall;
pub mod time;

pub use axolotl_abi::{CPtr, Error, MessageInfo, ObjectType, Rights};
pub use caps::vm_attr;
pub use caps::*;
pub use context::UserContext;
pub use debug::{DebugWriter, debug_puts};
pub use invoke::{InvocationError, Reply};
pub use syscall::*;
