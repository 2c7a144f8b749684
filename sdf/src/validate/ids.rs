//! Per-PD id spaces: channel ends and IRQs share one (both arrive as notification bits), child
//! PDs and vCPUs share another (both identify the faulting child); IRQ numbers are global.

use std::collections::HashMap;

use super::Cx;
use crate::Span;

pub(super) fn check(cx: &mut Cx) {
    let sd = cx.sd;
    let pds = sd.all_pds();

    let mut notification_ids: HashMap<&str, Vec<(u8, Span, String)>> = HashMap::new();
    for ch in &sd.channels {
        let [a, b] = &ch.ends;
        for (end, other) in [(a, b), (b, a)] {
            if !cx.taint.is(end.span, "id") && !end.pd.is_empty() {
                let what = format!("the channel to `{}` (line {})", other.pd, end.span.line);
                notification_ids
                    .entry(&end.pd)
                    .or_default()
                    .push((end.id, end.span, what));
            }
        }
    }
    for pd in &pds {
        for irq in &pd.irqs {
            if !cx.taint.is(irq.span, "id") {
                let what = format!("irq {} (line {})", irq.irq, irq.span.line);
                notification_ids
                    .entry(&pd.name)
                    .or_default()
                    .push((irq.id, irq.span, what));
            }
        }
    }
    // Report in source order, per PD in first-definition order.
    for pd in &pds {
        let Some(mut uses) = notification_ids.remove(pd.name.as_str()) else {
            continue;
        };
        uses.sort_by_key(|u| u.1);
        report_reuse(cx, &pd.name, uses, "id-unique");
    }

    let mut irq_numbers: HashMap<u32, (&str, Span)> = HashMap::new();
    let mut irqs: Vec<_> = pds
        .iter()
        .flat_map(|pd| pd.irqs.iter().map(|i| (pd.name.as_str(), i)))
        .collect();
    irqs.sort_by_key(|(_, i)| i.span);
    for (pd, irq) in irqs {
        if cx.taint.is(irq.span, "irq") {
            continue;
        }
        if let Some((first_pd, first)) = irq_numbers.get(&irq.irq) {
            let msg = format!(
                "irq {} of `{pd}` is already claimed by `{first_pd}` at line {}",
                irq.irq, first.line
            );
            cx.error(irq.span, "irq-unique", msg);
        } else {
            irq_numbers.insert(irq.irq, (pd, irq.span));
        }
    }

    for pd in &pds {
        let mut uses = Vec::new();
        for child in &pd.children {
            if let Some(id) = child.id {
                uses.push((
                    id,
                    child.span,
                    format!("child `{}` (line {})", child.name, child.span.line),
                ));
            }
        }
        for vcpu in pd.virtual_machine.iter().flat_map(|vm| &vm.vcpus) {
            uses.push((
                vcpu.id,
                vcpu.span,
                format!("a vcpu (line {})", vcpu.span.line),
            ));
        }
        uses.sort_by_key(|u| u.1);
        report_reuse(cx, &pd.name, uses, "child-id");
    }
}

/// Reports every use of an id after its first, `uses` being in source order.
fn report_reuse(cx: &mut Cx, pd: &str, uses: Vec<(u8, Span, String)>, rule: &'static str) {
    let mut first: HashMap<u8, String> = HashMap::new();
    for (id, at, what) in uses {
        match first.get(&id) {
            Some(prev) => cx.error(
                at,
                rule,
                format!("id {id} of `{pd}` is already used by {prev}"),
            ),
            None => {
                first.insert(id, what);
            }
        }
    }
}
