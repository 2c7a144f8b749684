//! Pass: the `setvars` table, PD by PD: what `SystemDescription::patches` lists (a map's
//! `setvar_vaddr`, `setvar_size` and `setvar_prefill_size`, `<setvar region_paddr>`, the
//! `setvar_id`s of its IRQs, children, vCPUs and channel ends), then the PD's plan index if its image asks for it (`generations::PD_INDEX_SYMBOL`).

use std::string::ToString;

use axolotl_sdf::Patch;

use crate::BuildError;
use crate::generations::PD_INDEX_SYMBOL;
use crate::model as m;

use super::{Cx, push, span};

pub(super) fn setvars(cx: &mut Cx) {
    for i in 0..cx.all.len() {
        let pd = cx.all[i];
        let start = cx.plan.setvars.len() as u16;
        for (symbol, patch, _) in cx.sd.patches(pd) {
            let region = |name: &str| {
                let r = cx.region_index.get(name).copied();
                r.map(|r| (r, &cx.sd.memory_regions[r as usize]))
            };
            let value = match patch {
                Patch::Vaddr(v) => {
                    // A map of an unknown region was refused (and left out) by `maps`.
                    let Some(map) = pd
                        .maps
                        .iter()
                        .find(|m| m.setvar_vaddr.as_deref() == Some(symbol))
                    else {
                        continue;
                    };
                    if region(&map.mr).is_none() {
                        continue;
                    }
                    m::SetvarValue::Value(v)
                }
                Patch::Id(id) => m::SetvarValue::Value(u64::from(id)),
                Patch::RegionPaddr(name) | Patch::RegionSize(name) | Patch::PrefillSize(name) => {
                    let Some((r, mr)) = region(name) else {
                        // Maps of unknown regions are reported by `maps`.
                        if matches!(patch, Patch::RegionPaddr(_)) {
                            cx.errs.push(BuildError::Unknown {
                                what: "memory region",
                                name: name.to_string(),
                            });
                        }
                        continue;
                    };
                    match patch {
                        // A fixed address is known now; any other once the root task
                        // allocates it.
                        Patch::RegionPaddr(_) => match mr.phys_addr {
                            Some(pa) => m::SetvarValue::Value(pa),
                            None => m::SetvarValue::RegionPaddr(r),
                        },
                        Patch::RegionSize(_) => m::SetvarValue::Value(mr.size),
                        // The check refuses it on a region without a file.
                        _ => m::SetvarValue::Value(mr.prefill.as_ref().map_or(0, |p| p.len)),
                    }
                }
            };
            cx.setvar(i, symbol, value);
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
    fn sizes_and_ids_are_patched_as_values() {
        let prefill = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../sdf/tests/prefill/hello.txt"
        );
        let sd = sd(&format!(
            "{}{}<memory_region name=\"r\" size=\"0x2000\" prefill_path=\"{prefill}\" />\
             <channel><end pd=\"a\" id=\"7\" setvar_id=\"ch\" /><end pd=\"b\" id=\"1\" /></channel>",
            pd(
                "a",
                "<map mr=\"r\" vaddr=\"0x1000000\" setvar_size=\"size\" \
                  setvar_prefill_size=\"len\" /><irq irq=\"40\" id=\"3\" setvar_id=\"irq\" />"
            ),
            pd("b", "")
        ));
        let sym = [("size", 0x30_0000, 8), ("len", 0x30_0008, 8)];
        let sym2 = [("irq", 0x30_0010, 8), ("ch", 0x30_0018, 8)];
        let all: std::vec::Vec<_> = sym.iter().chain(&sym2).copied().collect();
        let elfs = [image_with("a.elf", &all), image("b.elf")];
        let cx = run(&sd, &elfs);
        assert_eq!(cx.errs, []);
        let got: std::vec::Vec<_> = cx.plan.setvars.iter().map(|s| (s.vaddr, s.value)).collect();
        assert_eq!(
            got,
            [
                (0x30_0000, m::SetvarValue::Value(0x2000)),
                (0x30_0008, m::SetvarValue::Value(16)),
                (0x30_0010, m::SetvarValue::Value(3)),
                (0x30_0018, m::SetvarValue::Value(7)),
            ]
        );
        assert_eq!(cx.plan.regions[0].prefill, 16);
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
