/// Kernel object types that Untyped memory can be retyped into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ObjectType {
    Untyped = 0,
    Tcb = 1,
    Endpoint = 2,
    Notification = 3,
    CNode = 4,
    /// 4 KiB frame.
    SmallFrame = 5,
    /// 2 MiB frame.
    LargeFrame = 6,
    /// A translation table below the root (stage-2 levels 2 and 3 with a 4 KiB granule).
    PageTable = 7,
    /// The root of a VSpace (stage-2 level 1, 39-bit IPA).
    VSpace = 8,
    Vcpu = 9,
}

impl ObjectType {
    pub fn from_word(w: u64) -> Option<Self> {
        use ObjectType::*;
        Some(match w {
            0 => Untyped,
            1 => Tcb,
            2 => Endpoint,
            3 => Notification,
            4 => CNode,
            5 => SmallFrame,
            6 => LargeFrame,
            7 => PageTable,
            8 => VSpace,
            9 => Vcpu,
            _ => return None,
        })
    }

    /// log2 of the object's size. `user_bits` is the size argument of retype: the size of an
    /// Untyped, or the number of slots (log2) of a CNode; ignored for fixed-size objects.
    /// Returns `None` when `user_bits` is out of range for the type.
    pub fn size_bits(self, user_bits: u64) -> Option<u32> {
        match self {
            ObjectType::Untyped => (4..=47).contains(&user_bits).then_some(user_bits as u32),
            // 32-byte slots, as in seL4 on 64-bit platforms.
            ObjectType::CNode => (1..=24)
                .contains(&user_bits)
                .then_some(user_bits as u32 + 5),
            ObjectType::Tcb => Some(11),
            ObjectType::Endpoint => Some(4),
            ObjectType::Notification => Some(5),
            ObjectType::SmallFrame | ObjectType::PageTable | ObjectType::VSpace => Some(12),
            ObjectType::LargeFrame => Some(21),
            ObjectType::Vcpu => Some(12),
        }
    }
}

/// Invocation labels: what an invocation asks the invoked object to do (the message label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Invocation {
    UntypedRetype = 1,
    TcbReadRegisters = 2,
    TcbWriteRegisters = 3,
    TcbConfigure = 4,
    TcbSetPriority = 5,
    TcbSetMcPriority = 6,
    TcbSetIpcBuffer = 7,
    TcbSetSpace = 8,
    TcbSuspend = 9,
    TcbResume = 10,
    TcbBindNotification = 11,
    TcbUnbindNotification = 12,
    CNodeRevoke = 13,
    CNodeDelete = 14,
    CNodeCopy = 15,
    CNodeMint = 16,
    CNodeMove = 17,
    CNodeMutate = 18,
    CNodeRotate = 19,
    CNodeCancelBadgedSends = 20,
    PageTableMap = 21,
    PageTableUnmap = 22,
    PageMap = 23,
    PageUnmap = 24,
    PageGetAddress = 25,
    AsidPoolAssign = 26,
    IrqControlGet = 27,
    IrqHandlerAck = 28,
    IrqHandlerSetNotification = 29,
    IrqHandlerClear = 30,
    VcpuSetTcb = 31,
    VcpuInjectIrq = 32,
    VcpuReadReg = 33,
    VcpuWriteReg = 34,
    VcpuAckVppi = 35,
    AsidControlMakePool = 36,
    TcbSetTimerAccess = 37,
    /// seL4's `ARM_VSpace_Clean_Data`: clean `[start, end)` of the VSpace to the point of
    /// coherency (what a guest starting with its MMU off, or a device, reads).
    VSpaceCleanData = 38,
    /// seL4's `ARM_VSpace_Unify_Instruction`: make `[start, end)` written as data visible to
    /// instruction fetch.
    VSpaceUnifyInstruction = 39,
    /// seL4's `DomainSet_Set`: put the thread of the TCB cap in extra cap 0 into domain
    /// `mr0` (below [`crate::NUM_DOMAINS`]).
    DomainSetSet = 40,
    /// Replace the domain schedule (seL4's dynamic domain schedule, RFC-20): `mr0` entries
    /// follow in `mr1..`, each [`crate::domain_entry`]-encoded; 0 entries: domain 0 alone.
    DomainSetSchedule = 41,
    /// On the handler cap of [`crate::TIMEOUT_IRQ`] only (the kernel timeout): signal its
    /// notification once the physical count reaches `mr0` (at once if it has; 0 cancels).
    /// One deadline at a time: a new one replaces the last.
    IrqHandlerSetDeadline = 42,
    /// The thread's CPU time, as seL4's benchmark builds keep thread utilisation: in MR0
    /// the counter cycles it ran at user level (or as a guest) up to its last kernel entry,
    /// in MR1 and MR2 the cycles the kernel spent on its own and idle since boot, in MR3
    /// the physical count now.
    TcbGetCpuTime = 43,
}

impl Invocation {
    pub fn from_label(l: u64) -> Option<Self> {
        if (1..=43).contains(&l) {
            // SAFETY: repr(u64), discriminants are exactly 1..=43 with no gaps.
            Some(unsafe { core::mem::transmute::<u64, Invocation>(l) })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_sizes_follow_the_rules() {
        assert_eq!(ObjectType::CNode.size_bits(4), Some(9));
        assert_eq!(ObjectType::CNode.size_bits(0), None);
        assert_eq!(ObjectType::Untyped.size_bits(3), None);
        assert_eq!(ObjectType::Untyped.size_bits(21), Some(21));
        assert_eq!(ObjectType::LargeFrame.size_bits(0), Some(21));
        for w in 0..16 {
            if let Some(t) = ObjectType::from_word(w) {
                assert_eq!(t as u64, w);
            }
        }
    }

    #[test]
    fn labels_round_trip() {
        assert_eq!(Invocation::from_label(0), None);
        assert_eq!(Invocation::from_label(44), None);
        for l in 1..=43 {
            assert_eq!(Invocation::from_label(l).unwrap() as u64, l);
        }
    }
}
