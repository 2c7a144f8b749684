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
