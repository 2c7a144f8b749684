//! Reports the ring it shares with a peer that cannot be restarted (`restart="never"`) as
//! corrupt, once, in generation 0 (issue #21's campaign: a driver blaming a client). The
//! monitor must not decline and leave the connection dead: it restarts the accuser, whose
//! new generation resets their connection, and holds nobody.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, generation, println};

    const PEER: Channel = Channel::new(0);

    struct Accuser;

    impl Handler for Accuser {
        fn init(&mut self) {
            let g = generation();
            if g == 0 {
                let accused = PEER.peer_generation().unwrap_or(u32::MAX);
                let acted = PEER.report_corruption(accused);
                // Not reached when the monitor restarts us on the report: it stops us first.
                println!("accuser: report acted on: {acted}");
            } else {
                println!("accuser: generation {g} running; notifying the peer");
                PEER.notify();
            }
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Accuser);
}

#[cfg(not(target_os = "none"))]
fn main() {}
