//! Sends (does not Call) a corruption report to the monitor (issue #20): a message that
//! brings no reply capability. The monitor's answer must not go to whoever last left it one
//! (a held PD whose fault it never answered).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_boot_plan::cspace::MONITOR_EP;
    use axolotl_pd::{Channel, Handler, MessageInfo, println};

    struct SendReporter;

    impl Handler for SendReporter {
        fn init(&mut self) {
            // A channel id we do not have: the monitor's answer would be a refusal.
            axolotl_sys::send(
                MONITOR_EP,
                MessageInfo::new(axolotl_abi::REPORT_CORRUPTION, 0, 0, 1),
                [9, 0, 0, 0],
            );
            println!("send_reporter: sent a report without a reply cap");
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(SendReporter);
}

#[cfg(not(target_os = "none"))]
fn main() {}
