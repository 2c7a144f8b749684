//! The kernel tick: the EL2 physical timer (CNTHP), which guests and PDs cannot touch.

use core::arch::asm;

pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: reading a read-only system register.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

/// Arms the timer to fire `ticks` counter cycles from now.
pub fn arm(ticks: u64) {
    // SAFETY: CNTHP_* belong to the kernel alone.
    unsafe {
        asm!(
            "msr cnthp_tval_el2, {t}",
            "msr cnthp_ctl_el2, {ctl}",
            "isb",
            t = in(reg) ticks,
            ctl = in(reg) 1u64,
        )
    };
}
