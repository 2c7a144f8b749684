//! What became of one injection: the seed's outcome classes, decided by a pure function of
//! the golden run, the injected run's console and what the host-side workload saw.
//!
//! The workload's own verdict decides, not log lines alone: the clients check every
//! completion (exactly once, in order) and say so in their final line; the host checks the
//! wire (UART1's output) and that the lines it typed into UART1 came back through echo_rx.
//! The monitor's lines only tell whether the system *detected* the failure.

use std::fmt;

/// The seed's classes, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Nothing observable changed.
    NotManifested,
    /// The monitor acted and the applications never noticed.
    Recovered,
    /// The monitor acted, and still an application lost service.
    RecoveryFailed,
    /// A hang or wrong behaviour nobody detected.
    Undetected,
    /// Wrong data reached an application (the wire), detected or not.
    Sdc,
    /// Kernel panic or fault, the monitor lost, QEMU gone.
    SystemFailure,
}

pub const OUTCOMES: [Outcome; 6] = [
    Outcome::NotManifested,
    Outcome::Recovered,
    Outcome::RecoveryFailed,
    Outcome::Undetected,
    Outcome::Sdc,
    Outcome::SystemFailure,
];

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::NotManifested => "not-manifested",
            Outcome::Recovered => "recovered",
            Outcome::RecoveryFailed => "recovery-failed",
            Outcome::Undetected => "undetected",
            Outcome::Sdc => "sdc",
            Outcome::SystemFailure => "system-failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        OUTCOMES.into_iter().find(|o| o.name() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the workload is: its clients, how many messages each sends, how many lines the host
/// types into UART1 at the end.
#[derive(Clone, Debug)]
pub struct Workload {
    pub clients: Vec<String>,
    pub messages: u32,
    pub typed: u32,
}

impl Workload {
    /// resilient-echo's (systems/resilient-echo.system, driver-pd's `SeqClient`).
    pub fn resilient_echo() -> Workload {
        Workload {
            clients: vec!["client_a".into(), "client_b".into()],
            messages: 100,
            typed: 5,
        }
    }

    pub fn done_line(&self, client: &str) -> String {
        format!(
            "{client}: done: {} messages completed in order, exactly once",
            self.messages
        )
    }
}

/// What the host saw of one run besides the console.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    /// Everything UART1 transmitted.
    pub wire: String,
    /// QEMU exited before the run was over.
    pub qemu_exited: bool,
}

/// A run's log as the campaign keeps it (`logs/<id>.txt`, the fixtures): the console, then
/// the wire after a marker line.
pub fn split_log(text: &str) -> (&str, &str) {
    text.split_once("----- wire -----\n").unwrap_or((text, ""))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The first line of the system's detection (a monitor decision), if any.
    pub detection: Option<String>,
    /// Why, in a few words: what the workload missed.
    pub why: String,
}

impl Verdict {
    /// The CSV's `why`: the detection, then what the workload missed.
    pub fn summary(&self) -> String {
        match &self.detection {
            Some(d) if self.why.is_empty() => d.clone(),
            Some(d) => format!("{d}; {}", self.why),
            None => self.why.clone(),
        }
    }
}

/// Lines that mean the whole system is lost, whatever the target was.
const SYSTEM_FAILURE: [&str; 4] = [
    "KERNEL PANIC",
    "kernel: FAULT",
    // The root task restarts a monitor that died or hung.
    "root-task: monitor: restarted monitor",
    "root-task: FATAL",
];

/// The monitor's decisions about a PD (monitor-core's `log`), a peer's corruption report
/// (the client's `reported the driver`, the driver's `is corrupt (…); reporting it`) and the
/// monitor's answer to one it declined.
const DETECTION: [&str; 6] = [
    "monitor: restarted ",
    "monitor: restarting ",
    "monitor: holding ",
    "monitor: report by ",
    "reported the driver",
    "; reporting it",
];

/// Checks the wire: every message of every client on it, as a whole line; no line that is not
/// a message. A restart may cut a line short or send one twice (the wire is at-least-once),
/// which only a detected failure excuses.
fn wire_faults(w: &Workload, wire: &str, detected: bool) -> Vec<String> {
    let mut faults = Vec::new();
    let mut seen = std::collections::HashMap::<&str, u32>::new();
    for line in wire.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let valid = w.clients.iter().find_map(|c| {
            let m = line.rsplit_once(' ')?;
            let n: u32 = m.1.parse().ok()?;
            let ok = n < w.messages && (m.0 == c || (detected && m.0.ends_with(c.as_str())));
            ok.then_some(line)
        });
        match valid {
            Some(_) => *seen.entry(line).or_default() += 1,
            // A line cut short by a restart ends without its number or mid-name.
            None if detected => {}
            None => faults.push(format!("wire line {line:?} is no message")),
        }
    }
    for c in &w.clients {
        for seq in 0..w.messages {
            let m = format!("{c} {seq}");
            let n = wire
                .lines()
                .filter(|l| l.trim_end_matches('\r').ends_with(&m))
                .count();
            if n == 0 {
                faults.push(format!("{m:?} is not on the wire"));
            } else if n > 1 && !detected {
                faults.push(format!("{m:?} is on the wire {n} times"));
            }
        }
    }
    faults
}

/// The monitor's refusal of a report that no later restart can answer: the accused cannot
/// be restarted (a stale report, one that crossed a restart, is answered already).
fn declined_for_good(l: &str) -> bool {
    l.contains("monitor: report by ")
        && (l.contains("restart limit is reached") || l.contains(" is held"))
}

/// Classifies one injected run. `golden` is the console of the run without injection,
/// `console` the injected run's (whole), `host` what the host saw.
pub fn classify(w: &Workload, golden: &str, console: &str, host: &HostView) -> Verdict {
    let line_with = |needles: &[&str]| {
        console
            .lines()
            .find(|l| needles.iter().any(|n| l.contains(n)))
            .map(str::to_string)
    };
    if let Some(l) = line_with(&SYSTEM_FAILURE) {
        return Verdict {
            outcome: Outcome::SystemFailure,
            detection: None,
            why: l,
        };
    }
    // Decisions the golden run also made are the system's normal life, not detection.
    let detection = console
        .lines()
        .find(|l| DETECTION.iter().any(|n| l.contains(n)) && !golden.contains(*l))
        .map(str::to_string);
    let detected = detection.is_some();

    let mut missed = Vec::new();
    for c in &w.clients {
        if !console.contains(&w.done_line(c)) {
            missed.push(format!("{c} did not finish"));
        }
    }
    for i in 1..=w.typed {
        if !console.contains(&format!("echo_rx: received \"ping {i}\"")) {
            missed.push(format!("echo_rx did not receive ping {i}"));
            break;
        }
    }
    if let Some(l) = console.lines().find(|l| l.contains("monitor: holding ")) {
        missed.push(format!("a PD is held: {l}"));
    }
    let wire = if missed.is_empty() {
        wire_faults(w, &host.wire, detected)
    } else {
        Vec::new()
    };
    if host.qemu_exited && !missed.is_empty() {
        return Verdict {
            outcome: Outcome::SystemFailure,
            detection,
            why: format!("QEMU exited; {}", missed.join("; ")),
        };
    }
    // A report the monitor declined, with no restart after it, left the accused connection
    // as it was found: corrupt and unserved. The workload may not notice (its client may
    // have been done), but nothing recovered.
    let unanswered = console
        .lines()
        .skip_while(|l| !declined_for_good(l))
        .skip(1)
        .all(|l| !l.contains("monitor: restarted "))
        && console.lines().any(declined_for_good);
    let (outcome, why) = if !wire.is_empty() {
        (Outcome::Sdc, wire.join("; "))
    } else if detected && missed.is_empty() && unanswered {
        (
            Outcome::RecoveryFailed,
            "the report was declined and nothing restarted: the connection stays unserved"
                .to_string(),
        )
    } else if detected && missed.is_empty() {
        (Outcome::Recovered, String::new())
    } else if detected {
        (Outcome::RecoveryFailed, missed.join("; "))
    } else if missed.is_empty() {
        let errors = console
            .lines()
            .find(|l| l.contains(": ERROR") && !golden.contains(*l));
        match errors {
            // A client saw something wrong, said so, and nobody acted; it still finished.
            Some(l) => (Outcome::Undetected, l.to_string()),
            None => (Outcome::NotManifested, String::new()),
        }
    } else {
        (Outcome::Undetected, missed.join("; "))
    };
    Verdict {
        outcome,
        detection,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> &'static str {
        include_str!("fixtures/golden.txt")
    }

    fn wire_of(console: &str) -> String {
        // The fixtures keep the wire after a `----- wire -----` marker.
        console
            .split("----- wire -----\n")
            .nth(1)
            .unwrap_or("")
            .to_string()
    }

    fn run(fixture: &str) -> Verdict {
        let (console, wire) = fixture
            .split_once("----- wire -----\n")
            .unwrap_or((fixture, ""));
        classify(
            &Workload::resilient_echo(),
            golden(),
            console,
            &HostView {
                wire: wire.to_string(),
                qemu_exited: false,
            },
        )
    }

    #[test]
    fn the_golden_run_is_not_manifested() {
        let v = run(golden());
        assert_eq!(v.outcome, Outcome::NotManifested, "{v:?}");
        assert!(!wire_of(golden()).is_empty());
    }

    #[test]
    fn a_restart_the_clients_never_noticed_is_recovered() {
        let v = run(include_str!("fixtures/recovered.txt"));
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        assert!(
            v.detection
                .as_deref()
                .unwrap()
                .contains("monitor: restarted serial_driver"),
            "{v:?}"
        );
    }

    #[test]
    fn a_client_cut_off_after_its_ring_index_flipped_is_a_failed_recovery() {
        // Bit 25 of client_b's request tail flipped: the driver reported client_b, the
        // monitor declined (restart=never), client_b never finished.
        let v = run(include_str!("fixtures/recovery-failed.txt"));
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("client_b did not finish"), "{v:?}");
        assert!(
            v.detection.as_deref().unwrap().contains("IndexOverrun"),
            "{v:?}"
        );
    }

    #[test]
    fn a_client_cut_off_after_the_driver_blamed_it_is_a_failed_recovery() {
        // A PC flip in the driver (0x205c70 -> 0x205c30) made it see a stale generation in
        // client_a's ring; it reported client_a, the monitor declined (client_a cannot be
        // restarted) and client_a never finished.
        let v = run(include_str!("fixtures/blamed-client.txt"));
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(
            v.detection.as_deref().unwrap().contains("reporting it"),
            "{v:?}"
        );
        assert!(v.why.contains("client_a did not finish"), "{v:?}");
    }

    #[test]
    fn a_declined_report_that_left_a_connection_dead_is_a_failed_recovery() {
        // Bit 22 of client_b's request tail flipped after client_b had sent all it had: the
        // driver reported it, the monitor declined, nothing restarted. Both clients had
        // finished, but the connection is dead for whatever client_b sends next.
        let v = run(include_str!("fixtures/declined-after-done.txt"));
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("declined"), "{v:?}");
    }

    /// A driver made to loop (`b .`) at its 34th of 36 anchor stops, as the clients were
    /// finishing: an early version of the injector stopped watching a few seconds after the
    /// clients were done, before the heartbeat timeout (seconds of host time under -icount)
    /// had passed, so the capture shows a silent stall: nothing detected, and echo_rx never
    /// got the typed lines.
    #[test]
    fn a_silent_stall_is_undetected() {
        let v = run(include_str!("fixtures/undetected.txt"));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
        assert!(v.detection.is_none());
    }

    #[test]
    fn wrong_bytes_on_the_wire_are_sdc() {
        let g = golden();
        let (console, wire) = g.split_once("----- wire -----\n").unwrap();
        let bad = wire.replacen("client_b 7\n", "client_b 7\nclient_c 7\n", 1);
        let v = classify(
            &Workload::resilient_echo(),
            g,
            console,
            &HostView {
                wire: bad,
                qemu_exited: false,
            },
        );
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
        // A message missing from the wire while the client saw it complete, too.
        let lost = wire.replacen("client_a 42\n", "", 1);
        let v = classify(
            &Workload::resilient_echo(),
            g,
            console,
            &HostView {
                wire: lost,
                qemu_exited: false,
            },
        );
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
        assert!(v.why.contains("client_a 42"), "{v:?}");
    }

    #[test]
    fn a_kernel_panic_or_a_dead_qemu_is_a_system_failure() {
        let g = golden();
        let (console, _) = g.split_once("----- wire -----\n").unwrap();
        let cut = &console[..console.len() / 2];
        let panicked = format!("{cut}\nKERNEL PANIC at kernel/src/x.rs:1\n");
        assert_eq!(run(&panicked).outcome, Outcome::SystemFailure);
        let v = classify(
            &Workload::resilient_echo(),
            g,
            cut,
            &HostView {
                wire: String::new(),
                qemu_exited: true,
            },
        );
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
    }

    #[test]
    fn outcome_names_round_trip() {
        for o in OUTCOMES {
            assert_eq!(Outcome::parse(o.name()), Some(o));
        }
        assert_eq!(Outcome::parse("nonsense"), None);
    }
}
