//! GICv2 distributor register map (ARM IHI 0048B, 4.1.2).
//!
//! Bad input: every register is word-accessible; IPRIORITYR, ITARGETSR,
//! CPENDSGIR and SPENDSGIR also byte-accessible. Other widths, misaligned
//! accesses and reserved offsets are RAZ/WI: the spec makes reserved space
//! RAZ/WI and leaves bad widths UNPREDICTABLE, and RAZ/WI is the harmless
//! choice (KVM makes the same one).

use super::bank::{Bank, BankAccess};
use super::{GicVersion, IIDR, Vgic};

pub const GICD_CTLR: u64 = 0x000;
pub const GICD_TYPER: u64 = 0x004;
pub const GICD_IIDR: u64 = 0x008;
pub const GICD_SGIR: u64 = 0xF00;
pub const GICD_CPENDSGIR: u64 = 0xF10;
pub const GICD_SPENDSGIR: u64 = 0xF20;
pub const GICD_ICPIDR2: u64 = 0xFE8;

/// ICPIDR2: ArchRev 2 in [7:4], JEDEC/JEP106 bits as GIC-400.
const ICPIDR2_V2: u32 = 0x2B;

impl Vgic {
    fn v2_typer(&self) -> u32 {
        let it_lines = (self.nr_irqs() / 32 - 1) & 0x1F;
        let cpus = (self.cfg.nr_vcpus as u32 - 1) & 7;
        it_lines | (cpus << 5)
    }

    fn all_irqs(&self, vcpu: usize) -> BankAccess {
        BankAccess {
            vcpu,
            lo: 0,
            hi: self.nr_irqs(),
        }
    }

    pub(super) fn v2_read(&mut self, vcpu: usize, off: u64, size: u8) -> u64 {
        debug_assert_eq!(self.cfg.version, GicVersion::V2);
        if vcpu >= self.cfg.nr_vcpus {
            return 0;
        }
        if let Some((bank, rel)) = Bank::decode(off) {
            if !bank.width_ok(rel, size) {
                return 0;
            }
            let w = self.all_irqs(vcpu);
            return self.bank_read(&w, bank, rel, size).into();
        }
        if (GICD_CPENDSGIR..GICD_SPENDSGIR + 16).contains(&off) && (size == 1 || size == 4) {
            if !off.is_multiple_of(size.into()) {
                return 0;
            }
            let first = (off & 0xF) as usize;
            let mut v = 0u64;
            for i in 0..size as usize {
                v |= u64::from(self.private[vcpu][first + i].sgi_sources) << (8 * i);
            }
            return v;
        }
        if size != 4 || !off.is_multiple_of(4) {
            return 0;
        }
        u64::from(match off {
            GICD_CTLR => self.ctlr,
            GICD_TYPER => self.v2_typer(),
            GICD_IIDR => IIDR,
            GICD_ICPIDR2 => ICPIDR2_V2,
            _ => 0,
        })
    }

    pub(super) fn v2_write(&mut self, vcpu: usize, off: u64, size: u8, value: u64) {
        if vcpu >= self.cfg.nr_vcpus {
            return;
        }
        let v = value as u32;
        if let Some((bank, rel)) = Bank::decode(off) {
            if bank.width_ok(rel, size) {
                let w = self.all_irqs(vcpu);
                self.bank_write(&w, bank, rel, size, v);
            }
            return;
        }
        if (GICD_CPENDSGIR..GICD_SPENDSGIR + 16).contains(&off) && (size == 1 || size == 4) {
            if off.is_multiple_of(size.into()) {
                self.v2_sgi_pend(vcpu, off, size, v);
            }
            return;
        }
        if size != 4 || !off.is_multiple_of(4) {
            return;
        }
        match off {
            GICD_CTLR => {
                self.ctlr = v & 3;
                self.dirty |= crate::persist::chunk::global();
            }
            GICD_SGIR => self.v2_sgir(vcpu, v),
            _ => {}
        }
    }

    /// CPENDSGIR/SPENDSGIR: one byte per SGI, bit n = source CPU n.
    fn v2_sgi_pend(&mut self, vcpu: usize, off: u64, size: u8, v: u32) {
        let set = off >= GICD_SPENDSGIR;
        let first = (off & 0xF) as usize;
        let cpus_mask = ((1u32 << self.cfg.nr_vcpus) - 1) as u8;
        for i in 0..size as usize {
            let bits = (v >> (8 * i)) as u8 & cpus_mask;
            self.mark_dirty(vcpu, (first + i) as u32);
            let irq = &mut self.private[vcpu][first + i];
            if set {
                irq.sgi_sources |= bits;
            } else {
                irq.sgi_sources &= !bits;
            }
            irq.pending_latch = irq.sgi_sources != 0;
        }
    }

    /// GICD_SGIR: TargetListFilter [25:24], CPUTargetList [23:16], SGIINTID [3:0].
    fn v2_sgir(&mut self, vcpu: usize, v: u32) {
        let all = ((1u32 << self.cfg.nr_vcpus) - 1) as u8;
        let targets = match (v >> 24) & 3 {
            0 => (v >> 16) as u8,
            1 => all & !(1 << vcpu),
            2 => 1 << vcpu,
            _ => return, // reserved filter: no SGI
        };
        self.send_sgi(vcpu, targets, v & 0xF);
    }
}
