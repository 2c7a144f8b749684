//! GICv3 distributor and redistributor register maps (ARM IHI 0069, 12.8 and
//! 12.10/12.11), plus trapped ICC_SGI1R_EL1 writes.
//!
//! Bad input: 32-bit registers take aligned word accesses; IPRIORITYR also
//! bytes; the 64-bit GICD_IROUTER<n> and GICR_TYPER take doublewords or either
//! 32-bit half. Anything else, reserved offsets, and redistributor frames past
//! the last vCPU are RAZ/WI (reserved space is RAZ/WI by spec; bad widths are
//! UNPREDICTABLE and RAZ/WI is the harmless choice).

use super::bank::{Bank, BankAccess};
use super::{GICR_STRIDE, GicVersion, IIDR, SPI_BASE, Vgic};

pub const GICD_CTLR: u64 = 0x0000;
pub const GICD_TYPER: u64 = 0x0004;
pub const GICD_IIDR: u64 = 0x0008;
pub const GICD_IROUTER: u64 = 0x6000;
pub const GICD_PIDR2: u64 = 0xFFE8;

pub const GICR_CTLR: u64 = 0x0000;
pub const GICR_IIDR: u64 = 0x0004;
pub const GICR_TYPER: u64 = 0x0008;
pub const GICR_WAKER: u64 = 0x0014;
pub const GICR_PIDR2: u64 = 0xFFE8;
/// SGI_base frame, 64 KiB after RD_base.
pub const GICR_SGI_BASE: u64 = 0x1_0000;

/// GICD_CTLR with DS=1: EnableGrp0 [0], EnableGrp1 [1], ARE [4] RAO, DS [6] RAO.
const CTLR_ARE: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;
/// PIDR2.ArchRev = 3, and Linux checks exactly this field.
const PIDR2_V3: u32 = 0x3B;
/// GICR_WAKER bits.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_TYPER.Last.
const TYPER_LAST: u64 = 1 << 4;
/// IROUTER bits kept: Aff3 [39:32], Aff2..Aff0 [23:0]. IRM [31] is RAZ/WI
/// because GICD_TYPER.No1N=1.
pub(crate) const IROUTER_MASK: u64 = 0xFF_00FF_FFFF;

/// Reads the 32-bit half or whole of a 64-bit register; None for other widths.
fn read64(reg: u64, rel: u64, size: u8) -> Option<u64> {
    match (rel, size) {
        (0, 8) => Some(reg),
        (0, 4) => Some(reg & 0xFFFF_FFFF),
        (4, 4) => Some(reg >> 32),
        _ => None,
    }
}

fn write64(reg: &mut u64, rel: u64, size: u8, v: u64) {
    match (rel, size) {
        (0, 8) => *reg = v,
        (0, 4) => *reg = (*reg & !0xFFFF_FFFF) | (v & 0xFFFF_FFFF),
        (4, 4) => *reg = (*reg & 0xFFFF_FFFF) | (v << 32),
        _ => {}
    }
}

impl Vgic {
    fn v3_typer(&self) -> u32 {
        let it_lines = (self.nr_irqs() / 32 - 1) & 0x1F;
        let cpus = (self.cfg.nr_vcpus as u32 - 1) & 7;
        // IDbits [23:19] = 10 bits - 1; No1N [25].
        it_lines | (cpus << 5) | (9 << 19) | (1 << 25)
    }

    /// IROUTER<n> index and offset within the 8-byte register.
    fn irouter(&self, off: u64) -> Option<(u32, u64)> {
        let rel = off.checked_sub(GICD_IROUTER)?;
        let intid = u32::try_from(rel / 8).ok()?;
        (intid >= SPI_BASE && intid < self.nr_irqs()).then_some((intid, rel % 8))
    }

    fn spis_only(&self, vcpu: usize) -> BankAccess {
        // ARE=1: the distributor's SGI/PPI bits are RAZ/WI, the redistributor has them.
        BankAccess {
            vcpu,
            lo: SPI_BASE,
            hi: self.nr_irqs(),
        }
    }

    pub(super) fn v3_dist_read(&mut self, vcpu: usize, off: u64, size: u8) -> u64 {
        debug_assert_eq!(self.cfg.version, GicVersion::V3);
        if vcpu >= self.cfg.nr_vcpus {
            return 0;
        }
        if let Some((bank, rel)) = Bank::decode(off) {
            if bank == Bank::Targets || !bank.width_ok(rel, size) {
                return 0;
            }
            let w = self.spis_only(vcpu);
            return self.bank_read(&w, bank, rel, size).into();
        }
        if let Some((intid, rel)) = self.irouter(off) {
            let route = self.spis[(intid - SPI_BASE) as usize].route;
            return read64(route, rel, size).unwrap_or(0);
        }
        if size != 4 || !off.is_multiple_of(4) {
            return 0;
        }
        u64::from(match off {
            GICD_CTLR => self.ctlr | CTLR_ARE | CTLR_DS,
            GICD_TYPER => self.v3_typer(),
            GICD_IIDR => IIDR,
            GICD_PIDR2 => PIDR2_V3,
            _ => 0,
        })
    }

    pub(super) fn v3_dist_write(&mut self, vcpu: usize, off: u64, size: u8, value: u64) {
        if vcpu >= self.cfg.nr_vcpus {
            return;
        }
        if let Some((bank, rel)) = Bank::decode(off) {
            if bank != Bank::Targets && bank.width_ok(rel, size) {
                let w = self.spis_only(vcpu);
                self.bank_write(&w, bank, rel, size, value as u32);
            }
            return;
        }
        if let Some((intid, rel)) = self.irouter(off) {
            self.mark_dirty(vcpu, intid);
            let route = &mut self.spis[(intid - SPI_BASE) as usize].route;
            write64(route, rel, size, value);
            *route &= IROUTER_MASK;
            return;
        }
        if size == 4 && off == GICD_CTLR {
            self.ctlr = value as u32 & 3;
            self.dirty |= crate::persist::chunk::global();
        }
    }

    fn redist_typer(&self, rd: usize) -> u64 {
        let last = if rd + 1 == self.cfg.nr_vcpus {
            TYPER_LAST
        } else {
            0
        };
        // Affinity_Value [63:32] = Aff3.Aff2.Aff1.Aff0 = 0.0.0.rd;
        // Processor_Number [23:8] = rd.
        ((rd as u64) << 32) | ((rd as u64) << 8) | last
    }

    /// `off` is relative to the start of the redistributor region.
    pub(super) fn v3_redist_read(&mut self, off: u64, size: u8) -> u64 {
        let rd = (off / GICR_STRIDE) as usize;
        let off = off % GICR_STRIDE;
        if rd >= self.cfg.nr_vcpus {
            return 0;
        }
        if off >= GICR_SGI_BASE {
            let Some((bank, rel)) = Bank::decode(off - GICR_SGI_BASE) else {
                return 0;
            };
            if bank == Bank::Targets || !bank.width_ok(rel, size) {
                return 0;
            }
            let w = BankAccess {
                vcpu: rd,
                lo: 0,
                hi: SPI_BASE,
            };
            return self.bank_read(&w, bank, rel, size).into();
        }
        if (GICR_TYPER..GICR_TYPER + 8).contains(&off) {
            return read64(self.redist_typer(rd), off - GICR_TYPER, size).unwrap_or(0);
        }
        if size != 4 || !off.is_multiple_of(4) {
            return 0;
        }
        u64::from(match off {
            GICR_IIDR => IIDR,
            GICR_WAKER if self.sleep[rd] => WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP,
            GICR_PIDR2 => PIDR2_V3,
            // GICR_CTLR: no LPIs, writes are instantly visible (RWP=0).
            _ => 0,
        })
    }

    pub(super) fn v3_redist_write(&mut self, off: u64, size: u8, value: u64) {
        let rd = (off / GICR_STRIDE) as usize;
        let off = off % GICR_STRIDE;
        if rd >= self.cfg.nr_vcpus {
            return;
        }
        if off >= GICR_SGI_BASE {
            if let Some((bank, rel)) = Bank::decode(off - GICR_SGI_BASE)
                && bank != Bank::Targets
                && bank.width_ok(rel, size)
            {
                let w = BankAccess {
                    vcpu: rd,
                    lo: 0,
                    hi: SPI_BASE,
                };
                self.bank_write(&w, bank, rel, size, value as u32);
            }
            return;
        }
        if size == 4 && off == GICR_WAKER {
            // ChildrenAsleep follows ProcessorSleep at once: Linux polls it.
            self.sleep[rd] = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
            self.dirty |= crate::persist::chunk::global();
        }
    }

    /// A trapped ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1 / ICC_SGI0R_EL1: without
    /// security states the group distinction does not change delivery) write
    /// from `vcpu`: INTID [27:24], TargetList [15:0], Aff1 [23:16], Aff2
    /// [39:32], IRM [40], RS [47:44], Aff3 [55:48].
    pub fn write_sgi1r(&mut self, vcpu: usize, value: u64) {
        self.touched();
        if self.cfg.version != GicVersion::V3 || vcpu >= self.cfg.nr_vcpus {
            return;
        }
        let sgi = ((value >> 24) & 0xF) as u32;
        let all = ((1u32 << self.cfg.nr_vcpus) - 1) as u8;
        let targets = if value & (1 << 40) != 0 {
            all & !(1 << vcpu)
        } else {
            let aff321 = value & 0x00FF_00FF_00FF_0000;
            let rs = (value >> 44) & 0xF;
            // Our vCPUs are Aff0 0..7 with Aff1..3 = 0, all in range 0.
            if aff321 != 0 || rs != 0 {
                return;
            }
            (value & 0xFFFF) as u8 & all
        };
        self.send_sgi(vcpu, targets, sgi);
    }
}
