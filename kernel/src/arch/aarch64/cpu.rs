//! EL2 configuration of the processor for running native threads.

use core::arch::asm;

/// HCR_EL2 while a native (non-VM) thread runs, after seL4's `HCR_NATIVE`: EL0 under
/// stage-2 only (TGE with DC makes stage 1 off and memory cacheable), all interrupts and
/// exceptions to EL2, SMC and WFI/WFE trapped.
pub const HCR_NATIVE: u64 = (1 << 0) // VM: stage-2 translation
    | (1 << 1)  // SWIO
    | (1 << 3)  // FMO
    | (1 << 4)  // IMO
    | (1 << 5)  // AMO
    | (1 << 12) // DC: default cacheable with stage 1 off
    | (1 << 13) // TWI
    | (1 << 14) // TWE
    | (1 << 19) // TSC
    | (1 << 21) // TACR
    | (1 << 25) // TTLB
    | (1 << 26) // TVM
    | (1 << 27) // TGE
    | (1 << 31); // RW: lower ELs are AArch64

/// VTCR_EL2: 39-bit IPA (T0SZ=25), walks start at level 1 (SL0=1), 4 KiB granule,
/// inner-shareable write-back walks, 40-bit PA, 8-bit VMID.
pub const VTCR: u64 =
    (1 << 31) | (0b010 << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (0b01 << 6) | 25;

/// # Safety
/// Boot only.
pub unsafe fn init_el2() {
    // SAFETY: configuration registers of EL2 and of the EL1&0 regime it controls; no user
    // code runs yet.
    unsafe {
        asm!(
            "msr hcr_el2, {hcr}",
            "msr vtcr_el2, {vtcr}",
            // CPTR_EL2: RES1 bits, FP/SIMD not trapped (user state is switched eagerly).
            "msr cptr_el2, {cptr}",
            // EL1/EL0 may read the physical counter, not program the physical timer.
            "msr cnthctl_el2, {cnthctl}",
            "msr cntvoff_el2, xzr",
            // EL0 may read the physical and virtual counters.
            "msr cntkctl_el1, {cntkctl}",
            "msr sctlr_el1, {sctlr1}",
            // CPACR_EL1.FPEN: still gates FP/SIMD at EL0 under TGE (a trap would arrive as
            // an "unknown" exception); user FP state is the kernel's to switch, so allow it.
            "msr cpacr_el1, {cpacr}",
            "isb",
            hcr = in(reg) HCR_NATIVE,
            vtcr = in(reg) VTCR,
            cptr = in(reg) 0x33ffu64,
            cnthctl = in(reg) CNTHCTL_DEFAULT,
            cntkctl = in(reg) CNTKCTL_NATIVE,
            sctlr1 = in(reg) axolotl_abi::syndrome::sctlr::EL1_RESET,
            cpacr = in(reg) 3u64 << 20,
        );
    }
}

/// CNTHCTL_EL2 by default: EL1 and EL0 may read the physical counter (EL1PCTEN), not use
/// the EL1 physical timer (EL1PCEN clear), so a guest's CNTP_* accesses trap.
pub const CNTHCTL_DEFAULT: u64 = 0b01;
/// CNTKCTL_EL1 of native threads: EL0 may read the physical and virtual counters.
pub const CNTKCTL_NATIVE: u64 = 0b11;

/// Lets EL0 use the EL1 physical timer or not (`TcbSetTimerAccess`). Under HCR_EL2.{E2H=0,
/// TGE=1} an EL0 CNTP_* access needs both CNTKCTL_EL1.EL0PTEN (bit 9) and
/// CNTHCTL_EL2.EL1PCEN (bit 1); it traps to EL2 otherwise. `native`: CNTKCTL_EL1 holds the
/// native value (a guest's own is left alone; CNTHCTL_EL2 alone keeps it trapping).
pub fn set_el0_ptimer(on: bool, native: bool) {
    let (hctl, kctl) = if on {
        (CNTHCTL_DEFAULT | 1 << 1, CNTKCTL_NATIVE | 1 << 9)
    } else {
        (CNTHCTL_DEFAULT, CNTKCTL_NATIVE)
    };
    // SAFETY: timer access controls of EL1/EL0; the kernel's own timer is CNTHP.
    unsafe {
        asm!("msr cnthctl_el2, {}", in(reg) hctl);
        if native {
            asm!("msr cntkctl_el1, {}", in(reg) kctl);
        }
        asm!("isb");
    }
}

/// Installs a VSpace: its stage-2 root and VMID.
pub fn set_vspace(root: u64, vmid: u8) {
    // SAFETY: the root is a valid stage-2 table owned by the kernel's object model.
    unsafe {
        asm!(
            "msr vttbr_el2, {v}",
            "isb",
            v = in(reg) root | ((vmid as u64) << 48),
        )
    };
}

pub fn read_far() -> u64 {
    let v: u64;
    // SAFETY: read-only register read.
    unsafe { asm!("mrs {}, far_el2", out(reg) v) };
    v
}

pub fn read_hpfar() -> u64 {
    let v: u64;
    // SAFETY: read-only register read.
    unsafe { asm!("mrs {}, hpfar_el2", out(reg) v) };
    v
}

/// Whether an interrupt is pending for this CPU (ISR_EL1.I; read at EL2 it is the physical
/// IRQ line whatever HCR_EL2 routes to a guest), i.e. would be taken if the kernel unmasked
/// interrupts. One register read: cheap enough to poll after every step of a long operation.
pub fn irq_pending() -> bool {
    let v: u64;
    // SAFETY: read-only register read.
    unsafe { asm!("mrs {}, isr_el1", out(reg) v) };
    v & (1 << 7) != 0
}

pub fn wfi() {
    // SAFETY: waits for an interrupt; with interrupts masked it returns when one is pending.
    unsafe { asm!("dsb sy", "wfi") };
}

/// Makes instructions written through the data side visible to instruction fetch.
pub fn sync_icache(start: u64, len: u64) {
    clean_dcache_pou(start, len);
    invalidate_icache();
}

/// Invalidates all instruction caches (inner shareable), after data-side cleaning to PoU.
pub fn invalidate_icache() {
    // SAFETY: cache maintenance; no memory effect.
    unsafe { asm!("dsb ish", "ic ialluis", "dsb ish", "isb") };
}

/// `DC <op>` at every `step` bytes from `first` (aligned to `step`) up to `end`, eight an
/// iteration: mapping a VM's RAM cleans and zeroes hundreds of MiB and a VMM cleans a whole
/// guest image, and the loop's own instructions would otherwise cost three times the work.
macro_rules! dc_loop {
    ($op:literal, $first:expr, $end:expr, $step:expr) => {{
        let (end, step): (u64, u64) = ($end, $step);
        let mut a: u64 = $first;
        while a + 8 * step <= end {
            // SAFETY: cache maintenance or zeroing by VA on identity-mapped RAM the caller
            // owns, one aligned line or block per instruction.
            unsafe {
                asm!(
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    concat!("dc ", $op, ", {a}"),
                    "add {a}, {a}, {n}",
                    a = inout(reg) a,
                    n = in(reg) step,
                    options(nostack),
                )
            };
        }
        while a < end {
            // SAFETY: as above.
            unsafe { asm!(concat!("dc ", $op, ", {}"), in(reg) a, options(nostack)) };
            a += step;
        }
    }};
}

/// Cache line size the maintenance loops assume (Cortex-A53/A57/A72).
const LINE: u64 = 64;

/// Cleans `[start, start + len)` (identity-mapped RAM) to the point of unification.
pub fn clean_dcache_pou(start: u64, len: u64) {
    dc_loop!("cvau", start & !(LINE - 1), start + len, LINE);
}

/// Cleans `[start, start + len)` (identity-mapped RAM) to the point of coherency.
pub fn clean_dcache_poc(start: u64, len: u64) {
    dc_loop!("cvac", start & !(LINE - 1), start + len, LINE);
    // SAFETY: a barrier; no memory effect.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Zeroes `[start, start + len)` of normal memory. Whole blocks of the CPU's `DC ZVA` size
/// go a block per instruction (frames and page tables are megabytes at boot: the guest RAM
/// of a VM alone is hundreds); anything else byte-wise.
pub fn zero(start: u64, len: u64) {
    let dczid: u64;
    // SAFETY: reading an identification register.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    let block = 4u64 << (dczid & 0xf);
    let prohibited = dczid & (1 << 4) != 0;
    if prohibited || !start.is_multiple_of(block) || !len.is_multiple_of(block) {
        // SAFETY: forwarded from the caller: the range is kernel-owned normal memory.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, len as usize) };
        return;
    }
    dc_loop!("zva", start, start + len, block);
    // The zeros must be visible before the memory is handed out as an object.
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack)) };
}
