//! The kernel's own EL2 translation tables: an identity map of devices and RAM, with the
//! kernel image mapped by 4 KiB pages so that text is read-only/executable and nothing else
//! is executable. Built once at boot in static tables; the kernel never changes them.

use core::arch::asm;

use axolotl_kernel_config::Board;

const ENTRIES: usize = 512;
const VALID: u64 = 1;
const TABLE: u64 = 1 << 1;
const PAGE: u64 = 1 << 1;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 3 << 8;
const AP_RO: u64 = 1 << 7;
const XN: u64 = 1 << 54;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
/// MAIR_EL2: attr0 = Device-nGnRE, attr1 = Normal WB RA/WA.
const MAIR: u64 = 0x04 | (0xff << 8);

/// GiBs of RAM, from its lowest to its highest address (the 8 GiB Pi 4's eight), each mapped
/// by a table of 2 MiB blocks.
const MAX_RAM_GIB: usize = 8;
const KERNEL_L3_TABLES: usize = 8;

const _: () = assert!(
    axolotl_kernel_config::PHYS_ADDR_BITS == 40,
    "TCR_EL2.PS here and VTCR_EL2.PS (cpu::VTCR) are 0b010: 40 bits"
);

#[repr(C, align(4096))]
struct Tables {
    l1: [u64; ENTRIES],
    l2_ram: [[u64; ENTRIES]; MAX_RAM_GIB],
    l3_kernel: [[u64; ENTRIES]; KERNEL_L3_TABLES],
}

static mut TABLES: Tables = Tables {
    l1: [0; ENTRIES],
    l2_ram: [[0; ENTRIES]; MAX_RAM_GIB],
    l3_kernel: [[0; ENTRIES]; KERNEL_L3_TABLES],
};

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __stack_guard: u8;
    static __kernel_stack_bottom: u8;
    static __kernel_end: u8;
}

pub fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Addresses of the kernel image's parts.
pub struct Layout {
    pub start: u64,
    pub text_end: u64,
    pub rodata_start: u64,
    pub data_start: u64,
    pub stack_guard: u64,
    pub stack_bottom: u64,
    pub end: u64,
}

pub fn layout() -> Layout {
    // SAFETY: linker-script symbols; only their addresses are used.
    unsafe {
        Layout {
            start: sym(&__kernel_start),
            text_end: sym(&__text_end),
            rodata_start: sym(&__rodata_start),
            data_start: sym(&__data_start),
            stack_guard: sym(&__stack_guard),
            stack_bottom: sym(&__kernel_stack_bottom),
            end: sym(&__kernel_end),
        }
    }
}

/// Builds the tables and turns on the MMU and caches.
///
/// # Safety
/// Called once, at boot, before anything relies on memory attributes.
pub unsafe fn init(board: &Board) {
    // RAM need not start on a GiB (the ODROIDs' starts above their secure monitor's ranges):
    // the GiBs it touches get 2 MiB blocks for the part of them that is RAM.
    let ram = super::ram_map::ram_gibs(board, MAX_RAM_GIB).expect("RAM in 2 MiB blocks");
    let (ram_l1, ram_gib) = (ram.first, ram.count);
    let l = layout();
    // SAFETY: single-threaded boot; TABLES is used nowhere else.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(TABLES) };

    // Devices: 1 GiB device blocks for everything below RAM (QEMU virt) and for the GiBs
    // holding the device window and the GIC (the Pi's, above its RAM).
    for (i, e) in t.l1.iter_mut().enumerate() {
        if super::ram_map::device_gib(board, i) {
            *e = ((i as u64) << 30) | ATTR_DEVICE | AF | XN | VALID;
        }
    }
    // RAM: 2 MiB normal blocks, read-write, never executable, in a table per GiB (the Pi's
    // RAM leaves out the VideoCore's share); a GiB that holds devices too (the 4 and 8 GiB
    // Pi 4s' last below 4 GiB: RAM up to the peripherals at 0xfc00_0000) has device blocks
    // for the rest of it ...
    for g in 0..ram_gib {
        let devices = super::ram_map::device_gib(board, ram_l1 + g);
        for (j, e) in t.l2_ram[g].iter_mut().enumerate() {
            let pa = (((ram_l1 + g) as u64) << 30) | ((j as u64) << 21);
            *e = match super::ram_map::ram_block(board, ram_l1 + g, j) {
                Some(pa) => pa | ATTR_NORMAL | SH_INNER | AF | XN | VALID,
                None if devices => pa | ATTR_DEVICE | AF | XN | VALID,
                None => 0,
            };
        }
        t.l1[ram_l1 + g] = (t.l2_ram[g].as_ptr() as u64) | TABLE | VALID;
    }
    // ... except the kernel image, by pages: text RX, rodata R, the rest RW, a guard page
    // below the stack. A 2 MiB block wholly inside rodata (the embedded root task and its
    // system pack can be tens of MiB) stays a block, read-only.
    let first = l.start & !((1 << 21) - 1);
    let last = (l.end + (1 << 21) - 1) & !((1 << 21) - 1);
    let mut tables = t.l3_kernel.iter_mut();
    let mut block = first;
    while block < last {
        let g = (block >> 30) as usize - ram_l1;
        let j = ((block >> 21) & 0x1ff) as usize;
        if block >= l.rodata_start && block + (1 << 21) <= l.data_start {
            t.l2_ram[g][j] = block | AP_RO | XN | ATTR_NORMAL | SH_INNER | AF | VALID;
            block += 1 << 21;
            continue;
        }
        let l3 = tables
            .next()
            .expect("kernel image has too many mixed 2 MiB blocks");
        for (j, e) in l3.iter_mut().enumerate() {
            let pa = block + ((j as u64) << 12);
            let perms = if pa >= l.start && pa < l.text_end {
                AP_RO
            } else if pa >= l.rodata_start && pa < l.data_start {
                AP_RO | XN
            } else {
                XN
            };
            *e = if pa >= l.stack_guard && pa < l.stack_bottom {
                0
            } else {
                pa | perms | ATTR_NORMAL | SH_INNER | AF | PAGE | VALID
            };
        }
        t.l2_ram[g][j] = (l3.as_ptr() as u64) | TABLE | VALID;
        block += 1 << 21;
    }

    // TCR_EL2: 39-bit VA (T0SZ=25), 4 KiB granule, WBWA inner-shareable walks, 40-bit PA.
    let tcr: u64 =
        (1 << 31) | (1 << 23) | (0b010 << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | 25;
    let ttbr = t.l1.as_ptr() as u64;
    // SCTLR_EL2: RES1 bits, M, C, SA, I, WXN.
    let sctlr: u64 = 0x30c5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19);
    // SAFETY: the tables map the running code at the same addresses (identity), so turning
    // translation on does not move anything under our feet.
    unsafe {
        asm!(
            "dsb ish",
            "msr mair_el2, {mair}",
            "msr tcr_el2, {tcr}",
            "msr ttbr0_el2, {ttbr}",
            "isb",
            "tlbi alle2",
            "dsb ish",
            "isb",
            "msr sctlr_el2, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr = in(reg) ttbr,
            sctlr = in(reg) sctlr,
        );
    }
}
