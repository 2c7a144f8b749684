//! The system pack: the encoded plan and every program image, as one blob the root task
//! carries in its read-only data (as Microkit's tool appends them to its monitor). The images
//! stay there untouched for the life of the system: they are the pristine copies a restart
//! loads from.
//!
//! ```text
//! 0   magic "AXOLPACK"
//! 8   version u32, image count u32
//! 16  plan offset u64, plan length u64
//! 32  image table: per image 24 bytes: data offset u64, data length u64,
//!                                      name offset u32, name length u32
//!     then names, plan and images, each starting 16-byte aligned
//! ```
//! All little-endian; every offset is from the start of the pack and checked on parse.

pub const MAGIC: [u8; 8] = *b"AXOLPACK";
pub const VERSION: u32 = 1;
const HEADER: usize = 32;
const ENTRY: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackError {
    /// Shorter than its header or table, or an offset/length points outside it.
    Truncated,
    BadMagic,
    Version(u32),
    /// An image name is not UTF-8.
    BadName,
}

impl core::fmt::Display for PackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PackError::Truncated => f.write_str("pack truncated or offset out of range"),
            PackError::BadMagic => f.write_str("not a system pack (bad magic)"),
            PackError::Version(v) => write!(f, "pack version {v}, expected {VERSION}"),
            PackError::BadName => f.write_str("image name is not UTF-8"),
        }
    }
}

/// A parsed pack borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Pack<'a> {
    bytes: &'a [u8],
    count: usize,
    plan: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, PackError> {
    let s = b.get(at..at + 4).ok_or(PackError::Truncated)?;
    Ok(u32::from_le_bytes(s.try_into().unwrap()))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, PackError> {
    let s = b.get(at..at + 8).ok_or(PackError::Truncated)?;
    Ok(u64::from_le_bytes(s.try_into().unwrap()))
}

fn slice(b: &[u8], offset: u64, len: u64) -> Result<&[u8], PackError> {
    let start = usize::try_from(offset).map_err(|_| PackError::Truncated)?;
    let len = usize::try_from(len).map_err(|_| PackError::Truncated)?;
    b.get(start..start.checked_add(len).ok_or(PackError::Truncated)?)
        .ok_or(PackError::Truncated)
}

impl<'a> Pack<'a> {
    /// Checks the header and every table entry, so later lookups cannot fail on bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Pack<'a>, PackError> {
        if bytes.get(..8).ok_or(PackError::Truncated)? != MAGIC {
            return Err(PackError::BadMagic);
        }
        let version = u32_at(bytes, 8)?;
        if version != VERSION {
            return Err(PackError::Version(version));
        }
        let count = u32_at(bytes, 12)? as usize;
        let plan = slice(bytes, u64_at(bytes, 16)?, u64_at(bytes, 24)?)?;
        let pack = Pack { bytes, count, plan };
        let table_end = count
            .checked_mul(ENTRY)
            .and_then(|t| t.checked_add(HEADER))
            .ok_or(PackError::Truncated)?;
        if table_end > bytes.len() {
            return Err(PackError::Truncated);
        }
        for i in 0..count {
            pack.entry(i)?;
        }
        Ok(pack)
    }

    fn entry(&self, i: usize) -> Result<(&'a str, &'a [u8]), PackError> {
        let at = HEADER + i * ENTRY;
        let data = slice(
            self.bytes,
            u64_at(self.bytes, at)?,
            u64_at(self.bytes, at + 8)?,
        )?;
        let name = slice(
            self.bytes,
            u32_at(self.bytes, at + 16)? as u64,
            u32_at(self.bytes, at + 20)? as u64,
        )?;
        let name = core::str::from_utf8(name).map_err(|_| PackError::BadName)?;
        Ok((name, data))
    }

    /// The postcard-encoded [`crate::BootPlan`].
    pub fn plan(&self) -> &'a [u8] {
        self.plan
    }

    /// The images as `(name, bytes)`, in pack order.
    pub fn images(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        (0..self.count).filter_map(|i| self.entry(i).ok())
    }

    /// The bytes region `region` starts with (`Region::prefill`), packed under
    /// [`prefill_name`].
    pub fn prefill(&self, region: &str) -> Option<&'a [u8]> {
        self.images()
            .find(|(n, _)| n.strip_prefix(PREFILL_PREFIX) == Some(region))
            .map(|(_, d)| d)
    }

    /// The image the plan calls `name` (`Image::name`).
    pub fn image(&self, name: &str) -> Option<&'a [u8]> {
        self.images().find(|(n, _)| *n == name).map(|(_, d)| d)
    }
}

/// Prefill entries are named after their region behind a NUL, which no program image path
/// (an XML attribute) can contain.
pub const PREFILL_PREFIX: &str = "\0prefill/";

/// The pack entry name of region `region`'s prefill bytes.
#[cfg(feature = "std")]
pub fn prefill_name(region: &str) -> std::string::String {
    std::format!("{PREFILL_PREFIX}{region}")
}

/// Builds a pack (host side).
#[cfg(feature = "std")]
pub fn write(plan: &[u8], images: &[(&str, &[u8])]) -> std::vec::Vec<u8> {
    use std::vec::Vec;
    fn align(v: &mut Vec<u8>) {
        while !v.len().is_multiple_of(16) {
            v.push(0);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(images.len() as u32).to_le_bytes());
    out.resize(HEADER + images.len() * ENTRY, 0);
    align(&mut out);
    let mut names = Vec::new();
    for (name, _) in images {
        names.push((out.len() as u32, name.len() as u32));
        out.extend_from_slice(name.as_bytes());
    }
    align(&mut out);
    let plan_at = out.len() as u64;
    out.extend_from_slice(plan);
    out[16..24].copy_from_slice(&plan_at.to_le_bytes());
    out[24..32].copy_from_slice(&(plan.len() as u64).to_le_bytes());
    for (i, (_, data)) in images.iter().enumerate() {
        align(&mut out);
        let at = HEADER + i * ENTRY;
        let data_at = out.len() as u64;
        out.extend_from_slice(data);
        out[at..at + 8].copy_from_slice(&data_at.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        out[at + 16..at + 20].copy_from_slice(&names[i].0.to_le_bytes());
        out[at + 20..at + 24].copy_from_slice(&names[i].1.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn round_trip() {
        let p = write(b"plan!", &[("a.elf", b"AAAA"), ("b.elf", b"")]);
        let pack = Pack::parse(&p).unwrap();
        assert_eq!(pack.plan(), b"plan!");
        assert_eq!(pack.image("a.elf"), Some(&b"AAAA"[..]));
        assert_eq!(pack.image("b.elf"), Some(&b""[..]));
        assert_eq!(pack.image("c.elf"), None);
        assert_eq!(pack.images().count(), 2);
    }

    #[test]
    fn prefill_bytes_are_found_by_region_never_as_an_image() {
        let name = prefill_name("greeting");
        let p = write(b"plan", &[("greeting", b"image"), (&name, b"hello")]);
        let pack = Pack::parse(&p).unwrap();
        assert_eq!(pack.prefill("greeting"), Some(&b"hello"[..]));
        assert_eq!(pack.image("greeting"), Some(&b"image"[..]));
        assert_eq!(pack.prefill("other"), None);
    }

    #[test]
    fn rejects_bad_headers() {
        let p = write(b"x", &[("a", b"1")]);
        assert_eq!(Pack::parse(&p[..4]).unwrap_err(), PackError::Truncated);
        let mut bad = p.clone();
        bad[0] = b'X';
        assert_eq!(Pack::parse(&bad).unwrap_err(), PackError::BadMagic);
        let mut bad = p.clone();
        bad[8] = 9;
        assert_eq!(Pack::parse(&bad).unwrap_err(), PackError::Version(9));
        let mut bad = p.clone();
        bad[12] = 200; // more images than the table holds
        assert_eq!(Pack::parse(&bad).unwrap_err(), PackError::Truncated);
    }

    #[test]
    fn every_corrupted_byte_is_rejected_or_stays_in_bounds() {
        let p = write(b"plan", &[("one", b"111"), ("two", b"2222")]);
        for i in 0..p.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut c = p.clone();
                c[i] = v;
                if let Ok(pack) = Pack::parse(&c) {
                    // Whatever parses must lie inside the blob.
                    let _ = pack.plan().len();
                    for (n, d) in pack.images() {
                        let _ = (n.len(), d.len());
                    }
                }
            }
        }
    }
}
