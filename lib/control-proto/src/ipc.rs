//! How control-pd's requests and the monitor's replies travel: a Call with label
//! [`CONTROL`](axolotl_abi::CONTROL) on control-pd's fault endpoint (the monitor's, badged
//! with control-pd's index, so a request cannot come in another PD's name). MR0 is the
//! message's byte count, the `axolotl_control_proto` postcard bytes lie from MR4 on (wholly
//! in the IPC buffer, as the root service's records do), each word's bytes little-endian:
//! [`Request`](crate::Request) one way, [`Reply`](crate::Reply) the other.
//! The reply has the same layout, label 0.
//!
//! Decoding is the monitor's defence against a control-pd gone wrong: a count beyond the
//! message or the buffer, undecodable bytes or bytes left over are [`Error::Malformed`].

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
    let len = BYTES_MR + n.div_ceil(8);
    if len > words.len() {
        return None;
    }
    words[LEN_MR] = n as u64;
    words[1..BYTES_MR].fill(0);
    for (w, chunk) in words[BYTES_MR..len].iter_mut().zip(bytes[..n].chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    Some(len)
}

/// Decodes a message of `len` words (the message info's length) from `words`.
pub fn decode<T: DeserializeOwned>(len: usize, words: &[u64]) -> Result<T, Error> {
    let len = len.min(words.len());
    let n = *words
        .get(LEN_MR)
        .filter(|_| len > LEN_MR)
        .ok_or(Error::Malformed)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_BYTES && BYTES_MR + n.div_ceil(8) <= len)
        .ok_or(Error::Malformed)?;
    let mut bytes = [0u8; MAX_BYTES];
    for (chunk, w) in bytes[..n].chunks_mut(8).zip(&words[BYTES_MR..len]) {
        chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
    }
    match postcard::take_from_bytes::<T>(&bytes[..n]) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(Error::Malformed),
    }
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
}
