//! The plan: flat tables of fixed capacity, each PD pointing into them with [`Span`]s.
//!
//! Fixed capacities (`heapless`) let the root task decode without an allocator; one flat table
//! per kind (instead of a `Vec` per PD) keeps the decoded plan small, since capacity is paid
//! once per kind rather than once per PD.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Capacity limits. The builder rejects a system that exceeds one, and `limits::check` reports
/// the SDF element that does.
/// Microkit's 63 PDs (`axolotl_sdf::MAX_PDS`) and the monitor the builder adds.
pub const MAX_PDS: usize = 64;
pub const MAX_IMAGES: usize = MAX_PDS;
pub const MAX_SEGMENTS: usize = 256;
pub const MAX_REGIONS: usize = 128;
/// All PD and VM mappings together.
pub const MAX_MAPPINGS: usize = 512;
/// All CSpace entries together.
pub const MAX_CAPS: usize = 1536;
pub const MAX_IRQS: usize = 128;
pub const MAX_SETVARS: usize = 256;
pub const MAX_CHANNELS: usize = 256;
/// All `depends_on` entries together.
pub const MAX_DEPENDS: usize = 256;
pub const MAX_VMS: usize = 16;
pub const MAX_VCPUS: usize = 64;
/// PD, region and VM names (bytes).
pub const MAX_NAME: usize = 64;
pub const MAX_PATH: usize = 128;
/// Pages of PD images, stacks and IPC buffers (standbys included) the root task keeps to
/// restore them from (its page table, a static).
pub const MAX_PD_PAGES: usize = 16384;

pub type Name = String<MAX_NAME>;

/// The symbol a PD image names to be told its PD's name, as Microkit patches `microkit_name`
/// (a `char[64]`): panic and debug lines then say which PD, not which program image (one
/// image may serve several PDs).
pub const NAME_SYMBOL: &str = "microkit_name";

/// The monitor's timer channel: the root task, which owns the EL1 physical timer (it watches
/// the monitor's heartbeat with it), signals the monitor's channel 0 when the time the
/// monitor asked for (`axolotl_root_service::Request::SetTimer`) has come. The monitor has no
/// other channels.
pub const MONITOR_TIMER_ID: u8 = 0;

/// How often the root task pings the monitor; no answer for two periods and the monitor is
/// restarted with cause `hang`. Long against any monitor step (a restart takes well under a
/// millisecond), short enough that PDs waiting on a wedged monitor wait about a second.
pub const MONITOR_HEARTBEAT_MS: u64 = 500;

/// `table[start..start + len]` of one of the plan's tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: u16,
    pub len: u16,
}

impl Span {
    pub fn of<T>(self, table: &[T]) -> &[T] {
        let start = self.start as usize;
        table.get(start..start + self.len as usize).unwrap_or(&[])
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootPlan {
    pub pds: Vec<Pd, MAX_PDS>,
    pub images: Vec<Image, MAX_IMAGES>,
    pub segments: Vec<Segment, MAX_SEGMENTS>,
    pub regions: Vec<Region, MAX_REGIONS>,
    pub mappings: Vec<Mapping, MAX_MAPPINGS>,
    pub caps: Vec<CapSlot, MAX_CAPS>,
    pub irqs: Vec<Irq, MAX_IRQS>,
    pub setvars: Vec<Setvar, MAX_SETVARS>,
    pub channels: Vec<Channel, MAX_CHANNELS>,
    /// PD indices named by `Resilience::depends_on`.
    pub depends: Vec<u8, MAX_DEPENDS>,
    pub vms: Vec<Vm, MAX_VMS>,
    pub vcpus: Vec<Vcpu, MAX_VCPUS>,
    /// What building every PD takes from untyped memory.
    pub totals: Totals,
    /// Index of the monitor PD (`build_with_monitor`): the fault handler of parentless PDs.
    /// Without one the root task handles their faults itself.
    pub monitor: Option<u8>,
    /// The domain schedule the root task gives the kernel (`DomainSetSchedule`) once every
    /// PD is built, as `axolotl_abi::domain_entry` words, rotated so the SDF's start index
    /// comes first; empty: no schedule, every thread in domain 0.
    pub domain_schedule: Vec<u64, { axolotl_abi::MAX_DOMAIN_SCHEDULE }>,
}

/// A protection domain, in `SystemDescription::all_pds` order (parents before children).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pd {
    pub name: Name,
    /// Index of the parent PD, for a child.
    pub parent: Option<u8>,
    /// The id under which the parent knows this PD (children only).
    pub child_id: Option<u8>,
    pub priority: u8,
    /// Scheduling domain of the PD's thread and its vCPUs (0 without a schedule).
    pub domain: u8,
    pub budget_us: u64,
    pub period_us: u64,
    pub passive: bool,
    pub cpu: u32,
    pub fpu: bool,
    pub smc: bool,
    /// The stack is `[stack_top - stack_size, stack_top)`, `stack_top = axolotl_abi::bootinfo::STACK_TOP`.
    pub stack_size: u64,
    /// Index into `BootPlan::images`.
    pub image: u8,
    pub entry: u64,
    /// Virtual address of the PD's IPC buffer frame.
    pub ipc_buffer: u64,
    pub mappings: Span,
    /// CSpace entries, by increasing slot.
    pub caps: Span,
    pub irqs: Span,
    pub setvars: Span,
    /// Where the PD's image wants its own name (Microkit's `microkit_name`, [`NAME_SYMBOL`]):
    /// `(vaddr, bytes ≤ MAX_NAME)`; the loader writes `name` there, zero-padded and cut to
    /// `bytes`, at every (re)load.
    pub name_at: Option<(u64, u16)>,
    pub vm: Option<u8>,
    pub resilience: Resilience,
    pub totals: Totals,
    /// What the PD may ask the monitor as a control PD (`CONTROL_*` bits; 0: nothing).
    pub control: u8,
}

/// `Pd::control`: status and the recovery log.
pub const CONTROL_STATUS: u8 = 1;
/// `Pd::control`: restart, hold and release PDs.
pub const CONTROL_MANAGE: u8 = 2;
/// `Pd::control`: start, stop and reboot VMs.
pub const CONTROL_VM: u8 = 4;
/// `Pd::control`: inject faults.
pub const CONTROL_INJECT: u8 = 8;

/// A program image; the root task finds its bytes by `name` among the packed images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String<MAX_PATH>,
    pub entry: u64,
    pub segments: Span,
}

/// A loadable ELF segment: `filesz` bytes from `offset` in the file, zero-filled to `memsz`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    pub offset: u64,
    pub perms: Perms,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Perms {
    /// Whether the pages of a segment with these permissions are one set of frames for every
    /// incarnation of its PD (the running one, its standby, and the same after a restart in
    /// place), loaded once and never refilled: the PD's mapping has no write right, so
    /// nothing the PD does can change them, and they are not code, which stays per
    /// incarnation (a restart rewrites code that changed below the PD, and fault injection
    /// flips code bits, which must not outlive the incarnation). A guest kernel and
    /// initramfs a VMM embeds (`.rodata`) are such pages: 34 MiB that would otherwise be
    /// copied per incarnation and per refill (issue #16, docs/monitor.md).
    pub fn shared_by_incarnations(self) -> bool {
        !self.write && !self.execute
    }

    /// Whether the image page `[page, page + size)` of a segment with these permissions is
    /// shared by the PD's incarnations: as [`Perms::shared_by_incarnations`], unless it holds
    /// the IPC buffer (`ipc_page`), whose frame is each incarnation's own (the kernel writes
    /// it). The root task loads by it, and `limits` counts by it.
    pub fn shares_page(self, page: u64, size: u64, ipc_page: u64) -> bool {
        self.shared_by_incarnations() && !(page..page.saturating_add(size)).contains(&ipc_page)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub name: Name,
    pub size: u64,
    /// 0x1000 or 0x20_0000.
    pub page_size: u64,
    /// Fixed physical address (device memory or RAM, where the root task carves it out);
    /// otherwise the root task allocates it.
    pub phys_addr: Option<u64>,
    /// Length of the bytes the region starts with (the pack's `pack::prefill_name` entry),
    /// 0 for none; the rest is zero.
    pub prefill: u64,
}

impl Region {
    pub fn pages(&self) -> u64 {
        self.size.div_ceil(self.page_size)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Index into `BootPlan::regions`.
    pub region: u16,
    pub vaddr: u64,
    pub perms: Perms,
    pub cached: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSlot {
    pub slot: u16,
    pub cap: Cap,
}

/// What goes into a slot; objects are named by the index of the PD (or VM) that owns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cap {
    /// The PD's own input endpoint (unbadged: it receives on it).
    InputEndpoint,
    /// Empty slot kept for the reply capability.
    Reply,
    /// Fault endpoint: the monitor's (`parent: None`) or the parent PD's input endpoint.
    FaultEndpoint {
        parent: Option<u8>,
        badge: u64,
    },
    /// The notification object bound to PD `pd`'s TCB.
    Notification {
        pd: u8,
        badge: u64,
    },
    /// PD `pd`'s input endpoint, for protected calls.
    PpcEndpoint {
        pd: u8,
        badge: u64,
    },
    /// Handler of interrupt `irq` (index into `BootPlan::irqs`).
    IrqHandler {
        irq: u16,
    },
    /// TCB of child PD `pd`.
    ChildTcb {
        pd: u8,
    },
    /// TCB of vCPU `vcpu` (index into `BootPlan::vcpus`).
    VmTcb {
        vcpu: u8,
    },
    Vcpu {
        vcpu: u8,
    },
    /// The root task's service endpoint (the monitor's only: restart requests).
    RootService,
    /// The PD's own CNode (SDF `cnode_cap="true"`), addressed with depth `CNODE_SIZE_BITS`.
    OwnCNode,
    /// The PD's own VSpace (every PD, `cspace::VSPACE_CAP`): for cache maintenance on its
    /// own mappings (VSpaceCleanData, VSpaceUnifyInstruction); it has no frame or table caps
    /// to map anything with.
    OwnVSpace,
}

impl Cap {
    /// The rights the PD gets with this cap: what using it needs, and never Grant. Microkit
    /// mints its PDs' fault and channel endpoints with Grant (and Read); here a PD could
    /// then push a capability into the monitor's or a peer's CSpace with a message, where it
    /// would outlive the restarts that rebuild that CSpace, and receive, on an endpoint it
    /// only calls, the calls and faults meant for the endpoint's owner. Calls get their
    /// reply through GrantReply (a reply that carries no caps either).
    pub fn rights(self) -> axolotl_abi::Rights {
        use axolotl_abi::Rights;
        match self {
            // Received on, never sent to: the PD's own input endpoint.
            Cap::InputEndpoint => Rights::READ,
            // Called or sent to only.
            Cap::FaultEndpoint { .. } | Cap::PpcEndpoint { .. } | Cap::RootService => {
                Rights::WRITE.union(Rights::GRANT_REPLY)
            }
            // Signalled only: waiting on a peer's notification would take its signals.
            Cap::Notification { .. } => Rights::WRITE,
            // Rights do not limit invocations of these objects.
            Cap::Reply
            | Cap::IrqHandler { .. }
            | Cap::ChildTcb { .. }
            | Cap::VmTcb { .. }
            | Cap::Vcpu { .. }
            | Cap::OwnCNode
            | Cap::OwnVSpace => Rights::ALL,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    Level,
    Edge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Irq {
    pub irq: u32,
    pub trigger: Trigger,
    /// Channel id at the PD: the handler signals its notification with bit `id`.
    pub id: u8,
}

/// Write the 8-byte little-endian `value` at `vaddr` in the loaded image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setvar {
    pub vaddr: u64,
    pub value: SetvarValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetvarValue {
    /// Known on the host (e.g. a map's vaddr); the builder already patched the ELF too.
    Value(u64),
    /// Physical address of region `u16`, known once the root task has allocated it.
    RegionPaddr(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub ends: [ChannelEnd; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEnd {
    pub pd: u8,
    pub id: u8,
    pub pp: bool,
    pub notify: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Never,
    OnFailure,
    Always,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resilience {
    pub restart: RestartPolicy,
    pub restart_limit: u32,
    pub restart_window_ms: u64,
    pub restart_backoff_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub heartbeat_ms: Option<u64>,
    /// Indices into `BootPlan::depends`, which hold PD indices.
    pub depends_on: Span,
    /// Whether the root task keeps a standby incarnation (`restart_standby`).
    pub standby: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    pub name: Name,
    pub priority: u8,
    pub budget_us: u64,
    pub period_us: u64,
    /// Guest-physical mappings.
    pub mappings: Span,
    pub vcpus: Span,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vcpu {
    pub id: u8,
    pub cpu: u32,
}

/// Kernel objects to retype, so the root task can check its untyped memory before starting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// 4 KiB frames: image pages, stack, IPC buffer and small-page regions (mapped or not).
    pub small_frames: u64,
    pub large_frames: u64,
    /// Translation tables below the roots.
    pub page_tables: u64,
    /// VSpace roots (PDs and VMs).
    pub vspaces: u64,
    pub tcbs: u64,
    pub endpoints: u64,
    pub notifications: u64,
    pub vcpus: u64,
    /// CNodes, each of `cspace::CNODE_SIZE_BITS` slots.
    pub cnodes: u64,
}

impl Totals {
    /// Bytes of untyped memory, each object at its size (`ObjectType::size_bits`), excluding
    /// regions with a fixed physical address (device memory the kernel hands out separately).
    /// Saturates: a region near 2^64 bytes must not overflow the sum (the limits refuse it).
    pub fn bytes(&self) -> u64 {
        use axolotl_abi::ObjectType as T;
        let size = |t: T, user: u64| 1u64 << t.size_bits(user).unwrap_or(0);
        [
            (self.small_frames, size(T::SmallFrame, 0)),
            (self.large_frames, size(T::LargeFrame, 0)),
            (self.page_tables, size(T::PageTable, 0)),
            (self.vspaces, size(T::VSpace, 0)),
            (self.tcbs, size(T::Tcb, 0)),
            (self.endpoints, size(T::Endpoint, 0)),
            (self.notifications, size(T::Notification, 0)),
            (self.vcpus, size(T::Vcpu, 0)),
            (
                self.cnodes,
                size(T::CNode, crate::cspace::CNODE_SIZE_BITS as u64),
            ),
        ]
        .iter()
        .fold(0u64, |sum, &(n, bytes)| {
            sum.saturating_add(n.saturating_mul(bytes))
        })
    }

    pub fn add(&mut self, o: &Totals) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.small_frames, o.small_frames);
        add(&mut self.large_frames, o.large_frames);
        add(&mut self.page_tables, o.page_tables);
        add(&mut self.vspaces, o.vspaces);
        add(&mut self.tcbs, o.tcbs);
        add(&mut self.endpoints, o.endpoints);
        add(&mut self.notifications, o.notifications);
        add(&mut self.vcpus, o.vcpus);
        add(&mut self.cnodes, o.cnodes);
    }
}

/// One PD to tell when another it depends on restarts (`BootPlan::dependant_links`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependantLink {
    /// The link's index among all links: its signal cap is at
    /// `cspace::dependant_signal_slot(k)` in the monitor's CSpace.
    pub k: usize,
    /// The PD told (plan index), whose `depends_on` names `dependency`.
    pub dependant: u8,
    /// The PD whose restart is told (plan index).
    pub dependency: u8,
    /// The dependant's end id of its channel to `dependency`: the notification it sees.
    pub id: u8,
}

impl BootPlan {
    pub fn pd_by_name(&self, name: &str) -> Option<(u8, &Pd)> {
        self.pds
            .iter()
            .enumerate()
            .find(|(_, pd)| pd.name == name)
            .map(|(i, pd)| (i as u8, pd))
    }
    pub fn mappings_of(&self, pd: &Pd) -> &[Mapping] {
        pd.mappings.of(&self.mappings)
    }
    pub fn caps_of(&self, pd: &Pd) -> &[CapSlot] {
        pd.caps.of(&self.caps)
    }
    /// Whether the monitor pings PD `pd` for heartbeats: a parentless PD (the monitor is its
    /// fault handler, where the answer arrives) other than the monitor, with a non-zero
    /// `heartbeat_ms`. The monitor has a ping cap to each (`cspace::heartbeat_ping_slot`).
    pub fn watched(&self, pd: usize) -> bool {
        self.pds.get(pd).is_some_and(|p| {
            p.parent.is_none()
                && Some(pd as u8) != self.monitor
                && p.resilience.heartbeat_ms.unwrap_or(0) != 0
        })
    }
    /// The cap in `slot` of `pd`'s CSpace.
    pub fn cap_at(&self, pd: &Pd, slot: u64) -> Option<Cap> {
        self.caps_of(pd)
            .iter()
            .find(|c| c.slot as u64 == slot)
            .map(|c| c.cap)
    }
    pub fn irqs_of(&self, pd: &Pd) -> &[Irq] {
        pd.irqs.of(&self.irqs)
    }
    pub fn setvars_of(&self, pd: &Pd) -> &[Setvar] {
        pd.setvars.of(&self.setvars)
    }
    pub fn depends_of(&self, pd: &Pd) -> &[u8] {
        pd.resilience.depends_on.of(&self.depends)
    }

    /// The restarts the monitor tells about: a [`DependantLink`] for every PD whose
    /// `depends_on` names another and that has a channel to it, in plan order, `k` counting
    /// from 0. The monitor signals the dependant on that channel
    /// (`cspace::dependant_signal_slot(k)`) when the dependency restarts: it looks at what it
    /// shares with it, as after any notification from it.
    pub fn dependant_links(&self) -> impl Iterator<Item = DependantLink> + '_ {
        self.pds
            .iter()
            .enumerate()
            .flat_map(move |(d, pd)| {
                self.depends_of(pd).iter().filter_map(move |&x| {
                    self.channels.iter().find_map(|c| match c.ends {
                        [a, b] | [b, a] if a.pd as usize == d && b.pd == x => {
                            Some((d as u8, x, a.id))
                        }
                        _ => None,
                    })
                })
            })
            .enumerate()
            .map(|(k, (dependant, dependency, id))| DependantLink {
                k,
                dependant,
                dependency,
                id,
            })
    }

    /// The order to start PDs in: each after the PDs it depends on (`depends_on`), ties by
    /// plan index. A cycle (the SDF validator rejects them) is broken by index.
    pub fn start_order(&self) -> Vec<u8, MAX_PDS> {
        let n = self.pds.len().min(MAX_PDS);
        let mut started = [false; MAX_PDS];
        let mut out = Vec::new();
        while out.len() < n {
            let ready = (0..n)
                .filter(|&i| !started[i])
                .find(|&i| {
                    self.depends_of(&self.pds[i])
                        .iter()
                        .all(|&d| d as usize >= n || started[d as usize])
                })
                .or_else(|| (0..n).find(|&i| !started[i]));
            let Some(i) = ready else { break };
            started[i] = true;
            let _ = out.push(i as u8);
        }
        out
    }
    pub fn segments_of(&self, image: &Image) -> &[Segment] {
        image.segments.of(&self.segments)
    }
}
