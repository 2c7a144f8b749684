//! Generation 0 panics; a restarted generation tells the witness it runs.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, generation, println};

    const WITNESS: Channel = Channel::new(0);

    struct Panicker;

    impl Handler for Panicker {
        fn init(&mut self) {
            let g = generation();
            if g == 0 {
                panic!("deliberate panic in generation 0");
            }
            println!("panicker: generation {g} running");
            WITNESS.notify();
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Panicker);
}

#[cfg(not(target_os = "none"))]
fn main() {}
