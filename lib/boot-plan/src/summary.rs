//! A human-readable table of the plan, printed by `cargo xtask build --system`.

use std::fmt::Write;
use std::string::String;

use crate::{BootPlan, RestartPolicy};

fn kib(bytes: u64) -> String {
    std::format!("{} KiB", bytes.div_ceil(1024))
}

impl BootPlan {
    /// PDs (priority, budget/period, restart policy, memory: image + stack + IPC buffer + maps,
    /// caps), regions, channels and the untyped memory needed.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = self.write_summary(&mut s);
        s
    }

    fn write_summary(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "{:<20} {:>4} {:>15} {:<7} {:<10} {:>10} {:>10} {:>5}",
            "PD", "prio", "budget/period", "passive", "restart", "own mem", "mapped", "caps"
        )?;
        for pd in &self.pds {
            let t = &pd.totals;
            let own = (t.small_frames.saturating_mul(0x1000))
                .saturating_add(t.large_frames.saturating_mul(0x20_0000));
            let mapped: u64 = self
                .mappings_of(pd)
                .iter()
                .filter_map(|m| self.regions.get(m.region as usize))
                .map(|r| r.size)
                .fold(0u64, u64::saturating_add);
            let restart = match pd.resilience.restart {
                RestartPolicy::Never => "never",
                RestartPolicy::OnFailure => "on-failure",
                RestartPolicy::Always => "always",
            };
            let name = match pd.parent {
                Some(p) => std::format!("{}/{}", self.pds[p as usize].name, pd.name),
                None => std::format!("{}", pd.name),
            };
            writeln!(
                s,
                "{:<20} {:>4} {:>15} {:<7} {:<10} {:>10} {:>10} {:>5}",
                name,
                pd.priority,
                std::format!("{}/{} us", pd.budget_us, pd.period_us),
                if pd.passive { "yes" } else { "no" },
                restart,
                kib(own),
                kib(mapped),
                pd.caps.len
            )?;
        }
        writeln!(s)?;
        writeln!(
            s,
            "{:<20} {:>10} {:>10} {:>18}",
            "region", "size", "page", "phys"
        )?;
        for r in &self.regions {
            let phys = r
                .phys_addr
                .map_or(String::from("(allocated)"), |p| std::format!("{p:#x}"));
            writeln!(
                s,
                "{:<20} {:>10} {:>10} {:>18}",
                r.name,
                std::format!("{:#x}", r.size),
                std::format!("{:#x}", r.page_size),
                phys
            )?;
        }
        writeln!(s)?;
        writeln!(s, "channels")?;
        for c in &self.channels {
            let end = |i: usize| {
                let e = c.ends[i];
                std::format!("{}:{}", self.pds[e.pd as usize].name, e.id)
            };
            let arrow = match (c.ends[0].pp, c.ends[1].pp) {
                (true, _) => "--pp-->",
                (_, true) => "<--pp--",
                _ => "<----->",
            };
            writeln!(s, "  {} {arrow} {}", end(0), end(1))?;
        }
        let t = &self.totals;
        writeln!(s)?;
        writeln!(
            s,
            "untyped needed: {} ({} small + {} large frames, {} page tables, {} TCBs, {} CNodes)",
            kib(t.bytes()),
            t.small_frames,
            t.large_frames,
            t.page_tables,
            t.tcbs,
            t.cnodes
        )
    }
}
