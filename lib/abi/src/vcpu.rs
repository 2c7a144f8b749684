//! VCPU registers and the reply that resumes a guest.

/// EL1 system registers of a VCPU, by `VcpuReadReg`/`VcpuWriteReg` index. The kernel
/// switches all of them (and FP/SIMD) when the CPU changes guests.
pub mod reg {
    pub const SCTLR_EL1: u64 = 0;
    pub const TTBR0_EL1: u64 = 1;
    pub const TTBR1_EL1: u64 = 2;
    pub const TCR_EL1: u64 = 3;
    pub const MAIR_EL1: u64 = 4;
    pub const AMAIR_EL1: u64 = 5;
    pub const CONTEXTIDR_EL1: u64 = 6;
    pub const VBAR_EL1: u64 = 7;
    pub const ELR_EL1: u64 = 8;
    pub const SPSR_EL1: u64 = 9;
    pub const SP_EL1: u64 = 10;
    pub const ESR_EL1: u64 = 11;
    pub const FAR_EL1: u64 = 12;
    pub const AFSR0_EL1: u64 = 13;
    pub const AFSR1_EL1: u64 = 14;
    pub const PAR_EL1: u64 = 15;
    pub const CPACR_EL1: u64 = 16;
    pub const TPIDR_EL1: u64 = 17;
    pub const TPIDRRO_EL0: u64 = 18;
    /// The bound thread's `tpidr_el0` (TCB register word 34): the one copy lives in the
    /// thread, so this index needs a bound TCB.
    pub const TPIDR_EL0: u64 = 19;
    pub const CNTKCTL_EL1: u64 = 20;
    pub const CNTV_CTL_EL0: u64 = 21;
    pub const CNTV_CVAL_EL0: u64 = 22;
    pub const CNTVOFF_EL2: u64 = 23;
    /// What the guest reads as MPIDR_EL1: its CPU's affinity (the VMM gives each vCPU its
    /// own; PSCI CPU_ON and the GICv3 redistributors name vCPUs by it). Bit 31 reads as one;
    /// only Aff0..Aff3, U (bit 30) and MT (bit 24) are kept. A new VCPU has 0x8000_0000.
    pub const VMPIDR_EL2: u64 = 24;
    pub const COUNT: u64 = 25;
    /// Read only: the number of exits the kernel delivered for this VCPU (the one its thread
    /// is in, or last took; an exit re-sent to a restarted VMM keeps its number), with bit
    /// [`EXIT_PENDING`] set while the thread waits in that exit for its VMM.
    pub const EXIT: u64 = 30;
    pub const EXIT_PENDING: u64 = 1 << 63;
    /// List register `n` of the VCPU's virtual GIC interface is index `LR0 + n`, for `n`
    /// below the hardware's count (indices from `COUNT` up to `LR0` are refused): read as the
    /// GIC holds it (GICv2 GICH_LR<n>, GICv3 ICH_LR<n>_EL2 layout), written only with 0,
    /// which empties it. What a restarted VMM rebuilds its view of the listing from.
    pub const LR0: u64 = 32;
}

/// Word 0 of a reply (label 0) to a guest's VM fault or VCPU fault: what to do before the
/// guest resumes. A reply of length 0 resumes at the exit's ip (retrying the instruction).
pub mod resume {
    /// Skip the instruction that exited (4 bytes, or 2 for a 16-bit one: ESR.IL).
    pub const ADVANCE: u64 = 1 << 0;
    /// Write reply word 2 into `x<n>`, n = reply word 1 (31 = xzr: nothing).
    pub const WRITE_REG: u64 = 1 << 1;
    /// VM faults only: the access fails in the guest instead. Its EL1 takes a synchronous
    /// external abort at VBAR_EL1 as the hardware would deliver one (ESR_EL1, FAR_EL1 = the
    /// faulting virtual address, ELR_EL1 = ip, SPSR_EL1 = its PSTATE; now EL1h, DAIF masked).
    /// The other flags are then ignored.
    pub const INJECT_ABORT: u64 = 1 << 2;
    /// Then wait for an interrupt (the VMM's answer to a guest's WFI, or to a PSCI
    /// CPU_SUSPEND it emulates as one): the vCPU does not run again until one is due for it —
    /// a list register holds a pending interrupt (at the reply, or written later by
    /// `VcpuInjectIrq`), its virtual timer's condition is met (CNTV_CTL_EL0 enabled and not
    /// masked, CNTVCT ≥ CNTV_CVAL with its CNTVOFF_EL2, its VPPI acknowledged), or the VMM
    /// calls `VcpuAckVppi`. The wait ends early, never late: the guest sees its WFI complete,
    /// which the architecture allows at any time. Ignored with `INJECT_ABORT`.
    pub const WAIT: u64 = 1 << 3;
}

/// Length of a VCPU fault reply that uses every word: `[flags, n, value]`.
pub const RESUME_REPLY_LENGTH: u64 = 3;

#[cfg(test)]
mod tests {
    #[test]
    fn resume_flags_are_distinct_bits() {
        use super::resume::*;
        assert_eq!(ADVANCE | WRITE_REG | INJECT_ABORT | WAIT, 0b1111);
        assert_eq!(super::reg::COUNT, super::reg::VMPIDR_EL2 + 1);
    }
}
