//! Echo client `client_a` of systems/resilient-echo.system (see the crate docs).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::EchoClient;

    axolotl_pd::protection_domain!(EchoClient::new("client_a"));
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/resilient-echo.system`"
    );
}
