//! Tries to get authority it was not given (issue #20): its cap to the witness's notification
//! rides along on a protected call to `fence`, which would find it in its CSpace; then it
//! tries to receive on its fault endpoint, the monitor's, where every other PD's faults
//! arrive. A PD's endpoint caps carry neither the grant right nor, where it only calls or
//! faults, the read right (`Cap::rights` in lib/boot-plan), so both must fail.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_boot_plan::cspace::MONITOR_EP;
    use axolotl_pd::{Channel, Handler, MessageInfo, println};

    const FENCE: Channel = Channel::new(0);
    const WITNESS: Channel = Channel::new(1);

    struct Smuggler;

    impl Handler for Smuggler {
        fn init(&mut self) {
            axolotl_sys::ipc::set_cap(0, WITNESS.notification_cap());
            let (info, _) = FENCE.pp_call(MessageInfo::new(0, 0, 1, 0), [0; 4]);
            println!("smuggler: call answered with label {}", info.label());
            // Without the read right this is a cap fault: the monitor sees this PD fail.
            axolotl_sys::nb_recv(MONITOR_EP);
            println!("smuggler: received on the monitor's endpoint");
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Smuggler);
}

#[cfg(not(target_os = "none"))]
fn main() {}
