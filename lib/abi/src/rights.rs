/// Access rights on a capability (seL4's `seL4_CapRights`): bit 0 write, 1 read, 2 grant,
/// 3 grant-reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Rights(u8);

impl Rights {
    pub const WRITE: Rights = Rights(1);
    pub const READ: Rights = Rights(2);
    pub const GRANT: Rights = Rights(4);
    pub const GRANT_REPLY: Rights = Rights(8);
    pub const NONE: Rights = Rights(0);
    pub const ALL: Rights = Rights(0xf);
    pub const RW: Rights = Rights(3);

    pub const fn from_bits_truncate(b: u64) -> Self {
        Rights((b & 0xf) as u8)
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }
    /// Rights of a derived capability: never more than the source.
    pub const fn mask(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_never_adds_rights() {
        for a in 0..16u64 {
            for b in 0..16u64 {
                let m = Rights::from_bits_truncate(a).mask(Rights::from_bits_truncate(b));
                assert!(Rights::from_bits_truncate(a).contains(m));
                assert!(Rights::from_bits_truncate(b).contains(m));
            }
        }
        assert_eq!(Rights::from_bits_truncate(0xff), Rights::ALL);
    }
}
