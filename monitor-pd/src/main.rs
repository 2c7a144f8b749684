//! The monitor (issue #5): the fault handler of every parentless PD. For each fault it
//! classifies the failure, applies the PD's restart policy from the SDF (lib/monitor-core) and
//! asks the root task, which holds the pristine images and every original capability, to
//! restart the PD. Every recovery is logged with PD, cause, generation and latency.
//!
//! The monitor holds no capability to any PD: a monitor gone wrong can ask for restarts, not
//! corrupt PDs. It is itself restarted by the root task, and then re-reads the plan; the
//! faults that arrived meanwhile wait on its endpoint.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use core::mem::MaybeUninit;

    use axolotl_abi::REPORT_CORRUPTION;
    use axolotl_boot_plan::cspace::ROOT_SERVICE_CAP;
    use axolotl_boot_plan::{BootPlan, MAX_PDS, MONITOR_PLAN_VADDR, root_service};
    use axolotl_monitor_core::{Cause, Decision, Tracker, log};
    use axolotl_pd::{Channel, Child, Handler, MessageInfo, get_mr, println};

    static mut PLAN: MaybeUninit<BootPlan> = MaybeUninit::uninit();

    /// The plan the root task mapped for us: a length word, then the postcard bytes.
    fn plan() -> Option<&'static BootPlan> {
        // SAFETY: mapped read-only at this address before we start, for our lifetime.
        let bytes = unsafe {
            let len = core::ptr::read_volatile(MONITOR_PLAN_VADDR as *const u64) as usize;
            core::slice::from_raw_parts((MONITOR_PLAN_VADDR + 8) as *const u8, len)
        };
        let plan = postcard::from_bytes::<BootPlan>(bytes).ok()?;
        // SAFETY: single-threaded; written once here, before any reader.
        unsafe {
            let slot: *mut MaybeUninit<BootPlan> = &raw mut PLAN;
            Some((*slot).write(plan))
        }
    }

    fn now_us() -> u64 {
        let (cnt, frq): (u64, u64);
        // SAFETY: reading the virtual counter and its frequency (EL0 may) has no side effects.
        unsafe {
            core::arch::asm!("isb", "mrs {c}, cntvct_el0", "mrs {f}, cntfrq_el0",
                c = out(reg) cnt, f = out(reg) frq)
        };
        (cnt as u128 * 1_000_000 / frq.max(1) as u128) as u64
    }

    struct Monitor {
        plan: Option<&'static BootPlan>,
        trackers: heapless::Vec<Tracker, MAX_PDS>,
    }

    impl Handler for Monitor {
        fn init(&mut self) {
            self.plan = plan();
            let Some(plan) = self.plan else {
                println!("monitor: the boot plan is unreadable; faults will not be handled");
                return;
            };
            let now = now_us() / 1000;
            for pd in plan.pds.iter() {
                let _ = self.trackers.push(Tracker::new(&pd.resilience, now));
            }
            println!(
                "monitor: watching {} PDs (generation {}); no timer yet: restart backoff and heartbeats are not enforced",
                plan.pds.len() - 1,
                axolotl_pd::generation()
            );
        }

        fn notified(&mut self, ch: Channel) {
            println!("monitor: unexpected notification on channel {}", ch.id());
        }

        fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
            let start = now_us();
            let pd = child.id() as usize;
            let plan = self.plan?;
            if pd >= plan.pds.len() {
                println!("monitor: fault of unknown PD {pd}");
                return None;
            }
            if msg.label() == REPORT_CORRUPTION {
                // A PD's own report on its fault endpoint: restart the peer of its channel.
                // A false report can only cost the peer a restart within its limits.
                let ch = get_mr(0);
                let peer = plan.channels.iter().find_map(|c| match c.ends {
                    [a, b] | [b, a] if a.pd as usize == pd && a.id as u64 == ch => Some(b.pd),
                    _ => None,
                });
                let Some(peer) = peer else {
                    return Some(MessageInfo::new(1, 0, 0, 0));
                };
                let cause = Cause::Corruption { reporter: pd as u8 };
                let acted = self.recover(peer as usize, cause, start);
                return Some(MessageInfo::new(!acted as u64, 0, 0, 0));
            }
            let mut words = [0u64; 16];
            let n = (msg.length() as usize).min(words.len());
            for (i, w) in words.iter_mut().enumerate().take(n) {
                *w = get_mr(i);
            }
            self.recover(pd, Cause::from_fault(msg.label(), &words[..n]), start);
            // No reply: a restarted PD runs from its entry, a held one stays stopped.
            None
        }
    }

    impl Monitor {
        /// Applies `pd`'s policy to a failure detected at `start`: has the root task restart
        /// it, or holds it. Whether it was restarted.
        fn recover(&mut self, pd: usize, cause: Cause, start: u64) -> bool {
            let (Some(plan), Some(t)) = (self.plan, self.trackers.get_mut(pd)) else {
                return false;
            };
            let name = plan.pds[pd].name.as_str();
            match t.on_failure(start / 1000, cause) {
                Decision::RestartAt { generation, .. } => {
                    let r = axolotl_sys::call(
                        ROOT_SERVICE_CAP,
                        MessageInfo::new(root_service::RESTART, 0, 0, 2),
                        [pd as u64, generation as u64, 0, 0],
                    );
                    if r.label() != 0 {
                        println!(
                            "monitor: the root task refused to restart {name} (reason {})",
                            r.mrs[0]
                        );
                        return false;
                    }
                    t.on_restarted(now_us() / 1000);
                    // The root task's count is the authority: ours starts over when we do.
                    let given = r.mrs[0] as u32;
                    println!("{}", log::restarted(name, &cause, given, now_us() - start));
                    #[cfg(feature = "fault-injection")]
                    inject(name);
                    true
                }
                Decision::Hold { reason } => {
                    println!("monitor: {name} failed ({cause})");
                    println!("{}", log::holding(name, &reason));
                    false
                }
            }
        }
    }

    /// Test systems only (tests/systems): the first monitor crashes right after restarting a
    /// PD named `kill_monitor*`, so the root task's recovery of the monitor can be tested.
    #[cfg(feature = "fault-injection")]
    fn inject(name: &str) {
        if name.starts_with("kill_monitor") && axolotl_pd::generation() == 0 {
            println!("monitor: fault injection: crashing the monitor");
            // SAFETY: deliberately invalid; the fault goes to the root task.
            unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 0) };
        }
    }

    axolotl_pd::protection_domain!(Monitor {
        plan: None,
        trackers: heapless::Vec::new(),
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("monitor-pd runs in every system `cargo xtask build --system` builds");
}
