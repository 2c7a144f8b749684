//! The net driver PD (docs/network.md).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::net::NetDriver;

    axolotl_pd::protection_domain!(NetDriver::new());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system tests/systems/net-echo.system`"
    );
}
