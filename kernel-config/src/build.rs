/// Build-time kernel parameters that are not board facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildConfig {
    /// Timer tick period in microseconds.
    pub tick_us: u64,
    /// Round-robin timeslice, in ticks.
    pub timeslice_ticks: u32,
    /// Priority of the root task (the highest, as the seL4 initial thread).
    pub root_task_priority: u8,
    /// Whether the kernel prints its debug log (faults, thread exits) on the console.
    pub debug: bool,
    /// Size of the root task's CNode, log2 slots.
    pub root_cnode_bits: u8,
}

impl BuildConfig {
    pub const DEFAULT: BuildConfig = BuildConfig {
        tick_us: 2_000,
        timeslice_ticks: 5,
        root_task_priority: 255,
        debug: true,
        root_cnode_bits: 15,
    };
}
