//! Serves protected calls and probes CSpace slot 0, where a capability granted with a call
//! would land (a receiver that set no receive path): signalling slot 0 reaches the witness only
//! if a cap is there, and does nothing if it is empty. Generation 0 fails after its probe, so
//! generation 1 probes the CSpace its restart rebuilt: whatever was put in slots the plan does
//! not name must be gone too.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, MessageInfo, generation, println};

    fn probe() {
        axolotl_sys::signal(0);
        println!("fence: generation {} probed slot 0", generation());
    }

    struct Fence;

    impl Handler for Fence {
        fn init(&mut self) {
            if generation() > 0 {
                probe();
            }
        }

        fn notified(&mut self, _: Channel) {}

        fn protected(&mut self, _: Channel, msg: MessageInfo) -> MessageInfo {
            println!(
                "fence: generation {} called with {} caps",
                generation(),
                msg.extra_caps()
            );
            probe();
            if generation() == 0 {
                // SAFETY: deliberately invalid: the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
            }
            MessageInfo::new(0, 0, 0, 0)
        }
    }

    axolotl_pd::protection_domain!(Fence);
}

#[cfg(not(target_os = "none"))]
fn main() {}
