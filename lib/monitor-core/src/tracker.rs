//! Restart policy bookkeeping for one PD, from its `axolotl_boot_plan::Resilience`.
//!
//! Rules (docs/sdf.md, "Resilience extensions"):
//!
//! - `restart="never"` holds the PD on any stop; `on-failure` restarts after a failure
//!   ([`Cause::is_failure`]) and holds after a clean exit; `always` restarts after both.
//! - At most `restart_limit` restarts within any `restart_window_ms` (sliding); the restart
//!   that would exceed it is refused and the PD is held. A limit of 0, or a window of 0, is
//!   unlimited. Limits above [`RESTART_HISTORY`] are enforced as [`RESTART_HISTORY`] (the
//!   window is checked against remembered restart times, without an allocator).
//! - The first restart of a run is immediate; restart `n` (0-based) of a run, `n >= 1`,
//!   waits `min(restart_backoff_ms * 2^(n-1), restart_backoff_max_ms)`: backoff is for
//!   repeated failures. A run ends when the PD has run `restart_window_ms` since its last
//!   (re)start without failing: the next failure is restarted at once again.
//! - Floor: a restarted PD is not restarted again before it ran [`MIN_RUN_MS`] (as Hubris's
//!   minimum run time), whatever the SDF says: at most 20 restarts a second.
//! - A restart the root task refused stays pending and is retried [`RETRY_MS`] later.
//! - Generations: 0 at boot, +1 per restart, handed to the restarted PD (and its rings).
//! - While a restart is pending or the PD is held, further failure reports (a watchdog
//!   expiry, a peer's corruption report) change nothing and get the same answer.

use core::fmt;

use axolotl_boot_plan::model::{Resilience, RestartPolicy};
use heapless::Deque;

use crate::Cause;

/// How many restart times a tracker remembers: the largest limit enforced exactly.
pub const RESTART_HISTORY: usize = 32;

/// The least time a restarted PD runs before it is restarted again (Hubris: 50 ms): the
/// floor under any SDF policy, so that no backoff, a high limit and a tiny window make no
/// restart storm.
pub const MIN_RUN_MS: u64 = 50;

/// How long after the root task refused a restart the monitor asks again.
pub const RETRY_MS: u64 = 100;

/// What the monitor should do with a PD that stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restore and restart the PD at `at_ms` (monotonic milliseconds), with `generation`;
    /// then call [`Tracker::on_restarted`].
    RestartAt { at_ms: u64, generation: u32 },
    /// Leave the PD stopped.
    Hold { reason: HoldReason },
}

/// Why a PD stays down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HoldReason {
    /// `restart="never"`.
    Never,
    /// It exited cleanly and its policy is `on-failure`.
    Exited,
    /// Another restart would exceed `restart_limit` within `restart_window_ms`.
    LimitReached { limit: u32, window_ms: u64 },
    /// The 32-bit generation counter is used up (after 2^32 - 2 restarts).
    GenerationsExhausted,
    /// The operator held it (control-pd, `Command::Hold`). After the others, so records
    /// journaled before it existed decode unchanged.
    Operator,
    /// The operator stopped the VM it runs (`vm stop`, `Command::StopVm`): its vCPUs are
    /// stopped with it, so it comes back only afresh (a restarted monitor learns that from
    /// the journal too). Last, for the same reason.
    VmStopped,
}

impl HoldReason {
    /// Whether the PD, a VMM, was held by a `vm stop`: it must start afresh.
    pub const fn vm_stopped(self) -> bool {
        matches!(self, HoldReason::VmStopped)
    }
}

/// What the operator (control-pd, docs/control.md) asks of a PD's tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Restart the running PD from its pristine image now (not before it ran
    /// [`MIN_RUN_MS`]), whatever its policy and limit: an operator's restart is no
    /// failure and does not lengthen its backoff run (once done it counts among its
    /// restarts, and so in its limit's window, like any other).
    Restart,
    /// Stop the PD and keep it stopped: its policy no longer restarts it.
    Hold,
    /// As `Hold`, for a VMM whose VM the operator stopped (`HoldReason::VmStopped`).
    StopVm,
    /// Restart a held PD, whatever held it, and let its policy govern it again from a fresh
    /// run.
    Release,
}

/// Why a [`Command`] cannot be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandRefused {
    /// Restart of a held PD (release it), release of a PD that is not held.
    BadState,
    /// The generation counter is used up.
    GenerationsExhausted,
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HoldReason::Never => f.write_str("restart=never"),
            HoldReason::Exited => f.write_str("exited and restart=on-failure"),
            HoldReason::LimitReached { limit, window_ms } => {
                write!(f, "restart limit {limit} in {window_ms} ms reached")
            }
            HoldReason::GenerationsExhausted => f.write_str("generations exhausted"),
            HoldReason::Operator => f.write_str("held by the operator"),
            HoldReason::VmStopped => f.write_str("its VM stopped by the operator"),
        }
    }
}

/// Where a PD is, for the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    Running,
    /// Stopped, to be restarted at `at_ms` with `generation`.
    Restarting {
        at_ms: u64,
        generation: u32,
    },
    Held(HoldReason),
}

/// One PD's restart bookkeeping.
#[derive(Clone, Debug)]
pub struct Tracker {
    policy: RestartPolicy,
    limit: u32,
    window_ms: u64,
    backoff_ms: u64,
    backoff_max_ms: u64,
    generation: u32,
    restarts: u32,
    /// Restarts in the current run (0 after a quiet window).
    consecutive: u32,
    /// When the current incarnation started (boot or last restart).
    started_ms: u64,
    state: State,
    last_cause: Option<Cause>,
    /// When the last failure was reported (the pending restart's backoff counts from it).
    failed_ms: u64,
    /// Times of the most recent restarts, oldest first.
    history: Deque<u64, RESTART_HISTORY>,
    /// Restarts after which the PD said it could not recover its state and started afresh
    /// (a VMM that rebooted its guest): restarts, but not the kind the PD's users survive.
    failed_recoveries: u32,
}

/// What a tracker has learnt since boot, without the policy (that comes from the plan): the
/// monitor journals it with the root task after every decision, and a restarted monitor
/// resumes from it (`Tracker::restore`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub generation: u32,
    pub restarts: u32,
    pub consecutive: u32,
    pub started_ms: u64,
    pub state: State,
    pub last_cause: Option<Cause>,
    pub failed_ms: u64,
    pub failed_recoveries: u32,
    pub history: heapless::Vec<u64, RESTART_HISTORY>,
}

/// A [`Record`] as it is encoded (same fields, same order: the same bytes), with the history
/// taken from wherever it is rather than collected into a vector first.
#[derive(serde::Serialize)]
#[serde(bound = "")]
struct RecordOut<I: Iterator<Item = u64> + Clone> {
    generation: u32,
    restarts: u32,
    consecutive: u32,
    started_ms: u64,
    state: State,
    last_cause: Option<Cause>,
    failed_ms: u64,
    failed_recoveries: u32,
    history: Seq<I>,
}

/// A sequence serialized from an iterator whose length is known.
struct Seq<I>(I);

impl<I: Iterator<Item = u64> + Clone> serde::Serialize for Seq<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// The largest encoded [`Record`]: 32 history times of up to 10 bytes, the rest well under
/// 100 (postcard varints).
pub const RECORD_BYTES: usize = 448;

impl Tracker {
    /// A PD that started at `now_ms` (boot), generation 0.
    pub fn new(resilience: &Resilience, now_ms: u64) -> Self {
        Tracker {
            policy: resilience.restart,
            limit: resilience.restart_limit,
            window_ms: resilience.restart_window_ms,
            backoff_ms: resilience.restart_backoff_ms,
            backoff_max_ms: resilience.restart_backoff_max_ms,
            generation: 0,
            restarts: 0,
            consecutive: 0,
            started_ms: now_ms,
            state: State::Running,
            last_cause: None,
            failed_ms: now_ms,
            history: Deque::new(),
            failed_recoveries: 0,
        }
    }

    /// What to journal.
    pub fn record(&self) -> Record {
        Record {
            generation: self.generation,
            restarts: self.restarts,
            consecutive: self.consecutive,
            started_ms: self.started_ms,
            state: self.state,
            last_cause: self.last_cause,
            failed_ms: self.failed_ms,
            failed_recoveries: self.failed_recoveries,
            history: self.history.iter().copied().collect(),
        }
    }

    /// `record()` encoded into `buf` (at least [`RECORD_BYTES`]): the used prefix.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Option<&'b mut [u8]> {
        let out = RecordOut {
            generation: self.generation,
            restarts: self.restarts,
            consecutive: self.consecutive,
            started_ms: self.started_ms,
            state: self.state,
            last_cause: self.last_cause,
            failed_ms: self.failed_ms,
            failed_recoveries: self.failed_recoveries,
            history: Seq(self.history_iter()),
        };
        postcard::to_slice(&out, buf).ok()
    }

    /// The restart times, oldest first, as a cloneable iterator (a deque's own is not).
    fn history_iter(&self) -> impl Iterator<Item = u64> + Clone + '_ {
        let (a, b) = self.history.as_slices();
        a.iter().chain(b).copied()
    }

    /// What [`Tracker::encode`] gives after [`Tracker::on_restarted`]`(now_ms)`, without
    /// changing the tracker: the monitor sends it with the restart request, before it knows
    /// whether the restart happens (a copy of the tracker cost more than the rest of its
    /// decision).
    pub fn encode_restarted<'b>(&self, now_ms: u64, buf: &'b mut [u8]) -> Option<&'b mut [u8]> {
        let State::Restarting { generation, .. } = self.state else {
            return self.encode(buf);
        };
        let full = self.history.is_full() as usize;
        let out = RecordOut {
            generation,
            restarts: self.restarts.saturating_add(1),
            consecutive: self.consecutive,
            started_ms: now_ms,
            state: State::Running,
            last_cause: self.last_cause,
            failed_ms: self.failed_ms,
            failed_recoveries: self.failed_recoveries,
            history: Seq(self
                .history_iter()
                .skip(full)
                .chain(core::iter::once(now_ms))),
        };
        postcard::to_slice(&out, buf).ok()
    }

    /// A tracker with `resilience`'s policy that goes on from `record`. `None` if the record
    /// cannot be what a tracker journaled (the journal is the monitor's own, and a monitor
    /// that failed may have written nonsense): then the caller starts afresh.
    pub fn restore(resilience: &Resilience, record: &Record) -> Option<Self> {
        let mut t = Tracker::new(resilience, record.started_ms);
        let sorted = record.history.windows(2).all(|w| w[0] <= w[1]);
        let consistent = match record.state {
            State::Running => true,
            State::Restarting { generation, .. } => {
                Some(generation) == record.generation.checked_add(1)
            }
            State::Held(_) => true,
        };
        if !sorted || !consistent || record.restarts < record.history.len() as u32 {
            return None;
        }
        t.generation = record.generation;
        t.restarts = record.restarts;
        t.consecutive = record.consecutive;
        t.state = record.state;
        t.last_cause = record.last_cause;
        t.failed_ms = record.failed_ms;
        t.failed_recoveries = record.failed_recoveries;
        for &h in &record.history {
            let _ = t.history.push_back(h);
        }
        Some(t)
    }

    /// [`restore`](Self::restore) from bytes `encode` wrote.
    pub fn decode(resilience: &Resilience, bytes: &[u8]) -> Option<Self> {
        let record: Record = postcard::from_bytes(bytes).ok()?;
        Tracker::restore(resilience, &record)
    }

    /// Brings a restored tracker in line with the root task's generation of the PD, the
    /// authority (it performs the restarts): a journaled pending restart that the root task
    /// already carried out (the monitor failed before journaling its completion) counts as
    /// done at `now_ms`; a generation the journal never heard of is taken over. Whether the
    /// pending restart was completed.
    pub fn reconcile(&mut self, root_generation: u32, now_ms: u64) -> bool {
        if let State::Restarting { generation, .. } = self.state
            && root_generation >= generation
        {
            self.on_restarted(now_ms);
            self.generation = root_generation;
            return true;
        }
        if root_generation > self.generation {
            self.generation = root_generation;
            if let State::Restarting { at_ms, .. } = self.state {
                self.state = State::Restarting {
                    at_ms,
                    generation: root_generation + 1,
                };
            }
        }
        false
    }

    /// When the last failure was reported.
    pub fn failed_ms(&self) -> u64 {
        self.failed_ms
    }

    /// The PD stopped at `now_ms` because of `cause`: restart it (when) or hold it.
    pub fn on_failure(&mut self, now_ms: u64, cause: Cause) -> Decision {
        match self.state {
            State::Running => {}
            State::Restarting { at_ms, generation } => {
                return Decision::RestartAt { at_ms, generation };
            }
            State::Held(reason) => return Decision::Hold { reason },
        }
        self.last_cause = Some(cause);
        self.failed_ms = now_ms;
        let restart = match self.policy {
            RestartPolicy::Never => Err(HoldReason::Never),
            RestartPolicy::OnFailure if !cause.is_failure() => Err(HoldReason::Exited),
            RestartPolicy::OnFailure | RestartPolicy::Always => Ok(()),
        };
        if let Err(reason) = restart {
            return self.hold(reason);
        }
        if now_ms.saturating_sub(self.started_ms) >= self.window_ms {
            self.consecutive = 0;
        }
        let delay = match self.consecutive {
            0 => 0,
            n => self.backoff(n - 1),
        };
        let mut at_ms = now_ms.saturating_add(delay);
        if self.restarts > 0 {
            at_ms = at_ms.max(self.started_ms.saturating_add(MIN_RUN_MS));
        }
        if self.window_full(at_ms) {
            return self.hold(HoldReason::LimitReached {
                limit: self.limit,
                window_ms: self.window_ms,
            });
        }
        // u32::MAX is never handed out, so `axolotl_ring::ring_generation` cannot wrap.
        let Some(generation) = self.generation.checked_add(1).filter(|&g| g < u32::MAX) else {
            return self.hold(HoldReason::GenerationsExhausted);
        };
        self.consecutive = self.consecutive.saturating_add(1);
        self.state = State::Restarting { at_ms, generation };
        Decision::RestartAt { at_ms, generation }
    }

    /// The root task refused the pending restart at `now_ms`: it stays pending, due
    /// [`RETRY_MS`] later (same generation). The new due time, or `None` if none was pending.
    pub fn on_refused(&mut self, now_ms: u64) -> Option<u64> {
        let State::Restarting { generation, .. } = self.state else {
            return None;
        };
        let at_ms = now_ms.saturating_add(RETRY_MS);
        self.state = State::Restarting { at_ms, generation };
        Some(at_ms)
    }

    /// The monitor restarted the PD at `now_ms`: returns its new generation, or `None` (and
    /// changes nothing) if no restart was pending.
    pub fn on_restarted(&mut self, now_ms: u64) -> Option<u32> {
        let State::Restarting { generation, .. } = self.state else {
            return None;
        };
        self.generation = generation;
        self.restarts = self.restarts.saturating_add(1);
        self.started_ms = now_ms;
        if self.history.is_full() {
            self.history.pop_front();
        }
        let _ = self.history.push_back(now_ms);
        self.state = State::Running;
        Some(generation)
    }

    /// When the pending restart is due, if one is.
    pub fn due_at(&self) -> Option<u64> {
        match self.state {
            State::Restarting { at_ms, .. } => Some(at_ms),
            _ => None,
        }
    }

    /// Delay before restart `n` (0-based) of a run: `min(backoff * 2^n, backoff_max)`.
    pub fn backoff(&self, n: u32) -> u64 {
        let factor = 1u64.checked_shl(n).unwrap_or(u64::MAX);
        self.backoff_ms
            .saturating_mul(factor)
            .min(self.backoff_max_ms)
    }

    /// The limit as enforced: `None` if unlimited.
    pub fn effective_limit(&self) -> Option<u32> {
        if self.limit == 0 || self.window_ms == 0 {
            None
        } else {
            Some(self.limit.min(RESTART_HISTORY as u32))
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    /// Generation of the current (or last) incarnation.
    /// The PD says its last restart did not recover its state (it started afresh): counted,
    /// with the total so far. A claim about itself alone, so believed for what it says, but
    /// only after a restart of ours: `None` (declined, nothing counted) for a PD that was
    /// never restarted, or whose restart is still pending.
    pub fn on_recovery_failed(&mut self) -> Option<u32> {
        if self.generation == 0 || self.state != State::Running {
            return None;
        }
        self.failed_recoveries = self.failed_recoveries.saturating_add(1);
        Some(self.failed_recoveries)
    }

    /// Failed recoveries so far ([`Tracker::on_recovery_failed`]).
    pub fn failed_recoveries(&self) -> u32 {
        self.failed_recoveries
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Restarts done since boot.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
    /// Restarts in the current run (what the next backoff doubles from).
    pub fn consecutive(&self) -> u32 {
        self.consecutive
    }
    pub fn last_cause(&self) -> Option<Cause> {
        self.last_cause
    }
    /// When the current incarnation started (boot or its last restart).
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    fn hold(&mut self, reason: HoldReason) -> Decision {
        self.state = State::Held(reason);
        Decision::Hold { reason }
    }

    /// Would a restart at `at_ms` make more than the limit within one window?
    /// The operator's `command` at `now_ms`: the decision to carry out (a restart is
    /// pending, as after a failure, and is done the same way), or why not. A restart already
    /// pending answers the same decision, and a hold of a held PD keeps its reason: a
    /// retried command does nothing twice.
    pub fn command(&mut self, now_ms: u64, command: Command) -> Result<Decision, CommandRefused> {
        match (command, self.state) {
            (Command::Restart, State::Restarting { at_ms, generation }) => {
                Ok(Decision::RestartAt { at_ms, generation })
            }
            (Command::Restart, State::Held(_)) => Err(CommandRefused::BadState),
            (Command::Restart, State::Running) => {
                let mut at_ms = now_ms;
                if self.restarts > 0 {
                    at_ms = at_ms.max(self.started_ms.saturating_add(MIN_RUN_MS));
                }
                self.pend(now_ms, at_ms)
            }
            (Command::Hold | Command::StopVm, State::Held(reason)) => Ok(Decision::Hold { reason }),
            (Command::Hold, _) => Ok(self.hold(HoldReason::Operator)),
            (Command::StopVm, _) => Ok(self.hold(HoldReason::VmStopped)),
            (Command::Release, State::Held(_)) => {
                // A fresh run: the backoff starts over.
                self.consecutive = 0;
                self.pend(now_ms, now_ms)
            }
            (Command::Release, _) => Err(CommandRefused::BadState),
        }
    }

    /// A restart due at `at_ms` that no failure asked for.
    fn pend(&mut self, now_ms: u64, at_ms: u64) -> Result<Decision, CommandRefused> {
        let generation = self
            .generation
            .checked_add(1)
            .filter(|&g| g < u32::MAX)
            .ok_or(CommandRefused::GenerationsExhausted)?;
        self.failed_ms = now_ms;
        self.state = State::Restarting { at_ms, generation };
        Ok(Decision::RestartAt { at_ms, generation })
    }

    /// Restarts within the window ending at `now_ms`, as the limit counts them.
    pub fn restarts_in_window(&self, now_ms: u64) -> u32 {
        self.history
            .iter()
            .filter(|&&t| t <= now_ms && now_ms - t < self.window_ms)
            .count() as u32
    }

    /// The restart limit per window as the SDF gives it (0: unlimited).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    fn window_full(&self, at_ms: u64) -> bool {
        let Some(limit) = self.effective_limit() else {
            return false;
        };
        let recent = self
            .history
            .iter()
            .filter(|&&t| at_ms.saturating_sub(t) < self.window_ms)
            .count();
        recent >= limit as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_boot_plan::model::Span;

    fn res(policy: RestartPolicy, limit: u32, window: u64, b: u64, bmax: u64) -> Resilience {
        Resilience {
            restart: policy,
            restart_limit: limit,
            restart_window_ms: window,
            restart_backoff_ms: b,
            restart_backoff_max_ms: bmax,
            heartbeat_ms: None,
            depends_on: Span::default(),
            standby: false,
        }
    }

    const FAULT: Cause = Cause::Panic { ip: 0 };

    /// Issue #17: the operator's restart, hold and release, each retried without effect.
    #[test]
    fn operator_commands() {
        let never = res(RestartPolicy::Never, 0, 1000, 100, 1000);
        let mut t = Tracker::new(&never, 0);
        let first = Decision::RestartAt {
            at_ms: 10,
            generation: 1,
        };
        // `never` is about failures: the operator may still restart it.
        assert_eq!(t.command(10, Command::Restart), Ok(first));
        assert_eq!(t.command(20, Command::Restart), Ok(first));
        assert_eq!(t.on_restarted(10), Some(1));
        assert_eq!(t.consecutive(), 0);
        // Not again before it ran MIN_RUN_MS.
        assert_eq!(
            t.command(11, Command::Restart),
            Ok(Decision::RestartAt {
                at_ms: 10 + MIN_RUN_MS,
                generation: 2
            })
        );
        t.on_restarted(10 + MIN_RUN_MS);
        assert_eq!(
            t.command(0, Command::Release),
            Err(CommandRefused::BadState)
        );
        let held = Decision::Hold {
            reason: HoldReason::Operator,
        };
        assert_eq!(t.command(100, Command::Hold), Ok(held));
        assert_eq!(t.command(101, Command::Hold), Ok(held));
        assert_eq!(
            t.command(102, Command::Restart),
            Err(CommandRefused::BadState)
        );
        // Held is final for failures, not for the operator.
        assert_eq!(t.on_failure(103, FAULT), held);
        assert_eq!(
            t.command(200, Command::Release),
            Ok(Decision::RestartAt {
                at_ms: 200,
                generation: 3
            })
        );
        assert_eq!(t.on_restarted(200), Some(3));
        assert_eq!(t.state(), State::Running);
        assert_eq!(t.restarts(), 3);
        assert_eq!(t.restarts_in_window(200), 3);
        assert_eq!(t.restarts_in_window(10 + 1000), 2);
        // Its policy governs it again.
        assert_eq!(
            t.on_failure(300, FAULT),
            Decision::Hold {
                reason: HoldReason::Never
            }
        );
        // A PD held by its policy (here: past its limit) can be released too, and a record
        // with the operator's hold journals and restores.
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 1, 1000, 0, 0), 0);
        t.on_failure(0, FAULT);
        t.on_restarted(0);
        assert!(matches!(t.on_failure(100, FAULT), Decision::Hold { .. }));
        assert!(t.command(150, Command::Release).is_ok());
        t.command(150, Command::Hold).unwrap();
        let mut buf = [0u8; RECORD_BYTES];
        let bytes = t.encode(&mut buf).unwrap();
        let back = Tracker::decode(&res(RestartPolicy::OnFailure, 1, 1000, 0, 0), bytes).unwrap();
        assert_eq!(back.state(), State::Held(HoldReason::Operator));
    }

    /// A `vm stop` is journaled as such: a restarted monitor still knows the VMM must come
    /// back afresh (and a record of an operator's hold, journaled before `VmStopped`
    /// existed, still decodes as it was).
    #[test]
    fn a_vm_stop_journals_and_restores() {
        let p = res(RestartPolicy::Always, 0, 1000, 0, 0);
        let mut t = Tracker::new(&p, 0);
        let stopped = Decision::Hold {
            reason: HoldReason::VmStopped,
        };
        assert_eq!(t.command(100, Command::StopVm), Ok(stopped));
        // Retried, or held already: the reason stays.
        assert_eq!(t.command(101, Command::StopVm), Ok(stopped));
        assert_eq!(t.command(102, Command::Hold), Ok(stopped));
        let mut buf = [0u8; RECORD_BYTES];
        let bytes = t.encode(&mut buf).unwrap();
        let back = Tracker::decode(&p, bytes).unwrap();
        assert_eq!(back.state(), State::Held(HoldReason::VmStopped));
        assert!(matches!(back.state(), State::Held(r) if r.vm_stopped()));
        let mut t = Tracker::new(&p, 0);
        t.command(100, Command::Hold).unwrap();
        let bytes = t.encode(&mut buf).unwrap();
        let back = Tracker::decode(&p, bytes).unwrap();
        assert!(matches!(back.state(), State::Held(r) if !r.vm_stopped()));
        // Released, it runs again and is no longer stopped.
        let mut t = Tracker::decode(&p, t.encode(&mut [0; RECORD_BYTES]).unwrap()).unwrap();
        t.command(200, Command::StopVm).unwrap();
        assert!(t.command(300, Command::Release).is_ok());
        t.on_restarted(300);
        assert_eq!(t.state(), State::Running);
    }

    /// Issue #20: backoff is for repeated failures. The first failure after a quiet spell
    /// (here: since boot) restarts at once; the next one of the same run waits the backoff,
    /// the one after twice that.
    #[test]
    fn the_first_restart_after_a_quiet_spell_is_immediate() {
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 0, 1000, 100, 1000), 0);
        assert_eq!(
            t.on_failure(500, FAULT),
            Decision::RestartAt {
                at_ms: 500,
                generation: 1
            }
        );
        t.on_restarted(500);
        assert!(matches!(
            t.on_failure(600, FAULT),
            Decision::RestartAt { at_ms: 700, .. }
        ));
        t.on_restarted(700);
        assert!(matches!(
            t.on_failure(710, FAULT),
            Decision::RestartAt { at_ms: 910, .. }
        ));
        t.on_restarted(910);
        // A whole window without failing: immediate again.
        assert!(matches!(
            t.on_failure(1910, FAULT),
            Decision::RestartAt { at_ms: 1910, .. }
        ));
    }

    /// Issue #20: no backoff, a high limit and a tiny window would let a PD that fails at
    /// once be restarted without pause. A restarted incarnation runs at least 50 ms (as
    /// Hubris's minimum run time) before its next restart: at most 20 restarts a second.
    #[test]
    fn restart_storms_have_a_floor() {
        let mut t = Tracker::new(&res(RestartPolicy::Always, 1000, 1, 0, 0), 0);
        let mut now = 0;
        let mut restarts = 0;
        while now < 1000 {
            let Decision::RestartAt { at_ms, .. } = t.on_failure(now, FAULT) else {
                panic!("held");
            };
            t.on_restarted(at_ms);
            restarts += 1;
            now = at_ms + 1;
        }
        assert!(restarts <= 21, "{restarts} restarts in a second");
        // A PD that ran its 50 ms is restarted at once.
        let at = now + 60;
        assert!(matches!(
            t.on_failure(at, FAULT),
            Decision::RestartAt { at_ms, .. } if at_ms == at
        ));
    }

    #[test]
    fn due_at_is_the_pending_restart() {
        let r = Resilience {
            restart: RestartPolicy::Always,
            restart_limit: 5,
            restart_window_ms: 10_000,
            restart_backoff_ms: 20,
            restart_backoff_max_ms: 1000,
            ..Default::default()
        };
        let mut t = Tracker::new(&r, 0);
        assert_eq!(t.due_at(), None);
        t.on_failure(100, Cause::Exited);
        assert_eq!(t.due_at(), Some(100), "first of a run: at once");
        t.on_restarted(100);
        assert_eq!(t.due_at(), None);
        t.on_failure(130, Cause::Exited);
        assert_eq!(t.due_at(), Some(150), "second of the run: the backoff");
        t.on_restarted(150);
        t.on_failure(300, Cause::Exited);
        assert_eq!(t.due_at(), Some(340), "third of the run: twice the backoff");
    }

    #[test]
    fn never_holds() {
        let mut t = Tracker::new(&res(RestartPolicy::Never, 5, 1000, 10, 100), 0);
        assert_eq!(
            t.on_failure(5, FAULT),
            Decision::Hold {
                reason: HoldReason::Never
            }
        );
        assert_eq!(t.state(), State::Held(HoldReason::Never));
        assert_eq!(t.last_cause(), Some(FAULT));
        // Held is sticky; a restart was never pending.
        assert_eq!(
            t.on_failure(6, Cause::Exited),
            Decision::Hold {
                reason: HoldReason::Never
            }
        );
        assert_eq!(t.last_cause(), Some(FAULT));
        assert_eq!(t.on_restarted(7), None);
        assert_eq!(t.generation(), 0);
    }

    #[test]
    fn on_failure_restarts_faults_but_not_exits() {
        let r = res(RestartPolicy::OnFailure, 5, 1000, 10, 100);
        let mut t = Tracker::new(&r, 0);
        assert_eq!(
            t.on_failure(50, FAULT),
            Decision::RestartAt {
                at_ms: 50,
                generation: 1
            }
        );
        assert_eq!(t.on_restarted(50), Some(1));
        let mut t = Tracker::new(&r, 0);
        assert_eq!(
            t.on_failure(50, Cause::Exited),
            Decision::Hold {
                reason: HoldReason::Exited
            }
        );
    }

    #[test]
    fn always_restarts_exits() {
        let mut t = Tracker::new(&res(RestartPolicy::Always, 5, 1000, 10, 100), 0);
        assert_eq!(
            t.on_failure(3, Cause::Exited),
            Decision::RestartAt {
                at_ms: 3,
                generation: 1
            }
        );
    }

    #[test]
    fn pending_restart_absorbs_more_reports() {
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 5, 1000, 10, 100), 0);
        let d = t.on_failure(1, FAULT);
        assert_eq!(t.on_failure(2, Cause::Hang { heartbeat_ms: 5 }), d);
        assert_eq!(t.last_cause(), Some(FAULT));
        assert_eq!(
            t.state(),
            State::Restarting {
                at_ms: 1,
                generation: 1
            }
        );
        assert_eq!(t.on_restarted(1), Some(1));
        assert_eq!(t.on_restarted(2), None);
        assert_eq!(t.restarts(), 1);
        assert_eq!(t.state(), State::Running);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_quiet_window() {
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 0, 1000, 100, 350), 0);
        let mut now = 0;
        let mut delays = [0; 5];
        for (i, d) in delays.iter_mut().enumerate() {
            now += 1;
            let Decision::RestartAt { at_ms, generation } = t.on_failure(now, FAULT) else {
                panic!("held");
            };
            assert_eq!(generation, i as u32 + 1);
            *d = at_ms - now;
            now = at_ms;
            t.on_restarted(now);
        }
        // The first of the run at once, then the backoff, doubling to the cap.
        assert_eq!(delays, [0, 100, 200, 350, 350]);
        assert_eq!(t.consecutive(), 5);
        // Ran 999 ms: still the same run.
        let Decision::RestartAt { at_ms, .. } = t.on_failure(now + 999, FAULT) else {
            panic!()
        };
        assert_eq!(at_ms - (now + 999), 350);
        t.on_restarted(at_ms);
        // Ran a whole window: a new run, restarted at once.
        let Decision::RestartAt { at_ms: a, .. } = t.on_failure(at_ms + 1000, FAULT) else {
            panic!()
        };
        assert_eq!(a - (at_ms + 1000), 0);
        assert_eq!(t.consecutive(), 1);
    }

    #[test]
    fn limit_within_the_sliding_window() {
        // 3 restarts in 5000 ms, no backoff.
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 3, 5000, 0, 0), 0);
        for now in [100, 200, 300] {
            assert!(matches!(
                t.on_failure(now, FAULT),
                Decision::RestartAt { at_ms, .. } if at_ms == now
            ));
            t.on_restarted(now);
        }
        // A 4th at 5099 would make 4 within (99, 5099].
        assert_eq!(
            t.on_failure(5099, FAULT),
            Decision::Hold {
                reason: HoldReason::LimitReached {
                    limit: 3,
                    window_ms: 5000
                }
            }
        );
        assert_eq!(t.restarts(), 3);
        assert_eq!(t.generation(), 3);
    }

    #[test]
    fn the_window_slides() {
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 3, 5000, 0, 0), 0);
        for now in [100, 200, 300] {
            t.on_failure(now, FAULT);
            t.on_restarted(now);
        }
        // At 5100 the restart at 100 has left the window.
        assert_eq!(
            t.on_failure(5100, FAULT),
            Decision::RestartAt {
                at_ms: 5100,
                generation: 4
            }
        );
    }

    #[test]
    fn the_limit_counts_at_the_restart_time_including_backoff() {
        // Limit 1 in 100 ms, backoff 60.
        let mut t = Tracker::new(&res(RestartPolicy::OnFailure, 1, 100, 60, 60), 0);
        assert!(matches!(
            t.on_failure(0, FAULT),
            Decision::RestartAt { at_ms: 0, .. }
        ));
        t.on_restarted(0);
        // Fails 50 ms after the restart, but the next one is due at 110, 110 ms after it.
        assert!(matches!(
            t.on_failure(50, FAULT),
            Decision::RestartAt { at_ms: 110, .. }
        ));
        t.on_restarted(110);
        // Due at 120 + 60 = 180 < 110 + 100: refused.
        assert!(matches!(t.on_failure(120, FAULT), Decision::Hold { .. }));
    }

    #[test]
    fn zero_limit_is_unlimited_and_large_limits_are_capped() {
        let t = Tracker::new(&res(RestartPolicy::Always, 0, 1000, 0, 0), 0);
        assert_eq!(t.effective_limit(), None);
        let t = Tracker::new(&res(RestartPolicy::Always, 1000, 1000, 0, 0), 0);
        assert_eq!(t.effective_limit(), Some(RESTART_HISTORY as u32));
        let mut t = Tracker::new(&res(RestartPolicy::Always, 0, 1000, 0, 0), 0);
        for i in 0..100 {
            assert!(matches!(t.on_failure(i, FAULT), Decision::RestartAt { .. }));
            t.on_restarted(i);
        }
        assert_eq!(t.restarts(), 100);
    }

    #[test]
    fn backoff_saturates() {
        let t = Tracker::new(&res(RestartPolicy::Always, 0, 1, u64::MAX / 2, u64::MAX), 0);
        assert_eq!(t.backoff(0), u64::MAX / 2);
        assert_eq!(t.backoff(3), u64::MAX);
        assert_eq!(t.backoff(200), u64::MAX);
    }

    #[test]
    fn generations_run_out_before_ring_generations_wrap() {
        let mut t = Tracker::new(&res(RestartPolicy::Always, 0, 1000, 0, 0), 0);
        t.generation = u32::MAX - 2;
        assert_eq!(
            t.on_failure(1, FAULT),
            Decision::RestartAt {
                at_ms: 1,
                generation: u32::MAX - 1
            }
        );
        t.on_restarted(1);
        // The last generation a PD gets is the last a ring can carry.
        assert_eq!(axolotl_ring::ring_generation(t.generation()), u32::MAX);
        assert_eq!(
            t.on_failure(2, FAULT),
            Decision::Hold {
                reason: HoldReason::GenerationsExhausted
            }
        );
    }

    #[test]
    fn hold_reasons_display() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(HoldReason::Never.to_string(), "restart=never");
        assert_eq!(
            HoldReason::Exited.to_string(),
            "exited and restart=on-failure"
        );
        assert_eq!(
            HoldReason::LimitReached {
                limit: 3,
                window_ms: 5000
            }
            .to_string(),
            "restart limit 3 in 5000 ms reached"
        );
    }

    extern crate std;

    fn roundtrip(r: &Resilience, t: &Tracker) -> Tracker {
        let mut buf = [0u8; RECORD_BYTES];
        let bytes = t.encode(&mut buf).expect("fits RECORD_BYTES");
        Tracker::decode(r, bytes).expect("a journaled record restores")
    }

    #[test]
    fn the_largest_record_fits() {
        let r = res(RestartPolicy::Always, 0, 0, 0, 0);
        let mut t = Tracker::new(&r, u64::MAX / 2);
        let worst = Cause::VmFault {
            ip: u64::MAX,
            addr: u64::MAX,
            access: crate::Access::Execute,
            esr: u64::MAX,
        };
        for i in 0..40 {
            t.on_failure(u64::MAX / 2 + i, worst);
            t.on_restarted(u64::MAX / 2 + i);
        }
        t.on_failure(u64::MAX - 1, worst);
        assert_eq!(t.record().history.len(), RESTART_HISTORY);
        let back = roundtrip(&r, &t);
        assert_eq!(back.record(), t.record());
    }

    /// A failed recovery is the PD's claim about its own restart: declined before any
    /// restart of ours and while one is pending, counted after, and journaled (a restarted
    /// monitor still knows how many of a VMM's restarts rebooted its guest).
    #[test]
    fn failed_recoveries_are_counted_after_restarts_only_and_journaled() {
        let r = res(RestartPolicy::OnFailure, 3, 10_000, 100, 1000);
        let mut t = Tracker::new(&r, 0);
        assert_eq!(t.on_recovery_failed(), None, "never restarted");
        t.on_failure(50, FAULT);
        assert_eq!(t.on_recovery_failed(), None, "restart pending");
        t.on_restarted(150);
        assert_eq!(t.on_recovery_failed(), Some(1));
        assert_eq!(t.on_recovery_failed(), Some(2));
        let mut back = roundtrip(&r, &t);
        assert_eq!(back.failed_recoveries(), 2);
        assert_eq!(back.on_recovery_failed(), Some(3));
    }

    #[test]
    fn a_pending_restart_survives_the_journal() {
        let r = res(RestartPolicy::OnFailure, 3, 10_000, 100, 1000);
        let mut t = Tracker::new(&r, 0);
        t.on_failure(50, FAULT);
        t.on_restarted(150);
        assert_eq!(
            t.on_failure(400, FAULT),
            Decision::RestartAt {
                at_ms: 500,
                generation: 2
            }
        );
        let mut back = roundtrip(&r, &t);
        assert_eq!(back.due_at(), Some(500));
        assert_eq!(back.failed_ms(), 400);
        assert_eq!(back.last_cause(), Some(FAULT));
        // A second report meanwhile changes nothing, as before the journal.
        assert_eq!(
            back.on_failure(450, FAULT),
            Decision::RestartAt {
                at_ms: 500,
                generation: 2
            }
        );
        assert_eq!(back.on_restarted(500), Some(2));
        assert_eq!(back.restarts(), 2);
    }

    #[test]
    fn held_stays_held_after_the_journal() {
        let r = res(RestartPolicy::Never, 0, 0, 0, 0);
        let mut t = Tracker::new(&r, 0);
        t.on_failure(5, FAULT);
        let mut back = roundtrip(&r, &t);
        assert_eq!(
            back.on_failure(9, FAULT),
            Decision::Hold {
                reason: HoldReason::Never
            }
        );
    }

    #[test]
    fn impossible_records_are_refused() {
        let r = res(RestartPolicy::Always, 0, 0, 0, 0);
        let mut rec = Tracker::new(&r, 0).record();
        rec.state = State::Restarting {
            at_ms: 1,
            generation: 5,
        };
        assert!(Tracker::restore(&r, &rec).is_none(), "generation jumps");
        let mut rec = Tracker::new(&r, 0).record();
        rec.restarts = 2;
        rec.history = [9, 3].into_iter().collect();
        assert!(Tracker::restore(&r, &rec).is_none(), "unsorted history");
        let mut rec = Tracker::new(&r, 0).record();
        rec.history = [1, 2].into_iter().collect();
        assert!(
            Tracker::restore(&r, &rec).is_none(),
            "more times than restarts"
        );
        assert!(Tracker::decode(&r, &[0xff; 8]).is_none());
        assert!(Tracker::decode(&r, &[]).is_none());
    }

    #[test]
    fn reconcile_completes_a_restart_the_root_task_did() {
        let r = res(RestartPolicy::Always, 0, 0, 10, 10);
        let mut t = Tracker::new(&r, 0);
        t.on_failure(5, FAULT);
        // The monitor died after the root task restarted the PD, before journaling it.
        assert!(t.reconcile(1, 40));
        assert_eq!(t.state(), State::Running);
        assert_eq!((t.generation(), t.restarts()), (1, 1));
        // Pending, but the root task is ahead (restarts nobody journaled).
        let mut t = Tracker::new(&r, 0);
        t.on_failure(5, FAULT);
        let mut rec = t.record();
        rec.generation = 0;
        let mut t = Tracker::restore(&r, &rec).unwrap();
        assert!(t.reconcile(1, 40));
        // Running, root task ahead.
        let mut t = Tracker::new(&r, 0);
        assert!(!t.reconcile(4, 40));
        assert_eq!(t.generation(), 4);
        assert_eq!(
            t.on_failure(50, FAULT),
            Decision::RestartAt {
                at_ms: 50,
                generation: 5
            }
        );
        // In line: nothing changes.
        let mut t = Tracker::new(&r, 0);
        t.on_failure(5, FAULT);
        assert!(!t.reconcile(0, 40));
        assert_eq!(t.due_at(), Some(5));
    }

    /// Issue #20 (suspected, confirmed): a restart the root task refused was dropped, the
    /// PD left stopped and unwatched. It stays pending, retried `RETRY_MS` later with the
    /// same generation, and survives the journal.
    #[test]
    fn a_refused_restart_stays_pending() {
        let r = res(RestartPolicy::OnFailure, 3, 10_000, 10, 100);
        let mut t = Tracker::new(&r, 0);
        assert_eq!(t.on_refused(5), None, "nothing pending");
        t.on_failure(5, FAULT);
        assert_eq!(t.on_refused(5), Some(5 + RETRY_MS));
        assert_eq!(
            t.state(),
            State::Restarting {
                at_ms: 5 + RETRY_MS,
                generation: 1
            }
        );
        let mut back = roundtrip(&r, &t);
        assert_eq!(back.due_at(), Some(5 + RETRY_MS));
        assert_eq!(back.on_restarted(5 + RETRY_MS), Some(1));
        assert_eq!(back.restarts(), 1);
    }

    #[derive(Clone, Debug)]
    enum Step {
        Fail(u64, bool),
        Restarted(u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..500, any::<bool>()).prop_map(|(d, f)| Step::Fail(d, f)),
            (0u64..500).prop_map(Step::Restarted),
        ]
    }

    proptest::proptest! {
        /// Journaling at any point and going on from the restored tracker gives the same
        /// decisions as never having stopped.
        #[test]
        fn a_restored_tracker_decides_as_the_original(
            steps in proptest::collection::vec(step(), 0..60),
            cut in 0usize..60,
            limit in 0u32..6,
            window in 0u64..3000,
            backoff in 0u64..200,
            policy in 0u8..3,
        ) {
            let policy = [RestartPolicy::Never, RestartPolicy::OnFailure, RestartPolicy::Always]
                [policy as usize];
            let r = res(policy, limit, window, backoff, backoff * 8);
            let mut a = Tracker::new(&r, 0);
            let mut b: Option<Tracker> = None;
            let mut now = 0;
            for (i, s) in steps.iter().enumerate() {
                if i == cut {
                    b = Some(roundtrip(&r, &a));
                }
                let (da, db) = match *s {
                    Step::Fail(d, exited) => {
                        now += d;
                        let c = if exited { Cause::Exited } else { FAULT };
                        (
                            std::format!("{:?}", a.on_failure(now, c)),
                            b.as_mut().map(|b| std::format!("{:?}", b.on_failure(now, c))),
                        )
                    }
                    Step::Restarted(d) => {
                        now += d;
                        (
                            std::format!("{:?}", a.on_restarted(now)),
                            b.as_mut().map(|b| std::format!("{:?}", b.on_restarted(now))),
                        )
                    }
                };
                if let Some(db) = db {
                    proptest::prop_assert_eq!(da, db);
                }
            }
            if let Some(b) = b {
                proptest::prop_assert_eq!(a.record(), b.record());
            }
        }

        /// The encoders write what postcard makes of `record()`, before and after a restart.
        #[test]
        fn encoders_agree_with_the_record(
            cycles in proptest::collection::vec((0u64..500, 0u64..500), 0..60),
            limit in proptest::prop_oneof![proptest::strategy::Just(0u32), 1u32..40],
            backoff in 0u64..200,
        ) {
            // Failures and restarts in turn, so that the history fills (32 restarts) and
            // wraps when the limit allows.
            let r = res(RestartPolicy::Always, limit, 100_000, backoff, backoff * 8);
            let mut t = Tracker::new(&r, 0);
            let mut now = 0;
            let encoded = |t: &Tracker| {
                let mut buf = [0u8; RECORD_BYTES];
                postcard::to_slice(&t.record(), &mut buf).ok().map(|b| b.to_vec())
            };
            for &(fail, restart) in &cycles {
                now += fail;
                t.on_failure(now, FAULT);
                let mut buf = [0u8; RECORD_BYTES];
                proptest::prop_assert_eq!(t.encode(&mut buf).map(|b| b.to_vec()), encoded(&t));
                now += restart;
                let got = t.encode_restarted(now, &mut buf).map(|b| b.to_vec());
                t.on_restarted(now);
                proptest::prop_assert!(got.is_some());
                proptest::prop_assert_eq!(got, encoded(&t));
            }
        }
    }
}
