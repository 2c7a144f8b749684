//! Hardware-independent object logic of the axolotl kernel, after seL4: capabilities and their
//! encoding, the derivation tree (MDB), CSpace lookup, derive rules, CNode operations, untyped
//! retype, delete/revoke with iterative zombies, and ASID allocation.
//!
//! Object addresses are physical addresses, used directly as pointers (the kernel identity
//! maps its memory). Nothing here allocates.

#![no_std]

#[cfg(test)]
#[macro_use]
extern crate std;

pub mod asid;
pub mod cap;
pub mod cnode;
pub mod cspace;
pub mod delete;
pub mod derive;
pub mod domain;
pub mod error;
pub mod mdb;
pub mod revoke;
pub mod slot;
pub mod untyped;
pub mod vtimer;

#[cfg(test)]
mod tests;

pub use cap::{Asid, Cap, FrameSize, Mapping};
pub use delete::{Finalise, Finalised, Preempted, delete};
pub use error::SyscallError;
pub use revoke::revoke;
pub use slot::{MdbNode, Slot, SlotRef};
