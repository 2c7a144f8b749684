//! Decoding of ESR_EL2 (exception syndrome), for fault reports and fault messages.
//! Pure logic: host-tested.

use core::fmt;

/// Exception class values (ESR_ELx.EC) that the kernel distinguishes.
pub mod ec {
    pub const UNKNOWN: u32 = 0x00;
    pub const WFX: u32 = 0x01;
    pub const FP_ACCESS: u32 = 0x07;
    pub const ILLEGAL_STATE: u32 = 0x0e;
    pub const SVC64: u32 = 0x15;
    pub const HVC64: u32 = 0x16;
    pub const SMC64: u32 = 0x17;
    pub const SYSREG: u32 = 0x18;
    pub const IABT_LOWER: u32 = 0x20;
    pub const IABT_SAME: u32 = 0x21;
    pub const PC_ALIGN: u32 = 0x22;
    pub const DABT_LOWER: u32 = 0x24;
    pub const DABT_SAME: u32 = 0x25;
    pub const SP_ALIGN: u32 = 0x26;
    pub const FP_EXC64: u32 = 0x2c;
    pub const SERROR: u32 = 0x2f;
    pub const BRK64: u32 = 0x3c;
}

/// A syndrome register value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    pub const fn ec(self) -> u32 {
        ((self.0 >> 26) & 0x3f) as u32
    }
    pub const fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }
    pub const fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    pub fn class_name(self) -> &'static str {
        match self.ec() {
            ec::UNKNOWN => "unknown reason (undefined instruction)",
            ec::WFX => "WFI/WFE",
            ec::FP_ACCESS => "FP/SIMD access trapped",
            ec::ILLEGAL_STATE => "illegal execution state",
            ec::SVC64 => "SVC (AArch64)",
            ec::HVC64 => "HVC (AArch64)",
            ec::SMC64 => "SMC (AArch64)",
            ec::SYSREG => "system register access trapped",
            ec::IABT_LOWER => "instruction abort from a lower EL",
            ec::IABT_SAME => "instruction abort from the same EL",
            ec::PC_ALIGN => "PC alignment fault",
            ec::DABT_LOWER => "data abort from a lower EL",
            ec::DABT_SAME => "data abort from the same EL",
            ec::SP_ALIGN => "SP alignment fault",
            ec::FP_EXC64 => "floating-point exception",
            ec::SERROR => "SError interrupt",
            ec::BRK64 => "BRK instruction",
            _ => "unhandled exception class",
        }
    }

    pub const fn is_abort(self) -> bool {
        matches!(
            self.ec(),
            ec::IABT_LOWER | ec::IABT_SAME | ec::DABT_LOWER | ec::DABT_SAME
        )
    }

    /// Decoded abort syndrome; `None` when this is not an abort.
    pub fn abort(self) -> Option<Abort> {
        if !self.is_abort() {
            return None;
        }
        let iss = self.iss();
        let data = matches!(self.ec(), ec::DABT_LOWER | ec::DABT_SAME);
        let isv = data && iss & (1 << 24) != 0;
        Some(Abort {
            status: (iss & 0x3f) as u8,
            write: data && iss & (1 << 6) != 0,
            stage1_walk: iss & (1 << 7) != 0,
            access: isv.then_some(AccessInfo {
                size_log2: ((iss >> 22) & 0x3) as u8,
                sign_extend: iss & (1 << 21) != 0,
                register: ((iss >> 16) & 0x1f) as u8,
                sixty_four: iss & (1 << 15) != 0,
                acquire_release: iss & (1 << 14) != 0,
            }),
            instruction: !data,
        })
    }
}

/// What an abort says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// DFSC/IFSC: fault status code.
    pub status: u8,
    pub write: bool,
    /// The fault happened on a stage-2 walk made for a stage-1 walk (S1PTW).
    pub stage1_walk: bool,
    /// Valid instruction syndrome (ISV=1): what a VMM needs to emulate MMIO.
    pub access: Option<AccessInfo>,
    pub instruction: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessInfo {
    pub size_log2: u8,
    pub sign_extend: bool,
    pub register: u8,
    pub sixty_four: bool,
    pub acquire_release: bool,
}

impl Abort {
    pub fn status_name(&self) -> &'static str {
        fault_status_name(self.status)
    }
    /// Translation-table level the fault status names, when it names one.
    pub const fn level(&self) -> Option<u8> {
        match self.status {
            0x04..=0x0f => Some(self.status & 3),
            _ => None,
        }
    }
}

pub fn fault_status_name(status: u8) -> &'static str {
    match status {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict abort",
        _ => "other fault",
    }
}

impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EC {:#04x} ({}), IL {}, ISS {:#09x}",
            self.ec(),
            self.class_name(),
            self.il() as u8,
            self.iss()
        )?;
        if let Some(a) = self.abort() {
            write!(f, "; {}", a.status_name())?;
            if let Some(l) = a.level() {
                write!(f, " at level {l}")?;
            }
            if !a.instruction {
                f.write_str(if a.write { ", write" } else { ", read" })?;
            }
            if let Some(acc) = a.access {
                write!(f, ", {} bytes via x{}", 1u32 << acc.size_log2, acc.register)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_lower_el_write_translation_fault() {
        // EC=0x24, IL=1, ISV=1, SAS=3 (8 bytes), SRT=5, WnR=1, DFSC=0x07 (level 3).
        let esr =
            Esr((0x24 << 26) | (1 << 25) | (1 << 24) | (3 << 22) | (5 << 16) | (1 << 6) | 0x07);
        assert_eq!(esr.class_name(), "data abort from a lower EL");
        let a = esr.abort().unwrap();
        assert!(a.write && !a.instruction);
        assert_eq!(a.level(), Some(3));
        assert_eq!(a.access.unwrap().register, 5);
        assert_eq!(a.access.unwrap().size_log2, 3);
        let text = std::format!("{esr}");
        assert!(
            text.contains("translation fault at level 3, write, 8 bytes via x5"),
            "{text}"
        );
    }

    #[test]
    fn instruction_aborts_and_non_aborts() {
        let esr = Esr((0x20 << 26) | 0x0f);
        let a = esr.abort().unwrap();
        assert!(a.instruction && !a.write && a.access.is_none());
        assert_eq!(a.status_name(), "permission fault");
        assert_eq!(Esr(0x15 << 26).abort(), None);
        assert_eq!(Esr(0x15 << 26).class_name(), "SVC (AArch64)");
        assert_eq!(Esr(0x3f << 26).class_name(), "unhandled exception class");
    }
}
