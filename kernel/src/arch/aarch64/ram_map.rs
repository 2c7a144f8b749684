//! Which 2 MiB blocks of which GiBs are the board's RAM: the part of `mmu::init` that is
//! pure arithmetic, host-tested on every board (the ODROIDs' RAM starts mid-GiB, above their
//! secure monitor's memory, and no emulator boots them).

use axolotl_kernel_config::Board;

/// The GiBs (level-1 entries) RAM touches: `first` and `count` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamGibs {
    pub first: usize,
    pub count: usize,
}

/// `None` if the board's RAM is empty, not in whole 2 MiB blocks or spans more than
/// `max_gibs` GiBs.
pub fn ram_gibs(board: &Board, max_gibs: usize) -> Option<RamGibs> {
    let end = board.ram_base.checked_add(board.ram_size)?;
    if board.ram_size == 0
        || !board.ram_base.is_multiple_of(1 << 21)
        || !board.ram_size.is_multiple_of(1 << 21)
    {
        return None;
    }
    let first = (board.ram_base >> 30) as usize;
    let count = ((end - 1) >> 30) as usize + 1 - first;
    (count <= max_gibs).then_some(RamGibs { first, count })
}

/// The physical address of 2 MiB block `j` of GiB `l1` if it is RAM.
pub fn ram_block(board: &Board, l1: usize, j: usize) -> Option<u64> {
    let pa = ((l1 as u64) << 30) + ((j as u64) << 21);
    (j < 512 && pa >= board.ram_base && pa < board.ram_base + board.ram_size).then_some(pa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_kernel_config::{BOARDS, ODROID_C2, ODROID_C4, RPI4B};

    fn blocks(b: &Board) -> Vec<u64> {
        let g = ram_gibs(b, 4).unwrap();
        (g.first..g.first + g.count)
            .flat_map(|l1| (0..512).filter_map(move |j| ram_block(b, l1, j)))
            .collect()
    }

    #[test]
    fn every_board_s_ram_is_mapped_whole_and_nothing_else() {
        for b in BOARDS {
            let got = blocks(b);
            let want: Vec<u64> = (b.ram_base..b.ram_base + b.ram_size)
                .step_by(1 << 21)
                .collect();
            assert_eq!(got, want, "{}", b.name);
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
    }

    #[test]
    fn unaligned_or_oversized_ram_is_refused() {
        let odd = Board {
            ram_base: 0x0740_1000,
            ..ODROID_C4
        };
        assert_eq!(ram_gibs(&odd, 4), None);
        let big = Board {
            ram_base: 0,
            ram_size: 5 << 30,
            ..ODROID_C4
        };
        assert_eq!(ram_gibs(&big, 4), None);
        assert_eq!(ram_gibs(&ODROID_C2, 1), None);
    }
}
