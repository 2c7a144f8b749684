//! The network virtualiser with a fault injected (tests/systems/net-echo-restart.system): a
//! wild write after 400 routed frames in generation 0; the restarted one runs clean.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::net::NetVirt;

    axolotl_pd::protection_domain!(NetVirt::crashing_after(400));
}

#[cfg(not(target_os = "none"))]
fn main() {}
