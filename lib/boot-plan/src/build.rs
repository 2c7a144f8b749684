//! SDF + program images -> plan. Every problem is collected; a plan is returned only without any.
//!
//! [`build`] runs passes over one [`Cx`]: each pass fills its own tables of the plan (and the
//! working state of later passes) and collects the problems it finds, in this order:
//!
//! | pass | fills | refuses |
//! |---|---|---|
//! | [`Cx::new`] | PD indices, parents | more PDs than the plan holds (and stops) |
//! | [`regions`] | `regions` | table capacity, name length |
//! | [`images`] | `images`, `segments` | table capacity, path length |
//! | [`channels`] | `channels`; notification and PPC caps, badges at each receiver | unknown PD, badge or id reuse, slot reuse |
//! | [`pds::layout`] | each PD's image, IPC buffer, frames and page tables of image, stack, IPC buffer and generation table | missing image, image over a map or the stack, IPC buffer or generation table under something |
//! | [`maps`] | `mappings` (a PD's maps, then its VM's) | unknown region |
//! | [`setvars`] | `setvars` | missing or not-8-byte symbol |
//! | [`caps`] | fixed and fault caps, `irqs` and their handlers, child TCBs | slot or badge reuse |
//! | [`vms`] | `vms`, `vcpus`, their caps and totals | slot reuse |
//! | [`pds::pds`] | `depends`, `pds`, the plan's totals | unknown PD in `depends_on` |
//! | [`caps::emit`] | `caps`, by slot per PD | table capacity |
//!
//! Each pass visits PDs in plan order and appends, so every table is laid out PD by PD; errors
//! come pass by pass, PD by PD within a pass.

use std::collections::BTreeMap;
use std::string::String;
use std::vec;
use std::vec::Vec;

use axolotl_sdf as sdf;
use axolotl_sdf::SystemDescription;

use crate::model::{self as m, BootPlan, Cap, Totals};
use crate::{BuildError, ElfInfo};

mod caps;
mod channels;
mod images;
mod maps;
mod pds;
mod regions;
mod setvars;
#[cfg(test)]
mod testing;
mod vms;

pub(crate) const PAGE: u64 = 0x1000;
pub(crate) const LARGE: u64 = 0x20_0000;
const GIB: u64 = 1 << 30;

/// Microkit's name for the IPC buffer page inside the image; without it the buffer gets its
/// own frame at [`DEFAULT_IPC_BUFFER`].
pub const IPC_BUFFER_SYMBOL: &str = "__sel4_ipc_buffer_obj";
pub const DEFAULT_IPC_BUFFER: u64 = axolotl_abi::bootinfo::IPC_BUFFER_VADDR;

type Errors = Vec<BuildError>;

fn push<T, const N: usize>(
    v: &mut heapless::Vec<T, N>,
    x: T,
    what: &'static str,
    errs: &mut Errors,
) -> u16 {
    let i = v.len() as u16;
    if v.push(x).is_err()
        && !errs
            .iter()
            .any(|e| matches!(e, BuildError::Capacity { what: w, .. } if *w == what))
    {
        errs.push(BuildError::Capacity { what, limit: N });
    }
    i
}

fn span(start: u16, end: u16) -> m::Span {
    m::Span {
        start,
        len: end - start,
    }
}

fn string<const N: usize>(s: &str, what: &'static str, errs: &mut Errors) -> heapless::String<N> {
    heapless::String::try_from(s).unwrap_or_else(|_| {
        errs.push(BuildError::Capacity { what, limit: N });
        heapless::String::new()
    })
}

fn perms(p: sdf::Perms) -> m::Perms {
    m::Perms {
        read: p.read,
        write: p.write,
        execute: p.execute,
    }
}

/// Page tables (levels 2 and 3 below a 39-bit root) for pages `(vaddr, size)`: a level-2
/// table per GiB and a level-3 table per 2 MiB of small pages touched, kept as ranges of
/// table indices and counted by merging them, so no input makes this overflow or run long.
/// Nothing at or above 2^39 can be mapped (the SDF checks maps, the root task refuses
/// segments there) and is not counted.
#[derive(Default)]
pub(crate) struct Tables {
    l2: Vec<(u64, u64)>,
    l3: Vec<(u64, u64)>,
}

impl Tables {
    pub(crate) fn add(&mut self, vaddr: u64, len: u64, page: u64) {
        let end = vaddr.saturating_add(len).min(sdf::USER_ADDR_LIMIT);
        if vaddr >= end {
            return;
        }
        self.l2.push((vaddr / GIB, end.div_ceil(GIB)));
        if page != LARGE {
            self.l3.push((vaddr / LARGE, end.div_ceil(LARGE)));
        }
    }
    pub(crate) fn count(&self) -> u64 {
        union_len(&self.l2) + union_len(&self.l3)
    }
}

/// How many integers the half-open `ranges` cover together.
fn union_len(ranges: &[(u64, u64)]) -> u64 {
    let mut r = ranges.to_vec();
    r.sort_unstable();
    let (mut n, mut covered) = (0u64, 0u64);
    for (start, end) in r {
        let start = start.max(covered);
        if end > start {
            n += end - start;
            covered = end;
        }
    }
    n
}

/// The distinct 4 KiB pages `elf`'s segments touch, counted by merging their page ranges (a
/// set of pages would take memory in proportion to the segments' size).
fn image_pages(elf: &ElfInfo) -> u64 {
    let ranges: Vec<(u64, u64)> = elf
        .segments
        .iter()
        .filter(|s| s.memsz > 0)
        .map(|s| {
            (
                s.vaddr / PAGE,
                s.vaddr.saturating_add(s.memsz).div_ceil(PAGE),
            )
        })
        .collect();
    union_len(&ranges)
}

/// Builds the plan for `sd` from its program images (matched by `program_image path`).
pub fn build(sd: &SystemDescription, images: &[ElfInfo]) -> Result<BootPlan, Vec<BuildError>> {
    let mut cx = Cx::new(sd, images)?;
    regions::regions(&mut cx);
    images::images(&mut cx);
    channels::channels(&mut cx);
    pds::layout(&mut cx);
    maps::maps(&mut cx);
    setvars::setvars(&mut cx);
    caps::caps(&mut cx);
    vms::vms(&mut cx);
    pds::pds(&mut cx);
    caps::emit(&mut cx);
    domain_schedule(&mut cx);
    cx.finish()
}

/// The SDF's domain schedule as the kernel takes it, from its start index on.
fn domain_schedule(cx: &mut Cx) {
    let Some(d) = &cx.sd.domains else { return };
    let n = d.schedule.len();
    let start = (d.start_index as usize).min(n);
    for e in d.schedule[start..].iter().chain(&d.schedule[..start]) {
        let id = d.id_of(&e.domain).unwrap_or(0) as u8;
        let w = axolotl_abi::domain_entry(id, e.length_us);
        if cx.plan.domain_schedule.push(w).is_err() {
            cx.errs.push(BuildError::Capacity {
                what: "domain schedule entries",
                limit: axolotl_abi::MAX_DOMAIN_SCHEDULE,
            });
            return;
        }
    }
}

/// What the passes share: the system, the plan being built, the problems found so far, and
/// what one pass leaves for a later one.
struct Cx<'a> {
    sd: &'a SystemDescription,
    images: &'a [ElfInfo],
    /// PDs in `all_pds` order: a PD's plan index is its position.
    all: Vec<&'a sdf::ProtectionDomain>,
    index: BTreeMap<&'a str, u8>,
    parent: Vec<Option<u8>>,
    region_index: BTreeMap<&'a str, u16>,
    plan: BootPlan,
    errs: Errors,
    /// Per PD: what the passes found, until [`pds::pds`] writes its entry.
    work: Vec<PdWork<'a>>,
    /// Per PD: its caps by slot, with what put each there (for collision messages), until
    /// [`caps::emit`]; channels give slots to PDs before those PDs are visited.
    caps: Vec<BTreeMap<u64, (Cap, String)>>,
    /// Per PD: the notification bits and the PPC ids it receives, with what uses each.
    notify_bits: Vec<BTreeMap<u8, String>>,
    ppc_ids: Vec<BTreeMap<u8, String>>,
}

/// One PD's part of the plan, gathered pass by pass.
#[derive(Default)]
struct PdWork<'a> {
    /// Index into the images; `None`: missing (reported once, by [`pds::layout`]).
    image: Option<usize>,
    elf: Option<&'a ElfInfo>,
    ipc_buffer: u64,
    totals: Totals,
    /// The PD's own page tables: image, stack, IPC buffer, generation table, maps.
    tables: Tables,
    maps: m::Span,
    vm_maps: m::Span,
    vm_page_tables: u64,
    setvars: m::Span,
    irqs: m::Span,
    vm: Option<u8>,
}

impl<'a> Cx<'a> {
    /// The PDs in plan order with their parents; refuses (alone) more PDs than the plan holds.
    fn new(sd: &'a SystemDescription, images: &'a [ElfInfo]) -> Result<Self, Errors> {
        let all = sd.all_pds();
        if all.len() > m::MAX_PDS {
            return Err(vec![BuildError::Capacity {
                what: "protection domains",
                limit: m::MAX_PDS,
            }]);
        }
        let index: BTreeMap<&str, u8> = all
            .iter()
            .enumerate()
            .map(|(i, pd)| (pd.name.as_str(), i as u8))
            .collect();
        let mut parent = vec![None; all.len()];
        for (i, pd) in all.iter().enumerate() {
            for child in &pd.children {
                parent[index[child.name.as_str()] as usize] = Some(i as u8);
            }
        }
        let n = all.len();
        Ok(Cx {
            sd,
            images,
            all,
            index,
            parent,
            region_index: BTreeMap::new(),
            plan: BootPlan::default(),
            errs: Errors::new(),
            work: (0..n).map(|_| PdWork::default()).collect(),
            caps: vec![BTreeMap::new(); n],
            notify_bits: vec![BTreeMap::new(); n],
            ppc_ids: vec![BTreeMap::new(); n],
        })
    }

    fn finish(self) -> Result<BootPlan, Errors> {
        if self.errs.is_empty() {
            Ok(self.plan)
        } else {
            Err(self.errs)
        }
    }
}
