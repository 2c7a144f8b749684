//! Frames the virtio-net device completed into the receive buffers of a driver that died
//! before forwarding them: the driver's DMA region outlives it (an SDF memory region is not
//! reset by a restart), so the next incarnation finds them in the old receive queue, after
//! it has reset the device (which then writes nothing more) and before it reuses the region.
//!
//! The old incarnation leaves an [`RxRecord`] at a fixed place of the region: where its
//! receive queue and buffers were, and how many used elements it had taken (`forwarded`,
//! updated after each frame went on). Nothing in it is trusted: that incarnation may have
//! died of corruption, and the device writes the used ring. [`salvage_rx`] takes a used
//! element only if it names, through a descriptor the driver would have written, one of
//! the record's buffers, inside the region, at most once, with a length the buffer holds
//! and a frame of `MIN_FRAME..=MAX_FRAME` bytes; indices that jumped refuse everything.

use crate::device::rx_frame_len;

/// Words of the record (64 bytes).
pub const RECORD_WORDS: usize = 16;
/// The word the driver updates after each used element it took.
pub const FORWARDED_WORD: usize = 12;
const MAGIC: u32 = 0x5856_5852; // "RXVX"
const VERSION: u32 = 1;

/// virtq_desc flags.
const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;
const DESC_INDIRECT: u16 = 4;

/// Where a driver incarnation's receive queue and buffers are, in physical addresses (what
/// the device's descriptors hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRecord {
    pub queue_size: u16,
    /// The descriptor table.
    pub desc: u64,
    /// The used ring.
    pub used: u64,
    /// `queue_size` buffers of `buf_size` bytes from here.
    pub buffers: u64,
    pub buf_size: u32,
    /// Bytes of virtio-net header before each frame.
    pub header: u32,
}

/// Why nothing was salvaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No record (first start, or the last incarnation died before writing it).
    NoRecord,
    /// The record fails its check, or names a layout that cannot be.
    BadRecord,
    /// The used index is more than a queue ahead of what was forwarded.
    IndexJump { used: u16, forwarded: u16 },
}

/// What [`salvage_rx`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Salvaged {
    /// Frames handed on.
    pub frames: u32,
    /// Used elements refused (unknown id, a descriptor not naming a record buffer, a buffer
    /// named twice, an impossible length).
    pub refused: u32,
}

fn check(w: &[u32; RECORD_WORDS]) -> u32 {
    // Over the layout words only (not `forwarded`, which changes with every frame): a torn
    // or scribbled record fails it.
    w[..11]
        .iter()
        .fold(0x811c_9dc5u32, |h, x| (h ^ x).wrapping_mul(0x0100_0193))
}

impl RxRecord {
    /// The record as written into the region, `forwarded` = 0.
    pub fn to_words(&self) -> [u32; RECORD_WORDS] {
        let mut w = [0u32; RECORD_WORDS];
        w[0] = MAGIC;
        w[1] = VERSION;
        w[2] = u32::from(self.queue_size);
        w[3] = self.desc as u32;
        w[4] = (self.desc >> 32) as u32;
        w[5] = self.used as u32;
        w[6] = (self.used >> 32) as u32;
        w[7] = self.buffers as u32;
        w[8] = (self.buffers >> 32) as u32;
        w[9] = self.buf_size;
        w[10] = self.header;
        w[11] = check(&w);
        w
    }

    /// The record in `w` and its `forwarded` count.
    pub fn from_words(w: &[u32; RECORD_WORDS]) -> Result<(Self, u16), Refusal> {
        if w[0] != MAGIC {
            return Err(Refusal::NoRecord);
        }
        if w[1] != VERSION || w[11] != check(w) || w[2] > u32::from(u16::MAX) {
            return Err(Refusal::BadRecord);
        }
        let r = RxRecord {
            queue_size: w[2] as u16,
            desc: u64::from(w[3]) | u64::from(w[4]) << 32,
            used: u64::from(w[5]) | u64::from(w[6]) << 32,
            buffers: u64::from(w[7]) | u64::from(w[8]) << 32,
            buf_size: w[9],
            header: w[10],
        };
        Ok((r, w[FORWARDED_WORD] as u16))
    }
}

/// `len` bytes at physical `addr` as an offset into the region, if wholly inside it.
fn offset(region_paddr: u64, region_len: usize, addr: u64, len: usize) -> Option<usize> {
    let off = usize::try_from(addr.checked_sub(region_paddr)?).ok()?;
    (off.checked_add(len)? <= region_len).then_some(off)
}

fn u16_at(m: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([m[at], m[at + 1]])
}
fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]])
}
fn u64_at(m: &[u8], at: usize) -> u64 {
    u64::from(u32_at(m, at)) | u64::from(u32_at(m, at + 4)) << 32
}

/// Hands `on_frame` every frame the device completed after the last one the dead driver
/// forwarded, oldest first, each checked as the module says. `region` is the whole DMA
/// region at physical `region_paddr`, `record` the words found at the record's place; the
/// device must be reset (writing nothing) for the call's duration.
pub fn salvage_rx(
    record: &[u32; RECORD_WORDS],
    region: &[u8],
    region_paddr: u64,
    mut on_frame: impl FnMut(&[u8]),
) -> Result<Salvaged, Refusal> {
    let (r, forwarded) = RxRecord::from_words(record)?;
    let qs = usize::from(r.queue_size);
    let buf_size = r.buf_size as usize;
    let header = r.header as usize;
    let len = region.len();
    let bad = Refusal::BadRecord;
    if qs == 0 || !qs.is_power_of_two() || qs > 1024 || buf_size == 0 || header >= buf_size {
        return Err(bad);
    }
    let desc = offset(region_paddr, len, r.desc, 16 * qs).ok_or(bad)?;
    let used = offset(region_paddr, len, r.used, 4 + 8 * qs).ok_or(bad)?;
    offset(
        region_paddr,
        len,
        r.buffers,
        qs.checked_mul(buf_size).ok_or(bad)?,
    )
    .ok_or(bad)?;
    let used_idx = u16_at(region, used + 2);
    let pending = used_idx.wrapping_sub(forwarded);
    if usize::from(pending) > qs {
        return Err(Refusal::IndexJump {
            used: used_idx,
            forwarded,
        });
    }
    let mut out = Salvaged::default();
    let mut seen = [false; 1024];
    for k in 0..pending {
        let slot = usize::from(forwarded.wrapping_add(k)) % qs;
        let id = u32_at(region, used + 4 + 8 * slot) as usize;
        let used_len = u32_at(region, used + 8 + 8 * slot) as usize;
        let frame = (|| {
            if id >= qs {
                return None;
            }
            let d = desc + 16 * id;
            let (addr, dlen, flags) = (
                u64_at(region, d),
                u32_at(region, d + 8) as usize,
                u16_at(region, d + 12),
            );
            // One device-writable buffer, no chain: what the driver posts.
            if flags & (DESC_NEXT | DESC_INDIRECT) != 0 || flags & DESC_WRITE == 0 {
                return None;
            }
            let rel = addr.checked_sub(r.buffers)?;
            let b = usize::try_from(rel / u64::from(r.buf_size)).ok()?;
            if rel % u64::from(r.buf_size) != 0 || b >= qs || dlen > buf_size || seen[b] {
                return None;
            }
            seen[b] = true;
            let n = rx_frame_len(id as u16, used_len, header, dlen).ok()?;
            let at = offset(region_paddr, len, addr, dlen)?;
            Some(&region[at + header..at + header + n])
        })();
        match frame {
            Some(f) => {
                out.frames += 1;
                on_frame(f);
            }
            None => out.refused += 1,
        }
    }
    Ok(out)
}
