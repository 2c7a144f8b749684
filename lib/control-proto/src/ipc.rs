//! How control-pd's requests and the monitor's replies travel: a Call with label
//! [`CONTROL`](axolotl_abi::CONTROL) on control-pd's fault endpoint (the monitor's, badged
//! with control-pd's index, so a request cannot come in another PD's name). MR0 is the
//! message's byte count, the bytes lie from MR4 on (wholly in the IPC buffer, as the root
//! service's records do), each word's bytes little-endian. The reply has the same layout,
//! label 0.
//!
//! The bytes are the host's frame payload as it came ([`crate::unframe`]: version, request
//! id, a postcard [`Request`](crate::Request), the host's CRC) one way, and the monitor's
//! sealed reply ([`crate::seal`]: the same envelope around a [`Reply`](crate::Reply)) the
//! other: control-pd relays both without decoding or re-encoding them, so the CRCs are
//! end to end, host to monitor and back, and a fault in the relay is found at the far end
//! instead of acted on or shown (docs/control.md, "End to end").
//!
//! Decoding is the monitor's defence against a control-pd gone wrong: a count beyond the
//! message or the buffer, a CRC that does not hold, undecodable bytes or bytes left over
//! are errors, never a panic.

use crate::Error;
use axolotl_abi::MSG_MAX_LENGTH;

/// The word that holds the byte count.
pub const LEN_MR: usize = 0;
/// The first word of the bytes.
pub const BYTES_MR: usize = 4;
/// The most bytes a message carries.
pub const MAX_BYTES: usize = (MSG_MAX_LENGTH - BYTES_MR) * 8;

/// Puts `bytes` into `words` as this module lays them out: the message length in words,
/// `None` if they do not fit. control-pd and the monitor pass sealed payloads so (the
/// frame's, [`crate::seal`]), which neither re-encodes on the way.
pub fn encode_bytes(bytes: &[u8], words: &mut [u64]) -> Option<usize> {
    let n = bytes.len();
    let len = BYTES_MR + n.div_ceil(8);
    if n > MAX_BYTES || len > words.len() {
        return None;
    }
    words[LEN_MR] = n as u64;
    words[1..BYTES_MR].fill(0);
    for (w, chunk) in words[BYTES_MR..len].iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    Some(len)
}

/// The bytes of a message of `len` words, copied into `out` (of [`MAX_BYTES`]): how many.
/// A count beyond the message, the buffer or `out` is [`Error::Malformed`].
pub fn decode_bytes(len: usize, words: &[u64], out: &mut [u8]) -> Result<usize, Error> {
    let len = len.min(words.len());
    let n = *words
        .get(LEN_MR)
        .filter(|_| len > LEN_MR)
        .ok_or(Error::Malformed)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_BYTES.min(out.len()) && BYTES_MR + n.div_ceil(8) <= len)
        .ok_or(Error::Malformed)?;
    for (chunk, w) in out[..n].chunks_mut(8).zip(&words[BYTES_MR..len]) {
        chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_hostile_counts() {
        let mut words = [0u64; MSG_MAX_LENGTH];
        let bytes: std::vec::Vec<u8> = (0..=255u8).cycle().take(511).collect();
        let len = encode_bytes(&bytes, &mut words).unwrap();
        assert_eq!(len, BYTES_MR + 64);
        let mut out = [0u8; MAX_BYTES];
        assert_eq!(decode_bytes(len, &words, &mut out), Ok(511));
        assert_eq!(out[..511], bytes[..]);
        // More than the message's words hold, than `out` holds, than fits at all.
        assert_eq!(
            decode_bytes(len - 1, &words, &mut out),
            Err(Error::Malformed)
        );
        assert_eq!(
            decode_bytes(len, &words, &mut [0u8; 100]),
            Err(Error::Malformed)
        );
        words[LEN_MR] = u64::MAX;
        assert_eq!(decode_bytes(len, &words, &mut out), Err(Error::Malformed));
        words[LEN_MR] = (MAX_BYTES + 1) as u64;
        assert_eq!(
            decode_bytes(MSG_MAX_LENGTH, &words, &mut out),
            Err(Error::Malformed)
        );
        // No count word at all.
        assert_eq!(decode_bytes(0, &words, &mut out), Err(Error::Malformed));
        assert_eq!(decode_bytes(1, &[], &mut out), Err(Error::Malformed));
        assert_eq!(encode_bytes(&[0u8; MAX_BYTES + 1], &mut words), None);
        assert_eq!(encode_bytes(&bytes, &mut words[..10]), None);
        // Every count against every message length on arbitrary words: an answer, never a
        // panic, and never more bytes than the message's words hold.
        let mut w = [0x0101_0101_0101_0101u64; MSG_MAX_LENGTH];
        for n in 0..=MAX_BYTES as u64 + 8 {
            w[LEN_MR] = n;
            for len in 0..=MSG_MAX_LENGTH + 1 {
                if let Ok(got) = decode_bytes(len, &w, &mut out) {
                    assert_eq!(got as u64, n);
                    assert!(BYTES_MR + got.div_ceil(8) <= len);
                }
            }
        }
    }
}
