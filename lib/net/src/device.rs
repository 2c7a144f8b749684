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

/// virtio's `vring_need_event` (§2.7.10, EVENT_IDX): whether a driver that moved its
/// available index from `old` to `new` must notify a device that asked to be told once the
/// index passes `event` (`avail_event`). All three are free-running and wrap: compared as
/// distances from `new`, never as plain numbers. (`virtio-drivers` 0.13's `should_notify`
/// compares `new >= event + 1` as plain `u16`s: never a kick too few for its one-by-one
/// additions, but a kick on nearly every addition while the device's `event` trails, which
/// is what the device asked not to get.)
pub fn vring_need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod need_event_tests {
    use super::vring_need_event;

    #[test]
    fn kicks_exactly_when_the_index_passes_the_event() {
        // One addition: a kick only if `event` is the index it passed.
        assert!(vring_need_event(5, 6, 5));
        assert!(
            !vring_need_event(4, 6, 5),
            "the device asked earlier: it looks anyway"
        );
        assert!(!vring_need_event(9, 6, 5), "the device wants telling later");
        // Several additions since the last decision: any event among them.
        assert!(vring_need_event(3, 8, 2));
        assert!(!vring_need_event(8, 8, 2));
    }

    #[test]
    fn wraps_as_virtio_does() {
        assert!(vring_need_event(u16::MAX, 0, u16::MAX));
        assert!(vring_need_event(u16::MAX - 1, 2, u16::MAX - 2));
        // The index wrapped, the device's event did not pass yet: plain `new >= event + 1`
        // says no here too, but says yes below, where the event trails far behind.
        assert!(!vring_need_event(u16::MAX - 3, 1, 0));
        assert!(
            !vring_need_event(100, 120, 119),
            "a trailing event is no request"
        );
    }
}
