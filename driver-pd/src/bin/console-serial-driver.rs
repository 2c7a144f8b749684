//! The serial driver PD of systems/linux-vm.system: UART1's receive side for the VMM, which
//! feeds it to its guest's console (docs/vmm.md, "Console input"). No transmit clients.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::ConsoleDriver;

    axolotl_pd::protection_domain!(ConsoleDriver::for_vmm());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/linux-vm.system`"
    );
}
