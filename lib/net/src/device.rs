//! What the net driver checks of its device before believing it: `virtio-drivers` trusts the
//! used ring's ids only as far as matching the token it is handed, and never checks a used
//! length against the buffer (`docs/network.md`). A [`Tokens`] table knows which descriptor
//! heads are with the device and for which of the driver's buffers.

/// A device claim the driver refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// A used id that names no chain the driver made available (never made available, or
    /// already used: an index that jumped reads stale or garbage slots).
    UnknownToken(u16),
    /// A used length beyond the buffer, or shorter than the virtio-net header.
    BadLength { token: u16, len: usize },
}

/// Descriptor heads (tokens, `< N`) with the device, each naming a driver buffer.
pub struct Tokens<const N: usize> {
    buffer: [Option<u16>; N],
    count: usize,
}

impl<const N: usize> Default for Tokens<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Tokens<N> {
    pub const fn new() -> Self {
        Self {
            buffer: [None; N],
            count: 0,
        }
    }

    /// Chains with the device.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Records that `token` (returned by the library) now holds `buffer`. `false`: the token
    /// is out of range or already taken (a library bug: the caller resets the device).
    pub fn insert(&mut self, token: u16, buffer: u16) -> bool {
        match self.buffer.get_mut(usize::from(token)) {
            Some(slot @ None) => {
                *slot = Some(buffer);
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// The buffer of a token the device claims to have used, before the library is asked
    /// to pop it: an unknown one is refused and nothing is popped.
    pub fn peek(&self, token: u16) -> Result<u16, DeviceError> {
        self.buffer
            .get(usize::from(token))
            .copied()
            .flatten()
            .ok_or(DeviceError::UnknownToken(token))
    }

    /// Retires `token` once popped.
    pub fn remove(&mut self, token: u16) -> Option<u16> {
        let b = self.buffer.get_mut(usize::from(token))?.take()?;
        self.count -= 1;
        Some(b)
    }

    /// Forgets every chain (the device was reset).
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

/// The frame length of a received chain: the device's used length `used` minus the
/// `header` bytes, checked against the `buffer` length, [`crate::MIN_FRAME`] and
/// [`crate::MAX_FRAME`].
pub fn rx_frame_len(
    token: u16,
    used: usize,
    header: usize,
    buffer: usize,
) -> Result<usize, DeviceError> {
    let bad = DeviceError::BadLength { token, len: used };
    if used > buffer {
        return Err(bad);
    }
    let frame = used.checked_sub(header).ok_or(bad)?;
    if !(crate::MIN_FRAME..=crate::MAX_FRAME).contains(&frame) {
        return Err(bad);
    }
    Ok(frame)
}
