//! The root task's clock. The root task keeps the kernel timeout (`axolotl_abi::TIMEOUT_IRQ`:
//! a deadline the kernel's own timer serves beside its tick) because it is the one thread
//! that must notice a wedged monitor: a timer the monitor owned would die with it. The EL1
//! physical timer stays free for a protection domain the SDF gives PPI 30 (sDDF's timer
//! driver). It runs the timeout for two things:
//!
//! - the wake-up time the monitor asks for (the root service's `Request::SetTimer`),
//!   signalled on the monitor's timer channel (`MONITOR_TIMER_ID`) when it comes;
//! - the monitor's heartbeat, the protocol the monitor uses for PDs: a ping every
//!   `MONITOR_HEARTBEAT_MS` on the monitor's notification, answered by its runtime with a
//!   `HEARTBEAT` on its fault endpoint (ours); no answer for two periods and then none to a
//!   last-chance ping within `LAST_CHANCE_MS` is a hang.

use axolotl_abi::CPtr;
use axolotl_boot_plan::MONITOR_HEARTBEAT_MS;
use axolotl_monitor_core::{Heartbeats, earliest};
use axolotl_sys::IrqHandler;
use axolotl_sys::time::ms_to_counter;

/// The badge of the timer interrupt's signal to the root task's bound notification: apart
/// from every endpoint badge it receives (`ROOT_SERVICE_BADGE`, `BADGE_FAULT | pd`).
pub const ROOT_TIMER_BADGE: u64 = 1 << 61;

pub struct Clock {
    /// The kernel timeout's handler, signalling us with [`ROOT_TIMER_BADGE`].
    pub irq: IrqHandler,
    /// The monitor's notification, badged as its timer channel.
    pub signal: CPtr,
    /// The monitor's notification, badged `HEARTBEAT_PING`.
    pub ping: CPtr,
    pub monitor: u8,
    /// The counter value the monitor wants to be woken at.
    wake: Option<u64>,
    heartbeats: Heartbeats,
}

impl Clock {
    pub fn new(irq: IrqHandler, signal: CPtr, ping: CPtr, monitor: u8, now_ms: u64) -> Self {
        let mut heartbeats = Heartbeats::new();
        heartbeats.watch(monitor, MONITOR_HEARTBEAT_MS, now_ms);
        Clock {
            irq,
            signal,
            ping,
            monitor,
            wake: None,
            heartbeats,
        }
    }

    /// The monitor's `Request::SetTimer` (counter value, 0 = never).
    pub fn set_wake(&mut self, at: u64) {
        self.wake = (at != 0).then_some(at);
    }

    pub fn answered(&mut self, now_ms: u64) {
        self.heartbeats.answered(self.monitor, now_ms);
    }

    /// The monitor was just resumed for the first time: its heartbeat is watched from now,
    /// not from when we took the timer (the build goes on after that, for seconds with a
    /// large standby image on a slow or loaded host).
    pub fn monitor_started(&mut self, now_ms: u64) {
        self.heartbeats.restarted(self.monitor, now_ms);
    }

    /// A new monitor: none of the old one's requests stand, its heartbeat is watched afresh.
    pub fn restarted(&mut self, now_ms: u64) {
        self.wake = None;
        self.heartbeats.restarted(self.monitor, now_ms);
    }

    /// The monitor stopped (faulted, or held): nothing to wake or ping.
    pub fn pause(&mut self) {
        self.wake = None;
        self.heartbeats.pause(self.monitor);
    }

    /// The timer fired (or might have): wakes the monitor if its time has come, pings it if
    /// due. The allowance in ms if the monitor has missed its heartbeat (it is paused then).
    pub fn fired(&mut self, now_ms: u64, counter: u64) -> Option<u64> {
        if self.wake.is_some_and(|w| w <= counter) {
            self.wake = None;
            axolotl_sys::signal(self.signal);
        }
        let hung = self.heartbeats.hung(now_ms).first().map(|&(_, ms)| ms);
        if hung.is_some() {
            return hung;
        }
        if self.heartbeats.pings_due(now_ms).next().is_some() {
            axolotl_sys::signal(self.ping);
        }
        None
    }

    /// Sets the kernel timeout for the earliest of the monitor's wake-up and its next
    /// heartbeat event (one-shot: every delivery is followed by a rearm).
    pub fn rearm(&self) {
        let beat = self.heartbeats.next_wakeup().map(ms_to_counter);
        if let Err(e) = self.irq.set_deadline(earliest(self.wake, beat)) {
            axolotl_sys::println!("root-task: setting the kernel timeout failed: {e:?}");
        }
    }
}
