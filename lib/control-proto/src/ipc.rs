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
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The word that holds the byte count.
pub const LEN_MR: usize = 0;
/// The first word of the bytes.
pub const BYTES_MR: usize = 4;
/// The most bytes a message carries.
pub const MAX_BYTES: usize = (MSG_MAX_LENGTH - BYTES_MR) * 8;

/// Encodes `msg` into `words` (a message's words): the message length in words, `None` if it
/// does not fit.
pub fn encode<T: Serialize>(msg: &T, words: &mut [u64]) -> Option<usize> {
    let mut bytes = [0u8; MAX_BYTES];
    let n = postcard::to_slice(msg, &mut bytes).ok()?.len();
    encode_bytes(&bytes[..n], words)
}

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

/// Decodes a message of `len` words (the message info's length) from `words`.
pub fn decode<T: DeserializeOwned>(len: usize, words: &[u64]) -> Result<T, Error> {
    let mut bytes = [0u8; MAX_BYTES];
    let n = decode_bytes(len, words, &mut bytes)?;
    match postcard::take_from_bytes::<T>(&bytes[..n]) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(Error::Malformed),
    }
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
    use crate::{FaultKind, Reply, Request, name};

    use super::*;

    #[test]
    fn round_trip_and_hostile_words() {
        let mut words = [0u64; MSG_MAX_LENGTH];
        let req = Request::Inject {
            pd: name("serial_driver").unwrap(),
            kind: FaultKind::Crash,
            at: None,
        };
        let len = encode(&req, &mut words).unwrap();
        assert_eq!(decode::<Request>(len, &words), Ok(req.clone()));
        // A count beyond the message, or the buffer, or none at all.
        assert_eq!(decode::<Request>(len - 1, &words), Err(Error::Malformed));
        assert_eq!(decode::<Request>(0, &words), Err(Error::Malformed));
        let mut w = words;
        w[LEN_MR] = u64::MAX;
        assert_eq!(decode::<Request>(MSG_MAX_LENGTH, &w), Err(Error::Malformed));
        w[LEN_MR] = (MAX_BYTES + 1) as u64;
        assert_eq!(decode::<Request>(MSG_MAX_LENGTH, &w), Err(Error::Malformed));
        // Bytes left over.
        let mut w = words;
        w[LEN_MR] += 1;
        assert_eq!(decode::<Request>(len + 1, &w), Err(Error::Malformed));
        // Garbage.
        let w = [u64::MAX; MSG_MAX_LENGTH];
        assert_eq!(decode::<Reply>(MSG_MAX_LENGTH, &w), Err(Error::Malformed));
        // Every count on arbitrary words: an answer, never a panic.
        let mut w = [0x0101_0101_0101_0101u64; MSG_MAX_LENGTH];
        for n in 0..=MAX_BYTES as u64 + 8 {
            w[LEN_MR] = n;
            let _ = decode::<Request>(MSG_MAX_LENGTH, &w);
        }
    }

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
        assert_eq!(encode_bytes(&[0u8; MAX_BYTES + 1], &mut words), None);
        assert_eq!(encode_bytes(&bytes, &mut words[..10]), None);
    }
}
