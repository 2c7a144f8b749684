//! Calls the callee; a call aborted because the callee was restarted is retried.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{CALL_ABORTED, Channel, Handler, MessageInfo, println};

    const CALLEE: Channel = Channel::new(0);

    struct Caller;

    impl Handler for Caller {
        fn init(&mut self) {
            for n in 1..=2u64 {
                loop {
                    let (info, mrs) = CALLEE.pp_call(MessageInfo::new(0, 0, 0, 1), [n, 0, 0, 0]);
                    match info.label() {
                        0 => {
                            println!("pp_caller: call {n} answered {}", mrs[0]);
                            break;
                        }
                        CALL_ABORTED => {
                            println!(
                                "pp_caller: call {n} aborted: the callee was restarted; retrying"
                            );
                        }
                        l => {
                            println!("pp_caller: call {n} failed with label {l}");
                            break;
                        }
                    }
                }
            }
            println!("pp_caller: done");
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Caller);
}

#[cfg(not(target_os = "none"))]
fn main() {}
