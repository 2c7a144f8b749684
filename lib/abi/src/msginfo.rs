/// The message tag: `label` (52 bits) | `caps_unwrapped` (3) | `extra_caps` (2) | `length` (7),
/// the layout seL4 uses on 64-bit platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct MessageInfo(u64);

impl MessageInfo {
    pub const LABEL_BITS: u32 = 52;

    /// Builds a tag; fields wider than their slot are truncated, as the kernel would see them.
    pub const fn new(label: u64, caps_unwrapped: u64, extra_caps: u64, length: u64) -> Self {
        Self(
            (label & ((1 << Self::LABEL_BITS) - 1)) << 12
                | (caps_unwrapped & 0x7) << 9
                | (extra_caps & 0x3) << 7
                | (length & 0x7f),
        )
    }
    pub const fn from_word(w: u64) -> Self {
        Self(w)
    }
    pub const fn word(self) -> u64 {
        self.0
    }
    pub const fn label(self) -> u64 {
        self.0 >> 12
    }
    pub const fn caps_unwrapped(self) -> u64 {
        (self.0 >> 9) & 0x7
    }
    pub const fn extra_caps(self) -> u64 {
        (self.0 >> 7) & 0x3
    }
    pub const fn length(self) -> u64 {
        self.0 & 0x7f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_without_bleeding() {
        let m = MessageInfo::new(0xabcdef, 5, 3, 120);
        assert_eq!(
            (m.label(), m.caps_unwrapped(), m.extra_caps(), m.length()),
            (0xabcdef, 5, 3, 120)
        );
        let m = MessageInfo::new(u64::MAX, 0, 0, 0);
        assert_eq!(m.label(), (1 << 52) - 1);
        assert_eq!(m.length(), 0);
        let m = MessageInfo::new(0, 0, 0, 0xff);
        assert_eq!((m.label(), m.length()), (0, 0x7f));
    }
}
