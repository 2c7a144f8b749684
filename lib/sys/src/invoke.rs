//! Performing an encoded invocation: a `Call` on the object's cap, with the words beyond MR3
//! and the extra caps in the IPC buffer, and decoding the kernel's reply.

use crate::encode::{Encoded, MAX_INVOCATION_WORDS};
use crate::syscall::{Msg, call};
use crate::{ipc, syscall};
use axolotl_abi::{CPtr, Error, MSG_REGISTERS_IN_CPU, MessageInfo};
use core::fmt;

/// Detail words seL4 returns with an error: at most 5 (a failed lookup's source flag and
/// lookup failure).
pub const MAX_DETAIL_WORDS: usize = 5;

/// An invocation's failure: the kernel's code and its detail words (argument number, range
/// min/max, lookup failure, bytes available), as many as the reply's length says.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InvocationError {
    pub error: Error,
    pub detail: [u64; MAX_DETAIL_WORDS],
    pub len: usize,
    /// The raw label when the kernel answered with a code outside `Error` (then `error` is
    /// `IllegalOperation`); 0 otherwise.
    pub unknown_code: u64,
}

impl InvocationError {
    pub fn details(&self) -> &[u64] {
        &self.detail[..self.len]
    }
}

impl fmt::Debug for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.error.name(), self.details())?;
        if self.unknown_code != 0 {
            write!(f, " (unknown code {})", self.unknown_code)?;
        }
        Ok(())
    }
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The words an invocation returned on success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub words: [u64; MAX_INVOCATION_WORDS],
    pub len: usize,
}

impl Reply {
    pub fn words(&self) -> &[u64] {
        &self.words[..self.len]
    }
    /// Word `i`, or 0 when the kernel returned fewer.
    pub fn word(&self, i: usize) -> u64 {
        self.words().get(i).copied().unwrap_or(0)
    }
}

/// Decodes a reply tag and its words (pure: the host tests use it).
pub fn decode_reply(info: MessageInfo, words: &[u64]) -> Result<Reply, InvocationError> {
    let n = (info.length() as usize).min(words.len());
    match Error::from_code(info.label()) {
        Some(Ok(())) => {
            let mut r = Reply {
                words: [0; MAX_INVOCATION_WORDS],
                len: n.min(MAX_INVOCATION_WORDS),
            };
            r.words[..r.len].copy_from_slice(&words[..r.len]);
            Ok(r)
        }
        code => {
            let mut e = InvocationError {
                error: Error::IllegalOperation,
                detail: [0; MAX_DETAIL_WORDS],
                len: n.min(MAX_DETAIL_WORDS),
                unknown_code: 0,
            };
            match code {
                Some(Err(err)) => e.error = err,
                _ => e.unknown_code = info.label(),
            }
            e.detail[..e.len].copy_from_slice(&words[..e.len]);
            Err(e)
        }
    }
}

/// Invokes the object `cap` names.
#[inline]
pub fn invoke<const N: usize>(cap: CPtr, e: &Encoded<N>) -> Result<Reply, InvocationError> {
    let m = succeeded(send_encoded(cap, e))?;
    let n = (m.info.length() as usize).min(MAX_INVOCATION_WORDS);
    let mut r = Reply {
        words: [0; MAX_INVOCATION_WORDS],
        len: n,
    };
    r.words[..MSG_REGISTERS_IN_CPU].copy_from_slice(&m.mrs);
    for i in MSG_REGISTERS_IN_CPU..n {
        r.words[i] = ipc::get_mr(i);
    }
    Ok(r)
}

/// The reply to an invocation already sent: its message if it succeeded, else the failure.
#[inline]
fn succeeded(m: Msg) -> Result<Msg, InvocationError> {
    if m.info.label() != 0 {
        return Err(error_of(m));
    }
    Ok(m)
}

/// Invokes the object `cap` names, for a method that returns one word (0 if the kernel
/// returned none).
#[inline]
pub fn invoke_word<const N: usize>(cap: CPtr, e: &Encoded<N>) -> Result<u64, InvocationError> {
    let m = succeeded(send_encoded(cap, e))?;
    Ok(if m.info.length() > 0 { m.mrs[0] } else { 0 })
}

/// Invokes the object `cap` names, for a method that returns no words: only a failure is
/// decoded.
#[inline]
pub fn invoke_unit<const N: usize>(cap: CPtr, e: &Encoded<N>) -> Result<(), InvocationError> {
    succeeded(send_encoded(cap, e)).map(|_| ())
}

/// The failure a reply reports: its detail words are in the registers and, the fifth, in
/// the IPC buffer.
#[cold]
#[inline(never)]
fn error_of(m: Msg) -> InvocationError {
    let mut words = [0u64; MAX_DETAIL_WORDS];
    words[..MSG_REGISTERS_IN_CPU].copy_from_slice(&m.mrs);
    if m.info.length() as usize > MSG_REGISTERS_IN_CPU {
        words[MSG_REGISTERS_IN_CPU] = ipc::get_mr(MSG_REGISTERS_IN_CPU);
    }
    match decode_reply(m.info, &words) {
        Err(e) => e,
        // A label of 0 is success; only non-zero labels come here.
        Ok(_) => unreachable!("error_of on a successful reply"),
    }
}

/// Puts what does not travel in registers — extra caps and words beyond MR3 — into the
/// IPC buffer, and returns MR0..3 for the registers.
#[inline]
fn stage<const N: usize>(e: &Encoded<N>) -> [u64; MSG_REGISTERS_IN_CPU] {
    if e.ncaps > 0 || e.len > MSG_REGISTERS_IN_CPU {
        ipc::stage(&e.caps[..e.ncaps], &e.mrs[..e.len]);
    }
    core::array::from_fn(|i| if i < e.len { e.mrs[i] } else { 0 })
}

/// The `Call` of an invocation, without decoding (for tests of the raw reply).
#[inline]
pub fn send_encoded<const N: usize>(cap: CPtr, e: &Encoded<N>) -> Msg {
    call(cap, e.info(), stage(e))
}

/// Like [`invoke`] but with `Send`: the kernel performs it and no reply comes back.
pub fn invoke_no_reply<const N: usize>(cap: CPtr, e: &Encoded<N>) {
    syscall::send(cap, e.info(), stage(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_keeps_the_returned_words() {
        let r = decode_reply(MessageInfo::new(0, 0, 0, 1), &[0x4000_0000, 9, 9, 9]).unwrap();
        assert_eq!(r.words(), &[0x4000_0000]);
        assert_eq!(r.word(3), 0);
    }

    #[test]
    fn errors_keep_code_and_details() {
        let e = decode_reply(MessageInfo::new(4, 0, 0, 2), &[1, 24, 7, 7]).unwrap_err();
        assert_eq!((e.error, e.details()), (Error::RangeError, &[1, 24][..]));
        let e = decode_reply(MessageInfo::new(6, 0, 0, 5), &[1, 2, 3, 4, 5]).unwrap_err();
        assert_eq!(
            (e.error, e.details()),
            (Error::FailedLookup, &[1, 2, 3, 4, 5][..])
        );
        let e = decode_reply(MessageInfo::new(8, 0, 0, 0), &[0; 4]).unwrap_err();
        assert_eq!((e.error, e.len), (Error::DeleteFirst, 0));
    }

    #[test]
    fn unknown_codes_are_not_success() {
        let e = decode_reply(MessageInfo::new(99, 0, 0, 0), &[0; 4]).unwrap_err();
        assert_eq!(e.unknown_code, 99);
    }
}
