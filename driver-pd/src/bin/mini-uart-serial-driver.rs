//! resilient-echo's serial driver PD on the Raspberry Pi 4: the mini UART (aux page
//! 0xfe21_5000, INTID 125) instead of QEMU virt's UART1 (tests/systems/resilient-echo-rpi4b.system).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::mini::MiniDriver;

    axolotl_pd::protection_domain!(MiniDriver::new());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --board rpi4b --system tests/systems/resilient-echo-rpi4b.system`"
    );
}
