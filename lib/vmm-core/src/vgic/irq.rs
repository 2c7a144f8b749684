//! State of one interrupt as the distributor (or redistributor) sees it.

/// Priorities keep the top 5 bits, like GIC-400 and Cortex-A72's virtual
/// interface (ICH_VTR_EL2.PRIbits = 4): the lower 3 bits are RAZ/WI, and a
/// GICv2 LR could not carry them anyway.
pub const PRIORITY_MASK: u8 = 0xF8;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Irq {
    pub enabled: bool,
    /// Software pending state: edges, ISPENDR writes, SGIs.
    pub pending_latch: bool,
    /// Input line level, for level-sensitive interrupts.
    pub line_level: bool,
    pub active: bool,
    /// ICFGR Int_config[1]: edge-triggered.
    pub edge: bool,
    /// IGROUPR: Group 1.
    pub group1: bool,
    pub priority: u8,
    /// GICv2 ITARGETSR CPU mask (SPIs).
    pub targets: u8,
    /// GICv3 IROUTER (SPIs), with only implemented bits kept.
    pub route: u64,
    /// Physical INTID when hardware-mapped (LR HW=1), e.g. the virtual timer.
    pub hw_intid: Option<u16>,
    /// GICv2 SGIs: pending per source CPU (bit n = from vCPU n).
    pub sgi_sources: u8,
    /// GICv2 SGIs: source of the active instance, for re-listing with CPUID.
    pub active_source: u8,
    /// vCPU whose list registers hold this interrupt between fill and sync:
    /// it is listed once, and an SPI never on two vCPUs (GICv2 1-of-N).
    pub listed_on: Option<u8>,
}

impl Irq {
    /// Pending as the GIC defines it: level-sensitive interrupts are pending
    /// while the line is high or the software latch is set.
    pub const fn pending(&self) -> bool {
        self.pending_latch || (!self.edge && self.line_level)
    }
}
