//! The monitor's side of the management plane (issue #17, docs/control.md): what a request
//! from control-pd (an `axolotl_control_proto::Request`) may do and what it is answered.
//!
//! control-pd is a peer like any other: its requests are claims, checked here against what
//! the system grants it ([`Grant`], from the SDF) and against the plan. It names PDs, never
//! memory; it can only have the monitor do what the monitor does anyway (restart from the
//! pristine image, stop, report), and only to PDs the monitor manages. Fault injection is
//! refused unless the grant names it.

use core::fmt::Write;

pub use axolotl_control_proto::ipc;

use axolotl_boot_plan::model::{
    BootPlan, CONTROL_INJECT, CONTROL_MANAGE, CONTROL_STATUS, CONTROL_VM,
};
use axolotl_control_proto::{
    BitTarget, Error, Event, FaultKind, LogEntry, Name, PdState, PdStatus, Reply, Request,
    RingWord, Text, VmOp, text,
};

use crate::{Command, CommandRefused, Decision, State, Tracker};

/// What control-pd may ask (the SDF's `control` attribute; nothing without it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grant(u8);

impl Grant {
    /// Status and the recovery log.
    pub const STATUS: Grant = Grant(CONTROL_STATUS);
    /// Restart, hold and release PDs.
    pub const MANAGE: Grant = Grant(CONTROL_MANAGE);
    /// Start, stop and reboot VMs.
    pub const VM: Grant = Grant(CONTROL_VM);
    /// Inject faults (test and campaign systems only).
    pub const INJECT: Grant = Grant(CONTROL_INJECT);
    /// Everything but injection: what `control="status manage vm"` grants, the usual control
    /// PD.
    pub const DEFAULT: Grant = Grant(CONTROL_STATUS | CONTROL_MANAGE | CONTROL_VM);
    const ALL: u8 = CONTROL_STATUS | CONTROL_MANAGE | CONTROL_VM | CONTROL_INJECT;

    /// From the plan's bits (`Pd::control`); unknown bits grant nothing.
    pub const fn from_bits(bits: u8) -> Grant {
        Grant(bits & Self::ALL)
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn union(self, other: Grant) -> Grant {
        Grant(self.0 | other.0)
    }
    pub const fn allows(self, what: Grant) -> bool {
        self.0 & what.0 == what.0
    }
}

/// A request checked against the grant and the plan: what the monitor is to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Answer with PD `index`'s status.
    Status { index: u8 },
    /// Answer with the log entry at or after `seq`.
    Log { seq: u32 },
    /// Carry out `command` on a PD the monitor manages; a restart only of generation
    /// `if_generation` when given ([`restart_done_already`]).
    Command {
        pd: u8,
        command: Command,
        if_generation: Option<u32>,
    },
    /// Start, stop or reboot VM `vm` (plan index), whose VMM is `pd`, a PD the monitor
    /// manages: what happens to the VM happens through its VMM.
    Vm { vm: u8, pd: u8, op: VmOp },
    /// Inject `kind` into a PD the monitor manages; a bit flip at `at` if given (checked:
    /// a register and bit that exist).
    Inject {
        pd: u8,
        kind: FaultKind,
        at: Option<BitTarget>,
    },
}

/// Whether a restart asked for generation `if_generation` of a PD now at `generation`, with
/// a restart `pending` or not, is done already: the PD is past that generation, or about to
/// be. Then the monitor answers done and restarts nothing: what makes a retried request
/// (its first answer lost with a monitor that restarted while serving it) act once.
pub fn restart_done_already(if_generation: Option<u32>, generation: u32, pending: bool) -> bool {
    if_generation.is_some_and(|g| generation != g || pending)
}

/// Checks `request` from control-pd (plan index `from`) against `grant` and `plan`.
pub fn check(plan: &BootPlan, from: u8, grant: Grant, request: &Request) -> Result<Checked, Error> {
    let need = |what: Grant| {
        if grant.allows(what) {
            Ok(())
        } else {
            Err(Error::NotGranted)
        }
    };
    // A PD the monitor may act on: parentless (a child is its parent's), not the monitor,
    // and not control-pd itself (it would lose the request it is serving; its own failure
    // is the monitor's business).
    let managed = |name: &Name| -> Result<u8, Error> {
        let (pd, p) = plan.pd_by_name(name).ok_or(Error::UnknownName)?;
        if p.parent.is_some() || plan.monitor == Some(pd) || pd == from {
            return Err(Error::NotManaged);
        }
        Ok(pd)
    };
    match request {
        Request::Status { index } => {
            need(Grant::STATUS)?;
            if (*index as usize) < plan.pds.len() {
                Ok(Checked::Status { index: *index })
            } else {
                Err(Error::NoSuchIndex)
            }
        }
        Request::Log { seq } => {
            need(Grant::STATUS)?;
            Ok(Checked::Log { seq: *seq })
        }
        Request::Restart { pd, .. } | Request::Hold { pd } | Request::Release { pd } => {
            need(Grant::MANAGE)?;
            let (command, if_generation) = match request {
                Request::Restart { if_generation, .. } => (Command::Restart, *if_generation),
                Request::Hold { .. } => (Command::Hold, None),
                _ => (Command::Release, None),
            };
            Ok(Checked::Command {
                pd: managed(pd)?,
                command,
                if_generation,
            })
        }
        Request::Vm { name, op } => {
            need(Grant::VM)?;
            let vm = plan
                .vms
                .iter()
                .position(|v| v.name.as_str() == name.as_str())
                .ok_or(Error::UnknownName)?;
            let vmm = plan
                .pds
                .iter()
                .find(|p| p.vm == Some(vm as u8))
                .ok_or(Error::NotManaged)?;
            Ok(Checked::Vm {
                vm: vm as u8,
                pd: managed(&vmm.name)?,
                op: *op,
            })
        }
        Request::Inject { pd, kind, at } => {
            need(Grant::INJECT)?;
            let pd = managed(pd)?;
            let at = match at {
                None => None,
                Some(t) if *kind == FaultKind::BitFlip => {
                    Some(BitTarget::new(t.register, t.bit).ok_or(Error::BadTarget)?)
                }
                Some(_) => return Err(Error::BadTarget),
            };
            Ok(Checked::Inject {
                pd,
                kind: *kind,
                at,
            })
        }
    }
}

/// Where an injected bit flip lands: one of the registers TcbReadRegisters gives (pc, sp,
/// spsr, x0..=x30, tpidr_el0; `axolotl_root_service::register_name`) and one of its 64 bits,
/// uniformly, from `seed` (splitmix64's finaliser: neighbouring seeds, such as successive
/// counter readings, give unrelated picks). The monitor logs the pick, so an injection can
/// be told apart and repeated.
pub fn bit_flip_target(seed: u64) -> (u8, u8) {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let register = (z % axolotl_abi::USER_CONTEXT_WORDS as u64) as u8;
    let bit = ((z >> 40) % 64) as u8;
    (register, bit)
}

/// lib/ring's layout of a connection ring region (`axolotl_ring`'s header): the two
/// control lines (128 bytes), then the request queue, whose header has the producer's
/// `tail` on its first line and the consumer's `head` on its second. The response queue
/// comes after the request queue's slots, where only the connection's capacity (which the
/// plan does not know) says.
pub const REQUEST_TAIL: u32 = 128;
pub const REQUEST_HEAD: u32 = 128 + 64;

/// Where an injected ring corruption lands: a 32-bit index in a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingTarget {
    /// Plan index of the region.
    pub region: u16,
    /// Byte offset of the index in it.
    pub offset: u32,
    pub word: RingWord,
}

/// Where a ring corruption of PD `pd` lands, from `seed`: the request queue index it
/// writes of one of its ring regions. A ring region is one the PD maps writable, shared
/// with another PD, allocated (not device memory), with `ring` in its name (the convention
/// of every system here: the plan does not say which regions carry lib/ring connections,
/// and a data region's word 128 is a buffer's byte, which nobody would notice changed),
/// at least two queue headers long. The connection at its start is the one hit. Which
/// index is the PD's comes from `depends_on`: the client depends on its server (a PD that
/// depends on the region's other mapper is its client, which writes the request tail; one
/// the other mapper depends on is its server, which writes the request head). Where neither
/// says, `seed` picks the index. [`Error::NoRing`] for a PD without a ring region.
pub fn ring_target(plan: &BootPlan, pd: u8, seed: u64) -> Result<RingTarget, Error> {
    let p = plan.pds.get(pd as usize).ok_or(Error::UnknownName)?;
    let ring = |m: &&axolotl_boot_plan::model::Mapping| {
        let Some(r) = plan.regions.get(m.region as usize) else {
            return false;
        };
        m.perms.write
            && r.phys_addr.is_none()
            && r.name.as_str().contains("ring")
            && r.size >= u64::from(REQUEST_HEAD) + 64
            && peer(plan, pd, m.region).is_some()
    };
    let rings = plan.mappings_of(p).iter().filter(ring);
    let n = rings.clone().count() as u64;
    if n == 0 {
        return Err(Error::NoRing);
    }
    let z = axolotl_root_service::scramble(seed);
    let m = rings.clone().nth((z % n) as usize).ok_or(Error::NoRing)?;
    let peer = peer(plan, pd, m.region).ok_or(Error::NoRing)?;
    let depends = |a: u8, b: u8| {
        plan.pds
            .get(a as usize)
            .is_some_and(|x| plan.depends_of(x).contains(&b))
    };
    let word = if depends(pd, peer) {
        RingWord::RequestTail
    } else if depends(peer, pd) {
        RingWord::RequestHead
    } else if (z >> 32) & 1 == 0 {
        RingWord::RequestTail
    } else {
        RingWord::RequestHead
    };
    Ok(RingTarget {
        region: m.region,
        offset: match word {
            RingWord::RequestTail => REQUEST_TAIL,
            RingWord::RequestHead => REQUEST_HEAD,
        },
        word,
    })
}

/// Another PD than `pd` that maps region `region`.
fn peer(plan: &BootPlan, pd: u8, region: u16) -> Option<u8> {
    plan.pds.iter().enumerate().find_map(|(i, p)| {
        (i != pd as usize && plan.mappings_of(p).iter().any(|m| m.region == region))
            .then_some(i as u8)
    })
}

/// The answer to a command, from what the tracker decided.
pub fn command_reply(result: Result<Decision, CommandRefused>) -> Reply {
    match result {
        Ok(_) => Reply::Done,
        Err(CommandRefused::BadState) => Reply::Error(Error::BadState),
        Err(CommandRefused::GenerationsExhausted) => {
            Reply::Error(Error::Refused(text("generations exhausted")))
        }
    }
}

/// What the monitor knows of a PD besides its tracker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// How long its last restart took.
    pub last_recovery_us: Option<u64>,
    /// When it last answered a heartbeat ping.
    pub last_heartbeat_ms: Option<u64>,
    /// The CPU time its thread and its VM's vCPUs ran, in microseconds, as the root task
    /// read it from the kernel (`None`: a kernel built without `cpu-time`).
    pub cpu_us: Option<(u64, u64)>,
}

/// PD `index`'s status row at `now_ms` (`tracker` is `None` for a PD the monitor does not
/// track: itself).
pub fn status(
    plan: &BootPlan,
    index: u8,
    tracker: Option<&Tracker>,
    facts: Facts,
    now_ms: u64,
) -> Option<PdStatus> {
    let pd = plan.pds.get(index as usize)?;
    let managed = pd.parent.is_none() && plan.monitor != Some(index);
    let state = match tracker.map(Tracker::state) {
        None | Some(State::Running) => PdState::Running,
        Some(State::Restarting { at_ms, .. }) => PdState::Restarting {
            in_ms: at_ms.saturating_sub(now_ms),
        },
        Some(State::Held(reason)) => PdState::Held {
            reason: display(&reason),
        },
    };
    let heartbeat_ms = pd.resilience.heartbeat_ms.filter(|&h| h != 0 && managed);
    Some(PdStatus {
        index,
        name: pd.name.as_str().try_into().unwrap_or_default(),
        state,
        generation: tracker.map_or(0, Tracker::generation),
        restarts: tracker.map_or(0, Tracker::restarts),
        restarts_in_window: tracker.map_or(0, |t| t.restarts_in_window(now_ms)),
        restart_limit: tracker.map_or(0, Tracker::limit),
        last_cause: tracker.and_then(Tracker::last_cause).map(|c| display(&c)),
        last_recovery_us: facts.last_recovery_us,
        heartbeat_ms,
        heartbeat_age_ms: heartbeat_ms
            .and(facts.last_heartbeat_ms)
            .map(|t| now_ms.saturating_sub(t)),
        memory_bytes: pd.totals.bytes(),
        cpu_us: facts.cpu_us.map(|(own, _)| own),
        guest_cpu_us: facts.cpu_us.filter(|_| pd.vm.is_some()).map(|(_, g)| g),
        managed,
        vm: pd
            .vm
            .and_then(|v| plan.vms.get(v as usize))
            .and_then(|v| v.name.as_str().try_into().ok()),
    })
}

/// Whether `reply` is of a kind `checked` can have: a status row or no such index for a
/// status request, a log answer for a log request, done or a refusal for the rest (an
/// injection also its report). Anything else is the monitor's own code gone wrong, and
/// the monitor fail-stops rather than answer it (its campaign on main, id 836: a PC flip
/// answered a status request `Done`).
pub fn reply_fits(checked: &Checked, reply: &Reply) -> bool {
    match (checked, reply) {
        (Checked::Status { .. }, Reply::Pd { .. } | Reply::Error(Error::NoSuchIndex)) => true,
        (Checked::Status { .. }, _) => false,
        (Checked::Log { .. }, Reply::Log(_)) => true,
        (Checked::Log { .. }, _) => false,
        (Checked::Inject { .. }, Reply::Injected(_)) => true,
        (_, Reply::Done | Reply::Error(_)) => true,
        _ => false,
    }
}

/// Whether a status row about to go out agrees with the plan in every field the plan fixes
/// (index, name, memory, whether managed, heartbeat, VM) and is consistent in itself (a
/// restart count within the window no larger than the whole). Checked apart from
/// [`status`], which made the row: a row that fails is the monitor's own code or state gone
/// wrong, and the monitor fail-stops rather than answer it. The monitor's campaign on main:
/// a code flip had [`status`] give every heartbeat as 0 ms for the two seconds until code
/// scrubbing caught it (id 915), a PC flip sent a row whose name was stack bytes (id 1023);
/// the CLI accepted both.
pub fn row_sound(plan: &BootPlan, row: &PdStatus) -> bool {
    let Some(pd) = plan.pds.get(usize::from(row.index)) else {
        return false;
    };
    let managed = pd.parent.is_none() && plan.monitor != Some(row.index);
    let heartbeat = match pd.resilience.heartbeat_ms {
        Some(h) if h != 0 && managed => Some(h),
        _ => None,
    };
    let vm = pd.vm.and_then(|v| plan.vms.get(usize::from(v)));
    row.name.as_str() == pd.name.as_str()
        && row.memory_bytes == pd.totals.bytes()
        && row.managed == managed
        && row.heartbeat_ms == heartbeat
        && (row.heartbeat_age_ms.is_none() || heartbeat.is_some())
        && row.vm.as_deref() == vm.map(|v| v.name.as_str())
        && row.restarts_in_window <= row.restarts
}

/// `value` as one line of text, cut at `TEXT_LEN`.
pub fn display(value: &impl core::fmt::Display) -> Text {
    /// Writes what fits and drops the rest: a cut cause is still worth showing.
    struct Cut(Text);
    impl Write for Cut {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for c in s.chars() {
                if self.0.push(c).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut out = Cut(Text::new());
    let _ = write!(out, "{value}");
    out.0
}

/// The recovery log: the `N` most recent entries, numbered from 0 at boot.
#[derive(Clone, Debug)]
pub struct RecoveryLog<const N: usize> {
    entries: heapless::Deque<LogEntry, N>,
    next: u32,
}

impl<const N: usize> Default for RecoveryLog<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RecoveryLog<N> {
    pub const fn new() -> Self {
        RecoveryLog {
            entries: heapless::Deque::new(),
            next: 0,
        }
    }

    /// Adds an entry (dropping the oldest if full): its sequence number.
    pub fn push(
        &mut self,
        at_ms: u64,
        pd: &str,
        event: Event,
        generation: u32,
        cause: &impl core::fmt::Display,
        latency_us: Option<u64>,
    ) -> u32 {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        if self.entries.is_full() {
            self.entries.pop_front();
        }
        let _ = self.entries.push_back(LogEntry {
            seq,
            at_ms,
            pd: pd.try_into().unwrap_or_default(),
            event,
            generation,
            cause: display(cause),
            latency_us,
        });
        seq
    }

    /// The first entry numbered `seq` or later, if any is kept.
    pub fn at_or_after(&self, seq: u32) -> Option<&LogEntry> {
        self.entries.iter().find(|e| e.seq >= seq)
    }

    /// [`RecoveryLog::at_or_after`], checked before it goes out: every entry names a PD of
    /// `plan` (each is pushed with one). One that does not is the monitor's own state gone
    /// wrong, an answer no one should get: `Err` with its sequence number, on which the
    /// monitor fail-stops. The monitor's campaign on main (id 406, its PC flipped into the
    /// middle of a push) stored an entry of empty fields, and every read of the log handed
    /// it to the CLI, which accepted it.
    pub fn checked_at_or_after(&self, seq: u32, plan: &BootPlan) -> Result<Option<&LogEntry>, u32> {
        match self.at_or_after(seq) {
            Some(e) if plan.pd_by_name(e.pd.as_str()).is_none() => Err(e.seq),
            found => Ok(found),
        }
    }

    /// The number the next entry gets.
    pub fn next_seq(&self) -> u32 {
        self.next
    }
}

#[cfg(test)]
mod tests;
