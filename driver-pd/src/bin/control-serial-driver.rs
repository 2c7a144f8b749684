//! The serial driver PD of systems/control.system (docs/control.md): UART1 carries the host
//! CLI's byte stream both ways, for control-pd only.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::ControlDriver;

    axolotl_pd::protection_domain!(ControlDriver::for_control());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/control.system`"
    );
}
