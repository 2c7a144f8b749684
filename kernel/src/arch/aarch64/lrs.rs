//! How many list registers of the virtual GIC interface the kernel uses (host-tested).

/// List registers the kernel saves and restores per VCPU: GICv3 has at most 16
/// (ICH_LR0_EL2..ICH_LR15_EL2), and the per-VCPU arrays hold that many.
pub const MAX_LRS: usize = 16;

/// The list registers to use, from the interface's type register: GICv3 ICH_VTR_EL2.ListRegs
/// (bits 4:0) or GICv2 GICH_VTR.ListRegs (bits 5:0), each the number implemented minus one.
/// The fields can encode up to 32 and 64; whatever a (possibly faulty or emulated) interface
/// reports, the kernel never indexes past its arrays or the 16 ICH_LR registers it names.
pub const fn list_regs(vtr: u64, gic_v3: bool) -> usize {
    let field = if gic_v3 { vtr & 0x1f } else { vtr & 0x3f };
    let n = field as usize + 1;
    if n < MAX_LRS { n } else { MAX_LRS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_to_the_arrays() {
        // QEMU's GICv3 and GICv2 interfaces report 4.
        assert_eq!(list_regs(0x9000_0003, true), 4);
        assert_eq!(list_regs(0x9000_0003, false), 4);
        assert_eq!(list_regs(15, true), 16);
        // Encodable, not architecturally possible on GICv3 (and beyond the arrays).
        assert_eq!(list_regs(0x1f, true), MAX_LRS);
        assert_eq!(list_regs(0x3f, false), MAX_LRS);
        // Other fields of the register do not leak in.
        assert_eq!(list_regs(!0x1f, true), 1);
    }
}
