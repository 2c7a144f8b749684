//! The AArch64 exception syndrome (ESR_ELx), the stage-2 fault address, PSTATE and SCTLR
//! values: the one decoding the kernel (its fault reports, guest exits, injected aborts) and
//! user level (the VMM's MMIO and trap emulation, the monitor's fault causes) share. Field
//! names follow the Arm ARM ("ESR_EL2", "ISS encoding for an exception from a Data Abort").
//! Pure logic: host-tested.

use core::fmt;

/// Exception class values (ESR_ELx.EC).
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

const EC_SHIFT: u32 = 26;
/// IL: a 32-bit instruction (else a 16-bit one).
pub const IL: u64 = 1 << 25;
/// Abort ISS bits.
const ISS_ISV: u32 = 1 << 24;
const ISS_SAS_SHIFT: u32 = 22;
const ISS_SSE: u32 = 1 << 21;
const ISS_SRT_SHIFT: u32 = 16;
const ISS_SF: u32 = 1 << 15;
const ISS_AR: u32 = 1 << 14;
const ISS_EA: u32 = 1 << 9;
const ISS_CM: u32 = 1 << 8;
const ISS_S1PTW: u32 = 1 << 7;
/// WnR: a data abort on a write.
pub const ISS_WNR: u64 = 1 << 6;
/// Fault status code of a synchronous external abort (DFSC/IFSC).
pub const FSC_SYNC_EXTERNAL: u64 = 0x10;

/// Register number 31 in SRT / Rt is XZR for loads, stores and system register moves.
pub const XZR: u8 = 31;

/// A syndrome register value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    #[inline]
    pub const fn ec(self) -> u32 {
        ((self.0 >> EC_SHIFT) & 0x3f) as u32
    }
    #[inline]
    pub const fn il(self) -> bool {
        self.0 & IL != 0
    }
    #[inline]
    pub const fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }
    /// Bytes of the instruction that took the exception (IL): what skipping it advances by.
    #[inline]
    pub const fn instruction_len(self) -> u64 {
        if self.il() { 4 } else { 2 }
    }
    /// The WnR bit, as it stands (meaningful for data aborts only).
    #[inline]
    pub const fn wnr(self) -> bool {
        self.0 & ISS_WNR != 0
    }
    /// The 16-bit immediate of an HVC, SMC, SVC or BRK.
    #[inline]
    pub const fn imm16(self) -> u16 {
        self.0 as u16
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

    #[inline]
    pub const fn is_abort(self) -> bool {
        matches!(
            self.ec(),
            ec::IABT_LOWER | ec::IABT_SAME | ec::DABT_LOWER | ec::DABT_SAME
        )
    }

    /// Decoded abort syndrome; `None` when this is not an abort.
    #[inline]
    pub fn abort(self) -> Option<Abort> {
        if !self.is_abort() {
            return None;
        }
        let iss = self.iss();
        let data = matches!(self.ec(), ec::DABT_LOWER | ec::DABT_SAME);
        let isv = data && iss & ISS_ISV != 0;
        Some(Abort {
            status: (iss & 0x3f) as u8,
            write: data && self.wnr(),
            stage1_walk: iss & ISS_S1PTW != 0,
            external: iss & ISS_EA != 0,
            cache_maintenance: data && iss & ISS_CM != 0,
            access: isv.then_some(AccessInfo {
                size_log2: ((iss >> ISS_SAS_SHIFT) & 0x3) as u8,
                sign_extend: iss & ISS_SSE != 0,
                register: ((iss >> ISS_SRT_SHIFT) & 0x1f) as u8,
                sixty_four: iss & ISS_SF != 0,
                acquire_release: iss & ISS_AR != 0,
            }),
            instruction: !data,
        })
    }

    /// A trapped MSR/MRS (EC 0x18); `None` for any other class.
    #[inline]
    pub fn sysreg(self) -> Option<SysregAccess> {
        if self.ec() != ec::SYSREG {
            return None;
        }
        let iss = self.iss();
        Some(SysregAccess {
            read: iss & 1 != 0,
            rt: ((iss >> 5) & 0x1f) as u8,
            crm: ((iss >> 1) & 0xf) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            op1: ((iss >> 14) & 0x7) as u8,
            op2: ((iss >> 17) & 0x7) as u8,
            op0: ((iss >> 20) & 0x3) as u8,
        })
    }

    /// The syndrome of a synchronous external abort of class `class` (a data or instruction
    /// abort), 32-bit instruction, with WnR as given: what an abort injected into a guest's
    /// EL1 reports.
    #[inline]
    pub const fn sync_external_abort(class: u32, write: bool) -> Esr {
        Esr(((class as u64) << EC_SHIFT) | IL | if write { ISS_WNR } else { 0 } | FSC_SYNC_EXTERNAL)
    }
}

/// What an abort says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// DFSC/IFSC: fault status code.
    pub status: u8,
    pub write: bool,
    /// S1PTW: the fault happened on a stage-2 walk made for a stage-1 walk.
    pub stage1_walk: bool,
    /// EA: an external abort.
    pub external: bool,
    /// CM: a cache maintenance instruction (data aborts).
    pub cache_maintenance: bool,
    /// Valid instruction syndrome (ISV=1): what a VMM needs to emulate MMIO.
    pub access: Option<AccessInfo>,
    pub instruction: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessInfo {
    /// SAS: log2 of the access size in bytes.
    pub size_log2: u8,
    /// SSE: a load sign-extends to the register width.
    pub sign_extend: bool,
    /// SRT: the transfer register, 31 = XZR.
    pub register: u8,
    /// SF: the register is Xn (else Wn).
    pub sixty_four: bool,
    /// AR: acquire/release semantics.
    pub acquire_release: bool,
}

/// A trapped system register access (ISS of EC 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysregAccess {
    /// Direction: MRS (read into `rt`), else MSR.
    pub read: bool,
    /// The general-purpose register, 31 = XZR.
    pub rt: u8,
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
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

/// IPA of a stage-2 fault: HPFAR_EL2.FIPA (bits [43:4] = IPA[51:12]) plus the page offset
/// from FAR_EL2. The mask drops HPFAR's other bits (NS, RES0).
#[inline]
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & 0x0000_0FFF_FFFF_FFF0) << 8) | (far & 0xFFF)
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

/// PSTATE as SPSR_ELx holds it (AArch64).
pub mod pstate {
    /// M[4:0]: the mode (M[4] set = AArch32).
    pub const MODE_MASK: u64 = 0x1f;
    pub const EL0T: u64 = 0b0000;
    pub const EL1T: u64 = 0b0100;
    pub const EL1H: u64 = 0b0101;
    /// M[4]: the exception came from AArch32.
    pub const AARCH32: u64 = 1 << 4;
    /// M[0]: SP_ELx in use (the "h" modes).
    pub const SP_ELX: u64 = 1 << 0;
    /// N, Z, C, V.
    pub const NZCV: u64 = 0xf000_0000;
    /// D, A, I, F: every exception masked.
    pub const DAIF: u64 = 0x3c0;
    /// EL1h with every exception masked: how a CPU enters EL1 (reset, an exception, PSCI
    /// CPU_ON, Linux's boot protocol).
    pub const EL1H_DAIF_MASKED: u64 = DAIF | EL1H;

    /// The exception level M[3:2] names.
    #[inline]
    pub const fn el(spsr: u64) -> u64 {
        (spsr >> 2) & 3
    }

    /// The stack pointer in use is SP_EL1 (EL1h), else SP_EL0.
    #[inline]
    pub const fn uses_sp_el1(spsr: u64) -> bool {
        spsr & MODE_MASK == EL1H
    }

    /// The PSTATE a thread's handler (or a TCB WriteRegisters) may give it; never an EL2
    /// mode, which the kernel's `eret` would enter. A native thread keeps only the condition
    /// flags: EL0t, interrupts unmasked. A guest (a thread bound to a VCPU) keeps its flags
    /// and interrupt masks and an AArch64 mode EL0t, EL1t or EL1h; any other mode becomes
    /// EL1h.
    #[inline]
    pub const fn sanitise_spsr(spsr: u64, guest: bool) -> u64 {
        if !guest {
            return spsr & NZCV;
        }
        let mode = match spsr & MODE_MASK {
            m @ (EL0T | EL1T | EL1H) => m,
            _ => EL1H,
        };
        (spsr & (NZCV | DAIF)) | mode
    }
}

/// SCTLR_EL1 values.
pub mod sctlr {
    /// As after reset: RES1 bits set, MMU and caches off. A new VCPU's, and native threads'.
    pub const EL1_RESET: u64 = 0x30d0_0800;
}

#[cfg(test)]
mod tests {
    extern crate std;
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

    #[test]
    fn abort_flags_and_sysreg_fields() {
        let a = Esr((0x24 << 26) | (1 << 9) | (1 << 8) | (1 << 7))
            .abort()
            .unwrap();
        assert!(a.external && a.cache_maintenance && a.stage1_walk);
        // CM means nothing for an instruction abort.
        assert!(
            !Esr((0x20 << 26) | (1 << 8))
                .abort()
                .unwrap()
                .cache_maintenance
        );
        // MSR ICC_SGI1R_EL1, x5: op0 3, op1 0, CRn 12, CRm 11, op2 5, write.
        let iss = (3 << 20) | (5 << 17) | (12 << 10) | (5 << 5) | (11 << 1);
        let s = Esr((0x18 << 26) | iss).sysreg().unwrap();
        assert_eq!(
            s,
            SysregAccess {
                read: false,
                rt: 5,
                op0: 3,
                op1: 0,
                crn: 12,
                crm: 11,
                op2: 5
            }
        );
        assert_eq!(Esr(0x24 << 26).sysreg(), None);
        assert_eq!(Esr((0x16 << 26) | 0x1_0077).imm16(), 0x77);
        assert_eq!(Esr(0).instruction_len(), 2);
        assert_eq!(Esr(IL).instruction_len(), 4);
    }

    #[test]
    fn injected_abort_syndrome() {
        assert_eq!(
            Esr::sync_external_abort(ec::DABT_SAME, true).0,
            (0x25 << 26) | (1 << 25) | (1 << 6) | 0x10
        );
        assert_eq!(
            Esr::sync_external_abort(ec::IABT_LOWER, false).0,
            (0x20 << 26) | (1 << 25) | 0x10
        );
    }

    #[test]
    fn fault_ipa_combines_hpfar_and_far() {
        assert_eq!(fault_ipa(0x0009_0000, 0xFFFF_0000_1234_5018), 0x0900_0018);
        assert_eq!(fault_ipa(u64::MAX, u64::MAX), 0x000F_FFFF_FFFF_FFFF);
    }

    #[test]
    fn spsr_sanitising() {
        use pstate::*;
        assert_eq!(EL1H_DAIF_MASKED, 0x3c5);
        // Native: condition flags only.
        assert_eq!(sanitise_spsr(0xf000_03c9, false), 0xf000_0000);
        // Guest: flags, masks and an EL0t/EL1t/EL1h mode; EL2 and AArch32 modes become EL1h.
        assert_eq!(sanitise_spsr(0x3c9, true), 0x3c5);
        assert_eq!(sanitise_spsr(0x3c4, true), 0x3c4);
        assert_eq!(sanitise_spsr(0x8000_0000, true), 0x8000_0000);
        assert_eq!(sanitise_spsr(0x13, true), EL1H);
        assert_eq!(sanitise_spsr(u64::MAX, true), NZCV | DAIF | EL1H);
        assert!(uses_sp_el1(0x3c5) && !uses_sp_el1(0x3c4));
        assert_eq!(el(0x3c5), 1);
    }
}
