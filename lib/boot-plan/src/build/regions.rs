//! Pass: the memory regions, in SDF order (a region's plan index is its position).

use crate::model::{self as m, Totals};

use super::{Cx, LARGE, push, string};

pub(super) fn regions(cx: &mut Cx) {
    cx.region_index = cx
        .sd
        .memory_regions
        .iter()
        .enumerate()
        .map(|(i, mr)| (mr.name.as_str(), i as u16))
        .collect();
    for mr in &cx.sd.memory_regions {
        let region = m::Region {
            name: string(&mr.name, "name bytes", &mut cx.errs),
            size: mr.size,
            page_size: mr.page_size,
            phys_addr: mr.phys_addr,
            prefill: mr.prefill.as_ref().map_or(0, |p| p.len),
        };
        push(&mut cx.plan.regions, region, "memory regions", &mut cx.errs);
    }
}

/// The frames the root task allocates for regions without a fixed address: once for the
/// system, however many PDs map them.
pub(super) fn frames(regions: &[m::Region]) -> Totals {
    let mut t = Totals::default();
    for r in regions.iter().filter(|r| r.phys_addr.is_none()) {
        if r.page_size == LARGE {
            t.large_frames = t.large_frames.saturating_add(r.pages());
        } else {
            t.small_frames = t.small_frames.saturating_add(r.pages());
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use std::format;
    use std::vec::Vec;

    use super::super::testing::*;
    use super::*;
    use crate::BuildError;

    #[test]
    fn regions_keep_sdf_order_and_index_by_name() {
        let sd = sd(&format!(
            "{}
            <memory_region name=\"b\" size=\"0x2000\" />
            <memory_region name=\"a\" size=\"0x400000\" page_size=\"0x200000\" />
            <memory_region name=\"dev\" size=\"0x1000\" phys_addr=\"0x9040000\" />",
            one_pd()
        ));
        let images = [image("a.elf")];
        let mut cx = cx(&sd, &images);
        regions(&mut cx);
        assert_eq!(cx.errs, []);
        let names: Vec<&str> = cx.plan.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "dev"]);
        assert_eq!(cx.region_index["a"], 1);
        assert_eq!(cx.plan.regions[2].phys_addr, Some(0x9040000));
        // The device region is not allocated: only b's 2 pages and a's 2 large pages count.
        let t = frames(&cx.plan.regions);
        assert_eq!((t.small_frames, t.large_frames), (2, 2));
    }

    #[test]
    fn a_long_region_name_is_refused_and_the_region_kept() {
        let mut sd = sd(&format!(
            "{}<memory_region name=\"r\" size=\"0x1000\" />",
            one_pd()
        ));
        sd.memory_regions[0].name = "r".repeat(65);
        let images = [image("a.elf")];
        let mut cx = cx(&sd, &images);
        regions(&mut cx);
        assert_eq!(
            cx.errs,
            [BuildError::Capacity {
                what: "name bytes",
                limit: 64
            }]
        );
        // Kept (nameless), so later indices do not move.
        assert_eq!(cx.plan.regions.len(), 1);
    }

    #[test]
    fn too_many_regions_are_refused_once() {
        let mut sd = sd(&one_pd());
        let r = |i: usize| axolotl_sdf::MemoryRegion {
            name: format!("r{i}"),
            size: 0x1000,
            page_size: 0x1000,
            phys_addr: None,
            prefill: None,
            span: Default::default(),
        };
        sd.memory_regions = (0..m::MAX_REGIONS + 2).map(r).collect();
        let images = [image("a.elf")];
        let mut cx = cx(&sd, &images);
        regions(&mut cx);
        assert_eq!(
            cx.errs,
            [BuildError::Capacity {
                what: "memory regions",
                limit: m::MAX_REGIONS
            }]
        );
    }
}
