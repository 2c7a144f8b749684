//! The axolotl kernel: a capability microkernel at EL2, after seL4's design.
//!
//! Pure logic (syndrome decoding, stage-2 tables, the scheduler's queues, the boot allocator)
//! builds on the host too and is unit-tested there; the rest exists only on
//! `aarch64-unknown-none-softfloat`, where `cargo xtask build` compiles it.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

// Strong memcpy/memmove/memset in place of compiler_builtins' weak ones.
#[cfg(target_os = "none")]
use axolotl_memfns as _;

mod arch;
mod boot_alloc;
mod sched;
mod stage2;
mod thread;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod bootcaps;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod endpoint;
#[cfg(target_os = "none")]
mod fastpath;
#[cfg(target_os = "none")]
mod fault;
#[cfg(target_os = "none")]
mod invoke;
#[cfg(target_os = "none")]
mod ipc;
#[cfg(target_os = "none")]
mod kobj;
#[cfg(target_os = "none")]
mod notification;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
mod root_task;
#[cfg(target_os = "none")]
mod state;
#[cfg(target_os = "none")]
mod syscall;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod vcpu;
#[cfg(target_os = "none")]
mod vspace;

mod board {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}

/// The board this kernel was built for (`AXOLOTL_BOARD` / `AXOLOTL_GIC` at build time), its
/// console on the UART `AXOLOTL_CONSOLE` names when the system takes the board's own: the
/// kernel then neither writes to that UART nor keeps its page or interrupt from user level.
pub const BOARD: axolotl_kernel_config::Board = match board::CONSOLE {
    Some(uart) => axolotl_kernel_config::BOARDS[board::BOARD_INDEX].with_console(uart),
    None => axolotl_kernel_config::BOARDS[board::BOARD_INDEX],
};

/// The name `cargo xtask build` gave this image (`AXOLOTL_IMAGE`; empty when built by other
/// means), printed at boot: the test harness checks a test booted the image it asked for.
pub const IMAGE: &str = board::IMAGE;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "axolotl-kernel runs on aarch64-unknown-none-softfloat; build it with `cargo xtask build`"
    );
    std::process::exit(2);
}
