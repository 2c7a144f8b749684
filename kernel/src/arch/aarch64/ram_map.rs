//! Which 2 MiB blocks of which GiBs are the board's RAM and which its devices: the part of
//! `mmu::init` that is pure arithmetic, host-tested on every board (the ODROIDs' RAM starts
//! mid-GiB, above their secure monitor's memory; the 4 and 8 GiB Pi 4s' runs up to the
//! peripherals inside one GiB; no emulator boots either).

use axolotl_kernel_config::{Board, GicLayout};

/// Device blocks are mapped within the first 4 GiB, where every board's devices are.
pub const DEVICE_GIBS: usize = 4;

/// The GiBs (level-1 entries) from RAM's lowest to its highest: `first` and `count` of them,
/// each mapped through a table of 2 MiB blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamGibs {
    pub first: usize,
    pub count: usize,
}

/// `None` if the board has no RAM, a range that is empty, not in whole 2 MiB blocks or out of
/// order, or RAM spanning more than `max_gibs` GiBs.
pub fn ram_gibs(board: &Board, max_gibs: usize) -> Option<RamGibs> {
    let (&(lo, _), &(_, hi)) = (board.ram.first()?, board.ram.last()?);
    let blocks = |a: u64, b: u64| a < b && a.is_multiple_of(1 << 21) && b.is_multiple_of(1 << 21);
    if !board.ram.iter().all(|&(a, b)| blocks(a, b))
        || board.ram.windows(2).any(|w| w[0].1 > w[1].0)
    {
        return None;
    }
    let first = (lo >> 30) as usize;
    let count = ((hi - 1) >> 30) as usize + 1 - first;
    (count <= max_gibs).then_some(RamGibs { first, count })
}

/// The physical address of 2 MiB block `j` of GiB `l1` if it is RAM.
pub fn ram_block(board: &Board, l1: usize, j: usize) -> Option<u64> {
    let pa = ((l1 as u64) << 30) + ((j as u64) << 21);
    (j < 512 && board.ram_contains(pa, pa + (1 << 21))).then_some(pa)
}

/// Whether the kernel maps GiB `l1` as devices (but for its RAM, if it has any): everything
/// below RAM (QEMU virt's devices) and the GiBs the device window or the GIC touch (the Pi's
/// and the ODROIDs', at the top of the first 4 GiB).
pub fn device_gib(board: &Board, l1: usize) -> bool {
    let (lo, hi) = ((l1 as u64) << 30, ((l1 as u64) + 1) << 30);
    let ram_first = board.ram.first().map_or(0, |r| r.0 >> 30);
    let gic = match board.gic {
        GicLayout::V2 { gicd, gicv, .. } => (gicd, gicv),
        GicLayout::V3 { gicd, gicr } => (gicd, gicr),
    };
    let (dlo, dhi) = board.device_window;
    l1 < DEVICE_GIBS
        && ((l1 as u64) < ram_first
            || (dlo < hi && dhi > lo)
            || (gic.0 >= lo && gic.0 < hi)
            || (gic.1 >= lo && gic.1 < hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_kernel_config::{BOARDS, ODROID_C2, ODROID_C4, RPI4B, RPI4B_4GB, RPI4B_8GB};

    /// What `mmu::init` maps: `(RAM blocks, device blocks)` by physical address, a GiB
    /// holding no RAM mapped whole as devices (as one 2 MiB block per entry here).
    fn mapped(b: &Board) -> (Vec<u64>, Vec<u64>) {
        let g = ram_gibs(b, 8).unwrap();
        let (mut ram, mut dev) = (Vec::new(), Vec::new());
        for l1 in 0..(g.first + g.count).max(DEVICE_GIBS) {
            let table = l1 >= g.first && l1 < g.first + g.count;
            for j in 0..512 {
                let pa = ((l1 as u64) << 30) + ((j as u64) << 21);
                match ram_block(b, l1, j) {
                    Some(p) if table => ram.push(p),
                    _ if device_gib(b, l1) => dev.push(pa),
                    _ => {}
                }
            }
        }
        (ram, dev)
    }

    #[test]
    fn every_board_s_ram_is_mapped_whole_and_nothing_else() {
        for b in BOARDS {
            let (got, dev) = mapped(b);
            let want: Vec<u64> = b
                .ram
                .iter()
                .flat_map(|&(lo, hi)| (lo..hi).step_by(1 << 21))
                .collect();
            assert_eq!(got, want, "{}", b.name);
            // The console and the GIC the kernel drives are mapped as devices, never RAM.
            let gic = b.kernel_gic_frames();
            for pa in [b.uart_page()].into_iter().chain(gic.map(|g| g.0)) {
                if pa != 0 {
                    assert!(
                        dev.contains(&(pa & !((1 << 21) - 1))),
                        "{}: {pa:#x}",
                        b.name
                    );
                }
            }
            assert!(dev.iter().all(|d| !got.contains(d)), "{}", b.name);
        }
    }

    #[test]
    fn ram_from_mid_gib_skips_what_lies_below() {
        assert_eq!(
            ram_gibs(&ODROID_C4, 4),
            Some(RamGibs { first: 0, count: 1 })
        );
        // 0x0740_0000 is block 58 of GiB 0: blocks 0..58 (the secure monitor's) stay unmapped.
        assert_eq!(ram_block(&ODROID_C4, 0, 57), None);
        assert!(!device_gib(&ODROID_C4, 0));
        assert_eq!(ram_block(&ODROID_C4, 0, 58), Some(0x0740_0000));
        assert_eq!(ram_block(&ODROID_C4, 0, 511), Some(0x3fe0_0000));
        assert_eq!(
            ram_gibs(&ODROID_C2, 4),
            Some(RamGibs { first: 0, count: 2 })
        );
        assert_eq!(ram_block(&ODROID_C2, 0, 128), None);
        assert_eq!(ram_block(&ODROID_C2, 0, 129), Some(0x1020_0000));
        assert_eq!(ram_block(&ODROID_C2, 1, 511), Some(0x7fe0_0000));
        // The Pi's RAM ends mid-GiB (the VideoCore's share above).
        assert_eq!(ram_block(&RPI4B, 0, 0x3b40_0000 >> 21), None);
        assert!(!device_gib(&RPI4B, 0));
    }

    /// The 4 and 8 GiB Pi 4s: RAM in all the first 4 GiB but the VideoCore's share and the
    /// peripherals' 64 MiB at its top, which share GiB 3 with RAM; the 8 GiB one's on up to
    /// 8 GiB, where no device is.
    #[test]
    fn the_large_pi_4s_share_a_gib_between_ram_and_devices() {
        assert_eq!(
            ram_gibs(&RPI4B_4GB, 8),
            Some(RamGibs { first: 0, count: 4 })
        );
        assert_eq!(
            ram_gibs(&RPI4B_8GB, 8),
            Some(RamGibs { first: 0, count: 8 })
        );
        assert_eq!(ram_gibs(&RPI4B_8GB, 4), None);
        for b in [RPI4B_4GB, RPI4B_8GB] {
            assert!(device_gib(&b, 3) && !device_gib(&b, 2));
            assert_eq!(ram_block(&b, 0, 0x3b40_0000 >> 21), None);
            assert_eq!(ram_block(&b, 1, 0), Some(0x4000_0000));
            assert_eq!(ram_block(&b, 3, 0x1df), Some(0xfbe0_0000));
            // 0xfc00_0000 on: devices (the UART's, the GIC's blocks among them), not RAM.
            assert_eq!(ram_block(&b, 3, 0x1e0), None);
            let (_, dev) = mapped(&b);
            assert!(dev.contains(&0xfc00_0000) && dev.contains(&0xfe20_0000));
            assert!(dev.contains(&0xff80_0000) && !dev.contains(&0xfbe0_0000));
        }
        assert_eq!(ram_block(&RPI4B_8GB, 4, 0), Some(0x1_0000_0000));
        assert_eq!(ram_block(&RPI4B_8GB, 7, 511), Some(0x1_ffe0_0000));
        assert!(!device_gib(&RPI4B_8GB, 4));
    }

    #[test]
    fn unaligned_or_oversized_ram_is_refused() {
        let odd = Board {
            ram: &[(0x0740_1000, 0x4000_0000)],
            ..ODROID_C4
        };
        assert_eq!(ram_gibs(&odd, 4), None);
        let big = Board {
            ram: &[(0, 5 << 30)],
            ..ODROID_C4
        };
        assert_eq!(ram_gibs(&big, 4), None);
        assert_eq!(ram_gibs(&ODROID_C2, 1), None);
        let unsorted = Board {
            ram: &[(0x4000_0000, 0x8000_0000), (0, 0x3b40_0000)],
            ..RPI4B
        };
        assert_eq!(ram_gibs(&unsorted, 8), None);
        let none = Board { ram: &[], ..RPI4B };
        assert_eq!(ram_gibs(&none, 8), None);
    }
}
