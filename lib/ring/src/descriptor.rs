//! The descriptor: the unit a queue carries.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::Corruption;

/// One queue entry, 16 bytes; a slot holds it with the queue position it was
/// written for sealed into the upper half of the `id` word ([`slot_words`]).
///
/// `FromBytes` is what makes it sound to read one out of peer-written memory:
/// every bit pattern is a valid (if possibly nonsensical) descriptor, and
/// nonsense is caught by [`Descriptor::check_bounds`] and the id tables.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Descriptor {
    /// Byte offset of the buffer in the data region.
    pub offset: u32,
    /// Buffer length in bytes (in a response: bytes produced).
    pub len: u32,
    /// Request id chosen by the client; keys both sides' id tables. At most
    /// [`MAX_ID`]: the slot's upper 16 bits of this word carry the position seal.
    pub id: u32,
    /// Session tag: the server generation the request was issued to.
    /// Lets a stale descriptor from an earlier session be told apart.
    pub tag: u32,
}

const _: () = assert!(size_of::<Descriptor>() == 16);

/// The largest id a descriptor can carry: the upper half of the id word is the seal.
pub const MAX_ID: u32 = 0xffff;

/// The seal of queue position `index`: its low 16 bits, inverted so that a zeroed slot
/// (a fresh or reset queue) seals no position a consumer can reach before the producer
/// wrote that slot (positions below the capacity, at most 2^15).
const fn seal(index: u32) -> u32 {
    !index & 0xffff
}

/// The four words a slot holds for descriptor `d` published at queue position `index`
/// (free-running): `offset`, `len`, `id | seal << 16`, `tag`, where the seal is the
/// position's low 16 bits inverted. Why: the producer's index is in memory the consumer
/// cannot trust; if a fault moves it ahead, the slots it newly exposes hold descriptors of
/// an earlier lap (written for a position one capacity back) or of an earlier session
/// (zeroed by the reset), and neither carries the seal of the position it is read at. A
/// descriptor's generation tag alone cannot tell them apart from new ones.
///
/// `d.id` must be at most [`MAX_ID`] (checked by [`crate::Producer::push`]).
pub fn slot_words(d: Descriptor, index: u32) -> [u32; 4] {
    [d.offset, d.len, (d.id & MAX_ID) | seal(index) << 16, d.tag]
}

/// The descriptor in `words`, read at queue position `index`, if they were written for it.
pub(crate) fn unseal(words: [u32; 4], index: u32) -> Result<Descriptor, Corruption> {
    let sealed = words[2] >> 16;
    if sealed != seal(index) {
        return Err(Corruption::StalePosition {
            position: index,
            written_for: !sealed & 0xffff,
        });
    }
    Ok(Descriptor {
        offset: words[0],
        len: words[1],
        id: words[2] & MAX_ID,
        tag: words[3],
    })
}

impl Descriptor {
    /// Checks that the buffer lies inside a data region of `region_len` bytes.
    pub fn check_bounds(&self, region_len: usize) -> Result<(), Corruption> {
        let end = self
            .offset
            .checked_add(self.len)
            .ok_or(Corruption::BufferOverflow {
                offset: self.offset,
                len: self.len,
            })?;
        if end as usize > region_len {
            return Err(Corruption::BufferOutOfBounds {
                offset: self.offset,
                len: self.len,
                region_len,
            });
        }
        Ok(())
    }
}
