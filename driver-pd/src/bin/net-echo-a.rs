//! Native network client 0 (`echo_a`): answers ARP and UDP echo as `axolotl_driver_pd::NET_CLIENTS[0]` (docs/network.md).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::net::NetEcho;

    axolotl_pd::protection_domain!(NetEcho::new(0));
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system tests/systems/net-echo.system`"
    );
}
