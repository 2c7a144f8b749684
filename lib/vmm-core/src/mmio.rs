//! Data-abort decoding (ESR_EL2 ISS) and the register arithmetic of an emulated
//! load/store. Field names follow the Arm ARM, "ISS encoding for an exception
//! from a Data Abort".

/// ESR_EL2.EC for a data abort taken from a lower exception level.
pub const EC_DABT_LOW: u8 = 0x24;

const ESR_EC_SHIFT: u32 = 26;
const ISS_ISV: u64 = 1 << 24;
const ISS_SAS_SHIFT: u32 = 22;
const ISS_SSE: u64 = 1 << 21;
const ISS_SRT_SHIFT: u32 = 16;
const ISS_SF: u64 = 1 << 15;
const ISS_AR: u64 = 1 << 14;
const ISS_EA: u64 = 1 << 9;
const ISS_CM: u64 = 1 << 8;
const ISS_S1PTW: u64 = 1 << 7;
const ISS_WNR: u64 = 1 << 6;

/// Register number 31 in SRT is XZR for loads and stores.
pub const XZR: u8 = 31;

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

/// IPA of a stage-2 fault: HPFAR_EL2.FIPA (bits [43:4] = IPA[51:12]) plus the
/// page offset from FAR_EL2.
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & 0x0000_0FFF_FFFF_FFF0) << 8) | (far & 0xFFF)
}

/// Decodes an ESR_EL2 value for a data abort at `ipa`.
pub fn decode(esr: u64, ipa: u64) -> Result<MmioAccess, DecodeError> {
    let ec = ((esr >> ESR_EC_SHIFT) & 0x3F) as u8;
    if ec != EC_DABT_LOW {
        return Err(DecodeError::NotDataAbort { ec });
    }
    if esr & ISS_EA != 0 {
        return Err(DecodeError::ExternalAbort);
    }
    if esr & ISS_S1PTW != 0 {
        return Err(DecodeError::StageOneWalk);
    }
    // CM is valid whatever ISV says, so it is checked first.
    if esr & ISS_CM != 0 {
        return Err(DecodeError::CacheMaintenance);
    }
    if esr & ISS_ISV == 0 {
        return Err(DecodeError::NoSyndrome { esr });
    }
    Ok(MmioAccess {
        ipa,
        size: 1 << ((esr >> ISS_SAS_SHIFT) & 3),
        write: esr & ISS_WNR != 0,
        reg: ((esr >> ISS_SRT_SHIFT) & 0x1F) as u8,
        sign_extend: esr & ISS_SSE != 0,
        sixty_four: esr & ISS_SF != 0,
        acquire_release: esr & ISS_AR != 0,
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
