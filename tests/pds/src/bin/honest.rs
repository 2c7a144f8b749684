//! A healthy PD a liar reports corrupt (issue #20). It answers heartbeats until told on
//! channel 0 to hang, then spins: a real hang the monitor must detect whatever it was told
//! before.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, generation, println};

    struct Honest;

    impl Handler for Honest {
        fn init(&mut self) {
            println!("honest: generation {} running", generation());
        }

        fn notified(&mut self, _: Channel) {
            println!("honest: generation {} hanging", generation());
            loop {
                core::hint::spin_loop();
            }
        }
    }

    axolotl_pd::protection_domain!(Honest);
}

#[cfg(not(target_os = "none"))]
fn main() {}
