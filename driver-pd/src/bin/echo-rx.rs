//! `echo_rx` of systems/resilient-echo.system: the client of the driver's receive connection;
//! prints every line that arrives on UART1 (see the crate docs).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::EchoRx;

    axolotl_pd::protection_domain!(EchoRx::new());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/resilient-echo.system`"
    );
}
