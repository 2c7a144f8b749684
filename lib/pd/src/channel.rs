use axolotl_boot_plan::cspace::{endpoint_slot, irq_slot, notification_slot};

/// A channel end of this PD, by its id in the SDF (0..=61).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel(u8);

/// A child PD, by its `id` in the SDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child(u8);

impl Channel {
    pub const fn new(id: u8) -> Self {
        Channel(id)
    }
    pub const fn id(self) -> u8 {
        self.0
    }
    /// Capability slots behind this channel (Microkit's layout).
    pub const fn notification_cap(self) -> u64 {
        notification_slot(self.0)
    }
    pub const fn endpoint_cap(self) -> u64 {
        endpoint_slot(self.0)
    }
    pub const fn irq_cap(self) -> u64 {
        irq_slot(self.0)
    }
}

impl Child {
    pub const fn new(id: u8) -> Self {
        Child(id)
    }
    pub const fn id(self) -> u8 {
        self.0
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod ops {
    use super::Channel;
    use axolotl_abi::MessageInfo;

    impl Channel {
        /// Signals the PD at the other end.
        pub fn notify(self) {
            axolotl_sys::signal(self.notification_cap());
        }

        /// Calls the PD at the other end (it must have higher priority) and waits for its
        /// reply; message registers travel as with any IPC. A reply labelled
        /// [`axolotl_abi::CALL_ABORTED`] means the callee was stopped or restarted before it
        /// answered: the call may be retried.
        pub fn pp_call(self, msg: MessageInfo, mrs: [u64; 4]) -> (MessageInfo, [u64; 4]) {
            let r = axolotl_sys::call(self.endpoint_cap(), msg, mrs);
            (r.info, r.mrs)
        }

        /// Tells the monitor that what this channel shares (a ring) is corrupt, so the peer
        /// should be restarted. `accused` is the peer's PD generation the corruption was
        /// found against, as this PD knew it then (a ring endpoint: the generation it was
        /// connected to), not as the generation table may show it now: a report that crosses
        /// the peer's restart is declined as stale instead of restarting the fresh
        /// incarnation. Returns whether the monitor acted on it (the report may be declined,
        /// or the peer's restart policy hold it instead).
        pub fn report_corruption(self, accused: u32) -> bool {
            let (info, words) = axolotl_abi::CorruptionReport {
                channel: self.id() as u64,
                accused: Some(accused),
            }
            .to_message();
            let r = axolotl_sys::call(axolotl_boot_plan::cspace::MONITOR_EP, info, words);
            r.info.label() == 0
        }

        /// Reports the peer at this channel's other end as corrupt: the incarnation `seen`
        /// (the one a ring endpoint last saw, so a successor that attached since is not
        /// blamed), else the one the generation table shows now, else any (`u32::MAX`).
        /// Whether the monitor restarted it.
        pub fn report_peer(self, seen: Option<u32>) -> bool {
            let accused = seen.or_else(|| self.peer_generation()).unwrap_or(u32::MAX);
            self.report_corruption(accused)
        }

        /// The PD generation of the peer at this channel's other end as the root task's
        /// generation table shows it now (`None`: no such channel in the table). For a
        /// report by a PD that has no ring endpoint to tell which incarnation it saw.
        pub fn peer_generation(self) -> Option<u32> {
            crate::peer_generation_word(self).map(|w| w.load(core::sync::atomic::Ordering::Acquire))
        }

        /// Re-enables the interrupt behind this channel once it has been handled.
        pub fn irq_ack(self) -> Result<(), axolotl_sys::InvocationError> {
            axolotl_sys::IrqHandler(self.irq_cap()).ack()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_microkit() {
        assert_eq!(Channel::new(3).notification_cap(), 13);
        assert_eq!(Channel::new(3).endpoint_cap(), 77);
        assert_eq!(Channel::new(3).irq_cap(), 141);
    }
}
