//! The control plane's driver over a virtio-console (docs/control.md): port 0 carries the
//! host CLI's byte stream both ways, for control-pd only; UART1 stays free for a guest.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::vcons::VconsControlDriver;

    axolotl_pd::protection_domain!(VconsControlDriver::for_control());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system tests/systems/control-gateway.system`"
    );
}
