//! sDDF-style shared-memory descriptor queues that survive a peer restart.
//! (Full protocol documentation is filled in below.)
#![no_std]

mod client;
mod control;
mod descriptor;
mod error;
mod queue;
mod region;
mod server;
mod sync;

pub use client::{Client, ClientEvent};
pub use control::{ConnectionHeader, Generation, SideControl, init_connection, ring_region_bytes};
pub use descriptor::Descriptor;
pub use error::{Corruption, Error, Index, LayoutError, PushError};
pub use queue::{Consumer, Producer, QueueHeader, Signal, Wait, init_queue, queue_bytes};
pub use region::SharedRegion;
pub use server::{Server, ServerEvent};
