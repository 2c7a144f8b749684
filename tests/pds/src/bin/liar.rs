//! A lying reporter (issue #20): its generation 0 reports the ring it shares with `honest`
//! (channel 0) corrupt, again each time the monitor tells it `honest` restarted, until the
//! monitor stops acting on its word. Then it tells `honest` to hang (a real failure the
//! monitor must still catch). Later generations only tell `honest` to hang.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, generation, println};

    const HONEST: Channel = Channel::new(0);
    /// More lies than any restart limit in the test system.
    const LIES: u32 = 10;

    struct Liar {
        lies: u32,
    }

    impl Liar {
        fn lie(&mut self) {
            self.lies += 1;
            // No ring: the lie names honest's incarnation the generation table shows now.
            let accused = HONEST.peer_generation().unwrap_or(u32::MAX);
            let acted = HONEST.report_corruption(accused);
            println!("liar: lie {} acted on: {acted}", self.lies);
            if !acted || self.lies == LIES {
                self.done();
            }
        }

        fn done(&mut self) {
            self.lies = LIES;
            println!("liar: done lying; telling honest to hang");
            HONEST.notify();
        }
    }

    impl Handler for Liar {
        fn init(&mut self) {
            let g = generation();
            if g == 0 {
                self.lie();
            } else {
                println!("liar: generation {g} running");
                self.done();
            }
        }

        /// The monitor tells us (`depends_on`) that honest restarted.
        fn notified(&mut self, _: Channel) {
            if self.lies < LIES {
                self.lie();
            }
        }
    }

    axolotl_pd::protection_domain!(Liar { lies: 0 });
}

#[cfg(not(target_os = "none"))]
fn main() {}
