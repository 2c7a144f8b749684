//! What a copy may produce: seL4's `deriveCap`, `updateCapData` and `maskCapRights`.

use crate::cap::Cap;
use crate::error::SyscallError;
use crate::mdb::has_children;
use crate::slot::SlotRef;
use axolotl_abi::Rights;

/// seL4 `deriveCap`: the cap a copy of `cap` (found in `slot`) may hold. `Ok(Cap::Null)` means
/// "cannot be copied" (reply caps, IRQ control, zombies); callers turn that into
/// `IllegalOperation`.
pub fn derive_cap(slot: SlotRef, cap: Cap) -> Result<Cap, SyscallError> {
    Ok(match cap {
        Cap::Zombie { .. } | Cap::IrqControl | Cap::Reply { .. } => Cap::Null,
        // A copy of an untyped with children could retype over live objects after a reset.
        Cap::Untyped { .. } if has_children(slot) => return Err(SyscallError::RevokeFirst),
        // The mapping belongs to the cap; the copy starts unmapped.
        Cap::Frame {
            ptr,
            size,
            rights,
            is_device,
            ..
        } => Cap::Frame {
            ptr,
            size,
            rights,
            is_device,
            mapped: None,
        },
        // As seL4: an unmapped table copy could be mapped twice; only mapped ones (whose copy
        // cannot be mapped again) may be copied. The same holds for a VSpace without an ASID.
        Cap::PageTable { mapped: None, .. } | Cap::VSpace { asid: None, .. } => {
            return Err(SyscallError::IllegalOperation);
        }
        c => c,
    })
}

/// seL4 `maskCapRights`: rights are only ever reduced. Frames without read become
/// inaccessible (there are no write-only mappings), as seL4's `maskVMRights`.
pub fn mask_cap_rights(mask: Rights, cap: Cap) -> Cap {
    match cap {
        Cap::Endpoint { ptr, badge, rights } => Cap::Endpoint {
            ptr,
            badge,
            rights: rights.mask(mask),
        },
        Cap::Notification { ptr, badge, rights } => Cap::Notification {
            ptr,
            badge,
            rights: rights.mask(mask.mask(Rights::RW)),
        },
        Cap::Reply { tcb, can_grant } => Cap::Reply {
            tcb,
            can_grant: can_grant && mask.contains(Rights::GRANT),
        },
        Cap::Frame {
            ptr,
            size,
            rights,
            is_device,
            mapped,
        } => {
            let r = rights.mask(mask).mask(Rights::RW);
            Cap::Frame {
                ptr,
                size,
                rights: if r.contains(Rights::READ) {
                    r
                } else {
                    Rights::NONE
                },
                is_device,
                mapped,
            }
        }
        c => c,
    }
}

/// seL4 `updateCapData`: applies the data word of Mint/Mutate/Rotate. A badge is set only
/// once and only by Mint (`preserve = false`); otherwise the result is Null (→ illegal). For a
/// CNode the word is seL4's CNode cap data: `guard << 6 | guard_bits`.
pub fn update_cap_data(preserve: bool, data: u64, cap: Cap) -> Cap {
    match cap {
        Cap::Endpoint { ptr, badge, rights } => {
            if !preserve && badge == 0 {
                Cap::Endpoint {
                    ptr,
                    badge: data,
                    rights,
                }
            } else {
                Cap::Null
            }
        }
        Cap::Notification { ptr, badge, rights } => {
            if !preserve && badge == 0 {
                Cap::Notification {
                    ptr,
                    badge: data,
                    rights,
                }
            } else {
                Cap::Null
            }
        }
        Cap::CNode {
            ptr, radix_bits, ..
        } => {
            let guard_bits = (data & 0x3f) as u32;
            if guard_bits + radix_bits as u32 > 64 {
                return Cap::Null;
            }
            let guard = (data >> 6) & ((1u64 << guard_bits) - 1);
            Cap::CNode {
                ptr,
                radix_bits,
                guard_bits: guard_bits as u8,
                guard,
            }
        }
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badge_is_set_once_and_only_by_mint() {
        let ep = Cap::Endpoint {
            ptr: 0x1000,
            badge: 0,
            rights: Rights::ALL,
        };
        let b = update_cap_data(false, 42, ep);
        assert_eq!(b.badge(), Some(42));
        assert_eq!(update_cap_data(false, 7, b), Cap::Null);
        assert_eq!(update_cap_data(true, 7, ep), Cap::Null);
        let n = Cap::Notification {
            ptr: 0x1000,
            badge: 0,
            rights: Rights::ALL,
        };
        assert_eq!(update_cap_data(false, u64::MAX, n).badge(), Some(u64::MAX));
    }

    #[test]
    fn rights_only_shrink() {
        for have in 0..16 {
            for m in 0..16 {
                let ep = Cap::Endpoint {
                    ptr: 0,
                    badge: 0,
                    rights: Rights::from_bits_truncate(have),
                };
                let Cap::Endpoint { rights, .. } =
                    mask_cap_rights(Rights::from_bits_truncate(m), ep)
                else {
                    panic!()
                };
                assert_eq!(rights.bits() as u64, have & m);
            }
        }
        let f = Cap::Frame {
            ptr: 0,
            size: crate::cap::FrameSize::Small,
            rights: Rights::RW,
            is_device: false,
            mapped: None,
        };
        let rights_of = |c| match c {
            Cap::Frame { rights, .. } => rights,
            _ => panic!(),
        };
        assert_eq!(rights_of(mask_cap_rights(Rights::WRITE, f)), Rights::NONE);
        assert_eq!(rights_of(mask_cap_rights(Rights::READ, f)), Rights::READ);
        assert_eq!(rights_of(mask_cap_rights(Rights::ALL, f)), Rights::RW);
    }

    #[test]
    fn cnode_guard_update() {
        let c = Cap::CNode {
            ptr: 0x4000,
            radix_bits: 8,
            guard_bits: 0,
            guard: 0,
        };
        assert_eq!(
            update_cap_data(true, 0xabc << 6 | 12, c),
            Cap::CNode {
                ptr: 0x4000,
                radix_bits: 8,
                guard_bits: 12,
                guard: 0xabc
            }
        );
        // Extra guard bits above guard_bits are dropped.
        assert_eq!(
            update_cap_data(false, 0xfabc << 6 | 12, c),
            update_cap_data(false, 0xabc << 6 | 12, c)
        );
        assert_eq!(update_cap_data(true, 57, c), Cap::Null);
        assert!(!update_cap_data(true, 56, c).is_null());
    }
}
