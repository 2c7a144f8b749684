//! A Linux guest's serial driver PD on the ODROID-C4 and C2: UART_A both ways for the VMM
//! (as `mini-uart-console-serial-driver` on the Pi). No system uses it yet.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::meson::MesonConsoleDriver;

    axolotl_pd::protection_domain!(MesonConsoleDriver::for_vmm());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("a protection domain: build it into a system for odroid-c4 or odroid-c2");
}
