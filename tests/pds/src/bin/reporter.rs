//! Reports the ring it shares over channel 0 as corrupt (what a driver or client does when
//! lib/ring says `Corruption`), so the monitor restarts the peer.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, println};

    const PEER: Channel = Channel::new(0);

    struct Reporter;

    impl Handler for Reporter {
        fn init(&mut self) {
            // No ring: the peer's incarnation is the one the generation table shows now.
            let accused = PEER.peer_generation().unwrap_or(u32::MAX);
            let acted = PEER.report_corruption(accused);
            println!("reporter: corruption on channel 0 reported, peer restarted: {acted}");
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Reporter);
}

#[cfg(not(target_os = "none"))]
fn main() {}
