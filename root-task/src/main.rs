//! The root task: the first and only thread the kernel creates itself.
//!
//! With a system packed in (`cargo xtask build --system`), it builds and starts the PDs the
//! boot plan describes ([`system`]). Without one it greets, and in test builds runs one boot
//! self-check chosen by a cargo feature.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(all(target_os = "none", feature = "selftest-bench"))]
mod bench;
#[cfg(all(target_os = "none", feature = "selftest-ipc"))]
mod selftest_ipc;
#[cfg(target_os = "none")]
mod spawn;

#[cfg(target_os = "none")]
mod system;

#[cfg(target_os = "none")]
mod rt {
    use axolotl_sys::println;

    core::arch::global_asm!(
        ".section .text.start, \"ax\"",
        ".global _start",
        "_start:",
        // The kernel's initial stack is small; decoding the boot plan needs more.
        "    adrp x9, root_stack_top",
        "    add x9, x9, :lo12:root_stack_top",
        "    mov sp, x9",
        "    bl root_main",
        "1:  b 1b",
        ".section .bss.root_stack, \"aw\", %nobits",
        ".balign 16",
        "    .skip 0x80000",
        "root_stack_top:",
    );

    #[unsafe(no_mangle)]
    extern "C" fn root_main(bootinfo: u64) -> ! {
        println!(
            "root-task: hello from EL0 (axolotl root task v{})",
            env!("CARGO_PKG_VERSION")
        );
        if crate::system::packed() {
            // SAFETY: the kernel maps the boot info page read-only at this address.
            crate::system::run(unsafe { &*(bootinfo as *const axolotl_abi::BootInfo) });
        }
        #[cfg(feature = "selftest-fault")]
        selftest_fault();
        #[cfg(feature = "selftest-ticks")]
        selftest_ticks();
        #[cfg(feature = "selftest-ipc")]
        {
            // SAFETY: the kernel maps the boot info page read-only at this address.
            let bi = unsafe { &*(bootinfo as *const axolotl_abi::BootInfo) };
            if let Err(e) = crate::selftest_ipc::run(bi) {
                println!("root-task: selftest FAILED: {e}");
            }
        }
        #[cfg(feature = "selftest-bench")]
        {
            // SAFETY: the kernel maps the boot info page read-only at this address.
            let bi = unsafe { &*(bootinfo as *const axolotl_abi::BootInfo) };
            if let Err(e) = crate::bench::run(bi) {
                println!("bench: FAILED: {e}");
            }
        }
        println!("root-task: done");
        axolotl_sys::thread_exit()
    }

    /// Writes where nothing is mapped: the kernel must report the fault and stop only us.
    #[cfg(feature = "selftest-fault")]
    fn selftest_fault() {
        const UNMAPPED: u64 = 0x0000_0040_dead_0000 & ((1 << 39) - 1);
        println!("root-task: selftest: writing to unmapped address {UNMAPPED:#x}");
        // SAFETY: deliberately invalid; the kernel stops this thread before it continues.
        unsafe { core::ptr::write_volatile(UNMAPPED as *mut u64, 0xbad) };
        println!("root-task: selftest FAILED: the illegal write did not fault");
    }

    /// Waits (by yielding) for 50 kernel ticks and reports the counts the kernel gives.
    #[cfg(feature = "selftest-ticks")]
    fn selftest_ticks() {
        let start = axolotl_sys::debug_ticks();
        println!("root-task: selftest: ticks at start {start}");
        let mut spins: u64 = 0;
        while axolotl_sys::debug_ticks() < start + 50 {
            axolotl_sys::yield_now();
            spins += 1;
        }
        println!(
            "root-task: selftest: ticks at end {} after {spins} yields",
            axolotl_sys::debug_ticks()
        );
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        println!("root-task: PANIC: {}", info.message());
        axolotl_sys::thread_exit()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("axolotl-root-task runs on aarch64-unknown-none; build it with `cargo xtask build`");
    std::process::exit(2);
}
