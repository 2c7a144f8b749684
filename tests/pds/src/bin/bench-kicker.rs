//! The restart benchmark's pacer (tests/systems/bench-restart.system): at the lowest
//! priority it notifies its four channels, one per benchmark PD, over and over. It runs only
//! when everything else waits, the standby refresher included, so each failure it triggers
//! finds the system idle.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler};

    /// The SDF's channels 0..4 of this PD.
    const BENCH_PDS: u8 = 4;

    struct Kicker;

    impl Handler for Kicker {
        fn init(&mut self) {
            loop {
                for id in 0..BENCH_PDS {
                    Channel::new(id).notify();
                }
            }
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Kicker);
}

#[cfg(not(target_os = "none"))]
fn main() {}
