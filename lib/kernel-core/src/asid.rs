//! ASID allocation. On this kernel an ASID *is* the stage-2 VMID of a VSpace.
//!
//! Design: VMIDs are 8 bits on every ARMv8 core (16 with FEAT_VMID16, not assumed), so there
//! are [`NUM_ASIDS`] = 256 ASIDs; ASID 0 is reserved (never assigned) so that "no ASID" needs
//! no extra state in the hardware. They are split into [`NUM_POOLS`] pools of
//! [`ASID_POOL_SIZE`]. The table of which VSpace owns which ASID is a fixed kernel array
//! ([`AsidTable`], 2 KiB, a `static` in the kernel), so pools need no memory: as seL4's
//! AsidControl/AsidPool, the single boot-time `AsidControl` cap hands out `AsidPool { base }`
//! caps (revocable MDB children of AsidControl, like IRQ handlers of IRQ control), and a pool
//! cap assigns its ASIDs to VSpaces (`AsidPoolAssign`), recording the ASID in the VSpace cap.
//! Because the whole ASID space is in one small array, no ASIDs are recycled lazily and
//! there is no VMID roll-over: when a pool's last cap is deleted the kernel calls
//! [`AsidTable::free_pool`] and flushes the TLB for each freed VMID; when a VSpace's last cap
//! is deleted it calls [`AsidTable::free_asid`]. Stale ASIDs in caps are harmless: every use
//! checks the table (`lookup`) as seL4's `findVSpaceForASID` does.

use crate::cap::{Asid, Cap};
use crate::error::SyscallError;
use crate::mdb::insert_copy;
use crate::slot::SlotRef;

// The numbers are kernel-config's: the root task and the SDF checker plan with them too.
pub use axolotl_kernel_config::limits::{
    ASID_BITS, ASID_POOL_BITS, ASID_POOL_SIZE, NUM_ASID_POOLS as NUM_POOLS, NUM_ASIDS,
};

pub struct AsidTable {
    pool_used: [bool; NUM_POOLS],
    /// VSpace address per ASID, 0 = free.
    vspace: [u64; NUM_ASIDS],
}

impl Default for AsidTable {
    fn default() -> Self {
        Self::new()
    }
}

impl AsidTable {
    pub const fn new() -> Self {
        AsidTable {
            pool_used: [false; NUM_POOLS],
            vspace: [0; NUM_ASIDS],
        }
    }

    /// The VSpace an ASID is assigned to.
    pub fn lookup(&self, asid: Asid) -> Option<u64> {
        self.vspace.get(asid as usize).copied().filter(|&v| v != 0)
    }

    /// AsidControl MakePool, checked: the next free pool, whose cap goes in `dest` (a child
    /// of `control`). [`AsidTable::invoke_make_pool`] carries it out.
    pub fn decode_make_pool(
        &self,
        control: SlotRef,
        dest: SlotRef,
    ) -> Result<MakePool, SyscallError> {
        if !matches!(control.cap(), Cap::AsidControl) {
            return Err(SyscallError::IllegalOperation);
        }
        if !dest.cap().is_null() {
            return Err(SyscallError::DeleteFirst);
        }
        let pool = self
            .pool_used
            .iter()
            .position(|u| !u)
            .ok_or(SyscallError::DeleteFirst)?;
        Ok(MakePool {
            control,
            dest,
            pool,
        })
    }

    /// Carries out a [`MakePool`]; returns the pool's first ASID.
    pub fn invoke_make_pool(&mut self, p: MakePool) -> Asid {
        self.pool_used[p.pool] = true;
        let base = (p.pool * ASID_POOL_SIZE) as Asid;
        // SAFETY: a pool cap names no memory; it is covered by AsidControl.
        unsafe { insert_copy(p.control, p.dest, Cap::AsidPool { base }) };
        base
    }

    /// [`AsidTable::decode_make_pool`] then [`AsidTable::invoke_make_pool`].
    pub fn make_pool(&mut self, control: SlotRef, dest: SlotRef) -> Result<Asid, SyscallError> {
        let p = self.decode_make_pool(control, dest)?;
        Ok(self.invoke_make_pool(p))
    }

    /// AsidPool Assign, checked: a free ASID of the pool in `pool` for the VSpace in
    /// `vspace`. [`AsidTable::invoke_assign`] carries it out.
    pub fn decode_assign(&self, pool: SlotRef, vspace: SlotRef) -> Result<Assign, SyscallError> {
        let Cap::AsidPool { base } = pool.cap() else {
            return Err(SyscallError::IllegalOperation);
        };
        let Cap::VSpace { ptr, asid: None } = vspace.cap() else {
            return Err(SyscallError::InvalidCapability { arg: 0 });
        };
        if !self.pool_used[base as usize / ASID_POOL_SIZE] {
            return Err(SyscallError::IllegalOperation);
        }
        let range = base as usize..base as usize + ASID_POOL_SIZE;
        let asid = range
            .filter(|&a| a != 0)
            .find(|&a| self.vspace[a] == 0)
            .ok_or(SyscallError::DeleteFirst)? as Asid;
        Ok(Assign { vspace, ptr, asid })
    }

    /// Carries out an [`Assign`]; returns the ASID.
    pub fn invoke_assign(&mut self, a: Assign) -> Asid {
        self.vspace[a.asid as usize] = a.ptr;
        a.vspace.set_vspace_asid(Some(a.asid));
        a.asid
    }

    /// [`AsidTable::decode_assign`] then [`AsidTable::invoke_assign`].
    pub fn assign(&mut self, pool: SlotRef, vspace: SlotRef) -> Result<Asid, SyscallError> {
        let a = self.decode_assign(pool, vspace)?;
        Ok(self.invoke_assign(a))
    }

    /// The last cap to a VSpace is gone: free its ASID if it still owns it.
    pub fn free_asid(&mut self, asid: Asid, vspace: u64) -> bool {
        let e = &mut self.vspace[asid as usize];
        let owned = *e == vspace && vspace != 0;
        if owned {
            *e = 0;
        }
        owned
    }

    /// The last cap to a pool is gone: frees the pool and calls `flushed(asid, vspace)` for
    /// every ASID that was assigned (the kernel invalidates that VMID's TLB entries).
    pub fn free_pool(&mut self, base: Asid, mut flushed: impl FnMut(Asid, u64)) {
        let i = base as usize / ASID_POOL_SIZE;
        self.pool_used[i] = false;
        for a in i * ASID_POOL_SIZE..(i + 1) * ASID_POOL_SIZE {
            if self.vspace[a] != 0 {
                flushed(a as Asid, self.vspace[a]);
                self.vspace[a] = 0;
            }
        }
    }
}

/// A checked AsidControl MakePool; only [`AsidTable::decode_make_pool`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MakePool {
    control: SlotRef,
    dest: SlotRef,
    pool: usize,
}

/// A checked AsidPool Assign; only [`AsidTable::decode_assign`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assign {
    vspace: SlotRef,
    ptr: u64,
    asid: Asid,
}

/// What the CPU's stage-2 translation register (VTTBR_EL2) holds: the root and VMID of the
/// VSpace last installed, or nothing the kernel trusts.
///
/// Both halves decide whether a switch must write it. Comparing the root alone (as the kernel
/// once did) let a new VSpace created at a deleted one's address, with another ASID, run under
/// the deleted one's VMID: once that VMID was assigned again, the TLB entries tagged with it
/// would translate for two address spaces. QEMU flushes its TLB on every VTTBR write and
/// cannot show this; real hardware can (issue #13, docs/security.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadedVSpace(Option<(u64, Asid)>);

impl LoadedVSpace {
    pub const NONE: LoadedVSpace = LoadedVSpace(None);

    /// Records that `(root, asid)` is to run; true when VTTBR must be written for it.
    pub fn switch(&mut self, root: u64, asid: Asid) -> bool {
        let want = Some((root, asid));
        let changed = self.0 != want;
        self.0 = want;
        changed
    }

    /// `asid` was freed (its VSpace's last cap or its pool deleted; the kernel flushes that
    /// VMID's TLB entries): if it is the one installed, the next switch writes VTTBR whatever
    /// root it brings.
    pub fn forget(&mut self, asid: Asid) {
        if matches!(self.0, Some((_, a)) if a == asid) {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{World, slots};
    use axolotl_abi::ObjectType;
    use std::vec::Vec;

    #[test]
    fn a_new_vmid_at_a_known_root_is_installed() {
        let mut l = LoadedVSpace::NONE;
        assert!(l.switch(0x4000_0000, 1));
        assert!(!l.switch(0x4000_0000, 1), "same VSpace: nothing to write");
        // A VSpace deleted and another made at its address with another ASID.
        assert!(
            l.switch(0x4000_0000, 2),
            "same root, other VMID: VTTBR must change"
        );
        assert!(l.switch(0x5000_0000, 2));
        l.forget(3);
        assert!(
            !l.switch(0x5000_0000, 2),
            "forgetting another ASID changes nothing"
        );
        // Its ASID freed and given to a VSpace at the same root: still a new install.
        l.forget(2);
        assert!(l.switch(0x5000_0000, 2));
    }

    #[test]
    fn pools_assign_distinct_nonzero_asids_and_free() {
        let mut w = World::new(8, 20);
        let mut t = AsidTable::new();
        // SAFETY: AsidControl names no memory.
        unsafe { crate::mdb::insert_root(w.s(1), Cap::AsidControl) };
        for i in 0..NUM_POOLS as u64 {
            assert_eq!(t.make_pool(w.s(1), w.s(10 + i)), Ok(i as Asid * 32));
            assert!(crate::mdb::is_mdb_parent_of(w.s(1), w.s(10 + i)));
        }
        assert_eq!(t.make_pool(w.s(1), w.s(30)), Err(SyscallError::DeleteFirst));
        assert_eq!(t.make_pool(w.s(1), w.s(10)), Err(SyscallError::DeleteFirst));
        w.retype(w.ut, ObjectType::VSpace, 0, 40, 33).unwrap();
        let mut got = vec![];
        for i in 0..31 {
            got.push(t.assign(w.s(10), w.s(40 + i)).unwrap());
        }
        assert_eq!(got, (1..32).collect::<Vec<_>>(), "ASID 0 is never assigned");
        assert_eq!(t.assign(w.s(10), w.s(71)), Err(SyscallError::DeleteFirst));
        assert_eq!(
            t.assign(w.s(10), w.s(40)),
            Err(SyscallError::InvalidCapability { arg: 0 }),
            "already has an ASID"
        );
        assert_eq!(
            w.s(40).cap(),
            Cap::VSpace {
                ptr: t.lookup(1).unwrap(),
                asid: Some(1)
            }
        );
        assert_eq!(t.assign(w.s(11), w.s(71)), Ok(32));
        let Cap::VSpace { ptr, .. } = w.s(41).cap() else {
            panic!()
        };
        assert!(t.free_asid(2, ptr));
        assert!(!t.free_asid(2, ptr));
        assert_eq!(t.assign(w.s(10), w.s(72)), Ok(2));
        let mut flushed = vec![];
        t.free_pool(0, |a, _| flushed.push(a));
        assert_eq!(flushed.len(), 31);
        assert_eq!(t.lookup(1), None);
        assert!(t.lookup(32).is_some());
        // Revoking AsidControl removes every pool cap.
        crate::revoke::revoke(w.s(1), &mut w.k).unwrap();
        assert!((10..18).all(|i| w.s(i).cap().is_null()));
        crate::tests::check_mdb(&slots(w.root));
    }
}
