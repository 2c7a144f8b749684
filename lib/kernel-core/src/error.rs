//! Invocation errors with the detail seL4 returns in message registers.

use crate::cspace::LookupFault;
use axolotl_abi::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallError {
    InvalidArgument {
        arg: u32,
    },
    InvalidCapability {
        arg: u32,
    },
    IllegalOperation,
    RangeError {
        min: u64,
        max: u64,
    },
    AlignmentError,
    /// `source`: whether the failed lookup was of the source slot (seL4's
    /// `failedLookupWasSource`), for the message sent back.
    FailedLookup {
        source: bool,
        fault: LookupFault,
    },
    TruncatedMessage,
    DeleteFirst,
    RevokeFirst,
    NotEnoughMemory {
        available: u64,
    },
}

impl SyscallError {
    pub fn error(&self) -> Error {
        match self {
            SyscallError::InvalidArgument { .. } => Error::InvalidArgument,
            SyscallError::InvalidCapability { .. } => Error::InvalidCapability,
            SyscallError::IllegalOperation => Error::IllegalOperation,
            SyscallError::RangeError { .. } => Error::RangeError,
            SyscallError::AlignmentError => Error::AlignmentError,
            SyscallError::FailedLookup { .. } => Error::FailedLookup,
            SyscallError::TruncatedMessage => Error::TruncatedMessage,
            SyscallError::DeleteFirst => Error::DeleteFirst,
            SyscallError::RevokeFirst => Error::RevokeFirst,
            SyscallError::NotEnoughMemory { .. } => Error::NotEnoughMemory,
        }
    }

    /// The words seL4 puts in the message registers after the error code; returns how many.
    pub fn detail_words(&self, out: &mut [u64; 5]) -> usize {
        match *self {
            SyscallError::InvalidArgument { arg } | SyscallError::InvalidCapability { arg } => {
                out[0] = arg as u64;
                1
            }
            SyscallError::RangeError { min, max } => {
                out[0] = min;
                out[1] = max;
                2
            }
            SyscallError::FailedLookup { source, fault } => {
                out[0] = source as u64;
                let mut f = [0; 4];
                let n = fault.words(&mut f);
                out[1..1 + n].copy_from_slice(&f[..n]);
                1 + n
            }
            SyscallError::NotEnoughMemory { available } => {
                out[0] = available;
                1
            }
            _ => 0,
        }
    }
}

impl From<SyscallError> for Error {
    fn from(e: SyscallError) -> Error {
        e.error()
    }
}
