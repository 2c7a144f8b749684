//! resilient-echo's serial driver with fault injection (tests/systems/resilient-echo-hang.system):
//! in generation 0 it busy-loops forever once it has completed 30 messages, before telling the
//! clients. Only the monitor's heartbeat watchdog can see it; the restarted driver
//! (generation 1) is the plain one.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::Driver;

    axolotl_pd::protection_domain!(Driver::hanging_after(30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
