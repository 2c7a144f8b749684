//! Kernel capacities that user level plans with: the root task assigns an ASID to every VSpace
//! it creates, so the kernel and the tools that plan a system read the same numbers here.

/// ASIDs are stage-2 VMIDs: 8 bits on every ARMv8 core (16 with FEAT_VMID16, not assumed).
pub const ASID_BITS: u32 = 8;
pub const NUM_ASIDS: usize = 1 << ASID_BITS;
/// AsidControl hands out pools of this many ASIDs (seL4 has 2^16 ASIDs in pools of 512; ours
/// are smaller so that 8-bit VMIDs still make several pools).
pub const ASID_POOL_BITS: u32 = 5;
pub const ASID_POOL_SIZE: usize = 1 << ASID_POOL_BITS;
pub const NUM_ASID_POOLS: usize = NUM_ASIDS / ASID_POOL_SIZE;
/// ASIDs the root task can give the VSpaces it creates: all but ASID 0 (reserved: "no ASID")
/// and its own.
pub const USER_ASIDS: usize = NUM_ASIDS - 2;

/// RAM the root task never gets as untyped memory, besides the kernel image's embedded system
/// pack (which the image builder adds): the 2 MiB below the kernel's load address (QEMU puts
/// its device tree there), the kernel's image, stack and tables, and the root task's image,
/// statics (its table of PD pages, the decoded plan) and boot objects. 9 to 10 MiB all told on
/// QEMU virt with 2 to 2.5 MiB packs (the boot banner's untyped total against RAM); the rest
/// is margin.
pub const RESERVED_RAM: u64 = 16 << 20;

/// The RAM the kernel and the root task hold from boot on, `[start, end)`: everything of the
/// RAM range the kernel is loaded in (`Board::kernel_ram`) below the first untyped the root
/// task is given there. The kernel is loaded near the bottom of that range
/// (`Board::kernel_load`: 2 MiB in on QEMU virt, below it QEMU's device tree) and allocates
/// the root task's objects upwards from its image's end, so all of it lies within
/// [`RESERVED_RAM`] and the system pack (part of the kernel image) from the range's start. A
/// memory region at a fixed RAM address must not meet it; `pack_bytes` is 0 when the pack is
/// not known yet (`cargo xtask check`: a lower bound). The board's other RAM ranges (the
/// larger Pi 4s') are the root task's whole.
///
/// Boards whose boot chain loads the kernel further up (the ODROIDs' U-Boot at 0x2000_0000,
/// far above their RAM's start) count from the load address, and everything below it as held
/// too: the kernel allocates upwards from its image and gives the root task nothing below it.
pub const fn kernel_held_ram(board: &crate::Board, pack_bytes: u64) -> (u64, u64) {
    let (start, _) = board.kernel_ram();
    // Near the bottom (QEMU virt 2 MiB in, the Pi 512 KiB in), RESERVED_RAM counts from
    // the range's start, the little below the load address included.
    let from = if board.kernel_load >= start.saturating_add(RESERVED_RAM) {
        board.kernel_load
    } else {
        start
    };
    let end = from.saturating_add(RESERVED_RAM).saturating_add(pack_bytes);
    // Untyped memory starts page aligned.
    (start, end.saturating_add(0xfff) & !0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BOARDS, GicVersion, board_by_name};

    #[test]
    fn held_ram_holds_the_kernel_and_leaves_microkit_s_region_address() {
        for b in BOARDS {
            let (lo, hi) = kernel_held_ram(b, 0x12_3456);
            let (klo, khi) = b.kernel_ram();
            assert_eq!(lo, klo, "{}", b.name);
            assert!(b.kernel_load >= lo && b.kernel_load < hi, "{}", b.name);
            assert!(hi.is_multiple_of(0x1000) && hi >= lo + RESERVED_RAM + 0x12_3456);
            assert!(hi < khi, "{}", b.name);
        }
        // Microkit's qemu_virt_aarch64 has 2 GiB: its `setvar` example puts a region at
        // 0x8000_0000.
        let q = board_by_name("qemu_virt_aarch64", Some(GicVersion::V3)).unwrap();
        assert_eq!(q.ram, [(0x4000_0000, 0xc000_0000)]);
        assert!(kernel_held_ram(&q, 64 << 20).1 <= 0x8000_0000);
        // The larger Pi 4s' RAM above 1 GiB is none of it.
        let pi = board_by_name("rpi4b_8gb", None).unwrap();
        assert_eq!(kernel_held_ram(&pi, 64 << 20), (0, 0x500_0000));
    }
}
