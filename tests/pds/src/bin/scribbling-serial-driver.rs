//! resilient-echo's serial driver with fault injection
//! (tests/systems/resilient-echo-scribble.system): in generation 0 it corrupts client_a's
//! response ring indices after 30 completed messages and carries on. client_a must detect it
//! and report the driver, which is restarted; nothing is lost or duplicated.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::Driver;

    axolotl_pd::protection_domain!(Driver::scribbling_after(30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
