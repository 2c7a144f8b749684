//! Shared-memory descriptor rings between protection domains (PDs) that
//! survive a restart of either side: sDDF-style queues plus generations.
//!
//! # Queues
//!
//! A [`Producer`]/[`Consumer`] pair shares one queue: a [`QueueHeader`] and
//! `capacity` (a power of two) slots of one [`Descriptor`] each. The
//! producer alone advances `tail`, the consumer alone advances `head`; both
//! are free-running `u32`s, the slot is `index & (capacity - 1)`, and a slot
//! belongs to whoever may write it: the producer for `[tail, head +
//! capacity)`, the consumer for `[head, tail)`. A buffer named by a
//! descriptor is owned by the side the descriptor currently sits with.
//!
//! Ordering: the producer writes the slot, then Release-stores `tail`; the
//! consumer Acquire-loads `tail`, then reads the slot. Symmetrically the
//! consumer copies a slot out before Release-storing `head`, and the producer
//! Acquire-loads `head` before reusing the slot.
//!
//! Each side keeps its own index privately and only ever *writes* the shared
//! copy, so the peer cannot steer it by scribbling on it.
//!
//! # Positions: a slot says which index it was written for
//!
//! The peer's index is still a claim. A `tail` moved ahead (a flipped bit in
//! the producer's word) exposes slots the producer did not write in this lap:
//! descriptors of the previous lap, or of a session before a reset, carrying
//! the current generation and possibly an idle id, so the id tables and tags
//! cannot tell them from new ones (a stale write served this way would write
//! whatever the buffer holds now to an old sector). So the producer seals each
//! slot with the position it writes it for (the low 16 bits of the index,
//! inverted, in the upper half of the `id` word: [`slot_words`]; ids are at
//! most [`MAX_ID`], capacities at most 2^15), the consumer takes a descriptor
//! only if its seal is that of the index it reads it at
//! ([`Corruption::StalePosition`]), and a reset zeroes the slots, which seal no
//! position a new session reaches before writing them.
//!
//! A `head` fallen back to a value the producer saw before passes its checks
//! (never behind what it saw, never past its tail) and leaves the queue
//! looking full with nothing in it: a silent stall. The connection knows more
//! than the queue: a request is popped before it is answered, so when the
//! request queue looks full the client checks that the server's `head` is no
//! further behind than the requests still outstanding, and the server checks
//! the response queue's `head` against the ids not in service
//! ([`Corruption::IndexBehind`]).
//!
//! # Shared-memory layout (all little-endian `u32`, real build)
//!
//! ```text
//! queue:       0   tail           (producer's line)
//!              4   pad to 64
//!             64   head           (consumer's line)
//!             68   signal-me flag (set by consumer, cleared by producer)
//!             72   pad to 128
//!            128   slot[capacity], 16 bytes each:
//!                  +0 offset  +4 len  +8 id (bits 0-15) | seal (16-31)  +12 tag
//!
//! connection ring region (capacity C):
//!              0   client: generation, ack, pad to 64
//!             64   server: generation, ack, pad to 64
//!            128   request queue  (client -> server), 128 + 16 C bytes
//!    256 + 16 C   response queue (server -> client), 128 + 16 C bytes
//! plus a separate data region that descriptors' offset/len point into.
//! ```
//!
//! The headers and [`Descriptor`] derive zerocopy's `FromBytes`, `IntoBytes`
//! and `KnownLayout` (the descriptor also `Immutable`; the headers cannot be:
//! they are written through shared references, as atomics). `FromBytes` is
//! the licence to read them from memory the peer may fill with anything. A
//! region arrives as a raw pointer and length ([`SharedRegion`]); no `&` or
//! `&mut` to plain bytes is ever formed over it, every access is atomic.
//! Zeroed memory is a valid empty queue and a valid fresh connection.
//!
//! # Signal me only when asked
//!
//! Before blocking, the consumer calls [`Consumer::prepare_wait`]: it sets
//! the flag, then re-checks the queue and says [`Wait::Block`] only if it is
//! still empty. After publishing, the producer calls
//! [`Producer::signal_needed`], which clears the flag and returns
//! [`Signal::Notify`] if it was set; the caller then notifies (the library
//! knows no kernel). Both sides update the flag with a read-modify-write, so
//! one of them must come second in the flag's modification order: either the
//! producer sees the request, or the consumer's swap synchronises with the
//! producer's and its re-check sees the new `tail`. No wake-up is lost
//! (model-checked in `tests/loom.rs`, including a variant that skips the
//! re-check and must deadlock).
//!
//! # Connections, generations and resynchronisation
//!
//! A connection joins a [`Client`] (owns the buffers, issues requests with
//! ids `0..IDS`) and a [`Server`] (a driver or back end) through a request
//! and a response queue. Each side's control line holds its `generation`
//! (0 = never attached; otherwise [`ring_generation`] of its PD generation,
//! so a restarted side comes up with a larger one) and its `ack`: the peer
//! generation it has resynchronised with. Every request carries the server
//! generation in its `tag`, and so does every response; anything tagged
//! otherwise is stale.
//!
//! # Generations: what a peer can claim and what is verified
//!
//! Both control lines sit in memory both sides can write, so a generation
//! word is only a claim. A starting side is given ([`Generations`]) its own
//! PD generation by the authority that started it (the root task's `x0`),
//! never from shared memory, and an [`Authority`]: the word, in the root
//! task's generation table (read-only to every PD), holding the peer's PD
//! generation. The peer's claim counts only as far as the authority
//! confirms it:
//!
//! * while the authority's count is the one this side knows, the peer's word
//!   must equal it: a larger one is a restart that did not happen
//!   ([`Corruption::GenerationUnconfirmed`]), a smaller one a regression;
//!   both poison the endpoint (the caller reports the peer), nothing is
//!   reclaimed, abandoned or reset;
//! * once the authority has moved on (the peer really was restarted), only
//!   the confirmed generation is taken, when the new incarnation publishes
//!   it; whatever else the word holds meanwhile is an earlier incarnation's
//!   or a scribbler's, waited out, so the new incarnation is not blamed;
//! * each side rewrites its own word while attaching, so a word the peer
//!   scribbled over heals instead of stalling the handshake.
//!
//! `ack` words, queue indices and descriptors stay claims too: a lie in them
//! only spoils the liar's own session (every index and descriptor is
//! validated, below).
//!
//! Rules, the whole protocol:
//!
//! 1. A starting side publishes its generation before anything else, and
//!    writes its `ack` only after that.
//! 2. Only one side at a time writes the queue indices: in a session, each
//!    its own; across a restart, the side that *resets* (below). A side
//!    touches no queue before the peer has acked its generation, and the
//!    resetter resets before it acks (Release), so the reset is visible.
//! 3. Who resets: the **survivor** of a restart, after taking what it is
//!    owed from the old session; or a **starting server** that finds the
//!    client generation is not the one its previous incarnation acked (the
//!    client restarted too, or this is the first boot). A starting client
//!    never resets: a surviving server may still be draining.
//! 4. The old incarnation of a restarted PD never runs again (the root task,
//!    which performs every restart the monitor asks for, suspends it before
//!    restoring its image or switching it to its standby).
//!
//! Client states ([`ClientEvent`]s in brackets):
//!
//! ```text
//!  new ─► Attaching ──server acked our gen──► Connected [Connected]
//!         (ack each new server gen seen; never reset here)
//!  Connected ──server gen changed──► Draining [ServerRestarted]
//!  Draining: pop old completions, validated, [Completed] each;
//!            empty or garbage ──► Reclaiming
//!  Reclaiming: each id still outstanding [Reclaimed];
//!            done ──► reset both queues, ack new gen ──► Attaching
//!  Connected ──peer corrupt──► Poisoned (error repeated) ──gen changed──►
//!            Reclaiming (nothing more is read from a corrupt server)
//! ```
//!
//! Server states ([`ServerEvent`]s in brackets):
//!
//! ```text
//!  new ─► Starting ──client gen == our old ack──► Attaching   (client survived us)
//!            └─────otherwise: reset, ack client gen──► Attaching
//!  Attaching ──client acked our gen──► Connected [Connected]
//!            (client gen changed meanwhile: it is fresh; reset, ack it)
//!  Connected ──client gen changed──► Abandoning [ClientRestarted]
//!  Abandoning: each request we had taken [Abandoned{started: true}], then
//!            each still queued, validated [Abandoned{started: false}];
//!            then reset both queues, ack new gen ──► Attaching
//!  Connected ──peer corrupt──► Poisoned ──gen changed──► Abandoning
//!            (taken requests only)
//! ```
//!
//! What this guarantees (tested in `tests/resync.rs` over random
//! interleavings with restarts of either side at any point):
//!
//! * **Nothing lost**: every id the client submits comes back exactly once,
//!   as `Completed` (the server answered, possibly just before dying: the
//!   survivor drains the old response queue before resetting) or as
//!   `Reclaimed` (no answer; the buffer is the client's again).
//! * **Nothing silently duplicated**: the library never re-issues. A
//!   `Reclaimed` request may have taken effect; the caller decides to retry
//!   (if idempotent) or report, as a Hubris client does with a dead peer.
//!   A request is delivered to a server at most once, ever.
//! * After a client restart the server hands back everything it held
//!   (`Abandoned`), so it stops using the dead client's buffers; and it can
//!   tell which of its responses the dead client never consumed
//!   ([`Server::take_unread`], from its private copy of what it published and
//!   the client's validated consumer index), so that their results need not
//!   be lost with the reset.
//!
//! # Never trusting the peer
//!
//! Anything impossible in shared memory is returned as a [`Corruption`]
//! naming what was wrong (an index regressed, overran or behind what the
//! peer's answers prove, a slot not written for its position, a buffer out of
//! the data region or overflowing, an unknown or duplicate id, a completion
//! for a different buffer, a stale tag, a generation going backwards or one
//! the authority does not confirm). It is never
//! followed and never panics, and the endpoint stays poisoned until the
//! peer's generation changes: a monitor acts on the report by having the root
//! task restart the peer, and the survivor then resynchronises as above.
//!
//! # Byte streams
//!
//! [`ByteProducer`]/[`ByteConsumer`] are the serial variant: a byte ring with
//! the same indices, ordering, validation and signal flag.
#![no_std]

mod bulk;
mod bytes;
mod client;
mod control;
mod data;
mod deadline;
mod descriptor;
mod error;
mod queue;
mod region;
mod server;
mod sync;

pub use bulk::{BLOCK, BlockSums};
pub use bytes::{ByteConsumer, ByteProducer, byte_ring_bytes, init_byte_ring};
pub use client::{Client, ClientEvent, LinkState};
pub use control::{
    Authority, ConnectionHeader, Generations, SideControl, init_connection, pd_generation,
    ring_generation, ring_region_bytes,
};
pub use data::{DataRegion, WordCarry};
pub use deadline::{Deadline, Progress};
pub use descriptor::{Descriptor, MAX_ID, slot_words};
pub use error::{Corruption, Error, Index, LayoutError, PushError};
pub use queue::{Consumer, Producer, QueueHeader, Signal, Wait, init_queue, queue_bytes};
pub use region::SharedRegion;
pub use server::{Server, ServerEvent};
