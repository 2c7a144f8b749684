//! Cross-PD resilience rules: dependencies must name other existing PDs and form no cycle
//! (the monitor starts a PD after its dependencies), and a watchdog needs a PD that runs on
//! its own budget.

use std::collections::{HashMap, VecDeque};

use super::Cx;

pub(super) fn check(cx: &mut Cx) {
    let pds = cx.sd.all_pds();
    let index: HashMap<&str, usize> = pds
        .iter()
        .enumerate()
        .map(|(i, pd)| (pd.name.as_str(), i))
        .collect();

    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); pds.len()];
    for (i, pd) in pds.iter().enumerate() {
        for dep in &pd.resilience.depends_on {
            if *dep == pd.name {
                cx.error(
                    pd.span,
                    "depends-on",
                    format!("protection domain `{dep}` depends on itself"),
                );
            } else if let Some(&j) = index.get(dep.as_str()) {
                edges[i].push(j);
            } else {
                let msg = format!("`{}` depends on unknown protection domain `{dep}`", pd.name);
                cx.error(pd.span, "depends-on", msg);
            }
        }
        if pd.passive && pd.resilience.heartbeat_ms.is_some() {
            let msg = format!(
                "passive protection domain `{}` cannot send heartbeats: it only runs when called",
                pd.name
            );
            cx.error(pd.span, "heartbeat-passive", msg);
        }
    }

    // Each PD on a cycle gets one report showing the cycle through it.
    for (i, pd) in pds.iter().enumerate() {
        if let Some(cycle) = path_back(&edges, i) {
            let names: Vec<&str> = cycle.iter().map(|&k| pds[k].name.as_str()).collect();
            let msg = format!("dependency cycle: {} -> {}", names.join(" -> "), pd.name);
            cx.error(pd.span, "depends-on-cycle", msg);
        }
    }
}

/// Shortest path `start -> ... -> x` with an edge `x -> start`, by breadth-first search.
fn path_back(edges: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    let mut parent: Vec<Option<usize>> = vec![None; edges.len()];
    let mut queue = VecDeque::from([start]);
    let mut seen = vec![false; edges.len()];
    seen[start] = true;
    while let Some(n) = queue.pop_front() {
        for &m in &edges[n] {
            if m == start {
                let mut path = vec![n];
                let mut k = n;
                while let Some(p) = parent[k] {
                    path.push(p);
                    k = p;
                }
                path.reverse();
                return Some(path);
            }
            if !seen[m] {
                seen[m] = true;
                parent[m] = Some(n);
                queue.push_back(m);
            }
        }
    }
    None
}
