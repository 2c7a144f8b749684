//! The network virtualiser stuck in its handshakes (tests/systems/net-echo-deaf.system): in
//! generation 0 it publishes itself on its clients' links and never acknowledges them, while
//! it serves the driver and answers heartbeats (the virtualiser's campaign id 541); the
//! clients' connect deadline reports it and the restarted virtualiser runs clean.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::net::NetVirt;

    axolotl_pd::protection_domain!(NetVirt::deaf_to_clients());
}

#[cfg(not(target_os = "none"))]
fn main() {}
