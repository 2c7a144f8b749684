//! The Linux guest's serial driver PD on the Raspberry Pi 4: the mini UART both ways for the
//! VMM (as `console-serial-driver` does with QEMU virt's UART1; tests/systems/linux-vm-rpi4b.system).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::mini::MiniConsoleDriver;

    axolotl_pd::protection_domain!(MiniConsoleDriver::for_vmm());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --board rpi4b --system tests/systems/linux-vm-rpi4b.system`"
    );
}
