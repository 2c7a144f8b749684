//! In-QEMU kernel test suite: being written (issue #3). Booted in place of the root task.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod rt {
    core::arch::global_asm!(
        ".section .text.start, \"ax\"",
        ".global _start",
        "_start:",
        "    bl suite_main",
        "1:  b 1b"
    );

    #[unsafe(no_mangle)]
    extern "C" fn suite_main(_bootinfo: u64) -> ! {
        axolotl_sys::println!("kernel-suite: not written yet");
        axolotl_sys::thread_exit()
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
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
