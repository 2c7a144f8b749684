//! In-QEMU kernel test suite (after seL4test), booted in place of the root task: runs every
//! case in `cases`, prints `kernel-suite: test NAME ... ok|FAILED: why` per case and finally
//! `kernel-suite: N passed, M failed`.

#![cfg_attr(target_os = "none", no_std, no_main)]
// A failure carries its formatted message inline (no heap); failures are rare, so its size
// does not matter.
#![allow(clippy::result_large_err)]

#[cfg(target_os = "none")]
#[macro_use]
mod harness;
#[cfg(target_os = "none")]
mod cases;

#[cfg(target_os = "none")]
mod rt {
    use axolotl_abi::BootInfo;

    core::arch::global_asm!(
        ".section .text.start, \"ax\"",
        ".global _start",
        "_start:",
        "    bl suite_main",
        "1:  b 1b"
    );

    #[unsafe(no_mangle)]
    extern "C" fn suite_main(bootinfo: u64) -> ! {
        // SAFETY: the kernel maps the boot info read-only at this address for our lifetime.
        let bi: &'static BootInfo = unsafe { &*(bootinfo as *const BootInfo) };
        crate::harness::run(bi, crate::cases::ALL)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        axolotl_sys::println!("kernel-suite: PANIC: {}", info.message());
        axolotl_sys::thread_exit()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "axolotl-kernel-suite runs on aarch64-unknown-none; it is booted by `cargo xtask test`"
    );
    std::process::exit(2);
}
