//! Static arm64 Linux program: prints CNTVCT_EL0 in ns, i.e. QEMU's virtual clock,
//! which under `-icount shift=0` advances one ns per instruction.
#![no_std]
#![no_main]
use core::arch::asm;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(1)
}

fn exit(code: u64) -> ! {
    unsafe { asm!("svc 0", in("x8") 93u64, in("x0") code, options(noreturn)) }
}

fn write(buf: &[u8]) {
    unsafe {
        asm!("svc 0", in("x8") 64u64, inlateout("x0") 1u64 => _, in("x1") buf.as_ptr(), in("x2") buf.len());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let cnt: u64;
    let frq: u64;
    unsafe {
        asm!("isb", "mrs {0}, cntvct_el0", out(reg) cnt);
        asm!("mrs {0}, cntfrq_el0", out(reg) frq);
    }
    let ns = (cnt as u128 * 1_000_000_000 / frq as u128) as u64;
    let mut out = *b"CNTVCT_NS=00000000000000000000\n";
    let mut v = ns;
    for i in (10..30).rev() {
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    write(&out);
    exit(0)
}
