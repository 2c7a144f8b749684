//! Time since the machine's reset, from the virtual counter (EL0 may read it; the kernel keeps
//! CNTVOFF at 0 for native threads). Under `-icount shift=0` one ns is one instruction, which
//! is what `cargo xtask bench` measures with.

/// Nanoseconds since reset.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn now_ns() -> u64 {
    let (cnt, frq): (u64, u64);
    // SAFETY: reading the counter and its frequency has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {c}, cntvct_el0", "mrs {f}, cntfrq_el0",
            c = out(reg) cnt, f = out(reg) frq, options(nomem, nostack))
    };
    (u128::from(cnt) * 1_000_000_000 / u128::from(frq.max(1))) as u64
}

/// Microseconds since reset.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn now_us() -> u64 {
    now_ns() / 1000
}

/// The counter (CNTVCT; CNTPCT reads the same for native threads).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn counter() -> u64 {
    let c: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) c, options(nomem, nostack)) };
    c
}

/// The counter's ticks per second.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: reading the counter frequency has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f.max(1)
}

/// Counter value `ms` milliseconds after reset.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn ms_to_counter(ms: u64) -> u64 {
    (u128::from(ms) * u128::from(frequency()) / 1000).min(u128::from(u64::MAX)) as u64
}

/// The EL1 physical timer, for the thread the kernel granted it (`TcbSetTimerAccess`; any
/// other thread's access is a user exception): fire when the counter reaches `at` (at once if
/// it has passed), or never (`None`). Its interrupt is PPI 30 (`axolotl_abi::PHYS_TIMER_PPI`).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn set_phys_timer(at: Option<u64>) {
    // SAFETY: the caller holds the timer by grant; CNTP_* touch nothing but the timer.
    unsafe {
        match at {
            Some(at) => core::arch::asm!(
                "msr cntp_cval_el0, {a}",
                "msr cntp_ctl_el0, {c}",
                "isb",
                a = in(reg) at,
                c = in(reg) 1u64,
                options(nostack),
            ),
            None => core::arch::asm!("msr cntp_ctl_el0, {}", "isb", in(reg) 0u64, options(nostack)),
        }
    }
}
