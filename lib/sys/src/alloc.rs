//! Bump allocation of CSpace slots and kernel objects for the root task and tests: nothing is
//! ever freed individually; [`SlotAlloc::rewind`] gives slots back wholesale once their caps
//! are deleted (e.g. after revoking the untyped they came from).

use crate::caps::{CNode, Untyped};
use crate::invoke::InvocationError;
use axolotl_abi::{BootInfo, CPtr, Error, ObjectType, bootinfo::init_cap};

/// Depth of a slot address in the root task's single-level CNode (its guard covers the rest).
pub const ROOT_DEPTH: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotAlloc {
    next: u64,
    end: u64,
}

impl SlotAlloc {
    /// Slots `[first, end)`.
    pub const fn new(first: u64, end: u64) -> Self {
        SlotAlloc { next: first, end }
    }

    /// The empty slots the kernel left in the root task's CNode.
    pub fn from_bootinfo(bi: &BootInfo) -> Self {
        Self::new(bi.first_free_slot, 1 << bi.cnode_size_bits)
    }

    pub fn alloc(&mut self) -> Option<CPtr> {
        self.alloc_n(1)
    }

    /// `n` consecutive slots (Retype fills a window of slots).
    pub fn alloc_n(&mut self, n: u64) -> Option<CPtr> {
        (self.end - self.next >= n).then(|| {
            self.next += n;
            self.next - n
        })
    }

    pub fn mark(&self) -> u64 {
        self.next
    }

    /// Forgets every slot allocated since `mark` (the caller has emptied them).
    pub fn rewind(&mut self, mark: u64) {
        assert!(mark <= self.next);
        self.next = mark;
    }

    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }
}

/// Most untyped caps an [`ObjectAlloc`] draws from: the kernel's RAM untypeds (one per
/// address bit between the root task's end and the end of RAM) and the untypeds carved below
/// regions at fixed RAM addresses ([`place_fixed`]).
pub const MAX_POOL: usize = 64;

/// Creates objects in fresh slots of the root CNode, from a list of untyped caps, moving to
/// the next one when the kernel says the current one is full.
pub struct ObjectAlloc {
    pub root: CNode,
    pub slots: SlotAlloc,
    pool: [Untyped; MAX_POOL],
    len: usize,
    cur: usize,
}

impl ObjectAlloc {
    pub fn new(root: CNode, slots: SlotAlloc) -> Self {
        ObjectAlloc {
            root,
            slots,
            pool: [Untyped(0); MAX_POOL],
            len: 0,
            cur: 0,
        }
    }

    /// The root task's allocator over every RAM (non-device) untyped, largest first.
    pub fn from_bootinfo(bi: &BootInfo) -> Self {
        let mut a = Self::new(CNode(init_cap::CNODE), SlotAlloc::from_bootinfo(bi));
        let n = (bi.num_untyped as usize).min(bi.untyped.len());
        let mut order: [usize; axolotl_abi::bootinfo::MAX_UNTYPED] = core::array::from_fn(|i| i);
        order[..n].sort_unstable_by_key(|&i| core::cmp::Reverse(bi.untyped[i].size_bits));
        for &i in &order[..n] {
            if bi.untyped[i].is_device == 0 {
                a.add_untyped(Untyped(init_cap::FIRST_UNTYPED + i as u64));
            }
        }
        a
    }

    /// The root task's allocator over `untyped` (`(cap, size_bits)`), largest first: what
    /// [`ObjectAlloc::from_bootinfo`] draws from once regions at fixed RAM addresses are
    /// carved out, with the untypeds carved below them. Beyond [`MAX_POOL`], the smallest
    /// are left out.
    pub fn from_untypeds(root: CNode, slots: SlotAlloc, untyped: &mut [(Untyped, u8)]) -> Self {
        let mut a = Self::new(root, slots);
        untyped.sort_unstable_by_key(|&(ut, bits)| (core::cmp::Reverse(bits), ut.0));
        for &(ut, _) in untyped.iter() {
            a.add_untyped(ut);
        }
        a
    }

    /// Returns false when the pool is full.
    pub fn add_untyped(&mut self, ut: Untyped) -> bool {
        if self.len == MAX_POOL {
            return false;
        }
        self.pool[self.len] = ut;
        self.len += 1;
        true
    }

    /// One object of `ty` (`user_bits`: size of an Untyped, slots of a CNode) in a new slot.
    pub fn alloc(&mut self, ty: ObjectType, user_bits: u64) -> Result<CPtr, InvocationError> {
        let slot = self.slots.alloc().ok_or(InvocationError {
            error: Error::NotEnoughMemory,
            detail: [0; 5],
            len: 0,
            unknown_code: 0,
        })?;
        let mut last = None;
        while self.cur < self.len {
            match self.pool[self.cur].retype(ty, user_bits, self.root, 0, 0, slot, 1) {
                Ok(()) => return Ok(slot),
                Err(e) if e.error == Error::NotEnoughMemory => {
                    last = Some(e);
                    self.cur += 1;
                }
                Err(e) => {
                    self.slots.rewind(slot);
                    return Err(e);
                }
            }
        }
        self.slots.rewind(slot);
        Err(last.unwrap_or(InvocationError {
            error: Error::NotEnoughMemory,
            detail: [0; 5],
            len: 0,
            unknown_code: 0,
        }))
    }
}

/// Sizes (log2) of the untyped objects that, retyped one after another from the watermark
/// `cur`, bring it exactly to `target`: each naturally aligned, as the kernel places objects.
/// Retyping a device frame at a fixed physical address needs this filler below it.
pub fn fillers(mut cur: u64, target: u64) -> impl Iterator<Item = u32> {
    core::iter::from_fn(move || {
        if cur >= target {
            return None;
        }
        let gap = target - cur;
        let bits = cur.trailing_zeros().min(63 - gap.leading_zeros()).min(47);
        cur += 1 << bits;
        Some(bits)
    })
}

/// An untyped as [`place_fixed`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub base: u64,
    pub size_bits: u8,
    pub device: bool,
    /// Bytes from `base` below which the untyped is used (the kernel's watermark).
    pub mark: u64,
}

impl Span {
    pub fn end(&self) -> u64 {
        self.base
            .saturating_add(1u64.checked_shl(self.size_bits as u32).unwrap_or(0))
    }
}

/// Why `[pa, pa + size)` cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// No untyped covers it all: memory the kernel or the root task holds, the kernel's
    /// console, not on the board, or across two untypeds.
    Outside,
    /// Below the watermark of the untyped covering it: another region placed there, or the
    /// regions were not placed in address order.
    Taken,
}

/// Where a region at a fixed address goes: in untyped `untyped` of the spans, whose
/// watermark was at `base + from`. The caller retypes [`fillers`]`(from, pa)` as untypeds
/// (kept usable when the span is RAM), then the region's frames; the span's watermark is
/// already past the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub untyped: usize,
    pub from: u64,
    pub device: bool,
}

/// Places `[pa, pa + size)` in the untyped of `spans` that covers it, seL4 style: the kernel
/// retypes an untyped from its watermark up, so a frame lands at `pa` only once the gap
/// below it is retyped into untypeds. Regions must be placed in increasing address order.
pub fn place_fixed(spans: &mut [Span], pa: u64, size: u64) -> Result<Placement, PlaceError> {
    let end = pa.checked_add(size).ok_or(PlaceError::Outside)?;
    let (i, s) = spans
        .iter_mut()
        .enumerate()
        .find(|(_, s)| pa >= s.base && end <= s.end())
        .ok_or(PlaceError::Outside)?;
    let from = s.base + s.mark;
    if from > pa {
        return Err(PlaceError::Taken);
    }
    s.mark = end - s.base;
    Ok(Placement {
        untyped: i,
        from,
        device: s.device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(base: u64, size_bits: u8, device: bool) -> Span {
        Span {
            base,
            size_bits,
            device,
            mark: 0,
        }
    }

    #[test]
    fn fixed_regions_land_where_asked_and_keep_the_gap_below() {
        // QEMU virt with 2 GiB: the kernel's last RAM untyped, a GiB at 0x8000_0000, and
        // a device untyped.
        let mut spans = [
            span(0x7000_0000, 28, false),
            span(0x8000_0000, 30, false),
            span(0x0904_0000, 16, true),
        ];
        let p = place_fixed(&mut spans, 0x8000_0000, 0x1000).unwrap();
        assert_eq!((p.untyped, p.from, p.device), (1, 0x8000_0000, false));
        assert!(fillers(p.from, 0x8000_0000).next().is_none());
        let p = place_fixed(&mut spans, 0xa000_0000, 0x20_0000).unwrap();
        assert_eq!(p.from, 0x8000_1000);
        let mut at = p.from;
        for b in fillers(p.from, 0xa000_0000) {
            at += 1 << b;
        }
        assert_eq!(at, 0xa000_0000);
        assert_eq!(spans[1].mark, 0x2020_0000);
        let p = place_fixed(&mut spans, 0x0904_8000, 0x1000).unwrap();
        assert!(p.device);
        assert_eq!(p.from, 0x0904_0000);
    }

    #[test]
    fn fixed_regions_outside_the_untypeds_or_behind_are_refused() {
        let mut spans = [span(0x4100_0000, 24, false), span(0x8000_0000, 30, false)];
        // The kernel's memory below the first untyped, past the end of RAM, across two.
        for (pa, size) in [
            (0x4020_0000, 0x1000),
            (0xc000_0000, 0x1000),
            (0x41ff_f000, 0x2000),
            (0x7fff_f000, 0x2000),
            (u64::MAX - 0xfff, 0x2000),
        ] {
            assert_eq!(
                place_fixed(&mut spans, pa, size),
                Err(PlaceError::Outside),
                "{pa:#x}"
            );
        }
        place_fixed(&mut spans, 0x8010_0000, 0x1000).unwrap();
        assert_eq!(
            place_fixed(&mut spans, 0x8000_0000, 0x1000),
            Err(PlaceError::Taken)
        );
        assert_eq!(
            place_fixed(&mut spans, 0x8010_0000, 0x1000),
            Err(PlaceError::Taken)
        );
        place_fixed(&mut spans, 0x8010_1000, 0x1000).unwrap();
    }

    #[test]
    fn the_pool_takes_carved_untypeds_largest_first() {
        let mut uts = [(Untyped(30), 12), (Untyped(31), 30), (Untyped(32), 20)];
        let a = ObjectAlloc::from_untypeds(CNode(2), SlotAlloc::new(40, 50), &mut uts);
        assert_eq!(&a.pool[..a.len], &[Untyped(31), Untyped(32), Untyped(30)]);
    }

    #[test]
    fn fillers_end_exactly_at_the_target_and_stay_aligned() {
        for (cur, target) in [
            (0x0900_0000u64, 0x0904_0000u64),
            (0x0900_1000, 0x0904_0000),
            (0x0900_1000, 0x0900_1000),
            (0x1000, 0x7_f000),
            (0x0, 0x1_2345_6000),
        ] {
            let mut at = cur;
            for b in fillers(cur, target) {
                assert!((4..=47).contains(&b));
                assert_eq!(at % (1 << b), 0, "misaligned filler at {at:#x}");
                at += 1 << b;
            }
            assert_eq!(at, target);
        }
        assert!(fillers(0x0900_0000, 0x0904_0000).eq([18]));
    }

    #[test]
    fn slots_bump_and_rewind() {
        let mut s = SlotAlloc::new(20, 24);
        assert_eq!(s.alloc(), Some(20));
        let m = s.mark();
        assert_eq!(s.alloc_n(3), Some(21));
        assert_eq!(s.alloc(), None);
        s.rewind(m);
        assert_eq!(s.remaining(), 3);
        assert_eq!(s.alloc_n(4), None);
        assert_eq!(s.alloc_n(3), Some(21));
    }

    #[test]
    fn bootinfo_pool_skips_devices_and_starts_big() {
        let mut bi = BootInfo {
            cnode_size_bits: 12,
            first_free_slot: 19,
            num_untyped: 3,
            untyped: [Default::default(); axolotl_abi::bootinfo::MAX_UNTYPED],
            tick_hz: 100,
            gic_version: 3,
            gicv_paddr: 0,
        };
        bi.untyped[0].size_bits = 20;
        bi.untyped[1].size_bits = 30;
        bi.untyped[1].is_device = 1;
        bi.untyped[2].size_bits = 25;
        let a = ObjectAlloc::from_bootinfo(&bi);
        assert_eq!(&a.pool[..a.len], &[Untyped(18), Untyped(16)]);
        assert_eq!(a.slots, SlotAlloc::new(19, 4096));
    }
}
