//! A PD's virtual address space layout and the system-wide limits the SDF is checked against.

/// The PD stack grows down from here: it occupies `[PD_STACK_TOP - stack_size, PD_STACK_TOP)`.
pub const PD_STACK_TOP: u64 = 0x1_0000_0000;

/// User virtual addresses (and map ends) must be below this: 39-bit stage-1 address space.
pub const USER_ADDR_LIMIT: u64 = 1 << 39;

/// Microkit's limit on protection domains, nested ones included.
pub const MAX_PDS: usize = 63;

/// Highest channel/IRQ id (and vCPU / child id): 62 ids fit the notification badge, whose top
/// two bits flag protected calls and faults.
pub const MAX_ID: u64 = 61;

/// Highest PD priority; 255 belongs to the root task.
pub const MAX_PRIORITY: u64 = 254;

pub const MIN_STACK_SIZE: u64 = 0x1000;
pub const MAX_STACK_SIZE: u64 = 0x100_0000;

pub const PAGE_SIZE_SMALL: u64 = 0x1000;
pub const PAGE_SIZE_LARGE: u64 = 0x20_0000;

/// Scheduling domains the kernel has (`axolotl_abi::NUM_DOMAINS`, seL4's and Microkit's 16):
/// domain ids are below it.
pub const MAX_DOMAINS: u64 = 16;

/// Entries of the kernel's fixed domain schedule table (`axolotl_abi::MAX_DOMAIN_SCHEDULE`):
/// `index_shift` plus the schedule's entries must fit it.
pub const MAX_DOMAIN_SCHEDULE: u64 = 64;
