//! Stage-2 translation tables: the format of every VSpace (native PDs and guests alike).
//!
//! As seL4 does in hypervisor mode, native threads run at EL0 with stage-1 disabled
//! (HCR_EL2.{TGE,DC}), so a VSpace is a stage-2 table: 4 KiB granule, 39-bit IPA, walks start
//! at level 1 (VTCR_EL2.SL0 = 1) and the root is a single 4 KiB table. Table memory is
//! reached through the kernel's identity map, so table addresses are physical addresses.

pub const IPA_BITS: u32 = 39;
pub const PAGE_SIZE: u64 = 4096;
const ENTRIES: usize = 512;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 3 << 8;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const XN: u64 = 1 << 54;
const MEMATTR_SHIFT: u32 = 2;
/// Normal, inner and outer write-back cacheable.
const MEMATTR_NORMAL_WB: u64 = 0b1111 << MEMATTR_SHIFT;
/// Device-nGnRE.
const MEMATTR_DEVICE: u64 = 0b0001 << MEMATTR_SHIFT;
/// Normal, non-cacheable.
const MEMATTR_NORMAL_NC: u64 = 0b0101 << MEMATTR_SHIFT;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Access and memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapAttrs {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    pub kind: MemKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    Cached,
    Uncached,
    Device,
}

impl MapAttrs {
    pub const fn descriptor_bits(self) -> u64 {
        let mut d = AF | SH_INNER;
        if self.read {
            d |= S2AP_READ;
        }
        if self.write {
            d |= S2AP_WRITE;
        }
        if !self.execute {
            d |= XN;
        }
        d | match self.kind {
            MemKind::Cached => MEMATTR_NORMAL_WB,
            MemKind::Uncached => MEMATTR_NORMAL_NC,
            MemKind::Device => MEMATTR_DEVICE,
        }
    }

    pub const fn from_descriptor(d: u64) -> Self {
        MapAttrs {
            read: d & S2AP_READ != 0,
            write: d & S2AP_WRITE != 0,
            execute: d & XN == 0,
            kind: match (d >> MEMATTR_SHIFT) & 0xf {
                0b1111 => MemKind::Cached,
                0b0101 => MemKind::Uncached,
                _ => MemKind::Device,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The IPA is beyond the 39-bit space or not page aligned.
    BadAddress,
    /// Something is already mapped there.
    AlreadyMapped,
    /// A table level is missing and no table was supplied.
    NeedTable { level: u8 },
}

/// Index of `ipa` in a table of `level` (1..=3).
const fn index(ipa: u64, level: u8) -> usize {
    ((ipa >> (12 + 9 * (3 - level as u32))) & 0x1ff) as usize
}

/// An empty entry of a table, found by a checked walk (`*_entry`): writing it is the perform
/// half of a map and cannot fail. Kept no longer than the invocation that found it.
#[derive(Clone, Copy)]
pub struct Entry {
    table: Table,
    i: usize,
}

impl Entry {
    /// Maps a 4 KiB page (an entry from [`Table::page_entry`]).
    pub fn install_page(self, pa: u64, attrs: MapAttrs) {
        self.table
            .set(self.i, pa | attrs.descriptor_bits() | VALID | TABLE_OR_PAGE);
    }

    /// Maps a 2 MiB block (an entry from [`Table::block_entry`]).
    pub fn install_block(self, pa: u64, attrs: MapAttrs) {
        self.table.set(self.i, pa | attrs.descriptor_bits() | VALID);
    }

    /// Links a zeroed table (an entry from [`Table::table_entry`]).
    pub fn install_table(self, table_pa: u64) {
        self.table.set(self.i, table_pa | VALID | TABLE_OR_PAGE);
    }
}

/// A view of a table in memory at a physical (= kernel virtual) address.
///
/// # Safety
/// Callers of the constructor guarantee that `pa` is a 4 KiB table owned by this VSpace
/// and reachable through the kernel's identity map.
#[derive(Clone, Copy)]
pub struct Table(*mut u64);

impl Table {
    /// # Safety
    /// See the type's documentation.
    pub const unsafe fn at(pa: u64) -> Self {
        Table(pa as *mut u64)
    }
    fn get(self, i: usize) -> u64 {
        assert!(i < ENTRIES);
        // SAFETY: i < 512 and the table is 512 entries (type invariant).
        unsafe { self.0.add(i).read_volatile() }
    }
    fn set(self, i: usize, v: u64) {
        assert!(i < ENTRIES);
        // SAFETY: as in `get`; volatile because the hardware walker reads it.
        unsafe { self.0.add(i).write_volatile(v) }
    }
    fn next(self, i: usize) -> Option<Table> {
        let d = self.get(i);
        // SAFETY: only the kernel writes table descriptors, and only with owned tables.
        (d & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE)
            .then(|| unsafe { Table::at(d & ADDR_MASK) })
    }

    /// Maps one 4 KiB page. Missing intermediate tables are taken from `alloc_table`, which
    /// returns zeroed 4 KiB tables (or `None`, reported as `NeedTable`).
    pub fn map_page(
        self,
        ipa: u64,
        pa: u64,
        attrs: MapAttrs,
        alloc_table: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<(), MapError> {
        if ipa >> IPA_BITS != 0
            || !ipa.is_multiple_of(PAGE_SIZE)
            || !pa.is_multiple_of(PAGE_SIZE)
            || pa & !ADDR_MASK != 0
        {
            return Err(MapError::BadAddress);
        }
        let mut table = self;
        for level in 1..3u8 {
            let i = index(ipa, level);
            table = match table.next(i) {
                Some(t) => t,
                None if table.get(i) & VALID != 0 => return Err(MapError::AlreadyMapped),
                None => {
                    let new = alloc_table().ok_or(MapError::NeedTable { level: level + 1 })?;
                    table.set(i, new | VALID | TABLE_OR_PAGE);
                    // SAFETY: alloc_table hands over an owned zeroed table.
                    unsafe { Table::at(new) }
                }
            };
        }
        let i = index(ipa, 3);
        if table.get(i) & VALID != 0 {
            return Err(MapError::AlreadyMapped);
        }
        table.set(i, pa | attrs.descriptor_bits() | VALID | TABLE_OR_PAGE);
        Ok(())
    }

    /// Installs the zeroed table at `table_pa` at the first level missing on the walk to
    /// `ipa` (2 or 3); `AlreadyMapped` when the walk is complete (seL4: DeleteFirst). The
    /// kernel maps in two halves (`table_entry`, then the write); the tests map at once.
    #[cfg(test)]
    pub fn map_table(self, ipa: u64, table_pa: u64) -> Result<u8, MapError> {
        let (e, level) = self.table_entry(ipa, table_pa)?;
        e.install_table(table_pa);
        Ok(level)
    }

    /// Where [`Table::map_table`] would link `table_pa`, and at which level the table serves:
    /// every check done, nothing changed (seL4's decode half).
    pub fn table_entry(self, ipa: u64, table_pa: u64) -> Result<(Entry, u8), MapError> {
        if ipa >> IPA_BITS != 0 || table_pa & !ADDR_MASK != 0 || !table_pa.is_multiple_of(PAGE_SIZE)
        {
            return Err(MapError::BadAddress);
        }
        let mut table = self;
        for level in 1..3u8 {
            let i = index(ipa, level);
            match table.next(i) {
                Some(t) => table = t,
                None if table.get(i) & VALID != 0 => return Err(MapError::AlreadyMapped),
                None => return Ok((Entry { table, i }, level + 1)),
            }
        }
        Err(MapError::AlreadyMapped)
    }

    /// Where a 4 KiB page mapping `ipa` to `pa` goes, with every table on the way present:
    /// [`Table::map_page`] without tables to add, checked apart from the write.
    pub fn page_entry(self, ipa: u64, pa: u64) -> Result<Entry, MapError> {
        if ipa >> IPA_BITS != 0
            || !ipa.is_multiple_of(PAGE_SIZE)
            || !pa.is_multiple_of(PAGE_SIZE)
            || pa & !ADDR_MASK != 0
        {
            return Err(MapError::BadAddress);
        }
        let mut table = self;
        for level in 1..3u8 {
            let i = index(ipa, level);
            table = match table.next(i) {
                Some(t) => t,
                None if table.get(i) & VALID != 0 => return Err(MapError::AlreadyMapped),
                None => return Err(MapError::NeedTable { level: level + 1 }),
            };
        }
        let i = index(ipa, 3);
        if table.get(i) & VALID != 0 {
            return Err(MapError::AlreadyMapped);
        }
        Ok(Entry { table, i })
    }

    /// Maps a 2 MiB block at level 2; the level-2 table must exist.
    #[cfg(test)]
    pub fn map_block(self, ipa: u64, pa: u64, attrs: MapAttrs) -> Result<(), MapError> {
        self.block_entry(ipa, pa)?.install_block(pa, attrs);
        Ok(())
    }

    /// Where [`Table::map_block`] would write, checked apart from the write.
    pub fn block_entry(self, ipa: u64, pa: u64) -> Result<Entry, MapError> {
        let block = 1u64 << 21;
        if ipa >> IPA_BITS != 0
            || !ipa.is_multiple_of(block)
            || !pa.is_multiple_of(block)
            || pa & !ADDR_MASK != 0
        {
            return Err(MapError::BadAddress);
        }
        let l2 = self
            .next(index(ipa, 1))
            .ok_or(MapError::NeedTable { level: 2 })?;
        let i = index(ipa, 2);
        if l2.get(i) & VALID != 0 {
            return Err(MapError::AlreadyMapped);
        }
        Ok(Entry { table: l2, i })
    }

    /// Removes the leaf (page or block) that maps `ipa` to `pa`, if that is what is there.
    pub fn unmap(self, ipa: u64, pa: u64) -> bool {
        let mut table = self;
        for level in 1..=3u8 {
            let i = index(ipa, level);
            let d = table.get(i);
            if d & VALID == 0 {
                return false;
            }
            let leaf = level == 3 || d & TABLE_OR_PAGE == 0;
            if leaf {
                if d & ADDR_MASK != pa {
                    return false;
                }
                table.set(i, 0);
                return true;
            }
            table = table.next(i).expect("valid table descriptor");
        }
        false
    }

    /// Removes the entry that points at the table `table_pa` on the walk to `ipa`.
    pub fn unmap_table(self, ipa: u64, table_pa: u64) -> bool {
        let mut table = self;
        for level in 1..3u8 {
            let i = index(ipa, level);
            let d = table.get(i);
            if d & (VALID | TABLE_OR_PAGE) != VALID | TABLE_OR_PAGE {
                return false;
            }
            if d & ADDR_MASK == table_pa {
                table.set(i, 0);
                return true;
            }
            table = table.next(i).expect("valid table descriptor");
        }
        false
    }

    /// Translates an IPA: the physical address and attributes of its page, if mapped.
    pub fn lookup(self, ipa: u64) -> Option<(u64, MapAttrs)> {
        if ipa >> IPA_BITS != 0 {
            return None;
        }
        let mut table = self;
        for level in 1..3u8 {
            let d = table.get(index(ipa, level));
            if d & VALID == 0 {
                return None;
            }
            if d & TABLE_OR_PAGE == 0 {
                // A block: 1 GiB at level 1, 2 MiB at level 2.
                let span = 1u64 << (12 + 9 * (3 - level as u32));
                return Some((
                    (d & ADDR_MASK & !(span - 1)) | (ipa & (span - 1)),
                    MapAttrs::from_descriptor(d),
                ));
            }
            table = table.next(index(ipa, level))?;
        }
        let d = table.get(index(ipa, 3));
        (d & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE).then(|| {
            (
                (d & ADDR_MASK) | (ipa & (PAGE_SIZE - 1)),
                MapAttrs::from_descriptor(d),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{boxed::Box, vec::Vec};

    #[repr(C, align(4096))]
    struct Page([u64; 512]);

    struct Pool(Vec<Box<Page>>);
    impl Pool {
        fn alloc(&mut self) -> u64 {
            self.0.push(Box::new(Page([0; 512])));
            self.0.last().unwrap().0.as_ptr() as u64
        }
    }

    const RW: MapAttrs = MapAttrs {
        read: true,
        write: true,
        execute: false,
        kind: MemKind::Cached,
    };

    #[test]
    fn map_then_lookup_and_refuse_double_map() {
        let mut pool = Pool(Vec::new());
        // SAFETY: a zeroed table from the test's pool, which outlives it.
        let root = unsafe { Table::at(pool.alloc()) };
        let mut alloc = || Some(pool.alloc());
        root.map_page(0x20_0000, 0x4100_0000, RW, &mut alloc)
            .unwrap();
        root.map_page(0x20_1000, 0x4100_5000, RW, &mut alloc)
            .unwrap();
        assert_eq!(root.lookup(0x20_0123), Some((0x4100_0123, RW)));
        assert_eq!(root.lookup(0x20_1fff).unwrap().0, 0x4100_5fff);
        assert_eq!(root.lookup(0x20_2000), None);
        assert_eq!(
            root.map_page(0x20_0000, 0x4200_0000, RW, &mut alloc),
            Err(MapError::AlreadyMapped)
        );
    }

    #[test]
    fn rejects_bad_addresses_and_reports_missing_tables() {
        let mut pool = Pool(Vec::new());
        // SAFETY: a zeroed table from the test's pool, which outlives it.
        let root = unsafe { Table::at(pool.alloc()) };
        assert_eq!(
            root.map_page(1 << 39, 0, RW, &mut || None),
            Err(MapError::BadAddress)
        );
        assert_eq!(
            root.map_page(0x1001, 0, RW, &mut || None),
            Err(MapError::BadAddress)
        );
        assert_eq!(
            root.map_page(0x1000, 0, RW, &mut || None),
            Err(MapError::NeedTable { level: 2 })
        );
        assert_eq!(root.lookup(1 << 39), None);
    }

    #[test]
    fn tables_blocks_and_unmapping() {
        let mut pool = Pool(Vec::new());
        // SAFETY: a zeroed table from the test's pool, which outlives it.
        let root = unsafe { Table::at(pool.alloc()) };
        let l2 = pool.alloc();
        assert_eq!(root.map_table(0x4000_0000, l2), Ok(2));
        let l3 = pool.alloc();
        assert_eq!(root.map_table(0x4000_0000, l3), Ok(3));
        assert_eq!(
            root.map_table(0x4000_0000, pool.alloc()),
            Err(MapError::AlreadyMapped)
        );
        root.map_page(0x4000_0000, 0x9000_0000, RW, &mut || None)
            .unwrap();
        root.map_block(0x4020_0000, 0x8020_0000, RW).unwrap();
        assert_eq!(root.lookup(0x4021_2345).unwrap().0, 0x8021_2345);
        assert_eq!(
            root.map_block(0x4010_0000, 0x8020_0000, RW),
            Err(MapError::BadAddress)
        );
        assert!(
            !root.unmap(0x4000_0000, 0x1234_0000),
            "wrong frame is not unmapped"
        );
        assert!(root.unmap(0x4000_0000, 0x9000_0000));
        assert_eq!(root.lookup(0x4000_0000), None);
        assert!(root.unmap(0x4020_0000, 0x8020_0000));
        assert!(root.unmap_table(0x4000_0000, l3));
        assert!(!root.unmap_table(0x4000_0000, l3));
        assert_eq!(
            root.map_page(0x4000_0000, 0x9000_0000, RW, &mut || None),
            Err(MapError::NeedTable { level: 3 })
        );
    }

    /// The checked walk refuses what `map_page` without tables refuses, changing nothing,
    /// and its entry maps what `map_page` would.
    #[test]
    fn page_entry_checks_as_map_page_does() {
        let mut pool = Pool(Vec::new());
        // SAFETY: a zeroed table from the test's pool, which outlives it.
        let root = unsafe { Table::at(pool.alloc()) };
        for (ipa, pa) in [(1 << 39, 0), (0x1001, 0), (0x1000, 0x123), (0x1000, 0)] {
            assert_eq!(
                root.page_entry(ipa, pa).err(),
                root.map_page(ipa, pa, RW, &mut || None).err()
            );
        }
        root.map_table(0x20_0000, pool.alloc()).unwrap();
        root.map_table(0x20_0000, pool.alloc()).unwrap();
        root.page_entry(0x20_1000, 0x4100_0000)
            .unwrap()
            .install_page(0x4100_0000, RW);
        assert_eq!(root.lookup(0x20_1010), Some((0x4100_0010, RW)));
        assert_eq!(
            root.page_entry(0x20_1000, 0x4200_0000).err(),
            Some(MapError::AlreadyMapped)
        );
        root.map_block(0x4000_0000, 0x8000_0000, RW).unwrap_err();
        root.map_table(0x4000_0000, pool.alloc()).unwrap();
        root.block_entry(0x4000_0000, 0x8000_0000)
            .unwrap()
            .install_block(0x8000_0000, RW);
        assert_eq!(
            root.page_entry(0x4000_1000, 0).err(),
            Some(MapError::AlreadyMapped),
            "a block is in the way"
        );
    }

    #[test]
    fn attributes_round_trip() {
        for kind in [MemKind::Cached, MemKind::Uncached, MemKind::Device] {
            for bits in 0..8 {
                let a = MapAttrs {
                    read: bits & 1 != 0,
                    write: bits & 2 != 0,
                    execute: bits & 4 != 0,
                    kind,
                };
                assert_eq!(MapAttrs::from_descriptor(a.descriptor_bits()), a);
            }
        }
    }
}
