use super::{CNode, DomainSet, IrqControl, IrqHandler, Notification, Tcb, invoke_unit};
use crate::encode;
use crate::invoke::InvocationError;

type R = Result<(), InvocationError>;

impl IrqControl {
    /// Creates the handler cap of `irq` (level- or edge-triggered) in slot `index`/`depth`
    /// of `root`.
    pub fn get(self, irq: u64, edge: bool, root: CNode, index: u64, depth: u64) -> R {
        invoke_unit(
            self.0,
            &encode::irq_control_get(irq, edge, root.0, index, depth),
        )
    }
}

impl IrqHandler {
    /// Re-enables the interrupt after it was delivered.
    pub fn ack(self) -> R {
        invoke_unit(self.0, &encode::irq_handler_ack())
    }
    pub fn clear(self) -> R {
        invoke_unit(self.0, &encode::irq_handler_clear())
    }
    /// The kernel timeout's handler only (`axolotl_abi::TIMEOUT_IRQ`): signal its
    /// notification when the physical count reaches `at` (at once if it has), or never.
    pub fn set_deadline(self, at: Option<u64>) -> R {
        invoke_unit(self.0, &encode::irq_handler_set_deadline(at.unwrap_or(0)))
    }
    /// Delivery signals `notification` (with its badge).
    pub fn set_notification(self, notification: Notification) -> R {
        invoke_unit(
            self.0,
            &encode::irq_handler_set_notification(notification.0),
        )
    }
}

impl DomainSet {
    /// Puts `tcb`'s thread into `domain` (below `axolotl_abi::NUM_DOMAINS`).
    pub fn set(self, domain: u8, tcb: Tcb) -> R {
        invoke_unit(self.0, &encode::domain_set_set(domain, tcb.0))
    }
    /// Replaces the domain schedule: `entries` are `axolotl_abi::domain_entry` words, run
    /// in turn, cyclically, the first from now; none: domain 0 alone.
    pub fn set_schedule(self, entries: &[u64]) -> R {
        invoke_unit(self.0, &encode::domain_set_schedule(entries))
    }
}
