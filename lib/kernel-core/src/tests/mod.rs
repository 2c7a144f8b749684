//! Host tests: objects live in real, suitably aligned heap buffers.

mod cspace_tests;
mod delete_tests;
mod mdb_tests;
mod random;
mod untyped_tests;

use crate::cap::Cap;
use crate::delete::{Finalise, Finalised};
use crate::mdb;
use crate::slot::{MdbNode, SlotRef};
use crate::untyped::{ObjectInit, RetypeArgs, Retyped};
use axolotl_abi::ObjectType;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::BTreeSet;
use std::vec::Vec;

/// A zeroed buffer of 2^bits bytes aligned to its size, like an object in kernel memory.
pub struct Mem {
    ptr: *mut u8,
    layout: Layout,
}

impl Mem {
    pub fn new(bits: u32) -> Mem {
        let layout = Layout::from_size_align(1 << bits, 1 << bits).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Mem { ptr, layout }
    }
    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A host-allocated CNode with a cap to it (not part of any MDB).
pub fn host_cnode(radix: u8, guard_bits: u8, guard: u64) -> (Mem, Cap) {
    let m = Mem::new(radix as u32 + 5);
    let cap = Cap::CNode {
        ptr: m.addr(),
        radix_bits: radix,
        guard_bits,
        guard,
    };
    (m, cap)
}

pub fn slot(cnode: Cap, i: u64) -> SlotRef {
    match cnode {
        Cap::CNode { ptr, .. } => SlotRef::nth(ptr, i),
        _ => panic!("not a cnode"),
    }
}

/// Slots of a CNode cap, all of them.
pub fn slots(cnode: Cap) -> Vec<SlotRef> {
    match cnode {
        Cap::CNode { radix_bits, .. } => (0..1 << radix_bits).map(|i| slot(cnode, i)).collect(),
        _ => panic!(),
    }
}

/// Stand-in for the kernel: records what it is asked to do.
#[derive(Default)]
pub struct Kernel {
    pub finalised: Vec<(Cap, bool)>,
    pub resets: Vec<(u64, u64)>,
    pub inits: Vec<(ObjectType, u64, u32)>,
    /// Preempt after every n slots emptied (0 = never).
    pub preempt_every: u32,
    pub steps: u32,
    /// Slots a TCB has at its start (to test TCB zombies).
    pub tcb_slots: u32,
    /// Skip clearing memory on reset (to check that this crate empties new CNodes itself).
    pub no_clear: bool,
}

impl ObjectInit for Kernel {
    fn reset_untyped(&mut self, base: u64, used: u64, is_device: bool) {
        self.resets.push((base, used));
        if !is_device && !self.no_clear {
            // SAFETY: test untypeds are real buffers; [base, base+used) lies inside one.
            unsafe { std::ptr::write_bytes(base as *mut u8, 0, used as usize) }
        }
    }
    fn init_object(&mut self, ty: ObjectType, addr: u64, size_bits: u32, is_device: bool) {
        self.inits.push((ty, addr, size_bits));
        if !is_device && ty != ObjectType::CNode {
            // SAFETY: the object lies in a test untyped buffer.
            unsafe { std::ptr::write_bytes(addr as *mut u8, 0, 1 << size_bits) }
        }
    }
}

impl Finalise for Kernel {
    fn finalise(&mut self, cap: &Cap, is_final: bool) -> Finalised {
        self.finalised.push((*cap, is_final));
        match cap {
            Cap::Tcb { .. } if is_final && self.tcb_slots > 0 => Finalised::Slots {
                count: self.tcb_slots,
            },
            _ => Finalised::Done,
        }
    }
    fn should_preempt(&mut self) -> bool {
        self.steps += 1;
        self.preempt_every != 0 && self.steps.is_multiple_of(self.preempt_every)
    }
}

/// A root CNode (host memory) whose slot 0 holds an original untyped of 2^ut_bits.
pub struct World {
    pub _mem: Vec<Mem>,
    pub root: Cap,
    pub ut: SlotRef,
    pub ut_base: u64,
    pub k: Kernel,
}

impl World {
    pub fn new(radix: u8, ut_bits: u32) -> World {
        let (cm, root) = host_cnode(radix, 64 - radix, 0);
        let um = Mem::new(ut_bits);
        let ut = slot(root, 0);
        // SAFETY: the untyped is a fresh buffer named by no other cap.
        unsafe {
            mdb::insert_root(
                ut,
                Cap::Untyped {
                    ptr: um.addr(),
                    size_bits: ut_bits as u8,
                    free_index: 0,
                    is_device: false,
                },
            )
        };
        World {
            ut_base: um.addr(),
            _mem: vec![cm, um],
            root,
            ut,
            k: Kernel::default(),
        }
    }

    pub fn s(&self, i: u64) -> SlotRef {
        slot(self.root, i)
    }

    /// Retype from `ut` into root slots `off..off+n`.
    pub fn retype(
        &mut self,
        ut: SlotRef,
        ty: ObjectType,
        bits: u64,
        off: u64,
        n: u64,
    ) -> Result<Retyped, crate::SyscallError> {
        let args = RetypeArgs {
            ty: ty as u64,
            user_size_bits: bits,
            root: self.root,
            node_index: 0,
            node_depth: 0,
            node_offset: off,
            node_window: n,
        };
        crate::untyped::retype(ut, &args, &mut self.k)
    }
}

/// The caps of which `a` is the MDB parent: the maximal run after it (what revoke deletes).
pub fn mdb_descendants(a: SlotRef) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    if a.cap().is_null() {
        return out;
    }
    let mut n = a.next();
    while let Some(s) = n {
        if !mdb::is_mdb_parent_of(a, s) {
            break;
        }
        out.insert(s.addr());
        n = s.next();
    }
    out
}

/// Structural invariants of the MDB over the slots `universe`: empty slots have null links;
/// every link points into the universe at a non-empty slot and is mirrored; following `next`
/// from the heads visits every non-empty slot exactly once (no cycles, nothing unreachable);
/// caps to one object are contiguous.
pub fn check_mdb(universe: &[SlotRef]) {
    let set: BTreeSet<u64> = universe.iter().map(|s| s.addr()).collect();
    let live: Vec<SlotRef> = universe
        .iter()
        .copied()
        .filter(|s| !s.cap().is_null())
        .collect();
    for s in universe {
        let m = s.mdb();
        if s.cap().is_null() {
            assert_eq!(m, MdbNode::NULL, "empty slot {s:?} has links");
            continue;
        }
        if let Some(p) = m.prev {
            assert!(set.contains(&p.addr()), "{s:?}.prev dangles");
            assert!(!p.cap().is_null(), "{s:?}.prev is empty");
            assert_eq!(p.next(), Some(*s), "prev.next != self at {s:?}");
        }
        if let Some(n) = m.next {
            assert!(set.contains(&n.addr()), "{s:?}.next dangles");
            assert!(!n.cap().is_null(), "{s:?}.next is empty");
            assert_eq!(n.prev(), Some(*s), "next.prev != self at {s:?}");
        }
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for h in live.iter().filter(|s| s.prev().is_none()) {
        let mut c = Some(*h);
        while let Some(s) = c {
            assert!(seen.insert(s.addr()), "cycle at {s:?}");
            order.push(s);
            c = s.next();
        }
    }
    assert_eq!(
        seen.len(),
        live.len(),
        "caps unreachable from any list head"
    );
    // Caps to one object are adjacent (finality relies on it).
    for (i, a) in order.iter().enumerate() {
        for (j, b) in order.iter().enumerate().skip(i + 2) {
            if a.cap().same_object_as(&b.cap()) {
                for m in &order[i + 1..j] {
                    assert!(
                        a.cap().same_object_as(&m.cap()),
                        "caps to one object split: {a:?} {m:?} {b:?}"
                    );
                }
            }
        }
    }
}
