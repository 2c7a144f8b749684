//! Capabilities: a Rust enum for logic, packed into two 64-bit words in a slot.
//!
//! # Bit layout
//!
//! Word 0 bits 63..59 hold the type tag (`0` = Null, so zeroed memory is empty slots). Physical
//! addresses are 48 bits. Unless stated, `ptr` is word 0 bits 47..0.
//!
//! | tag | type         | word 0 (besides tag)                                           | word 1                      |
//! |-----|--------------|----------------------------------------------------------------|-----------------------------|
//! | 0   | Null         | 0                                                              | 0                           |
//! | 1   | Untyped      | 58 is_device, 53..48 size_bits, ptr                            | free_index (bytes)          |
//! | 2   | Endpoint     | 51..48 rights, ptr                                             | badge (64 bits)             |
//! | 3   | Notification | 51..48 rights, ptr                                             | badge (64 bits)             |
//! | 4   | Reply        | 48 can_grant, tcb ptr                                          | 0                           |
//! | 5   | CNode        | 58..53 guard_bits, 52..48 radix_bits, ptr                      | guard                       |
//! | 6   | Tcb          | ptr                                                            | 0                           |
//! | 7   | Frame        | 54 mapped, 53 is_device, 52 large, 51..48 rights, ptr          | 63..48 asid, 47..0 vaddr    |
//! | 8   | PageTable    | 54 mapped, ptr                                                 | 63..48 asid, 47..0 vaddr    |
//! | 9   | VSpace       | 54 has_asid, ptr                                               | 15..0 asid                  |
//! | 10  | IrqControl   | 0                                                              | 0                           |
//! | 11  | IrqHandler   | 31..0 irq                                                      | 0                           |
//! | 12  | Vcpu         | ptr                                                            | 0                           |
//! | 13  | AsidControl  | 0                                                              | 0                           |
//! | 14  | AsidPool     | 15..0 base asid                                                | 0                           |
//! | 15  | Zombie       | 58..49 remaining[9:0], 48..43 size_bits, 42..0 ptr>>5          | 63..43 remaining[30:10], 42..0 parent>>5 |
//! | 16  | DomainSet    | 0                                                              | 0                           |
//!
//! Badges are the full 64 bits, as in seL4: word 1 is otherwise unused for endpoints and
//! notifications, so there is no reason to truncate them. Badge 0 means "unbadged".
//! `guard_bits` fits 6 bits because `radix_bits >= 1` and `guard_bits + radix_bits <= 64`.
//! A zombie's pointers are slot-array addresses, which are 32-byte aligned.

use axolotl_abi::Rights;

/// Address-space identifier; on this kernel it *is* the stage-2 VMID (see `asid.rs`).
pub type Asid = u16;

const PTR_MASK: u64 = (1 << 48) - 1;
const TAG_SHIFT: u32 = 59;

/// Size of a frame object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSize {
    /// 4 KiB.
    Small,
    /// 2 MiB.
    Large,
}

impl FrameSize {
    pub const fn bits(self) -> u32 {
        match self {
            FrameSize::Small => 12,
            FrameSize::Large => 21,
        }
    }
}

/// Where a frame or page table cap is mapped: the mapping belongs to the cap, as in seL4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub asid: Asid,
    /// Intermediate physical address (stage 2), 48 bits.
    pub vaddr: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cap {
    #[default]
    Null,
    /// `free_index` is in bytes from `ptr`: everything below it may be in use.
    Untyped {
        ptr: u64,
        size_bits: u8,
        free_index: u64,
        is_device: bool,
    },
    Endpoint {
        ptr: u64,
        badge: u64,
        rights: Rights,
    },
    Notification {
        ptr: u64,
        badge: u64,
        rights: Rights,
    },
    /// One-shot reply capability to the thread `tcb`.
    Reply {
        tcb: u64,
        can_grant: bool,
    },
    CNode {
        ptr: u64,
        radix_bits: u8,
        guard_bits: u8,
        guard: u64,
    },
    Tcb {
        ptr: u64,
    },
    Frame {
        ptr: u64,
        size: FrameSize,
        rights: Rights,
        is_device: bool,
        mapped: Option<Mapping>,
    },
    PageTable {
        ptr: u64,
        mapped: Option<Mapping>,
    },
    VSpace {
        ptr: u64,
        asid: Option<Asid>,
    },
    IrqControl,
    IrqHandler {
        irq: u32,
    },
    Vcpu {
        ptr: u64,
    },
    AsidControl,
    /// The ASIDs `base .. base + ASID_POOL_SIZE` (see `asid.rs`).
    AsidPool {
        base: Asid,
    },
    /// An object with slots (CNode, TCB) whose last cap is being deleted: its slots
    /// `ptr[0..remaining]` still have to be emptied before the memory is free. `parent` is the
    /// slot holding the zombie whose deletion is waiting for this one (0 = none); it is only
    /// meaningful during one `delete` call. See `delete.rs`.
    Zombie {
        ptr: u64,
        size_bits: u8,
        remaining: u32,
        parent: u64,
    },
    /// seL4's domain cap: puts threads into scheduling domains and sets the domain
    /// schedule (`domain.rs`). One, the root task's, exists from boot.
    DomainSet,
}

const fn bit(b: bool, at: u32) -> u64 {
    (b as u64) << at
}

const fn get(w: u64, at: u32, width: u32) -> u64 {
    (w >> at) & ((1 << width) - 1)
}

impl Cap {
    /// The tag stored in word 0 (see the layout table).
    pub const fn tag(&self) -> u64 {
        match self {
            Cap::Null => 0,
            Cap::Untyped { .. } => 1,
            Cap::Endpoint { .. } => 2,
            Cap::Notification { .. } => 3,
            Cap::Reply { .. } => 4,
            Cap::CNode { .. } => 5,
            Cap::Tcb { .. } => 6,
            Cap::Frame { .. } => 7,
            Cap::PageTable { .. } => 8,
            Cap::VSpace { .. } => 9,
            Cap::IrqControl => 10,
            Cap::IrqHandler { .. } => 11,
            Cap::Vcpu { .. } => 12,
            Cap::AsidControl => 13,
            Cap::AsidPool { .. } => 14,
            Cap::Zombie { .. } => 15,
            Cap::DomainSet => 16,
        }
    }

    pub const fn is_null(&self) -> bool {
        matches!(self, Cap::Null)
    }

    pub fn encode(&self) -> [u64; 2] {
        let t = self.tag() << TAG_SHIFT;
        let map = |m: &Option<Mapping>| match m {
            Some(m) => (true, (m.asid as u64) << 48 | (m.vaddr & PTR_MASK)),
            None => (false, 0),
        };
        match *self {
            Cap::Null | Cap::IrqControl | Cap::AsidControl | Cap::DomainSet => [t, 0],
            Cap::Untyped {
                ptr,
                size_bits,
                free_index,
                is_device,
            } => [
                t | bit(is_device, 58) | (size_bits as u64 & 0x3f) << 48 | ptr & PTR_MASK,
                free_index,
            ],
            Cap::Endpoint { ptr, badge, rights } | Cap::Notification { ptr, badge, rights } => {
                [t | (rights.bits() as u64) << 48 | ptr & PTR_MASK, badge]
            }
            Cap::Reply { tcb, can_grant } => [t | bit(can_grant, 48) | tcb & PTR_MASK, 0],
            Cap::CNode {
                ptr,
                radix_bits,
                guard_bits,
                guard,
            } => [
                t | (guard_bits as u64 & 0x3f) << 53
                    | (radix_bits as u64 & 0x1f) << 48
                    | ptr & PTR_MASK,
                guard,
            ],
            Cap::Tcb { ptr } | Cap::Vcpu { ptr } => [t | ptr & PTR_MASK, 0],
            Cap::Frame {
                ptr,
                size,
                rights,
                is_device,
                mapped,
            } => {
                let (m, w1) = map(&mapped);
                [
                    t | bit(m, 54)
                        | bit(is_device, 53)
                        | bit(size == FrameSize::Large, 52)
                        | (rights.bits() as u64) << 48
                        | ptr & PTR_MASK,
                    w1,
                ]
            }
            Cap::PageTable { ptr, mapped } => {
                let (m, w1) = map(&mapped);
                [t | bit(m, 54) | ptr & PTR_MASK, w1]
            }
            Cap::VSpace { ptr, asid } => [
                t | bit(asid.is_some(), 54) | ptr & PTR_MASK,
                asid.unwrap_or(0) as u64,
            ],
            Cap::IrqHandler { irq } => [t | irq as u64, 0],
            Cap::AsidPool { base } => [t | base as u64, 0],
            Cap::Zombie {
                ptr,
                size_bits,
                remaining,
                parent,
            } => {
                debug_assert!(ptr.is_multiple_of(32) && parent.is_multiple_of(32));
                let r = remaining as u64;
                [
                    t | (r & 0x3ff) << 49 | (size_bits as u64 & 0x3f) << 43 | (ptr & PTR_MASK) >> 5,
                    (r >> 10) << 43 | (parent & PTR_MASK) >> 5,
                ]
            }
        }
    }

    /// Decodes a slot's words. Only `encode` writes slots, so unknown tags cannot occur; they
    /// decode as Null (and trip a debug assertion) rather than as something with authority.
    #[inline]
    pub fn decode(w: [u64; 2]) -> Cap {
        let [w0, w1] = w;
        let ptr = w0 & PTR_MASK;
        let rights = Rights::from_bits_truncate(get(w0, 48, 4));
        let mapping = |mapped: bool| {
            mapped.then_some(Mapping {
                asid: (w1 >> 48) as Asid,
                vaddr: w1 & PTR_MASK,
            })
        };
        match w0 >> TAG_SHIFT {
            0 => Cap::Null,
            1 => Cap::Untyped {
                ptr,
                size_bits: get(w0, 48, 6) as u8,
                free_index: w1,
                is_device: get(w0, 58, 1) != 0,
            },
            2 => Cap::Endpoint {
                ptr,
                badge: w1,
                rights,
            },
            3 => Cap::Notification {
                ptr,
                badge: w1,
                rights,
            },
            4 => Cap::Reply {
                tcb: ptr,
                can_grant: get(w0, 48, 1) != 0,
            },
            5 => Cap::CNode {
                ptr,
                radix_bits: get(w0, 48, 5) as u8,
                guard_bits: get(w0, 53, 6) as u8,
                guard: w1,
            },
            6 => Cap::Tcb { ptr },
            7 => Cap::Frame {
                ptr,
                size: if get(w0, 52, 1) != 0 {
                    FrameSize::Large
                } else {
                    FrameSize::Small
                },
                rights,
                is_device: get(w0, 53, 1) != 0,
                mapped: mapping(get(w0, 54, 1) != 0),
            },
            8 => Cap::PageTable {
                ptr,
                mapped: mapping(get(w0, 54, 1) != 0),
            },
            9 => Cap::VSpace {
                ptr,
                asid: (get(w0, 54, 1) != 0).then_some(w1 as Asid),
            },
            10 => Cap::IrqControl,
            11 => Cap::IrqHandler { irq: w0 as u32 },
            12 => Cap::Vcpu { ptr },
            13 => Cap::AsidControl,
            14 => Cap::AsidPool { base: w0 as Asid },
            15 => Cap::Zombie {
                ptr: get(w0, 0, 43) << 5,
                size_bits: get(w0, 43, 6) as u8,
                remaining: (get(w0, 49, 10) | (w1 >> 43) << 10) as u32,
                parent: get(w1, 0, 43) << 5,
            },
            16 => Cap::DomainSet,
            _ => {
                debug_assert!(false, "corrupt capability {w:x?}");
                Cap::Null
            }
        }
    }

    /// The physical object this cap names, as (base, size_bits), for the caps that name memory
    /// (seL4's `isPhysicalCap`). Reply caps name a TCB but not as memory.
    pub fn object_range(&self) -> Option<(u64, u32)> {
        Some(match *self {
            Cap::Untyped { ptr, size_bits, .. } => (ptr, size_bits as u32),
            Cap::Endpoint { ptr, .. } => (ptr, 4),
            Cap::Notification { ptr, .. } => (ptr, 5),
            Cap::CNode {
                ptr, radix_bits, ..
            } => (ptr, radix_bits as u32 + crate::slot::SLOT_BITS),
            Cap::Tcb { ptr } => (ptr, 11),
            Cap::Frame { ptr, size, .. } => (ptr, size.bits()),
            Cap::PageTable { ptr, .. } | Cap::VSpace { ptr, .. } | Cap::Vcpu { ptr } => (ptr, 12),
            Cap::Zombie { ptr, size_bits, .. } => (ptr, size_bits as u32),
            _ => return None,
        })
    }

    /// seL4 `sameRegionAs`: `other` names (part of) what `self` names. Decides parenthood in
    /// the MDB together with the revocable bit.
    pub fn same_region_as(&self, other: &Cap) -> bool {
        use Cap::*;
        match (*self, *other) {
            (Untyped { .. }, b) => match (self.object_range(), b.object_range()) {
                (Some((a0, abits)), Some((b0, bbits))) => {
                    let a1 = a0 + ((1u64 << abits) - 1);
                    let b1 = b0 + ((1u64 << bbits) - 1);
                    a0 <= b0 && b1 <= a1
                }
                _ => false,
            },
            (Endpoint { ptr: a, .. }, Endpoint { ptr: b, .. })
            | (Notification { ptr: a, .. }, Notification { ptr: b, .. })
            | (Tcb { ptr: a }, Tcb { ptr: b })
            | (Reply { tcb: a, .. }, Reply { tcb: b, .. })
            | (PageTable { ptr: a, .. }, PageTable { ptr: b, .. })
            | (VSpace { ptr: a, .. }, VSpace { ptr: b, .. })
            | (Vcpu { ptr: a }, Vcpu { ptr: b }) => a == b,
            (
                CNode {
                    ptr: a,
                    radix_bits: ra,
                    ..
                },
                CNode {
                    ptr: b,
                    radix_bits: rb,
                    ..
                },
            ) => a == b && ra == rb,
            (
                Frame {
                    ptr: a, size: sa, ..
                },
                Frame {
                    ptr: b, size: sb, ..
                },
            ) => a <= b && b + (1 << sb.bits()) <= a + (1 << sa.bits()),
            (IrqControl, IrqControl | IrqHandler { .. }) => true,
            (IrqHandler { irq: a }, IrqHandler { irq: b }) => a == b,
            (AsidControl, AsidControl | AsidPool { .. }) => true,
            (AsidPool { base: a }, AsidPool { base: b }) => a == b,
            (DomainSet, DomainSet) => true,
            _ => false,
        }
    }

    /// seL4 `sameObjectAs`: both caps keep the same object alive (used for finality).
    pub fn same_object_as(&self, other: &Cap) -> bool {
        use Cap::*;
        match (*self, *other) {
            (Untyped { .. }, _) => false,
            (IrqControl, IrqHandler { .. }) | (AsidControl, AsidPool { .. }) => false,
            (
                Frame {
                    ptr: a,
                    size: sa,
                    is_device: da,
                    ..
                },
                Frame {
                    ptr: b,
                    size: sb,
                    is_device: db,
                    ..
                },
            ) => a == b && sa == sb && da == db,
            _ => self.same_region_as(other),
        }
    }

    /// The badge of an endpoint or notification cap.
    pub fn badge(&self) -> Option<u64> {
        match *self {
            Cap::Endpoint { badge, .. } | Cap::Notification { badge, .. } => Some(badge),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ptr(align_bits: u32) -> impl Strategy<Value = u64> {
        (0u64..(1 << (48 - align_bits))).prop_map(move |p| p << align_bits)
    }
    fn rights() -> impl Strategy<Value = Rights> {
        (0u64..16).prop_map(Rights::from_bits_truncate)
    }
    fn mapping() -> impl Strategy<Value = Option<Mapping>> {
        proptest::option::of(
            (any::<u16>(), ptr(12)).prop_map(|(asid, vaddr)| Mapping { asid, vaddr }),
        )
    }

    fn cap() -> impl Strategy<Value = Cap> {
        prop_oneof![
            Just(Cap::Null),
            (ptr(4), 4u8..=47, any::<u64>(), any::<bool>()).prop_map(|(ptr, s, f, d)| {
                Cap::Untyped {
                    ptr,
                    size_bits: s,
                    free_index: f,
                    is_device: d,
                }
            }),
            (ptr(4), any::<u64>(), rights()).prop_map(|(ptr, badge, rights)| Cap::Endpoint {
                ptr,
                badge,
                rights
            }),
            (ptr(5), any::<u64>(), rights())
                .prop_map(|(ptr, badge, rights)| { Cap::Notification { ptr, badge, rights } }),
            (ptr(11), any::<bool>()).prop_map(|(tcb, can_grant)| Cap::Reply { tcb, can_grant }),
            (ptr(6), 1u8..=24, any::<u64>())
                .prop_flat_map(|(ptr, r, g)| (Just(ptr), Just(r), 0..=64 - r, Just(g)))
                .prop_map(|(ptr, radix_bits, guard_bits, g)| Cap::CNode {
                    ptr,
                    radix_bits,
                    guard_bits,
                    guard: g
                }),
            ptr(11).prop_map(|ptr| Cap::Tcb { ptr }),
            (ptr(12), any::<bool>(), rights(), any::<bool>(), mapping()).prop_map(
                |(ptr, large, rights, is_device, mapped)| Cap::Frame {
                    ptr,
                    size: if large {
                        FrameSize::Large
                    } else {
                        FrameSize::Small
                    },
                    rights,
                    is_device,
                    mapped
                }
            ),
            (ptr(12), mapping()).prop_map(|(ptr, mapped)| Cap::PageTable { ptr, mapped }),
            (ptr(12), proptest::option::of(any::<u16>()))
                .prop_map(|(ptr, asid)| Cap::VSpace { ptr, asid }),
            Just(Cap::IrqControl),
            any::<u32>().prop_map(|irq| Cap::IrqHandler { irq }),
            ptr(12).prop_map(|ptr| Cap::Vcpu { ptr }),
            Just(Cap::AsidControl),
            Just(Cap::DomainSet),
            any::<u16>().prop_map(|base| Cap::AsidPool { base }),
            (ptr(6), 6u8..=47, 0u32..(1 << 31), ptr(5)).prop_map(|(ptr, s, r, parent)| {
                Cap::Zombie {
                    ptr,
                    size_bits: s,
                    remaining: r,
                    parent,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(c in cap()) {
            prop_assert_eq!(Cap::decode(c.encode()), c);
            prop_assert_eq!(c.encode()[0] >> 59, c.tag());
        }
    }

    #[test]
    fn null_is_all_zero() {
        assert_eq!(Cap::Null.encode(), [0, 0]);
        assert_eq!(Cap::decode([0, 0]), Cap::Null);
    }

    #[test]
    fn untyped_covers_only_its_range() {
        let u = Cap::Untyped {
            ptr: 0x10000,
            size_bits: 16,
            free_index: 0,
            is_device: false,
        };
        let ep = |ptr| Cap::Endpoint {
            ptr,
            badge: 0,
            rights: Rights::ALL,
        };
        assert!(u.same_region_as(&ep(0x10000)));
        assert!(u.same_region_as(&ep(0x1fff0)));
        assert!(!u.same_region_as(&ep(0x20000)));
        assert!(!u.same_region_as(&ep(0xfff0)));
        assert!(!u.same_object_as(&ep(0x10000)));
        assert!(!u.same_region_as(&Cap::IrqControl));
        assert!(Cap::IrqControl.same_region_as(&Cap::IrqHandler { irq: 3 }));
        assert!(!Cap::IrqControl.same_object_as(&Cap::IrqHandler { irq: 3 }));
    }
}
