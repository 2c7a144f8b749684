//! The connection's shared control block and ring-region layout.
//!
//! Ring region of a connection with queue capacity `C` (real build):
//!
//! | offset            | size      | what                                     |
//! |-------------------|-----------|------------------------------------------|
//! | 0                 | 64        | client side: `generation`, `ack`          |
//! | 64                | 64        | server side: `generation`, `ack`          |
//! | 128               | 128 + 16C | request queue (client → server)           |
//! | 256 + 16C         | 128 + 16C | response queue (server → client)          |
//!
//! The data region (buffers named by descriptors) is a separate region.

use core::ptr::NonNull;

use crate::error::{Corruption, LayoutError};
use crate::queue::{Consumer, Producer, QUEUE_ALIGN, queue_bytes};
use crate::region::SharedRegion;
use crate::sync::{AtomicU32, Ordering};

/// One side's control line. Each word is written only by its own side.
#[repr(C)]
#[cfg_attr(
    not(feature = "loom"),
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout)
)]
pub struct SideControl {
    /// This side's incarnation; 0 = never attached.
    generation: AtomicU32,
    /// The peer generation this side has resynchronised with.
    ack: AtomicU32,
    _pad: [u32; 14],
}

/// Shared control block at the start of a connection's ring region.
#[repr(C)]
#[cfg_attr(
    not(feature = "loom"),
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout)
)]
pub struct ConnectionHeader {
    client: SideControl,
    server: SideControl,
}

#[cfg(not(feature = "loom"))]
const _: () = {
    assert!(size_of::<SideControl>() == 64);
    assert!(size_of::<ConnectionHeader>() == 128);
    assert!(core::mem::offset_of!(ConnectionHeader, server) == 64);
};

impl SideControl {
    fn new() -> Self {
        Self {
            generation: AtomicU32::new(0),
            ack: AtomicU32::new(0),
            _pad: [0; 14],
        }
    }
}

const HEADER_BYTES: usize = size_of::<ConnectionHeader>().next_multiple_of(QUEUE_ALIGN);
const ALIGN: usize = if align_of::<ConnectionHeader>() > QUEUE_ALIGN {
    align_of::<ConnectionHeader>()
} else {
    QUEUE_ALIGN
};

/// Bytes of the ring region for queues of `capacity` slots.
pub fn ring_region_bytes(capacity: u32) -> Result<usize, LayoutError> {
    Ok(HEADER_BYTES + 2 * queue_bytes(capacity)?)
}

/// Writes a fresh connection (both sides absent, both queues empty).
///
/// Zeroed memory already is one; see [`crate::init_queue`].
///
/// # Safety
/// Neither side may be running on the region during the call.
pub unsafe fn init_connection(region: &SharedRegion, capacity: u32) -> Result<(), LayoutError> {
    let (ctl, req, resp) = split(region_view(region), capacity)?;
    // SAFETY: in bounds and aligned (checked by `split`); exclusivity is the
    // caller's promise.
    unsafe {
        ctl.write(ConnectionHeader {
            client: SideControl::new(),
            server: SideControl::new(),
        });
        crate::queue::init_queue(&req, capacity)?;
        crate::queue::init_queue(&resp, capacity)?;
    }
    Ok(())
}

fn region_view(region: &SharedRegion) -> SharedRegion {
    // SAFETY: a temporary alias used only for initialisation by the owner.
    unsafe { SharedRegion::new(region.as_ptr(), region.len()) }
}

/// Splits a ring region into control block, request queue, response queue.
fn split(
    region: SharedRegion,
    capacity: u32,
) -> Result<(NonNull<ConnectionHeader>, SharedRegion, SharedRegion), LayoutError> {
    let ctl = region
        .place(ring_region_bytes(capacity)?, ALIGN)?
        .cast::<ConnectionHeader>();
    let (_, queues) = region.split_at(HEADER_BYTES)?;
    let (req, resp) = queues.split_at(queue_bytes(capacity)?)?;
    Ok((ctl, req, resp))
}

/// How a starting side learns its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// Told explicitly (by the monitor). Must be non-zero and, on a restart,
    /// above the previous incarnation's.
    Given(u32),
    /// One more than what this side's previous incarnation left in the
    /// control block (1 on a zeroed region).
    Next,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// This side's view of the control block.
pub(crate) struct Control {
    hdr: NonNull<ConnectionHeader>,
    role: Role,
}

impl Control {
    fn own(&self) -> &SideControl {
        // SAFETY: in bounds and aligned (checked by `split`); atomics only.
        let h = unsafe { self.hdr.as_ref() };
        match self.role {
            Role::Client => &h.client,
            Role::Server => &h.server,
        }
    }

    fn peer(&self) -> &SideControl {
        // SAFETY: as in `own`.
        let h = unsafe { self.hdr.as_ref() };
        match self.role {
            Role::Client => &h.server,
            Role::Server => &h.client,
        }
    }

    /// Publishes our generation; must precede any `ack` we write, so a peer
    /// that sees our ack also sees who wrote it.
    pub(crate) fn publish_generation(&self, g: u32) {
        self.own().generation.store(g, Ordering::Release);
    }

    /// Release: publishes a queue reset done before it.
    pub(crate) fn ack(&self, peer_generation: u32) {
        self.own().ack.store(peer_generation, Ordering::Release);
    }

    /// What our previous incarnation acknowledged (only meaningful while
    /// starting, before we write it ourselves).
    pub(crate) fn own_previous_ack(&self) -> u32 {
        self.own().ack.load(Ordering::Relaxed)
    }

    pub(crate) fn peer_generation(&self) -> u32 {
        self.peer().generation.load(Ordering::Acquire)
    }

    pub(crate) fn peer_ack(&self) -> u32 {
        self.peer().ack.load(Ordering::Acquire)
    }
}

/// Compares the peer's published generation with the one this side knows: `None` when
/// unchanged, the new one when it grew. Generations only grow (a restarted side comes up
/// with a larger one), so a smaller value is corruption, never followed.
pub(crate) fn generation_moved(known: u32, observed: u32) -> Result<Option<u32>, Corruption> {
    match observed {
        g if g == known => Ok(None),
        g if g < known => Err(Corruption::GenerationRegressed {
            previous: known,
            observed: g,
        }),
        g => Ok(Some(g)),
    }
}

/// Everything an endpoint is made of, after layout checks.
pub(crate) struct Parts {
    pub(crate) control: Control,
    pub(crate) generation: u32,
    pub(crate) outgoing: Producer,
    pub(crate) incoming: Consumer,
    pub(crate) data_len: usize,
}

pub(crate) fn attach(
    rings: SharedRegion,
    data: &SharedRegion,
    capacity: u32,
    role: Role,
    generation: Generation,
) -> Result<Parts, LayoutError> {
    if u32::try_from(data.len()).is_err() {
        return Err(LayoutError::DataTooLarge { len: data.len() });
    }
    let (hdr, req, resp) = split(rings, capacity)?;
    let control = Control { hdr, role };
    let generation = match generation {
        Generation::Given(0) => return Err(LayoutError::ZeroGeneration),
        Generation::Given(g) => g,
        Generation::Next => control
            .own()
            .generation
            .load(Ordering::Relaxed)
            .checked_add(1)
            .ok_or(LayoutError::ZeroGeneration)?,
    };
    control.publish_generation(generation);
    let (outgoing, incoming) = match role {
        Role::Client => (
            Producer::new(req, capacity)?,
            Consumer::new(resp, capacity)?,
        ),
        Role::Server => (
            Producer::new(resp, capacity)?,
            Consumer::new(req, capacity)?,
        ),
    };
    Ok(Parts {
        control,
        generation,
        outgoing,
        incoming,
        data_len: data.len(),
    })
}

// SAFETY: the control block is only accessed through atomics.
unsafe impl Send for Control {}
