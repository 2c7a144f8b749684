//! Bulk copy, zero and compare, 32 bytes per step through SIMD registers: a PD restart's cost
//! is mostly these loops (`cargo xtask bench`, restart latency), and the freestanding
//! `memcpy`/`memcmp` the compiler would call move a word or a byte at a time. The host build
//! (tests) uses the plain slice operations.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
const STEP: usize = 32;

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod host {
    pub fn copy(dst: &mut [u8], src: &[u8]) {
        dst.copy_from_slice(src)
    }
    pub fn zero(dst: &mut [u8]) {
        dst.fill(0)
    }
    pub fn equal(a: &[u8], b: &[u8]) -> bool {
        a == b
    }
}
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub use host::*;

/// `dst.copy_from_slice(src)`.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    let bulk = dst.len() - dst.len() % STEP;
    if bulk > 0 {
        // SAFETY: both ranges are `bulk` bytes long and valid; q0/q1 are declared clobbered.
        unsafe {
            core::arch::asm!(
                "1: ldp q0, q1, [{s}], #32",
                "   stp q0, q1, [{d}], #32",
                "   subs {n}, {n}, #32",
                "   b.ne 1b",
                s = inout(reg) src.as_ptr() => _,
                d = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) bulk => _,
                out("v0") _, out("v1") _,
                options(nostack),
            );
        }
    }
    dst[bulk..].copy_from_slice(&src[bulk..]);
}

/// `dst.fill(0)`.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn zero(dst: &mut [u8]) {
    let bulk = dst.len() - dst.len() % STEP;
    if bulk > 0 {
        // SAFETY: the range is `bulk` bytes long and valid.
        unsafe {
            core::arch::asm!(
                "1: stp xzr, xzr, [{d}]",
                "   stp xzr, xzr, [{d}, #16]",
                "   add {d}, {d}, #32",
                "   subs {n}, {n}, #32",
                "   b.ne 1b",
                d = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) bulk => _,
                options(nostack),
            );
        }
    }
    dst[bulk..].fill(0);
}

/// `a == b`, reading every byte (no early exit).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let bulk = a.len() - a.len() % STEP;
    let mut diff: u64 = 0;
    if bulk > 0 {
        // SAFETY: both ranges are `bulk` bytes long and valid; v0..v4 are declared clobbered.
        unsafe {
            core::arch::asm!(
                "   movi v4.16b, #0",
                "1: ldp q0, q1, [{a}], #32",
                "   ldp q2, q3, [{b}], #32",
                "   eor v0.16b, v0.16b, v2.16b",
                "   eor v1.16b, v1.16b, v3.16b",
                "   orr v4.16b, v4.16b, v0.16b",
                "   orr v4.16b, v4.16b, v1.16b",
                "   subs {n}, {n}, #32",
                "   b.ne 1b",
                "   umaxv s4, v4.4s",
                "   fmov {diff:w}, s4",
                a = inout(reg) a.as_ptr() => _,
                b = inout(reg) b.as_ptr() => _,
                n = inout(reg) bulk => _,
                diff = out(reg) diff,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
                options(nostack, readonly),
            );
        }
    }
    diff == 0 && a[bulk..] == b[bulk..]
}

/// Whether every byte is zero.
pub fn is_zero(a: &[u8]) -> bool {
    let zeros = [0u8; 4096];
    a.chunks(zeros.len()).all(|c| equal(c, &zeros[..c.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_zero_compare() {
        let src: [u8; 100] = core::array::from_fn(|i| i as u8);
        let mut dst = [0xffu8; 100];
        copy(&mut dst, &src);
        assert!(equal(&dst, &src));
        dst[99] = 0;
        assert!(!equal(&dst, &src));
        zero(&mut dst[..70]);
        assert!(is_zero(&dst[..70]) && !is_zero(&dst));
    }
}
