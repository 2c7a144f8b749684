//! Untyped retype (seL4 `decodeUntypedInvocation` / `invokeUntyped_Retype`).
//!
//! `free_index` is in bytes from the untyped's base: memory below it may hold objects. It only
//! moves forward, except that a retype of an untyped with no children first resets it to 0
//! (the kernel clears the used part through [`ObjectInit::reset_untyped`]).

use crate::cap::{Cap, FrameSize};
use crate::cspace::{LookupFault, lookup_target_slot};
use crate::error::SyscallError;
use crate::mdb::{has_children, insert_new_child};
use crate::slot::{SLOT_BITS, SlotRef};
use axolotl_abi::{ObjectType, Rights};

pub use axolotl_abi::RETYPE_FAN_OUT_LIMIT;
/// seL4 `seL4_MinUntypedBits` / `seL4_MaxUntypedBits` on aarch64.
pub const MIN_UNTYPED_BITS: u32 = 4;
pub const MAX_UNTYPED_BITS: u32 = 47;

/// The kernel's part of creating objects: touching their memory.
pub trait ObjectInit {
    /// `[base, base + used)` of an untyped is about to be reused; clear it unless it is
    /// device memory (seL4 `resetUntypedCap`).
    fn reset_untyped(&mut self, base: u64, used: u64, is_device: bool);
    /// Initialise a new object (zero it, set up a TCB, ...). Called before its cap exists.
    /// CNode slots have already been emptied by this crate.
    fn init_object(&mut self, ty: ObjectType, addr: u64, size_bits: u32, is_device: bool);
}

/// The message arguments of `UntypedRetype` (seL4 order), plus the root CNode extra cap.
#[derive(Clone, Copy, Debug)]
pub struct RetypeArgs {
    pub ty: u64,
    pub user_size_bits: u64,
    pub root: Cap,
    pub node_index: u64,
    pub node_depth: u64,
    pub node_offset: u64,
    pub node_window: u64,
}

/// A checked retype, ready to perform.
#[derive(Clone, Copy, Debug)]
pub struct RetypePlan {
    untyped: SlotRef,
    reset: bool,
    ty: ObjectType,
    user_bits: u32,
    size_bits: u32,
    base: u64,
    dest_cnode: u64,
    offset: u64,
    count: u64,
}

/// What a retype created: `count` objects of `ty` at `base + i << size_bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retyped {
    pub ty: ObjectType,
    pub base: u64,
    pub size_bits: u32,
    pub count: u64,
    pub reset: bool,
}

impl Retyped {
    pub fn objects(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).map(|i| self.base + (i << self.size_bits))
    }
}

fn is_frame(ty: ObjectType) -> bool {
    matches!(ty, ObjectType::SmallFrame | ObjectType::LargeFrame)
}

/// Checks a retype of the untyped in `untyped`, in seL4's order. The kernel has already checked
/// the label and that the message has 6 words and an extra cap (else `TruncatedMessage`).
pub fn decode_retype(untyped: SlotRef, a: &RetypeArgs) -> Result<RetypePlan, SyscallError> {
    let Cap::Untyped {
        ptr: ut_base,
        size_bits: ut_bits,
        free_index,
        is_device,
    } = untyped.cap()
    else {
        return Err(SyscallError::IllegalOperation);
    };
    let ty = ObjectType::from_word(a.ty).ok_or(SyscallError::InvalidArgument { arg: 0 })?;
    let range = SyscallError::RangeError {
        min: 0,
        max: MAX_UNTYPED_BITS as u64,
    };
    if a.user_size_bits >= 64 {
        return Err(range);
    }
    let user = a.user_size_bits as u32;
    if ty == ObjectType::CNode && user == 0 {
        return Err(SyscallError::InvalidArgument { arg: 1 });
    }
    if ty == ObjectType::Untyped && user < MIN_UNTYPED_BITS {
        return Err(SyscallError::InvalidArgument { arg: 1 });
    }
    let size_bits = match ty.size_bits(a.user_size_bits) {
        Some(s) if s <= MAX_UNTYPED_BITS => s,
        // CNodes above the ABI's 2^24 slots: report the ABI's range for the size argument.
        _ if ty == ObjectType::CNode => return Err(SyscallError::RangeError { min: 1, max: 24 }),
        _ => return Err(range),
    };

    let dest_cap = if a.node_depth == 0 {
        a.root
    } else {
        lookup_target_slot(a.root, a.node_index, a.node_depth)?.cap()
    };
    let Cap::CNode {
        ptr: dest_cnode,
        radix_bits,
        ..
    } = dest_cap
    else {
        return Err(LookupFault::MissingCapability {
            bits_left: a.node_depth as u32,
        }
        .to_syscall_error(false));
    };
    let node_size = 1u64 << radix_bits;
    if a.node_offset > node_size - 1 {
        return Err(SyscallError::RangeError {
            min: 0,
            max: node_size - 1,
        });
    }
    if a.node_window < 1 || a.node_window > RETYPE_FAN_OUT_LIMIT {
        return Err(SyscallError::RangeError {
            min: 1,
            max: RETYPE_FAN_OUT_LIMIT,
        });
    }
    if a.node_window > node_size - a.node_offset {
        return Err(SyscallError::RangeError {
            min: 1,
            max: node_size - a.node_offset,
        });
    }
    for i in a.node_offset..a.node_offset + a.node_window {
        if !SlotRef::nth(dest_cnode, i).cap().is_null() {
            return Err(SyscallError::DeleteFirst);
        }
    }

    let reset = !has_children(untyped);
    let free = if reset { 0 } else { free_index };
    let free_bytes = (1u64 << ut_bits) - free;
    if (free_bytes >> size_bits) < a.node_window {
        return Err(SyscallError::NotEnoughMemory {
            available: free_bytes,
        });
    }
    if is_device && !is_frame(ty) && ty != ObjectType::Untyped {
        return Err(SyscallError::InvalidArgument { arg: 1 });
    }
    let align = (1u64 << size_bits) - 1;
    let base = (ut_base + free + align) & !align;
    Ok(RetypePlan {
        untyped,
        reset,
        ty,
        user_bits: user,
        size_bits,
        base,
        dest_cnode,
        offset: a.node_offset,
        count: a.node_window,
    })
}

/// Performs a checked retype: resets the untyped if it had no children, moves the watermark
/// past the new objects, initialises them and inserts their caps as children of the untyped.
pub fn invoke_retype(plan: RetypePlan, init: &mut impl ObjectInit) -> Retyped {
    let Cap::Untyped {
        ptr: ut_base,
        size_bits: ut_bits,
        free_index,
        is_device,
    } = plan.untyped.cap()
    else {
        unreachable!("plan made for an untyped")
    };
    if plan.reset && free_index != 0 {
        init.reset_untyped(ut_base, free_index, is_device);
    }
    plan.untyped.set_cap(Cap::Untyped {
        ptr: ut_base,
        size_bits: ut_bits,
        free_index: plan.base - ut_base + (plan.count << plan.size_bits),
        is_device,
    });
    for i in 0..plan.count {
        let addr = plan.base + (i << plan.size_bits);
        if plan.ty == ObjectType::CNode {
            for s in 0..1u64 << plan.user_bits {
                let slot = SlotRef::nth(addr, s);
                debug_assert_eq!(slot.addr(), addr + (s << SLOT_BITS));
                slot.set_cap(Cap::Null);
                slot.set_mdb(crate::slot::MdbNode::NULL);
            }
        }
        init.init_object(plan.ty, addr, plan.size_bits, is_device);
        let cap = new_cap(plan.ty, addr, plan.user_bits, is_device);
        // SAFETY: the object was just created inside the untyped's free region.
        unsafe {
            insert_new_child(
                plan.untyped,
                SlotRef::nth(plan.dest_cnode, plan.offset + i),
                cap,
            )
        }
    }
    Retyped {
        ty: plan.ty,
        base: plan.base,
        size_bits: plan.size_bits,
        count: plan.count,
        reset: plan.reset,
    }
}

/// [`decode_retype`] then [`invoke_retype`].
pub fn retype(
    untyped: SlotRef,
    args: &RetypeArgs,
    init: &mut impl ObjectInit,
) -> Result<Retyped, SyscallError> {
    let plan = decode_retype(untyped, args)?;
    Ok(invoke_retype(plan, init))
}

/// The original cap to a new object: all rights, unbadged, unmapped.
fn new_cap(ty: ObjectType, ptr: u64, user_bits: u32, is_device: bool) -> Cap {
    match ty {
        ObjectType::Untyped => Cap::Untyped {
            ptr,
            size_bits: user_bits as u8,
            free_index: 0,
            is_device,
        },
        ObjectType::Tcb => Cap::Tcb { ptr },
        ObjectType::Endpoint => Cap::Endpoint {
            ptr,
            badge: 0,
            rights: Rights::ALL,
        },
        ObjectType::Notification => Cap::Notification {
            ptr,
            badge: 0,
            rights: Rights::RW,
        },
        ObjectType::CNode => Cap::CNode {
            ptr,
            radix_bits: user_bits as u8,
            guard_bits: 0,
            guard: 0,
        },
        ObjectType::SmallFrame | ObjectType::LargeFrame => Cap::Frame {
            ptr,
            size: if ty == ObjectType::SmallFrame {
                FrameSize::Small
            } else {
                FrameSize::Large
            },
            rights: Rights::RW,
            is_device,
            mapped: None,
        },
        ObjectType::PageTable => Cap::PageTable { ptr, mapped: None },
        ObjectType::VSpace => Cap::VSpace { ptr, asid: None },
        ObjectType::Vcpu => Cap::Vcpu { ptr },
    }
}
