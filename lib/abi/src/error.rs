/// Result codes of an invocation, numbered as seL4 numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    InvalidArgument = 1,
    InvalidCapability = 2,
    IllegalOperation = 3,
    RangeError = 4,
    AlignmentError = 5,
    FailedLookup = 6,
    TruncatedMessage = 7,
    DeleteFirst = 8,
    RevokeFirst = 9,
    NotEnoughMemory = 10,
}

impl Error {
    pub const ALL: [Error; 10] = [
        Error::InvalidArgument,
        Error::InvalidCapability,
        Error::IllegalOperation,
        Error::RangeError,
        Error::AlignmentError,
        Error::FailedLookup,
        Error::TruncatedMessage,
        Error::DeleteFirst,
        Error::RevokeFirst,
        Error::NotEnoughMemory,
    ];

    /// Decodes a result word: 0 is success, anything unknown is `None`.
    pub fn from_code(code: u64) -> Option<Result<(), Error>> {
        if code == 0 {
            return Some(Ok(()));
        }
        Self::ALL
            .iter()
            .copied()
            .find(|e| *e as u64 == code)
            .map(Err)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Error::InvalidArgument => "invalid argument",
            Error::InvalidCapability => "invalid capability",
            Error::IllegalOperation => "illegal operation",
            Error::RangeError => "range error",
            Error::AlignmentError => "alignment error",
            Error::FailedLookup => "failed lookup",
            Error::TruncatedMessage => "truncated message",
            Error::DeleteFirst => "delete first",
            Error::RevokeFirst => "revoke first",
            Error::NotEnoughMemory => "not enough memory",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_zero_is_success() {
        assert_eq!(Error::from_code(0), Some(Ok(())));
        for e in Error::ALL {
            assert_eq!(Error::from_code(e as u64), Some(Err(e)));
        }
        assert_eq!(Error::from_code(11), None);
    }
}
