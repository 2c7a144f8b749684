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
/// statics (its table of PD pages, the decoded plan) and boot objects. 8 MiB all told on QEMU
/// virt with a 1.5 MiB pack (the boot banner's untyped total); the rest is margin.
pub const RESERVED_RAM: u64 = 16 << 20;
