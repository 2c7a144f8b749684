//! The VMM protection domain: one per guest. It loads the Linux kernel, initramfs and a device
//! tree it writes into guest RAM, starts vCPU 0, and turns the kernel's exit messages into
//! replies through `axolotl-vmm-core` (which holds all the logic and its tests). See
//! docs/vmm.md.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(all(target_os = "none", feature = "fault-injection"))]
mod inject;
#[cfg(target_os = "none")]
mod pd;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vmm-pd is a protection domain; it runs on aarch64-unknown-none only");
    std::process::exit(2);
}
