//! The per-interrupt register banks shared by GICD (v2 and v3) and the GICv3
//! SGI_base frame: IGROUPR .. ICFGR at the same offsets in both. Bits for
//! unimplemented INTIDs, or INTIDs outside the caller's window, are RAZ/WI.

use super::{GicVersion, Irq, PRIORITY_MASK, Vgic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bank {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
    Priority,
    Targets,
    Config,
}

impl Bank {
    /// The bank holding `offset`, and the offset relative to its start.
    pub(super) fn decode(offset: u64) -> Option<(Bank, u64)> {
        let (bank, base) = match offset {
            0x080..0x100 => (Bank::Group, 0x080),
            0x100..0x180 => (Bank::SetEnable, 0x100),
            0x180..0x200 => (Bank::ClearEnable, 0x180),
            0x200..0x280 => (Bank::SetPending, 0x200),
            0x280..0x300 => (Bank::ClearPending, 0x280),
            0x300..0x380 => (Bank::SetActive, 0x300),
            0x380..0x400 => (Bank::ClearActive, 0x380),
            0x400..0x800 => (Bank::Priority, 0x400),
            0x800..0xC00 => (Bank::Targets, 0x800),
            0xC00..0xD00 => (Bank::Config, 0xC00),
            _ => return None,
        };
        Some((bank, offset - base))
    }

    /// Byte-per-interrupt banks also take byte accesses; the rest only words.
    pub(super) fn width_ok(self, rel: u64, size: u8) -> bool {
        let byte_ok = matches!(self, Bank::Priority | Bank::Targets);
        (size == 4 && rel.is_multiple_of(4)) || (byte_ok && size == 1)
    }
}

/// An access to a bank on behalf of `vcpu` (whose private interrupts are
/// used), restricted to INTIDs in `lo..hi`.
pub(super) struct BankAccess {
    pub vcpu: usize,
    pub lo: u32,
    pub hi: u32,
}

impl Vgic {
    fn bank_irq(&mut self, w: &BankAccess, intid: u32) -> Option<&mut Irq> {
        if intid < w.lo || intid >= w.hi {
            return None;
        }
        self.irq_mut(w.vcpu, intid)
    }

    fn is_v2_sgi(&self, intid: u32) -> bool {
        self.cfg.version == GicVersion::V2 && intid < 16
    }

    /// Caller has checked `Bank::width_ok`.
    pub(super) fn bank_read(&mut self, w: &BankAccess, bank: Bank, rel: u64, size: u8) -> u32 {
        match bank {
            Bank::Priority | Bank::Targets => {
                let mut v = 0u32;
                for i in 0..size as u32 {
                    let intid = rel as u32 + i;
                    let byte = match bank {
                        Bank::Priority => self.bank_irq(w, intid).map_or(0, |q| q.priority),
                        _ => self.target_byte(w, intid),
                    };
                    v |= u32::from(byte) << (8 * i);
                }
                v
            }
            Bank::Config => {
                let first = (rel as u32 / 4) * 16;
                let mut v = 0u32;
                for i in 0..16 {
                    if self.bank_irq(w, first + i).is_some_and(|q| q.edge) {
                        v |= 2 << (2 * i);
                    }
                }
                v
            }
            _ => {
                let first = (rel as u32 / 4) * 32;
                let mut v = 0u32;
                for i in 0..32 {
                    let Some(q) = self.bank_irq(w, first + i) else {
                        continue;
                    };
                    let bit = match bank {
                        Bank::Group => q.group1,
                        Bank::SetEnable | Bank::ClearEnable => q.enabled,
                        Bank::SetPending | Bank::ClearPending => q.pending(),
                        _ => q.active,
                    };
                    v |= u32::from(bit) << i;
                }
                v
            }
        }
    }

    fn target_byte(&mut self, w: &BankAccess, intid: u32) -> u8 {
        let uni = self.cfg.nr_vcpus == 1;
        match self.bank_irq(w, intid) {
            None => 0,
            _ if uni => 0,
            // SGI/PPI targets read as the accessing CPU's own bit.
            Some(_) if intid < 32 => 1 << w.vcpu,
            Some(q) => q.targets,
        }
    }

    /// Caller has checked `Bank::width_ok`.
    pub(super) fn bank_write(&mut self, w: &BankAccess, bank: Bank, rel: u64, size: u8, v: u32) {
        let cpus_mask = ((1u32 << self.cfg.nr_vcpus) - 1) as u8;
        match bank {
            Bank::Priority | Bank::Targets => {
                for i in 0..size as u32 {
                    let intid = rel as u32 + i;
                    let byte = (v >> (8 * i)) as u8;
                    let uni = self.cfg.nr_vcpus == 1;
                    let Some(q) = self.bank_irq(w, intid) else {
                        continue;
                    };
                    match bank {
                        Bank::Priority => q.priority = byte & PRIORITY_MASK,
                        // SGI/PPI targets are read-only; uniprocessor all RAZ/WI.
                        _ if intid >= 32 && !uni => q.targets = byte & cpus_mask,
                        _ => {}
                    }
                }
            }
            Bank::Config => {
                let first = (rel as u32 / 4) * 16;
                for i in 0..16 {
                    let intid = first + i;
                    // SGIs are always edge-triggered (ICFGR0 is read-only).
                    if intid < 16 {
                        continue;
                    }
                    if let Some(q) = self.bank_irq(w, intid) {
                        q.edge = (v >> (2 * i)) & 2 != 0;
                    }
                }
            }
            _ => {
                let first = (rel as u32 / 4) * 32;
                for i in 0..32 {
                    let intid = first + i;
                    let set = (v >> i) & 1 != 0;
                    // Group bits take 0 and 1; every other bank acts on 1s only.
                    if !set && bank != Bank::Group {
                        continue;
                    }
                    let v2_sgi = self.is_v2_sgi(intid);
                    let Some(q) = self.bank_irq(w, intid) else {
                        continue;
                    };
                    match bank {
                        Bank::Group => q.group1 = set,
                        Bank::SetEnable => q.enabled = true,
                        Bank::ClearEnable => q.enabled = false,
                        // GICv2 SGI pending is per source: only via
                        // SPENDSGIR/CPENDSGIR, these bits are WI.
                        Bank::SetPending if !v2_sgi => q.pending_latch = true,
                        Bank::ClearPending if !v2_sgi => q.pending_latch = false,
                        Bank::SetActive => q.active = true,
                        Bank::ClearActive => q.active = false,
                        _ => {}
                    }
                }
            }
        }
    }
}
