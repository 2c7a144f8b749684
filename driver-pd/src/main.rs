//! SKELETON — not yet implemented; tracked by issue #5 (self-healing: rings, PL011 driver).
//!
//! This crate exists so the workspace has the layout the README promises. It contains no
//! behaviour and nothing pretends otherwise: the image builder does not include it in any
//! system until its issue lands.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "driver-pd is a skeleton (issue #5 (self-healing: rings, PL011 driver)); it runs on aarch64-unknown-none only"
    );
    std::process::exit(2);
}
