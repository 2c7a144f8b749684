//! The `ctl` workload (tests/systems/campaign-control.system): the host speaks to control-pd
//! as `cargo xtask ctl` does — lib/control-proto's `Client`, over the unix socket QEMU gives
//! UART1, with the CLI's retry rule (a request sent again after `client::ATTEMPT` without
//! an answer) — a fixed series of requests spread over the run, and every reply is checked.
//!
//! The host only records the exchange (`ctl: …` lines, the requests and replies as JSON), so
//! the verdict is a pure function of the log, as for the other workloads: [`judge`] reads
//! the transcript back with the console (which says what the monitor really did).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use axolotl_control_proto::client::Client;
use axolotl_control_proto::{Event, LogEntry, PdStatus, Reply, Request, name};

use super::classify::Ctl;
use super::inject::Line;

/// One step of the series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every PD's status row, index by index, as `ctl status` reads them.
    Status,
    /// The recovery log from sequence number 0 to its end, as `ctl log` reads it.
    Log,
    /// `ctl restart PD`.
    Restart,
}

/// The series, with the host's pause before each step: the requests are spread over the
/// run, so that injection points (control's own instruction stream) fall on every kind of
/// request and between them. The restart comes after a first look, so the later steps see
/// it exactly once.
pub const SCRIPT: [(Step, u64); 8] = [
    (Step::Status, 0),
    (Step::Log, 200),
    (Step::Status, 200),
    (Step::Restart, 300),
    (Step::Log, 300),
    (Step::Status, 300),
    (Step::Log, 300),
    (Step::Status, 300),
];

/// How long one request may take, its retries included: a hang of control is found by the
/// heartbeat, which under `-icount` on the loaded machine takes tens of seconds of host
/// time (docs/resilience.md), and the CLI's retry then reaches the new incarnation. The
/// CLI's own default is 30 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The transcript's markers.
const ASK: &str = "ctl: ask ";
const ANSWER: &str = " => ";
const NO_ANSWER: &str = " =! ";
pub const DONE: &str = "ctl: done";
const NEVER_UP: &str = "ctl: control never came up";
const STEP: &str = "ctl: step ";

/// One request and what came of it: the reply, or the client's error after its retries.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// The step of [`SCRIPT`] it belongs to.
    pub step: usize,
    pub request: Request,
    /// Attempts the client made (sends of the request).
    pub attempts: u16,
    pub reply: Result<Reply, String>,
}

impl Exchange {
    /// The transcript line.
    pub fn line(&self) -> String {
        let req = serde_json::to_string(&self.request).unwrap_or_default();
        match &self.reply {
            Ok(r) => format!(
                "{ASK}{} {} {req}{ANSWER}{}",
                self.step,
                self.attempts,
                serde_json::to_string(r).unwrap_or_default()
            ),
            Err(e) => format!(
                "{ASK}{} {} {req}{NO_ANSWER}{}",
                self.step,
                self.attempts,
                e.replace('\n', " ")
            ),
        }
    }

    /// A transcript line read back.
    pub fn parse(line: &str) -> Option<Exchange> {
        let rest = line.strip_prefix(ASK)?;
        let (step, rest) = rest.split_once(' ')?;
        let (attempts, rest) = rest.split_once(' ')?;
        let (req, reply) = match rest.split_once(ANSWER) {
            Some((q, a)) => (q, Ok(serde_json::from_str(a).ok()?)),
            None => {
                let (q, e) = rest.split_once(NO_ANSWER)?;
                (q, Err(e.to_string()))
            }
        };
        Some(Exchange {
            step: step.parse().ok()?,
            request: serde_json::from_str(req).ok()?,
            attempts: attempts.parse().ok()?,
            reply,
        })
    }
}

/// Runs [`SCRIPT`] against the control socket once control serves (its `generation` line on
/// the console): the transcript as `ctl: …` lines. Sets `served` when the last reply is in
/// (stops after it are no injection points); gives up at `deadline` or when `stop` is set.
pub fn traffic(
    c: &Ctl,
    sock: &Path,
    lines: &Mutex<Vec<Line>>,
    stop: &AtomicBool,
    served: &AtomicBool,
    deadline: Instant,
) -> String {
    let over = || stop.load(Ordering::SeqCst) || Instant::now() >= deadline;
    let up = format!("{}: generation 0: serving", c.control);
    while !lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.text.starts_with(&up))
    {
        if over() {
            return format!("{NEVER_UP}\n");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut client = loop {
        match Client::connect(sock, REQUEST_TIMEOUT) {
            Ok(cl) => break cl,
            Err(e) if over() => return format!("{NEVER_UP}: {e}\n"),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut out = String::new();
    let mut seen_generation = None;
    let ask = |client: &mut Client, step: usize, request: Request, out: &mut String| {
        let first = client.next_id();
        let reply = client.ask(&request).map_err(|e| e.to_string());
        let attempts = client.next_id().wrapping_sub(first);
        let x = Exchange {
            step,
            request,
            attempts,
            reply,
        };
        out.push_str(&x.line());
        out.push('\n');
        x.reply
    };
    for (step, (what, pause_ms)) in SCRIPT.iter().enumerate() {
        let until = Instant::now() + Duration::from_millis(*pause_ms);
        while Instant::now() < until && !over() {
            thread::sleep(Duration::from_millis(20));
        }
        if over() {
            break;
        }
        out.push_str(&format!("{STEP}{step} {what:?}\n"));
        match what {
            Step::Status => {
                let mut index = 0u8;
                while !over() && usize::from(index) < 2 * c.pds.len() {
                    match ask(&mut client, step, Request::Status { index }, &mut out) {
                        Ok(Reply::Pd { total, status }) => {
                            if status.name.as_str() == c.restart {
                                seen_generation = Some(status.generation);
                            }
                            if index + 1 < total {
                                index += 1;
                            } else {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
            }
            Step::Log => {
                let mut seq = 0u32;
                // A log holds 32 entries; a lying one does not keep the host forever.
                for _ in 0..64 {
                    if over() {
                        break;
                    }
                    match ask(&mut client, step, Request::Log { seq }, &mut out) {
                        Ok(Reply::Log(Some(e))) if e.seq >= seq => seq = e.seq + 1,
                        _ => break,
                    }
                }
            }
            Step::Restart => {
                let Some(pd) = name(&c.restart) else { break };
                // As `cargo xtask ctl restart` asks: the generation the last status showed,
                // so that the CLI's retry after a monitor restart restarts it once.
                let request = Request::Restart {
                    pd,
                    if_generation: seen_generation,
                };
                let _ = ask(&mut client, step, request, &mut out);
            }
        }
        if step + 1 == SCRIPT.len() && !over() {
            out.push_str(DONE);
            out.push('\n');
        }
    }
    served.store(true, Ordering::SeqCst);
    out
}

/// What the checks found: service the operator lost (`missed`) and wrong replies the CLI
/// took as valid (`wrong`: its CRC was fine, its content was not).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub missed: Vec<String>,
    pub wrong: Vec<String>,
}

/// `monitor: restarted PD ` lines of the console, by PD, split into the control plane's
/// requested restarts and the others.
fn restarts(console: &str) -> BTreeMap<String, (u32, u32)> {
    let mut m = BTreeMap::<String, (u32, u32)>::new();
    for l in console.lines() {
        let Some(rest) = l.split("monitor: restarted ").nth(1) else {
            continue;
        };
        // The root task's restart of the monitor itself is `root-task: monitor: restarted
        // monitor`: counted as the monitor's.
        let pd = rest.split(' ').next().unwrap_or("").to_string();
        let e = m.entry(pd).or_default();
        if rest.contains("(requested by ") {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    m
}

/// Per PD, the standbys the root task refilled: each follows a restart onto the standby,
/// so their count is a floor of the PD's restarts that does not rest on the monitor's word.
/// A monitor that dies between a restart it carried out (and journaled) and its console line
/// leaves only this trace (the monitor's campaign, id 78: `restart hello_logger` done, the
/// monitor faulted before `monitor: restarted hello_logger`, its successor resumed from the
/// journal at generation 1).
fn standby_refills(console: &str) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for l in console.lines() {
        let Some(rest) = l.split("root-task: the standby of ").nth(1) else {
            continue;
        };
        if rest.contains(" restored in ") {
            *m.entry(rest.split(' ').next().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    m
}

/// Per PD, the monitor's restarts of it on the report of PD `reporter` (plan index).
fn reported_by(console: &str, reporter: Option<usize>) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    let Some(r) = reporter else {
        return m;
    };
    let cause = format!("(cause: corruption reported by pd {r})");
    for l in console.lines().filter(|l| l.contains(&cause)) {
        if let Some(rest) = l.split("monitor: restarted ").nth(1) {
            *m.entry(rest.split(' ').next().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    m
}

/// The ctl workload's verdict on a run: the transcript (`host`) read back and checked, with
/// the console for what the monitor really did.
pub fn judge(c: &Ctl, console: &str, host: &str) -> Findings {
    let mut f = Findings::default();
    if host.lines().any(|l| l.starts_with(NEVER_UP)) {
        f.missed.push("control never served the host".into());
        return f;
    }
    let xs: Vec<Exchange> = host.lines().filter_map(Exchange::parse).collect();
    if host.lines().filter(|l| l.starts_with(ASK)).count() != xs.len() {
        f.missed.push("a transcript line does not parse".into());
    }
    if !host.lines().any(|l| l == DONE) {
        f.missed
            .push("the series of requests did not finish".into());
    }
    let mut console_restarts = restarts(console);
    // A restarted monitor's recovery log starts afresh, numbered from 0 again
    // (docs/control.md): across its restart, a log read is compared with nothing before it.
    let monitor_restarted = console_restarts.contains_key(axolotl_boot_plan::MONITOR_NAME);
    // Restarts the root task's refills show beyond the monitor's lines: a monitor that died
    // before its line. Only then, and only one of them, can be the restart asked for (the
    // rest count as unasked).
    if monitor_restarted {
        for (pd, refills) in standby_refills(console) {
            let e = console_restarts.entry(pd.clone()).or_default();
            let mut missing = refills.saturating_sub(e.0 + e.1);
            if missing > 0 && pd == c.restart && e.0 == 0 {
                e.0 += 1;
                missing -= 1;
            }
            e.1 += missing;
        }
    }
    let console_restarts = console_restarts;
    let restarted = |pd: &str| {
        console_restarts
            .get(pd)
            .map_or(0, |(req, other)| req + other)
    };
    // Per PD, the first status row read: what must not change between reads.
    let mut first_row: BTreeMap<u8, PdStatus> = BTreeMap::new();
    let mut last_generation: BTreeMap<u8, u32> = BTreeMap::new();
    // Log entries by sequence number, as first read.
    let mut entries: BTreeMap<u32, LogEntry> = BTreeMap::new();
    let mut restart_done = false;
    let n = c.pds.len();
    let mut prev_step = usize::MAX;
    let mut log_seq: Option<u32> = None;
    for x in &xs {
        if x.step != prev_step {
            prev_step = x.step;
            log_seq = None;
            if monitor_restarted {
                entries.clear();
            }
        }
        let reply = match &x.reply {
            Err(e) => {
                f.missed.push(format!(
                    "{:?} unanswered after its retries ({e})",
                    x.request
                ));
                continue;
            }
            Ok(Reply::Error(e)) => {
                f.missed.push(format!("{:?} refused: {e}", x.request));
                continue;
            }
            Ok(r) => r,
        };
        match (&x.request, reply) {
            (Request::Status { index }, Reply::Pd { total, status }) => {
                let want = c.pds.get(usize::from(*index));
                if usize::from(*total) != n {
                    f.wrong
                        .push(format!("status {index}: {total} PDs, not {n}"));
                }
                if status.index != *index || want.map(String::as_str) != Some(&status.name) {
                    f.wrong.push(format!(
                        "status {index}: row {} {:?}, not {want:?}",
                        status.index,
                        status.name.as_str()
                    ));
                    continue;
                }
                let name = status.name.as_str();
                let first = first_row.entry(*index).or_insert_with(|| status.clone());
                let fixed = |s: &PdStatus| {
                    (
                        s.memory_bytes,
                        s.heartbeat_ms,
                        s.restart_limit,
                        s.managed,
                        s.vm.clone(),
                    )
                };
                if fixed(first) != fixed(status) {
                    f.wrong.push(format!(
                        "status {index} ({name}): {:?} where an earlier read said {:?}",
                        fixed(status),
                        fixed(first)
                    ));
                }
                if status.restarts != status.generation {
                    f.wrong.push(format!(
                        "status {index} ({name}): generation {} but {} restarts",
                        status.generation, status.restarts
                    ));
                }
                let last = last_generation.entry(*index).or_insert(0);
                if status.generation < *last {
                    f.wrong.push(format!(
                        "status {index} ({name}): generation {} after {}",
                        status.generation, *last
                    ));
                }
                *last = status.generation;
                if status.generation > restarted(name) {
                    f.wrong.push(format!(
                        "status {index} ({name}): generation {}, but the monitor restarted it {} times",
                        status.generation,
                        restarted(name)
                    ));
                }
                if restart_done && name == c.restart && status.generation == 0 {
                    f.wrong.push(format!(
                        "status {index} ({name}): generation 0 after its restart was done"
                    ));
                }
            }
            (Request::Log { seq }, Reply::Log(Some(e))) => {
                if e.seq < *seq {
                    f.wrong
                        .push(format!("log {seq}: entry {} is before it", e.seq));
                    continue;
                }
                // Entries are numbered from 0 and none is dropped (the log keeps 32).
                let want = log_seq.map_or(0, |s| s + 1);
                if e.seq != want {
                    f.wrong
                        .push(format!("log {seq}: entry {}, not {want}", e.seq));
                }
                log_seq = Some(e.seq);
                if !c.pds.iter().any(|p| p == e.pd.as_str()) {
                    f.wrong
                        .push(format!("log {seq}: entry for no PD {:?}", e.pd.as_str()));
                } else if e.generation == 0 || e.generation > restarted(&e.pd) {
                    f.wrong.push(format!(
                        "log {seq}: {} generation {}, but the monitor restarted it {} times",
                        e.pd.as_str(),
                        e.generation,
                        restarted(&e.pd)
                    ));
                }
                if e.event != Event::Restarted {
                    f.wrong.push(format!(
                        "log {seq}: {:?} of {}: only restarts happen here",
                        e.event,
                        e.pd.as_str()
                    ));
                }
                if let Some(prev) = entries.get(&e.seq) {
                    if prev != e {
                        f.wrong.push(format!(
                            "log {seq}: entry {} differs from an earlier read",
                            e.seq
                        ));
                    }
                } else {
                    if let Some((_, before)) = entries.range(..e.seq).next_back()
                        && before.at_ms > e.at_ms
                    {
                        f.wrong.push(format!(
                            "log {seq}: entry {} at {} ms, before entry {} at {} ms",
                            e.seq, e.at_ms, before.seq, before.at_ms
                        ));
                    }
                    entries.insert(e.seq, e.clone());
                }
            }
            (Request::Log { .. }, Reply::Log(None)) => {}
            (Request::Restart { .. }, Reply::Done) => restart_done = true,
            (r, other) => f
                .missed
                .push(format!("{r:?} answered with {other:?}: not its answer")),
        }
    }
    // The restart asked for, done exactly once: the console is the truth.
    let (requested, other) = console_restarts.get(&c.restart).copied().unwrap_or((0, 0));
    if restart_done && requested == 0 {
        f.wrong.push(format!(
            "restart {} answered done, but the monitor never restarted it",
            c.restart
        ));
    }
    if requested > 1 {
        f.missed.push(format!(
            "{} restarted {requested} times for one request",
            c.restart
        ));
    }
    if other > 0 {
        f.missed
            .push(format!("{} restarted {other} times unasked", c.restart));
    }
    let requested_entries = entries
        .values()
        .filter(|e| e.pd.as_str() == c.restart && e.cause.contains("requested"))
        .count();
    if restart_done && requested_entries != 1 && !entries.is_empty() && !monitor_restarted {
        f.missed.push(format!(
            "the log holds {requested_entries} requested restarts of {}",
            c.restart
        ));
    }
    // Nothing else restarted: control's own restarts are the detection, not a fault, and so
    // are the serial driver's on control's report (control-pd reports the driver when a
    // connection to it breaks: the driver's restart resets both, the designed recovery).
    let by_control = reported_by(console, c.pds.iter().position(|p| p == &c.control));
    for (pd, (req, oth)) in &console_restarts {
        // The monitor's own restart is the classifier's (a system failure, or the
        // detection when the monitor is the target).
        if pd == axolotl_boot_plan::MONITOR_NAME {
            continue;
        }
        let unasked = (req + oth).saturating_sub(by_control.get(pd).copied().unwrap_or(0));
        if pd != &c.restart && pd != &c.control && unasked > 0 {
            f.missed.push(format!("{pd} restarted ({unasked} times)"));
        }
        if pd == &c.control && *req > 0 {
            f.missed
                .push(format!("{pd} restarted on request ({req} times)"));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_control_proto::{PdState, text};

    fn ctl() -> Ctl {
        match super::super::classify::Workload::ctl() {
            super::super::classify::Workload::Ctl(c) => c,
            _ => unreachable!(),
        }
    }

    fn row(index: u8, pd: &str, generation: u32) -> PdStatus {
        PdStatus {
            index,
            name: name(pd).unwrap(),
            state: PdState::Running,
            generation,
            restarts: generation,
            restarts_in_window: generation,
            restart_limit: 0,
            last_cause: None,
            last_recovery_us: None,
            heartbeat_ms: None,
            heartbeat_age_ms: None,
            memory_bytes: 4096 * (u64::from(index) + 1),
            cpu_us: None,
            guest_cpu_us: None,
            managed: true,
            vm: None,
        }
    }

    fn entry(seq: u32, pd: &str, generation: u32, cause: &str) -> LogEntry {
        LogEntry {
            seq,
            at_ms: 100 * u64::from(seq) + 100,
            pd: name(pd).unwrap(),
            event: Event::Restarted,
            generation,
            cause: text(cause),
            latency_us: Some(40),
        }
    }

    /// A whole run's transcript: `gens` gives each PD's generation before and after the
    /// restart step, `log` the entries after it.
    fn transcript(c: &Ctl, after: &[u32], log: &[LogEntry]) -> String {
        let mut out = String::new();
        let mut push = |step: usize, request: Request, reply: Reply| {
            out.push_str(
                &Exchange {
                    step,
                    request,
                    attempts: 1,
                    reply: Ok(reply),
                }
                .line(),
            );
            out.push('\n');
        };
        let n = c.pds.len() as u8;
        for (step, (what, _)) in SCRIPT.iter().enumerate() {
            let after_restart = step > 3;
            match what {
                Step::Status => {
                    for (i, pd) in c.pds.iter().enumerate() {
                        let g = if after_restart { after[i] } else { 0 };
                        push(
                            step,
                            Request::Status { index: i as u8 },
                            Reply::Pd {
                                total: n,
                                status: row(i as u8, pd, g),
                            },
                        );
                    }
                }
                Step::Log => {
                    let es: &[LogEntry] = if after_restart { log } else { &[] };
                    for (k, e) in es.iter().enumerate() {
                        let seq = if k == 0 { 0 } else { es[k - 1].seq + 1 };
                        push(step, Request::Log { seq }, Reply::Log(Some(e.clone())));
                    }
                    let seq = es.last().map_or(0, |e| e.seq + 1);
                    push(step, Request::Log { seq }, Reply::Log(None));
                }
                Step::Restart => push(
                    step,
                    Request::Restart {
                        pd: name(&c.restart).unwrap(),
                        if_generation: Some(0),
                    },
                    Reply::Done,
                ),
            }
        }
        out.push_str(DONE);
        out.push('\n');
        out
    }

    const GOLDEN_CONSOLE: &str = "control: generation 0: serving the host through the serial driver\n\
        monitor: restarted hello_logger (requested by control) generation 1 in 40 us (in place)\n";

    fn gens(c: &Ctl, pairs: &[(&str, u32)]) -> Vec<u32> {
        c.pds
            .iter()
            .map(|p| pairs.iter().find(|(n, _)| n == p).map_or(0, |x| x.1))
            .collect()
    }

    #[test]
    fn the_driver_restarted_on_control_s_report_is_the_recovery() {
        let c = ctl();
        let control = c.pds.iter().position(|p| p == &c.control).unwrap();
        let console = format!(
            "monitor: restarted serial_driver (cause: corruption reported by pd {control}) generation 1 in 8 us (standby)\n\
             monitor: restarted serial_driver (cause: hang (no heartbeat in 250 ms)) generation 2 in 8 us (standby)\n"
        );
        let m = reported_by(&console, Some(control));
        assert_eq!(m.get("serial_driver"), Some(&1));
        assert!(reported_by(&console, None).is_empty());
    }

    #[test]
    fn transcript_lines_round_trip() {
        let x = Exchange {
            step: 3,
            request: Request::Restart {
                pd: name("hello_logger").unwrap(),
                if_generation: Some(0),
            },
            attempts: 2,
            reply: Ok(Reply::Done),
        };
        assert_eq!(Exchange::parse(&x.line()), Some(x.clone()));
        let lost = Exchange {
            reply: Err("no answer after 12 attempts in 60 s".into()),
            ..x
        };
        assert_eq!(Exchange::parse(&lost.line()), Some(lost));
    }

    #[test]
    fn a_clean_series_passes() {
        let c = ctl();
        let log = [entry(0, "hello_logger", 1, "requested by control")];
        let host = transcript(&c, &gens(&c, &[("hello_logger", 1)]), &log);
        assert_eq!(judge(&c, GOLDEN_CONSOLE, &host), Findings::default());
    }

    #[test]
    fn control_restarted_by_the_monitor_passes() {
        let c = ctl();
        let console = format!(
            "{GOLDEN_CONSOLE}monitor: restarted control (cause: hang (no heartbeat in 250 ms)) generation 1 in 50 us (in place)\n"
        );
        let log = [
            entry(0, "hello_logger", 1, "requested by control"),
            entry(1, "control", 1, "hang (no heartbeat in 250 ms)"),
        ];
        let host = transcript(&c, &gens(&c, &[("hello_logger", 1), ("control", 1)]), &log);
        assert_eq!(judge(&c, &console, &host), Findings::default());
    }

    #[test]
    fn unanswered_refused_and_unfinished_are_missed_service() {
        let c = ctl();
        let log = [entry(0, "hello_logger", 1, "requested by control")];
        let host = transcript(&c, &gens(&c, &[("hello_logger", 1)]), &log);
        // A request with no answer after its retries, and the series cut there.
        let cut: String = host
            .lines()
            .take(9)
            .map(|l| format!("{l}\n"))
            .chain([format!(
                "{ASK}2 12 {{\"Status\":{{\"index\":2}}}}{NO_ANSWER}no answer after 12 attempts\n"
            )])
            .collect();
        let f = judge(&c, GOLDEN_CONSOLE, &cut);
        assert!(f.wrong.is_empty(), "{f:?}");
        assert!(f.missed.iter().any(|m| m.contains("unanswered")), "{f:?}");
        assert!(
            f.missed.iter().any(|m| m.contains("did not finish")),
            "{f:?}"
        );
        // An error reply to a request the system should do.
        let refused = host.replacen("=> \"Done\"", "=> {\"Error\":\"Unavailable\"}", 1);
        let f = judge(&c, "", &refused);
        assert!(f.missed.iter().any(|m| m.contains("refused")), "{f:?}");
        // Control never up.
        let f = judge(&c, "", &format!("{NEVER_UP}\n"));
        assert_eq!(f.missed.len(), 1);
    }

    #[test]
    fn a_restart_done_twice_or_of_another_pd_is_missed_service() {
        let c = ctl();
        let console = format!(
            "{GOLDEN_CONSOLE}monitor: restarted hello_logger (requested by control) generation 2 in 40 us (in place)\n"
        );
        let log = [
            entry(0, "hello_logger", 1, "requested by control"),
            entry(1, "hello_logger", 2, "requested by control"),
        ];
        let host = transcript(&c, &gens(&c, &[("hello_logger", 2)]), &log);
        let f = judge(&c, &console, &host);
        assert!(f.wrong.is_empty(), "{f:?}");
        assert!(
            f.missed
                .iter()
                .any(|m| m.contains("2 times for one request")),
            "{f:?}"
        );
        // A corrupted request restarted the serial driver instead.
        let console = format!(
            "{GOLDEN_CONSOLE}monitor: restarted serial_driver (requested by control) generation 1 in 40 us (in place)\n"
        );
        let log = [
            entry(0, "hello_logger", 1, "requested by control"),
            entry(1, "serial_driver", 1, "requested by control"),
        ];
        let host = transcript(
            &c,
            &gens(&c, &[("hello_logger", 1), ("serial_driver", 1)]),
            &log,
        );
        let f = judge(&c, &console, &host);
        assert!(
            f.missed
                .iter()
                .any(|m| m.starts_with("serial_driver restarted")),
            "{f:?}"
        );
    }

    #[test]
    fn wrong_content_with_a_good_crc_is_wrong() {
        let c = ctl();
        let log = [entry(0, "hello_logger", 1, "requested by control")];
        let good = transcript(&c, &gens(&c, &[("hello_logger", 1)]), &log);
        // A row with another PD's name, a memory size that changed between reads, a
        // generation nobody made, a log entry renumbered: each is wrong content.
        for (from, to) in [
            ("\"name\":\"hello_server\"", "\"name\":\"hello_sErver\""),
            ("\"memory_bytes\":8192", "\"memory_bytes\":8193"),
            (
                "\"generation\":0,\"restarts\":0,\"restarts_in_window\":0,\"restart_limit\":0,\"last_cause\":null,\"last_recovery_us\":null,\"heartbeat_ms\":null,\"heartbeat_age_ms\":null,\"memory_bytes\":4096,",
                "\"generation\":3,\"restarts\":3,\"restarts_in_window\":0,\"restart_limit\":0,\"last_cause\":null,\"last_recovery_us\":null,\"heartbeat_ms\":null,\"heartbeat_age_ms\":null,\"memory_bytes\":4096,",
            ),
            ("{\"seq\":0,", "{\"seq\":1,"),
        ] {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{from}");
            let f = judge(&c, GOLDEN_CONSOLE, &bad);
            assert!(!f.wrong.is_empty(), "{from}: {f:?}");
        }
        // Done, but nothing restarted.
        let f = judge(
            &c,
            "control: generation 0: serving the host through the serial driver\n",
            &transcript(&c, &gens(&c, &[]), &[]),
        );
        assert!(
            f.wrong.iter().any(|w| w.contains("never restarted it")),
            "{f:?}"
        );
    }
}
