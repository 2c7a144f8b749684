//! The network virtualiser with its own state broken (tests/systems/net-echo-misread.system):
//! in generation 0, after 200 routed frames, its link to the driver reads as corrupt for
//! good, also after the driver's restart; the restarted virtualiser runs clean.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::net::NetVirt;

    axolotl_pd::protection_domain!(NetVirt::misreading_after(200));
}

#[cfg(not(target_os = "none"))]
fn main() {}
