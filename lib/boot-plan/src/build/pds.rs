//! Passes: each PD's own address-space layout ([`layout`]: image, stack, IPC buffer, the
//! generation table), and last its plan entry ([`pds`]: `depends_on`, resilience, totals).

use axolotl_sdf as sdf;

use crate::BuildError;
use crate::generations::{GENERATION_TABLE_BYTES, GENERATION_TABLE_VADDR, overlaps_table};
use crate::model::{self as m, Totals};

use super::{
    Cx, DEFAULT_IPC_BUFFER, IPC_BUFFER_SYMBOL, PAGE, image_pages, push, regions, span, string,
};

/// Finds each PD's image and counts what the root task maps besides the SDF's maps; refuses a
/// missing image, an image over a map or the stack, and an IPC buffer or generation table page
/// under a map, the image or the stack.
pub(super) fn layout(cx: &mut Cx) {
    let (sd, images) = (cx.sd, cx.images);
    for (i, pd) in cx.all.iter().enumerate() {
        let w = &mut cx.work[i];
        w.totals = Totals {
            vspaces: 1,
            tcbs: 1,
            endpoints: 1,
            notifications: 1,
            cnodes: 1,
            ..Totals::default()
        };

        w.image = images.iter().position(|e| e.path == pd.program_image.path);
        w.elf = w.image.map(|k| &images[k]);
        let elf = w.elf;
        match elf {
            None => cx.errs.push(BuildError::MissingImage {
                pd: pd.name.clone(),
                path: pd.program_image.path.clone(),
            }),
            Some(elf) => {
                let segs: std::vec::Vec<(u64, u64)> =
                    elf.segments.iter().map(|s| (s.vaddr, s.memsz)).collect();
                cx.errs.extend(
                    sdf::check_image_overlaps(sd, &pd.name, &segs)
                        .into_iter()
                        .map(BuildError::Sdf),
                );
                w.totals.small_frames += image_pages(elf);
                for s in elf.segments.iter().filter(|s| s.memsz > 0) {
                    w.tables.add(s.vaddr, s.memsz, PAGE);
                }
            }
        }
        w.totals.small_frames = w.totals.small_frames.saturating_add(pd.stack_size / PAGE);
        w.tables.add(pd.stack_bottom(), pd.stack_size, PAGE);

        // Whether a map, the image or the stack covers any of the page `hits` tests for.
        let under = |hits: &dyn Fn(u64, u64) -> bool| {
            let over_map = pd.maps.iter().any(|mp| {
                sd.memory_region(&mp.mr)
                    .is_some_and(|mr| hits(mp.vaddr, mr.size))
            });
            let over_elf = elf.is_some_and(|e| e.segments.iter().any(|s| hits(s.vaddr, s.memsz)));
            over_map || over_elf || hits(pd.stack_bottom(), pd.stack_size)
        };

        w.ipc_buffer = match elf.and_then(|e| e.symbol(IPC_BUFFER_SYMBOL)) {
            Some((vaddr, _)) => vaddr,
            None => {
                w.totals.small_frames += 1;
                w.tables.add(DEFAULT_IPC_BUFFER, PAGE, PAGE);
                let hits = |v: u64, len: u64| {
                    v < DEFAULT_IPC_BUFFER + PAGE && DEFAULT_IPC_BUFFER < v.saturating_add(len)
                };
                if under(&hits) {
                    cx.errs.push(BuildError::IpcBufferOverlap {
                        pd: pd.name.clone(),
                        vaddr: DEFAULT_IPC_BUFFER,
                    });
                }
                DEFAULT_IPC_BUFFER
            }
        };

        // The root task's generation table, read-only in every PD (`generations`).
        w.tables
            .add(GENERATION_TABLE_VADDR, GENERATION_TABLE_BYTES, PAGE);
        if under(&overlaps_table) {
            cx.errs.push(BuildError::GenerationTableOverlap {
                pd: pd.name.clone(),
                vaddr: GENERATION_TABLE_VADDR,
            });
        }
    }
}

/// Writes each PD's entry from what the earlier passes found, its `depends_on` and the
/// plan's totals (the PDs', then regions' frames and the generation table's one frame).
pub(super) fn pds(cx: &mut Cx) {
    for (i, pd) in cx.all.iter().enumerate() {
        let w = &mut cx.work[i];
        w.totals.page_tables += w.tables.count();

        let depends_start = cx.plan.depends.len() as u16;
        for dep in &pd.resilience.depends_on {
            match cx.index.get(dep.as_str()) {
                Some(&d) => {
                    push(&mut cx.plan.depends, d, "depends_on entries", &mut cx.errs);
                }
                None => cx.errs.push(BuildError::Unknown {
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
            depends_on: span(depends_start, cx.plan.depends.len() as u16),
            standby: r.standby,
        };

        cx.plan.totals.add(&w.totals);
        let p = m::Pd {
            name: string(&pd.name, "name bytes", &mut cx.errs),
            parent: cx.parent[i],
            child_id: pd.id,
            priority: pd.priority,
            budget_us: pd.budget,
            period_us: pd.period,
            passive: pd.passive,
            cpu: pd.cpu,
            fpu: pd.fpu,
            smc: pd.smc,
            stack_size: pd.stack_size,
            image: w.image.unwrap_or(0) as u8,
            entry: w.elf.map_or(0, |e| e.entry),
            ipc_buffer: w.ipc_buffer,
            mappings: w.maps,
            // `caps::emit` fills it in once every pass has given out slots.
            caps: m::Span::default(),
            irqs: w.irqs,
            setvars: w.setvars,
            vm: w.vm,
            resilience,
            totals: w.totals,
        };
        push(&mut cx.plan.pds, p, "protection domains", &mut cx.errs);
    }
    cx.plan.totals.add(&regions::frames(&cx.plan.regions));
    // The generation table's frame, one for the whole system.
    cx.plan.totals.small_frames += 1;
}
