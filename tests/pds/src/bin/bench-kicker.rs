//! The restart benchmark's pacer (tests/systems/bench-restart.system): at the lowest
//! priority it notifies its four channels, one per benchmark PD, over and over. It runs only
//! when everything else waits, the standby refresher included, so each failure it triggers
//! finds the system idle. Rounds are `PACE_MS` apart, so every incarnation has run the
//! monitor's minimum run time (`axolotl_monitor_core::MIN_RUN_MS`) when it fails: the
//! restart measured is the immediate one a failure after a quiet spell gets, not one
//! the restart-storm floor delays.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler};

    /// The SDF's channels 0..4 of this PD.
    const BENCH_PDS: u8 = 4;
    /// Above the monitor's 50 ms floor.
    const PACE_MS: u64 = 60;

    struct Kicker;

    impl Handler for Kicker {
        fn init(&mut self) {
            loop {
                let round = axolotl_sys::time::now_ns();
                for id in 0..BENCH_PDS {
                    Channel::new(id).notify();
                }
                while axolotl_sys::time::now_ns() - round < PACE_MS * 1_000_000 {
                    core::hint::spin_loop();
                }
            }
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Kicker);
}

#[cfg(not(target_os = "none"))]
fn main() {}
