//! Capability slots (seL4's CTE) and the one place raw slot pointers are dereferenced.
//!
//! A slot is 32 bytes: the cap (2 words) then the MDB node (2 words):
//! word 2 = prev slot address, word 3 = next slot address | revocable << 1 | first_badged.
//! Slots are 32-byte aligned, so the low bits of `next` are free for the flags.
//!
//! Crate invariant (what makes the `SAFETY` comments below true): every slot address stored in
//! an MDB node, in a CNode cap (as its slot array) or in a zombie is the address of a live,
//! 32-byte aligned slot. The kernel establishes it for the slots it hands in through
//! [`SlotRef::from_addr`]; this crate preserves it because memory only stops being slots after
//! the last cap to it (and its MDB node) is gone. The kernel is single-threaded in these
//! paths (big lock), and slots are only accessed through raw pointers, never references, so
//! aliasing `SlotRef`s are fine.

use crate::cap::Cap;
use core::ptr::NonNull;

/// log2 of the size of a slot.
pub const SLOT_BITS: u32 = 5;

#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Slot {
    cap: [u64; 2],
    mdb: [u64; 2],
}

impl Slot {
    /// An empty slot (all zero, like freshly zeroed memory).
    pub const EMPTY: Slot = Slot {
        cap: [0; 2],
        mdb: [0; 2],
    };
}

const _: () = assert!(core::mem::size_of::<Slot>() == 1 << SLOT_BITS);

/// The derivation-tree links of a slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MdbNode {
    pub prev: Option<SlotRef>,
    pub next: Option<SlotRef>,
    pub revocable: bool,
    pub first_badged: bool,
}

impl MdbNode {
    pub const NULL: MdbNode = MdbNode {
        prev: None,
        next: None,
        revocable: false,
        first_badged: false,
    };
}

/// A reference to a live slot (see the module invariant).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SlotRef(NonNull<Slot>);

impl core::fmt::Debug for SlotRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Slot({:#x})", self.addr())
    }
}

impl SlotRef {
    /// # Safety
    /// `addr` must be a 32-byte aligned slot (initialised, e.g. zeroed) that stays valid, and
    /// is accessed only through this crate, for as long as caps or MDB links may refer to it.
    pub unsafe fn from_addr(addr: u64) -> Option<SlotRef> {
        debug_assert!(addr.is_multiple_of(32), "misaligned slot {addr:#x}");
        NonNull::new(addr as usize as *mut Slot).map(SlotRef)
    }

    /// A slot address this crate read from a cap or MDB node: live by the crate invariant.
    pub(crate) fn from_stored(addr: u64) -> Option<SlotRef> {
        // SAFETY: addresses stored in MDB nodes, CNode caps and zombies are live slots
        // (module invariant).
        unsafe { Self::from_addr(addr) }
    }

    /// Slot `index` of the slot array at `base` (a CNode, or the slots at the start of a TCB).
    pub(crate) fn nth(base: u64, index: u64) -> SlotRef {
        Self::from_stored(base + (index << SLOT_BITS)).expect("slot array at address 0")
    }

    pub fn addr(self) -> u64 {
        self.0.as_ptr() as usize as u64
    }

    #[inline]
    pub fn cap(self) -> Cap {
        // SAFETY: live slot (invariant); raw read, no reference is created.
        Cap::decode(unsafe { (&raw const (*self.0.as_ptr()).cap).read() })
    }

    /// Writing arbitrary caps could forge authority or wild pointers: crate-internal only.
    pub(crate) fn set_cap(self, cap: Cap) {
        // SAFETY: live slot (invariant); raw write, no reference is created.
        unsafe { (&raw mut (*self.0.as_ptr()).cap).write(cap.encode()) }
    }

    pub fn mdb(self) -> MdbNode {
        // SAFETY: live slot (invariant); raw read.
        let [p, n] = unsafe { (&raw const (*self.0.as_ptr()).mdb).read() };
        MdbNode {
            prev: Self::from_stored(p),
            next: Self::from_stored(n & !0x1f),
            revocable: n & 2 != 0,
            first_badged: n & 1 != 0,
        }
    }

    pub(crate) fn set_mdb(self, m: MdbNode) {
        let w = [
            m.prev.map_or(0, SlotRef::addr),
            m.next.map_or(0, SlotRef::addr) | (m.revocable as u64) << 1 | m.first_badged as u64,
        ];
        // SAFETY: live slot (invariant); raw write.
        unsafe { (&raw mut (*self.0.as_ptr()).mdb).write(w) }
    }

    pub fn next(self) -> Option<SlotRef> {
        self.mdb().next
    }

    pub fn prev(self) -> Option<SlotRef> {
        self.mdb().prev
    }

    pub(crate) fn set_next(self, next: Option<SlotRef>) {
        self.set_mdb(MdbNode { next, ..self.mdb() })
    }

    pub(crate) fn set_prev(self, prev: Option<SlotRef>) {
        self.set_mdb(MdbNode { prev, ..self.mdb() })
    }

    /// Records where a Frame or PageTable cap is mapped (or that it is not). Only the mapping
    /// changes, so authority is unchanged. Returns false (and changes nothing) for other caps.
    pub fn set_mapping(self, mapping: Option<crate::cap::Mapping>) -> bool {
        match self.cap() {
            Cap::Frame {
                ptr,
                size,
                rights,
                is_device,
                ..
            } => self.set_cap(Cap::Frame {
                ptr,
                size,
                rights,
                is_device,
                mapped: mapping,
            }),
            Cap::PageTable { ptr, .. } => self.set_cap(Cap::PageTable {
                ptr,
                mapped: mapping,
            }),
            _ => return false,
        }
        true
    }

    /// Records the ASID assigned to a VSpace cap (or its removal). False for other caps.
    pub fn set_vspace_asid(self, asid: Option<crate::cap::Asid>) -> bool {
        match self.cap() {
            Cap::VSpace { ptr, .. } => {
                self.set_cap(Cap::VSpace { ptr, asid });
                true
            }
            _ => false,
        }
    }

    /// Overwrites the cap without touching the MDB.
    ///
    /// # Safety
    /// `cap` must name only live objects of its type (no forged pointers) and keep the MDB
    /// invariants (it must be the same object as the cap it replaces).
    pub unsafe fn write_cap(self, cap: Cap) {
        self.set_cap(cap)
    }
}
