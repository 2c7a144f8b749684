//! Pass: the `setvars` table, PD by PD: a map's `setvar_vaddr`, then `<setvar region_paddr>`,
//! then the PD's plan index if its image asks for it (`generations::PD_INDEX_SYMBOL`).

use std::string::ToString;

use crate::BuildError;
use crate::generations::PD_INDEX_SYMBOL;
use crate::model as m;

use super::{Cx, push, span};

pub(super) fn setvars(cx: &mut Cx) {
    for i in 0..cx.all.len() {
        let pd = cx.all[i];
        let start = cx.plan.setvars.len() as u16;
        for map in &pd.maps {
            // A map of an unknown region was refused (and left out) by `maps`.
            if !cx.region_index.contains_key(map.mr.as_str()) {
                continue;
            }
            if let Some(sym) = &map.setvar_vaddr {
                cx.setvar(i, sym, m::SetvarValue::Value(map.vaddr));
            }
        }
        for sv in &pd.setvars {
            let Some(&region) = cx.region_index.get(sv.region_paddr.as_str()) else {
                cx.errs.push(BuildError::Unknown {
                    what: "memory region",
                    name: sv.region_paddr.clone(),
                });
                continue;
            };
            // A fixed address is known now; any other once the root task allocates it.
            let value = match cx.sd.memory_regions[region as usize].phys_addr {
                Some(pa) => m::SetvarValue::Value(pa),
                None => m::SetvarValue::RegionPaddr(region),
            };
            cx.setvar(i, &sv.symbol, value);
        }
        // Microkit-style identity patch: the PD runtime's own plan index (+ 1, so an
        // unpatched 0 is told apart), for looking up its channels' peers in the table.
        if let Some((vaddr, size)) = cx.work[i].elf.and_then(|e| e.symbol(PD_INDEX_SYMBOL)) {
            if size == 8 {
                let value = m::SetvarValue::Value(i as u64 + 1);
                push(
                    &mut cx.plan.setvars,
                    m::Setvar { vaddr, value },
                    "setvars",
                    &mut cx.errs,
                );
            } else {
                cx.errs.push(BuildError::SymbolSize {
                    pd: pd.name.clone(),
                    symbol: PD_INDEX_SYMBOL.to_string(),
                    size,
                });
            }
        }
        cx.work[i].setvars = span(start, cx.plan.setvars.len() as u16);
    }
}

impl Cx<'_> {
    /// Patches PD `i`'s 8-byte `symbol` with `value`; without an image (already refused)
    /// there is nothing to patch.
    fn setvar(&mut self, i: usize, symbol: &str, value: m::SetvarValue) {
        let Some(elf) = self.work[i].elf else { return };
        let pd = || self.all[i].name.clone();
        match elf.symbol(symbol) {
            None => self.errs.push(BuildError::MissingSymbol {
                pd: pd(),
                symbol: symbol.to_string(),
            }),
            Some((_, size)) if size != 8 => self.errs.push(BuildError::SymbolSize {
                pd: pd(),
                symbol: symbol.to_string(),
                size,
            }),
            Some((vaddr, _)) => {
                push(
                    &mut self.plan.setvars,
                    m::Setvar { vaddr, value },
                    "setvars",
                    &mut self.errs,
                );
            }
        }
    }
}
