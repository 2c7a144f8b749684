//! resilient-echo's serial driver PD on the ODROID-C4 and C2: their UART_A, a meson UART
//! (C4 0xffd2_4000, C2 0xc110_84c0; INTID 58, edge), instead of QEMU virt's UART1
//! (tests/systems/resilient-echo-odroid-c4.system, resilient-echo-odroid-c2.system).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::meson::MesonDriver;

    axolotl_pd::protection_domain!(MesonDriver::new());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --board odroid-c4 --system tests/systems/resilient-echo-odroid-c4.system`"
    );
}
