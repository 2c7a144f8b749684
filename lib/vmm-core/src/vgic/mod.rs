//! Virtual GIC: the distributor (GICv2, or GICv3 with one redistributor per
//! vCPU) emulated in the VMM, and the list-register bookkeeping that feeds the
//! hardware virtual CPU interface. The guest's CPU interface (GICV / ICC_*_EL1
//! via ICH_*) is real hardware; only the distributor side traps.
//!
//! Model: no security extensions (GICv3 with GICD_CTLR.DS=1), affinity routing
//! always on for GICv3 (ARE RAO/WI), no LPIs/ITS, 1-of-N routing not offered.

mod bank;
mod inject;
mod irq;
mod list;
pub mod lr;
pub mod v2;
pub mod v3;

pub use inject::Injection;
pub use irq::{Irq, PRIORITY_MASK};
pub use list::LrFill;
pub use lr::{Lr, LrState};

use crate::MAX_VCPUS;
use crate::bus::{Access, DeviceError, MmioDevice};

/// Most SPIs supported: 30 ITLines' worth, keeping all INTIDs below 1020.
pub const MAX_SPIS: usize = 960;
/// Most list registers modelled (ICH_VTR_EL2.ListRegs allows 16).
pub const MAX_LRS: usize = 16;
/// Virtual timer PPI (CNTV), HW-mapped to the same physical PPI.
pub const VTIMER_INTID: u32 = 27;
/// First SPI.
pub const SPI_BASE: u32 = 32;

/// GICD_IIDR / GICR_IIDR: Implementer 0x43B (Arm, the architecture owner, as
/// KVM also reports), ProductID 0x58 ('X') for this model.
pub const IIDR: u32 = 0x5800_043B;

/// MMIO regions of the device, as mapped on the bus.
pub const REGION_GICD: u8 = 0;
/// GICv3 redistributors: 128 KiB (RD_base + SGI_base) per vCPU, in order.
pub const REGION_GICR: u8 = 1;
pub const GICR_STRIDE: u64 = 0x2_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VgicConfig {
    pub version: GicVersion,
    pub nr_vcpus: usize,
    /// Multiple of 32, at most [`MAX_SPIS`].
    pub nr_spis: usize,
    /// Hardware list registers (GICH_VTR.ListRegs + 1 / ICH_VTR_EL2.ListRegs + 1).
    pub nr_lrs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    BadVcpuCount,
    BadSpiCount,
    BadLrCount,
}

/// Rejected interrupt injection or mapping requests from the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// Beyond the implemented INTIDs, or the wrong class for the call
    /// (e.g. a line level for an SGI).
    InvalidIntid(u32),
    InvalidVcpu(usize),
}

/// GICD_CTLR EnableGrp0 / EnableGrp1 (GICv2 "Enable" is EnableGrp0 for a
/// GIC without security extensions).
const CTLR_GRP0: u32 = 1 << 0;
const CTLR_GRP1: u32 = 1 << 1;

pub struct Vgic {
    pub(crate) cfg: VgicConfig,
    pub(crate) ctlr: u32,
    pub(crate) private: [[Irq; 32]; MAX_VCPUS],
    pub(crate) spis: [Irq; MAX_SPIS],
    /// GICR_WAKER.ProcessorSleep per redistributor.
    pub(crate) sleep: [bool; MAX_VCPUS],
    pub(crate) lists: [list::VcpuLrs; MAX_VCPUS],
    /// Bumped by every change that could alter what [`Vgic::next_pending`] finds.
    epoch: u64,
    /// Per vCPU, the epoch at which its last scan found nothing to deliver: until the
    /// next change, a VMM asking again after every exit (the common case: nothing pending)
    /// gets its answer without scanning the whole distributor.
    idle_at: [u64; MAX_VCPUS],
    /// For the state region (`persist`): what may have changed since the last commit.
    /// `persist::chunk::global()` for the distributor control and redistributor sleep,
    /// `DIRTY_IRQS` when some bit of `dirty_irqs` is set.
    pub(crate) dirty: u64,
    /// One bit per interrupt, set on every mutable access to it, so that a commit encodes
    /// only these: bit `32 v + intid` for vCPU `v`'s private ones, `256 + intid - 32` for SPIs.
    pub(crate) dirty_irqs: [u64; DIRTY_WORDS],
}

/// `Vgic::dirty`: some interrupt is marked in `dirty_irqs`.
pub(crate) const DIRTY_IRQS: u64 = 1 << 1;
pub(crate) const DIRTY_WORDS: usize = (32 * MAX_VCPUS + MAX_SPIS).div_ceil(64);

/// The `dirty_irqs` bit of `intid` as `vcpu` sees it.
#[inline]
pub(crate) const fn dirty_bit(vcpu: usize, intid: u32) -> usize {
    if intid < SPI_BASE {
        32 * vcpu + intid as usize
    } else {
        32 * MAX_VCPUS + (intid - SPI_BASE) as usize
    }
}

impl Vgic {
    pub fn new(cfg: VgicConfig) -> Result<Self, ConfigError> {
        if cfg.nr_vcpus == 0 || cfg.nr_vcpus > MAX_VCPUS {
            return Err(ConfigError::BadVcpuCount);
        }
        if !cfg.nr_spis.is_multiple_of(32) || cfg.nr_spis > MAX_SPIS {
            return Err(ConfigError::BadSpiCount);
        }
        if cfg.nr_lrs == 0 || cfg.nr_lrs > MAX_LRS {
            return Err(ConfigError::BadLrCount);
        }
        let mut g = Self {
            cfg,
            ctlr: 0,
            private: [[Irq::default(); 32]; MAX_VCPUS],
            spis: [Irq::default(); MAX_SPIS],
            sleep: [true; MAX_VCPUS],
            lists: [list::VcpuLrs::default(); MAX_VCPUS],
            epoch: 0,
            idle_at: [u64::MAX; MAX_VCPUS],
            dirty: 0,
            dirty_irqs: [0; DIRTY_WORDS],
        };
        // GICv3 Linux puts everything in Group 1; reset there so a guest that
        // skips IGROUPR still works. GICv2 resets to Group 0 (spec).
        let grp1 = cfg.version == GicVersion::V3;
        for bank in g.private.iter_mut().take(cfg.nr_vcpus) {
            for (i, irq) in bank.iter_mut().enumerate() {
                irq.edge = i < 16;
                irq.group1 = grp1;
            }
        }
        for irq in g.spis.iter_mut().take(cfg.nr_spis) {
            irq.group1 = grp1;
        }
        Ok(g)
    }

    pub fn config(&self) -> &VgicConfig {
        &self.cfg
    }

    /// Something changed: earlier "nothing pending" answers no longer hold.
    pub(crate) fn touched(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// The state-region chunk holding `intid` (as seen by `vcpu`) must be encoded again.
    #[inline]
    pub(crate) fn mark_dirty(&mut self, vcpu: usize, intid: u32) {
        let b = dirty_bit(vcpu, intid);
        if let Some(w) = self.dirty_irqs.get_mut(b / 64) {
            *w |= 1 << (b % 64);
            self.dirty |= DIRTY_IRQS;
        }
    }

    /// Whether `vcpu`'s last scan found nothing and nothing changed since.
    pub(crate) fn known_idle(&self, vcpu: usize) -> bool {
        self.idle_at.get(vcpu) == Some(&self.epoch)
    }

    /// `vcpu`'s scan found nothing at this epoch.
    pub(crate) fn note_idle(&mut self, vcpu: usize) {
        if let Some(i) = self.idle_at.get_mut(vcpu) {
            *i = self.epoch;
        }
    }

    /// One past the highest implemented INTID.
    pub fn nr_irqs(&self) -> u32 {
        SPI_BASE + self.cfg.nr_spis as u32
    }

    /// The state of `intid` as seen by `vcpu` (private interrupts are banked).
    pub fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        if vcpu >= self.cfg.nr_vcpus {
            return None;
        }
        match intid {
            0..32 => Some(&self.private[vcpu][intid as usize]),
            _ if intid < self.nr_irqs() => Some(&self.spis[(intid - SPI_BASE) as usize]),
            _ => None,
        }
    }

    pub(crate) fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        if vcpu >= self.cfg.nr_vcpus {
            return None;
        }
        self.mark_dirty(vcpu, intid);
        match intid {
            0..32 => Some(&mut self.private[vcpu][intid as usize]),
            _ if intid < self.nr_irqs() => Some(&mut self.spis[(intid - SPI_BASE) as usize]),
            _ => None,
        }
    }

    fn check(&self, vcpu: usize, intid: u32) -> Result<(), IrqError> {
        if vcpu >= self.cfg.nr_vcpus {
            return Err(IrqError::InvalidVcpu(vcpu));
        }
        if intid < 16 || intid >= self.nr_irqs() {
            return Err(IrqError::InvalidIntid(intid));
        }
        Ok(())
    }

    /// Drives the input line of PPI `intid` of `vcpu`, or of an SPI (`vcpu`
    /// is then only checked, not used).
    pub fn set_level(&mut self, vcpu: usize, intid: u32, level: bool) -> Result<(), IrqError> {
        self.check(vcpu, intid)?;
        // Called after every UART access, mostly with an unchanged line: that is no change
        // (an edge latches pending only on a rise), neither for the pending-scan cache nor
        // for the state region, and is answered before anything is marked.
        if self.irq(vcpu, intid).is_none_or(|q| q.line_level == level) {
            return Ok(());
        }
        self.touched();
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            if irq.edge && level {
                irq.pending_latch = true;
            }
            irq.line_level = level;
        }
        Ok(())
    }

    /// A single edge on a PPI or SPI, whatever its configuration says
    /// (for a level interrupt this latches pending like an ISPENDR write).
    pub fn pulse(&mut self, vcpu: usize, intid: u32) -> Result<(), IrqError> {
        self.check(vcpu, intid)?;
        self.touched();
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.pending_latch = true;
        }
        Ok(())
    }

    /// Maps virtual `intid` to physical `pintid` (LR HW=1): the guest's
    /// deactivation then deactivates the physical interrupt directly.
    pub fn map_hw(&mut self, vcpu: usize, intid: u32, pintid: u32) -> Result<(), IrqError> {
        self.check(vcpu, intid)?;
        if !(16..1020).contains(&pintid) {
            return Err(IrqError::InvalidIntid(pintid));
        }
        self.touched();
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.hw_intid = Some(pintid as u16);
        }
        Ok(())
    }

    /// Maps the virtual timer PPI 27 of every vCPU to physical PPI 27.
    pub fn map_vtimer(&mut self) {
        for v in 0..self.cfg.nr_vcpus {
            let _ = self.map_hw(v, VTIMER_INTID, VTIMER_INTID);
        }
    }

    /// SGI `sgi` from `source` to each vCPU in `targets` (bit n = vCPU n);
    /// bits for absent vCPUs are ignored, as the GIC does.
    pub fn send_sgi(&mut self, source: usize, targets: u8, sgi: u32) {
        if sgi >= 16 || source >= self.cfg.nr_vcpus {
            return;
        }
        self.touched();
        for t in 0..self.cfg.nr_vcpus {
            if targets & (1 << t) == 0 {
                continue;
            }
            let v2 = self.cfg.version == GicVersion::V2;
            self.mark_dirty(t, sgi);
            let irq = &mut self.private[t][sgi as usize];
            if v2 {
                irq.sgi_sources |= 1 << source;
            }
            irq.pending_latch = true;
        }
    }

    pub(crate) fn group_enabled(&self, irq: &Irq) -> bool {
        let bit = if irq.group1 { CTLR_GRP1 } else { CTLR_GRP0 };
        self.ctlr & bit != 0
    }

    /// Whether SPI `irq` is delivered to `vcpu`.
    pub(crate) fn spi_targets(&self, irq: &Irq, vcpu: usize) -> bool {
        match self.cfg.version {
            // Uniprocessor GICv2: ITARGETSR is RAZ/WI and everything goes to CPU 0.
            GicVersion::V2 if self.cfg.nr_vcpus == 1 => vcpu == 0,
            GicVersion::V2 => irq.targets & (1 << vcpu) != 0,
            // Our MPIDRs are Aff0 = index, all else 0.
            GicVersion::V3 => irq.route == vcpu as u64,
        }
    }

    /// Interrupt `intid` if it concerns `vcpu`: private, or an SPI routed to it.
    pub(crate) fn irq_for(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        let irq = self.irq(vcpu, intid)?;
        if intid < SPI_BASE || self.spi_targets(irq, vcpu) {
            Some(irq)
        } else {
            None
        }
    }

    /// Could be signalled now: pending, enabled, group enabled, not active.
    pub(crate) fn deliverable(&self, irq: &Irq) -> bool {
        irq.pending() && irq.enabled && !irq.active && self.group_enabled(irq)
    }

    /// Highest-priority (lowest value; ties to the lowest INTID) interrupt the
    /// distributor would forward to `vcpu`, excluding what is already in its
    /// list registers. The CPU interface's PMR/running priority are applied by
    /// the hardware virtual interface, not here.
    pub fn next_pending(&self, vcpu: usize) -> Option<(u32, u8)> {
        let bank = self
            .private
            .get(vcpu)
            .filter(|_| vcpu < self.cfg.nr_vcpus)?;
        let spis = self.spis[..self.cfg.nr_spis].iter();
        let mut best: Option<(u32, u8)> = None;
        // In INTID order, so that ties go to the lowest; `pending` first, as it rejects
        // nearly every interrupt and costs least.
        for (intid, irq) in (0u32..).zip(bank.iter().chain(spis)) {
            if !irq.pending()
                || irq.listed_on.is_some()
                || !self.deliverable(irq)
                || (intid >= SPI_BASE && !self.spi_targets(irq, vcpu))
            {
                continue;
            }
            if best.is_none_or(|(_, p)| irq.priority < p) {
                best = Some((intid, irq.priority));
            }
        }
        best
    }
}

impl MmioDevice for Vgic {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError> {
        self.touched();
        Ok(match (self.cfg.version, a.region) {
            (GicVersion::V2, REGION_GICD) => self.v2_read(a.vcpu, a.offset, a.size),
            (GicVersion::V3, REGION_GICD) => self.v3_dist_read(a.vcpu, a.offset, a.size),
            (GicVersion::V3, REGION_GICR) => self.v3_redist_read(a.offset, a.size),
            _ => 0,
        })
    }

    fn write(&mut self, a: Access, value: u64) -> Result<(), DeviceError> {
        self.touched();
        match (self.cfg.version, a.region) {
            (GicVersion::V2, REGION_GICD) => self.v2_write(a.vcpu, a.offset, a.size, value),
            (GicVersion::V3, REGION_GICD) => self.v3_dist_write(a.vcpu, a.offset, a.size, value),
            (GicVersion::V3, REGION_GICR) => self.v3_redist_write(a.offset, a.size, value),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
