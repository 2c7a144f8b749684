use super::{Tcb, cap_type, invoke_unit};
use crate::encode;
use crate::invoke::{InvocationError, invoke_word};

cap_type!(
    /// A virtual CPU: bound to a thread, it makes that thread a guest at EL1.
    Vcpu
);

type R = Result<(), InvocationError>;

impl Vcpu {
    /// Binds this VCPU to `tcb` (undoing either one's earlier binding).
    pub fn set_tcb(self, tcb: Tcb) -> R {
        invoke_unit(self.0, &encode::vcpu_set_tcb(tcb.0))
    }

    /// Makes `virq` pending in list register `lr` (8-bit priority, group 0 or 1).
    pub fn inject_irq(self, virq: u64, priority: u64, group: u64, lr: u64) -> R {
        invoke_unit(self.0, &encode::vcpu_inject_irq(virq, priority, group, lr))
    }

    /// Reads an EL1 register (`axolotl_abi::vcpu::reg`).
    pub fn read_reg(self, reg: u64) -> Result<u64, InvocationError> {
        invoke_word(self.0, &encode::vcpu_read_reg(reg))
    }

    pub fn write_reg(self, reg: u64, value: u64) -> R {
        invoke_unit(self.0, &encode::vcpu_write_reg(reg, value))
    }

    /// The VMM handled a VPPI event for `irq`: it may fire again.
    pub fn ack_vppi(self, irq: u64) -> R {
        invoke_unit(self.0, &encode::vcpu_ack_vppi(irq))
    }
}
