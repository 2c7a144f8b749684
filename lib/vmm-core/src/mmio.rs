//! What a data abort means for MMIO emulation (the syndrome itself is decoded by
//! `axolotl_abi::syndrome`, shared with the kernel) and the register arithmetic of an
//! emulated load/store.

use axolotl_abi::syndrome::{Esr, ec};

/// ESR_EL2.EC for a data abort taken from a lower exception level.
pub const EC_DABT_LOW: u8 = ec::DABT_LOWER as u8;

pub use axolotl_abi::syndrome::{XZR, fault_ipa};

/// One decoded guest load or store that hit a non-RAM IPA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    pub ipa: u64,
    /// Bytes: 1, 2, 4 or 8 (SAS).
    pub size: u8,
    /// WnR.
    pub write: bool,
    /// SRT: the transfer register, 31 = XZR.
    pub reg: u8,
    /// SSE: a load sign-extends to the register width.
    pub sign_extend: bool,
    /// SF: the register is Xn (else Wn, whose upper half a load zeroes).
    pub sixty_four: bool,
    /// AR: acquire/release semantics. The exit is already synchronous and
    /// ordered, so emulation does nothing extra for it.
    pub acquire_release: bool,
}

/// Why a data abort cannot be emulated as an MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// ESR_EL2.EC is not a lower-EL data abort; the exit was misrouted.
    NotDataAbort { ec: u8 },
    /// ISV=0: no syndrome (load/store pair, writeback, SIMD, ...). Emulating
    /// would need the instruction, which we deliberately do not decode.
    NoSyndrome { esr: u64 },
    /// CM=1: DC/IC maintenance by VA on an MMIO address. Nothing to do.
    CacheMaintenance,
    /// S1PTW=1: the guest's stage-1 page tables live in MMIO space.
    StageOneWalk,
    /// EA=1: the abort was an external abort, not a stage-2 translation fault.
    ExternalAbort,
}

/// What the VMM does with an exit that did not become an MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeAction {
    /// Advance the PC past the instruction and resume.
    Skip,
    /// Report, then inject a synchronous external abort (no PC advance).
    ReportAndAbort,
}

impl DecodeError {
    /// The policy: only cache maintenance is harmless; everything else is a
    /// guest (or kernel) bug the guest must see as an abort, never a VMM crash.
    pub const fn action(&self) -> DecodeAction {
        match self {
            DecodeError::CacheMaintenance => DecodeAction::Skip,
            _ => DecodeAction::ReportAndAbort,
        }
    }
}

/// Decodes an ESR_EL2 value for a data abort at `ipa`.
pub fn decode(esr: u64, ipa: u64) -> Result<MmioAccess, DecodeError> {
    let syndrome = Esr(esr);
    let ec = syndrome.ec() as u8;
    let abort = match syndrome.abort() {
        Some(a) if ec == EC_DABT_LOW => a,
        _ => return Err(DecodeError::NotDataAbort { ec }),
    };
    if abort.external {
        return Err(DecodeError::ExternalAbort);
    }
    if abort.stage1_walk {
        return Err(DecodeError::StageOneWalk);
    }
    // CM is valid whatever ISV says, so it is checked first.
    if abort.cache_maintenance {
        return Err(DecodeError::CacheMaintenance);
    }
    let Some(acc) = abort.access else {
        return Err(DecodeError::NoSyndrome { esr });
    };
    Ok(MmioAccess {
        ipa,
        size: 1 << acc.size_log2,
        write: abort.write,
        reg: acc.register,
        sign_extend: acc.sign_extend,
        sixty_four: acc.sixty_four,
        acquire_release: acc.acquire_release,
    })
}

/// Mask covering `size` bytes (1, 2, 4 or 8).
pub const fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size as u32 * 8)) - 1
    }
}

impl MmioAccess {
    /// The value a store puts on the bus, from the source register's value.
    pub const fn store_value(&self, reg_value: u64) -> u64 {
        if self.reg == XZR {
            0
        } else {
            reg_value & size_mask(self.size)
        }
    }

    /// The register value after a load that read `raw` from the device: sign or
    /// zero extension from the access size, then truncation to Wn (a write to
    /// Wn zeroes bits [63:32]).
    pub const fn load_value(&self, raw: u64) -> u64 {
        let bits = self.size as u32 * 8;
        let mut v = raw & size_mask(self.size);
        if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            v = (((v << shift) as i64) >> shift) as u64;
        }
        if !self.sixty_four {
            v &= 0xFFFF_FFFF;
        }
        v
    }

    /// Whether the IPA is naturally aligned for the access size.
    pub const fn is_aligned(&self) -> bool {
        self.ipa.is_multiple_of(self.size as u64)
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;
