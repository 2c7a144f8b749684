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
