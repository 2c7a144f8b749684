//! U-Boot's legacy image format (`mkimage -A arm64 -O linux -C none`): a 64-byte big-endian
//! header with CRC-32s of itself and of the data. The ODROIDs' cards carry two: the boot
//! script (`-T script`, what distro boot `source`s) and the kernel (`-T kernel`, which
//! `bootm` copies to its load address and enters with U-Boot's MMU and caches off).

pub const MAGIC: u32 = 0x2705_1956;
pub const HEADER: usize = 64;
/// `IH_OS_LINUX`: `bootm` enters it the way it enters Linux (caches off, x0 = the DTB).
pub const OS_LINUX: u8 = 5;
pub const ARCH_ARM64: u8 = 22;
pub const TYPE_KERNEL: u8 = 2;
pub const TYPE_SCRIPT: u8 = 6;
pub const COMP_NONE: u8 = 0;

/// A decoded, checked header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub size: u32,
    pub load: u32,
    pub entry: u32,
    pub os: u8,
    pub arch: u8,
    pub kind: u8,
    pub comp: u8,
    pub name: String,
}

/// The image of `data`: header then data. The time stamp is 0 (the same inputs make the same
/// bytes, as `mkimage` with `SOURCE_DATE_EPOCH=0`). `name` is cut to 31 bytes.
pub fn encode(kind: u8, load: u32, entry: u32, name: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let size = u32::try_from(data.len()).map_err(|_| "image data beyond 4 GiB")?;
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    // [4..8] header CRC, [8..12] time: filled / left 0.
    h[12..16].copy_from_slice(&size.to_be_bytes());
    h[16..20].copy_from_slice(&load.to_be_bytes());
    h[20..24].copy_from_slice(&entry.to_be_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
    h[28] = OS_LINUX;
    h[29] = ARCH_ARM64;
    h[30] = kind;
    h[31] = COMP_NONE;
    let n = name.as_bytes();
    let n = &n[..n.len().min(31)];
    h[32..32 + n.len()].copy_from_slice(n);
    let hcrc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&hcrc.to_be_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    Ok(out)
}

/// A boot script as `mkimage -T script` makes it: the data is a table of one length and a
/// zero terminator (U-Boot's multi-file layout), then the script's text.
pub fn script(name: &str, text: &str) -> Result<Vec<u8>, String> {
    let len = u32::try_from(text.len()).map_err(|_| "script too long")?;
    let mut data = len.to_be_bytes().to_vec();
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(text.as_bytes());
    encode(TYPE_SCRIPT, 0, 0, name, &data)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The header of `image` and its data, every field checked as U-Boot checks it (magic, both
/// CRCs, the size against the bytes there are).
pub fn decode(image: &[u8]) -> Result<(Header, &[u8]), String> {
    if image.len() < HEADER {
        return Err(format!("{} bytes: no legacy image header", image.len()));
    }
    if be32(image, 0) != MAGIC {
        return Err(format!("bad magic {:#x}", be32(image, 0)));
    }
    let mut h = [0u8; HEADER];
    h.copy_from_slice(&image[..HEADER]);
    h[4..8].fill(0);
    if crc32fast::hash(&h) != be32(image, 4) {
        return Err("header CRC mismatch".into());
    }
    let size = be32(image, 12);
    let data = image
        .get(HEADER..HEADER.saturating_add(size as usize))
        .ok_or_else(|| format!("size {size} beyond the image's {} bytes", image.len()))?;
    if crc32fast::hash(data) != be32(image, 24) {
        return Err("data CRC mismatch".into());
    }
    let name = &image[32..64];
    let end = name.iter().position(|&b| b == 0).unwrap_or(32);
    Ok((
        Header {
            size,
            load: be32(image, 16),
            entry: be32(image, 20),
            os: image[28],
            arch: image[29],
            kind: image[30],
            comp: image[31],
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
        },
        data,
    ))
}

/// The text of a script image, checked: its type, the length table, the length.
pub fn script_text(image: &[u8]) -> Result<String, String> {
    let (h, data) = decode(image)?;
    if h.kind != TYPE_SCRIPT {
        return Err(format!("image type {} is not a script", h.kind));
    }
    if data.len() < 8 || be32(data, 4) != 0 {
        return Err("script without its one-entry length table".into());
    }
    let len = be32(data, 0) as usize;
    let text = data
        .get(8..8usize.saturating_add(len))
        .ok_or("script length beyond its data")?;
    String::from_utf8(text.to_vec()).map_err(|_| "script is not UTF-8".into())
}
