//! Names: uniqueness, references to PDs and regions, the PD count, unused regions.

use std::collections::{HashMap, HashSet};

use super::Cx;
use crate::layout::MAX_PDS;
use crate::{Map, Span};

pub(super) fn check(cx: &mut Cx) {
    let sd = cx.sd;
    let pds = sd.all_pds();
    if let Some(pd) = pds.get(MAX_PDS) {
        let msg = format!(
            "more than {MAX_PDS} protection domains (`{}` is number {})",
            pd.name,
            MAX_PDS + 1
        );
        cx.error(pd.span, "pd-count", msg);
    }

    if pds.is_empty() {
        cx.error(
            sd.span,
            "no-pds",
            "the system has no protection domain (Microkit refuses this too): add at least one",
        );
    }

    // A symbol is patched once: two setvars of one symbol would leave it to the build order
    // which value the program sees (Microkit refuses this too).
    for pd in &pds {
        let mut patched: HashMap<&str, Span> = HashMap::new();
        let mut symbols: Vec<(&str, Span)> = sd
            .patches(pd)
            .into_iter()
            .map(|(sym, _, at)| (sym, at))
            .collect();
        symbols.sort_by_key(|&(_, at)| at);
        for (symbol, at) in symbols {
            if symbol.is_empty() {
                continue;
            }
            if let Some(first) = patched.get(symbol) {
                let msg = format!(
                    "symbol `{symbol}` of `{}` is already patched at line {}",
                    pd.name, first.line
                );
                cx.error(at, "setvar-unique", msg);
            } else {
                patched.insert(symbol, at);
            }
        }
    }

    // PDs and virtual machines share one namespace: both are named in faults and boot plans.
    let mut seen: HashMap<&str, Span> = HashMap::new();
    let mut named = Vec::new();
    for pd in &pds {
        named.push(("protection domain", pd.name.as_str(), pd.span));
        if let Some(vm) = &pd.virtual_machine {
            named.push(("virtual machine", vm.name.as_str(), vm.span));
        }
    }
    named.sort_by_key(|&(_, _, at)| at);
    for (kind, name, at) in named {
        if name.is_empty() {
            continue;
        }
        if let Some(first) = seen.get(name) {
            let msg = format!(
                "duplicate {kind} name `{name}` (first used at line {})",
                first.line
            );
            cx.error(at, "unique-pd-name", msg);
        } else {
            seen.insert(name, at);
        }
    }

    let mut regions: HashMap<&str, Span> = HashMap::new();
    for mr in &sd.memory_regions {
        if mr.name.is_empty() {
            continue;
        }
        if let Some(first) = regions.get(mr.name.as_str()) {
            let msg = format!(
                "duplicate memory region name `{}` (first defined at line {})",
                mr.name, first.line
            );
            cx.error(mr.span, "unique-region-name", msg);
        } else {
            regions.insert(&mr.name, mr.span);
        }
    }

    let mut used: HashSet<&str> = HashSet::new();
    let maps = pds.iter().flat_map(|pd| {
        let vm_maps = pd.virtual_machine.iter().flat_map(|vm| vm.maps.iter());
        pd.maps.iter().chain(vm_maps)
    });
    let mut refs: Vec<(&str, Span, &str)> =
        maps.map(|m: &Map| (m.mr.as_str(), m.span, "map")).collect();
    for pd in &pds {
        refs.extend(
            pd.setvars
                .iter()
                .map(|s| (s.region_paddr.as_str(), s.span, "setvar")),
        );
    }
    for (mr, at, what) in refs {
        if mr.is_empty() {
            continue;
        }
        used.insert(mr);
        if !regions.contains_key(mr) {
            cx.error(
                at,
                "unknown-region",
                format!("{what} names unknown memory region `{mr}`"),
            );
        }
    }
    // Microkit resolves `setvar_prefill_size` from the region's file: without one there is
    // no value to patch.
    for pd in &pds {
        for m in pd.maps.iter().filter(|m| m.setvar_prefill_size.is_some()) {
            if regions.contains_key(m.mr.as_str())
                && sd
                    .memory_region(&m.mr)
                    .is_some_and(|mr| mr.prefill.is_none())
            {
                let msg = format!(
                    "`setvar_prefill_size` on a map of `{}`, which has no `prefill_path`",
                    m.mr
                );
                cx.error(m.span, "prefill", msg);
            }
        }
    }
    for mr in &sd.memory_regions {
        if !mr.name.is_empty() && !used.contains(mr.name.as_str()) {
            cx.warning(
                mr.span,
                "unused-region",
                format!("memory region `{}` is never mapped", mr.name),
            );
        }
    }

    let pd_names: HashSet<&str> = pds.iter().map(|pd| pd.name.as_str()).collect();
    for ch in &sd.channels {
        for end in &ch.ends {
            if !end.pd.is_empty() && !pd_names.contains(end.pd.as_str()) {
                let msg = format!("channel end names unknown protection domain `{}`", end.pd);
                cx.error(end.span, "unknown-pd", msg);
            }
        }
    }
}
