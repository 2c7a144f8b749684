//! Serves protected calls (the double of MR0); generation 0 crashes while serving its first
//! call, so the caller is blocked on the reply when the callee is restarted.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, MessageInfo, generation, get_mr, println, set_mr};

    struct Callee;

    impl Handler for Callee {
        fn init(&mut self) {
            println!("pp_callee: generation {} ready", generation());
        }

        fn notified(&mut self, _: Channel) {}

        fn protected(&mut self, _: Channel, _: MessageInfo) -> MessageInfo {
            let n = get_mr(0);
            if generation() == 0 {
                println!("pp_callee: crashing while serving call {n}");
                // SAFETY: deliberately invalid: the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, n) };
            }
            println!("pp_callee: serving call {n}");
            set_mr(0, 2 * n);
            MessageInfo::new(0, 0, 0, 1)
        }
    }

    axolotl_pd::protection_domain!(Callee);
}

#[cfg(not(target_os = "none"))]
fn main() {}
