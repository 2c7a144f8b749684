//! Error values. [`Corruption`] is evidence against the peer (a monitor acts on
//! it by having the root task restart the peer); everything else is a local
//! condition or a bug in the caller.

/// Which shared index a [`Corruption`] is about. The side that reports it
/// tells which queue: a producer only reads `Head`, a consumer only `Tail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Advanced by the consumer.
    Head,
    /// Advanced by the producer.
    Tail,
}

/// Something the peer wrote is impossible. The offending value is never
/// followed; the report carries enough to log it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The peer's free-running index went backwards.
    IndexRegressed {
        index: Index,
        previous: u32,
        observed: u32,
    },
    /// The peer's index claims entries that cannot exist: `tail - head` above
    /// the capacity, or `head` past `tail`.
    IndexOverrun {
        index: Index,
        head: u32,
        tail: u32,
        capacity: u32,
    },
    /// The peer's index is behind what its other writes prove it passed: a request
    /// queue's `head` claiming `observed` when the completions taken prove the server
    /// consumed up to at least `proven` (a request is popped before it is answered), or
    /// a response queue's `head` leaving more responses unconsumed than there are ids not
    /// in service. Monotonicity cannot see it when the index falls back to a value seen
    /// before; found when the queue looks full.
    IndexBehind {
        index: Index,
        observed: u32,
        proven: u32,
    },
    /// `offset + len` does not fit in 32 bits.
    BufferOverflow { offset: u32, len: u32 },
    /// `offset..offset + len` is not inside the data region.
    BufferOutOfBounds {
        offset: u32,
        len: u32,
        region_len: usize,
    },
    /// An id outside the id table.
    UnknownId { id: u32 },
    /// A request id that is already being served (server side).
    DuplicateId { id: u32 },
    /// A completion for an id that is not outstanding: completed twice, or
    /// never requested (client side).
    DuplicateCompletion { id: u32 },
    /// A completion names a different buffer than its request, or claims more
    /// bytes than the request offered.
    CompletionMismatch { id: u32 },
    /// The descriptor at queue position `position` was not written for it (`written_for`:
    /// the low 16 bits of the position it was), or its slot was never written in this
    /// session: the producer's index was moved onto slots it did not fill in this lap.
    StalePosition { position: u32, written_for: u32 },
    /// The data descriptor `id` names does not match the check its producer computed over
    /// it and carried with it (lib/net's frame check): the peer, or a hop before it,
    /// delivered damaged data.
    DataCheck { id: u32 },
    /// A descriptor tagged with a generation other than the current session's.
    StaleGeneration { id: u32, tag: u32, expected: u32 },
    /// The peer's generation counter went backwards (or to zero).
    GenerationRegressed { previous: u32, observed: u32 },
    /// The peer published a generation the authority that restarts PDs does not confirm:
    /// a restart that did not happen (`confirmed` is the peer's real generation).
    GenerationUnconfirmed { observed: u32, confirmed: u32 },
}

/// `Producer::push` failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// No free slot; retry after the consumer has made progress.
    Full,
    /// Caller bug: an id above [`crate::MAX_ID`]; nothing was pushed.
    IdTooLarge { id: u32 },
    /// The consumer's `head` is impossible.
    Corrupt(Corruption),
}

impl From<Corruption> for PushError {
    fn from(c: Corruption) -> Self {
        PushError::Corrupt(c)
    }
}

/// A shared region cannot hold what was asked of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Capacity is zero, not a power of two, or above the element's limit
    /// (2^15 descriptor slots, whose seal holds 16 bits of position; 2^31 bytes).
    BadCapacity { capacity: u32 },
    /// The region is shorter than the layout needs.
    TooSmall { needed: usize, len: usize },
    /// The region's address is not aligned for the header.
    Misaligned { align: usize },
    /// A data region longer than 32-bit offsets can address.
    DataTooLarge { len: usize },
}

/// Errors of the connection endpoints ([`crate::Client`], [`crate::Server`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not in the `Connected` state (handshake or resync pending): call
    /// `poll` until it reports `Connected`.
    NotConnected,
    /// The outgoing queue is full; retry later.
    Full,
    /// Caller bug: id outside the id table.
    IdOutOfRange { id: u32 },
    /// Caller bug: the id is already outstanding.
    IdInUse { id: u32 },
    /// Caller bug: responding to an id that is not being served.
    NotInService { id: u32 },
    /// Caller bug: a buffer outside the data region, or a response longer
    /// than its request.
    BadBuffer { offset: u32, len: u32 },
    /// The peer is corrupt. Sticky: repeated until the peer's generation
    /// changes (the root task restarted it), then `poll` resynchronises.
    Corrupt(Corruption),
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Error::Corrupt(c)
    }
}
