//! The validated system: what the image builder and the root task's boot plan consume.
//!
//! Field names and defaults follow Microkit's SDF; `Resilience` is axolotl's extension.

use serde::{Deserialize, Serialize};

use crate::Span;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemDescription {
    /// The file name the spans refer to (as given to `parse`).
    pub file: String,
    /// Top-level PDs; children are nested in `ProtectionDomain::children`.
    pub protection_domains: Vec<ProtectionDomain>,
    pub memory_regions: Vec<MemoryRegion>,
    pub channels: Vec<Channel>,
    /// Microkit 2.3's domain schedule (`domain_schedule`, or `domains`); `None`: every
    /// thread in domain 0, which then always runs.
    pub domains: Option<Domains>,
    pub span: Span,
}

/// The scheduling domains and the schedule the kernel walks (seL4's domain scheduler).
/// Domain 0 holds the monitor and the root task besides its PDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domains {
    pub domains: Vec<Domain>,
    /// In order, run cyclically from `start_index`.
    pub schedule: Vec<ScheduleEntry>,
    /// The entry the schedule starts at (Microkit's `start_index`, `domain_start`).
    pub start_index: u64,
    /// Where the schedule sits in the kernel's table (Microkit's `index_shift`,
    /// `domain_idx_shift`): only its room matters here, the schedule is axolotl's alone.
    pub index_shift: u64,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: String,
    /// The kernel's domain number, below `axolotl_abi::NUM_DOMAINS`.
    pub id: u64,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// A `Domain::name`.
    pub domain: String,
    /// Microseconds, at least 1.
    pub length_us: u64,
    pub span: Span,
}

impl Domains {
    pub fn id_of(&self, name: &str) -> Option<u64> {
        self.domains.iter().find(|d| d.name == name).map(|d| d.id)
    }

    /// The time one round of the schedule takes, in microseconds.
    pub fn period_us(&self) -> u64 {
        self.schedule.iter().map(|e| e.length_us).sum()
    }
}

impl SystemDescription {
    /// The kernel domain `pd` runs in: 0 without a schedule or a `domain`.
    pub fn domain_of(&self, pd: &ProtectionDomain) -> u8 {
        match (&self.domains, &pd.domain) {
            (Some(d), Some(name)) => d.id_of(name).unwrap_or(0) as u8,
            _ => 0,
        }
    }

    /// Every PD, parents before their children, in source order.
    pub fn all_pds(&self) -> Vec<&ProtectionDomain> {
        fn walk<'a>(pds: &'a [ProtectionDomain], out: &mut Vec<&'a ProtectionDomain>) {
            for pd in pds {
                out.push(pd);
                walk(&pd.children, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.protection_domains, &mut out);
        out
    }

    pub fn pd(&self, name: &str) -> Option<&ProtectionDomain> {
        self.all_pds().into_iter().find(|pd| pd.name == name)
    }

    pub fn memory_region(&self, name: &str) -> Option<&MemoryRegion> {
        self.memory_regions.iter().find(|mr| mr.name == name)
    }

    /// Every symbol patched in `pd`'s image and with what, in a fixed order: its maps'
    /// `setvar_*`, its `setvar`s, then the `setvar_id`s of its IRQs, children, vCPUs and
    /// channel ends (Microkit patches an id into the PD that uses it).
    pub fn patches<'a>(&'a self, pd: &'a ProtectionDomain) -> Vec<(&'a str, Patch<'a>, Span)> {
        let mut out = Vec::new();
        for m in &pd.maps {
            let mr = m.mr.as_str();
            let kinds = [
                (&m.setvar_vaddr, Patch::Vaddr(m.vaddr)),
                (&m.setvar_size, Patch::RegionSize(mr)),
                (&m.setvar_prefill_size, Patch::PrefillSize(mr)),
            ];
            for (sym, p) in kinds {
                if let Some(sym) = sym {
                    out.push((sym.as_str(), p, m.span));
                }
            }
        }
        for sv in &pd.setvars {
            let p = Patch::RegionPaddr(sv.region_paddr.as_str());
            out.push((sv.symbol.as_str(), p, sv.span));
        }
        for irq in &pd.irqs {
            if let Some(sym) = &irq.setvar_id {
                out.push((sym.as_str(), Patch::Id(irq.id), irq.span));
            }
        }
        for child in &pd.children {
            if let (Some(sym), Some(id)) = (&child.setvar_id, child.id) {
                out.push((sym.as_str(), Patch::Id(id), child.span));
            }
        }
        for vcpu in pd.virtual_machine.iter().flat_map(|vm| &vm.vcpus) {
            if let Some(sym) = &vcpu.setvar_id {
                out.push((sym.as_str(), Patch::Id(vcpu.id), vcpu.span));
            }
        }
        for end in self.channels.iter().flat_map(|c| &c.ends) {
            if let Some(sym) = end.setvar_id.as_ref().filter(|_| end.pd == pd.name) {
                out.push((sym.as_str(), Patch::Id(end.id), end.span));
            }
        }
        out
    }
}

/// What a symbol is patched with (`SystemDescription::patches`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patch<'a> {
    /// A map's `vaddr` (`setvar_vaddr`).
    Vaddr(u64),
    /// The physical address of the named region (`<setvar region_paddr>`).
    RegionPaddr(&'a str),
    /// The named region's size (`setvar_size`).
    RegionSize(&'a str),
    /// The length of the named region's prefill file (`setvar_prefill_size`).
    PrefillSize(&'a str),
    /// A channel, IRQ, child or vCPU id (`setvar_id`).
    Id(u8),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionDomain {
    pub name: String,
    /// 0–254; 255 is reserved for the root task.
    pub priority: u8,
    /// Scheduling budget in microseconds.
    pub budget: u64,
    /// Scheduling period in microseconds; `budget <= period`.
    pub period: u64,
    pub passive: bool,
    pub stack_size: u64,
    pub cpu: u32,
    pub smc: bool,
    pub fpu: bool,
    /// axolotl: the PD gets a capability to its own CNode (slot 8), to manage its CSpace.
    pub cnode_cap: bool,
    /// axolotl: what this PD may ask the monitor as the system's control PD (`control`,
    /// docs/control.md); nothing by default.
    pub control: ControlGrant,
    /// Identifier under which the parent sees this PD (children only).
    pub id: Option<u8>,
    /// Symbol of the parent's image patched with `id` (Microkit's `setvar_id`).
    pub setvar_id: Option<String>,
    /// The scheduling domain, a `Domains::domains` name (Microkit 2.3's `domain`).
    pub domain: Option<String>,
    pub program_image: ProgramImage,
    pub maps: Vec<Map>,
    pub irqs: Vec<Irq>,
    pub setvars: Vec<SetVar>,
    pub children: Vec<ProtectionDomain>,
    pub virtual_machine: Option<VirtualMachine>,
    pub resilience: Resilience,
    pub span: Span,
}

impl ProtectionDomain {
    /// Lowest address of the stack; maps must end at or below it.
    pub fn stack_bottom(&self) -> u64 {
        crate::PD_STACK_TOP.saturating_sub(self.stack_size)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramImage {
    pub path: String,
    pub path_for_symbols: Option<String>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Perms {
    pub const RW: Perms = Perms {
        read: true,
        write: true,
        execute: false,
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Map {
    /// Name of the memory region.
    pub mr: String,
    pub vaddr: u64,
    pub perms: Perms,
    pub cached: bool,
    /// Symbol patched with `vaddr` in the PD's image.
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region's size.
    pub setvar_size: Option<String>,
    /// Symbol patched with the length of the region's prefill file.
    pub setvar_prefill_size: Option<String>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    Level,
    Edge,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Irq {
    /// Interrupt number (GIC INTID).
    pub irq: u32,
    /// Channel id under which the PD is notified; shares the id space with channels.
    pub id: u8,
    pub trigger: Trigger,
    /// Symbol of the PD's image patched with `id`.
    pub setvar_id: Option<String>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetVar {
    pub symbol: String,
    /// Memory region whose physical address is patched into `symbol`.
    pub region_paddr: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualMachine {
    pub name: String,
    pub priority: u8,
    pub budget: u64,
    pub period: u64,
    pub vcpus: Vec<Vcpu>,
    /// Guest-physical mappings.
    pub maps: Vec<Map>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vcpu {
    pub id: u8,
    pub cpu: u32,
    /// Symbol of the VM's PD's image patched with `id`.
    pub setvar_id: Option<String>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRegion {
    pub name: String,
    pub size: u64,
    /// 0x1000 or 0x200000.
    pub page_size: u64,
    pub phys_addr: Option<u64>,
    /// Initial contents (Microkit's `prefill_path`); the rest of the region is zero.
    pub prefill: Option<Prefill>,
    pub span: Span,
}

/// A file whose bytes a region starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefill {
    /// As written in the SDF.
    pub path: String,
    /// Where it was found (relative paths: next to the SDF).
    pub file: String,
    /// Its length in bytes when checked; at most the region's size, at least 1.
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub ends: [End; 2],
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub pd: String,
    pub id: u8,
    /// This end may make protected procedure calls to the other end.
    pub pp: bool,
    /// This end may notify the other end.
    pub notify: bool,
    /// Symbol of this end's PD's image patched with `id`.
    pub setvar_id: Option<String>,
    pub span: Span,
}

/// When the monitor restarts a PD after it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// A stopped PD stays stopped (Microkit's behaviour).
    #[default]
    Never,
    /// Restart after a fault or a missed heartbeat.
    OnFailure,
    /// Restart after any stop, including a voluntary exit.
    Always,
}

impl RestartPolicy {
    pub const fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

/// What a control PD may ask the monitor (SDF `control="status manage vm inject"`, any
/// subset; docs/control.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlGrant {
    /// PD status and the recovery log.
    pub status: bool,
    /// Restart, hold and release PDs.
    pub manage: bool,
    /// Start, stop and reboot VMs.
    pub vm: bool,
    /// Inject faults into PDs (test and campaign systems).
    pub inject: bool,
}

impl ControlGrant {
    /// Whether it grants anything.
    pub fn any(self) -> bool {
        self.status || self.manage || self.vm || self.inject
    }
}

/// axolotl's self-healing parameters of one PD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resilience {
    pub restart: RestartPolicy,
    /// At most this many restarts within `restart_window_ms`; past it the PD stays down.
    pub restart_limit: u32,
    pub restart_window_ms: u64,
    /// Delay before the first restart; doubles per consecutive restart.
    pub restart_backoff_ms: u64,
    /// Cap of the doubling delay.
    pub restart_backoff_max_ms: u64,
    /// Watchdog period; `None` means no watchdog.
    pub heartbeat_ms: Option<u64>,
    /// PDs that must be up before this one starts, and whose restarts it is told about.
    pub depends_on: Vec<String>,
    /// Keep a restored second incarnation ready, so a restart need not copy the image
    /// (costs the PD's memory twice; only for restartable PDs).
    pub standby: bool,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            restart: RestartPolicy::Never,
            restart_limit: crate::defaults::RESTART_LIMIT,
            restart_window_ms: crate::defaults::RESTART_WINDOW_MS,
            restart_backoff_ms: crate::defaults::RESTART_BACKOFF_MS,
            restart_backoff_max_ms: crate::defaults::RESTART_BACKOFF_MAX_MS,
            heartbeat_ms: None,
            depends_on: Vec::new(),
            standby: true,
        }
    }
}

impl Resilience {
    /// Delay before restart number `n` (0-based) in a run of consecutive restarts.
    pub fn backoff_ms(&self, n: u32) -> u64 {
        let factor = 1u64.checked_shl(n).unwrap_or(u64::MAX);
        self.restart_backoff_ms
            .saturating_mul(factor)
            .min(self.restart_backoff_max_ms)
    }
}
