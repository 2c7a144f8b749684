//! The kernel tick: the EL2 physical timer (CNTHP), which guests and PDs cannot touch.

use core::arch::asm;

pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: reading a read-only system register.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

/// The physical count (CNTPCT_EL0).
pub fn now() -> u64 {
    let c: u64;
    // SAFETY: reading the counter; the isb orders it after earlier instructions.
    unsafe { asm!("isb", "mrs {}, cntpct_el0", out(reg) c, options(nomem, nostack)) };
    c
}

/// The physical count without ordering it after earlier instructions: for the CPU-time
/// counts at every kernel entry and exit, where a few instructions' slack is no error and
/// an `isb` on every system call would be a cost.
#[inline(always)]
pub fn now_unordered() -> u64 {
    let c: u64;
    // SAFETY: reading the counter.
    unsafe { asm!("mrs {}, cntpct_el0", out(reg) c, options(nomem, nostack)) };
    c
}

/// Arms the timer to fire when the physical count reaches `at` (at once if it has).
pub fn arm_at(at: u64) {
    // SAFETY: CNTHP_* belong to the kernel alone.
    unsafe {
        asm!(
            "msr cnthp_cval_el2, {t}",
            "msr cnthp_ctl_el2, {ctl}",
            "isb",
            t = in(reg) at,
            ctl = in(reg) 1u64,
        )
    };
}
