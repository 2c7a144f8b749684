//! Reports every notification: proof that a restarted peer got its channel caps back.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, println};

    struct Witness;

    impl Handler for Witness {
        fn notified(&mut self, ch: Channel) {
            println!("witness: notified on channel {}", ch.id());
        }
    }

    axolotl_pd::protection_domain!(Witness);
}

#[cfg(not(target_os = "none"))]
fn main() {}
