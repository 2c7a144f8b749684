//! CSpace address resolution, as seL4's `resolveAddressBits`: a capability pointer is consumed
//! most significant bit first; each CNode strips its guard, then `radix_bits` of index.

use crate::cap::Cap;
use crate::error::SyscallError;
use crate::slot::SlotRef;
use axolotl_abi::Error;

const WORD_BITS: u32 = 64;

/// Why a lookup failed; numbered and laid out for user level as seL4's `seL4_Fault_CapFault`
/// lookup failure words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFault {
    InvalidRoot,
    MissingCapability {
        bits_left: u32,
    },
    DepthMismatch {
        bits_found: u32,
        bits_left: u32,
    },
    /// `guard_found` is the guard of the CNode cap (seL4 names it so).
    GuardMismatch {
        bits_left: u32,
        guard_found: u64,
        guard_size: u32,
    },
}

impl From<LookupFault> for axolotl_abi::LookupFailure {
    fn from(f: LookupFault) -> Self {
        use axolotl_abi::LookupFailure as L;
        match f {
            LookupFault::InvalidRoot => L::InvalidRoot,
            LookupFault::MissingCapability { bits_left } => L::MissingCapability {
                bits_left: bits_left.into(),
            },
            LookupFault::DepthMismatch {
                bits_found,
                bits_left,
            } => L::DepthMismatch {
                bits_left: bits_left.into(),
                bits_found: bits_found.into(),
            },
            LookupFault::GuardMismatch {
                bits_left,
                guard_found,
                guard_size,
            } => L::GuardMismatch {
                bits_left: bits_left.into(),
                guard_found,
                guard_size: guard_size.into(),
            },
        }
    }
}

impl LookupFault {
    /// seL4 lookup failure message words: type, then the fields; returns how many. The
    /// layout is lib/abi's (`LookupFailure`), shared with cap fault messages.
    pub fn words(&self, out: &mut [u64; 4]) -> usize {
        axolotl_abi::LookupFailure::from(*self).to_words(out)
    }

    /// The error an invocation returns when a lookup of one of its arguments fails.
    pub fn to_syscall_error(self, source: bool) -> SyscallError {
        SyscallError::FailedLookup {
            source,
            fault: self,
        }
    }
}

/// Lookup faults are reported to user level as `FailedLookup` (plus the fault words), as seL4
/// does for CNode and retype arguments. A fault looking up the *invoked* cap is instead a cap
/// fault delivered to the thread's fault handler; that is the kernel's business.
impl From<LookupFault> for Error {
    fn from(_: LookupFault) -> Error {
        Error::FailedLookup
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= WORD_BITS {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

/// Resolves the low `depth` bits of `cptr` from `root`. Returns the slot reached and how many
/// bits were left when a non-CNode cap stopped the walk (0 when all were consumed).
pub fn resolve_address_bits(
    root: Cap,
    cptr: u64,
    depth: u32,
) -> Result<(SlotRef, u32), LookupFault> {
    let mut node = root;
    let mut n_bits = depth.min(WORD_BITS);
    if !matches!(node, Cap::CNode { .. }) {
        return Err(LookupFault::InvalidRoot);
    }
    loop {
        let Cap::CNode {
            ptr,
            radix_bits,
            guard_bits,
            guard,
        } = node
        else {
            unreachable!()
        };
        let (radix, gbits) = (radix_bits as u32, guard_bits as u32);
        let level = radix + gbits;
        // Radix >= 1 by construction, so every level consumes bits and the walk ends.
        debug_assert!(radix >= 1);
        let found = if gbits > n_bits {
            None
        } else {
            Some(cptr.checked_shr(n_bits - gbits).unwrap_or(0) & mask(gbits))
        };
        if found != Some(guard) {
            return Err(LookupFault::GuardMismatch {
                bits_left: n_bits,
                guard_found: guard,
                guard_size: gbits,
            });
        }
        if level > n_bits {
            return Err(LookupFault::DepthMismatch {
                bits_found: level,
                bits_left: n_bits,
            });
        }
        let offset = cptr.checked_shr(n_bits - level).unwrap_or(0) & mask(radix);
        let slot = SlotRef::nth(ptr, offset);
        if n_bits == level {
            return Ok((slot, 0));
        }
        n_bits -= level;
        node = slot.cap();
        if !matches!(node, Cap::CNode { .. }) {
            return Ok((slot, n_bits));
        }
    }
}

/// seL4 `lookupSlot`: the slot named by `cptr` (all 64 bits) in `root`.
pub fn lookup_slot(root: Cap, cptr: u64) -> Result<SlotRef, LookupFault> {
    resolve_address_bits(root, cptr, WORD_BITS).map(|(s, _)| s)
}

/// seL4 `lookupCapAndSlot`.
pub fn lookup_cap(root: Cap, cptr: u64) -> Result<(Cap, SlotRef), LookupFault> {
    lookup_slot(root, cptr).map(|s| (s.cap(), s))
}

/// seL4 `lookupSlotForCNodeOp`: `depth` must be 1..=64 and must resolve exactly.
pub fn lookup_slot_for_cnode_op(
    is_source: bool,
    root: Cap,
    cptr: u64,
    depth: u64,
) -> Result<SlotRef, SyscallError> {
    if !matches!(root, Cap::CNode { .. }) {
        return Err(LookupFault::InvalidRoot.to_syscall_error(is_source));
    }
    if !(1..=WORD_BITS as u64).contains(&depth) {
        return Err(SyscallError::RangeError {
            min: 1,
            max: WORD_BITS as u64,
        });
    }
    let (slot, left) = resolve_address_bits(root, cptr, depth as u32)
        .map_err(|f| f.to_syscall_error(is_source))?;
    if left != 0 {
        return Err(LookupFault::DepthMismatch {
            bits_found: 0,
            bits_left: left,
        }
        .to_syscall_error(is_source));
    }
    Ok(slot)
}

/// seL4 `lookupTargetSlot` (destinations).
pub fn lookup_target_slot(root: Cap, cptr: u64, depth: u64) -> Result<SlotRef, SyscallError> {
    lookup_slot_for_cnode_op(false, root, cptr, depth)
}

/// seL4 `lookupSourceSlot`.
pub fn lookup_source_slot(root: Cap, cptr: u64, depth: u64) -> Result<SlotRef, SyscallError> {
    lookup_slot_for_cnode_op(true, root, cptr, depth)
}
