//! `pattern SEED OFFSET LENGTH`: writes bytes OFFSET..OFFSET+LENGTH of the seeded stream of
//! `axolotl_guest_artifacts::pattern` to stdout (decimal numbers; LENGTH may end in `K` or
//! `M`). Exits 0 when all was written, 1 on a write error, 2 on bad arguments.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

#[path = "../../../src/pattern.rs"]
mod pattern;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(3)
}

fn exit(code: u64) -> ! {
    // SAFETY: exit_group takes no memory and does not return.
    unsafe { asm!("svc 0", in("x8") 94u64, in("x0") code, options(noreturn)) }
}

/// write(2) on stdout; the result (bytes written or -errno).
fn write(buf: &[u8]) -> i64 {
    let ret: i64;
    // SAFETY: the kernel reads `buf.len()` bytes of `buf`, which is borrowed for the call.
    unsafe {
        asm!("svc 0", in("x8") 64u64, inlateout("x0") 1i64 => ret, in("x1") buf.as_ptr(),
             in("x2") buf.len(), options(nostack));
    }
    ret
}

// The kernel starts a static ELF with sp at argc, then argv's pointers: handed to Rust as is,
// before any prologue moves sp.
global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "and sp, x0, #~15",
    "b pattern_main",
);

fn parse(arg: &[u8]) -> Option<u64> {
    let (digits, scale) = match arg.last()? {
        b'K' => (&arg[..arg.len() - 1], 1 << 10),
        b'M' => (&arg[..arg.len() - 1], 1 << 20),
        _ => (arg, 1),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    v.checked_mul(scale)
}

/// # Safety
/// `sp` is the initial stack pointer of a Linux process: argc, then argc argv pointers to
/// NUL-terminated strings.
#[unsafe(no_mangle)]
unsafe extern "C" fn pattern_main(sp: *const u64) -> ! {
    // SAFETY: the caller's contract: sp points at argc.
    let argc = unsafe { *sp } as usize;
    if argc != 4 {
        exit(2);
    }
    let mut args = [0u64; 3];
    for (i, a) in args.iter_mut().enumerate() {
        // SAFETY: argv[1..4] exist (argc is 4) and point at NUL-terminated strings.
        let s = unsafe { core::ffi::CStr::from_ptr(*sp.add(2 + i) as *const core::ffi::c_char) };
        *a = match parse(s.to_bytes()) {
            Some(v) => v,
            None => exit(2),
        };
    }
    let [seed, mut offset, mut left] = args;
    let mut buf = [0u8; 64 << 10];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        pattern::fill(seed, offset, &mut buf[..n]);
        let mut done = 0;
        while done < n {
            let r = write(&buf[done..n]);
            if r <= 0 {
                exit(1);
            }
            done += r as usize;
        }
        offset += n as u64;
        left -= n as u64;
    }
    exit(0)
}
