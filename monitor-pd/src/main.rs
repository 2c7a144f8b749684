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

    use axolotl_abi::{HEARTBEAT, REPORT_CORRUPTION};
    use axolotl_boot_plan::cspace::{ROOT_SERVICE_CAP, dependant_signal_slot, heartbeat_ping_slot};
    use axolotl_boot_plan::{
        BootPlan, MAX_PDS, MONITOR_PLAN_VADDR, MONITOR_TIMER_ID, Resilience, root_service,
    };
    use axolotl_monitor_core::{
        Cause, Decision, Declined, Heartbeats, RECORD_BYTES, RETRY_MS, Reports, State, Tracker,
        Verdict, earliest, log,
    };
    use axolotl_pd::{Channel, Child, Handler, MessageInfo, get_mr, println};
    use axolotl_sys::ipc::set_mr;
    use axolotl_sys::time;

    const _: () = assert!(RECORD_BYTES <= root_service::RECORD_BYTES);

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
        time::now_ns() / 1000
    }

    fn now_ms() -> u64 {
        now_us() / 1000
    }

    const TIMER: Channel = Channel::new(MONITOR_TIMER_ID);

    /// A restart waiting for its backoff.
    #[derive(Clone, Copy)]
    struct Pending {
        cause: Cause,
        failed_ms: u64,
        at_ms: u64,
        generation: u32,
    }

    impl Pending {
        /// The restart `t` has pending, if any.
        fn of(t: &Tracker) -> Option<Pending> {
            match t.state() {
                State::Restarting { at_ms, generation } => Some(Pending {
                    cause: t.last_cause().unwrap_or(Cause::Exited),
                    failed_ms: t.failed_ms(),
                    at_ms,
                    generation,
                }),
                _ => None,
            }
        }
    }

    struct Monitor {
        plan: Option<&'static BootPlan>,
        trackers: heapless::Vec<Tracker, MAX_PDS>,
        heartbeats: Heartbeats,
        pending: [Option<Pending>; MAX_PDS],
        /// What the root task's timer is set to (counter value, 0 = off), once asked.
        armed: Option<u64>,
        /// Corruption reports' rate limit.
        reports: Reports,
    }

    impl Handler for Monitor {
        fn init(&mut self) {
            self.plan = plan();
            let Some(plan) = self.plan else {
                println!("monitor: the boot plan is unreadable; faults will not be handled");
                return;
            };
            let now = now_ms();
            let (mut learnt, mut waiting, mut held) = (0, 0, 0);
            for (i, pd) in plan.pds.iter().enumerate() {
                let mut t = Tracker::new(&pd.resilience, now);
                if plan.monitor != Some(i as u8)
                    && let Some((journaled, root_generation)) = recall(i, &pd.resilience)
                {
                    // A restarted monitor goes on from its predecessor's journal, in line
                    // with the root task's generations.
                    if journaled.is_some() || root_generation > 0 {
                        learnt += 1;
                    }
                    if let Some(j) = journaled {
                        t = j;
                    }
                    t.reconcile(root_generation, now);
                    match t.state() {
                        State::Restarting { .. } => waiting += 1,
                        State::Held(_) => held += 1,
                        State::Running => {}
                    }
                    self.pending[i] = Pending::of(&t);
                }
                let _ = self.trackers.push(t);
            }
            self.heartbeats = Heartbeats::from_plan(plan, now);
            for (i, p) in self.pending.iter().enumerate() {
                if p.is_some() {
                    self.heartbeats.pause(i as u8);
                }
            }
            let watched = (0..plan.pds.len()).filter(|&i| plan.watched(i)).count();
            println!(
                "monitor: watching {} PDs (generation {}), {} with heartbeats",
                plan.pds.len() - 1,
                axolotl_pd::generation(),
                watched
            );
            if learnt > 0 {
                println!(
                    "monitor: resumed from the journal: {waiting} restarts pending, {held} PDs held"
                );
                for (pd, t) in self.trackers.iter().enumerate() {
                    let state = match t.state() {
                        State::Running if t.generation() == 0 => continue,
                        State::Running => "running",
                        State::Restarting { .. } => "restart pending",
                        State::Held(_) => "held",
                    };
                    println!(
                        "monitor: {}: generation {}, {} restarts, {state}",
                        plan.pds[pd].name.as_str(),
                        t.generation(),
                        t.restarts(),
                    );
                }
            }
            self.tick();
            self.rearm();
        }

        fn notified(&mut self, ch: Channel) {
            if ch != TIMER {
                println!("monitor: unexpected notification on channel {}", ch.id());
                return;
            }
            self.tick();
            self.rearm();
        }

        fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
            let start = now_us();
            let pd = child.id() as usize;
            let plan = self.plan?;
            if pd >= plan.pds.len() {
                println!("monitor: fault of unknown PD {pd}");
                return None;
            }
            if msg.label() == HEARTBEAT {
                // A Send: nothing to reply to.
                self.heartbeats.answered(pd as u8, start / 1000);
                return None;
            }
            if msg.label() == REPORT_CORRUPTION {
                // A PD's claim about the peer of one of its channels, judged (see
                // docs/monitor.md, "Trust model"). The answer goes out only if the report
                // was a Call: the kernel empties our reply slot for a Send.
                let reporter = pd as u8;
                let name = plan.pds[pd].name.as_str();
                // MR0 the channel, MR1 the accused PD generation (a shorter message names
                // none, and is declined). A word beyond u32 names a generation no PD ever
                // has, as u32::MAX does (never handed out).
                let ch = get_mr(0);
                let accused =
                    (msg.length() >= 2).then(|| u32::try_from(get_mr(1)).unwrap_or(u32::MAX));
                let verdict =
                    self.reports
                        .judge(plan, &self.trackers, reporter, ch, accused, start / 1000);
                let acted = match verdict {
                    Verdict::Believe { peer } => {
                        self.recover(peer as usize, Cause::Corruption { reporter }, start)
                    }
                    Verdict::Discredit { peer } => {
                        println!(
                            "monitor: {name} reported {} corrupt again, fresh from the restart \
                             its last report caused: not believed",
                            plan.pds[peer as usize].name.as_str()
                        );
                        self.recover(pd, Cause::FalseReport { peer }, start);
                        false
                    }
                    // A reporter over its rate is not worth a line each time.
                    Verdict::Decline(Declined::RateLimited) => false,
                    Verdict::Decline(why) => {
                        println!("monitor: report by {name} on channel {ch} declined: {why}");
                        false
                    }
                };
                self.rearm();
                return Some(MessageInfo::new(!acted as u64, 0, 0, 0));
            }
            let mut words = [0u64; 16];
            let n = (msg.length() as usize).min(words.len());
            for (i, w) in words.iter_mut().enumerate().take(n) {
                *w = get_mr(i);
            }
            self.recover(pd, Cause::from_fault(msg.label(), &words[..n]), start);
            self.rearm();
            // No reply: a restarted PD runs from its entry, a held one stays stopped.
            None
        }
    }

    impl Monitor {
        /// Applies `pd`'s policy to a failure detected at `start` (us): restarts it now or
        /// once its backoff has passed, or holds it. Whether it will be restarted.
        fn recover(&mut self, pd: usize, cause: Cause, start: u64) -> bool {
            let (Some(plan), Some(t)) = (self.plan, self.trackers.get_mut(pd)) else {
                return false;
            };
            let name = plan.pds[pd].name.as_str();
            if self.pending[pd].is_some() {
                // Already waiting for its restart: a second report changes nothing.
                return true;
            }
            let decision = t.on_failure(start / 1000, cause);
            self.pending[pd] = Pending::of(t);
            // Unwatched until restarted; a held PD for good.
            self.heartbeats.pause(pd as u8);
            match decision {
                Decision::RestartAt { at_ms, .. } => {
                    if at_ms <= now_ms() {
                        // Journaled with the restart itself. Should we fail before, a
                        // faulted PD's fault comes again to our successor (the kernel
                        // re-delivers a fault whose handler is restarted).
                        self.restart(pd);
                    } else {
                        journal(pd, t);
                    }
                    true
                }
                Decision::Hold { reason } => {
                    journal(pd, t);
                    println!("monitor: {name} failed ({cause})");
                    if cause.leaves_running() {
                        // No fault stopped it: a held PD must be stopped for what we say
                        // about it to be true (and a hung one must not spin on).
                        stop(pd, name);
                    }
                    println!("{}", log::holding(name, &reason));
                    false
                }
            }
        }

        /// Has the root task restart `pd`, whose backoff has passed.
        fn restart(&mut self, pd: usize) {
            let (Some(plan), Some(p)) = (self.plan, self.pending[pd].take()) else {
                return;
            };
            let name = plan.pds[pd].name.as_str();
            let start = now_us();
            let delay = p.at_ms - p.failed_ms;
            if delay > 0 {
                println!("{}", log::backoff(name, delay, start / 1000 - p.failed_ms));
            }
            // The record as it will be once the PD runs again travels with the request, so
            // the journal costs no call of its own.
            let at = start / 1000;
            let r = if inject_refusal(name) {
                malformed_restart(pd)
            } else {
                call_with_record(
                    root_service::RESTART,
                    [pd as u64, p.generation as u64],
                    self.trackers.get(pd).map(|t| Journal::Restarted(t, at)),
                )
            };
            if r.label() != 0 {
                // Kept pending and asked again: dropped, the PD would stay stopped and
                // unwatched for good.
                println!(
                    "monitor: the root task refused to restart {name} (reason {}); retrying in \
                     {RETRY_MS} ms",
                    r.mrs[0]
                );
                if let Some(t) = self.trackers.get_mut(pd) {
                    t.on_refused(at);
                    self.pending[pd] = Pending::of(t);
                    journal(pd, t);
                }
                return;
            }
            let done = now_us();
            if let Some(t) = self.trackers.get_mut(pd) {
                t.on_restarted(at);
            }
            self.heartbeats.restarted(pd as u8, done / 1000);
            // The root task's count is the authority: ours starts over when we do.
            let given = r.mrs[0] as u32;
            let how = log::How::from_word(r.mrs[1]);
            println!(
                "{}",
                log::restarted(name, &p.cause, given, done - start, how)
            );
            tell_dependants(plan, pd);
            #[cfg(feature = "fault-injection")]
            inject(name);
        }

        /// Timer work: due restarts, hung PDs, pings.
        fn tick(&mut self) {
            let now = now_ms();
            for pd in 0..self.trackers.len() {
                if self.pending[pd].is_some_and(|p| p.at_ms <= now) {
                    self.restart(pd);
                }
            }
            for (pd, heartbeat_ms) in self.heartbeats.hung(now) {
                self.recover(pd as usize, Cause::Hang { heartbeat_ms }, now_us());
            }
            let mut due = heapless::Vec::<u8, MAX_PDS>::new();
            for pd in self.heartbeats.pings_due(now) {
                let _ = due.push(pd);
            }
            for pd in due {
                axolotl_sys::signal(heartbeat_ping_slot(pd));
            }
        }

        /// Has the root task's timer wake us for the next due restart, ping or heartbeat
        /// deadline.
        fn rearm(&mut self) {
            // Only the plan's PDs: the rest of the array is always empty.
            let restart = self.pending[..self.trackers.len()]
                .iter()
                .flatten()
                .map(|p| p.at_ms)
                .min();
            let next = earliest(restart, self.heartbeats.next_wakeup());
            // Counter value 0 is "never"; 1 is as good as any past time.
            let at = next.map_or(0, |ms| time::ms_to_counter(ms).max(1));
            if self.armed == Some(at) {
                return;
            }
            let r = axolotl_sys::call(
                ROOT_SERVICE_CAP,
                MessageInfo::new(root_service::SET_TIMER, 0, 0, 1),
                [at, 0, 0, 0],
            );
            if r.label() == 0 {
                self.armed = Some(at);
            } else {
                println!(
                    "monitor: the root task refused our timer (reason {})",
                    r.mrs[0]
                );
            }
        }
    }

    /// Signals every PD that depends on `pd` (`depends_on`) on its channel to it, so it looks
    /// at what they share (its rings see the new generation), and says whom it told.
    fn tell_dependants(plan: &BootPlan, pd: usize) {
        use core::fmt::Write;
        let mut told = heapless::String::<200>::new();
        for (k, d, _, _) in plan.dependant_links().filter(|l| l.2 as usize == pd) {
            axolotl_sys::signal(dependant_signal_slot(k));
            let sep = if told.is_empty() { "" } else { ", " };
            let _ = write!(told, "{sep}{}", plan.pds[d as usize].name.as_str());
        }
        if !told.is_empty() {
            println!(
                "monitor: told {told} that {} restarted",
                plan.pds[pd].name.as_str()
            );
        }
    }

    /// Has the root task stop (suspend) `pd`, which we hold although no fault stopped it.
    fn stop(pd: usize, name: &str) {
        let r = axolotl_sys::call(
            ROOT_SERVICE_CAP,
            MessageInfo::new(root_service::STOP, 0, 0, 1),
            [pd as u64, 0, 0, 0],
        );
        if r.label() != 0 {
            println!(
                "monitor: the root task refused to stop {name} (reason {})",
                r.mrs[0]
            );
        }
    }

    /// Journals `pd`'s bookkeeping with the root task, for a monitor that may follow us.
    fn journal(pd: usize, t: &Tracker) {
        let r = call_with_record(root_service::RECORD, [pd as u64, 0], Some(Journal::Now(t)));
        if r.label() != 0 {
            println!(
                "monitor: the root task refused the record of PD {pd} (reason {})",
                r.mrs[0]
            );
        }
    }

    /// A tracker's record to journal.
    enum Journal<'a> {
        /// As it is.
        Now(&'a Tracker),
        /// As it will be once the PD restarted at this time (ms).
        Restarted(&'a Tracker, u64),
    }

    /// Calls the root task with `label`, `head` in MR0 and MR1 and the record (none: length
    /// 0) from `root_service::RECORD_LEN_MR` on.
    fn call_with_record(label: u64, head: [u64; 2], j: Option<Journal>) -> axolotl_sys::Msg {
        let mut buf = [0u8; RECORD_BYTES];
        let encoded = j.map(|j| match j {
            Journal::Now(t) => t.encode(&mut buf),
            Journal::Restarted(t, at) => t.encode_restarted(at, &mut buf),
        });
        let bytes: &[u8] = match encoded {
            Some(Some(b)) => b,
            Some(None) => {
                println!("monitor: a record does not fit RECORD_BYTES");
                &[]
            }
            None => &[],
        };
        let words = root_service::words_for(bytes.len());
        let first = root_service::RECORD_LEN_MR + 1;
        for i in 4..words {
            set_mr(i, root_service::word_of(bytes, i - first));
        }
        axolotl_sys::call(
            ROOT_SERVICE_CAP,
            MessageInfo::new(label, 0, 0, words as u64),
            [
                head[0],
                head[1],
                bytes.len() as u64,
                root_service::word_of(bytes, 0),
            ],
        )
    }

    /// PD `pd`'s journaled tracker (`None` if nothing valid was journaled) and the root
    /// task's generation of it; `None` if the root task would not say.
    fn recall(pd: usize, resilience: &Resilience) -> Option<(Option<Tracker>, u32)> {
        let r = axolotl_sys::call(
            ROOT_SERVICE_CAP,
            MessageInfo::new(root_service::RECALL, 0, 0, 1),
            [pd as u64, 0, 0, 0],
        );
        if r.label() != 0 {
            return None;
        }
        let generation = r.mrs[0].min(u32::MAX as u64 - 1) as u32;
        let len = r.mrs[root_service::RECORD_LEN_MR] as usize;
        if len == 0
            || len > RECORD_BYTES
            || (r.info.length() as usize) < root_service::words_for(len)
        {
            return Some((None, generation));
        }
        let mut bytes = [0u8; RECORD_BYTES];
        let first = root_service::RECORD_LEN_MR + 1;
        root_service::unpack(&mut bytes[..len], |i| {
            if first + i < 4 {
                r.mrs[first + i]
            } else {
                get_mr(first + i)
            }
        });
        let journaled = Tracker::decode(resilience, &bytes[..len]);
        if journaled.is_none() {
            println!("monitor: the journal of PD {pd} is unreadable; starting it afresh");
        }
        Some((journaled, generation))
    }

    /// Test systems only (tests/systems): the first monitor crashes right after restarting a
    /// PD named `kill_monitor*`, or hangs (spins forever) after restarting one named
    /// `hang_monitor*`, so the root task's recovery of the monitor can be tested.
    #[cfg(feature = "fault-injection")]
    fn inject(name: &str) {
        if axolotl_pd::generation() != 0 {
            return;
        }
        if name.starts_with("kill_monitor") {
            println!("monitor: fault injection: crashing the monitor");
            // SAFETY: deliberately invalid; the fault goes to the root task.
            unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 0) };
        }
        if name.starts_with("hang_monitor") {
            println!("monitor: fault injection: hanging the monitor");
            loop {
                core::hint::spin_loop();
            }
        }
    }

    /// Test systems only: whether to make the first restart request for a PD named
    /// `refuse_once*` one the root task refuses, so that the retry of refused restarts is
    /// tested against the real root task.
    #[cfg(feature = "fault-injection")]
    fn inject_refusal(name: &str) -> bool {
        use core::sync::atomic::{AtomicBool, Ordering};
        static DONE: AtomicBool = AtomicBool::new(false);
        name.starts_with("refuse_once")
            && axolotl_pd::generation() == 0
            && !DONE.swap(true, Ordering::Relaxed)
    }

    #[cfg(not(feature = "fault-injection"))]
    fn inject_refusal(_: &str) -> bool {
        false
    }

    /// A restart request whose record is longer than any: refused (`FAILED`).
    fn malformed_restart(pd: usize) -> axolotl_sys::Msg {
        axolotl_sys::call(
            ROOT_SERVICE_CAP,
            MessageInfo::new(root_service::RESTART, 0, 0, 3),
            [pd as u64, 0, u64::MAX, 0],
        )
    }

    axolotl_pd::protection_domain!(Monitor {
        plan: None,
        trackers: heapless::Vec::new(),
        heartbeats: Heartbeats::new(),
        pending: [None; MAX_PDS],
        armed: None,
        reports: Reports::new(),
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("monitor-pd runs in every system `cargo xtask build --system` builds");
}
