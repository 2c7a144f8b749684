//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` for the freestanding aarch64 builds,
//! kernel and user.
//!
//! The compiler calls these for every struct copy or zeroing it does not expand inline, and
//! with `+strict-align` (both `aarch64-unknown-none` targets) that is most copies of a
//! capability, a message or a small buffer. `compiler_builtins`' portable versions (weak
//! symbols, which these strong ones replace) spend about 50 instructions on a 28-byte copy and
//! move 8 bytes per iteration; the restart path and every guest exit pay for dozens of them
//! (`docs/benchmarks.md`). These move 16 bytes per step when source and destination agree
//! modulo 8 and use only naturally aligned accesses, so they are also correct with the MMU
//! off, where memory is Device and an unaligned access faults.
//!
//! Naked functions: the bodies are assembly only, so the compiler cannot turn a copy loop in
//! them back into a call to themselves.

#![no_std]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    /// `memcpy(dest, src, n) -> dest`: the ranges must not overlap.
    ///
    /// # Safety
    /// The C contract: `n` bytes readable at `src`, writable at `dest`.
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        core::arch::naked_asm!(
            "mov x3, x0",
            "eor x4, x0, x1",
            "tst x4, #7",
            "b.ne 20f",
            // Same alignment modulo 8: bytes until both are aligned, then 16 per step.
            "1: tst x3, #7",
            "b.eq 2f",
            "cbz x2, 9f",
            "ldrb w4, [x1], #1",
            "strb w4, [x3], #1",
            "sub x2, x2, #1",
            "b 1b",
            "2: subs x2, x2, #16",
            "b.lo 4f",
            "3: ldp x4, x5, [x1], #16",
            "stp x4, x5, [x3], #16",
            "subs x2, x2, #16",
            "b.hs 3b",
            // x2 is the remainder minus 16: its low four bits are the remainder's.
            "4: tbz x2, #3, 5f",
            "ldr x4, [x1], #8",
            "str x4, [x3], #8",
            "5: tbz x2, #2, 6f",
            "ldr w4, [x1], #4",
            "str w4, [x3], #4",
            "6: tbz x2, #1, 7f",
            "ldrh w4, [x1], #2",
            "strh w4, [x3], #2",
            "7: tbz x2, #0, 9f",
            "ldrb w4, [x1]",
            "strb w4, [x3]",
            "9: ret",
            // Same alignment modulo 4 only: words.
            "20: tst x4, #3",
            "b.ne 30f",
            "21: tst x3, #3",
            "b.eq 22f",
            "cbz x2, 9b",
            "ldrb w4, [x1], #1",
            "strb w4, [x3], #1",
            "sub x2, x2, #1",
            "b 21b",
            "22: subs x2, x2, #4",
            "b.lo 24f",
            "23: ldr w4, [x1], #4",
            "str w4, [x3], #4",
            "subs x2, x2, #4",
            "b.hs 23b",
            "24: tbz x2, #1, 25f",
            "ldrh w4, [x1], #2",
            "strh w4, [x3], #2",
            "25: tbz x2, #0, 9b",
            "ldrb w4, [x1]",
            "strb w4, [x3]",
            "ret",
            // Otherwise bytes.
            "30: cbz x2, 9b",
            "31: ldrb w4, [x1], #1",
            "strb w4, [x3], #1",
            "subs x2, x2, #1",
            "b.ne 31b",
            "ret",
        )
    }

    /// `memmove(dest, src, n) -> dest`: the ranges may overlap.
    ///
    /// # Safety
    /// As [`memcpy`].
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        core::arch::naked_asm!(
            // A forward copy is safe unless dest lies inside (src, src + n).
            "sub x4, x0, x1",
            "cmp x4, x2",
            "b.hs {memcpy}",
            "cbz x4, 9f",
            // Backwards, from the end: 8 bytes per step when both ends agree modulo 8.
            "add x3, x0, x2",
            "add x1, x1, x2",
            "tst x4, #7",
            "b.ne 30f",
            "1: tst x3, #7",
            "b.eq 2f",
            "cbz x2, 9f",
            "ldrb w4, [x1, #-1]!",
            "strb w4, [x3, #-1]!",
            "sub x2, x2, #1",
            "b 1b",
            "2: subs x2, x2, #8",
            "b.lo 4f",
            "3: ldr x4, [x1, #-8]!",
            "str x4, [x3, #-8]!",
            "subs x2, x2, #8",
            "b.hs 3b",
            "4: adds x2, x2, #8",
            "b.eq 9f",
            "30: cbz x2, 9f",
            "31: ldrb w4, [x1, #-1]!",
            "strb w4, [x3, #-1]!",
            "subs x2, x2, #1",
            "b.ne 31b",
            "9: ret",
            memcpy = sym memcpy,
        )
    }

    /// `memset(dest, c, n) -> dest`.
    ///
    /// # Safety
    /// The C contract: `n` bytes writable at `dest`.
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        core::arch::naked_asm!(
            "mov x3, x0",
            "and x1, x1, #0xff",
            "orr x1, x1, x1, lsl #8",
            "orr x1, x1, x1, lsl #16",
            "orr x1, x1, x1, lsl #32",
            "1: tst x3, #7",
            "b.eq 2f",
            "cbz x2, 9f",
            "strb w1, [x3], #1",
            "sub x2, x2, #1",
            "b 1b",
            "2: subs x2, x2, #16",
            "b.lo 4f",
            "3: stp x1, x1, [x3], #16",
            "subs x2, x2, #16",
            "b.hs 3b",
            "4: tbz x2, #3, 5f",
            "str x1, [x3], #8",
            "5: tbz x2, #2, 6f",
            "str w1, [x3], #4",
            "6: tbz x2, #1, 7f",
            "strh w1, [x3], #2",
            "7: tbz x2, #0, 9f",
            "strb w1, [x3]",
            "9: ret",
        )
    }

    /// `memcmp(a, b, n)`: 0 if the `n` bytes are equal, else the sign of the first byte
    /// that differs (as unsigned). Every `==` on arrays and on structs the compiler does
    /// not compare field by field comes here; `compiler_builtins`' portable version compares
    /// a byte per iteration (a VMM commit compared 64 words of a virtio device's state so,
    /// some 2,500 instructions). Eight bytes per step where both agree modulo 8, aligned
    /// accesses only; the first differing word is byte-reversed so that an unsigned
    /// comparison orders it as memory does.
    ///
    /// # Safety
    /// The C contract: `n` bytes readable at both.
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        core::arch::naked_asm!(
            "eor x4, x0, x1",
            "tst x4, #7",
            "b.ne 20f",
            // Same alignment modulo 8: bytes until aligned, then words.
            "1: tst x0, #7",
            "b.eq 2f",
            "cbz x2, 8f",
            "ldrb w4, [x0], #1",
            "ldrb w5, [x1], #1",
            "subs w4, w4, w5",
            "b.ne 9f",
            "sub x2, x2, #1",
            "b 1b",
            "2: subs x2, x2, #8",
            "b.lo 4f",
            "3: ldr x4, [x0], #8",
            "ldr x5, [x1], #8",
            "cmp x4, x5",
            "b.ne 7f",
            "subs x2, x2, #8",
            "b.hs 3b",
            // x2 is the remainder minus 8.
            "4: add x2, x2, #8",
            // The rest (or everything, alignments apart) a byte at a time.
            "20: cbz x2, 8f",
            "ldrb w4, [x0], #1",
            "ldrb w5, [x1], #1",
            "subs w4, w4, w5",
            "b.ne 9f",
            "sub x2, x2, #1",
            "b 20b",
            // Little-endian: the first differing byte in memory is the least significant
            // differing one; reversed, the most significant.
            "7: rev x4, x4",
            "rev x5, x5",
            "cmp x4, x5",
            "mov w0, #1",
            "cneg w0, w0, lo",
            "ret",
            "8: mov w0, #0",
            "ret",
            "9: mov w0, w4",
            "ret",
        )
    }

    /// `bcmp(a, b, n)`: 0 if equal, nonzero otherwise; [`memcmp`] answers that too.
    ///
    /// # Safety
    /// The C contract: `n` bytes readable at both.
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        core::arch::naked_asm!("b {memcmp}", memcmp = sym memcmp)
    }
}
