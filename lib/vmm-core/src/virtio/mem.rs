//! Guest RAM as the devices see it: by guest-physical address, every access
//! bounds-checked. The VMM implements [`GuestMemory`] over its mapping of guest RAM
//! ([`GuestRam`] is that implementation for a mapping it holds as a slice).

use axolotl_net::check::PieceSummer;
use axolotl_ring::DataRegion;

/// An access outside guest RAM (or whose end overflows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemError {
    pub gpa: u64,
    pub len: u64,
}

/// The one copy of a received frame's piece that [`GuestMemory::write_from_region_summed`]
/// makes where guest RAM is mapped: `len` bytes of `region` at `offset` to `dst` (guest
/// address `gpa`, for the error), each word read back into `sum` (lib/net
/// `PieceSummer::copy_out_raw`).
///
/// # Safety
/// `dst` must be `len` writable bytes that are no part of `region`.
#[inline]
pub unsafe fn copy_region_summed(
    sum: &mut PieceSummer,
    region: &DataRegion,
    offset: usize,
    dst: *mut u8,
    gpa: u64,
    len: usize,
) -> Result<(), MemError> {
    // SAFETY: forwarded to the caller.
    if unsafe { sum.copy_out_raw(region, offset, dst, len) } {
        Ok(())
    } else {
        Err(MemError {
            gpa,
            len: len as u64,
        })
    }
}

/// [`GuestMemory::read_u64_pair`] through [`GuestMemory::read`]: 16 bytes, then the two
/// little-endian words they make (the trait's default, and a VMM's way for a range its
/// whole-word loads cannot take).
pub fn read_u64_pair_bytewise<M: GuestMemory + ?Sized>(
    mem: &M,
    gpa: u64,
) -> Result<[u64; 2], MemError> {
    let mut b = [0u8; 16];
    mem.read(gpa, &mut b)?;
    let (lo, hi) = b.split_at(8);
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
    Ok([word(lo), word(hi)])
}

pub trait GuestMemory {
    /// Copies `buf.len()` bytes from guest-physical `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// The 16 bytes at guest-physical `gpa` as two little-endian words: a virtqueue
    /// descriptor, read for every descriptor of every chain walked. The default reads bytes
    /// and puts the words together; a VMM whose mapping allows it loads them whole (a
    /// descriptor table is 16-aligned, §2.7.5): on a strict-alignment target the words put
    /// together from bytes cost about 30 instructions a descriptor.
    fn read_u64_pair(&self, gpa: u64) -> Result<[u64; 2], MemError> {
        read_u64_pair_bytewise(self, gpa)
    }
    /// Copies `data` to guest-physical `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError>;
    /// Whether `[gpa, gpa + len)` lies in guest RAM.
    fn contains(&self, gpa: u64, len: u64) -> bool;
    /// Orders the accesses before it against those after it as another CPU sees them
    /// (the ring protocol's memory barriers). A VMM whose guest can run on another core
    /// while the device works implements it as a full barrier (`dmb ish`); on one core,
    /// with the guest stopped, program order already suffices.
    fn barrier(&self) {}

    /// Copies `len` bytes from guest-physical `gpa` into `region` at `offset`: a backend's
    /// buffer shared with a driver PD, filled with no staging copy between (docs/storage.md).
    /// The default goes through a small stack buffer; a VMM overrides it with one copy.
    /// `Err` if the guest range is not RAM or the region range is not in the region.
    fn read_to_region(
        &self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
    ) -> Result<(), MemError> {
        copy_to_region(self, gpa, region, offset, len, |at, b| {
            region.copy_in(at, b)
        })
    }

    /// [`GuestMemory::read_to_region`] of one piece of a frame being built in a link
    /// buffer, folded into the frame's check as stored there and read back (`sum`, lib/net
    /// `check::PieceSummer::copy_in_raw`): the check comes out of the copy, with no pass
    /// over the buffer after it. The default goes through a small stack buffer; a VMM
    /// overrides it with one copy.
    fn read_to_region_summed(
        &self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        copy_to_region(self, gpa, region, offset, len, |at, b| {
            sum.copy_in(region, at, b)
        })
    }

    /// Copies `len` bytes of `region` at `offset` to guest-physical `gpa` (the other way).
    fn write_from_region(
        &mut self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
    ) -> Result<(), MemError> {
        copy_from_region(self, gpa, region, offset, len, None)
    }

    /// [`GuestMemory::write_from_region`] of one piece of a received frame, folded into
    /// its check as stored in guest RAM and read back (`sum`, lib/net
    /// `check::PieceSummer`): the copy that delivers the frame verifies it, and itself
    /// (docs/network.md, "The frame check"). The default copies through a small stack
    /// buffer and reads each chunk back with [`GuestMemory::read`]; a VMM overrides it with
    /// one copy whose loop reads each word back (`PieceSummer::copy_out_raw`).
    fn write_from_region_summed(
        &mut self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        copy_from_region(self, gpa, region, offset, len, Some(sum))
    }

    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn read_u32(&self, gpa: u64) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn write_u16(&mut self, gpa: u64, v: u16) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
}

/// Guest RAM `[base, base + bytes.len())` held as a slice.
pub struct GuestRam<'a> {
    base: u64,
    bytes: &'a mut [u8],
}

impl<'a> GuestRam<'a> {
    pub fn new(base: u64, bytes: &'a mut [u8]) -> Self {
        Self { base, bytes }
    }

    fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, MemError> {
        let err = MemError {
            gpa,
            len: len as u64,
        };
        let off = gpa.checked_sub(self.base).ok_or(err)?;
        let off = usize::try_from(off).map_err(|_| err)?;
        let end = off.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() {
            return Err(err);
        }
        Ok(off..end)
    }
}

impl GuestMemory for GuestRam<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let r = self.range(gpa, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|l| self.range(gpa, l).is_ok())
    }

    fn read_to_region_summed(
        &self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        let r = self.range(gpa, len)?;
        if sum.copy_in(region, offset, &self.bytes[r]) {
            Ok(())
        } else {
            Err(MemError {
                gpa,
                len: len as u64,
            })
        }
    }

    fn write_from_region_summed(
        &mut self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        let r = self.range(gpa, len)?;
        let dst = self.bytes[r].as_mut_ptr();
        // SAFETY: `len` bytes of our slice, which is no part of the region.
        unsafe { copy_region_summed(sum, region, offset, dst, gpa, len) }
    }
}

/// The default [`GuestMemory::read_to_region`] (and its summed form): through a small stack
/// buffer, each chunk handed to `put` with where it goes in the region.
fn copy_to_region<M: GuestMemory + ?Sized>(
    mem: &M,
    gpa: u64,
    region: &DataRegion,
    offset: usize,
    len: usize,
    mut put: impl FnMut(usize, &[u8]) -> bool,
) -> Result<(), MemError> {
    let err = MemError {
        gpa,
        len: len as u64,
    };
    if !region.contains(offset, len) || !mem.contains(gpa, len as u64) {
        return Err(err);
    }
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        mem.read(gpa + done as u64, &mut chunk[..n])?;
        if !put(offset + done, &chunk[..n]) {
            return Err(err);
        }
        done += n;
    }
    Ok(())
}

/// The default [`GuestMemory::write_from_region`] (and, with `sum`, its summed form): through
/// a small stack buffer, each chunk read back into the check when there is one.
fn copy_from_region<M: GuestMemory + ?Sized>(
    mem: &mut M,
    gpa: u64,
    region: &DataRegion,
    offset: usize,
    len: usize,
    mut sum: Option<&mut PieceSummer>,
) -> Result<(), MemError> {
    if !region.contains(offset, len) || !mem.contains(gpa, len as u64) {
        return Err(MemError {
            gpa,
            len: len as u64,
        });
    }
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        region.copy_out(offset + done, &mut chunk[..n]);
        mem.write(gpa + done as u64, &chunk[..n])?;
        if let Some(s) = sum.as_deref_mut() {
            mem.read(gpa + done as u64, &mut chunk[..n])?;
            s.push_bytes(&chunk[..n]);
        }
        done += n;
    }
    Ok(())
}
