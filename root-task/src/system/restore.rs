//! Putting a PD back as the plan built it: its pages refilled from the pristine image in the
//! pack, its CSpace emptied and rebuilt from the plan's entries with the root task's original
//! caps. Everything here reads only what is fixed once the system is built ([`Sources`]), so
//! the root task's main thread (restarts in place) and its standby refresher (`standby.rs`)
//! share it.

use axolotl_abi::bootinfo::init_cap;
use axolotl_boot_plan::pack::Pack;
use axolotl_boot_plan::{BootPlan, Cap, MAX_IRQS, MAX_PDS, MAX_REGIONS, MAX_VCPUS, Pd};
use axolotl_sys::alloc::ROOT_DEPTH;
use axolotl_sys::{CNode, Endpoint, IrqHandler, Notification, Tcb, VSpace, vm_attr};
use heapless::Vec;

use super::build::{Error, PD_DEPTH, Page, ROOT_SERVICE_BADGE, Step, VcpuObjects};
use super::image::Source;

/// The caps of a PD's objects that never change, not even across restarts.
#[derive(Clone, Copy, Debug)]
pub struct PdCaps {
    pub tcb: Tcb,
    pub endpoint: Endpoint,
    pub notification: Notification,
}

/// What a PD is restored from, fixed once the system is built.
pub struct Sources {
    pub plan: &'static BootPlan,
    pub pack: Pack<'static>,
    pub pds: Vec<PdCaps, MAX_PDS>,
    /// `(plan IRQ index, handler)`: the originals, copied into a rebuilt CSpace.
    pub irq_handlers: Vec<(u16, IrqHandler), MAX_IRQS>,
    pub vcpus: Vec<VcpuObjects, MAX_VCPUS>,
    /// The root task's endpoint (the monitor's root service cap, its fault endpoint).
    pub service: Endpoint,
    /// Each region's physical address, if contiguous (setvars may name it).
    pub region_paddrs: Vec<Option<u64>, MAX_REGIONS>,
}

pub type Setvars = Vec<(u64, u64), { axolotl_boot_plan::MAX_SETVARS }>;

/// Where PD `i`'s faults go: its parent, else the monitor, else (and for the monitor
/// itself) the root task.
pub fn fault_handler(
    plan: &BootPlan,
    endpoint: impl Fn(usize) -> Endpoint,
    service: Endpoint,
    i: usize,
    parent: Option<u8>,
) -> Endpoint {
    match (parent, plan.monitor) {
        (Some(p), _) => endpoint(p as usize),
        (None, Some(m)) if m as usize != i => endpoint(m as usize),
        _ => service,
    }
}

/// The setvar words of `pd`, region addresses resolved by `region_paddr`.
pub fn setvars(
    plan: &BootPlan,
    pd: &Pd,
    region_paddr: impl Fn(u16) -> Result<u64, Error>,
) -> Result<Setvars, Error> {
    let mut out = Vec::new();
    for sv in plan.setvars_of(pd) {
        let value = match sv.value {
            axolotl_boot_plan::SetvarValue::Value(v) => v,
            axolotl_boot_plan::SetvarValue::RegionPaddr(r) => region_paddr(r)?,
        };
        let _ = out.push((sv.vaddr, value));
    }
    Ok(out)
}

/// What `pd`'s pages are made of: its image in the pack, with `setvars`.
pub fn source<'s>(
    plan: &'static BootPlan,
    pack: Pack<'static>,
    pd: &Pd,
    setvars: &'s [(u64, u64)],
) -> Result<Source<'s>, Error> {
    let image = plan
        .images
        .get(pd.image as usize)
        .ok_or(Error::Plan("image index"))?;
    let bytes = pack.image(&image.name).ok_or(Error::NoImage)?;
    Ok(Source {
        segments: plan.segments_of(image),
        image: bytes,
        setvars,
        name: super::image::name_patch(pd),
    })
}

impl Sources {
    /// `pd`'s setvar words, region addresses resolved from the regions built.
    fn setvars(&self, pd: &Pd) -> Result<Setvars, Error> {
        setvars(self.plan, pd, |r| {
            self.region_paddrs
                .get(r as usize)
                .ok_or(Error::Plan("region index"))?
                .ok_or(Error::NotContiguous(r))
        })
    }

    /// Refills `pages` (one incarnation of `pd`, mapped in `vspace`) from the image: data and
    /// bss as linked, stack and IPC buffer zeroed. Code is mapped read-only in the PD, so it
    /// is rewritten only if something below the PD changed it; remapping then makes the
    /// kernel clean the page to the point of unification and invalidate the instruction cache.
    /// Shared pages (read-only data, `Page::shared`) are left as loaded: the PD cannot write
    /// them, and the other incarnation may be running on them (docs/monitor.md, "Standby
    /// incarnations").
    pub fn refill(&self, pd: &Pd, pages: &[Page], vspace: VSpace) -> Result<(), Error> {
        let setvars = self.setvars(pd)?;
        let src = source(self.plan, self.pack, pd, &setvars)?;
        for p in pages.iter().filter(|p| !p.shared) {
            // SAFETY: the alias of a frame of a stopped incarnation, mapped read-write for the
            // root task alone.
            let dst =
                unsafe { core::slice::from_raw_parts_mut(p.alias as *mut u8, p.size as usize) };
            if p.attrs & vm_attr::EXECUTABLE == 0 {
                src.fill(dst, p.vaddr);
            } else if !src.matches(dst, p.vaddr) {
                src.fill(dst, p.vaddr);
                p.frame.unmap().step("unmap code")?;
                p.frame
                    .map(vspace, p.vaddr, p.rights, p.attrs)
                    .step("remap code")?;
            }
        }
        Ok(())
    }

    /// Code scrubbing (`Request::Scrub`): the first of `pages` (one incarnation of `pd`) that
    /// is executable and no longer holds what its image says, by its virtual address in the
    /// PD. Read only: the PD runs on meanwhile (its code is mapped read-only for it, so only
    /// something below it can have changed a byte).
    pub fn first_corrupt_code(&self, pd: &Pd, pages: &[Page]) -> Result<Option<u64>, Error> {
        let setvars = self.setvars(pd)?;
        let src = source(self.plan, self.pack, pd, &setvars)?;
        for p in pages
            .iter()
            .filter(|p| !p.shared && p.attrs & vm_attr::EXECUTABLE != 0)
        {
            // SAFETY: the alias of a frame of the PD, mapped for the root task for its whole
            // life; only read.
            let page =
                unsafe { core::slice::from_raw_parts(p.alias as *const u8, p.size as usize) };
            if !src.matches(page, p.vaddr) {
                return Ok(Some(p.vaddr));
            }
        }
        Ok(None)
    }

    /// Empties `cnode` (PD `i`'s, or its standby's) of whatever the PD may have put there.
    /// `every`: all 512 slots, as the standby refresher does off the restart's path. A restart
    /// in place (where the PD's clients wait, and 512 deletes cost some 300 µs) empties every
    /// slot only for a PD with its own CNode cap, the one way a cap reaches a slot the plan
    /// does not name: no cap a PD holds carries Grant (`Cap::rights`), and replies never
    /// carry caps, so no message can put one there (`tests/systems/cap-grant.system`).
    pub fn empty_cspace(&self, pd: &Pd, cnode: CNode, every: bool) -> Result<(), Error> {
        let caps = self.plan.caps_of(pd);
        if every || caps.iter().any(|c| c.cap == Cap::OwnCNode) {
            for slot in 0..1 << PD_DEPTH {
                cnode.delete(slot, PD_DEPTH).step("delete PD cap")?;
            }
        } else {
            // The reply slot stays empty: the kernel keeps reply caps in the TCB.
            for cs in caps.iter().filter(|c| c.cap != Cap::Reply) {
                cnode
                    .delete(cs.slot as u64, PD_DEPTH)
                    .step("delete PD cap")?;
            }
        }
        Ok(())
    }

    /// Puts the plan's caps of PD `i` into `cnode`, which is empty in those slots. Every IRQ
    /// handler the PD names must exist (the build creates them).
    pub fn fill_cspace(
        &self,
        i: usize,
        pd: &Pd,
        cnode: CNode,
        vspace: VSpace,
    ) -> Result<(), Error> {
        let root = CNode(init_cap::CNODE);
        for cs in self.plan.caps_of(pd) {
            let slot = cs.slot as u64;
            let (src, badge) = match cs.cap {
                Cap::Reply => continue,
                Cap::InputEndpoint => (self.pds[i].endpoint.0, 0),
                Cap::FaultEndpoint { parent, badge } => {
                    let ep =
                        fault_handler(self.plan, |p| self.pds[p].endpoint, self.service, i, parent);
                    (ep.0, badge)
                }
                Cap::RootService => (self.service.0, ROOT_SERVICE_BADGE),
                Cap::OwnCNode => (cnode.0, 0),
                Cap::OwnVSpace => (vspace.0, 0),
                Cap::Notification { pd: p, badge } => (self.pds[p as usize].notification.0, badge),
                Cap::PpcEndpoint { pd: p, badge } => (self.pds[p as usize].endpoint.0, badge),
                Cap::ChildTcb { pd: p } => (self.pds[p as usize].tcb.0, 0),
                Cap::IrqHandler { irq } => {
                    let (_, h) = self
                        .irq_handlers
                        .iter()
                        .find(|(q, _)| *q == irq)
                        .ok_or(Error::Plan("IRQ handler not created"))?;
                    (h.0, 0)
                }
                Cap::VmTcb { vcpu } => (self.vcpu(vcpu)?.tcb.0, 0),
                Cap::Vcpu { vcpu } => (self.vcpu(vcpu)?.vcpu.0, 0),
            };
            let rights = cs.cap.rights();
            if badge == 0 {
                cnode
                    .copy(slot, PD_DEPTH, root, src, ROOT_DEPTH, rights)
                    .step("copy into PD CSpace")?;
            } else {
                cnode
                    .mint(slot, PD_DEPTH, root, src, ROOT_DEPTH, rights, badge)
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
}
