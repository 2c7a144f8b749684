//! Who cares when a PD restarts: `depends_on` says "this PD depends on those", so the
//! dependants of X are the PDs whose `depends_on` names X.

use axolotl_boot_plan::model::{BootPlan, MAX_PDS};
use heapless::Vec;

/// The PDs that depend on `pd` directly, by increasing index: the ones to tell when `pd`
/// restarts.
pub fn dependants(plan: &BootPlan, pd: u8) -> impl Iterator<Item = u8> + '_ {
    plan.pds
        .iter()
        .enumerate()
        .filter(move |(_, p)| plan.depends_of(p).contains(&pd))
        .map(|(i, _)| i as u8)
}

/// Every PD that depends on `pd`, directly or through others, in dependency order: each
/// after the PDs of the set it depends on, ties by increasing index (deterministic). For a
/// monitor that restarts dependants too. `pd` itself is not included. A cycle (which the
/// SDF validator rejects) cannot loop: its members come last, by index.
pub fn affected(plan: &BootPlan, pd: u8) -> Vec<u8, MAX_PDS> {
    let n = plan.pds.len().min(MAX_PDS);
    let bit = |i: u8| 1u64.checked_shl(i as u32).unwrap_or(0);
    let deps_mask = |i: usize| {
        plan.depends_of(&plan.pds[i])
            .iter()
            .fold(0u64, |m, &d| m | bit(d))
    };
    // Transitive closure of "depends on something in the set".
    let mut set = 0u64;
    let mut reached = bit(pd);
    loop {
        let before = set;
        for i in 0..n {
            if i as u8 != pd && deps_mask(i) & reached != 0 {
                set |= bit(i as u8);
            }
        }
        reached |= set;
        if set == before {
            break;
        }
    }
    // Order: repeatedly the lowest-index member whose dependencies in the set are placed.
    let mut out = Vec::new();
    let mut placed = 0u64;
    while placed != set {
        let ready = (0..n)
            .filter(|&i| set & !placed & bit(i as u8) != 0)
            .find(|&i| deps_mask(i) & set & !placed == 0)
            .or_else(|| (0..n).find(|&i| set & !placed & bit(i as u8) != 0));
        let Some(i) = ready else { break };
        placed |= bit(i as u8);
        let _ = out.push(i as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec as StdVec;

    use axolotl_boot_plan::model::{Pd, Span};

    use super::*;

    /// A plan whose PD `i` depends on `deps[i]`.
    pub(crate) fn plan_with(deps: &[&[u8]]) -> BootPlan {
        let mut plan = BootPlan::default();
        for d in deps {
            let mut pd = Pd::default();
            pd.resilience.depends_on = Span {
                start: plan.depends.len() as u16,
                len: d.len() as u16,
            };
            plan.depends.extend_from_slice(d).unwrap();
            plan.pds.push(pd).unwrap();
        }
        plan
    }

    #[test]
    fn direct_dependants_by_index() {
        // 0: driver; 1 and 3 depend on it; 2 depends on 1.
        let plan = plan_with(&[&[], &[0], &[1], &[2, 0]]);
        assert_eq!(dependants(&plan, 0).collect::<StdVec<_>>(), [1, 3]);
        assert_eq!(dependants(&plan, 1).collect::<StdVec<_>>(), [2]);
        assert_eq!(dependants(&plan, 3).count(), 0);
        assert_eq!(dependants(&plan, 99).count(), 0);
    }

    #[test]
    fn affected_is_transitive_and_in_dependency_order() {
        // 3 depends on 2 and 0; 2 on 1; 1 on 0. Restarting 0 affects 1, 2, 3 in that order.
        let plan = plan_with(&[&[], &[0], &[1], &[2, 0]]);
        assert_eq!(affected(&plan, 0), [1, 2, 3]);
        assert_eq!(affected(&plan, 1), [2, 3]);
        assert_eq!(affected(&plan, 3), []);
        // Order follows dependencies, not indices: 1 depends on 2.
        let plan = plan_with(&[&[], &[2], &[0]]);
        assert_eq!(affected(&plan, 0), [2, 1]);
    }

    #[test]
    fn a_cycle_terminates() {
        let plan = plan_with(&[&[], &[0, 2], &[1]]);
        assert_eq!(affected(&plan, 0), [1, 2]);
    }
}
