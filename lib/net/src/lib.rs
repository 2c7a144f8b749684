//! The network's hardware-independent logic (issue #15; `docs/network.md` is the
//! overview): everything the net driver, the network virtualiser and the native clients do
//! that is not mapping memory or touching the device, host-tested, no_std and
//! allocation-free.
//!
//! * [`NetClient`] / [`NetServer`]: the two ends of a *link*, sDDF net's shape over
//!   lib/ring: per direction one connection whose request queue is sDDF's *free* (receive)
//!   or *active* (transmit) queue and whose response queue is the other; buffers are
//!   `offset`/`len` in the link's data region ([`link`]). The client owns every buffer;
//!   lib/ring's generations make a restart of either side lossless for buffers: whatever
//!   the server held comes back to the client (`Reclaimed`), whatever a dead client had
//!   lent is forgotten by the server (`Abandoned`). A frame being sent may be dropped
//!   across a restart; one towards the client is kept (a server polled with a
//!   [`FrameQueue`] holds it, and gives a restarted client what its predecessor never
//!   read); none is delivered twice or to another client.
//! * [`Router`]: the virtualiser's decisions (destination-MAC demultiplexing, group frames
//!   to all, round-robin transmit, client-to-client loopback, source-MAC check).
//! * [`eth`]: checked Ethernet/ARP/IPv4/UDP parsing and building; [`Echo`]: an ARP and
//!   UDP-echo endpoint.
//! * [`device`]: the checks the driver applies to what its virtio device claims;
//!   [`salvage`]: the frames a dead driver left in its receive queue, found (checked) by
//!   the next one.
//! * [`Contradiction`]: a PD's own records contradicted by its ring, proof of its own
//!   corruption (it fail-stops); [`Accuser`]: when to report a corrupt link's peer, again
//!   if the link stays corrupt after the peer's restart (evidence against the reporter).
//! * [`check`]: the frame check, computed by a frame's producer, carried in the link
//!   buffer's trailer, verified by the last PD to copy the frame, which tells its own
//!   faulty copy (fail-stop) from a damaged source (the peer reported).
//! * [`FrameQueue`]: frames a server holds for a client that has no buffer posted yet (a
//!   restarted peer re-attaching), and those a dead client never read, kept for the next.
#![no_std]

mod accuse;
pub mod check;
mod client;
pub mod device;
mod echo;
pub mod eth;
mod hold;
pub mod link;
mod router;
pub mod salvage;
mod server;

pub use accuse::{Accusation, Accuser};
pub use axolotl_ring::DataRegion;
pub use check::{Check, Verdict};
pub use client::{Activity, ClientStats, Contradiction, Dir, NetClient, SendError};
pub use echo::{Echo, EchoStats};
pub use hold::FrameQueue;
pub use link::{BUF_SIZE, FrameBuf, IDS, LinkRegions, MAX_FRAME, MIN_FRAME};
pub use router::{Direct, Router, Targets};
pub use server::{NetServer, ServerStats};
