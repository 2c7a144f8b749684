//! PSCI 1.0 over SMCCC 1.1 (Arm DEN 0022, DEN 0028) for guests, on either
//! conduit. vCPU `i` has MPIDR Aff0 = `i` and Aff1..3 = 0, matching the `reg`
//! of `/cpus/cpu@i` that `axolotl-fdt` writes.

use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::error::{ALREADY_ON, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, SUCCESS};
use smccc::psci::{
    PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

use crate::MAX_VCPUS;

/// PSCI 1.0: major in [31:16], minor in [15:0].
pub const PSCI_VERSION_1_0: u32 = 0x0001_0000;
/// SMCCC 1.1, so Linux uses SMCCC_ARCH_FEATURES instead of guessing.
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;
/// MIGRATE_INFO_TYPE: no Trusted OS, nothing to migrate.
pub const MIGRATE_TYPE_NONE: u32 = 2;
/// AFFINITY_INFO results.
pub const AFF_ON: u32 = 0;
pub const AFF_OFF: u32 = 1;

/// SMCCC function id bit 30: the SMC64/HVC64 calling convention.
const FID_SMC64: u32 = 1 << 30;

/// How the call arrived. Matters for the PC: a trapped SMC reports the SMC
/// itself as the return address, an HVC the instruction after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

impl Conduit {
    /// Bytes to add to ELR_EL2 once the call is handled.
    pub const fn pc_advance(self) -> u64 {
        match self {
            Conduit::Hvc => 0,
            Conduit::Smc => 4,
        }
    }
}

/// What the VMM must do besides writing x0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciAction {
    None,
    /// Start `vcpu` at `entry` in EL1h, DAIF masked, MMU off, x0 = `context_id`.
    PowerOn {
        vcpu: usize,
        entry: u64,
        context_id: u64,
    },
    /// Stop the calling vCPU; the call does not return.
    CpuOff {
        vcpu: usize,
    },
    /// CPU_SUSPEND, emulated as WFI (as KVM does): resume on the next interrupt.
    WaitForInterrupt,
    SystemOff,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsciReply {
    /// New x0, or `None` when the call does not return (CPU_OFF, SYSTEM_*).
    pub x0: Option<u64>,
    pub action: PsciAction,
}

impl PsciReply {
    fn ret(code: i32) -> Self {
        Self {
            x0: Some(code as i64 as u64),
            action: PsciAction::None,
        }
    }

    fn value(v: u32) -> Self {
        Self {
            x0: Some(v.into()),
            action: PsciAction::None,
        }
    }

    fn no_return(action: PsciAction) -> Self {
        Self { x0: None, action }
    }
}

/// Per-guest PSCI state: which vCPUs are on, where RAM is.
#[derive(Debug, Clone)]
pub struct Psci {
    on: [bool; MAX_VCPUS],
    nr_vcpus: usize,
    ram_base: u64,
    ram_size: u64,
    /// Power states may have changed since the last commit to the state region.
    pub(crate) dirty: bool,
}

impl Psci {
    /// vCPU 0 is on (the boot CPU), the rest off. `nr_vcpus` is clamped to
    /// 1..=MAX_VCPUS.
    pub fn new(nr_vcpus: usize, ram_base: u64, ram_size: u64) -> Self {
        let mut on = [false; MAX_VCPUS];
        on[0] = true;
        Self {
            on,
            nr_vcpus: nr_vcpus.clamp(1, MAX_VCPUS),
            ram_base,
            ram_size,
            dirty: false,
        }
    }

    /// Back to the boot state, after SYSTEM_RESET.
    pub fn reset(&mut self) {
        *self = Self::new(self.nr_vcpus, self.ram_base, self.ram_size);
        self.dirty = true;
    }

    pub fn is_on(&self, vcpu: usize) -> bool {
        vcpu < self.nr_vcpus && self.on[vcpu]
    }

    /// The VMM reports a vCPU stopped for its own reasons (e.g. it crashed and
    /// is being restarted), so a later CPU_ON can bring it back.
    pub fn set_off(&mut self, vcpu: usize) {
        if vcpu < self.nr_vcpus {
            self.on[vcpu] = false;
            self.dirty = true;
        }
    }

    /// Which vCPUs are on, bit n = vCPU n (for the state region).
    pub(crate) fn on_mask(&self) -> u8 {
        (0..self.nr_vcpus).fold(0, |m, i| m | (u8::from(self.on[i]) << i))
    }

    /// The state `on_mask` saved; `None` if it names a vCPU this guest does not have.
    pub(crate) fn with_on_mask(&self, mask: u8) -> Option<Self> {
        if u32::from(mask) >> self.nr_vcpus != 0 {
            return None;
        }
        let mut p = self.clone();
        for (i, on) in p.on.iter_mut().enumerate() {
            *on = mask & (1 << i) != 0;
        }
        Some(p)
    }

    /// vCPU index for an MPIDR affinity value, if it names one of ours.
    fn vcpu_of(&self, mpidr: u64) -> Option<usize> {
        // Ours live in Aff0 alone; any other bit names no vCPU of ours.
        if mpidr > 0xFF {
            return None;
        }
        let i = mpidr as usize;
        (i < self.nr_vcpus).then_some(i)
    }

    fn valid_entry(&self, entry: u64) -> bool {
        entry.is_multiple_of(4) && entry >= self.ram_base && entry - self.ram_base < self.ram_size
    }

    /// Handles one SMCCC call from `caller`; `x` is x0..x3 at the trap, `imm`
    /// the HVC/SMC immediate.
    pub fn handle(&mut self, caller: usize, imm: u16, x: [u64; 4]) -> PsciReply {
        // SMCCC reserves non-zero immediates; these are not calls to us.
        if imm != 0 {
            return PsciReply::ret(NOT_SUPPORTED);
        }
        let fid = x[0] as u32;
        let [a1, a2, a3] = if fid & FID_SMC64 != 0 {
            [x[1], x[2], x[3]]
        } else {
            // SMC32/HVC32: arguments are the W registers.
            [x[1] as u32 as u64, x[2] as u32 as u64, x[3] as u32 as u64]
        };
        match fid {
            PSCI_VERSION => PsciReply::value(PSCI_VERSION_1_0),
            SMCCC_VERSION => PsciReply::value(SMCCC_VERSION_1_1),
            // No workarounds or SoC id are offered.
            SMCCC_ARCH_FEATURES => PsciReply::ret(NOT_SUPPORTED),
            PSCI_FEATURES => PsciReply::ret(Self::features(a1 as u32)),
            PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => PsciReply {
                x0: Some(SUCCESS as u64),
                action: PsciAction::WaitForInterrupt,
            },
            PSCI_CPU_OFF => {
                self.set_off(caller);
                PsciReply::no_return(PsciAction::CpuOff { vcpu: caller })
            }
            PSCI_CPU_ON_32 | PSCI_CPU_ON_64 => self.cpu_on(a1, a2, a3),
            PSCI_AFFINITY_INFO_32 | PSCI_AFFINITY_INFO_64 => self.affinity_info(a1, a2),
            PSCI_MIGRATE_INFO_TYPE => PsciReply::value(MIGRATE_TYPE_NONE),
            PSCI_SYSTEM_OFF => PsciReply::no_return(PsciAction::SystemOff),
            PSCI_SYSTEM_RESET => PsciReply::no_return(PsciAction::Reset),
            _ => PsciReply::ret(NOT_SUPPORTED),
        }
    }

    /// PSCI_FEATURES: SUCCESS (0, and for CPU_SUSPEND flags 0: platform-
    /// coordinated, original StateID format) for what `handle` implements.
    fn features(fid: u32) -> i32 {
        match fid {
            PSCI_VERSION
            | PSCI_FEATURES
            | PSCI_CPU_SUSPEND_32
            | PSCI_CPU_SUSPEND_64
            | PSCI_CPU_OFF
            | PSCI_CPU_ON_32
            | PSCI_CPU_ON_64
            | PSCI_AFFINITY_INFO_32
            | PSCI_AFFINITY_INFO_64
            | PSCI_MIGRATE_INFO_TYPE
            | PSCI_SYSTEM_OFF
            | PSCI_SYSTEM_RESET
            | SMCCC_VERSION => SUCCESS,
            _ => NOT_SUPPORTED,
        }
    }

    fn cpu_on(&mut self, target: u64, entry: u64, context_id: u64) -> PsciReply {
        let Some(vcpu) = self.vcpu_of(target) else {
            return PsciReply::ret(INVALID_PARAMETERS);
        };
        if self.on[vcpu] {
            return PsciReply::ret(ALREADY_ON);
        }
        if !self.valid_entry(entry) {
            return PsciReply::ret(INVALID_ADDRESS);
        }
        // Marked on now: the VMM starts it before the caller runs again, so
        // ON_PENDING is never observable.
        self.on[vcpu] = true;
        self.dirty = true;
        PsciReply {
            x0: Some(SUCCESS as u64),
            action: PsciAction::PowerOn {
                vcpu,
                entry,
                context_id,
            },
        }
    }

    fn affinity_info(&self, target: u64, level: u64) -> PsciReply {
        // Fields below `level` are ignored; the rest must name some vCPU.
        let ignore: u64 = match level {
            0 => 0,
            1 => 0xFF,
            2 => 0xFFFF,
            3 => 0xFF_FFFF,
            _ => return PsciReply::ret(INVALID_PARAMETERS),
        };
        let mut any = false;
        let mut any_on = false;
        for i in 0..self.nr_vcpus {
            if self.vcpu_of(target & !ignore | (i as u64 & ignore)) == Some(i) {
                any = true;
                any_on |= self.on[i];
            }
        }
        match (any, any_on) {
            (false, _) => PsciReply::ret(INVALID_PARAMETERS),
            (true, true) => PsciReply::value(AFF_ON),
            (true, false) => PsciReply::value(AFF_OFF),
        }
    }
}

#[cfg(test)]
#[path = "psci_tests.rs"]
mod tests;
