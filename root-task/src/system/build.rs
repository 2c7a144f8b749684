//! Executing the boot plan (docs/boot-plan.md, "How the plan is used").

use axolotl_abi::bootinfo::{STACK_TOP, init_cap};
use axolotl_abi::{BootInfo, CPtr, ObjectType, Rights, USER_CONTEXT_WORDS};
use axolotl_boot_plan::cspace::CNODE_SIZE_BITS;
use axolotl_boot_plan::pack::Pack;
use axolotl_boot_plan::{
    BootPlan, Cap, MAX_IRQS, MAX_PDS, MAX_REGIONS, MAX_VCPUS, Pd, Trigger, root_service,
};
use axolotl_sys::alloc::{ObjectAlloc, ROOT_DEPTH};
use axolotl_sys::{
    AsidPool, CNode, Endpoint, Frame, InvocationError, IrqControl, IrqHandler, Notification, Tcb,
    Untyped, UserContext, VSpace, Vcpu, vm_attr,
};
use heapless::Vec;

use super::clock::{Clock, ROOT_TIMER_BADGE};
use super::image::{self, LARGE, PAGE, Source};
use super::vspace;

/// Most pages of PD images, stacks and IPC buffers together (restored on restart).
pub const MAX_PAGES: usize = 16384;
/// A PD's CNode is a single level: its guard covers the 64 - 9 bits above the slot number, so
/// the PD names slot `n` by the capability address `n` (seL4 CNode cap data: guard size in
/// bits 0..6, guard value 0).
const PD_CSPACE_DATA: u64 = 64 - CNODE_SIZE_BITS as u64;
const PD_DEPTH: u64 = CNODE_SIZE_BITS as u64;

/// Badge of the monitor's root service cap (its only one: nothing else holds the service).
pub const ROOT_SERVICE_BADGE: u64 = 1;

/// Why the system could not be built.
pub enum Error {
    Invocation(&'static str, InvocationError),
    Plan(&'static str),
    NoImage,
    NoDeviceMemory(u64),
    NotContiguous(u16),
    TooManySlots,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Invocation(what, e) => write!(f, "{what}: {e}"),
            Error::Plan(what) => write!(f, "plan not executable: {what}"),
            Error::NoImage => f.write_str("a program image named by the plan is not in the pack"),
            Error::NoDeviceMemory(pa) => write!(f, "no free device memory at {pa:#x}"),
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
    pub cnode: CNode,
    pub vspace: VSpace,
    pub endpoint: Endpoint,
    pub notification: Notification,
}

/// The root task's original capabilities to one vCPU of a virtual machine.
#[derive(Clone, Copy, Debug)]
pub struct VcpuObjects {
    pub tcb: Tcb,
    pub vcpu: Vcpu,
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
    pub pd: u8,
    pub vaddr: u64,
    /// `PAGE`, or `LARGE` for 2 MiB stretches of big image segments.
    pub size: u64,
    pub frame: Frame,
    pub alias: u64,
    /// How the page is mapped in the PD (executable pages are remapped after a refill, which
    /// makes the kernel synchronise the instruction cache).
    pub rights: Rights,
    pub attrs: u64,
}

/// The page table: too large for the stack, so a static the one [`System`] borrows.
static mut PAGES: Vec<Page, MAX_PAGES> = Vec::new();

fn take_pages() -> &'static mut Vec<Page, MAX_PAGES> {
    // SAFETY: `System::build` runs once (the root task builds one system), so this is the
    // only reference ever made.
    unsafe { (&raw mut PAGES).as_mut().unwrap_unchecked() }
}

/// The monitor's journal: a static for the same reason.
static mut JOURNAL: [Journaled; MAX_PDS] = [const {
    Journaled {
        len: 0,
        bytes: [0; root_service::RECORD_BYTES],
    }
}; MAX_PDS];

fn take_journal() -> &'static mut [Journaled; MAX_PDS] {
    // SAFETY: as `take_pages`.
    unsafe { (&raw mut JOURNAL).as_mut().unwrap_unchecked() }
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
    /// Every PD's pages, grouped by PD in plan order (`page_spans[pd]` indexes them).
    pages: &'static mut Vec<Page, MAX_PAGES>,
    page_spans: Vec<core::ops::Range<usize>, MAX_PDS>,
    /// `(plan IRQ index, handler)`: the originals, copied into a rebuilt CSpace.
    irq_handlers: Vec<(u16, IrqHandler), MAX_IRQS>,
    /// The root task's endpoint: faults of the monitor (of every parentless PD without a
    /// monitor) and the monitor's restart requests.
    pub service: Endpoint,
    /// Next free address in the alias window.
    alias_next: u64,
    /// Each PD's generation: the root task's count is the authority (a restarted monitor
    /// starts counting from scratch; ring protocols need generations that only grow).
    generations: [u64; MAX_PDS],
    /// The monitor's journal (`root_service::RECORD`), by PD: opaque bytes we keep for a
    /// restarted monitor. Written by the monitor alone; it validates what it reads back.
    journal: &'static mut [Journaled; MAX_PDS],
    /// The timer, run for the monitor (with a monitor only).
    pub clock: Option<Clock>,
    pub alloc: ObjectAlloc,
}

/// One PD's journaled bookkeeping.
pub struct Journaled {
    pub len: usize,
    pub bytes: [u8; root_service::RECORD_BYTES],
}

impl System {
    pub fn build(
        bi: &BootInfo,
        plan: &'static BootPlan,
        pack: Pack<'static>,
    ) -> Result<System, Error> {
        let mut alloc = ObjectAlloc::from_bootinfo(bi);
        let service = Endpoint(
            alloc
                .alloc(ObjectType::Endpoint, 0)
                .step("service endpoint")?,
        );
        let mut sys = System {
            plan,
            pack,
            pds: Vec::new(),
            regions: Vec::new(),
            vcpus: Vec::new(),
            pages: take_pages(),
            page_spans: Vec::new(),
            irq_handlers: Vec::new(),
            service,
            alias_next: ALIAS_BASE,
            generations: [0; MAX_PDS],
            journal: take_journal(),
            clock: None,
            alloc,
        };
        for _ in plan.pds.iter() {
            let o = sys.create_pd_objects()?;
            let _ = sys.pds.push(o);
        }
        let mut devices = DeviceMemory::new(bi);
        for r in 0..plan.regions.len() {
            let frames = sys.create_region(&mut devices, r)?;
            let _ = sys.regions.push(frames);
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
            sys.fill_cspace(i, pd)?;
        }
        for o in sys.pds.iter() {
            o.tcb.resume().step("resume")?;
        }
        Ok(sys)
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
            endpoint: Endpoint(a.alloc(ObjectType::Endpoint, 0).step("endpoint")?),
            notification: Notification(a.alloc(ObjectType::Notification, 0).step("notification")?),
        };
        AsidPool(init_cap::ASID_POOL)
            .assign(o.vspace)
            .step("ASID assign")?;
        o.tcb.bind_notification(o.notification).step("bind")?;
        Ok(o)
    }

    fn create_region(
        &mut self,
        devices: &mut DeviceMemory,
        r: usize,
    ) -> Result<RegionFrames, Error> {
        let region = &self.plan.regions[r];
        let large = region.page_size != PAGE;
        let ty = if large {
            ObjectType::LargeFrame
        } else {
            ObjectType::SmallFrame
        };
        let count = region.pages();
        if let Some(pa) = region.phys_addr {
            let first = devices.frames_at(&mut self.alloc, pa, ty, count)?;
            return Ok(RegionFrames {
                first,
                count,
                paddr: pa,
                contiguous: true,
            });
        }
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

    /// The setvar words of `pd`, region addresses resolved.
    fn setvars(
        &self,
        pd: &Pd,
    ) -> Result<Vec<(u64, u64), { axolotl_boot_plan::MAX_SETVARS }>, Error> {
        let mut out = Vec::new();
        for sv in self.plan.setvars_of(pd) {
            let value = match sv.value {
                axolotl_boot_plan::SetvarValue::Value(v) => v,
                axolotl_boot_plan::SetvarValue::RegionPaddr(r) => self.region_paddr(r)?,
            };
            let _ = out.push((sv.vaddr, value));
        }
        Ok(out)
    }

    /// What `pd`'s pages are made of: its image in the pack, with `setvars` (`Self::setvars`).
    fn source<'s>(&self, pd: &Pd, setvars: &'s [(u64, u64)]) -> Result<Source<'s>, Error> {
        let (segments, image) = self.image_of(pd)?;
        Ok(Source {
            segments,
            image,
            setvars,
        })
    }

    fn image_of(
        &self,
        pd: &Pd,
    ) -> Result<(&'static [axolotl_boot_plan::Segment], &'static [u8]), Error> {
        let plan = self.plan;
        let image = plan
            .images
            .get(pd.image as usize)
            .ok_or(Error::Plan("image index"))?;
        let bytes = self.pack.image(&image.name).ok_or(Error::NoImage)?;
        Ok((plan.segments_of(image), bytes))
    }

    /// Remembers a loaded page and maps its alias; returns the alias address.
    fn record(&mut self, mut p: Page) -> Result<u64, Error> {
        if self.pages.is_full() {
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
        let _ = self.pages.push(p);
        // PDs are built one after the other, so each one's pages are consecutive.
        let i = p.pd as usize;
        while self.page_spans.len() <= i {
            let at = self.pages.len() - 1;
            let _ = self.page_spans.push(at..at);
        }
        self.page_spans[i].end = self.pages.len();
        Ok(p.alias)
    }

    /// Loads the image, maps stack, IPC buffer and regions, and configures the TCB.
    fn build_pd(&mut self, i: usize, pd: &Pd) -> Result<(), Error> {
        let plan = self.plan;
        let o = self.pds[i];
        let setvars = self.setvars(pd)?;
        let src = self.source(pd, &setvars)?;
        src.check()?;
        let mut ipc_frame = None;
        let ipc_page = pd.ipc_buffer & !(PAGE - 1);
        for p in src.pages(ipc_page) {
            let (page, size, seg) = p?;
            let ty = if size == LARGE {
                ObjectType::LargeFrame
            } else {
                ObjectType::SmallFrame
            };
            let frame = Frame(self.alloc.alloc(ty, 0).step("image frame")?);
            let (rights, attrs) = vspace::rights_attrs(seg.perms, true);
            let alias = self.record(Page {
                pd: i as u8,
                vaddr: page,
                size,
                frame,
                alias: 0,
                rights,
                attrs,
            })?;
            // SAFETY: `record` mapped the frame at `alias`, read-write, for the root task
            // alone; the PD cannot see it before the map below.
            let dst = unsafe { core::slice::from_raw_parts_mut(alias as *mut u8, size as usize) };
            src.fill(dst, page);
            // Mapped after the fill: an executable mapping makes the kernel clean the
            // instruction cache for it.
            vspace::map(&mut self.alloc, frame, o.vspace, page, rights, attrs).step("image map")?;
            if page == ipc_page {
                ipc_frame = Some(frame);
            }
        }

        let (rights, attrs) = (Rights::RW, vm_attr::CACHEABLE);
        let map_new = |s: &mut Self, vaddr: u64| -> Result<Frame, Error> {
            let frame = Frame(s.alloc.alloc(ObjectType::SmallFrame, 0).step("frame")?);
            vspace::map(&mut s.alloc, frame, o.vspace, vaddr, rights, attrs).step("map")?;
            s.record(Page {
                pd: i as u8,
                vaddr,
                size: PAGE,
                frame,
                alias: 0,
                rights,
                attrs,
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
            self.map_region(m, o.vspace)?;
        }

        let fault_ep = match plan.cap_at(pd, axolotl_boot_plan::cspace::MONITOR_EP) {
            Some(Cap::FaultEndpoint { parent, badge }) => {
                let ep = self.fault_handler(i, parent);
                self.mint(ep.0, badge)?
            }
            _ => 0,
        };
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
        self.set_entry_registers(i, pd, 0)
    }

    /// Where PD `i`'s faults go: its parent, else the monitor, else (and for the monitor
    /// itself) the root task.
    fn fault_handler(&self, i: usize, parent: Option<u8>) -> Endpoint {
        match (parent, self.plan.monitor) {
            (Some(p), _) => self.pds[p as usize].endpoint,
            (None, Some(m)) if m as usize != i => self.pds[m as usize].endpoint,
            _ => self.service,
        }
    }

    /// A PD starts at its entry with `x0` = its generation (0 at boot, +1 per restart).
    fn set_entry_registers(&self, i: usize, pd: &Pd, generation: u64) -> Result<(), Error> {
        let mut ctx = UserContext {
            pc: pd.entry,
            sp: STACK_TOP,
            tpidr_el0: pd.ipc_buffer,
            ..Default::default()
        };
        ctx.x[0] = generation;
        self.pds[i]
            .tcb
            .write_registers(false, 0, USER_CONTEXT_WORDS, &ctx)
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

    /// Puts into the PD's CNode every capability the plan gives it.
    fn fill_cspace(&mut self, i: usize, pd: &Pd) -> Result<(), Error> {
        let plan = self.plan;
        let cnode = self.pds[i].cnode;
        let root = CNode(init_cap::CNODE);
        for cs in plan.caps_of(pd) {
            let slot = cs.slot as u64;
            let (src, badge) = match cs.cap {
                Cap::Reply => continue,
                Cap::InputEndpoint => (self.pds[i].endpoint.0, 0),
                Cap::FaultEndpoint { parent, badge } => (self.fault_handler(i, parent).0, badge),
                Cap::RootService => (self.service.0, ROOT_SERVICE_BADGE),
                Cap::OwnCNode => (cnode.0, 0),
                Cap::Notification { pd: p, badge } => (self.pds[p as usize].notification.0, badge),
                Cap::PpcEndpoint { pd: p, badge } => (self.pds[p as usize].endpoint.0, badge),
                Cap::ChildTcb { pd: p } => (self.pds[p as usize].tcb.0, 0),
                Cap::IrqHandler { irq } => {
                    let h = self.irq_handler(i, irq)?;
                    (h.0, 0)
                }
                Cap::VmTcb { vcpu } => (self.vcpu(vcpu)?.tcb.0, 0),
                Cap::Vcpu { vcpu } => (self.vcpu(vcpu)?.vcpu.0, 0),
            };
            if badge == 0 {
                cnode
                    .copy(slot, PD_DEPTH, root, src, ROOT_DEPTH, Rights::ALL)
                    .step("copy into PD CSpace")?;
            } else {
                cnode
                    .mint(slot, PD_DEPTH, root, src, ROOT_DEPTH, Rights::ALL, badge)
                    .step("mint into PD CSpace")?;
            }
        }
        Ok(())
    }

    fn vcpu(&self, k: u8) -> Result<VcpuObjects, Error> {
        self.vcpus
            .get(k as usize)
            .copied()
            .ok_or(Error::Plan("vCPU index"))
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
        AsidPool(init_cap::ASID_POOL)
            .assign(vspace)
            .step("VM ASID assign")?;
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
                .push(VcpuObjects { tcb, vcpu })
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

    /// Takes the EL1 physical timer for the root task (its PPI signals our bound notification
    /// with `ROOT_TIMER_BADGE`) and mints the caps to wake and ping monitor `m`.
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
                axolotl_abi::PHYS_TIMER_PPI as u64,
                false,
                CNode(init_cap::CNODE),
                slot,
                ROOT_DEPTH,
            )
            .step("timer IRQ")?;
        let irq = IrqHandler(slot);
        let badged = self.mint(n.0, ROOT_TIMER_BADGE)?;
        irq.set_notification(Notification(badged))
            .step("timer IRQ notification")?;
        own.set_timer_access(true, irq)
            .step("take the EL1 physical timer")?;
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
            super::service::now_us() / 1000,
        ))
    }

    /// Keeps `bytes` as PD `pd`'s journal entry.
    pub fn journal(&mut self, pd: usize, bytes: &[u8]) -> bool {
        match self.journal.get_mut(pd) {
            Some(j) if bytes.len() <= j.bytes.len() => {
                j.bytes[..bytes.len()].copy_from_slice(bytes);
                j.len = bytes.len();
                true
            }
            _ => false,
        }
    }

    /// PD `pd`'s journal entry (empty if none) and our generation of it.
    pub fn recall(&self, pd: usize) -> Option<(&[u8], u64)> {
        let j = self.journal.get(pd)?;
        Some((&j.bytes[..j.len], self.generations[pd]))
    }

    /// Restarts PD `i` from its pristine image: stopped (its pending IPC cancelled), every
    /// page it was loaded with refilled from the pack (text, data, zeroed bss, stack and IPC
    /// buffer), its CSpace emptied and rebuilt from the plan (whatever it did to its caps is
    /// undone), and started at its entry with `x0 = generation`, the larger of `at_least`
    /// and one more than its last (returned). Regions it maps are shared state and stay: the
    /// ring protocols resynchronise them.
    pub fn restart(&mut self, i: usize, at_least: u64) -> Result<u64, Error> {
        let plan = self.plan;
        let pd = plan.pds.get(i).ok_or(Error::Plan("PD index"))?;
        let o = self.pds[i];
        o.tcb.suspend().step("suspend")?;
        let setvars = self.setvars(pd)?;
        let src = self.source(pd, &setvars)?;
        let span = self.page_spans.get(i).cloned().unwrap_or(0..0);
        for p in &self.pages[span] {
            // SAFETY: the alias of a frame of the stopped PD, mapped read-write for us alone.
            let dst =
                unsafe { core::slice::from_raw_parts_mut(p.alias as *mut u8, p.size as usize) };
            if p.attrs & vm_attr::EXECUTABLE == 0 {
                src.fill(dst, p.vaddr);
            } else if !src.matches(dst, p.vaddr) {
                // Code is mapped read-only in the PD, so it is rewritten only if something
                // below the PD changed it; remapping makes the kernel clean the page to the
                // point of unification and invalidate the instruction cache.
                src.fill(dst, p.vaddr);
                p.frame.unmap().step("unmap code")?;
                p.frame
                    .map(o.vspace, p.vaddr, p.rights, p.attrs)
                    .step("remap code")?;
            }
        }
        if plan.caps_of(pd).iter().any(|c| c.cap == Cap::OwnCNode) {
            // It could have put caps anywhere in its CNode: empty all of it.
            for slot in 0..1 << PD_DEPTH {
                o.cnode.delete(slot, PD_DEPTH).step("delete PD cap")?;
            }
        } else {
            // Only the plan's slots can hold anything; the reply slot stays empty (the kernel
            // keeps reply caps in the TCB).
            for cs in plan.caps_of(pd).iter().filter(|c| c.cap != Cap::Reply) {
                o.cnode
                    .delete(cs.slot as u64, PD_DEPTH)
                    .step("delete PD cap")?;
            }
        }
        self.fill_cspace(i, pd)?;
        let generation = at_least.max(self.generations[i] + 1);
        self.set_entry_registers(i, pd, generation)?;
        o.tcb.resume().step("resume")?;
        self.generations[i] = generation;
        Ok(generation)
    }
}

/// Device untyped memory, handed out at the physical addresses the plan names: the kernel
/// retypes from a watermark, so the gap below an address is filled with untyped objects first.
struct DeviceMemory {
    /// `(cap, base, size_bits, watermark offset)` per device untyped.
    untyped: Vec<(Untyped, u64, u8, u64), { axolotl_abi::bootinfo::MAX_UNTYPED }>,
}

impl DeviceMemory {
    fn new(bi: &BootInfo) -> Self {
        let mut untyped = Vec::new();
        let n = (bi.num_untyped as usize).min(bi.untyped.len());
        for (i, u) in bi.untyped[..n].iter().enumerate() {
            if u.is_device != 0 {
                let cap = Untyped(init_cap::FIRST_UNTYPED + i as u64);
                let _ = untyped.push((cap, u.paddr, u.size_bits, 0));
            }
        }
        DeviceMemory { untyped }
    }

    fn frames_at(
        &mut self,
        a: &mut ObjectAlloc,
        pa: u64,
        ty: ObjectType,
        count: u64,
    ) -> Result<CPtr, Error> {
        let bits = ty.size_bits(0).unwrap_or(12) as u64;
        let end = pa + (count << bits);
        let (ut, base, _, mark) = self
            .untyped
            .iter_mut()
            .find(|(_, base, b, _)| pa >= *base && end <= *base + (1u64 << *b))
            .ok_or(Error::NoDeviceMemory(pa))?;
        let root = CNode(init_cap::CNODE);
        let cur = *base + *mark;
        if cur > pa {
            return Err(Error::NoDeviceMemory(pa));
        }
        for f in axolotl_sys::alloc::fillers(cur, pa) {
            let slot = a.slots.alloc().ok_or(Error::TooManySlots)?;
            ut.retype(ObjectType::Untyped, f as u64, root, 0, 0, slot, 1)
                .step("device filler")?;
        }
        let first = a.slots.alloc_n(count).ok_or(Error::TooManySlots)?;
        ut.retype(ty, 0, root, 0, 0, first, count)
            .step("device frames")?;
        *mark = end - *base;
        Ok(first)
    }
}
