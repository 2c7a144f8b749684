//! Pass: the `mappings` table, PD by PD: a PD's maps, then its VM's guest-physical maps, with
//! the page tables each needs.

use axolotl_sdf as sdf;

use crate::BuildError;
use crate::model as m;

use super::{Cx, Tables, perms, push, span};

pub(super) fn maps(cx: &mut Cx) {
    for i in 0..cx.all.len() {
        let pd = cx.all[i];
        let mut tables = core::mem::take(&mut cx.work[i].tables);
        cx.work[i].maps = cx.map_all(&pd.maps, &mut tables);
        cx.work[i].tables = tables;
        if let Some(vm) = &pd.virtual_machine {
            let mut vm_tables = Tables::default();
            cx.work[i].vm_maps = cx.map_all(&vm.maps, &mut vm_tables);
            cx.work[i].vm_page_tables = vm_tables.count();
        }
    }
}

impl Cx<'_> {
    /// Appends `maps` (a map of an unknown region is refused and left out) and the page
    /// tables they need to `tables`.
    fn map_all(&mut self, maps: &[sdf::Map], tables: &mut Tables) -> m::Span {
        let start = self.plan.mappings.len() as u16;
        for map in maps {
            let Some(&region) = self.region_index.get(map.mr.as_str()) else {
                self.errs.push(BuildError::Unknown {
                    what: "memory region",
                    name: map.mr.clone(),
                });
                continue;
            };
            let r = &self.sd.memory_regions[region as usize];
            tables.add(map.vaddr, r.size, r.page_size);
            let mapping = m::Mapping {
                region,
                vaddr: map.vaddr,
                perms: perms(map.perms),
                cached: map.cached,
            };
            push(&mut self.plan.mappings, mapping, "mappings", &mut self.errs);
        }
        span(start, self.plan.mappings.len() as u16)
    }
}

#[cfg(test)]
mod tests {
    use std::format;

    use super::super::testing::*;
    use super::super::{pds, regions};
    use super::*;

    const VM: &str = "<virtual_machine name=\"vm\" priority=\"100\"><vcpu id=\"0\" />\
                      <map mr=\"ram\" vaddr=\"0x40000000\" perms=\"rwx\" /></virtual_machine>";

    fn system() -> axolotl_sdf::SystemDescription {
        sd(&format!(
            "{}{}<memory_region name=\"r\" size=\"0x1000\" />\
             <memory_region name=\"ram\" size=\"0x400000\" page_size=\"0x200000\" />",
            pd(
                "a",
                &format!(
                    "<map mr=\"r\" vaddr=\"0x1000000\" perms=\"rw\" cached=\"false\" />\
                     <map mr=\"ram\" vaddr=\"0x40000000\" perms=\"rw\" />{VM}"
                )
            ),
            pd("b", "<map mr=\"r\" vaddr=\"0x1000000\" perms=\"r\" />")
                .replace("priority=\"100\"", "priority=\"101\"")
        ))
    }

    #[test]
    fn a_pd_s_maps_then_its_vm_s_then_the_next_pd_s() {
        let sd = system();
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        regions::regions(&mut cx);
        pds::layout(&mut cx);
        let before = cx.work[0].tables.count();
        maps(&mut cx);
        assert_eq!(cx.errs, []);
        let at = |k: usize| {
            let mp = &cx.plan.mappings[k];
            (mp.region, mp.vaddr, mp.perms.write, mp.cached)
        };
        assert_eq!(cx.plan.mappings.len(), 4);
        assert_eq!(at(0), (0, 0x100_0000, true, false));
        assert_eq!(at(1), (1, 0x4000_0000, true, true));
        assert_eq!(at(2), (1, 0x4000_0000, true, true), "the VM's");
        assert_eq!(at(3), (0, 0x100_0000, false, true), "b's");
        assert_eq!(cx.work[0].maps, m::Span { start: 0, len: 2 });
        assert_eq!(cx.work[0].vm_maps, m::Span { start: 2, len: 1 });
        assert_eq!(cx.work[1].maps, m::Span { start: 3, len: 1 });
        // r adds a level-3 table (GiB 0 has one already); ram a level-2 table for GiB 1 and,
        // in 2 MiB pages, no level-3 table. The VM's stage 2: its own level-2 table.
        assert_eq!(cx.work[0].tables.count(), before + 2);
        assert_eq!(cx.work[0].vm_page_tables, 1);
    }

    #[test]
    fn a_map_of_an_unknown_region_is_refused_and_left_out() {
        let mut sd = system();
        sd.protection_domains[0].maps[0].mr = "nope".into();
        sd.protection_domains[0]
            .virtual_machine
            .as_mut()
            .unwrap()
            .maps[0]
            .mr = "gone".into();
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        regions::regions(&mut cx);
        maps(&mut cx);
        let unknown = |name: &str| BuildError::Unknown {
            what: "memory region",
            name: name.into(),
        };
        assert_eq!(cx.errs, [unknown("nope"), unknown("gone")]);
        assert_eq!(cx.work[0].maps, m::Span { start: 0, len: 1 });
        assert_eq!(cx.work[0].vm_maps, m::Span { start: 1, len: 0 });
        assert_eq!(cx.work[1].maps, m::Span { start: 1, len: 1 });
    }
}
