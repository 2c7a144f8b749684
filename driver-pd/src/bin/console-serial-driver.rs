//! The serial driver PD of systems/linux-vm.system: UART1 both ways for the VMM, the guest's
//! serial line: its receive connection feeds the guest's console input, its one transmit
//! connection (`client_a`'s maps) carries the guest's console output (docs/vmm.md).

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
