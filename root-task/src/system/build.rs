//! Executing the boot plan (docs/boot-plan.md, "How the plan is used").

use axolotl_abi::bootinfo::{STACK_TOP, init_cap};
use axolotl_abi::{BootInfo, CPtr, ObjectType, Rights, USER_CONTEXT_WORDS};
use axolotl_boot_plan::cspace::CNODE_SIZE_BITS;
use axolotl_boot_plan::generations::{GENERATION_TABLE_VADDR, GenerationTable};
use axolotl_boot_plan::pack::Pack;
use axolotl_boot_plan::{
    BootPlan, Cap, MAX_IRQS, MAX_PDS, MAX_REGIONS, MAX_VCPUS, Pd, RestartPolicy, Trigger,
};
use axolotl_root_service::journal::Journal;
use axolotl_sys::alloc::{
    ObjectAlloc, PlaceError, ROOT_DEPTH, SlotAlloc, Span, fillers, place_fixed,
};
use axolotl_sys::{
    AsidControl, AsidPool, CNode, DomainSet, Endpoint, Frame, InvocationError, IrqControl,
    IrqHandler, Notification, Tcb, Untyped, UserContext, VSpace, Vcpu, vm_attr,
};
use heapless::Vec;

use super::clock::{Clock, ROOT_TIMER_BADGE};
use super::image::{self, LARGE, PAGE, Source};
use super::journal;
use super::restore::{self, PdCaps, Sources};
use super::standby::{self, Incarnation};
use super::vspace;

/// Most pages of PD images, stacks and IPC buffers together (restored on restart): the
/// plan's number, which the SDF checker counts against.
pub const MAX_PAGES: usize = axolotl_boot_plan::MAX_PD_PAGES;
/// A PD's CNode is a single level: its guard covers the 64 - 9 bits above the slot number, so
/// the PD names slot `n` by the capability address `n` (seL4 CNode cap data: guard size in
/// bits 0..6, guard value 0).
pub const PD_CSPACE_DATA: u64 = 64 - CNODE_SIZE_BITS as u64;
pub const PD_DEPTH: u64 = CNODE_SIZE_BITS as u64;

/// Badge of the monitor's root service cap (its only one: nothing else holds the service).
pub const ROOT_SERVICE_BADGE: u64 = 1;
/// Badge of the standby refresher's fault endpoint (the root task's own endpoint).
pub const REFRESHER_FAULT_BADGE: u64 = 1 << 60;

/// Why the system could not be built.
pub enum Error {
    Invocation(&'static str, InvocationError),
    Plan(&'static str),
    NoImage,
    NoFixedMemory(u64, PlaceError),
    NotContiguous(u16),
    TooManySlots,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Invocation(what, e) => write!(f, "{what}: {e}"),
            Error::Plan(what) => write!(f, "plan not executable: {what}"),
            Error::NoImage => f.write_str("a program image named by the plan is not in the pack"),
            Error::NoFixedMemory(pa, PlaceError::Outside) => write!(
                f,
                "region at {pa:#x}: no untyped memory the root task holds covers it (memory of \
                 the kernel or the root task, or not the board's)"
            ),
            Error::NoFixedMemory(pa, PlaceError::Taken) => {
                write!(f, "region at {pa:#x}: memory already used")
            }
            Error::NotContiguous(r) => {
                write!(
                    f,
                    "region {r} is not physically contiguous but its paddr is asked"
                )
            }
            Error::TooManySlots => f.write_str("out of root CNode slots"),
        }
    }
}

/// Labels an invocation error with the step that failed.
pub trait Step<T> {
    fn step(self, what: &'static str) -> Result<T, Error>;
}

impl<T> Step<T> for Result<T, InvocationError> {
    fn step(self, what: &'static str) -> Result<T, Error> {
        self.map_err(|e| Error::Invocation(what, e))
    }
}

/// The root task's original capabilities to one PD's objects.
#[derive(Clone, Copy, Debug)]
pub struct PdObjects {
    pub tcb: Tcb,
    /// The running incarnation's CSpace, VSpace and IPC buffer (a restart may switch them
    /// with the standby's, `standby.rs`).
    pub cnode: CNode,
    pub vspace: VSpace,
    pub ipc_frame: Frame,
    pub endpoint: Endpoint,
    pub notification: Notification,
    /// The root slot of the fault endpoint cap the TCB is configured with (0: none).
    pub fault_ep: CPtr,
}

/// The root task's original capabilities to one vCPU of a virtual machine.
#[derive(Clone, Copy, Debug)]
pub struct VcpuObjects {
    pub tcb: Tcb,
    pub vcpu: Vcpu,
    /// The plan index of its VM.
    pub vm: u8,
}

/// The frames of a memory region: consecutive root slots `first..first + count`.
#[derive(Clone, Copy, Debug)]
pub struct RegionFrames {
    pub first: CPtr,
    pub count: u64,
    pub paddr: u64,
    pub contiguous: bool,
}

/// A page the root task loaded into a PD (image, stack or IPC buffer): what a restart refills.
/// The root task keeps each such page mapped at `alias` in its own VSpace (through a second
/// cap), so a restart rewrites PD memory with plain stores: no system call per page.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub vaddr: u64,
    /// `PAGE`, or `LARGE` for 2 MiB stretches of big image segments.
    pub size: u64,
    pub frame: Frame,
    pub alias: u64,
    /// How the page is mapped in the PD (executable pages are remapped after a refill, which
    /// makes the kernel synchronise the instruction cache).
    pub rights: Rights,
    pub attrs: u64,
    /// One frame for every incarnation of the PD (`Perms::shared_by_incarnations`): loaded
    /// once, never refilled. A standby's shared page is a read-only copy of the running
    /// incarnation's frame cap, with that page's alias.
    pub shared: bool,
}

/// The page table: too large for the stack, so a static the one [`System`] borrows.
static mut PAGES: Vec<Page, MAX_PAGES> = Vec::new();

/// The page table while the system is built (the only time pages are added).
fn pages_mut(_: &mut System) -> &'static mut Vec<Page, MAX_PAGES> {
    // SAFETY: only `System::build` adds pages, through the one `System`, before any shared
    // reference (`pages`) is handed out.
    unsafe { (&raw mut PAGES).as_mut().unwrap_unchecked() }
}

/// The page table once the system is built: read by restarts and the standby refresher.
pub fn pages() -> &'static [Page] {
    // SAFETY: no page is added after `System::build`, which takes no shared reference.
    unsafe { (&raw const PAGES).as_ref().unwrap_unchecked().as_slice() }
}

/// The root task's window of alias mappings of PD pages (nothing else lives there).
const ALIAS_BASE: u64 = 0x40_0000_0000;

pub struct System {
    pub plan: &'static BootPlan,
    pack: Pack<'static>,
    pub pds: Vec<PdObjects, MAX_PDS>,
    pub regions: Vec<RegionFrames, MAX_REGIONS>,
    /// By plan vCPU index. A VM's vCPUs, VSpace and memory belong to the root task, not to
    /// its VMM, so a restarted VMM finds its guest as it was.
    pub vcpus: Vec<VcpuObjects, MAX_VCPUS>,
    /// Each PD's running incarnation's pages in the page table (`PAGES`).
    pub(super) page_spans: Vec<core::ops::Range<usize>, MAX_PDS>,
    /// What restores read, fixed once the system is built.
    src: Option<&'static Sources>,
    /// `(plan IRQ index, handler)`: the originals, copied into a rebuilt CSpace.
    irq_handlers: Vec<(u16, IrqHandler), MAX_IRQS>,
    /// The root task's endpoint: faults of the monitor (of every parentless PD without a
    /// monitor) and the monitor's restart requests.
    pub service: Endpoint,
    /// Next free address in the alias window.
    alias_next: u64,
    /// Each PD's generation: the root task's count is the authority (a restarted monitor
    /// starts counting from scratch; ring protocols need generations that only grow).
    pub(super) generations: [u64; MAX_PDS],
    /// The same, published where every PD reads and none writes (`generations` module of
    /// the boot plan): ring peers check each other's claims against it.
    pub(super) gen_table: &'static GenerationTable,
    /// Its frame (the original cap): each PD incarnation maps a read-only copy.
    gen_frame: Frame,
    /// The monitor's journal.
    pub journal: Journal<'static>,
    /// The timer, run for the monitor (with a monitor only).
    pub clock: Option<Clock>,
    /// The ASID pool VSpaces get their ASIDs from: the initial one, then each one made when
    /// the last is full.
    asid_pool: CPtr,
    pub alloc: ObjectAlloc,
}

impl System {
    pub fn build(
        bi: &BootInfo,
        plan: &'static BootPlan,
        pack: Pack<'static>,
    ) -> Result<System, Error> {
        // Regions at fixed addresses first: RAM ones are carved from the untypeds the
        // allocator below would otherwise hand out.
        let mut slots = SlotAlloc::from_bootinfo(bi);
        let (mut frames, mut pool) = place_fixed_regions(bi, plan, &mut slots)?;
        let mut alloc = ObjectAlloc::from_untypeds(CNode(init_cap::CNODE), slots, &mut pool);
        let service = Endpoint(
            alloc
                .alloc(ObjectType::Endpoint, 0)
                .step("service endpoint")?,
        );
        let (gen_frame, gen_table, alias_next) = generation_table(&mut alloc, plan)?;
        let mut sys = System {
            plan,
            pack,
            pds: Vec::new(),
            regions: Vec::new(),
            vcpus: Vec::new(),
            page_spans: Vec::new(),
            src: None,
            irq_handlers: Vec::new(),
            service,
            alias_next,
            generations: [0; MAX_PDS],
            gen_table,
            gen_frame,
            journal: journal::take().ok_or(Error::Plan("journal taken twice"))?,
            clock: None,
            asid_pool: init_cap::ASID_POOL,
            alloc,
        };
        for _ in plan.pds.iter() {
            let o = sys.create_pd_objects()?;
            let _ = sys.pds.push(o);
        }
        let n = plan.regions.len().min(MAX_REGIONS);
        for (r, region) in plan.regions.iter().enumerate().take(n) {
            if region.phys_addr.is_none() {
                let f = sys.create_region(r)?;
                sys.prefill_region(r, &f)?;
                frames[r] = Some(f);
            }
        }
        for f in &frames[..n] {
            let _ = sys
                .regions
                .push(f.ok_or(Error::Plan("region not created"))?);
        }
        for (i, pd) in plan.pds.iter().enumerate() {
            sys.build_pd(i, pd)?;
        }
        if let Some(m) = plan.monitor {
            sys.map_plan_into(m as usize)?;
            sys.clock = Some(sys.take_timer(m)?);
        }
        for (i, pd) in plan.pds.iter().enumerate() {
            if let Some(v) = pd.vm {
                sys.build_vm(i, v as usize)?;
            }
        }
        for (i, pd) in plan.pds.iter().enumerate() {
            for c in plan.caps_of(pd) {
                if let Cap::IrqHandler { irq } = c.cap {
                    sys.irq_handler(i, irq)?;
                }
            }
        }
        let src = sys.freeze();
        for (i, pd) in plan.pds.iter().enumerate() {
            src.fill_cspace(i, pd, sys.pds[i].cnode, sys.pds[i].vspace)?;
        }
        let mut standbys = 0;
        for (i, pd) in plan.pds.iter().enumerate() {
            if sys.wants_standby(i, pd) {
                let inc = sys.build_standby(i, pd)?;
                standby::install(i, inc);
                standbys += 1;
            }
        }
        if standbys > 0 {
            let wake = Notification(
                sys.alloc
                    .alloc(ObjectType::Notification, 0)
                    .step("refresher notification")?,
            );
            let fault_ep = sys.mint(sys.service.0, REFRESHER_FAULT_BADGE)?;
            standby::start(&mut sys.alloc, src, pages(), wake.0, fault_ep).map_err(Error::Plan)?;
        }
        sys.set_domains()?;
        // Dependencies first (`depends_on`): among PDs of one priority they run first.
        for i in plan.start_order() {
            sys.pds[i as usize].tcb.resume().step("resume")?;
        }
        if let Some(c) = sys.clock.as_mut() {
            c.monitor_started(axolotl_sys::time::now_us() / 1000);
        }
        Ok(sys)
    }

    /// Fixes what restores read (`restore::Sources`): every object and IRQ handler exists.
    fn freeze(&mut self) -> &'static Sources {
        static mut SOURCES: core::mem::MaybeUninit<Sources> = core::mem::MaybeUninit::uninit();
        let src = Sources {
            plan: self.plan,
            pack: self.pack,
            pds: self
                .pds
                .iter()
                .map(|o| PdCaps {
                    tcb: o.tcb,
                    endpoint: o.endpoint,
                    notification: o.notification,
                })
                .collect(),
            irq_handlers: self.irq_handlers.clone(),
            vcpus: self.vcpus.clone(),
            service: self.service,
            region_paddrs: self
                .regions
                .iter()
                .map(|f| f.contiguous.then_some(f.paddr))
                .collect(),
        };
        // SAFETY: called once, by the one `System::build`, before anything reads it.
        let src: &'static Sources =
            unsafe { (&raw mut SOURCES).as_mut().unwrap_unchecked().write(src) };
        self.src = Some(src);
        src
    }

    pub(super) fn sources(&self) -> Result<&'static Sources, Error> {
        self.src.ok_or(Error::Plan("system not built"))
    }

    /// A restartable PD gets a standby incarnation, unless the SDF says not to. Not the
    /// monitor (the root task restarts it in place: its plan mapping is not an image page).
    /// A VMM does (issue #16): its vCPU threads name the first incarnation's CNode as their
    /// CSpace root, but a guest never invokes a capability, so which incarnation that CNode
    /// serves, or that the refresher empties and refills it, is nothing to them.
    fn wants_standby(&self, i: usize, pd: &Pd) -> bool {
        pd.resilience.restart != RestartPolicy::Never
            && pd.resilience.standby
            && self.plan.monitor != Some(i as u8)
    }

    /// PD `i`'s standby: a CNode and VSpace of its own with the image, stack and IPC buffer
    /// loaded into fresh frames, the regions mapped and the CSpace filled, as at boot.
    fn build_standby(&mut self, i: usize, pd: &Pd) -> Result<Incarnation, Error> {
        let a = &mut self.alloc;
        let cnode = CNode(
            a.alloc(ObjectType::CNode, CNODE_SIZE_BITS as u64)
                .step("standby CNode")?,
        );
        let vspace = VSpace(a.alloc(ObjectType::VSpace, 0).step("standby VSpace")?);
        self.assign_asid(vspace, "standby ASID assign")?;
        let running = self.page_spans.get(i).cloned().unwrap_or(0..0);
        let (ipc_frame, pages) = self.load_incarnation(pd, vspace, Some(running))?;
        self.sources()?.fill_cspace(i, pd, cnode, vspace)?;
        Ok(Incarnation {
            cnode,
            vspace,
            ipc_frame,
            pages,
        })
    }

    fn create_pd_objects(&mut self) -> Result<PdObjects, Error> {
        let a = &mut self.alloc;
        let o = PdObjects {
            tcb: Tcb(a.alloc(ObjectType::Tcb, 0).step("TCB")?),
            cnode: CNode(
                a.alloc(ObjectType::CNode, CNODE_SIZE_BITS as u64)
                    .step("CNode")?,
            ),
            vspace: VSpace(a.alloc(ObjectType::VSpace, 0).step("VSpace")?),
            ipc_frame: Frame(0),
            endpoint: Endpoint(a.alloc(ObjectType::Endpoint, 0).step("endpoint")?),
            notification: Notification(a.alloc(ObjectType::Notification, 0).step("notification")?),
            fault_ep: 0,
        };
        self.assign_asid(o.vspace, "ASID assign")?;
        o.tcb.bind_notification(o.notification).step("bind")?;
        Ok(o)
    }

    /// Gives `vspace` an ASID, making a new pool when the current one is full: one pool holds
    /// 31 VSpaces, and a restartable PD with a standby has two (seL4's AsidControl hands out
    /// pools as they are needed). The SDF checker counts VSpaces against the kernel's ASIDs.
    fn assign_asid(&mut self, vspace: VSpace, what: &'static str) -> Result<(), Error> {
        match AsidPool(self.asid_pool).assign(vspace) {
            Err(e) if e.error == axolotl_abi::Error::DeleteFirst => {
                let slot = self.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
                AsidControl(init_cap::ASID_CONTROL)
                    .make_pool(CNode(init_cap::CNODE), slot, ROOT_DEPTH)
                    .step("ASID pool")?;
                self.asid_pool = slot;
                AsidPool(slot).assign(vspace).step(what)
            }
            r => r.step(what),
        }
    }

    /// A region without a fixed address (those are [`place_fixed_regions`]'), frame by frame
    /// from wherever the allocator has memory.
    fn create_region(&mut self, r: usize) -> Result<RegionFrames, Error> {
        let region = &self.plan.regions[r];
        let ty = frame_type(region.page_size);
        let count = region.pages();
        let mut first = 0;
        let mut paddr = 0;
        let mut contiguous = true;
        for k in 0..count {
            let f = self.alloc.alloc(ty, 0).step("region frame")?;
            let pa = Frame(f).get_address().step("frame address")?;
            if k == 0 {
                (first, paddr) = (f, pa);
            } else if f != first + k {
                return Err(Error::Plan("region frames not in consecutive slots"));
            }
            contiguous &= pa == paddr + k * region.page_size;
        }
        Ok(RegionFrames {
            first,
            count,
            paddr,
            contiguous,
        })
    }

    /// Copies region `r`'s prefill bytes (Microkit's `prefill_path`) from the pack into its
    /// fresh, zeroed frames, one page at a time through one scratch slot and address of the
    /// root task's own VSpace. Only at boot, as Microkit: regions outlive PD restarts.
    fn prefill_region(&mut self, r: usize, f: &RegionFrames) -> Result<(), Error> {
        let region = &self.plan.regions[r];
        if region.prefill == 0 {
            return Ok(());
        }
        // A fixed address may be device registers (the check refuses a prefill there):
        // never write them on a plan's say-so.
        if region.phys_addr.is_some() {
            return Err(Error::Plan(
                "prefill of a region at a fixed physical address",
            ));
        }
        let bytes = self
            .pack
            .prefill(region.name.as_str())
            .filter(|b| b.len() as u64 == region.prefill && region.prefill <= region.size)
            .ok_or(Error::Plan(
                "region prefill missing from the pack or of another length",
            ))?;
        let size = region.page_size;
        let at = self.alias_next.next_multiple_of(size);
        let slot = self.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
        let root = CNode(init_cap::CNODE);
        let vspace = VSpace(init_cap::VSPACE);
        for (k, chunk) in bytes.chunks(size as usize).enumerate() {
            root.copy(
                slot,
                ROOT_DEPTH,
                root,
                f.first + k as u64,
                ROOT_DEPTH,
                Rights::ALL,
            )
            .step("prefill copy")?;
            let page = Frame(slot);
            vspace::map(
                &mut self.alloc,
                page,
                vspace,
                at,
                Rights::RW,
                vm_attr::CACHEABLE,
            )
            .step("prefill map")?;
            // SAFETY: the page was just mapped at `at`, read-write, for the root task alone
            // (no PD maps the region before `build_pd`), and `chunk` is at most a page.
            let dst = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, chunk.len()) };
            dst.copy_from_slice(chunk);
            // A PD may map the region uncached (`cached="false"`): the bytes must be in
            // memory, not only in this mapping's cache lines.
            vspace.clean_data(at, at + size).step("prefill clean")?;
            page.unmap().step("prefill unmap")?;
            root.delete(slot, ROOT_DEPTH).step("prefill delete")?;
        }
        Ok(())
    }

    /// A root slot holding a copy of `src` (a frame may be mapped once per capability).
    fn copy(&mut self, src: CPtr, rights: Rights) -> Result<CPtr, Error> {
        let dst = self.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
        let root = CNode(init_cap::CNODE);
        root.copy(dst, ROOT_DEPTH, root, src, ROOT_DEPTH, rights)
            .step("copy")?;
        Ok(dst)
    }

    /// A root slot holding `src` minted with `badge`.
    fn mint(&mut self, src: CPtr, badge: u64) -> Result<CPtr, Error> {
        let dst = self.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
        let root = CNode(init_cap::CNODE);
        root.mint(dst, ROOT_DEPTH, root, src, ROOT_DEPTH, Rights::ALL, badge)
            .step("mint")?;
        Ok(dst)
    }

    fn region_paddr(&self, r: u16) -> Result<u64, Error> {
        let f = self
            .regions
            .get(r as usize)
            .ok_or(Error::Plan("region index"))?;
        if !f.contiguous {
            return Err(Error::NotContiguous(r));
        }
        Ok(f.paddr)
    }

    /// Remembers a loaded page and maps its alias; returns the alias address.
    fn record(&mut self, mut p: Page) -> Result<u64, Error> {
        if pages_mut(self).is_full() {
            return Err(Error::Plan(
                "more PD pages than the root task tracks (MAX_PAGES)",
            ));
        }
        let alias = Frame(self.copy(p.frame.0, Rights::ALL)?);
        p.alias = self.alias_next.next_multiple_of(p.size);
        let root = VSpace(init_cap::VSPACE);
        vspace::map(
            &mut self.alloc,
            alias,
            root,
            p.alias,
            Rights::RW,
            vm_attr::CACHEABLE,
        )
        .step("alias map")?;
        self.alias_next = p.alias + p.size;
        let _ = pages_mut(self).push(p);
        Ok(p.alias)
    }

    /// Puts every PD's thread and its vCPUs into the PD's domain, then gives the kernel the
    /// schedule (docs/ARCHITECTURE.md, "Scheduling domains"). The root task, the monitor and the standby
    /// refresher stay in domain 0. A restart keeps the TCB, so a PD keeps its domain.
    fn set_domains(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        if plan.domain_schedule.is_empty() {
            return Ok(());
        }
        let domain = DomainSet(init_cap::DOMAIN);
        for (i, pd) in plan.pds.iter().enumerate() {
            domain.set(pd.domain, self.pds[i].tcb).step("PD domain")?;
            for c in self.vcpus.iter().filter(|c| pd.vm == Some(c.vm)) {
                domain.set(pd.domain, c.tcb).step("vCPU domain")?;
            }
        }
        domain
            .set_schedule(&plan.domain_schedule)
            .step("domain schedule")?;
        axolotl_sys::println!(
            "root-task: domain schedule of {} entries set",
            plan.domain_schedule.len()
        );
        Ok(())
    }

    /// Loads the image, maps stack, IPC buffer and regions, and configures the TCB.
    fn build_pd(&mut self, i: usize, pd: &Pd) -> Result<(), Error> {
        let plan = self.plan;
        let o = self.pds[i];
        let (ipc_frame, span) = self.load_incarnation(pd, o.vspace, None)?;
        while self.page_spans.len() <= i {
            let _ = self.page_spans.push(0..0);
        }
        self.page_spans[i] = span;
        let fault_ep = match plan.cap_at(pd, axolotl_boot_plan::cspace::MONITOR_EP) {
            Some(Cap::FaultEndpoint { parent, badge }) => {
                let ep =
                    restore::fault_handler(plan, |p| self.pds[p].endpoint, self.service, i, parent);
                self.mint(ep.0, badge)?
            }
            _ => 0,
        };
        self.pds[i].ipc_frame = ipc_frame;
        self.pds[i].fault_ep = fault_ep;
        o.tcb
            .configure(
                fault_ep,
                o.cnode,
                PD_CSPACE_DATA,
                o.vspace,
                0,
                pd.ipc_buffer,
                ipc_frame,
            )
            .step("TCB configure")?;
        o.tcb
            .set_priority(Tcb(init_cap::TCB), pd.priority as u64)
            .step("priority")?;
        self.set_entry_registers(i, pd, 0, 0, false)
    }

    /// One incarnation of `pd` in `vspace`: its image loaded into fresh frames, stack and
    /// IPC buffer mapped, regions mapped. Its IPC buffer frame and its pages in `PAGES`.
    /// With `share_with` (the running incarnation's pages: a standby), its shared pages map
    /// those frames instead of fresh ones.
    fn load_incarnation(
        &mut self,
        pd: &Pd,
        vspace: VSpace,
        share_with: Option<core::ops::Range<usize>>,
    ) -> Result<(Frame, core::ops::Range<usize>), Error> {
        let plan = self.plan;
        let first = pages_mut(self).len();
        let setvars = restore::setvars(plan, pd, |r| self.region_paddr(r))?;
        let src = restore::source(plan, self.pack, pd, &setvars)?;
        src.check()?;
        let mut ipc_frame = None;
        let ipc_page = pd.ipc_buffer & !(PAGE - 1);
        for (k, p) in src.pages(ipc_page).enumerate() {
            let (page, size, seg) = p?;
            let (rights, attrs) = vspace::rights_attrs(seg.perms, true);
            let shared = seg.perms.shares_page(page, size, ipc_page);
            if let (true, Some(running)) = (shared, &share_with) {
                self.map_shared(running, k, page, size, vspace)?;
                continue;
            }
            let ty = if size == LARGE {
                ObjectType::LargeFrame
            } else {
                ObjectType::SmallFrame
            };
            let frame = Frame(self.alloc.alloc(ty, 0).step("image frame")?);
            let alias = self.record(Page {
                vaddr: page,
                size,
                frame,
                alias: 0,
                rights,
                attrs,
                shared,
            })?;
            // SAFETY: `record` mapped the frame at `alias`, read-write, for the root task
            // alone; the PD cannot see it before the map below.
            let dst = unsafe { core::slice::from_raw_parts_mut(alias as *mut u8, size as usize) };
            src.fill(dst, page);
            // Mapped after the fill: an executable mapping makes the kernel clean the
            // instruction cache for it.
            vspace::map(&mut self.alloc, frame, vspace, page, rights, attrs).step("image map")?;
            if page == ipc_page {
                ipc_frame = Some(frame);
            }
        }

        let (rights, attrs) = (Rights::RW, vm_attr::CACHEABLE);
        let map_new = |s: &mut Self, vaddr: u64| -> Result<Frame, Error> {
            let frame = Frame(s.alloc.alloc(ObjectType::SmallFrame, 0).step("frame")?);
            vspace::map(&mut s.alloc, frame, vspace, vaddr, rights, attrs).step("map")?;
            s.record(Page {
                vaddr,
                size: PAGE,
                frame,
                alias: 0,
                rights,
                attrs,
                shared: false,
            })?;
            Ok(frame)
        };
        let mut va = STACK_TOP - pd.stack_size;
        while va < STACK_TOP {
            map_new(self, va)?;
            va += PAGE;
        }
        let ipc_frame = match ipc_frame {
            Some(f) => f,
            None => map_new(self, pd.ipc_buffer & !(PAGE - 1))?,
        };

        for m in plan.mappings_of(pd) {
            self.map_region(m, vspace)?;
        }
        // Read-only: the cap itself carries no write right, whatever a mapping asks.
        let table = Frame(self.copy(self.gen_frame.0, Rights::READ)?);
        vspace::map(
            &mut self.alloc,
            table,
            vspace,
            GENERATION_TABLE_VADDR,
            Rights::READ,
            vm_attr::CACHEABLE,
        )
        .step("map generation table")?;
        Ok((ipc_frame, first..pages_mut(self).len()))
    }

    /// Maps the running incarnation's shared page `k` of its image (its pages in `PAGES` start
    /// with the image's, in [`Source::pages`] order, as this one's) at `page` in `vspace`,
    /// through a copy of its frame cap without the write right, and records it.
    fn map_shared(
        &mut self,
        running: &core::ops::Range<usize>,
        k: usize,
        page: u64,
        size: u64,
        vspace: VSpace,
    ) -> Result<(), Error> {
        let orig = running
            .clone()
            .nth(k)
            .and_then(|n| pages_mut(self).get(n).copied())
            .filter(|o| o.shared && o.vaddr == page && o.size == size)
            .ok_or(Error::Plan(
                "standby's shared page not in the running incarnation",
            ))?;
        if pages_mut(self).is_full() {
            return Err(Error::Plan(
                "more PD pages than the root task tracks (MAX_PAGES)",
            ));
        }
        let frame = Frame(self.copy(orig.frame.0, Rights::READ)?);
        vspace::map(
            &mut self.alloc,
            frame,
            vspace,
            page,
            orig.rights,
            orig.attrs,
        )
        .step("map shared page")?;
        let _ = pages_mut(self).push(Page { frame, ..orig });
        Ok(())
    }

    /// A PD starts at its entry with `x0` = its generation (0 at boot, +1 per restart);
    /// `resume` starts it too.
    pub(super) fn set_entry_registers(
        &self,
        i: usize,
        pd: &Pd,
        generation: u64,
        flags: u64,
        resume: bool,
    ) -> Result<(), Error> {
        let mut ctx = UserContext {
            pc: pd.entry,
            sp: STACK_TOP,
            tpidr_el0: pd.ipc_buffer,
            ..Default::default()
        };
        ctx.x[0] = generation;
        ctx.x[1] = flags;
        self.pds[i]
            .tcb
            .write_registers(resume, 0, USER_CONTEXT_WORDS, &ctx)
            .step("registers")
    }

    /// Copies the encoded plan into fresh frames mapped read-only in the monitor at
    /// `MONITOR_PLAN_VADDR`: a length word, then the bytes.
    fn map_plan_into(&mut self, m: usize) -> Result<(), Error> {
        use axolotl_boot_plan::MONITOR_PLAN_VADDR;
        let bytes = self.pack.plan();
        let len = bytes.len() as u64;
        let seg = [axolotl_boot_plan::Segment {
            vaddr: MONITOR_PLAN_VADDR + 8,
            memsz: len,
            filesz: len,
            offset: 0,
            perms: Default::default(),
        }];
        let setvars = [(MONITOR_PLAN_VADDR, len)];
        let src = Source {
            segments: &seg,
            image: bytes,
            setvars: &setvars,
            name: None,
        };
        let vspace = self.pds[m].vspace;
        let mut va = MONITOR_PLAN_VADDR;
        while va < MONITOR_PLAN_VADDR + 8 + len {
            let f = Frame(
                self.alloc
                    .alloc(ObjectType::SmallFrame, 0)
                    .step("plan frame")?,
            );
            image::fill_unmapped(&mut self.alloc, f, va, &src)?;
            vspace::map(
                &mut self.alloc,
                f,
                vspace,
                va,
                Rights::READ,
                vm_attr::CACHEABLE,
            )
            .step("map plan")?;
            va += PAGE;
        }
        Ok(())
    }

    /// Maps a region into `vspace` as `m` says, through copies of the root task's frame caps.
    fn map_region(&mut self, m: &axolotl_boot_plan::Mapping, vspace: VSpace) -> Result<(), Error> {
        let f = *self
            .regions
            .get(m.region as usize)
            .ok_or(Error::Plan("region index"))?;
        let size = self.plan.regions[m.region as usize].page_size;
        let (rights, attrs) = vspace::rights_attrs(m.perms, m.cached);
        for k in 0..f.count {
            let c = Frame(self.copy(f.first + k, Rights::ALL)?);
            vspace::map(
                &mut self.alloc,
                c,
                vspace,
                m.vaddr + k * size,
                rights,
                attrs,
            )
            .step("map region")?;
        }
        Ok(())
    }

    /// Creates virtual machine `v` of VMM PD `i`: its guest-physical address space with the
    /// SDF's maps, and per vCPU a TCB bound to a VCPU object whose faults (guest exits) go to
    /// the VMM as `fault(child = vcpu id)`. The vCPUs stay stopped: the VMM loads the guest,
    /// sets the registers and resumes them through its `VmTcb` caps.
    fn build_vm(&mut self, i: usize, v: usize) -> Result<(), Error> {
        let plan = self.plan;
        let vm = plan.vms.get(v).ok_or(Error::Plan("VM index"))?;
        let a = &mut self.alloc;
        let vspace = VSpace(a.alloc(ObjectType::VSpace, 0).step("VM VSpace")?);
        self.assign_asid(vspace, "VM ASID assign")?;
        for m in vm.mappings.of(&plan.mappings) {
            self.map_region(m, vspace)?;
        }
        let vmm = self.pds[i];
        for c in vm.vcpus.of(&plan.vcpus) {
            let a = &mut self.alloc;
            let tcb = Tcb(a.alloc(ObjectType::Tcb, 0).step("vCPU TCB")?);
            let vcpu = Vcpu(a.alloc(ObjectType::Vcpu, 0).step("VCPU")?);
            vcpu.set_tcb(tcb).step("VCPU bind")?;
            let fault_ep = self.mint(
                vmm.endpoint.0,
                axolotl_boot_plan::cspace::child_fault_badge(c.id),
            )?;
            // The guest never invokes capabilities (svc stays in the guest); the VMM's CNode
            // fills the required CSpace root.
            tcb.set_space(fault_ep, vmm.cnode, PD_CSPACE_DATA, vspace, 0)
                .step("vCPU TCB space")?;
            tcb.set_priority(Tcb(init_cap::TCB), vm.priority as u64)
                .step("vCPU priority")?;
            self.vcpus
                .push(VcpuObjects {
                    tcb,
                    vcpu,
                    vm: v as u8,
                })
                .map_err(|_| Error::Plan("too many vCPUs"))?;
        }
        Ok(())
    }

    /// The handler of plan IRQ `irq`, signalling PD `i`'s notification with bit `id`
    /// (created once; a rebuilt CSpace gets a copy of the same handler).
    fn irq_handler(&mut self, i: usize, irq: u16) -> Result<IrqHandler, Error> {
        if let Some(&(_, h)) = self.irq_handlers.iter().find(|(q, _)| *q == irq) {
            return Ok(h);
        }
        let q = *self
            .plan
            .irqs
            .get(irq as usize)
            .ok_or(Error::Plan("IRQ index"))?;
        let slot = self.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
        let root = CNode(init_cap::CNODE);
        IrqControl(init_cap::IRQ_CONTROL)
            .get(
                q.irq as u64,
                q.trigger == Trigger::Edge,
                root,
                slot,
                ROOT_DEPTH,
            )
            .step("IRQ control get")?;
        let n = self.mint(self.pds[i].notification.0, 1 << q.id)?;
        let h = IrqHandler(slot);
        h.set_notification(Notification(n))
            .step("IRQ set notification")?;
        if q.irq == axolotl_abi::PHYS_TIMER_PPI {
            // The timer's PPI comes with the timer: the PD's thread may program it.
            self.pds[i]
                .tcb
                .set_timer_access(true, h)
                .step("grant the EL1 physical timer")?;
        }
        let _ = self.irq_handlers.push((irq, h));
        Ok(h)
    }

    /// Takes the kernel timeout for the root task (it signals our bound notification with
    /// `ROOT_TIMER_BADGE`) and mints the caps to wake and ping monitor `m`. The EL1 physical
    /// timer is left to whichever PD the plan gives its PPI.
    fn take_timer(&mut self, m: u8) -> Result<Clock, Error> {
        let own = Tcb(init_cap::TCB);
        let n = Notification(
            self.alloc
                .alloc(ObjectType::Notification, 0)
                .step("root notification")?,
        );
        own.bind_notification(n).step("bind root notification")?;
        let slot = self.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
        IrqControl(init_cap::IRQ_CONTROL)
            .get(
                axolotl_abi::TIMEOUT_IRQ as u64,
                false,
                CNode(init_cap::CNODE),
                slot,
                ROOT_DEPTH,
            )
            .step("kernel timeout")?;
        let irq = IrqHandler(slot);
        let badged = self.mint(n.0, ROOT_TIMER_BADGE)?;
        irq.set_notification(Notification(badged))
            .step("kernel timeout notification")?;
        let mn = self.pds[m as usize].notification.0;
        let signal = self.mint(
            mn,
            axolotl_boot_plan::cspace::notification_badge(axolotl_boot_plan::MONITOR_TIMER_ID),
        )?;
        let ping = self.mint(mn, axolotl_abi::HEARTBEAT_PING)?;
        Ok(Clock::new(
            irq,
            signal,
            ping,
            m,
            axolotl_sys::time::now_us() / 1000,
        ))
    }
}

/// The generation table's frame, zeroed (every PD at generation 0) with the plan's channels
/// recorded, mapped read-write for the root task alone at the start of the alias window;
/// returns it and where the alias window goes on.
fn generation_table(
    alloc: &mut ObjectAlloc,
    plan: &BootPlan,
) -> Result<(Frame, &'static GenerationTable, u64), Error> {
    let frame = Frame(
        alloc
            .alloc(ObjectType::SmallFrame, 0)
            .step("generation table frame")?,
    );
    let at = ALIAS_BASE;
    vspace::map(
        alloc,
        frame,
        VSpace(init_cap::VSPACE),
        at,
        Rights::RW,
        vm_attr::CACHEABLE,
    )
    .step("map generation table")?;
    // SAFETY: a fresh (zeroed) page mapped read-write for us at `at`, never unmapped; PDs
    // only get read-only mappings, and every access is atomic.
    let table: &'static GenerationTable = unsafe { &*(at as *const GenerationTable) };
    table.set_channels(plan);
    Ok((frame, table, at + PAGE))
}

fn frame_type(page_size: u64) -> ObjectType {
    if page_size == PAGE {
        ObjectType::SmallFrame
    } else {
        ObjectType::LargeFrame
    }
}

/// Untypeds the allocator draws from: the kernel's RAM untypeds and those carved below
/// regions at fixed RAM addresses.
type Pool = Vec<(Untyped, u8), 256>;

/// Keeps `ut` in the pool; when the pool is full, in place of its smallest if `ut` is larger
/// (the allocator keeps only the largest anyway, `axolotl_sys::alloc::MAX_POOL`).
fn keep(pool: &mut Pool, ut: (Untyped, u8)) {
    if let Err(ut) = pool.push(ut)
        && let Some(small) = pool.iter_mut().min_by_key(|(_, bits)| *bits)
        && small.1 < ut.1
    {
        *small = ut;
    }
}

/// Creates the frames of every region at a fixed physical address where the plan puts it,
/// before anything else is allocated (Microkit's semantics: the region's frames are that
/// memory): in a device untyped for device memory, carved out of the RAM untyped that covers
/// it for RAM. The kernel retypes an untyped from its watermark up, so the gap below each
/// region is first retyped into untypeds: in RAM these stay usable and join the pool the
/// returned allocator state draws from. Regions are placed in address order, whatever the
/// order of the file. A region no map names and no untyped covers (Microkit's `setvar`
/// example names the kernel's console UART, only to patch its address into a PD) gets no
/// frames: its address is all the plan uses.
fn place_fixed_regions(
    bi: &BootInfo,
    plan: &BootPlan,
    slots: &mut SlotAlloc,
) -> Result<([Option<RegionFrames>; MAX_REGIONS], Pool), Error> {
    let n = (bi.num_untyped as usize).min(bi.untyped.len());
    let mut spans: Vec<Span, { axolotl_abi::bootinfo::MAX_UNTYPED }> = Vec::new();
    let mut pool = Pool::new();
    for (i, u) in bi.untyped[..n].iter().enumerate() {
        let device = u.is_device != 0;
        let _ = spans.push(Span {
            base: u.paddr,
            size_bits: u.size_bits,
            device,
            mark: 0,
        });
        if !device {
            keep(
                &mut pool,
                (Untyped(init_cap::FIRST_UNTYPED + i as u64), u.size_bits),
            );
        }
    }
    let mut frames = [None; MAX_REGIONS];
    let r_n = plan.regions.len().min(MAX_REGIONS);
    let mut order: Vec<usize, MAX_REGIONS> = (0..r_n)
        .filter(|&r| plan.regions[r].phys_addr.is_some())
        .collect();
    order.sort_unstable_by_key(|&r| (plan.regions[r].phys_addr, r));
    let root = CNode(init_cap::CNODE);
    for r in order {
        let region = &plan.regions[r];
        let Some(pa) = region.phys_addr else { continue };
        let count = region.pages();
        let size = count.saturating_mul(region.page_size);
        let p = match place_fixed(&mut spans, pa, size) {
            Ok(p) => p,
            Err(PlaceError::Outside) if !plan.mappings.iter().any(|m| m.region as usize == r) => {
                frames[r] = Some(RegionFrames {
                    first: 0,
                    count: 0,
                    paddr: pa,
                    contiguous: true,
                });
                continue;
            }
            Err(e) => return Err(Error::NoFixedMemory(pa, e)),
        };
        let ut = Untyped(init_cap::FIRST_UNTYPED + p.untyped as u64);
        for bits in fillers(p.from, pa) {
            let slot = slots.alloc().ok_or(Error::TooManySlots)?;
            ut.retype(ObjectType::Untyped, bits as u64, root, 0, 0, slot, 1)
                .step("untyped below a fixed region")?;
            if !p.device {
                keep(&mut pool, (Untyped(slot), bits as u8));
            }
        }
        let first = slots.alloc_n(count).ok_or(Error::TooManySlots)?;
        let mut done = 0;
        while done < count {
            let batch = (count - done).min(axolotl_abi::RETYPE_FAN_OUT_LIMIT);
            ut.retype(
                frame_type(region.page_size),
                0,
                root,
                0,
                0,
                first + done,
                batch,
            )
            .step("fixed region frames")?;
            done += batch;
        }
        // The kernel places objects from the watermark up: the frames are where asked
        // unless the carving above is wrong, which must stop the boot, not hand a PD other
        // memory than its SDF names.
        let last = count.saturating_sub(1);
        if count > 0
            && (Frame(first).get_address().step("frame address")? != pa
                || Frame(first + last).get_address().step("frame address")?
                    != pa + last * region.page_size)
        {
            return Err(Error::Plan("fixed region's frames not at its address"));
        }
        frames[r] = Some(RegionFrames {
            first,
            count,
            paddr: pa,
            contiguous: true,
        });
    }
    Ok((frames, pool))
}
