//! The domain schedule against the PDs and the kernel: names and ids unique, the table's
//! size, a slot for domain 0 (the monitor's and the root task's), and every PD in a declared
//! domain. See docs/sdf.md, "Domains".

use std::collections::HashSet;

use super::Cx;
use crate::layout::MAX_DOMAIN_SCHEDULE;

pub(super) fn check(cx: &mut Cx) {
    let pds = cx.sd.all_pds();
    let Some(d) = &cx.sd.domains else {
        for pd in pds {
            if let Some(name) = &pd.domain {
                let msg = format!(
                    "protection domain `{}` is in domain `{name}`, but the system has no domain \
                     schedule (`domains` or `domain_schedule`)",
                    pd.name
                );
                cx.error(pd.span, "domains", msg);
            }
        }
        return;
    };
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for dom in &d.domains {
        if !names.insert(dom.name.as_str()) {
            let msg = format!("domain `{}` is declared twice", dom.name);
            cx.error(dom.span, "domains", msg);
        }
        if !ids.insert(dom.id) {
            let msg = format!(
                "domain `{}`: id {} is taken by another domain",
                dom.name, dom.id
            );
            cx.error(dom.span, "domains", msg);
        }
    }
    for e in &d.schedule {
        if !e.domain.is_empty() && d.id_of(&e.domain).is_none() {
            let msg = format!("schedule entry names unknown domain `{}`", e.domain);
            cx.error(e.span, "domains", msg);
        }
    }
    let n = d.schedule.len() as u64;
    if n == 0 {
        cx.error(d.span, "domains", "the domain schedule has no entries");
    }
    if d.index_shift.saturating_add(n) > MAX_DOMAIN_SCHEDULE {
        let msg = format!(
            "index shift {} and {n} entries do not fit the kernel's domain schedule of \
             {MAX_DOMAIN_SCHEDULE} entries",
            d.index_shift
        );
        cx.error(d.span, "domains", msg);
    }
    if n > 0 && d.start_index >= n {
        let msg = format!(
            "start index {} is past the schedule's {n} entries",
            d.start_index
        );
        cx.error(d.span, "domains", msg);
    }
    let zero_runs = d.schedule.iter().any(|e| d.id_of(&e.domain) == Some(0));
    if n > 0 && !zero_runs {
        cx.error(
            d.span,
            "domains",
            "the schedule gives domain 0 no time: domain 0 holds the monitor and the root task \
             (as Microkit's monitor), which must run to start PDs and handle their faults",
        );
    }
    let several = d.schedule.iter().any(|e| d.id_of(&e.domain) != Some(0));
    for pd in pds {
        match &pd.domain {
            None => {
                let msg = format!(
                    "protection domain `{}` has no `domain`: with a domain schedule every \
                     protection domain names its domain (as in Microkit)",
                    pd.name
                );
                cx.error(pd.span, "domains", msg);
            }
            Some(name) if d.id_of(name).is_none() => {
                let msg = format!(
                    "protection domain `{}` is in unknown domain `{name}`",
                    pd.name
                );
                cx.error(pd.span, "domains", msg);
            }
            Some(_) => {}
        }
        if several && pd.resilience.heartbeat_ms.is_some() {
            let msg = format!(
                "`heartbeat_ms` on `{}`: the watchdog expects the monitor (domain 0) and the PD \
                 to run within 50 ms of each other, and a schedule of several domains stops \
                 either for up to a round of {} us; restart on faults still works",
                pd.name,
                d.period_us()
            );
            cx.error(pd.span, "domains", msg);
        }
    }
}
