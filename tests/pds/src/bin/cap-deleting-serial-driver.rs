//! resilient-echo's serial driver with fault injection
//! (tests/systems/resilient-echo-capdelete.system): in generation 0 it deletes every
//! capability in its CSpace after 30 completed messages. Its next wait is a cap fault; the
//! restart must rebuild the CSpace, and nothing is lost or duplicated.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::Driver;

    axolotl_pd::protection_domain!(Driver::deleting_caps_after(30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
