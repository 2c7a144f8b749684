//! The seL4-style list-register interface (`VcpuInjectIrq`, VGICMaintenance): the VMM writes
//! one list register at a time, always pending with EOI maintenance, and is told which list
//! register the guest completed. It never reads list registers back, so while an interrupt is
//! listed the model only knows "in the guest's hands"; the completion ends that.
//!
//! This is the alternative to [`Vgic::fill_lrs`]/[`Vgic::sync_lrs`] for kernels that keep the
//! list registers to themselves; a VMM uses one protocol or the other, never both.

use super::Vgic;

/// One interrupt to write into a free list register with `VcpuInjectIrq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    pub intid: u32,
    /// 8-bit GIC priority (the implemented top bits).
    pub priority: u8,
    pub group1: bool,
}

impl Vgic {
    /// The most urgent interrupt `vcpu` should get now, marked listed (an edge, an SGI
    /// instance or an ISPENDR latch is consumed by it). `None` if nothing is deliverable.
    /// Call once per free list register.
    pub fn take_injection(&mut self, vcpu: usize) -> Option<Injection> {
        let (intid, _) = self.next_pending(vcpu)?;
        let (lr, _) = self.take_for_lr(vcpu, intid)?;
        Some(Injection {
            intid,
            priority: lr.priority,
            group1: lr.group1,
        })
    }

    /// The guest completed (EOI) `intid`, injected with [`Vgic::take_injection`], on `vcpu`.
    /// A level interrupt whose line is still high becomes deliverable again; an edge that
    /// arrived while it was listed is delivered once more.
    pub fn complete_injection(&mut self, vcpu: usize, intid: u32) {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        if irq.listed_on != Some(vcpu as u8) {
            return;
        }
        irq.listed_on = None;
        irq.active = false;
        if !irq.edge {
            // An ISPENDR latch of a level interrupt is consumed by its delivery.
            irq.pending_latch = false;
        }
    }
}
