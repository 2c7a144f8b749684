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

/// The system's workload, whose own end-to-end checks give the verdict (the monitor's lines
/// only tell whether the system *detected* a failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// resilient-echo's: sequence-checking clients over the serial driver, the wire, lines the
    /// host types for echo_rx.
    Echo(Echo),
    /// The blk pattern client (tests/systems/campaign-blk.system): a seeded pattern written,
    /// flushed, read back and compared by the client; the disk image compared by the host.
    Blk(Blk),
    /// UDP echo through the net driver and the virtualiser (tests/systems/campaign-net.system):
    /// the host sends numbered datagrams to both native clients and compares every answer.
    Net(NetEcho),
    /// The management plane (tests/systems/campaign-control.system): the host asks control-pd
    /// a fixed series of requests as `cargo xtask ctl` does and checks every reply
    /// (`ctl.rs`).
    Ctl(Ctl),
}

/// The `ctl` workload: the system's PDs as the status rows must name them, the control PD,
/// and the PD the series asks it to restart once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctl {
    /// Every PD's name by plan index: the SDF's, then the monitor (the builder adds it last).
    pub pds: Vec<String>,
    pub control: String,
    pub restart: String,
}

/// resilient-echo's workload: its clients, how many messages each sends, how many lines the
/// host types into UART1 at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    pub clients: Vec<String>,
    pub messages: u32,
    pub typed: u32,
}

/// The blk pattern client's workload (driver-pd's `BlkPatternClient`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blk {
    /// Sectors written from sector 0 (`BLK_TEST_SECTORS`), in requests of `chunk`.
    pub sectors: u64,
    pub chunk: u64,
    pub seed: u64,
    /// The disk image's size (the rest must stay zero).
    pub image_bytes: u64,
}

/// The host's UDP echo workload over the native net clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEcho {
    /// The clients' names and addresses on QEMU's network (driver-pd's `NET_CLIENTS`).
    pub clients: Vec<(String, [u8; 4])>,
    /// Datagrams sent to each client, one at a time per client.
    pub datagrams: u32,
}

/// The workload names `--workload` takes.
pub const WORKLOADS: [&str; 4] = ["echo", "blk", "net", "ctl"];

impl Workload {
    /// resilient-echo's (systems/resilient-echo.system, driver-pd's `SeqClient`).
    pub fn resilient_echo() -> Workload {
        Workload::Echo(Echo {
            clients: vec!["client_a".into(), "client_b".into()],
            messages: 100,
            typed: 5,
        })
    }

    /// The blk pattern client's (tests/systems/blk.system and campaign-blk.system).
    pub fn blk() -> Workload {
        Workload::Blk(Blk {
            sectors: axolotl_driver_pd::BLK_TEST_SECTORS,
            chunk: u64::from(axolotl_driver_pd::BLK_PATTERN_SECTORS),
            seed: axolotl_driver_pd::BLK_TEST_SEED,
            // As tests/tests/blk.rs: the client writes the first half.
            image_bytes: 8 << 20,
        })
    }

    /// UDP echo to net-echo's native clients (tests/systems/net-echo.system and
    /// campaign-net.system).
    pub fn net() -> Workload {
        Workload::Net(NetEcho {
            clients: axolotl_driver_pd::NET_CLIENTS
                .iter()
                .map(|c| (c.name.to_string(), c.ip))
                .collect(),
            datagrams: 30,
        })
    }

    /// The management plane's (tests/systems/campaign-control.system: systems/control.system
    /// with control watched).
    pub fn ctl() -> Workload {
        Workload::Ctl(Ctl {
            pds: [
                "serial_driver",
                "control",
                "hello_server",
                "hello_client",
                "hello_logger",
                axolotl_boot_plan::MONITOR_NAME,
            ]
            .map(String::from)
            .to_vec(),
            control: "control".into(),
            restart: "hello_logger".into(),
        })
    }

    /// `--workload NAME`.
    pub fn named(name: &str) -> Option<Workload> {
        match name {
            "echo" => Some(Workload::resilient_echo()),
            "blk" => Some(Workload::blk()),
            "net" => Some(Workload::net()),
            "ctl" => Some(Workload::ctl()),
            _ => None,
        }
    }

    /// The workload a system runs, from its file's stem: the campaign's choice when no
    /// `--workload` is given.
    pub fn of_system(stem: &str) -> Option<Workload> {
        if stem.starts_with("resilient-echo") {
            Some(Workload::resilient_echo())
        } else if stem.starts_with("blk") || stem == "campaign-blk" {
            Some(Workload::blk())
        } else if stem.starts_with("net-echo") || stem == "campaign-net" {
            Some(Workload::net())
        } else if stem == "campaign-control" {
            Some(Workload::ctl())
        } else {
            None
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Workload::Echo(_) => "echo",
            Workload::Blk(_) => "blk",
            Workload::Net(_) => "net",
            Workload::Ctl(_) => "ctl",
        }
    }

    /// Where a rings region holds its connections (byte offsets) and their queue capacity:
    /// the `ring` kind's words are their head and tail indices.
    pub fn ring_layout(&self) -> (&'static [u64], u64) {
        match self {
            // control-pd's connections to its serial driver are serial-core's.
            Workload::Echo(_) | Workload::Ctl(_) => {
                (&[0], u64::from(axolotl_serial_core::layout::CAPACITY))
            }
            Workload::Blk(_) => (&[0], u64::from(axolotl_blk::layout::CAPACITY)),
            Workload::Net(_) => (
                &[0, axolotl_net::link::TX_RINGS_OFFSET as u64],
                u64::from(axolotl_net::link::CAPACITY),
            ),
        }
    }

    /// Whether the workload finished, as far as the console tells (the net workload's end is
    /// the host's traffic, not a console line).
    pub fn console_done(&self, console: &str) -> bool {
        match self {
            Workload::Echo(e) => e.clients.iter().all(|c| console.contains(&e.done_line(c))),
            Workload::Blk(_) => console.contains(BLK_VERDICT),
            Workload::Net(_) | Workload::Ctl(_) => false,
        }
    }
}

/// The blk pattern client's closing line.
pub const BLK_VERDICT: &str = "blk_client: verdict: ";

impl Echo {
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
    /// The workload's own findings on the host, one a line: the disk image compared with the
    /// pattern (`image: …`), every datagram's fate (`net: …`).
    pub host: String,
}

/// The markers between a log's parts.
pub const WIRE_MARKER: &str = "----- wire -----\n";
pub const HOST_MARKER: &str = "----- host -----\n";

/// A run's log as the campaign keeps it (`logs/<id>.txt`, the fixtures): the console, then
/// the wire after a marker line, then the host's findings after another (older logs have
/// none).
pub fn split_log(text: &str) -> (&str, &str, &str) {
    let (console, rest) = text.split_once(WIRE_MARKER).unwrap_or((text, ""));
    let (wire, host) = rest.split_once(HOST_MARKER).unwrap_or((rest, ""));
    (console, wire, host)
}

/// The log `split_log` reads back.
pub fn join_log(console: &str, host: &HostView) -> String {
    if host.host.is_empty() {
        format!("{console}\n{WIRE_MARKER}{}", host.wire)
    } else {
        format!(
            "{console}\n{WIRE_MARKER}{}\n{HOST_MARKER}{}",
            host.wire, host.host
        )
    }
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

/// Lines that mean the whole system is lost (but for the monitor's restart when the monitor
/// is the target: [`MONITOR_RESTARTED`]).
const SYSTEM_FAILURE: [&str; 6] = [
    "KERNEL PANIC",
    "kernel: FAULT",
    // The root task restarts a monitor that died or hung.
    MONITOR_RESTARTED,
    // ... and holds it, lost for good, past its limit (5 in 10 s).
    "root-task: monitor: holding monitor",
    "root-task: restarting the monitor failed",
    "root-task: FATAL",
];

/// The root task's watchdog restarting the monitor (a fault or a hang of it): a system
/// failure when another PD was the target, the detection when the monitor is.
const MONITOR_RESTARTED: &str = "root-task: monitor: restarted monitor";
/// A monitor's first line, with its generation (`monitor: watching N PDs (generation G), …`):
/// a restarted monitor serves again.
const MONITOR_UP: &str = "monitor: watching ";

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
fn wire_faults(w: &Echo, wire: &str, detected: bool) -> Vec<String> {
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

/// What the workload's own checks found: service the applications lost (`missed`) and wrong
/// data that reached them (`wrong`).
#[derive(Default)]
struct Checks {
    missed: Vec<String>,
    wrong: Vec<String>,
}

/// resilient-echo: every client done (in order, exactly once), echo_rx got every typed line,
/// and the wire holds exactly the messages.
fn echo_checks(e: &Echo, console: &str, host: &HostView, detected: bool) -> Checks {
    let mut c = Checks::default();
    for cl in &e.clients {
        if !console.contains(&e.done_line(cl)) {
            c.missed.push(format!("{cl} did not finish"));
        }
    }
    for i in 1..=e.typed {
        if !console.contains(&format!("echo_rx: received \"ping {i}\"")) {
            c.missed.push(format!("echo_rx did not receive ping {i}"));
            break;
        }
    }
    if c.missed.is_empty() {
        c.wrong = wire_faults(e, &host.wire, detected);
    }
    c
}

/// `name N` in a line (`writes 256,`), if there.
fn field(line: &str, name: &str) -> Option<u64> {
    line.split(&format!("{name} "))
        .nth(1)?
        .split([',', ')'])
        .next()?
        .parse()
        .ok()
}

/// The blk pattern client: its verdict given, every request completed exactly once and OK
/// (as many writes and reads as the pattern has requests, one flush), nothing read back
/// different; and on the host, the image holds the pattern (`image: …` lines).
fn blk_checks(b: &Blk, console: &str, host: &HostView) -> Checks {
    let mut c = Checks::default();
    let Some(v) = console.lines().find(|l| l.contains(BLK_VERDICT)) else {
        c.missed.push("blk_client gave no verdict".into());
        return c;
    };
    let requests = b.sectors / b.chunk.max(1);
    let want = [("writes", requests), ("reads", requests), ("flushes", 1)];
    for (name, n) in want {
        match field(v, name) {
            Some(got) if got == n => {}
            Some(got) => c.missed.push(format!("{got} {name} completed, not {n}")),
            None => c.missed.push(format!("no {name} count in the verdict")),
        }
    }
    match field(v, "failed") {
        Some(0) => {}
        Some(n) => c.missed.push(format!("{n} requests failed")),
        None => c.missed.push("no failed count in the verdict".into()),
    }
    match field(v, "mismatched sectors") {
        Some(0) => {}
        Some(n) => c
            .wrong
            .push(format!("{n} sectors read back differ from the pattern")),
        None => c.missed.push("no mismatch count in the verdict".into()),
    }
    for l in host.host.lines() {
        if let Some(finding) = l.strip_prefix("image: ")
            && finding != "the pattern, zeros after it"
        {
            c.wrong.push(format!("disk image: {finding}"));
        }
    }
    if !host.host.lines().any(|l| l.starts_with("image: ")) {
        c.missed.push("the disk image was not checked".into());
    }
    c
}

/// The disk image after a blk run, compared with the pattern as `image: …` lines (what
/// `blk_checks` reads): the pattern over the written sectors and zeros after them, or what
/// differs.
pub fn blk_image_findings(b: &Blk, bytes: &[u8]) -> String {
    use axolotl_blk::SECTOR_SIZE;
    if bytes.len() as u64 != b.image_bytes {
        return format!("image: {} bytes, not {}\n", bytes.len(), b.image_bytes);
    }
    let mut want = [0u8; SECTOR_SIZE];
    let mut bad = Vec::new();
    for sector in 0..b.sectors {
        axolotl_blk::pattern::pattern_sector(b.seed, sector, &mut want);
        let at = sector as usize * SECTOR_SIZE;
        if bytes.get(at..at + SECTOR_SIZE) != Some(&want[..]) {
            bad.push(sector);
        }
    }
    let rest = (b.sectors as usize * SECTOR_SIZE).min(bytes.len());
    let mut out = String::new();
    if !bad.is_empty() {
        out.push_str(&format!(
            "image: {} sectors differ from the pattern, the first {:?}\n",
            bad.len(),
            &bad[..bad.len().min(8)]
        ));
    }
    if bytes[rest..].iter().any(|&x| x != 0) {
        out.push_str("image: bytes past the pattern changed\n");
    }
    if out.is_empty() {
        out.push_str("image: the pattern, zeros after it\n");
    }
    out
}

/// The host's UDP echo (`net: …` lines, from `inject::net_traffic`): every datagram answered
/// byte for byte by the client it was sent to, no answer beyond the tries it was sent in, and
/// no try left unanswered unless a failure was detected (a datagram lost with nobody
/// noticing is a failure the network hid, even if the retry got through; a slow answer that
/// made the host retry is not a loss).
fn net_checks(n: &NetEcho, host: &HostView, detected: bool) -> Checks {
    let mut c = Checks::default();
    for (name, _) in &n.clients {
        let summary = host
            .host
            .lines()
            .find(|l| l.starts_with(&format!("net: {name}: sent ")));
        let Some(s) = summary else {
            c.missed.push(format!("no traffic to {name}"));
            continue;
        };
        let answered = field(s, "answered").unwrap_or(0);
        if answered < u64::from(n.datagrams) {
            c.missed.push(format!(
                "{name} answered {answered} of {} datagrams",
                n.datagrams
            ));
        }
        let lost = field(s, "unanswered tries").unwrap_or(0);
        if lost > 0 && !detected {
            c.missed.push(format!(
                "{name}: {lost} datagrams lost on the way, nothing detected"
            ));
        }
    }
    for l in host.host.lines() {
        let Some(finding) = l.strip_prefix("net: ") else {
            continue;
        };
        if finding.contains("corrupt answer") || finding.contains("answer from ") {
            c.wrong.push(finding.to_string());
        } else if finding.contains("answered more often than sent") && !detected {
            // A restart may forward a frame twice (at-least-once): excused only then.
            c.wrong.push(finding.to_string());
        }
    }
    c
}

/// The monitor's refusal of a report that no later restart can answer: the accused cannot
/// be restarted (a stale report, one that crossed a restart, is answered already).
fn declined_for_good(l: &str) -> bool {
    l.contains("monitor: report by ")
        && (l.contains("restart limit is reached") || l.contains(" is held"))
}

/// Whether `l` is a decision of the monitor's (or a peer's report) that the golden run did
/// not make: the system's normal life is not detection, and neither is a restart the
/// control plane asked for (its line carries its latency, which no two runs share).
fn new_decision(golden: &str, l: &str) -> bool {
    DETECTION.iter().any(|n| l.contains(n))
        && !golden.contains(l)
        && !l.contains("(requested by ")
        // The root task's lines (its restart of the monitor) are judged apart; a line may
        // carry bytes of another PD's unfinished output before them.
        && !l.contains("root-task: ")
}

/// Whether line `i`, `l`, is the monitor's `restarting PD after …` wait before a restart
/// the control plane asked for (the restart floor): the restart's own line says so, the
/// wait's does not.
fn requested_later(console: &str, i: usize, l: &str) -> bool {
    let Some(pd) = l
        .split("monitor: restarting ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
    else {
        return false;
    };
    let restarted = format!("monitor: restarted {pd} ");
    console
        .lines()
        .skip(i + 1)
        .find(|l| l.contains(&restarted))
        .is_some_and(|l| l.contains("(requested by "))
}

/// Classifies one injected run into `target`. `golden` is the console of the run without
/// injection, `console` the injected run's (whole), `host` what the host saw.
///
/// When the target is the monitor, the root task's watchdog restarting it is the
/// detection, and the workload's checks passing across that restart (nothing else
/// restarted, held or reported) is the recovery; the monitor held by the root task, or
/// restarted and never serving again, stays a system failure.
pub fn classify(
    w: &Workload,
    target: &str,
    golden: &str,
    console: &str,
    host: &HostView,
) -> Verdict {
    let monitor = target == axolotl_boot_plan::MONITOR_NAME;
    let failure = console.lines().find(|l| {
        SYSTEM_FAILURE.iter().any(|n| l.contains(n)) && !(monitor && l.contains(MONITOR_RESTARTED))
    });
    if let Some(l) = failure {
        return Verdict {
            outcome: Outcome::SystemFailure,
            detection: None,
            why: l.to_string(),
        };
    }
    let detection = if monitor {
        console.lines().find(|l| l.contains(MONITOR_RESTARTED))
    } else {
        console
            .lines()
            .enumerate()
            .find(|(i, l)| new_decision(golden, l) && !requested_later(console, *i, l))
            .map(|(_, l)| l)
    }
    .map(str::to_string);
    let detected = detection.is_some();
    if monitor && detected {
        // Restarted, the monitor must serve again: one that never does is lost.
        let back = console
            .lines()
            .skip_while(|l| !l.contains(MONITOR_RESTARTED))
            .skip(1)
            .collect::<Vec<_>>();
        let last_restart = back
            .iter()
            .rposition(|l| l.contains(MONITOR_RESTARTED))
            .map_or(0, |i| i + 1);
        if !back[last_restart..].iter().any(|l| l.contains(MONITOR_UP)) {
            return Verdict {
                outcome: Outcome::SystemFailure,
                detection,
                why: "the monitor was restarted and never served again".into(),
            };
        }
    }

    let Checks {
        mut missed,
        mut wrong,
    } = match w {
        Workload::Echo(e) => echo_checks(e, console, host, detected),
        Workload::Blk(b) => blk_checks(b, console, host),
        Workload::Net(n) => net_checks(n, host, detected),
        Workload::Ctl(c) => {
            let f = super::ctl::judge(c, console, &host.host);
            Checks {
                missed: f.missed,
                wrong: f.wrong,
            }
        }
    };
    if monitor {
        // The monitor's own fault must not make it act on the PDs: a restart, a hold or a
        // report it declined that the golden run did not have is a service lost.
        for l in console.lines().filter(|l| new_decision(golden, l)) {
            missed.push(format!("the monitor acted: {l}"));
        }
    }
    if let Some(l) = console.lines().find(|l| l.contains("monitor: holding ")) {
        missed.push(format!("a PD is held: {l}"));
        // What a held system put on the wire is beside the point: it lost service.
        if matches!(w, Workload::Echo(_)) {
            wrong.clear();
        }
    }
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
    let (outcome, why) = if !wrong.is_empty() {
        (Outcome::Sdc, wrong.join("; "))
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
            "serial_driver",
            golden(),
            console,
            &HostView {
                wire: wire.to_string(),
                qemu_exited: false,
                ..Default::default()
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
            "serial_driver",
            g,
            console,
            &HostView {
                wire: bad,
                qemu_exited: false,
                ..Default::default()
            },
        );
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
        // A message missing from the wire while the client saw it complete, too.
        let lost = wire.replacen("client_a 42\n", "", 1);
        let v = classify(
            &Workload::resilient_echo(),
            "serial_driver",
            g,
            console,
            &HostView {
                wire: lost,
                qemu_exited: false,
                ..Default::default()
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
            "serial_driver",
            g,
            cut,
            &HostView {
                wire: String::new(),
                qemu_exited: true,
                ..Default::default()
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

    /// Classifies a kept log (console, wire, host findings) of workload `w` against `golden`.
    fn run_log(w: &Workload, golden: &str, log: &str, qemu_exited: bool) -> Verdict {
        // Any target but the monitor is classified alike.
        run_into(w, "a_driver", golden, log, qemu_exited)
    }

    /// Classifies a kept log of workload `w` with faults injected into `target`.
    fn run_into(w: &Workload, target: &str, golden: &str, log: &str, qemu_exited: bool) -> Verdict {
        let (console, wire, host) = split_log(log);
        classify(
            w,
            target,
            golden,
            console,
            &HostView {
                wire: wire.to_string(),
                qemu_exited,
                host: host.to_string(),
            },
        )
    }

    const BLK_GOLDEN: &str = include_str!("fixtures/blk-golden.txt");
    /// A flip of SP's bit 31 in the blk driver during the read-back: it faulted, the monitor
    /// restarted it, the client re-issued what it held and its verdict passed.
    const BLK_RECOVERED: &str = include_str!("fixtures/blk-recovered.txt");

    fn blk(log: &str) -> Verdict {
        run_log(&Workload::blk(), BLK_GOLDEN, log, false)
    }

    #[test]
    fn logs_split_and_join_back() {
        let (c, w, h) = split_log(BLK_GOLDEN);
        assert!(c.contains(BLK_VERDICT) && w.trim().is_empty() && h.starts_with("image: "));
        let host = HostView {
            wire: w.to_string(),
            qemu_exited: false,
            host: h.to_string(),
        };
        // Back as it was, but for the line ends the markers stand on.
        let joined = join_log(c, &host);
        let (c2, w2, h2) = split_log(&joined);
        assert_eq!(
            (c2.trim_end(), w2.trim_end(), h2),
            (c.trim_end(), w.trim_end(), h)
        );
        // The serial fixtures, made before the host part, have none.
        assert_eq!(split_log(golden()).2, "");
    }

    #[test]
    fn blk_golden_and_recovered_runs() {
        assert_eq!(blk(BLK_GOLDEN).outcome, Outcome::NotManifested);
        let v = blk(BLK_RECOVERED);
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        assert!(v.detection.unwrap().contains("restarted blk_driver"));
    }

    #[test]
    fn blk_without_a_verdict_is_a_failed_recovery_or_undetected() {
        let cut = |log: &str| {
            log.lines()
                .filter(|l| !l.contains(BLK_VERDICT) && !l.starts_with("image: "))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        // A partly written image is no corruption when the client never finished.
        let v = blk(&format!(
            "{}image: 4096 sectors differ from the pattern, the first [4096]\n",
            cut(BLK_RECOVERED)
        ));
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("no verdict"), "{v:?}");
        let v = blk(&cut(BLK_GOLDEN));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
        // The client stuck and QEMU gone: the system.
        let v = run_log(&Workload::blk(), BLK_GOLDEN, &cut(BLK_GOLDEN), true);
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
    }

    #[test]
    fn blk_requests_lost_failed_or_twice_are_missed_service() {
        for (from, to, why) in [
            ("failed 0,", "failed 2,", "2 requests failed"),
            (
                "writes 256,",
                "writes 255,",
                "255 writes completed, not 256",
            ),
            ("reads 256,", "reads 257,", "257 reads completed, not 256"),
            ("flushes 1,", "flushes 0,", "0 flushes completed, not 1"),
        ] {
            let v = blk(&BLK_RECOVERED.replace(from, to));
            assert_eq!(v.outcome, Outcome::RecoveryFailed, "{from}: {v:?}");
            assert!(v.why.contains(why), "{v:?}");
            let v = blk(&BLK_GOLDEN.replace(from, to));
            assert_eq!(v.outcome, Outcome::Undetected, "{from}: {v:?}");
        }
    }

    #[test]
    fn blk_wrong_data_read_back_or_on_the_disk_is_sdc() {
        let v = blk(&BLK_GOLDEN.replace("mismatched sectors 0", "mismatched sectors 3"));
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
        assert!(v.why.contains("3 sectors read back differ"), "{v:?}");
        // The client read back what it wrote, but the image holds something else: a
        // write that went elsewhere, or happened after the read-back.
        let b = match Workload::blk() {
            Workload::Blk(b) => b,
            _ => unreachable!(),
        };
        let mut image = vec![0u8; b.image_bytes as usize];
        for s in 0..b.sectors {
            let mut sec = [0u8; axolotl_blk::SECTOR_SIZE];
            axolotl_blk::pattern::pattern_sector(b.seed, s, &mut sec);
            image[s as usize * 512..][..512].copy_from_slice(&sec);
        }
        assert_eq!(
            blk_image_findings(&b, &image),
            "image: the pattern, zeros after it\n"
        );
        image[77 * 512 + 5] ^= 0x10;
        image[b.sectors as usize * 512 + 9] = 1;
        let found = blk_image_findings(&b, &image);
        assert!(
            found.contains("1 sectors differ from the pattern, the first [77]"),
            "{found}"
        );
        assert!(found.contains("bytes past the pattern changed"), "{found}");
        let log = BLK_RECOVERED.replace("image: the pattern, zeros after it\n", &found);
        let v = blk(&log);
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
        assert!(v.why.contains("sectors differ"), "{v:?}");
        assert!(blk_image_findings(&b, &image[..4096]).contains("4096 bytes, not"));
    }

    #[test]
    fn blk_kernel_panic_is_a_system_failure() {
        let v = blk(&BLK_RECOVERED.replace(
            "monitor: told blk_client",
            "KERNEL PANIC at kernel/src/x.rs:1\nmonitor: told blk_client",
        ));
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
    }

    const NET_GOLDEN: &str = include_str!("fixtures/net-golden.txt");
    /// Bit 50 of the net driver's SP flipped under traffic (campaign-net, seed 2026, id 0):
    /// it faulted, the monitor restarted it, every datagram was answered.
    const NET_RECOVERED: &str = include_str!("fixtures/net-recovered.txt");

    fn net(log: &str) -> Verdict {
        run_log(&Workload::net(), NET_GOLDEN, log, false)
    }

    /// `log` with its host findings replaced by `host`.
    fn with_host(log: &str, host: &str) -> String {
        let (before, _) = log.split_once(HOST_MARKER).unwrap();
        format!("{before}{HOST_MARKER}{host}")
    }

    #[test]
    fn net_golden_and_recovered_runs() {
        assert_eq!(net(NET_GOLDEN).outcome, Outcome::NotManifested);
        let v = net(NET_RECOVERED);
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        assert!(v.detection.unwrap().contains("restarted net_driver"));
        // A slow answer that made the host retry, and came late: no loss.
        let slow = "net: echo_a: sent 30, answered 30, retried 1, late 1, unanswered tries 0\n\
                    net: echo_b: sent 30, answered 30, retried 0, late 0, unanswered tries 0\n";
        assert_eq!(
            net(&with_host(NET_GOLDEN, slow)).outcome,
            Outcome::NotManifested
        );
    }

    #[test]
    fn net_lost_datagrams() {
        // Lost for good: after a detection, a failed recovery; without, undetected.
        let lost = "net: echo_a: sent 12, answered 11, retried 1, late 0, unanswered tries 30\n\
                    net: echo_b: sent 11, answered 11, retried 0, late 0, unanswered tries 0\n\
                    net: echo_a 11: lost after 30 tries\n";
        let v = net(&with_host(NET_RECOVERED, lost));
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("echo_a answered 11 of 30"), "{v:?}");
        let v = net(&with_host(NET_GOLDEN, lost));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
        // A frame lost on the way that a retry made good: excused by a detection (a restart
        // loses frames in flight), a failure nobody detected without one.
        let retried = "net: echo_a: sent 30, answered 30, retried 1, late 0, unanswered tries 1\n\
                       net: echo_b: sent 30, answered 30, retried 0, late 0, unanswered tries 0\n";
        assert_eq!(
            net(&with_host(NET_RECOVERED, retried)).outcome,
            Outcome::Recovered
        );
        let v = net(&with_host(NET_GOLDEN, retried));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
        assert!(v.why.contains("1 datagrams lost on the way"), "{v:?}");
        // No traffic at all (the clients never came up).
        let v = net(&with_host(NET_GOLDEN, "net: the clients never came up\n"));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
    }

    #[test]
    fn net_wrong_answers_are_sdc() {
        let ok = "net: echo_a: sent 30, answered 30, retried 0, late 0, unanswered tries 0\n\
                  net: echo_b: sent 30, answered 30, retried 0, late 0, unanswered tries 0\n";
        for bad in [
            "net: echo_b: corrupt answer (512 bytes) \"echo_b 000007 hijk\"\n",
            "net: echo_a: answer from 127.0.0.1:4000, not port 4001: \"echo_b 000003 \"\n",
        ] {
            for log in [NET_GOLDEN, NET_RECOVERED] {
                let v = net(&with_host(log, &format!("{ok}{bad}")));
                assert_eq!(v.outcome, Outcome::Sdc, "{bad}: {v:?}");
            }
        }
        // An answer twice: at-least-once across a restart, wrong without one.
        let twice =
            format!("{ok}net: echo_a 4: answered more often than sent (2 answers to 1 tries)\n");
        assert_eq!(net(&with_host(NET_GOLDEN, &twice)).outcome, Outcome::Sdc);
        assert_eq!(
            net(&with_host(NET_RECOVERED, &twice)).outcome,
            Outcome::Recovered
        );
    }

    #[test]
    fn net_dead_qemu_is_a_system_failure() {
        let lost = "net: echo_a: sent 3, answered 2, retried 1, late 0, unanswered tries 5\n";
        let v = run_log(
            &Workload::net(),
            NET_GOLDEN,
            &with_host(NET_GOLDEN, lost),
            true,
        );
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
    }

    const CTL_GOLDEN: &str = include_str!("fixtures/ctl-golden.txt");
    /// Bit 50 of control's SP flipped while it served a request (campaign-control, seed
    /// 2026, id 0): it faulted, the monitor restarted it, the CLI's retry got the answer
    /// and every later reply checked out.
    const CTL_RECOVERED: &str = include_str!("fixtures/ctl-recovered.txt");
    /// control made to loop (`b .`, id 4): the watchdog restarted it, but first timed out
    /// hello_logger (priority 50, heartbeat 200 ms), which the hung control (120, 250 ms)
    /// starved before control itself was overdue: an innocent PD restarted.
    const CTL_STARVED: &str = include_str!("fixtures/ctl-starved-logger.txt");

    fn ctl(log: &str) -> Verdict {
        run_into(&Workload::ctl(), "control", CTL_GOLDEN, log, false)
    }

    #[test]
    fn ctl_golden_recovered_and_an_innocent_restart() {
        let v = ctl(CTL_GOLDEN);
        assert_eq!(v.outcome, Outcome::NotManifested, "{v:?}");
        // The golden run's requested restart of hello_logger is the workload's, no detection.
        assert!(v.detection.is_none());
        let v = ctl(CTL_RECOVERED);
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        assert!(v.detection.unwrap().contains("restarted control"));
        let v = ctl(CTL_STARVED);
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(
            v.why.contains("hello_logger restarted 1 times unasked"),
            "{v:?}"
        );
    }

    /// A `ring` flip of a word the serial driver writes in control's connection (campaign on
    /// main with control's connection report, seed 2026, id 36): control found the
    /// connection broken and reported the driver, the monitor restarted the driver, and every
    /// request was answered: the driver's restart on control's report is the recovery, not
    /// a PD restarted unasked.
    #[test]
    fn the_driver_restarted_on_control_s_report_is_a_recovery() {
        let v = ctl(include_str!("fixtures/ctl-driver-reported.txt"));
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
    }

    /// A PSTATE flip in control (campaign-control, seed 2026, id 112) lost the answer to
    /// `restart hello_logger` twice; the CLI's third attempt was answered, and the monitor
    /// carried the restart out twice, the second after the restart floor's wait (its
    /// `restarting … after 50 ms` line). Nothing detected control's fault: the wait before
    /// a requested restart is no detection.
    #[test]
    fn a_restart_done_twice_without_a_detection_is_undetected() {
        let v = ctl(include_str!("fixtures/ctl-restart-twice.txt"));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
        assert!(v.detection.is_none(), "{v:?}");
        assert!(v.why.contains("2 times for one request"), "{v:?}");
    }

    #[test]
    fn ctl_lost_requests_twice_done_and_wrong_replies() {
        // A request never answered after its retries: a failed recovery after a detection,
        // undetected without one.
        let lost = |log: &str| {
            let (before, host) = log.split_once(HOST_MARKER).unwrap();
            let cut: String = host
                .lines()
                .take_while(|l| !l.starts_with("ctl: step 5"))
                .map(|l| format!("{l}\n"))
                .collect();
            format!(
                "{before}{HOST_MARKER}{cut}ctl: step 5 Status\nctl: ask 5 12 {{\"Status\":{{\"index\":0}}}} =! no answer after 12 attempts in 60 s\n"
            )
        };
        let v = ctl(&lost(CTL_RECOVERED));
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("unanswered"), "{v:?}");
        let v = ctl(&lost(CTL_GOLDEN));
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
        // The restart carried out twice (a retry after a lost answer).
        let twice = CTL_RECOVERED.replacen(
            "monitor: told hello_client that hello_logger restarted\n",
            "monitor: told hello_client that hello_logger restarted\n\
             monitor: restarted hello_logger (requested by control) generation 2 in 8 us (standby)\n",
            1,
        );
        let v = ctl(&twice);
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("2 times for one request"), "{v:?}");
        // A reply with a good CRC and wrong content: a status row naming another PD.
        let wrong =
            CTL_RECOVERED.replacen("\"name\":\"hello_server\"", "\"name\":\"hello_client\"", 1);
        let v = ctl(&wrong);
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
        let v =
            ctl(&CTL_GOLDEN.replacen("\"name\":\"hello_server\"", "\"name\":\"hello_client\"", 1));
        assert_eq!(v.outcome, Outcome::Sdc, "{v:?}");
    }

    /// PC bit 14 flipped in the monitor's `rearm` (campaign-control, seed 2026, id 1): it
    /// faulted, the root task restarted it, control's request in flight was answered
    /// `Unavailable` and the CLI's retry reached the new monitor (step 7: 2 attempts).
    const MONITOR_CTL_RECOVERED: &str = include_str!("fixtures/monitor-ctl-recovered.txt");
    /// The same class before the CLI retried `Unavailable` (trial run, id 7): the log
    /// request in flight when the monitor died was refused.
    const MONITOR_CTL_UNAVAILABLE: &str = include_str!("fixtures/monitor-ctl-unavailable.txt");

    #[test]
    fn the_monitor_restarted_under_the_control_plane() {
        let v = run_into(
            &Workload::ctl(),
            "monitor",
            CTL_GOLDEN,
            MONITOR_CTL_RECOVERED,
            false,
        );
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        assert!(v.detection.unwrap().contains("restarted monitor"));
        assert!(MONITOR_CTL_RECOVERED.contains("ctl: ask 7 2 "));
        let v = run_into(
            &Workload::ctl(),
            "monitor",
            CTL_GOLDEN,
            MONITOR_CTL_UNAVAILABLE,
            false,
        );
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(
            v.why.contains("refused: the monitor did not answer"),
            "{v:?}"
        );
        // Under another target, the monitor's restart is the system's failure.
        let v = ctl(MONITOR_CTL_RECOVERED);
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
    }

    /// A code flip in the monitor (campaign-control, seed 2026, id 78): it carried out and
    /// journaled `restart hello_logger`, then faulted before its console line; its successor
    /// resumed at hello_logger's generation 1 and answered the CLI's retry `Done`. Every
    /// reply was right: the root task's refill of hello_logger's standby is the restart's
    /// trace (before, this was classified as SDC: "generation 1, but the monitor restarted
    /// it 0 times").
    const MONITOR_DIED_AFTER_RESTART: &str =
        include_str!("fixtures/monitor-ctl-died-after-restart.txt");

    #[test]
    fn a_restart_whose_line_died_with_the_monitor_is_counted_from_the_root_task() {
        let v = run_into(
            &Workload::ctl(),
            "monitor",
            CTL_GOLDEN,
            MONITOR_DIED_AFTER_RESTART,
            false,
        );
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        // Without a restarted monitor the root task's refills prove nothing more than the
        // monitor's lines: the same run with its restart line gone is not recovered.
        let edited = MONITOR_DIED_AFTER_RESTART.replace(
            "root-task: monitor: restarted monitor",
            "root-task: monitor: (edited out)",
        );
        let v = run_into(&Workload::ctl(), "monitor", CTL_GOLDEN, &edited, false);
        assert_ne!(v.outcome, Outcome::Recovered, "{v:?}");
    }

    /// The echo golden run with the monitor faulted at `at` (a line of the console) and
    /// what the root task and the monitor said about it inserted there.
    fn monitor_fault(lines: &str) -> String {
        golden().replacen("client_a: done:", &format!("{lines}client_a: done:"), 1)
    }

    const MONITOR_RESTART: &str = "root-task: monitor: restarted monitor (cause: vm-fault read at 0x0 ip 0x20f040) generation 1 in 120 us (in place)\n";
    const MONITOR_BACK: &str = "monitor: watching 5 PDs (generation 1), 3 with heartbeats\n";

    #[test]
    fn the_monitors_restart_is_its_detection_when_it_is_the_target() {
        let restarted = monitor_fault(&format!("{MONITOR_RESTART}{MONITOR_BACK}"));
        let echo = Workload::resilient_echo();
        let v = run_into(&echo, "monitor", golden(), &restarted, false);
        assert_eq!(v.outcome, Outcome::Recovered, "{v:?}");
        assert!(v.detection.unwrap().contains("restarted monitor"));
        // Another target's fault that cost the monitor is the system's failure.
        let v = run_into(&echo, "serial_driver", golden(), &restarted, false);
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
        // Restarted and never serving again, or held by the root task: lost.
        let v = run_into(
            &echo,
            "monitor",
            golden(),
            &monitor_fault(MONITOR_RESTART),
            false,
        );
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
        let again = monitor_fault(&format!("{MONITOR_RESTART}{MONITOR_BACK}{MONITOR_RESTART}"));
        let v = run_into(&echo, "monitor", golden(), &again, false);
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
        let held = monitor_fault(&format!(
            "{MONITOR_RESTART}root-task: monitor: holding monitor stopped: restart limit 5 in 10000 ms reached\n"
        ));
        let v = run_into(&echo, "monitor", golden(), &held, false);
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
        // A kernel panic stays one.
        let v = run_into(
            &echo,
            "monitor",
            golden(),
            &monitor_fault("KERNEL PANIC at kernel/src/x.rs:1\n"),
            false,
        );
        assert_eq!(v.outcome, Outcome::SystemFailure, "{v:?}");
    }

    #[test]
    fn a_monitor_acting_on_an_innocent_pd_is_a_failure() {
        let echo = Workload::resilient_echo();
        let wrong = "monitor: restarted client_a (cause: hang (no heartbeat in 250 ms)) generation 1 in 8 us (standby)\n";
        // After its own restart: the recovery failed.
        let log = monitor_fault(&format!("{MONITOR_RESTART}{MONITOR_BACK}{wrong}"));
        let v = run_into(&echo, "monitor", golden(), &log, false);
        assert_eq!(v.outcome, Outcome::RecoveryFailed, "{v:?}");
        assert!(v.why.contains("the monitor acted"), "{v:?}");
        // Without one: nobody detected the monitor's fault.
        let v = run_into(&echo, "monitor", golden(), &monitor_fault(wrong), false);
        assert_eq!(v.outcome, Outcome::Undetected, "{v:?}");
    }

    #[test]
    fn workloads_by_system_and_name() {
        for (stem, w) in [
            ("resilient-echo", "echo"),
            ("resilient-echo-silent", "echo"),
            ("blk", "blk"),
            ("campaign-blk", "blk"),
            ("net-echo", "net"),
            ("campaign-net", "net"),
            ("campaign-control", "ctl"),
        ] {
            assert_eq!(
                Workload::of_system(stem).map(|w| w.name()),
                Some(w),
                "{stem}"
            );
            assert_eq!(Workload::named(w).unwrap().name(), w);
        }
        assert_eq!(Workload::of_system("gateway"), None);
        assert_eq!(Workload::named("http"), None);
        // The net links hold two connections a rings region, the others one.
        assert_eq!(Workload::net().ring_layout().0.len(), 2);
        assert_eq!(Workload::blk().ring_layout(), (&[0u64][..], 16));
    }
}
