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

/// The ring generation of a PD generation `g`: `g + 1`, so that 0 on a ring stays "never
/// attached" while PD generations start at 0 (boot) and grow by one or more per restart.
/// Saturates: the monitor never hands out `u32::MAX`, so this cannot collide in practice.
pub const fn ring_generation(pd_generation: u32) -> u32 {
    pd_generation.saturating_add(1)
}

/// The PD generation behind ring generation `g` ([`ring_generation`]'s inverse): `None` for
/// 0, "never attached". What a corruption report names as the incarnation it accuses.
pub const fn pd_generation(ring_generation: u32) -> Option<u32> {
    ring_generation.checked_sub(1)
}

/// A word in which the authority that (re)starts PDs publishes one PD's generation (its PD
/// generation, as [`ring_generation`] turns into a ring generation): a word the peer
/// cannot write, such as the root task's generation table, mapped read-only into every PD.
///
/// The authority must store the new generation (Release) before the restarted PD runs, so
/// that anything the new incarnation publishes is never seen before its generation is.
#[derive(Clone, Copy, Debug)]
pub struct Authority(NonNull<AtomicU32>);

// SAFETY: only ever loaded, atomically; moving the handle moves no access rights.
unsafe impl Send for Authority {}

impl Authority {
    /// # Safety
    /// `word` must stay mapped (at least readable) as long as any endpoint built with this
    /// handle lives, and be written only through atomic stores.
    pub const unsafe fn new(word: NonNull<AtomicU32>) -> Self {
        Authority(word)
    }

    /// The ring generation the authority vouches for right now (Acquire: pairs with the
    /// authority's Release store before it resumed the PD).
    pub(crate) fn confirmed(&self) -> u32 {
        // SAFETY: mapped and atomic, as promised in `new`.
        ring_generation(unsafe { self.0.as_ref() }.load(Ordering::Acquire))
    }
}

/// Where a starting side's generations come from. Neither is ever taken from shared memory
/// the peer can write: a peer that could choose our generation, or have its own believed,
/// could make us reclaim requests it still holds, reset queues under it, or fail to start.
#[derive(Clone, Copy, Debug)]
pub struct Generations {
    /// This side's PD generation, as the authority started it (`x0` at entry).
    pub own: u32,
    /// Where the authority publishes the peer's PD generation.
    pub peer: Authority,
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
    /// Where the authority confirms the peer's generation.
    authority: Authority,
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

    /// The generation word the peer publishes: a claim, see [`Control::peer_moved`].
    pub(crate) fn peer_generation(&self) -> u32 {
        self.peer().generation.load(Ordering::Acquire)
    }

    /// Whether the peer restarted since generation `known`, as far as the authority
    /// confirms it ([`generation_moved`]). Reads the peer's word first, then the authority.
    pub(crate) fn peer_moved(&self, known: u32) -> Result<Option<u32>, Corruption> {
        let observed = self.peer_generation();
        generation_moved(known, observed, self.authority.confirmed())
    }

    /// The peer's word still holds `known`: [`Control::peer_moved`]`(known)` is then
    /// `Ok(None)` whatever the authority says (a restart the authority confirms counts only
    /// once the word holds the confirmed generation, which `known` is not if it is newer),
    /// so the authority's word need not be read.
    #[inline]
    pub(crate) fn peer_still(&self, known: u32) -> bool {
        self.peer_generation() == known
    }

    pub(crate) fn peer_ack(&self) -> u32 {
        self.peer().ack.load(Ordering::Acquire)
    }
}

/// Compares the peer's published generation with the one this side knows (`known`, 0 before
/// the first) and with the one the authority confirms: `None` when there is nothing to act
/// on, the new generation when the peer really restarted.
///
/// While the authority's count is the one we know, the word is the live peer's claim and
/// must equal it: a smaller one is a regression, a larger one a restart that did not happen
/// (the authority does not confirm it); both are corruption, never followed. Once the
/// authority has moved on, the peer was restarted: only its new incarnation's publication,
/// the confirmed generation, counts; until it has published, the word still holds what an
/// earlier incarnation (or a scribbler) left, which is not the new one's claim: wait.
///
/// `observed` is read before `confirmed`: an incarnation publishes only after the authority
/// did, so a genuine new generation is never seen ahead of its confirmation.
pub(crate) fn generation_moved(
    known: u32,
    observed: u32,
    confirmed: u32,
) -> Result<Option<u32>, Corruption> {
    if confirmed > known {
        return Ok((observed == confirmed).then_some(observed));
    }
    match observed {
        g if g == known => Ok(None),
        g if g < known => Err(Corruption::GenerationRegressed {
            previous: known,
            observed: g,
        }),
        g => Err(Corruption::GenerationUnconfirmed {
            observed: g,
            confirmed,
        }),
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
    generations: Generations,
) -> Result<Parts, LayoutError> {
    if u32::try_from(data.len()).is_err() {
        return Err(LayoutError::DataTooLarge { len: data.len() });
    }
    let (hdr, req, resp) = split(rings, capacity)?;
    let control = Control {
        hdr,
        role,
        authority: generations.peer,
    };
    let generation = ring_generation(generations.own);
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
