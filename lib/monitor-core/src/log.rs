//! The monitor's recovery log lines. Integration tests grep for them: the format is fixed
//! and pinned by tests.

use core::fmt;

use crate::{Cause, HoldReason};

/// How the root task restarted a PD: the root service's word for it.
pub use axolotl_root_service::How;

/// `monitor: restarted <pd> (cause: <cause>) generation <n> in <us> us (<how>)`
#[derive(Clone, Copy, Debug)]
pub struct Restarted<'a> {
    pub pd: &'a str,
    pub cause: &'a Cause,
    pub generation: u32,
    /// From the failure report to the restarted PD running, backoff excluded.
    pub us: u64,
    pub how: How,
}

impl fmt::Display for Restarted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "monitor: restarted {} (cause: {}) generation {} in {} us ({})",
            self.pd, self.cause, self.generation, self.us, self.how
        )
    }
}

/// `monitor: holding <pd> stopped: <reason>`
#[derive(Clone, Copy, Debug)]
pub struct Holding<'a> {
    pub pd: &'a str,
    pub reason: &'a HoldReason,
}

impl fmt::Display for Holding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "monitor: holding {} stopped: {}", self.pd, self.reason)
    }
}

/// `monitor: restarting <pd> after <waited> ms (backoff <delay> ms)`: printed before a
/// restart that waited for its backoff; `waited` is the monitor's own measure from the
/// failure to the restart, at least `delay`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff<'a> {
    pub pd: &'a str,
    pub delay_ms: u64,
    pub waited_ms: u64,
}

impl fmt::Display for Backoff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "monitor: restarting {} after {} ms (backoff {} ms)",
            self.pd, self.waited_ms, self.delay_ms
        )
    }
}

/// The line for a restart after its backoff.
pub fn backoff(pd: &str, delay_ms: u64, waited_ms: u64) -> Backoff<'_> {
    Backoff {
        pd,
        delay_ms,
        waited_ms,
    }
}

/// The line for a restart.
pub fn restarted<'a>(
    pd: &'a str,
    cause: &'a Cause,
    generation: u32,
    us: u64,
    how: How,
) -> Restarted<'a> {
    Restarted {
        pd,
        cause,
        generation,
        us,
        how,
    }
}

/// `monitor: restarted <pd> (requested by <by>) generation <n> in <us> us (<how>)`: a
/// restart control-pd asked for (a restart or a release), not a failure's.
#[derive(Clone, Copy, Debug)]
pub struct Requested<'a> {
    pub pd: &'a str,
    pub by: &'a str,
    pub generation: u32,
    pub us: u64,
    pub how: How,
}

impl fmt::Display for Requested<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "monitor: restarted {} (requested by {}) generation {} in {} us ({})",
            self.pd, self.by, self.generation, self.us, self.how
        )
    }
}

/// The line for a PD left stopped.
pub fn holding<'a>(pd: &'a str, reason: &'a HoldReason) -> Holding<'a> {
    Holding { pd, reason }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;
    use crate::Access;

    #[test]
    fn restarted_line() {
        let cause = Cause::VmFault {
            ip: 0x20_0040,
            addr: 0,
            access: Access::Write,
            esr: 0x9200_0046,
        };
        assert_eq!(
            restarted("uart_driver", &cause, 3, 412, How::Standby).to_string(),
            "monitor: restarted uart_driver (cause: vm-fault write at 0x0 ip 0x200040) generation 3 in 412 us (standby)"
        );
        assert_eq!(
            restarted(
                "console",
                &Cause::Panic { ip: 0x20_1234 },
                1,
                0,
                How::InPlace
            )
            .to_string(),
            "monitor: restarted console (cause: panic ip 0x201234) generation 1 in 0 us (in place)"
        );
    }

    #[test]
    fn backoff_and_hang_lines() {
        assert_eq!(
            backoff("crash_twice", 40, 41).to_string(),
            "monitor: restarting crash_twice after 41 ms (backoff 40 ms)"
        );
        assert_eq!(
            restarted(
                "serial_driver",
                &Cause::Hang { heartbeat_ms: 50 },
                1,
                60,
                How::Standby
            )
            .to_string(),
            "monitor: restarted serial_driver (cause: hang (no heartbeat in 50 ms)) generation 1 in 60 us (standby)"
        );
    }

    #[test]
    fn requested_line() {
        let line = Requested {
            pd: "serial_driver",
            by: "control",
            generation: 2,
            us: 15,
            how: How::Standby,
        };
        assert_eq!(
            line.to_string(),
            "monitor: restarted serial_driver (requested by control) generation 2 in 15 us (standby)"
        );
        assert_eq!(
            holding("serial_driver", &HoldReason::Operator).to_string(),
            "monitor: holding serial_driver stopped: held by the operator"
        );
    }

    #[test]
    fn holding_line() {
        let r = HoldReason::LimitReached {
            limit: 3,
            window_ms: 5000,
        };
        assert_eq!(
            holding("uart_driver", &r).to_string(),
            "monitor: holding uart_driver stopped: restart limit 3 in 5000 ms reached"
        );
        assert_eq!(
            holding("logger", &HoldReason::Never).to_string(),
            "monitor: holding logger stopped: restart=never"
        );
    }

    #[test]
    fn fits_a_fixed_buffer() {
        use core::fmt::Write;
        let mut s = heapless::String::<160>::new();
        let cause = Cause::Hang { heartbeat_ms: 100 };
        let line = restarted("a", &cause, u32::MAX, u64::MAX, How::InPlace);
        write!(s, "{line}").unwrap();
        assert!(s.starts_with("monitor: restarted a (cause: hang"));
    }
}
