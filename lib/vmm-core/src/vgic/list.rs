//! Which interrupts sit in a vCPU's list registers, and moving state between
//! the distributor model and the LRs.
//!
//! Protocol, per vCPU: on every exit the kernel hands back the LR values and
//! the VMM calls `sync_lrs`, which folds all of them into the distributor and
//! empties the listing; before resuming, `fill_lrs` picks what to list again
//! from scratch. While listed, the LR is the authority for the pending/active
//! state of that interrupt (the guest acks and EOIs without exiting).

use super::lr::{Lr, LrState};
use super::{GicVersion, MAX_LRS, Vgic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Listed {
    intid: u32,
    source: u8,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VcpuLrs {
    slots: [Option<Listed>; MAX_LRS],
    /// The values `fill_lrs` produced, used if the kernel hands back fewer.
    last: [u64; MAX_LRS],
}

/// Values for the hardware list registers of one vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LrFill {
    /// Write `values[..nr_lrs]` to GICH_LRn / ICH_LR<n>_EL2 (GICv2 values fit
    /// in 32 bits); unused entries are 0, i.e. Invalid.
    pub values: [u64; MAX_LRS],
    /// Number of non-invalid entries.
    pub used: usize,
    /// More interrupts wait than fit: set GICH_HCR.UIE / ICH_HCR_EL2.UIE so an
    /// underflow maintenance interrupt brings the vCPU back to refill.
    pub underflow: bool,
}

impl Vgic {
    /// Ranking for listing: active interrupts first (the guest must find them
    /// to EOI), then deliverable ones by priority; lower INTID breaks ties.
    fn list_rank(&self, vcpu: usize, intid: u32) -> Option<(bool, u8)> {
        let irq = self.irq_for(vcpu, intid)?;
        if irq.listed_on.is_some() {
            return None;
        }
        if irq.active {
            Some((false, irq.priority))
        } else if self.deliverable(irq) {
            Some((true, irq.priority))
        } else {
            None
        }
    }

    /// Chooses what `vcpu` gets in its list registers and encodes it.
    pub fn fill_lrs(&mut self, vcpu: usize) -> LrFill {
        self.touched();
        let mut fill = LrFill {
            values: [0; MAX_LRS],
            used: 0,
            underflow: false,
        };
        if vcpu >= self.cfg.nr_vcpus {
            return fill;
        }
        if self.lists[vcpu].slots.iter().any(Option::is_some) {
            // Filled twice without a sync: assume the LRs are as we left them.
            let last = self.lists[vcpu].last;
            self.sync_lrs(vcpu, &last);
        }
        loop {
            let mut best: Option<(u32, (bool, u8))> = None;
            for intid in 0..self.nr_irqs() {
                if let Some(rank) = self.list_rank(vcpu, intid)
                    && best.is_none_or(|(_, r)| rank < r)
                {
                    best = Some((intid, rank));
                }
            }
            let Some((intid, _)) = best else {
                break;
            };
            if fill.used == self.cfg.nr_lrs {
                fill.underflow = true;
                break;
            }
            let Some((lr, source)) = self.take_for_lr(vcpu, intid) else {
                break;
            };
            let value = match self.cfg.version {
                GicVersion::V2 => lr.encode_v2().into(),
                GicVersion::V3 => lr.encode_v3(),
            };
            let slot = fill.used;
            fill.values[slot] = value;
            self.lists[vcpu].slots[slot] = Some(Listed { intid, source });
            fill.used += 1;
        }
        self.lists[vcpu].last = fill.values;
        fill
    }

    /// Builds the LR for `intid` and moves the pending state it carries out of
    /// the distributor model.
    pub(super) fn take_for_lr(&mut self, vcpu: usize, intid: u32) -> Option<(Lr, u8)> {
        let v2 = self.cfg.version == GicVersion::V2;
        let deliverable = self
            .irq(vcpu, intid)
            .is_some_and(|q| self.deliverable_ignoring_active(q));
        let irq = self.irq_mut(vcpu, intid)?;
        let hw = irq.hw_intid.map(u32::from);
        // HW=1 forbids pending+active (the physical side tracks active), and a
        // GICv2 SGI instance is listed per source: list the active one alone.
        let pending = deliverable && !(irq.active && (hw.is_some() || (v2 && intid < 16)));
        let mut source = 0;
        if v2 && intid < 16 {
            if irq.active {
                source = irq.active_source;
            } else {
                source = irq.sgi_sources.trailing_zeros() as u8 & 7;
                irq.sgi_sources &= !(1 << source);
                irq.pending_latch = irq.sgi_sources != 0;
            }
        } else if pending && irq.edge {
            irq.pending_latch = false;
        }
        irq.listed_on = Some(vcpu as u8);
        let lr = Lr {
            vintid: intid,
            pintid: hw,
            priority: irq.priority,
            state: LrState::new(pending, irq.active),
            group1: irq.group1,
            // Level interrupts come back on EOI so the line is re-sampled.
            eoi: hw.is_none() && !irq.edge,
            source,
        };
        Some((lr, source))
    }

    fn deliverable_ignoring_active(&self, irq: &super::Irq) -> bool {
        irq.pending() && irq.enabled && self.group_enabled(irq)
    }

    /// Folds the guest's progress (acks, EOIs) from the LR values read back at
    /// exit into the distributor, and empties the listing of `vcpu`. Values
    /// missing from `lr_values` are taken as unchanged since `fill_lrs`.
    pub fn sync_lrs(&mut self, vcpu: usize, lr_values: &[u64]) {
        self.touched();
        if vcpu >= self.cfg.nr_vcpus {
            return;
        }
        let v2 = self.cfg.version == GicVersion::V2;
        for slot in 0..MAX_LRS {
            let Some(listed) = self.lists[vcpu].slots[slot].take() else {
                continue;
            };
            let raw = lr_values
                .get(slot)
                .copied()
                .unwrap_or(self.lists[vcpu].last[slot]);
            // Only the state is trusted from hardware; the identity is ours.
            let state = if v2 {
                Lr::decode_v2(raw as u32).state
            } else {
                Lr::decode_v3(raw).state
            };
            let Some(irq) = self.irq_mut(vcpu, listed.intid) else {
                continue;
            };
            irq.listed_on = None;
            irq.active = state.active();
            let v2_sgi = v2 && listed.intid < 16;
            if v2_sgi && state.active() {
                irq.active_source = listed.source;
            }
            if state.pending() {
                if v2_sgi {
                    irq.sgi_sources |= 1 << listed.source;
                }
                if irq.edge {
                    irq.pending_latch = true;
                }
            }
            if state == LrState::Invalid && !irq.edge {
                // Acked and EOIed: an ISPENDR latch is consumed; the line is
                // re-sampled. A HW line (the timer) re-asserts through
                // `set_level` when the physical interrupt fires again.
                irq.pending_latch = false;
                if irq.hw_intid.is_some() {
                    irq.line_level = false;
                }
            }
        }
    }

    /// A maintenance interrupt (EOI of a level interrupt, underflow): fold the
    /// LRs and compute the refill.
    pub fn on_maintenance(&mut self, vcpu: usize, lr_values: &[u64]) -> LrFill {
        self.sync_lrs(vcpu, lr_values);
        self.fill_lrs(vcpu)
    }

    /// INTIDs currently listed for `vcpu`, in LR order.
    pub fn listed(&self, vcpu: usize) -> impl Iterator<Item = u32> + '_ {
        self.lists
            .get(vcpu)
            .into_iter()
            .flat_map(|l| l.slots.iter().flatten().map(|s| s.intid))
    }
}
