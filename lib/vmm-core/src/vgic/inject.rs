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
    /// GICv2 SGIs: the sending vCPU this instance stands for (0 otherwise).
    pub source: u8,
}

impl Vgic {
    /// The most urgent interrupt `vcpu` should get now, marked listed (an edge, an SGI
    /// instance or an ISPENDR latch is consumed by it). `None` if nothing is deliverable.
    /// Call once per free list register.
    pub fn take_injection(&mut self, vcpu: usize) -> Option<Injection> {
        if self.known_idle(vcpu) {
            return None;
        }
        let Some((intid, _)) = self.next_pending(vcpu) else {
            self.note_idle(vcpu);
            return None;
        };
        self.touched();
        let (lr, source) = self.take_for_lr(vcpu, intid)?;
        Some(Injection {
            intid,
            priority: lr.priority,
            group1: lr.group1,
            source,
        })
    }

    /// The kernel did not take `inj` (from [`Vgic::take_injection`] for `vcpu`): it is pending
    /// again as it was, the SGI instance with its source, so nothing is lost.
    pub fn refuse_injection(&mut self, vcpu: usize, inj: &Injection) {
        self.touched();
        let v2 = self.cfg.version == super::GicVersion::V2;
        let Some(irq) = self.irq_mut(vcpu, inj.intid) else {
            return;
        };
        if irq.listed_on != Some(vcpu as u8) {
            return;
        }
        irq.listed_on = None;
        if v2 && inj.intid < 16 {
            irq.sgi_sources |= 1 << (inj.source & 7);
        }
        // A level interrupt whose line is high is pending anyway; an edge, an SGI or an
        // ISPENDR latch was consumed by the take and is restored here.
        if irq.edge || inj.intid < 16 || !irq.line_level {
            irq.pending_latch = true;
        }
    }

    /// The guest completed (EOI) `intid`, injected with [`Vgic::take_injection`], on `vcpu`.
    /// A level interrupt whose line is still high becomes deliverable again; an edge that
    /// arrived while it was listed is delivered once more.
    pub fn complete_injection(&mut self, vcpu: usize, intid: u32) {
        self.touched();
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
