//! The net driver with faults injected (tests/systems/net-echo-restart.system,
//! gateway-faults-*.system): a wild write after 120 frames in generations 0, 1 and 2 (in 1
//! and 2 only at a moment a received frame waits in the device, which generations 2 and 3
//! must then salvage), a hang after 120 frames in generation 3, deaf to its interrupts after
//! 120 frames in generation 4 (a lost notification: it runs and answers heartbeats, its
//! receive watch must catch it); the monitor restarts it each time (the hang through its
//! heartbeat, the deaf one on its own panic), generation 5 runs clean.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::net::{Inject, NetDriver};

    static FAULTS: [Option<Inject>; 5] = [
        Some(Inject::Crash(120)),
        Some(Inject::CrashRxPending(120)),
        Some(Inject::CrashRxPending(120)),
        Some(Inject::Hang(120)),
        Some(Inject::DeafRx(120)),
    ];

    axolotl_pd::protection_domain!(NetDriver::injecting(&FAULTS));
}

#[cfg(not(target_os = "none"))]
fn main() {}
