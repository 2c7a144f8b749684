//! The descriptor: the unit a queue carries.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::Corruption;

/// One queue entry, 16 bytes, exactly as it sits in a slot.
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
    /// Request id chosen by the client; keys both sides' id tables.
    pub id: u32,
    /// Session tag: the server generation the request was issued to.
    /// Lets a stale descriptor from an earlier session be told apart.
    pub tag: u32,
}

const _: () = assert!(size_of::<Descriptor>() == 16);

impl Descriptor {
    pub(crate) fn to_words(self) -> [u32; 4] {
        zerocopy::transmute!(self)
    }

    pub(crate) fn from_words(words: [u32; 4]) -> Self {
        zerocopy::transmute!(words)
    }

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
