//! SDF + program images -> plan. Every problem is collected; a plan is returned only without any.

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use axolotl_sdf as sdf;
use axolotl_sdf::SystemDescription;

use crate::cspace::*;
use crate::generations::{GENERATION_TABLE_BYTES, GENERATION_TABLE_VADDR, PD_INDEX_SYMBOL};
use crate::model::{self as m, BootPlan, Cap, CapSlot, Totals};
use crate::{BuildError, ElfInfo};

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
    let mut errs = Errors::new();
    let mut plan = BootPlan::default();

    // PDs in `all_pds` order, with their parent's index.
    let all = sd.all_pds();
    let index: BTreeMap<&str, u8> = all
        .iter()
        .enumerate()
        .map(|(i, pd)| (pd.name.as_str(), i as u8))
        .collect();
    if all.len() > m::MAX_PDS {
        errs.push(BuildError::Capacity {
            what: "protection domains",
            limit: m::MAX_PDS,
        });
        return Err(errs);
    }
    let mut parent = vec![None; all.len()];
    for (i, pd) in all.iter().enumerate() {
        for child in &pd.children {
            parent[index[child.name.as_str()] as usize] = Some(i as u8);
        }
    }

    let region_index: BTreeMap<&str, u16> = sd
        .memory_regions
        .iter()
        .enumerate()
        .map(|(i, mr)| (mr.name.as_str(), i as u16))
        .collect();
    for mr in &sd.memory_regions {
        let region = m::Region {
            name: string(&mr.name, "name bytes", &mut errs),
            size: mr.size,
            page_size: mr.page_size,
            phys_addr: mr.phys_addr,
        };
        push(&mut plan.regions, region, "memory regions", &mut errs);
    }

    for elf in images {
        let start = plan.segments.len() as u16;
        for s in &elf.segments {
            let seg = m::Segment {
                vaddr: s.vaddr,
                memsz: s.memsz,
                filesz: s.filesz,
                offset: s.offset,
                perms: s.perms,
            };
            push(&mut plan.segments, seg, "segments", &mut errs);
        }
        let image = m::Image {
            name: string(&elf.path, "path bytes", &mut errs),
            entry: elf.entry,
            segments: span(start, plan.segments.len() as u16),
        };
        push(&mut plan.images, image, "program images", &mut errs);
    }

    // Badge bits each PD's notification receives, and PPC ids its endpoint receives.
    let mut notify_bits: Vec<BTreeMap<u8, String>> = vec![BTreeMap::new(); all.len()];
    let mut ppc_ids: Vec<BTreeMap<u8, String>> = vec![BTreeMap::new(); all.len()];
    let badge = |table: &mut Vec<BTreeMap<u8, String>>,
                 pd: u8,
                 id: u8,
                 what: String,
                 ppc: bool,
                 errs: &mut Errors| {
        let name = all[pd as usize].name.clone();
        if id as u64 > sdf::MAX_ID {
            let b = if ppc {
                ppc_badge(id)
            } else {
                1u64.checked_shl(id as u32).unwrap_or(0)
            };
            errs.push(BuildError::BadgeCollision {
                pd: name,
                badge: b,
                what: format!(
                    "{what} uses an id above {}, reserved for the PPC/fault flags",
                    sdf::MAX_ID
                ),
            });
        } else if let Some(prev) = table[pd as usize].insert(id, what.clone()) {
            let b = if ppc {
                ppc_badge(id)
            } else {
                notification_badge(id)
            };
            errs.push(BuildError::BadgeCollision {
                pd: name,
                badge: b,
                what: format!("{prev} and {what}"),
            });
        }
    };

    let mut pd_caps: Vec<BTreeMap<u64, (Cap, String)>> = vec![BTreeMap::new(); all.len()];
    let mut put = |pd: usize, slot: u64, cap: Cap, what: String, errs: &mut Errors| {
        if let Some((_, prev)) = pd_caps[pd].insert(slot, (cap, what.clone())) {
            errs.push(BuildError::SlotCollision {
                pd: all[pd].name.clone(),
                slot,
                what: format!("{prev} and {what}"),
            });
        }
    };

    for (c, ch) in sd.channels.iter().enumerate() {
        let mut ends = [m::ChannelEnd {
            pd: 0,
            id: 0,
            pp: false,
            notify: false,
        }; 2];
        let mut ok = true;
        for (k, e) in ch.ends.iter().enumerate() {
            match index.get(e.pd.as_str()) {
                Some(&pd) => {
                    ends[k] = m::ChannelEnd {
                        pd,
                        id: e.id,
                        pp: e.pp,
                        notify: e.notify,
                    }
                }
                None => {
                    errs.push(BuildError::Unknown {
                        what: "protection domain",
                        name: e.pd.clone(),
                    });
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        for k in 0..2 {
            let (me, peer) = (ends[k], ends[1 - k]);
            let what = format!(
                "channel {c} ({}:{} -> {}:{})",
                all[me.pd as usize].name, me.id, all[peer.pd as usize].name, peer.id
            );
            if me.notify {
                badge(
                    &mut notify_bits,
                    peer.pd,
                    peer.id,
                    what.clone(),
                    false,
                    &mut errs,
                );
                let cap = Cap::Notification {
                    pd: peer.pd,
                    badge: notification_badge(peer.id),
                };
                put(
                    me.pd as usize,
                    notification_slot(me.id),
                    cap,
                    what.clone(),
                    &mut errs,
                );
            }
            if me.pp {
                badge(
                    &mut ppc_ids,
                    peer.pd,
                    peer.id,
                    what.clone(),
                    true,
                    &mut errs,
                );
                let cap = Cap::PpcEndpoint {
                    pd: peer.pd,
                    badge: ppc_badge(peer.id),
                };
                put(me.pd as usize, endpoint_slot(me.id), cap, what, &mut errs);
            }
        }
        push(
            &mut plan.channels,
            m::Channel { ends },
            "channels",
            &mut errs,
        );
    }

    let mut region_frames = Totals::default();
    for r in &plan.regions {
        if r.phys_addr.is_none() {
            if r.page_size == LARGE {
                region_frames.large_frames = region_frames.large_frames.saturating_add(r.pages());
            } else {
                region_frames.small_frames = region_frames.small_frames.saturating_add(r.pages());
            }
        }
    }

    for (i, pd) in all.iter().enumerate() {
        let name = pd.name.clone();
        let mut totals = Totals {
            vspaces: 1,
            tcbs: 1,
            endpoints: 1,
            notifications: 1,
            cnodes: 1,
            ..Totals::default()
        };
        let mut tables = Tables::default();

        let image = images.iter().position(|e| e.path == pd.program_image.path);
        let elf = match image {
            Some(k) => Some(&images[k]),
            None => {
                errs.push(BuildError::MissingImage {
                    pd: name.clone(),
                    path: pd.program_image.path.clone(),
                });
                None
            }
        };
        if let Some(elf) = elf {
            let segs: Vec<(u64, u64)> = elf.segments.iter().map(|s| (s.vaddr, s.memsz)).collect();
            errs.extend(
                sdf::check_image_overlaps(sd, &pd.name, &segs)
                    .into_iter()
                    .map(BuildError::Sdf),
            );
            totals.small_frames += image_pages(elf);
            for s in elf.segments.iter().filter(|s| s.memsz > 0) {
                tables.add(s.vaddr, s.memsz, PAGE);
            }
        }
        totals.small_frames = totals.small_frames.saturating_add(pd.stack_size / PAGE);
        tables.add(pd.stack_bottom(), pd.stack_size, PAGE);

        let ipc_buffer = match elf.and_then(|e| e.symbol(IPC_BUFFER_SYMBOL)) {
            Some((vaddr, _)) => vaddr,
            None => {
                totals.small_frames += 1;
                tables.add(DEFAULT_IPC_BUFFER, PAGE, PAGE);
                let hits = |v: u64, len: u64| {
                    v < DEFAULT_IPC_BUFFER + PAGE && DEFAULT_IPC_BUFFER < v.saturating_add(len)
                };
                let over_map = pd.maps.iter().any(|mp| {
                    sd.memory_region(&mp.mr)
                        .is_some_and(|mr| hits(mp.vaddr, mr.size))
                });
                let over_elf =
                    elf.is_some_and(|e| e.segments.iter().any(|s| hits(s.vaddr, s.memsz)));
                if over_map || over_elf || hits(pd.stack_bottom(), pd.stack_size) {
                    errs.push(BuildError::IpcBufferOverlap {
                        pd: name.clone(),
                        vaddr: DEFAULT_IPC_BUFFER,
                    });
                }
                DEFAULT_IPC_BUFFER
            }
        };

        // The root task's generation table, read-only in every PD (`generations`).
        tables.add(GENERATION_TABLE_VADDR, GENERATION_TABLE_BYTES, PAGE);
        {
            let hits = crate::generations::overlaps_table;
            let over_map = pd.maps.iter().any(|mp| {
                sd.memory_region(&mp.mr)
                    .is_some_and(|mr| hits(mp.vaddr, mr.size))
            });
            let over_elf = elf.is_some_and(|e| e.segments.iter().any(|s| hits(s.vaddr, s.memsz)));
            if over_map || over_elf || hits(pd.stack_bottom(), pd.stack_size) {
                errs.push(BuildError::GenerationTableOverlap {
                    pd: name.clone(),
                    vaddr: GENERATION_TABLE_VADDR,
                });
            }
        }

        let maps_start = plan.mappings.len() as u16;
        let setvars_start = plan.setvars.len() as u16;
        let setvar =
            |plan: &mut BootPlan, symbol: &str, value: m::SetvarValue, errs: &mut Errors| {
                let Some(elf) = elf else { return };
                match elf.symbol(symbol) {
                    None => errs.push(BuildError::MissingSymbol {
                        pd: name.clone(),
                        symbol: symbol.to_string(),
                    }),
                    Some((_, size)) if size != 8 => errs.push(BuildError::SymbolSize {
                        pd: name.clone(),
                        symbol: symbol.to_string(),
                        size,
                    }),
                    Some((vaddr, _)) => {
                        push(
                            &mut plan.setvars,
                            m::Setvar { vaddr, value },
                            "setvars",
                            errs,
                        );
                    }
                }
            };
        for map in &pd.maps {
            let Some(&region) = region_index.get(map.mr.as_str()) else {
                errs.push(BuildError::Unknown {
                    what: "memory region",
                    name: map.mr.clone(),
                });
                continue;
            };
            let r = &sd.memory_regions[region as usize];
            tables.add(map.vaddr, r.size, r.page_size);
            let mapping = m::Mapping {
                region,
                vaddr: map.vaddr,
                perms: perms(map.perms),
                cached: map.cached,
            };
            push(&mut plan.mappings, mapping, "mappings", &mut errs);
            if let Some(sym) = &map.setvar_vaddr {
                setvar(&mut plan, sym, m::SetvarValue::Value(map.vaddr), &mut errs);
            }
        }
        let maps_end = plan.mappings.len() as u16;
        for sv in &pd.setvars {
            let Some(&region) = region_index.get(sv.region_paddr.as_str()) else {
                errs.push(BuildError::Unknown {
                    what: "memory region",
                    name: sv.region_paddr.clone(),
                });
                continue;
            };
            let value = match sd.memory_regions[region as usize].phys_addr {
                Some(pa) => m::SetvarValue::Value(pa),
                None => m::SetvarValue::RegionPaddr(region),
            };
            setvar(&mut plan, &sv.symbol, value, &mut errs);
        }
        // Microkit-style identity patch: the PD runtime's own plan index (+ 1, so an
        // unpatched 0 is told apart), for looking up its channels' peers in the table.
        if let Some((vaddr, size)) = elf.and_then(|e| e.symbol(PD_INDEX_SYMBOL)) {
            if size == 8 {
                let value = m::SetvarValue::Value(i as u64 + 1);
                push(
                    &mut plan.setvars,
                    m::Setvar { vaddr, value },
                    "setvars",
                    &mut errs,
                );
            } else {
                errs.push(BuildError::SymbolSize {
                    pd: name.clone(),
                    symbol: PD_INDEX_SYMBOL.to_string(),
                    size,
                });
            }
        }
        let setvars_end = plan.setvars.len() as u16;

        put(
            i,
            INPUT_CAP,
            Cap::InputEndpoint,
            "input endpoint".into(),
            &mut errs,
        );
        put(i, REPLY_CAP, Cap::Reply, "reply".into(), &mut errs);
        put(
            i,
            VSPACE_CAP,
            Cap::OwnVSpace,
            "own VSpace".into(),
            &mut errs,
        );
        if pd.cnode_cap {
            put(
                i,
                OWN_CNODE_CAP,
                Cap::OwnCNode,
                "own CNode".into(),
                &mut errs,
            );
        }
        let fault = match (parent[i], pd.id) {
            (Some(p), Some(id)) => Cap::FaultEndpoint {
                parent: Some(p),
                badge: child_fault_badge(id),
            },
            _ => Cap::FaultEndpoint {
                parent: None,
                badge: monitor_fault_badge(i as u8),
            },
        };
        put(i, MONITOR_EP, fault, "fault endpoint".into(), &mut errs);

        let irqs_start = plan.irqs.len() as u16;
        for irq in &pd.irqs {
            let trigger = match irq.trigger {
                sdf::Trigger::Level => m::Trigger::Level,
                sdf::Trigger::Edge => m::Trigger::Edge,
            };
            let k = push(
                &mut plan.irqs,
                m::Irq {
                    irq: irq.irq,
                    trigger,
                    id: irq.id,
                },
                "IRQs",
                &mut errs,
            );
            let what = format!("IRQ {}", irq.irq);
            badge(
                &mut notify_bits,
                i as u8,
                irq.id,
                what.clone(),
                false,
                &mut errs,
            );
            put(
                i,
                irq_slot(irq.id),
                Cap::IrqHandler { irq: k },
                what,
                &mut errs,
            );
        }
        let irqs_end = plan.irqs.len() as u16;

        for child in &pd.children {
            let c = index[child.name.as_str()];
            match child.id {
                Some(id) => put(
                    i,
                    child_tcb_slot(id),
                    Cap::ChildTcb { pd: c },
                    format!("child `{}`", child.name),
                    &mut errs,
                ),
                None => errs.push(BuildError::Unknown {
                    what: "child id",
                    name: child.name.clone(),
                }),
            }
        }

        let mut vm_index = None;
        if let Some(vm) = &pd.virtual_machine {
            let mut vm_tables = Tables::default();
            let vm_maps_start = plan.mappings.len() as u16;
            for map in &vm.maps {
                let Some(&region) = region_index.get(map.mr.as_str()) else {
                    errs.push(BuildError::Unknown {
                        what: "memory region",
                        name: map.mr.clone(),
                    });
                    continue;
                };
                let r = &sd.memory_regions[region as usize];
                vm_tables.add(map.vaddr, r.size, r.page_size);
                let mapping = m::Mapping {
                    region,
                    vaddr: map.vaddr,
                    perms: perms(map.perms),
                    cached: map.cached,
                };
                push(&mut plan.mappings, mapping, "mappings", &mut errs);
            }
            let vm_maps = span(vm_maps_start, plan.mappings.len() as u16);
            let vcpus_start = plan.vcpus.len() as u16;
            for v in &vm.vcpus {
                let k = push(
                    &mut plan.vcpus,
                    m::Vcpu {
                        id: v.id,
                        cpu: v.cpu,
                    },
                    "vCPUs",
                    &mut errs,
                ) as u8;
                put(
                    i,
                    vm_tcb_slot(v.id),
                    Cap::VmTcb { vcpu: k },
                    format!("vCPU {} TCB", v.id),
                    &mut errs,
                );
                put(
                    i,
                    vcpu_slot(v.id),
                    Cap::Vcpu { vcpu: k },
                    format!("vCPU {}", v.id),
                    &mut errs,
                );
            }
            totals.vspaces += 1;
            totals.tcbs += vm.vcpus.len() as u64;
            totals.vcpus += vm.vcpus.len() as u64;
            totals.page_tables += vm_tables.count();
            let v = m::Vm {
                name: string(&vm.name, "name bytes", &mut errs),
                priority: vm.priority,
                budget_us: vm.budget,
                period_us: vm.period,
                mappings: vm_maps,
                vcpus: span(vcpus_start, plan.vcpus.len() as u16),
            };
            vm_index = Some(push(&mut plan.vms, v, "virtual machines", &mut errs) as u8);
        }
        totals.page_tables += tables.count();

        let depends_start = plan.depends.len() as u16;
        for dep in &pd.resilience.depends_on {
            match index.get(dep.as_str()) {
                Some(&d) => {
                    push(&mut plan.depends, d, "depends_on entries", &mut errs);
                }
                None => errs.push(BuildError::Unknown {
                    what: "protection domain",
                    name: dep.clone(),
                }),
            }
        }
        let r = &pd.resilience;
        let resilience = m::Resilience {
            restart: match r.restart {
                sdf::RestartPolicy::Never => m::RestartPolicy::Never,
                sdf::RestartPolicy::OnFailure => m::RestartPolicy::OnFailure,
                sdf::RestartPolicy::Always => m::RestartPolicy::Always,
            },
            restart_limit: r.restart_limit,
            restart_window_ms: r.restart_window_ms,
            restart_backoff_ms: r.restart_backoff_ms,
            restart_backoff_max_ms: r.restart_backoff_max_ms,
            heartbeat_ms: r.heartbeat_ms,
            depends_on: span(depends_start, plan.depends.len() as u16),
            standby: r.standby,
        };

        plan.totals.add(&totals);
        let p = m::Pd {
            name: string(&pd.name, "name bytes", &mut errs),
            parent: parent[i],
            child_id: pd.id,
            priority: pd.priority,
            budget_us: pd.budget,
            period_us: pd.period,
            passive: pd.passive,
            cpu: pd.cpu,
            fpu: pd.fpu,
            smc: pd.smc,
            stack_size: pd.stack_size,
            image: image.unwrap_or(0) as u8,
            entry: elf.map_or(0, |e| e.entry),
            ipc_buffer,
            mappings: span(maps_start, maps_end),
            caps: m::Span::default(),
            irqs: span(irqs_start, irqs_end),
            setvars: span(setvars_start, setvars_end),
            vm: vm_index,
            resilience,
            totals,
        };
        push(&mut plan.pds, p, "protection domains", &mut errs);
    }
    plan.totals.add(&region_frames);
    // The generation table's frame, one for the whole system.
    plan.totals.small_frames += 1;

    // Caps last: channels give slots to PDs before those PDs are visited.
    for (i, caps) in pd_caps.iter().enumerate() {
        let start = plan.caps.len() as u16;
        for (&slot, &(cap, _)) in caps {
            push(
                &mut plan.caps,
                CapSlot {
                    slot: slot as u16,
                    cap,
                },
                "capabilities",
                &mut errs,
            );
        }
        if let Some(pd) = plan.pds.get_mut(i) {
            pd.caps = span(start, plan.caps.len() as u16);
        }
    }

    if errs.is_empty() { Ok(plan) } else { Err(errs) }
}
