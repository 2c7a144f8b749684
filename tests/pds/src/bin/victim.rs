//! Says which generation runs; the peer of a corruption report.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, generation, println};

    struct Victim;

    impl Handler for Victim {
        fn init(&mut self) {
            println!("victim: generation {} running", generation());
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Victim);
}

#[cfg(not(target_os = "none"))]
fn main() {}
