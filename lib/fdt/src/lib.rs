//! Flattened device tree (DTB, version 17) writer into a caller-supplied buffer,
//! with no allocator, plus helpers that emit the nodes a Linux guest on our VMM needs.
//!
//! Layout while writing (same trick as libfdt's sequential-write mode): header and
//! memory reservation map at the front, the structure block growing upwards after
//! them, and the strings block growing *downwards* from the end of the buffer. Since
//! the strings block's start moves as strings are added, property name offsets are
//! recorded relative to the buffer end and patched in [`FdtWriter::finish`], which
//! also moves the strings block down to sit right after the structure block.
#![no_std]

mod guest;
pub use guest::*;

/// FDT header magic.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Version written into the header.
pub const FDT_VERSION: u32 = 17;
/// Oldest version a v17 blob is backwards compatible with.
pub const FDT_LAST_COMP_VERSION: u32 = 16;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

const HEADER_SIZE: usize = 40;
const RSV_ENTRY_SIZE: usize = 16;

/// Writer errors. Every failure is returned; nothing panics on bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The caller's buffer is too small for the tree written so far.
    NoSpace,
    /// A reservation was added after the first node was begun.
    ReservationAfterNodes,
    /// `property` outside any node, or `end_node` with no open node.
    NoOpenNode,
    /// A second root node, or anything after the root was closed.
    RootClosed,
    /// `finish` with nodes still open, or before any node was written.
    Unbalanced,
    /// Node or property name is empty (non-root), contains NUL or '/', or is too long.
    BadName,
    /// A property value is longer than the format's 32-bit length field.
    ValueTooLarge,
}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Sequential DTB writer.
pub struct FdtWriter<'a> {
    buf: &'a mut [u8],
    n_rsv: usize,
    /// Start of the structure block; fixed at the first `begin_node`.
    struct_start: Option<usize>,
    /// Write cursor in the structure block.
    pos: usize,
    /// Lowest used byte of the strings block (which ends at `buf.len()`).
    strings_low: usize,
    depth: u32,
    root_closed: bool,
    boot_cpuid: u32,
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn align4(v: usize) -> usize {
    (v + 3) & !3
}

impl<'a> FdtWriter<'a> {
    /// Starts a tree in `buf`. The buffer must at least hold the header and the
    /// reservation map terminator.
    pub fn new(buf: &'a mut [u8]) -> Result<Self> {
        if buf.len() < HEADER_SIZE + RSV_ENTRY_SIZE {
            return Err(Error::NoSpace);
        }
        // u32 offsets in the header; refuse what cannot be described.
        if buf.len() > u32::MAX as usize {
            return Err(Error::NoSpace);
        }
        let len = buf.len();
        Ok(Self {
            buf,
            n_rsv: 0,
            struct_start: None,
            pos: 0,
            strings_low: len,
            depth: 0,
            root_closed: false,
            boot_cpuid: 0,
        })
    }

    /// Physical id of the boot CPU recorded in the header (default 0).
    pub fn set_boot_cpuid(&mut self, id: u32) {
        self.boot_cpuid = id;
    }

    /// Adds a memory reservation map entry. Only allowed before the first node.
    pub fn add_reservation(&mut self, address: u64, size: u64) -> Result<()> {
        if self.struct_start.is_some() {
            return Err(Error::ReservationAfterNodes);
        }
        let off = HEADER_SIZE + self.n_rsv * RSV_ENTRY_SIZE;
        // Keep room for this entry plus the terminator.
        if off + 2 * RSV_ENTRY_SIZE > self.strings_low {
            return Err(Error::NoSpace);
        }
        self.buf[off..off + 8].copy_from_slice(&address.to_be_bytes());
        self.buf[off + 8..off + 16].copy_from_slice(&size.to_be_bytes());
        self.n_rsv += 1;
        Ok(())
    }

    fn start_struct(&mut self) -> Result<()> {
        if self.struct_start.is_none() {
            let off = HEADER_SIZE + self.n_rsv * RSV_ENTRY_SIZE;
            if off + RSV_ENTRY_SIZE > self.strings_low {
                return Err(Error::NoSpace);
            }
            self.buf[off..off + RSV_ENTRY_SIZE].fill(0);
            self.struct_start = Some(off + RSV_ENTRY_SIZE);
            self.pos = off + RSV_ENTRY_SIZE;
        }
        Ok(())
    }

    /// Reserves `n` bytes at the structure cursor, zero-filled up to 4-byte alignment.
    fn reserve(&mut self, n: usize) -> Result<&mut [u8]> {
        let padded = align4(n);
        let end = self.pos.checked_add(padded).ok_or(Error::NoSpace)?;
        if end > self.strings_low {
            return Err(Error::NoSpace);
        }
        let start = self.pos;
        self.buf[start..end].fill(0);
        self.pos = end;
        Ok(&mut self.buf[start..start + n])
    }

    fn token(&mut self, t: u32) -> Result<()> {
        self.reserve(4)?.copy_from_slice(&be32(t));
        Ok(())
    }

    fn check_name(name: &[u8], allow_empty: bool) -> Result<()> {
        if (name.is_empty() && !allow_empty) || name.len() > 255 {
            return Err(Error::BadName);
        }
        if name.iter().any(|&b| b == 0 || b == b'/') {
            return Err(Error::BadName);
        }
        Ok(())
    }

    fn begin_node_bytes(&mut self, parts: &[&[u8]]) -> Result<()> {
        if self.root_closed || (self.depth == 0 && self.struct_start.is_some()) {
            return Err(Error::RootClosed);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // Root must be "", every other node needs a name.
        if (self.depth == 0) != (len == 0) {
            return Err(Error::BadName);
        }
        for p in parts {
            Self::check_name(p, true)?;
        }
        if len > 255 {
            return Err(Error::BadName);
        }
        self.start_struct()?;
        self.token(FDT_BEGIN_NODE)?;
        let dst = self.reserve(len + 1)?;
        let mut i = 0;
        for p in parts {
            dst[i..i + p.len()].copy_from_slice(p);
            i += p.len();
        }
        self.depth += 1;
        Ok(())
    }

    /// Opens a node. The first node must be the root, named `""`.
    pub fn begin_node(&mut self, name: &str) -> Result<()> {
        self.begin_node_bytes(&[name.as_bytes()])
    }

    /// Opens a node named `name@<unit in lowercase hex>`.
    pub fn begin_node_at(&mut self, name: &str, unit: u64) -> Result<()> {
        let mut hex = [0u8; 17];
        let h = hex_u64(unit, &mut hex);
        self.begin_node_bytes(&[name.as_bytes(), b"@", h])
    }

    /// Closes the innermost open node.
    pub fn end_node(&mut self) -> Result<()> {
        if self.depth == 0 {
            return Err(Error::NoOpenNode);
        }
        self.token(FDT_END_NODE)?;
        self.depth -= 1;
        if self.depth == 0 {
            self.root_closed = true;
        }
        Ok(())
    }

    /// Returns the offset of `name` counted back from the buffer end, adding it
    /// to the strings block unless an identical string is already there.
    fn string_offset(&mut self, name: &[u8]) -> Result<usize> {
        let len = self.buf.len();
        // Walk existing NUL-terminated strings (also matches a suffix of a longer
        // one, which the format allows to share).
        let region = &self.buf[self.strings_low..len];
        let mut i = 0;
        while i < region.len() {
            let end = i + region[i..].iter().position(|&b| b == 0).unwrap_or(0);
            let s = &region[i..end];
            if s.len() >= name.len() && &s[s.len() - name.len()..] == name {
                return Ok(len - (self.strings_low + end - name.len()));
            }
            i = end + 1;
        }
        let need = name.len() + 1;
        if self.strings_low < self.pos + need {
            return Err(Error::NoSpace);
        }
        self.strings_low -= need;
        let lo = self.strings_low;
        self.buf[lo..lo + name.len()].copy_from_slice(name);
        self.buf[lo + name.len()] = 0;
        Ok(len - lo)
    }

    /// Writes a property with a raw value to the innermost open node.
    pub fn property(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.property_with(name, value.len(), |dst| dst.copy_from_slice(value))
    }

    /// Empty (boolean) property.
    pub fn property_empty(&mut self, name: &str) -> Result<()> {
        self.property(name, &[])
    }

    /// One big-endian cell.
    pub fn property_u32(&mut self, name: &str, v: u32) -> Result<()> {
        self.property(name, &v.to_be_bytes())
    }

    /// Two big-endian cells.
    pub fn property_u64(&mut self, name: &str, v: u64) -> Result<()> {
        self.property(name, &v.to_be_bytes())
    }

    /// A list of big-endian cells, written without a temporary buffer.
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) -> Result<()> {
        self.property_with(name, cells.len() * 4, |dst| {
            for (c, d) in cells.iter().zip(dst.chunks_exact_mut(4)) {
                d.copy_from_slice(&c.to_be_bytes());
            }
        })
    }

    /// A list of 64-bit values as pairs of cells (e.g. `reg` with 2/2 cells).
    pub fn property_u64s(&mut self, name: &str, vals: &[u64]) -> Result<()> {
        self.property_with(name, vals.len() * 8, |dst| {
            for (v, d) in vals.iter().zip(dst.chunks_exact_mut(8)) {
                d.copy_from_slice(&v.to_be_bytes());
            }
        })
    }

    /// NUL-terminated string.
    pub fn property_string(&mut self, name: &str, s: &str) -> Result<()> {
        self.property_string_list(name, &[s])
    }

    /// Sequence of NUL-terminated strings (e.g. `compatible`).
    pub fn property_string_list(&mut self, name: &str, list: &[&str]) -> Result<()> {
        if list.iter().any(|s| s.as_bytes().contains(&0)) {
            return Err(Error::BadName);
        }
        let len = list.iter().map(|s| s.len() + 1).sum();
        self.property_with(name, len, |dst| {
            let mut i = 0;
            for s in list {
                dst[i..i + s.len()].copy_from_slice(s.as_bytes());
                dst[i + s.len()] = 0;
                i += s.len() + 1;
            }
        })
    }

    /// Property whose `len`-byte value is filled in place by `fill` (zeroed first).
    pub fn property_with(
        &mut self,
        name: &str,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        if self.depth == 0 {
            return Err(Error::NoOpenNode);
        }
        Self::check_name(name.as_bytes(), false)?;
        let vlen = u32::try_from(len).map_err(|_| Error::ValueTooLarge)?;
        let from_end = self.string_offset(name.as_bytes())?;
        let from_end = u32::try_from(from_end).map_err(|_| Error::NoSpace)?;
        let dst = self.reserve(12usize.checked_add(len).ok_or(Error::NoSpace)?)?;
        dst[0..4].copy_from_slice(&be32(FDT_PROP));
        dst[4..8].copy_from_slice(&be32(vlen));
        dst[8..12].copy_from_slice(&be32(from_end));
        fill(&mut dst[12..]);
        Ok(())
    }

    /// Terminates the tree, fixes up name offsets, moves the strings block into
    /// place and writes the header. Returns the blob's total size (`buf[..size]`).
    pub fn finish(self) -> Result<usize> {
        let Some(struct_start) = self.struct_start else {
            return Err(Error::Unbalanced);
        };
        if self.depth != 0 || !self.root_closed {
            return Err(Error::Unbalanced);
        }
        let mut this = self;
        this.token(FDT_END)?;
        let struct_end = this.pos;
        let len = this.buf.len();
        let strings_size = len - this.strings_low;

        // Fix name offsets: final = size - from_end, as the block keeps its internal layout.
        let mut p = struct_start;
        while p < struct_end {
            let tok = read_be32(this.buf, p);
            p += 4;
            match tok {
                FDT_BEGIN_NODE => {
                    let n = this.buf[p..].iter().position(|&b| b == 0).unwrap_or(0);
                    p += align4(n + 1);
                }
                FDT_PROP => {
                    let vlen = read_be32(this.buf, p) as usize;
                    let from_end = read_be32(this.buf, p + 4) as usize;
                    let off = (strings_size - from_end) as u32;
                    this.buf[p + 4..p + 8].copy_from_slice(&be32(off));
                    p += 8 + align4(vlen);
                }
                FDT_END_NODE | FDT_NOP | FDT_END => {}
                _ => unreachable!("writer only emits known tokens"),
            }
        }

        this.buf.copy_within(this.strings_low..len, struct_end);
        let total = struct_end + strings_size;
        let hdr: [u32; 10] = [
            FDT_MAGIC,
            total as u32,
            struct_start as u32,
            struct_end as u32,
            HEADER_SIZE as u32,
            FDT_VERSION,
            FDT_LAST_COMP_VERSION,
            this.boot_cpuid,
            strings_size as u32,
            (struct_end - struct_start) as u32,
        ];
        for (i, v) in hdr.iter().enumerate() {
            this.buf[i * 4..i * 4 + 4].copy_from_slice(&be32(*v));
        }
        Ok(total)
    }
}

fn read_be32(buf: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}

/// Formats `v` as lowercase hex without leading zeros.
fn hex_u64(v: u64, out: &mut [u8; 17]) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    let mut started = false;
    for shift in (0..16).rev() {
        let d = ((v >> (shift * 4)) & 0xf) as usize;
        if d != 0 || started || shift == 0 {
            started = true;
            out[n] = DIGITS[d];
            n += 1;
        }
    }
    &out[..n]
}

#[cfg(test)]
mod tests;
