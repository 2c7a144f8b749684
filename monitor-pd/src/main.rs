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

    use core::fmt;

    use axolotl_abi::{CONTROL, CorruptionReport, HEARTBEAT, REPORT_RECOVERY_FAILED};
    use axolotl_boot_plan::cspace::{ROOT_SERVICE_CAP, dependant_signal_slot, heartbeat_ping_slot};
    use axolotl_boot_plan::{BootPlan, MAX_PDS, MONITOR_PLAN_VADDR, MONITOR_TIMER_ID, Resilience};
    use axolotl_control_proto::{
        BitTarget, Error as ProtoError, Event, FaultKind, Injected as Injection,
        Reply as ProtoReply, Request as ProtoRequest, VmOp,
    };
    use axolotl_monitor_core::control::{self, Facts, RecoveryLog};
    use axolotl_monitor_core::{
        Cause, Command, Decision, Declined, Heartbeats, RECORD_BYTES, RETRY_MS, Reports, Scrubber,
        State, Tracker, Verdict, earliest, log,
    };
    use axolotl_pd::{Channel, Child, Handler, MessageInfo, get_mr, println};
    use axolotl_root_service::{Malformed, Op, Received, RecordSource, Reply, Request, Sent};
    use axolotl_sys::ipc::msg_words;
    use axolotl_sys::time::{self, now_us};

    // Every record a tracker encodes fits a message.
    const _: () = assert!(RECORD_BYTES <= axolotl_root_service::RECORD_BYTES);

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

    fn now_ms() -> u64 {
        now_us() / 1000
    }

    const TIMER: Channel = Channel::new(MONITOR_TIMER_ID);

    /// A restart waiting for its backoff.
    #[derive(Clone, Copy)]
    struct Pending {
        cause: Cause,
        /// Asked for by this control PD (a restart or release), not caused by a failure.
        requested_by: Option<u8>,
        /// To begin as at boot (a VM's start or reboot): `START_FRESH` for the new incarnation.
        fresh: bool,
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
                    requested_by: None,
                    fresh: false,
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
        /// The recoveries control-pd may read (docs/control.md).
        log: RecoveryLog<LOG_ENTRIES>,
        /// Per PD: its last restart's latency and last heartbeat answer, for status.
        facts: [Facts; MAX_PDS],
        /// Injections carried out: mixed into a bit flip's seed, so two in one counter tick
        /// still differ.
        injections: u64,
        /// Whose code the root task compares with its image next (code scrubbing).
        scrubber: Scrubber,
        /// When `tick` last ran (ms): checked at the root task's pings (`timer_stalled`).
        last_tick_ms: u64,
    }

    /// Recovery-log entries kept for control-pd.
    const LOG_ENTRIES: usize = 32;

    impl Handler for Monitor {
        fn init(&mut self) {
            self.plan = plan();
            let Some(plan) = self.plan else {
                // A monitor without its plan handles nothing, yet its event loop would answer
                // the root task's pings: it fails instead, so the root task restarts it (and
                // holds it after its restart limit if the plan itself is bad). Seen in the
                // monitor's campaign (id 110): a flipped PC re-entered this code with a
                // corrupt register, and the monitor went on idle, undetected.
                panic!("the boot plan is unreadable; a monitor cannot go on without it");
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
            self.scrubber = Scrubber::new(now);
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

        /// The root task's ping, answered by the event loop: the monitor's own check that its
        /// timer path still runs (the loop may answer pings while the monitor's duties stopped).
        fn heartbeat(&mut self) {
            if self.plan.is_none() {
                return;
            }
            if let Some(ms) = axolotl_monitor_core::timer_stalled(now_ms(), self.last_tick_ms) {
                panic!(
                    "no timer event for {ms} ms, one is due every scrub step: my state is broken"
                );
            }
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
                self.facts[pd].last_heartbeat_ms = Some(start / 1000);
                return None;
            }
            if msg.label() == CONTROL {
                // A claim like a report: answered only if the SDF grants it. A Send gets no
                // answer (our reply slot is then empty, see the corruption report below).
                let reply = self.control(pd as u8, msg);
                self.rearm();
                return Some(reply);
            }
            if msg.label() == REPORT_RECOVERY_FAILED {
                // A claim about itself alone: counted, believed for what it says (nothing
                // else acts on it), and only after a restart of ours (`on_recovery_failed`).
                let name = plan.pds[pd].name.as_str();
                let Some(t) = self.trackers.get_mut(pd) else {
                    return Some(MessageInfo::new(1, 0, 0, 0));
                };
                let Some(n) = t.on_recovery_failed() else {
                    println!(
                        "monitor: {name} reports a failed recovery, but no restart of ours \
                         precedes it: declined"
                    );
                    return Some(MessageInfo::new(1, 0, 0, 0));
                };
                journal(pd, t);
                println!(
                    "monitor: {name} generation {}: recovery failed, started afresh ({n} so far)",
                    t.generation()
                );
                return Some(MessageInfo::new(0, 0, 0, 0));
            }
            if let Some(report) = CorruptionReport::from_message(msg, get_mr) {
                // A PD's claim about the peer of one of its channels, judged (see
                // docs/monitor.md, "Trust model"). The answer goes out only if the report
                // was a Call: the kernel empties our reply slot for a Send.
                let reporter = pd as u8;
                let name = plan.pds[pd].name.as_str();
                // A report that names no generation is declined.
                let CorruptionReport {
                    channel: ch,
                    accused,
                } = report;
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
                    Verdict::Reset { peer } => {
                        println!(
                            "monitor: {name} reported {} corrupt, which cannot be restarted: \
                             restarting {name} resets their connection",
                            plan.pds[peer as usize].name.as_str()
                        );
                        self.recover(pd, Cause::ConnectionReset { peer }, start);
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
            self.recover(pd, Cause::from_message(msg, get_mr), start);
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
                    self.log.push(
                        start / 1000,
                        name,
                        Event::Held,
                        t.generation(),
                        &cause,
                        None,
                    );
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
                ask(
                    Request::Restart {
                        pd: pd as u8,
                        generation: p.generation as u64,
                        fresh: p.fresh,
                        record: Journal::restarted(self.trackers.get(pd), at),
                    },
                    |_| (),
                )
            };
            let Ok(Reply::Restarted { generation, how }) = r else {
                // Kept pending and asked again: dropped, the PD would stay stopped and
                // unwatched for good.
                println!(
                    "monitor: the root task refused to restart {name} ({}); retrying in \
                     {RETRY_MS} ms",
                    Refusal(&r)
                );
                if let Some(t) = self.trackers.get_mut(pd) {
                    t.on_refused(at);
                    // Still asked for, still fresh.
                    self.pending[pd] = Pending::of(t).map(|n| Pending {
                        requested_by: p.requested_by,
                        fresh: p.fresh,
                        ..n
                    });
                    journal(pd, t);
                }
                return;
            };
            let done = now_us();
            if let Some(t) = self.trackers.get_mut(pd) {
                t.on_restarted(at);
            }
            self.heartbeats.restarted(pd as u8, done / 1000);
            self.facts[pd].last_recovery_us = Some(done - start);
            // The root task's count is the authority: ours starts over when we do.
            if let Some(by) = p.requested_by {
                let by = plan
                    .pds
                    .get(by as usize)
                    .map_or("control", |c| c.name.as_str());
                println!(
                    "{}",
                    log::Requested {
                        pd: name,
                        by,
                        generation: generation as u32,
                        us: done - start,
                        how,
                    }
                );
                let why = RequestedBy(by);
                self.log.push(
                    at,
                    name,
                    Event::Restarted,
                    generation as u32,
                    &why,
                    Some(done - start),
                );
            } else {
                println!(
                    "{}",
                    log::restarted(name, &p.cause, generation as u32, done - start, how)
                );
                self.log.push(
                    at,
                    name,
                    Event::Restarted,
                    generation as u32,
                    &p.cause,
                    Some(done - start),
                );
            }
            tell_dependants(plan, pd);
            #[cfg(feature = "fault-injection")]
            inject(name);
        }

        /// Answers control PD `from`'s request (label `CONTROL`), whose words are in our
        /// IPC buffer: the host's frame payload as control relayed it (its CRC checked here,
        /// end to end: docs/control.md, "End to end"), checked against the grant, carried
        /// out, and the reply sealed (our own CRC, which the host checks) into the buffer.
        fn control(&mut self, from: u8, msg: MessageInfo) -> MessageInfo {
            let (id, reply) = self.control_reply(from, msg);
            let mut sealed = [0u8; axolotl_control_proto::MAX_PAYLOAD];
            let n = axolotl_control_proto::seal(id, &reply, &mut sealed)
                .or_else(|_| {
                    let unavailable = ProtoReply::Error(ProtoError::Unavailable);
                    axolotl_control_proto::seal(id, &unavailable, &mut sealed)
                })
                .unwrap_or(0);
            // SAFETY: our IPC buffer is mapped for our lifetime; nothing else uses it until
            // the reply is sent.
            let words = unsafe { msg_words() };
            let len = control::ipc::encode_bytes(&sealed[..n], words).unwrap_or(0);
            MessageInfo::new(0, 0, 0, len as u64)
        }

        /// The request id to answer with and the answer.
        fn control_reply(&mut self, from: u8, msg: MessageInfo) -> (u16, ProtoReply) {
            // Copied out before anything we do overwrites our IPC buffer.
            let mut payload = [0u8; control::ipc::MAX_BYTES];
            // SAFETY: our IPC buffer is mapped for our lifetime; this view ends here.
            let words = unsafe { msg_words() };
            let got = control::ipc::decode_bytes(msg.length() as usize, words, &mut payload);
            let payload = match got {
                Ok(n) => &payload[..n],
                Err(e) => return (0, ProtoReply::Error(e)),
            };
            // Opened once, before the grant is asked: only an intact payload's id is worth
            // answering with (`open` gives 0 for a CRC that fails, which has the host send
            // again), whatever the answer turns out to be.
            let opened = axolotl_control_proto::open::<ProtoRequest>(payload);
            let id = match opened {
                Ok((id, _)) | Err((id, _)) => id,
            };
            let Some(plan) = self.plan else {
                return (id, ProtoReply::Error(ProtoError::Unavailable));
            };
            let grant = control::Grant::from_bits(plan.pds[from as usize].control);
            if grant == control::Grant::default() {
                return (id, ProtoReply::Error(ProtoError::NotGranted));
            }
            let request = match opened {
                Ok((_, request)) => request,
                Err((id, e)) => {
                    if e == ProtoError::BadCrc {
                        // control checks every frame's CRC before it relays the payload:
                        // bytes that fail it here were damaged by control. Answered (the
                        // host sends again), never acted on.
                        println!("monitor: a request relayed by control arrived damaged (CRC)");
                    }
                    return (id, ProtoReply::Error(e));
                }
            };
            let checked = match control::check(plan, from, grant, &request) {
                Ok(c) => c,
                Err(e) => return (id, ProtoReply::Error(e)),
            };
            let reply = self.perform_control(from, plan, checked);
            // A reply of another kind than the request's is this monitor gone wrong (its
            // campaign on main, id 836: a PC flip answered a status request `Done`).
            if !control::reply_fits(&checked, &reply) {
                panic!(
                    "monitor: {checked:?} answered with another kind of reply: own state corrupt, fail-stop"
                );
            }
            (id, reply)
        }

        /// What `checked`, from control PD `from`, does and answers.
        fn perform_control(
            &mut self,
            from: u8,
            plan: &'static BootPlan,
            checked: control::Checked,
        ) -> ProtoReply {
            let now = now_ms();
            match checked {
                control::Checked::Status { index } => {
                    let i = index as usize;
                    let tracker = (plan.monitor != Some(index))
                        .then(|| self.trackers.get(i))
                        .flatten();
                    let mut facts = self.facts[i];
                    facts.cpu_us = cpu_time(index);
                    match control::status(plan, index, tracker, facts, now) {
                        Some(status)
                            if !control::row_sound(plan, &status) || status.index != index =>
                        {
                            panic!(
                                "monitor: status row {index} disagrees with the plan: own state corrupt, fail-stop"
                            )
                        }
                        Some(status) => ProtoReply::Pd {
                            total: plan.pds.len() as u8,
                            status,
                        },
                        None => ProtoReply::Error(ProtoError::NoSuchIndex),
                    }
                }
                control::Checked::Log { seq } => match self.log.checked_at_or_after(seq, plan) {
                    Ok(e) => ProtoReply::Log(e.cloned()),
                    Err(n) => {
                        panic!(
                            "monitor: recovery log entry {n} names no PD: own state corrupt, fail-stop"
                        )
                    }
                },
                control::Checked::Command {
                    pd,
                    command,
                    if_generation,
                } => {
                    let done = self.trackers.get(pd as usize).is_some_and(|t| {
                        control::restart_done_already(
                            if_generation,
                            t.generation(),
                            self.pending[pd as usize].is_some(),
                        )
                    });
                    if done {
                        return ProtoReply::Done;
                    }
                    // A VMM held by `vm stop` comes back only afresh (its vCPUs are stopped:
                    // taking up a machine nobody resumes would leave it frozen). The hold's
                    // reason says so, journaled: a restarted monitor knows it too.
                    let fresh = self
                        .trackers
                        .get(pd as usize)
                        .is_some_and(|t| matches!(t.state(), State::Held(r) if r.vm_stopped()));
                    self.command(from, pd as usize, command, fresh)
                }
                control::Checked::Inject { pd, kind, at } => {
                    self.inject(from, pd as usize, kind, at)
                }
                control::Checked::Vm { vm, pd, op } => self.vm(from, vm, pd as usize, op),
            }
        }

        /// Injects `kind` into `pd` for control PD `from`, whose grant allows it: a crash is
        /// a real fault (the root task makes the PD run from an unmapped address), a hang a
        /// PD that stops answering its heartbeat (the root task suspends it); both then go
        /// through detection and recovery like any other failure.
        fn inject(
            &mut self,
            from: u8,
            pd: usize,
            kind: FaultKind,
            at: Option<BitTarget>,
        ) -> ProtoReply {
            let (Some(plan), Some(t)) = (self.plan, self.trackers.get(pd)) else {
                return ProtoReply::Error(ProtoError::Unavailable);
            };
            if !matches!(t.state(), State::Running) {
                return ProtoReply::Error(ProtoError::BadState);
            }
            let name = plan.pds[pd].name.as_str();
            let by = plan.pds[from as usize].name.as_str();
            // What a random pick is made from: the counter and the injections so far.
            let seed = now_us() ^ self.injections.rotate_left(32);
            // A bit flip's target, logged with it (a campaign's record of what it did): the
            // CLI's, replaying a case, or a random one.
            let flip = at.unwrap_or_else(|| {
                let (register, bit) = control::bit_flip_target(seed);
                BitTarget { register, bit }
            });
            let mut ring = None;
            let r = match kind {
                FaultKind::Crash => ask(Request::<Journal>::Crash { pd: pd as u8 }, |_| ()),
                FaultKind::BitFlip => ask(
                    Request::<Journal>::FlipBit {
                        pd: pd as u8,
                        register: flip.register,
                        bit: flip.bit,
                    },
                    |_| (),
                ),
                FaultKind::WildWrite => {
                    ask(Request::<Journal>::WildWrite { pd: pd as u8, seed }, |_| ())
                }
                FaultKind::CodeFlip => {
                    ask(Request::<Journal>::FlipCode { pd: pd as u8, seed }, |_| ())
                }
                FaultKind::RingCorruption => {
                    let t = match control::ring_target(plan, pd as u8, seed) {
                        Ok(t) => t,
                        Err(e) => return ProtoReply::Error(e),
                    };
                    ring = Some(t);
                    ask(
                        Request::<Journal>::CorruptRing {
                            pd: pd as u8,
                            region: t.region,
                            offset: t.offset,
                        },
                        |_| (),
                    )
                }
                FaultKind::Hang if self.heartbeats.armed(pd as u8) => {
                    ask(Request::<Journal>::Stop { pd: pd as u8 }, |_| ())
                }
                FaultKind::Hang => {
                    return ProtoReply::Error(ProtoError::Refused(axolotl_control_proto::text(
                        "not watched by heartbeats: a hang would go unnoticed",
                    )));
                }
            };
            let done = match (kind, &r) {
                (FaultKind::Crash | FaultKind::Hang, Ok(Reply::Done)) => Some(Injection::Done),
                (FaultKind::BitFlip, Ok(Reply::Done)) => Some(Injection::BitFlip(flip)),
                (FaultKind::WildWrite, Ok(Reply::Wrote { at, old, new })) => {
                    Some(Injection::WildWrite {
                        vaddr: *at,
                        old: *old,
                        new: *new,
                    })
                }
                (FaultKind::CodeFlip, Ok(Reply::Wrote { at, old, new })) => {
                    Some(Injection::CodeFlip {
                        vaddr: *at,
                        old: *old,
                        new: *new,
                    })
                }
                (FaultKind::RingCorruption, Ok(Reply::Wrote { at, old, new })) => {
                    // The root task wrote where we asked, a 32-bit index: anything else
                    // would be its answer to another request.
                    match (ring, u32::try_from(*old), u32::try_from(*new)) {
                        (Some(t), Ok(old), Ok(new)) if *at == t.offset as u64 => {
                            Some(Injection::RingCorruption {
                                region: plan
                                    .regions
                                    .get(t.region as usize)
                                    .and_then(|r| r.name.as_str().try_into().ok())
                                    .unwrap_or_default(),
                                offset: t.offset,
                                word: t.word,
                                old,
                                new,
                            })
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let Some(done) = done else {
                println!(
                    "monitor: the root task refused to inject {} into {name} ({})",
                    kind.as_str(),
                    Refusal(&r)
                );
                return ProtoReply::Error(ProtoError::Refused(axolotl_control_proto::text(
                    "the root task refused",
                )));
            };
            self.injections += 1;
            println!("monitor: {by} injected {}{done} into {name}", kind.as_str());
            let why = Injected(kind.as_str(), &done, by);
            let g = t.generation();
            self.log
                .push(now_ms(), name, Event::Injected, g, &why, None);
            ProtoReply::Injected(done)
        }

        /// Carries out control PD `from`'s `op` on VM `vm`, through its VMM `pd`: a reboot is
        /// a requested restart of the VMM that starts the guest afresh; a stop holds the VMM
        /// and stops the guest's vCPUs with it (the root task's `StopVm`); a start releases a
        /// stopped VMM, which boots the guest afresh. As for PDs, a start of a running VM or
        /// a stop or reboot of a stopped one is `BadState`.
        fn vm(&mut self, from: u8, vm: u8, pd: usize, op: VmOp) -> ProtoReply {
            let (Some(plan), Some(t)) = (self.plan, self.trackers.get(pd)) else {
                return ProtoReply::Error(ProtoError::Unavailable);
            };
            let by = plan.pds[from as usize].name.as_str();
            let name = plan.vms.get(vm as usize).map_or("?", |v| v.name.as_str());
            let running = matches!(t.state(), State::Running);
            let reply = match op {
                VmOp::Reboot => self.command(from, pd, Command::Restart, true),
                VmOp::Start => self.command(from, pd, Command::Release, true),
                VmOp::Stop if !running => ProtoReply::Error(ProtoError::BadState),
                VmOp::Stop => {
                    let r = ask(Request::<Journal>::StopVm { pd: pd as u8 }, |_| ());
                    if !matches!(r, Ok(Reply::Done)) {
                        println!(
                            "monitor: the root task refused to stop VM {name} ({})",
                            Refusal(&r)
                        );
                        return ProtoReply::Error(ProtoError::Refused(
                            axolotl_control_proto::text("the root task refused"),
                        ));
                    }
                    self.command(from, pd, Command::StopVm, false)
                }
            };
            if reply == ProtoReply::Done {
                println!("monitor: {by} asked VM {name} to {}", op.as_str());
            }
            reply
        }

        /// Carries out control PD `from`'s `command` on `pd`; a restart it causes starts the
        /// PD afresh if `fresh`.
        fn command(&mut self, from: u8, pd: usize, command: Command, fresh: bool) -> ProtoReply {
            let (Some(plan), Some(t)) = (self.plan, self.trackers.get_mut(pd)) else {
                return ProtoReply::Error(ProtoError::Unavailable);
            };
            let name = plan.pds[pd].name.as_str();
            let was_pending = self.pending[pd].is_some();
            let was_held = matches!(t.state(), State::Held(_));
            let now = now_ms();
            let decision = t.command(now, command);
            match decision {
                Ok(Decision::RestartAt { at_ms, .. }) => {
                    if !was_pending {
                        self.pending[pd] = Pending::of(t).map(|p| Pending {
                            requested_by: Some(from),
                            fresh,
                            ..p
                        });
                        self.heartbeats.pause(pd as u8);
                        if at_ms <= now {
                            self.restart(pd);
                        } else {
                            journal(pd, t);
                        }
                    }
                }
                Ok(Decision::Hold { reason }) => {
                    if !was_held {
                        // A pending restart is called off.
                        self.pending[pd] = None;
                        journal(pd, t);
                        self.heartbeats.pause(pd as u8);
                        // Held is stopped, whatever was running.
                        stop(pd, name);
                        println!("{}", log::holding(name, &reason));
                        let g = t.generation();
                        self.log.push(now, name, Event::Held, g, &reason, None);
                    }
                }
                Err(_) => {}
            }
            control::command_reply(decision)
        }

        /// Timer work: due restarts, hung PDs, pings.
        fn tick(&mut self) {
            let now = now_ms();
            self.last_tick_ms = now;
            #[cfg(feature = "cpu-rounds")]
            self.cpu_round();
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
            self.scrub(now);
        }

        /// Every PD's CPU time and its guest's (counter cycles), with the counter now: a
        /// harness takes the differences between rounds (xtask's per-PD split of a
        /// transfer). Nothing from a kernel without `cpu-time`.
        #[cfg(feature = "cpu-rounds")]
        fn cpu_round(&self) {
            let Some(plan) = self.plan else {
                return;
            };
            let at = time::counter();
            for (pd, p) in plan.pds.iter().enumerate() {
                if let Ok(Reply::CpuTime {
                    pd_cycles,
                    guest_cycles,
                    ..
                }) = ask(Request::<Journal>::CpuTime { pd: pd as u8 }, |_| ())
                {
                    println!(
                        "monitor: cpu-round {at} {} {pd_cycles} {guest_cycles}",
                        p.name.as_str()
                    );
                }
            }
        }

        /// One step of code scrubbing, if due: the root task compares the next running PD's
        /// code with its image; a difference is a failure like a fault (`Cause::CodeCorrupt`).
        fn scrub(&mut self, now: u64) {
            let Some(plan) = self.plan else {
                return;
            };
            let (trackers, pending) = (&self.trackers, &self.pending);
            let Some(pd) = self.scrubber.due(now, trackers.len(), |pd| {
                plan.monitor != Some(pd as u8)
                    && pending[pd].is_none()
                    && matches!(trackers[pd].state(), State::Running)
            }) else {
                return;
            };
            match ask(Request::<Journal>::Scrub { pd: pd as u8 }, |_| ()) {
                Ok(Reply::Scrubbed { corrupt_at: 0 }) => {}
                Ok(Reply::Scrubbed { corrupt_at }) => {
                    self.recover(pd, Cause::CodeCorrupt { at: corrupt_at }, now_us());
                }
                r => println!(
                    "monitor: the root task could not scrub {} ({})",
                    plan.pds[pd].name.as_str(),
                    Refusal(&r)
                ),
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
            let next = earliest(
                earliest(restart, self.heartbeats.next_wakeup()),
                Some(self.scrubber.next_wakeup()),
            );
            // Counter value 0 is "never"; 1 is as good as any past time.
            let at = next.map_or(0, |ms| time::ms_to_counter(ms).max(1));
            if self.armed == Some(at) {
                return;
            }
            let r = ask(Request::<Journal>::SetTimer { at }, |_| ());
            if let Ok(Reply::Done) = r {
                self.armed = Some(at);
            } else {
                println!("monitor: the root task refused our timer ({})", Refusal(&r));
            }
        }
    }

    /// "<kind> (where) injected by <control PD>", a log entry's cause.
    struct Injected<'a>(&'a str, &'a Injection, &'a str);

    impl fmt::Display for Injected<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}{} injected by {}", self.0, self.1, self.2)
        }
    }

    /// "requested by <control PD>", the cause of a requested restart in the recovery log.
    struct RequestedBy<'a>(&'a str);

    impl fmt::Display for RequestedBy<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "requested by {}", self.0)
        }
    }

    /// Signals every PD that depends on `pd` (`depends_on`) on its channel to it, so it looks
    /// at what they share (its rings see the new generation), and says whom it told.
    fn tell_dependants(plan: &BootPlan, pd: usize) {
        use core::fmt::Write;
        let mut told = heapless::String::<200>::new();
        for l in plan
            .dependant_links()
            .filter(|l| l.dependency as usize == pd)
        {
            axolotl_sys::signal(dependant_signal_slot(l.k));
            let sep = if told.is_empty() { "" } else { ", " };
            let _ = write!(
                told,
                "{sep}{}",
                plan.pds[l.dependant as usize].name.as_str()
            );
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
        let r = ask(Request::<Journal>::Stop { pd: pd as u8 }, |_| ());
        if !matches!(r, Ok(Reply::Done)) {
            println!(
                "monitor: the root task refused to stop {name} ({})",
                Refusal(&r)
            );
        }
    }

    /// Journals `pd`'s bookkeeping with the root task, for a monitor that may follow us.
    fn journal(pd: usize, t: &Tracker) {
        let r = ask(
            Request::Record {
                pd: pd as u8,
                record: Journal::Now(t),
            },
            |_| (),
        );
        if !matches!(r, Ok(Reply::Done)) {
            println!(
                "monitor: the root task refused the record of PD {pd} ({})",
                Refusal(&r)
            );
        }
    }

    /// A tracker's record to journal, encoded straight into our IPC buffer.
    enum Journal<'a> {
        /// None.
        Empty,
        /// As it is.
        Now(&'a Tracker),
        /// As it will be once the PD restarted at this time (ms).
        Restarted(&'a Tracker, u64),
    }

    impl<'a> Journal<'a> {
        fn restarted(t: Option<&'a Tracker>, at: u64) -> Self {
            t.map_or(Journal::Empty, |t| Journal::Restarted(t, at))
        }
    }

    impl RecordSource for Journal<'_> {
        fn write_into(self, out: &mut [u8]) -> Option<usize> {
            // Within RECORD_BYTES (asserted above) a tracker always encodes: the tracker's
            // own tests pin its largest record. Should one not, nothing is journaled, and a
            // successor starts that PD's bookkeeping afresh, as for any unreadable record.
            let out = &mut out[..RECORD_BYTES];
            let n = match self {
                Journal::Empty => Some(0),
                Journal::Now(t) => t.encode(out).map(|b| b.len()),
                Journal::Restarted(t, at) => t.encode_restarted(at, out).map(|b| b.len()),
            };
            Some(n.unwrap_or(0))
        }
    }

    /// Why the root task's answer is not the one asked for.
    enum Unusable {
        /// The request could not be encoded.
        Unsent,
        Malformed(Malformed),
    }

    /// An answer that is not the one asked for, as the log says it.
    struct Refusal<'r, T>(&'r Result<Reply<T>, Unusable>);

    impl<T> fmt::Display for Refusal<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Ok(Reply::Refused(why)) => write!(f, "reason {}", *why as u64),
                Ok(_) => f.write_str("an answer to another request"),
                Err(Unusable::Unsent) => f.write_str("the request did not fit a message"),
                Err(Unusable::Malformed(m)) => write!(f, "a malformed answer: {m}"),
            }
        }
    }

    /// PD `pd`'s CPU time and its guest's, in microseconds, from the root task (which holds
    /// the TCBs); `None` from a kernel built without `cpu-time`.
    fn cpu_time(pd: u8) -> Option<(u64, u64)> {
        match ask(Request::<Journal>::CpuTime { pd }, |_| ()) {
            Ok(Reply::CpuTime {
                pd_cycles,
                guest_cycles,
                ..
            }) => {
                let us = |c: u64| {
                    let f = u128::from(time::frequency().max(1));
                    (u128::from(c) * 1_000_000 / f) as u64
                };
                Some((us(pd_cycles), us(guest_cycles)))
            }
            _ => None,
        }
    }

    /// Asks the root task `req` (the root service, `axolotl_root_service`): its reply, checked,
    /// with a recalled record handed to `read` while it is still in our IPC buffer.
    fn ask<T>(
        req: Request<impl RecordSource>,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Reply<T>, Unusable> {
        let op = req.op();
        // SAFETY: our IPC buffer is mapped for our lifetime; this view of it ends before the
        // call.
        let sent = req
            .encode(unsafe { msg_words() })
            .map_err(|_| Unusable::Unsent)?;
        call(op, sent, read)
    }

    /// Sends `sent`, a request of `op`, and decodes the reply.
    fn call<T>(op: Op, sent: Sent, read: impl FnOnce(&[u8]) -> T) -> Result<Reply<T>, Unusable> {
        let r = axolotl_sys::call(ROOT_SERVICE_CAP, sent.info, sent.regs);
        // SAFETY: as in `ask`; this view ends with `read`, before any other system call.
        let ipc = unsafe { msg_words() };
        Reply::decode(
            op,
            Received {
                info: r.info,
                regs: r.mrs,
                ipc,
            },
        )
        .map(|reply| reply.map_record(read))
        .map_err(Unusable::Malformed)
    }

    /// PD `pd`'s journaled tracker (`None` if nothing valid was journaled) and the root
    /// task's generation of it; `None` if the root task would not say.
    fn recall(pd: usize, resilience: &Resilience) -> Option<(Option<Tracker>, u32)> {
        let r = ask(Request::<Journal>::Recall { pd: pd as u8 }, |record| {
            (!record.is_empty()).then(|| Tracker::decode(resilience, record))
        });
        let Ok(Reply::Recalled { generation, record }) = r else {
            return None;
        };
        let generation = generation.min(u32::MAX as u64 - 1) as u32;
        let journaled = match record {
            Some(None) => {
                println!("monitor: the journal of PD {pd} is unreadable; starting it afresh");
                None
            }
            r => r.flatten(),
        };
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

    /// A restart request whose record is longer than any: refused (`Reason::Failed`). Made
    /// by hand, as no encoder makes it.
    fn malformed_restart(pd: usize) -> Result<Reply<()>, Unusable> {
        let sent = Sent {
            info: MessageInfo::new(Op::Restart as u64, 0, 0, 3),
            regs: [pd as u64, 0, u64::MAX, 0],
        };
        call(Op::Restart, sent, |_| ())
    }

    axolotl_pd::protection_domain!(Monitor {
        plan: None,
        trackers: heapless::Vec::new(),
        heartbeats: Heartbeats::new(),
        pending: [None; MAX_PDS],
        armed: None,
        reports: Reports::new(),
        log: RecoveryLog::new(),
        facts: [Facts {
            last_recovery_us: None,
            last_heartbeat_ms: None,
            cpu_us: None,
        }; MAX_PDS],
        injections: 0,
        scrubber: Scrubber::new(0),
        last_tick_ms: 0,
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("monitor-pd runs in every system `cargo xtask build --system` builds");
}
