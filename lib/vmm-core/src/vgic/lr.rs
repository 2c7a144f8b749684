//! List register encodings, bit-exact.
//!
//! GICv2 GICH_LRn (IHI 0048B, 5.3.9), 32 bits:
//! ```text
//!  31  30   29:28  27:23     22:20  19:10                9:0
//!  HW  Grp1 State  Priority  -      HW=1: PhysicalID     VirtualID
//!                  [7:3]            HW=0: [19] EOI, [12:10] CPUID
//! ```
//! GICv3 ICH_LR<n>_EL2 (IHI 0069, 12.5.x), 64 bits:
//! ```text
//!  63:62  61  60     59:56  55:48     47:45  44:32                  31:0
//!  State  HW  Group  -      Priority  -      HW=1: pINTID           vINTID
//!                                            HW=0: [41] EOI
//! ```
//! State: 0b00 Invalid, 0b01 Pending, 0b10 Active, 0b11 Pending and active.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrState {
    Invalid,
    Pending,
    Active,
    PendingActive,
}

impl LrState {
    pub const fn from_bits(b: u64) -> Self {
        match b & 3 {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    pub const fn bits(self) -> u64 {
        match self {
            LrState::Invalid => 0,
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        }
    }

    pub const fn pending(self) -> bool {
        matches!(self, LrState::Pending | LrState::PendingActive)
    }

    pub const fn active(self) -> bool {
        matches!(self, LrState::Active | LrState::PendingActive)
    }

    pub const fn new(pending: bool, active: bool) -> Self {
        LrState::from_bits(pending as u64 | (active as u64) << 1)
    }
}

/// One list register's content, independent of the GIC version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lr {
    pub vintid: u32,
    /// HW=1 with this physical INTID.
    pub pintid: Option<u32>,
    /// Full 8-bit priority; GICv2 keeps only [7:3].
    pub priority: u8,
    pub state: LrState,
    pub group1: bool,
    /// HW=0 only: request an EOI maintenance interrupt.
    pub eoi: bool,
    /// GICv2 SGIs, HW=0: CPUID of the requesting CPU.
    pub source: u8,
}

const V2_HW: u32 = 1 << 31;
const V2_GRP1: u32 = 1 << 30;
const V2_STATE_SHIFT: u32 = 28;
const V2_PRIO_SHIFT: u32 = 23;
const V2_PID_SHIFT: u32 = 10;
const V2_EOI: u32 = 1 << 19;
const V2_CPUID_SHIFT: u32 = 10;

const V3_STATE_SHIFT: u32 = 62;
const V3_HW: u64 = 1 << 61;
const V3_GROUP: u64 = 1 << 60;
const V3_PRIO_SHIFT: u32 = 48;
const V3_PINTID_SHIFT: u32 = 32;
const V3_EOI: u64 = 1 << 41;

impl Lr {
    /// GICH_LRn. Fields wider than the encoding are truncated to it.
    pub const fn encode_v2(&self) -> u32 {
        let mut v = (self.vintid & 0x3FF)
            | ((self.state.bits() as u32) << V2_STATE_SHIFT)
            | (((self.priority >> 3) as u32) << V2_PRIO_SHIFT);
        if self.group1 {
            v |= V2_GRP1;
        }
        match self.pintid {
            Some(p) => v |= V2_HW | ((p & 0x3FF) << V2_PID_SHIFT),
            None => {
                v |= ((self.source & 7) as u32) << V2_CPUID_SHIFT;
                if self.eoi {
                    v |= V2_EOI;
                }
            }
        }
        v
    }

    pub const fn decode_v2(v: u32) -> Self {
        let hw = v & V2_HW != 0;
        Lr {
            vintid: v & 0x3FF,
            pintid: if hw {
                Some((v >> V2_PID_SHIFT) & 0x3FF)
            } else {
                None
            },
            priority: (((v >> V2_PRIO_SHIFT) & 0x1F) << 3) as u8,
            state: LrState::from_bits((v >> V2_STATE_SHIFT) as u64),
            group1: v & V2_GRP1 != 0,
            eoi: !hw && v & V2_EOI != 0,
            source: if hw {
                0
            } else {
                ((v >> V2_CPUID_SHIFT) & 7) as u8
            },
        }
    }

    /// ICH_LR<n>_EL2. `source` has no field in GICv3 and is dropped.
    pub const fn encode_v3(&self) -> u64 {
        let mut v = self.vintid as u64
            | (self.state.bits() << V3_STATE_SHIFT)
            | ((self.priority as u64) << V3_PRIO_SHIFT);
        if self.group1 {
            v |= V3_GROUP;
        }
        match self.pintid {
            Some(p) => v |= V3_HW | (((p & 0x1FFF) as u64) << V3_PINTID_SHIFT),
            None => {
                if self.eoi {
                    v |= V3_EOI;
                }
            }
        }
        v
    }

    pub const fn decode_v3(v: u64) -> Self {
        let hw = v & V3_HW != 0;
        Lr {
            vintid: v as u32,
            pintid: if hw {
                Some(((v >> V3_PINTID_SHIFT) & 0x1FFF) as u32)
            } else {
                None
            },
            priority: (v >> V3_PRIO_SHIFT) as u8,
            state: LrState::from_bits(v >> V3_STATE_SHIFT),
            group1: v & V3_GROUP != 0,
            eoi: !hw && v & V3_EOI != 0,
            source: 0,
        }
    }
}
