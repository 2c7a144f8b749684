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
            domain: cx.sd.domain_of(pd),
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
            name_at: w
                .elf
                .and_then(|e| e.symbol(m::NAME_SYMBOL))
                .filter(|&(_, size)| size > 0)
                .map(|(vaddr, size)| (vaddr, size.min(m::MAX_NAME as u64) as u16)),
            vm: w.vm,
            resilience,
            totals: w.totals,
            control: {
                let g = pd.control;
                (g.status as u8 * m::CONTROL_STATUS)
                    | (g.manage as u8 * m::CONTROL_MANAGE)
                    | (g.vm as u8 * m::CONTROL_VM)
                    | (g.inject as u8 * m::CONTROL_INJECT)
            },
        };
        push(&mut cx.plan.pds, p, "protection domains", &mut cx.errs);
    }
    cx.plan.totals.add(&regions::frames(&cx.plan.regions));
    // The generation table's frame, one for the whole system.
    cx.plan.totals.small_frames += 1;
}

#[cfg(test)]
mod tests {
    use std::format;

    use super::super::testing::*;
    use super::super::{maps, setvars};
    use super::*;

    /// Issue #17: the SDF's `control` grant reaches the plan as `CONTROL_*` bits.
    #[test]
    fn control_grants_become_bits() {
        let sd = sd(&format!(
            "{}{}",
            pd("a", "").replace("priority", "control=\"status inject\" priority"),
            pd("b", "")
        ));
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        layout(&mut cx);
        pds(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(
            cx.plan.pds[0].control,
            m::CONTROL_STATUS | m::CONTROL_INJECT
        );
        assert_eq!(cx.plan.pds[1].control, 0);
    }

    #[test]
    fn layout_counts_image_stack_ipc_buffer_and_generation_table() {
        let sd = sd(&pd("a", "").replace("priority", "stack_size=\"0x2000\" priority"));
        let elfs = [image("a.elf")];
        let mut cx = cx(&sd, &elfs);
        layout(&mut cx);
        assert_eq!(cx.errs, []);
        let w = &cx.work[0];
        assert_eq!((w.image, w.ipc_buffer), (Some(0), DEFAULT_IPC_BUFFER));
        // Image 2 + 2 pages, stack 2, own IPC buffer frame 1.
        assert_eq!(w.totals.small_frames, 7);
        // Level 2: GiB 0 (image) and 3 (the rest); level 3: the 2 MiB blocks of the image
        // (both segments in one), of the table and IPC buffer (0xe000_0000), of the stack
        // (under 4 GiB).
        assert_eq!(w.tables.count(), 2 + 3);
    }

    #[test]
    fn the_ipc_buffer_in_the_image_takes_no_frame_of_its_own() {
        let sd = sd(&one_pd());
        let elfs = [image_with(
            "a.elf",
            &[(IPC_BUFFER_SYMBOL, 0x30_1000, 0x1000)],
        )];
        let mut cx = cx(&sd, &elfs);
        layout(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(cx.work[0].ipc_buffer, 0x30_1000);
        assert_eq!(
            cx.work[0].totals.small_frames,
            4 + sd.protection_domains[0].stack_size / PAGE
        );
    }

    #[test]
    fn layout_refuses_a_missing_image_and_pages_under_maps() {
        let sd = sd(&format!(
            "{}{}<memory_region name=\"r\" size=\"0x2000\" />",
            pd("a", ""),
            pd("b", "<map mr=\"r\" vaddr=\"0xdffff000\" perms=\"rw\" />")
        ));
        let mut sd = sd;
        // Over the generation table's page (0xe000_0000) and the IPC buffer's (0xe000_1000).
        sd.protection_domains[1].maps[0].vaddr = 0xe000_0000;
        let elfs = [image("b.elf")];
        let mut cx = cx(&sd, &elfs);
        layout(&mut cx);
        assert_eq!(
            cx.errs,
            [
                BuildError::MissingImage {
                    pd: "a".into(),
                    path: "a.elf".into()
                },
                BuildError::IpcBufferOverlap {
                    pd: "b".into(),
                    vaddr: DEFAULT_IPC_BUFFER
                },
                BuildError::GenerationTableOverlap {
                    pd: "b".into(),
                    vaddr: GENERATION_TABLE_VADDR
                },
            ]
        );
        assert_eq!(cx.work[0].image, None);
    }

    #[test]
    fn layout_refuses_a_map_over_the_image_at_the_map() {
        let sd = sd(&format!(
            "{}<memory_region name=\"r\" size=\"0x1000\" />",
            pd("a", "<map mr=\"r\" vaddr=\"0x1000000\" perms=\"rw\" />")
        ));
        let mut sd = sd;
        sd.protection_domains[0].maps[0].vaddr = 0x30_1000;
        let elfs = [image("a.elf")];
        let mut cx = cx(&sd, &elfs);
        layout(&mut cx);
        assert_eq!(cx.errs.len(), 1, "{:?}", cx.errs);
        let BuildError::Sdf(d) = &cx.errs[0] else {
            panic!("{:?}", cx.errs)
        };
        // At the map: line 2 (after `<system>`), past the PD's program image.
        assert_eq!((d.rule, d.line), ("image-overlap", 2), "{d}");
    }

    #[test]
    fn pds_writes_each_entry_from_the_earlier_passes() {
        let sd = sd(&format!(
            "{}{}<memory_region name=\"r\" size=\"0x1000\" />",
            pd(
                "a",
                "<map mr=\"r\" vaddr=\"0x1000000\" perms=\"rw\" setvar_vaddr=\"v\" />"
            ),
            pd("b", "").replace("priority", "depends_on=\"a\" priority")
        ));
        let elfs = [image_with("a.elf", &[("v", 0x30_0000, 8)]), image("b.elf")];
        let mut cx = cx(&sd, &elfs);
        super::super::regions::regions(&mut cx);
        layout(&mut cx);
        maps::maps(&mut cx);
        setvars::setvars(&mut cx);
        pds(&mut cx);
        assert_eq!(cx.errs, []);
        let (a, b) = (&cx.plan.pds[0], &cx.plan.pds[1]);
        assert_eq!((a.name.as_str(), a.image, b.image), ("a", 0, 1));
        assert_eq!(a.mappings, m::Span { start: 0, len: 1 });
        assert_eq!(a.setvars, m::Span { start: 0, len: 1 });
        assert_eq!(b.resilience.depends_on, m::Span { start: 0, len: 1 });
        assert_eq!(cx.plan.depends[0], 0);
        // The PDs', the region's frame and the generation table's.
        let pds_frames = a.totals.small_frames + b.totals.small_frames;
        assert_eq!(cx.plan.totals.small_frames, pds_frames + 1 + 1);
        assert_eq!(cx.plan.totals.tcbs, 2);
    }

    #[test]
    fn pds_refuses_an_unknown_dependency_and_a_long_name() {
        let mut sd = sd(&one_pd());
        sd.protection_domains[0].resilience.depends_on = std::vec!["nobody".into()];
        sd.protection_domains[0].name = "n".repeat(65);
        let elfs = [image("a.elf")];
        let mut cx = cx(&sd, &elfs);
        layout(&mut cx);
        pds(&mut cx);
        assert_eq!(
            cx.errs,
            [
                BuildError::Unknown {
                    what: "protection domain",
                    name: "nobody".into()
                },
                BuildError::Capacity {
                    what: "name bytes",
                    limit: m::MAX_NAME
                }
            ]
        );
        assert_eq!(cx.plan.pds[0].resilience.depends_on.len, 0);
    }
}
