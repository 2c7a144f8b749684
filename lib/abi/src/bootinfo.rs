//! What the kernel tells the root task about the system it starts in (seL4's `seL4_BootInfo`,
//! simplified). The boot info frame is mapped read-only at [`BOOTINFO_VADDR`] and its address
//! is passed in `x0`.

/// Initial capabilities in the root task's CNode (seL4's numbering where it has one).
pub mod init_cap {
    pub const NULL: u64 = 0;
    pub const TCB: u64 = 1;
    pub const CNODE: u64 = 2;
    pub const VSPACE: u64 = 3;
    pub const IRQ_CONTROL: u64 = 4;
    pub const ASID_CONTROL: u64 = 5;
    pub const ASID_POOL: u64 = 6;
    pub const BOOTINFO_FRAME: u64 = 9;
    pub const IPC_BUFFER: u64 = 10;
    /// The domain cap (seL4's `seL4_CapDomain`): sets thread domains and the schedule.
    pub const DOMAIN: u64 = 11;
    /// Untyped caps start here, one per `BootInfo::untyped` entry, in order.
    pub const FIRST_UNTYPED: u64 = 16;
}

/// Where the root task finds its boot info and IPC buffer.
pub const BOOTINFO_VADDR: u64 = 0x0000_0000_e000_0000;
pub const IPC_BUFFER_VADDR: u64 = 0x0000_0000_e000_1000;
/// The root task's stack top (a PD's too: see docs/sdf.md).
pub const STACK_TOP: u64 = 0x0000_0001_0000_0000;

pub const MAX_UNTYPED: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UntypedDesc {
    pub paddr: u64,
    pub size_bits: u8,
    pub is_device: u8,
    pub _pad: [u8; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// Slots of the root CNode (log2): the CNode is a single level, its guard covers the
    /// remaining bits, so a capability address is simply a slot number.
    pub cnode_size_bits: u64,
    /// First slot after the untyped caps: `[first_free_slot, 1 << cnode_size_bits)` is empty.
    pub first_free_slot: u64,
    pub num_untyped: u64,
    pub untyped: [UntypedDesc; MAX_UNTYPED],
    /// Ticks per second of the kernel's timer, for user-level timing.
    pub tick_hz: u64,
    /// The interrupt controller's generation (2 or 3), which decides how a VMM gives its
    /// guest a GIC CPU interface.
    pub gic_version: u64,
    /// GICv2: physical address of the virtual CPU interface (GICV, `GICV_SIZE` bytes), which
    /// a VMM maps at its guest's GICC address; a device untyped covers it. 0 on GICv3, whose
    /// guests use system registers.
    pub gicv_paddr: u64,
}

/// Size of the GICv2 virtual CPU interface (two pages: GICV_DIR is at 0x1000).
pub const GICV_SIZE: u64 = 0x2000;

const _: () = assert!(core::mem::size_of::<BootInfo>() <= 4096);
