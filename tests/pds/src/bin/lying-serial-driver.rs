//! resilient-echo's serial driver with fault injection
//! (tests/systems/resilient-echo-liar.system, issue #20): in generation 0, after 30 completed
//! messages, it lies about generations in the ring regions it shares with its clients — it
//! claims a restart to client_a, claims generation `u32::MAX` to client_b and writes
//! client_b's own generation word — and carries on serving. Nothing is reclaimed on the lie;
//! the clients report the driver, which is restarted; client_b, restarted on the liar's own
//! report, still attaches.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::Driver;

    axolotl_pd::protection_domain!(Driver::lying_after(30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
