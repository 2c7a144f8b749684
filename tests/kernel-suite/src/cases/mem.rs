//! The freestanding memcpy, memmove, memset and memcmp (lib/memfns) against a byte-by-byte model, for
//! every relative alignment and the short lengths where their paths split: the bytes in
//! range are right and the guard bytes around them untouched.

use crate::harness::{Env, Fail};
use core::hint::black_box;
use core::ptr::{read_volatile, write_volatile};

const BUF: usize = 160;

/// A recognisable byte for position `i` of pattern `seed` (volatile: no memset call).
fn fill(buf: &mut [u8; BUF], seed: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: a valid byte.
        unsafe { write_volatile(b, (i as u8).wrapping_mul(7).wrapping_add(seed)) };
    }
}

fn at(buf: &[u8; BUF], i: usize) -> u8 {
    // SAFETY: in bounds.
    unsafe { read_volatile(&buf[i]) }
}

pub fn copy(_: &mut Env) -> Result<(), Fail> {
    let (mut src, mut dst) = ([0u8; BUF], [0u8; BUF]);
    fill(&mut src, 1);
    for so in 0..16 {
        for d0 in 0..16 {
            for n in 0..80 {
                fill(&mut dst, 100);
                // SAFETY: both ranges are in their buffers and distinct.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        black_box(src.as_ptr().add(so)),
                        black_box(dst.as_mut_ptr().add(d0)),
                        black_box(n),
                    )
                };
                let mut model = [0u8; BUF];
                fill(&mut model, 100);
                for i in 0..BUF {
                    let want = if (d0..d0 + n).contains(&i) {
                        at(&src, i - d0 + so)
                    } else {
                        at(&model, i)
                    };
                    if at(&dst, i) != want {
                        return Err(Fail::new(format_args!(
                            "memcpy src+{so} dst+{d0} len {n}: byte {i} is {:#x}, want {want:#x}",
                            at(&dst, i)
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn move_(_: &mut Env) -> Result<(), Fail> {
    let mut buf = [0u8; BUF];
    let mut model = [0u8; BUF];
    for from in 0..24 {
        for to in 0..24 {
            for n in 0..72 {
                fill(&mut buf, 3);
                // SAFETY: both ranges lie in `buf` (24 + 72 < BUF); they may overlap.
                unsafe {
                    core::ptr::copy(
                        black_box(buf.as_ptr().add(from)),
                        black_box(buf.as_mut_ptr().add(to)),
                        black_box(n),
                    )
                };
                fill(&mut model, 3);
                let mut tmp = [0u8; BUF];
                for (i, t) in tmp.iter_mut().enumerate().take(n) {
                    // SAFETY: a valid byte.
                    unsafe { write_volatile(t, at(&model, from + i)) };
                }
                for i in 0..n {
                    // SAFETY: in bounds.
                    unsafe { write_volatile(&mut model[to + i], at(&tmp, i)) };
                }
                for i in 0..BUF {
                    if at(&buf, i) != at(&model, i) {
                        return Err(Fail::new(format_args!(
                            "memmove from {from} to {to} len {n}: byte {i} is {:#x}, want {:#x}",
                            at(&buf, i),
                            at(&model, i)
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn set(_: &mut Env) -> Result<(), Fail> {
    let mut buf = [0u8; BUF];
    let mut model = [0u8; BUF];
    for d0 in 0..16 {
        for n in 0..100 {
            let v = (n as u8).wrapping_mul(13) | 0x80;
            fill(&mut buf, 5);
            // SAFETY: the range lies in `buf`.
            unsafe { core::ptr::write_bytes(black_box(buf.as_mut_ptr().add(d0)), v, black_box(n)) };
            fill(&mut model, 5);
            for i in 0..BUF {
                let want = if (d0..d0 + n).contains(&i) {
                    v
                } else {
                    at(&model, i)
                };
                if at(&buf, i) != want {
                    return Err(Fail::new(format_args!(
                        "memset dst+{d0} len {n} to {v:#x}: byte {i} is {:#x}",
                        at(&buf, i)
                    )));
                }
            }
        }
    }
    Ok(())
}

unsafe extern "C" {
    fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32;
    fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32;
}

/// memcmp and bcmp against the model's answer, for every relative alignment, the short
/// lengths where the paths split, and a difference (either way) at every position or none.
pub fn compare(_: &mut Env) -> Result<(), Fail> {
    let (mut a, mut b) = ([0u8; BUF], [0u8; BUF]);
    // Offsets modulo 8 are what the paths tell apart.
    for ao in 0..8 {
        for bo in 0..8 {
            for n in 0..40 {
                // None, then at each position b's byte one above and one below a's.
                for diff in 0..=2 * n {
                    fill(&mut a, 5);
                    fill(&mut b, 5);
                    // Same bytes in both ranges, whatever the offsets.
                    for i in 0..n {
                        // SAFETY: in bounds.
                        unsafe { write_volatile(&mut b[bo + i], at(&a, ao + i)) };
                    }
                    let want = if diff == 0 {
                        0
                    } else {
                        let (i, up) = ((diff - 1) / 2, diff % 2 == 1);
                        let v = at(&a, ao + i);
                        // 0x00 and 0xff have no neighbour one way: wrap, which flips the sign.
                        let w = if up {
                            v.wrapping_add(1)
                        } else {
                            v.wrapping_sub(1)
                        };
                        // SAFETY: in bounds.
                        unsafe { write_volatile(&mut b[bo + i], w) };
                        (i32::from(v) - i32::from(w)).signum()
                    };
                    // SAFETY: both ranges lie in their buffers.
                    let (got, got_b) = unsafe {
                        (
                            memcmp(
                                black_box(a.as_ptr().add(ao)),
                                black_box(b.as_ptr().add(bo)),
                                black_box(n),
                            ),
                            bcmp(
                                black_box(a.as_ptr().add(ao)),
                                black_box(b.as_ptr().add(bo)),
                                black_box(n),
                            ),
                        )
                    };
                    if got.signum() != want || (got_b == 0) != (want == 0) {
                        return Err(Fail::new(format_args!(
                            "memcmp a+{ao} b+{bo} len {n} diff {diff}: {got} (bcmp {got_b}), want sign {want}"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
