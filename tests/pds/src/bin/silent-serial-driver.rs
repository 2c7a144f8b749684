//! resilient-echo's serial driver with fault injection
//! (tests/systems/resilient-echo-silent.system): in generation 0, after 30 completed
//! messages, it flips a bit of client_a's request tail and from then on reports no client it
//! finds corrupt. client_a's connection is dead while the driver runs and answers its
//! heartbeats; only client_a's end-to-end deadline can notice (issue #21).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::Driver;

    axolotl_pd::protection_domain!(Driver::silent_after(30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
