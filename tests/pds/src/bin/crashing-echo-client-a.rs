//! resilient-echo's `client_a` with fault injection
//! (tests/systems/resilient-echo-client-crash.system): in generation 0 it crashes after 30
//! completed messages. The monitor restarts it; the driver hands back what it had in flight
//! and goes on serving client_b, which loses and duplicates nothing.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::EchoClient;

    axolotl_pd::protection_domain!(EchoClient::crashing_after("client_a", 30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
