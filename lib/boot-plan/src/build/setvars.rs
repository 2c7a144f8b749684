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

#[cfg(test)]
mod tests {
    use std::format;

    use super::super::testing::*;
    use super::super::{pds, regions};
    use super::*;

    fn system() -> axolotl_sdf::SystemDescription {
        sd(&format!(
            "{}<memory_region name=\"r\" size=\"0x1000\" />\
             <memory_region name=\"dev\" size=\"0x1000\" phys_addr=\"0x9040000\" />",
            pd(
                "a",
                "<map mr=\"r\" vaddr=\"0x1000000\" perms=\"rw\" setvar_vaddr=\"r_vaddr\" />\
                 <setvar symbol=\"dev_paddr\" region_paddr=\"dev\" />\
                 <setvar symbol=\"r_paddr\" region_paddr=\"r\" />"
            )
        ))
    }

    fn run<'a>(sd: &'a axolotl_sdf::SystemDescription, elfs: &'a [crate::ElfInfo]) -> Cx<'a> {
        let mut cx = cx(sd, elfs);
        regions::regions(&mut cx);
        pds::layout(&mut cx);
        setvars(&mut cx);
        cx
    }

    #[test]
    fn map_then_region_then_index_setvars() {
        let sd = system();
        let elfs = [image_with(
            "a.elf",
            &[
                ("r_vaddr", 0x30_0000, 8),
                ("dev_paddr", 0x30_0008, 8),
                ("r_paddr", 0x30_0010, 8),
                (PD_INDEX_SYMBOL, 0x30_0018, 8),
            ],
        )];
        let cx = run(&sd, &elfs);
        assert_eq!(cx.errs, []);
        let got: std::vec::Vec<_> = cx.plan.setvars.iter().map(|s| (s.vaddr, s.value)).collect();
        assert_eq!(
            got,
            [
                (0x30_0000, m::SetvarValue::Value(0x100_0000)),
                (0x30_0008, m::SetvarValue::Value(0x904_0000)),
                (0x30_0010, m::SetvarValue::RegionPaddr(0)),
                (0x30_0018, m::SetvarValue::Value(1)),
            ]
        );
        assert_eq!(cx.work[0].setvars, m::Span { start: 0, len: 4 });
    }

    #[test]
    fn missing_and_wrong_sized_symbols_are_refused() {
        let sd = system();
        let elfs = [image_with(
            "a.elf",
            &[("dev_paddr", 0x30_0008, 4), (PD_INDEX_SYMBOL, 0x30_0018, 2)],
        )];
        let cx = run(&sd, &elfs);
        let size = |symbol: &str, size| BuildError::SymbolSize {
            pd: "a".into(),
            symbol: symbol.into(),
            size,
        };
        let missing = |symbol: &str| BuildError::MissingSymbol {
            pd: "a".into(),
            symbol: symbol.into(),
        };
        assert_eq!(
            cx.errs,
            [
                missing("r_vaddr"),
                size("dev_paddr", 4),
                missing("r_paddr"),
                size(PD_INDEX_SYMBOL, 2)
            ]
        );
        assert!(cx.plan.setvars.is_empty());
    }

    #[test]
    fn without_an_image_nothing_is_patched_nor_refused_again() {
        let mut sd = system();
        sd.protection_domains[0].setvars[0].region_paddr = "nope".into();
        let cx = run(&sd, &[]);
        // The missing image (from `layout`), the unknown region; no symbol is looked for.
        assert_eq!(
            cx.errs,
            [
                BuildError::MissingImage {
                    pd: "a".into(),
                    path: "a.elf".into()
                },
                BuildError::Unknown {
                    what: "memory region",
                    name: "nope".into()
                }
            ]
        );
    }
}
