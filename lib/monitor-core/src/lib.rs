//! The hardware-independent brain of monitor-pd (issue #5): what the monitor decides when a
//! PD fails, with no hardware and no allocator, so all of it is host-tested.
//!
//! - [`Cause`]: why a PD stopped, from a fault message ([`Cause::from_message`]) or from the
//!   monitor (watchdog, a peer's corruption report, a clean exit);
//! - [`Tracker`]: restart policy per PD (policy, limit within a sliding window, exponential
//!   backoff, generations) → [`Decision`];
//! - [`Reports`]: what a PD's corruption report gets (a claim, judged: [`Verdict`]);
//! - [`Watchdog`]: heartbeat deadlines and the monitor's next timer wake-up;
//! - [`Heartbeats`]: the ping/answer schedule on top of it, one missed period forgiven;
//! - [`Scrubber`]: when to compare which PD's code with its image (code scrubbing);
//! - [`log`]: the recovery log lines;
//! - [`control`]: control-pd's requests, checked against its grant (docs/control.md).
//!
//! See docs/monitor.md.
#![no_std]

mod cause;
pub mod control;
mod heartbeat;
pub mod log;
mod report;
mod scrub;
mod tracker;
mod watchdog;

pub use cause::{Access, Cause};
pub use heartbeat::{Heartbeats, LAST_CHANCE_MS, SLACK_PERIODS};
pub use log::How;
pub use report::{
    Declined, FALSE_REPORT_WINDOW_MS, REPORT_BURST, REPORT_WINDOW_MS, Reports, Verdict, report_peer,
};
pub use scrub::{SCRUB_STEP_MS, Scrubber, TICK_STALL_MS, timer_stalled};
pub use tracker::{
    Command, CommandRefused, Decision, HoldReason, MIN_RUN_MS, RECORD_BYTES, RESTART_HISTORY,
    RETRY_MS, Record, State, Tracker,
};
pub use watchdog::{Expired, Watchdog};

/// The earlier of two optional wake-up times.
pub fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
