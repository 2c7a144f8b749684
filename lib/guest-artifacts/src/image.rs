//! Getting a raw arm64 `Image` out of Debian's `vmlinuz`.
//!
//! Bookworm's `vmlinuz-*-arm64` is already the raw Image (an EFI-stub PE whose
//! header carries the arm64 magic at 0x38; CONFIG_EFI_ZBOOT is off). Later kernels
//! may ship a gzip file or an EFI zboot image, so those are recognised too and
//! inflated with the system's `gzip` (always present on Debian) rather than a
//! crate dependency.

use std::io::Write;
use std::process::{Command, Stdio};

/// What a `vmlinuz` file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// Raw arm64 Image (magic `ARM\x64` at 0x38).
    Raw,
    /// Plain gzip stream.
    Gzip,
    /// EFI zboot: PE "MZ" + "zimg" at 4, payload offset/size at 8/12, compression
    /// name at 24.
    Zboot,
    Unknown,
}

/// Looks at the first bytes only.
pub fn detect_format(data: &[u8]) -> ImageFormat {
    if data.len() >= 64
        && u32::from_le_bytes(data[0x38..0x3c].try_into().unwrap())
            == axolotl_linux_boot::ARM64_IMAGE_MAGIC
    {
        ImageFormat::Raw
    } else if data.starts_with(&[0x1f, 0x8b]) {
        ImageFormat::Gzip
    } else if data.len() >= 32 && &data[0..2] == b"MZ" && &data[4..8] == b"zimg" {
        ImageFormat::Zboot
    } else {
        ImageFormat::Unknown
    }
}

/// Returns the raw Image inside `data`, whatever of the above it is.
pub fn extract_image(data: &[u8]) -> Result<Vec<u8>, String> {
    let raw = match detect_format(data) {
        ImageFormat::Raw => return Ok(data.to_vec()),
        ImageFormat::Gzip => gunzip(data)?,
        ImageFormat::Zboot => {
            let le32 = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
            let (off, size) = (le32(8), le32(12));
            let comp = &data[24..32];
            let comp =
                String::from_utf8_lossy(&comp[..comp.iter().position(|&b| b == 0).unwrap_or(8)])
                    .into_owned();
            let payload = off
                .checked_add(size)
                .and_then(|end| data.get(off..end))
                .ok_or_else(|| format!("zboot payload {off:#x}+{size:#x} beyond file"))?;
            if comp != "gzip" {
                return Err(format!(
                    "zboot compression {comp:?} not supported (only gzip)"
                ));
            }
            gunzip(payload)?
        }
        ImageFormat::Unknown => return Err("neither raw arm64 Image, gzip nor EFI zboot".into()),
    };
    if detect_format(&raw) != ImageFormat::Raw {
        return Err("decompressed data has no arm64 Image header".into());
    }
    Ok(raw)
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("gzip")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running gzip: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    // Feed from a thread so a large output can't deadlock against our write.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = feeder.join();
    // gzip exits 2 on "trailing garbage ignored", which zboot padding can cause.
    if out.status.code() == Some(1) || out.stdout.is_empty() {
        return Err(format!(
            "gzip -dc failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_image(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[..2].copy_from_slice(b"MZ");
        v[0x10..0x18].copy_from_slice(&(len as u64).to_le_bytes());
        v[0x38..0x3c].copy_from_slice(&axolotl_linux_boot::ARM64_IMAGE_MAGIC.to_le_bytes());
        for (i, b) in v[64..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        v
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let t = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        t.join().unwrap().unwrap();
        out.stdout
    }

    #[test]
    fn raw_is_passed_through() {
        let img = fake_image(4096);
        assert_eq!(detect_format(&img), ImageFormat::Raw);
        assert_eq!(extract_image(&img).unwrap(), img);
    }

    #[test]
    fn gzip_is_inflated() {
        let img = fake_image(300_000);
        let gz = gzip(&img);
        assert_eq!(detect_format(&gz), ImageFormat::Gzip);
        assert_eq!(extract_image(&gz).unwrap(), img);
    }

    #[test]
    fn zboot_payload_is_inflated() {
        let img = fake_image(100_000);
        let gz = gzip(&img);
        let mut z = vec![0u8; 512];
        z[..2].copy_from_slice(b"MZ");
        z[4..8].copy_from_slice(b"zimg");
        z[8..12].copy_from_slice(&512u32.to_le_bytes());
        z[12..16].copy_from_slice(&(gz.len() as u32).to_le_bytes());
        z[24..28].copy_from_slice(b"gzip");
        z.extend_from_slice(&gz);
        z.extend_from_slice(&[0; 64]);
        assert_eq!(detect_format(&z), ImageFormat::Zboot);
        assert_eq!(extract_image(&z).unwrap(), img);
        z[24..28].copy_from_slice(b"zstd");
        assert!(extract_image(&z).unwrap_err().contains("zstd"));
        z[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(extract_image(&z).unwrap_err().contains("beyond"));
    }

    #[test]
    fn junk_is_refused() {
        assert_eq!(detect_format(b"hello"), ImageFormat::Unknown);
        assert!(extract_image(b"hello").is_err());
        assert!(extract_image(&gzip(b"not a kernel")).is_err());
    }
}
