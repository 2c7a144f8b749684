//! In-system campaigns (`cargo xtask campaign --in-system`, docs/resilience.md): many
//! injections per boot, made by the system's own control plane (control-pd's `inject` grant,
//! `docs/control.md`) while the gateway's workload runs, for components whose workload needs
//! a Linux guest: a guest boot per injection (the gdb campaign's way) is a minute or more.
//!
//! One worker per `--jobs`, each with its own QEMU: boot the system, check the workload once
//! (a system that fails it unharmed is an error, not a verdict), then injection after
//! injection: wait a planned delay under the background HTTP load, ask control to inject,
//! watch the monitor's lines for the settle time, run the workload's checks, classify. A
//! verdict other than "not manifested" or "recovered", and every `--per-boot` injections,
//! ends the boot: the next injection gets a fresh system (bounding what an undetected fault
//! left behind; see docs/resilience.md, "In-system campaigns", for what this mode cannot see).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use axolotl_control_proto::client::Client;
use axolotl_control_proto::{BitTarget, FaultKind, Injected, Reply, Request};
use axolotl_guest_artifacts::{disk, io};
use axolotl_qemu::{Boot, Machine, Net};

use super::classify::Outcome;
use super::inject::{Kind, Plan, Rng};

/// The system an in-system campaign boots when `--system` is left at its default.
pub const DEFAULT_SYSTEM: &str = "tests/systems/campaign-gateway.system";

/// The kinds control can inject: a fail-stop (`stop`: control's `crash`, a real fault), a
/// hang (control's `hang`: the PD suspended, for the watchdog), one bit of a saved register
/// (`reg` x0..x30, `sp`, `pc`, `pstate` one of N, Z, C, V), an 8-byte word of the PD's own
/// data, bss or stack overwritten (`data`: control's `wild-write`), a ring index scribbled
/// (`ring`), one bit of its code (`code`: control's `code-flip`, found by the monitor's code
/// scrubbing). `stack` (one bit of the live stack) needs the gdb campaign.
pub const KINDS: [Kind; 9] = [
    Kind::Reg,
    Kind::Sp,
    Kind::Pc,
    Kind::Pstate,
    Kind::Data,
    Kind::Code,
    Kind::Ring,
    Kind::Hang,
    Kind::Stop,
];

/// The planned delay before an injection is uniform below this (ms): the fault lands
/// somewhere in the background load's traffic, not always just after a check.
const MAX_DELAY_MS: u64 = 1000;

/// One injection's plan, from the seed and its id alone. `hit` is unused (0); `steps` holds
/// the delay in ms; `loc` the register (control's numbering: 0 pc, 1 sp, 2 spsr, 3.. x0..).
pub fn plan(seed: u64, id: u64, kinds: &[Kind]) -> Plan {
    let mut r = Rng::new(seed ^ id.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x15_5e_5e);
    let kind = kinds[r.below(kinds.len() as u64) as usize];
    let steps = r.below(MAX_DELAY_MS);
    let (loc, bit) = match kind {
        Kind::Reg => (3 + r.below(31), r.below(64)),
        Kind::Sp => (1, r.below(64)),
        Kind::Pc => (0, r.below(64)),
        Kind::Pstate => (2, 28 + r.below(4)),
        _ => (0, 0),
    };
    Plan {
        id,
        kind,
        hit: 0,
        steps,
        loc,
        bit: bit as u8,
    }
}

/// The request control is asked for `p`, into `pd`.
pub fn request(pd: &str, p: &Plan) -> Result<Request, String> {
    let name = axolotl_control_proto::name(pd).ok_or_else(|| format!("{pd}: not a PD name"))?;
    let (kind, at) = match p.kind {
        Kind::Stop => (FaultKind::Crash, None),
        Kind::Hang => (FaultKind::Hang, None),
        Kind::Data => (FaultKind::WildWrite, None),
        Kind::Code => (FaultKind::CodeFlip, None),
        Kind::Ring => (FaultKind::RingCorruption, None),
        Kind::Reg | Kind::Sp | Kind::Pc | Kind::Pstate => (
            FaultKind::BitFlip,
            Some(BitTarget {
                register: p.loc as u8,
                bit: p.bit,
            }),
        ),
        k => {
            return Err(format!(
                "{k} cannot be injected in-system (the gdb campaign's)"
            ));
        }
    };
    Ok(Request::Inject { pd: name, kind, at })
}

/// What the host saw between an injection and the end of its checks.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    /// Kernel panic, QEMU gone, the control plane no longer answering.
    pub system: Option<String>,
    /// The monitor's lines after the injection (restarts, holds).
    pub monitor: Vec<String>,
    /// Wrong data reached the host or the guest's own check (a body, a disk check).
    pub wrong_data: Vec<String>,
    /// A request failed or a check got no answer.
    pub failed: Vec<String>,
}

/// The seed's outcome classes over what was observed. Wrong data is SDC whether detected or
/// not; a PD the monitor holds is service lost (recovery failed) even when the workload does
/// not use that PD.
pub fn classify(o: &Observed) -> (Outcome, String) {
    let detected = !o.monitor.is_empty();
    let held: Vec<&String> = o
        .monitor
        .iter()
        .filter(|l| l.contains("monitor: holding ") || l.contains("recovery failed"))
        .collect();
    let first = |v: &[String]| v.first().cloned().unwrap_or_default();
    if let Some(s) = &o.system {
        return (Outcome::SystemFailure, s.clone());
    }
    if !o.wrong_data.is_empty() {
        return (Outcome::Sdc, first(&o.wrong_data));
    }
    if !o.failed.is_empty() {
        let why = first(&o.failed);
        return if detected {
            (Outcome::RecoveryFailed, format!("{why}; {}", o.monitor[0]))
        } else {
            (Outcome::Undetected, why)
        };
    }
    if let Some(h) = held.first() {
        return (Outcome::RecoveryFailed, (*h).clone());
    }
    if detected {
        (Outcome::Recovered, o.monitor[0].clone())
    } else {
        (Outcome::NotManifested, String::new())
    }
}

/// The monitor's lines that say it detected something.
fn monitor_line(l: &str) -> bool {
    [
        "monitor: restarted ",
        "monitor: restarting ",
        "monitor: holding ",
        "recovery failed",
    ]
    .iter()
    .any(|n| l.contains(n))
}

/// Lines that end the system.
const SYSTEM_FAILURE: [&str; 2] = ["KERNEL PANIC", "root-task: monitor lost"];

/// `GET path` over HTTP/1.0; the body if the status is 200 and the length matches.
/// The body of a whole `200` answer (`axolotl_qemu::http::http_get`, the tests' client).
fn http_get(port: u16, path: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    match axolotl_qemu::http::http_get(port, path, timeout)? {
        (200, body) => Ok(body),
        (status, _) => Err(format!("GET {path}: status {status}")),
    }
}

/// One GET of the background load or the checks, compared with the disk's file.
#[derive(Debug)]
struct Fetch {
    end: Instant,
    /// `Err(true, why)`: wrong data; `Err(false, why)`: no (whole) answer.
    result: Result<(), (bool, String)>,
}

fn fetch(port: u16, path: &str, name: &str, timeout: Duration) -> Fetch {
    let want = disk::web_file(name).unwrap_or_default();
    let result = match http_get(port, path, timeout) {
        Ok(body) if body == want => Ok(()),
        Ok(body) => Err((
            true,
            format!(
                "GET {path}: {} bytes differ from the disk's {} ({} bytes)",
                body.len(),
                name,
                want.len()
            ),
        )),
        Err(e) => Err((false, e)),
    };
    Fetch {
        end: Instant::now(),
        result,
    }
}

/// Requests a guest may take this long to answer while a driver or its VMM restarts under
/// it on a loaded machine (TCP resends a frame a restart dropped).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The background load: GETs of `/` and `small.bin`, one after the other, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<Fetch>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let (s, d) = (stop.clone(), done.clone());
        let thread = thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let (path, name) = if i.is_multiple_of(2) {
                    ("/", "index.html")
                } else {
                    ("/small.bin", "small.bin")
                };
                d.lock()
                    .unwrap()
                    .push(fetch(port, path, name, REQUEST_TIMEOUT));
                i += 1;
                thread::sleep(Duration::from_millis(50));
            }
        });
        Load {
            stop,
            done,
            thread: Some(thread),
        }
    }

    /// The fetches that ended at or after `since`, taken out.
    fn take_since(&self, since: Instant) -> Vec<Fetch> {
        let mut d = self.done.lock().unwrap();
        let all = std::mem::take(&mut *d);
        all.into_iter().filter(|f| f.end >= since).collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A booted campaign system: QEMU, its control client, the load.
struct System {
    boot: Boot,
    client: Client,
    load: Load,
    port: u16,
    _scratch: Scratch,
    injections: u64,
    /// How many boots this worker made (the CSV's `hit` column for its rows).
    number: u64,
}

/// A scratch directory removed on drop (the disk image, the control socket).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long the Linux guest may take to boot to its HTTP server on a loaded machine.
const GUEST_BOOT: Duration = Duration::from_secs(600);

impl System {
    fn boot(
        image: &Path,
        board: axolotl_kernel_config::Board,
        tag: &str,
    ) -> Result<System, String> {
        let dir =
            std::env::temp_dir().join(format!("axolotl-insystem-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let scratch = Scratch(dir.clone());
        let img = dir.join("data.img");
        disk::make_data_disk(&img).map_err(|e| format!("data disk: {e}"))?;
        let port = axolotl_qemu::http::free_port().map_err(|e| format!("no free port: {e}"))?;
        let sock = dir.join("control.sock");
        let mut m = Machine::new(board);
        m.disk = Some(img);
        m.net = Some(Net {
            tcp_forwards: vec![(port, 80)],
            ..Net::default()
        });
        m.control_console(&sock);
        let mut boot = Boot::start(&m, image).map_err(|f| f.to_string())?;
        boot.expect_all(
            &["control: generation 0: serving the host", io::HTTPD_MARKER],
            GUEST_BOOT,
        )
        .map_err(|f| format!("the system did not come up: {f}"))?;
        let client = Client::connect(&sock, Duration::from_secs(120))
            .map_err(|e| format!("control: {e:?}"))?;
        let mut s = System {
            boot,
            client,
            load: Load::start(port),
            port,
            _scratch: scratch,
            injections: 0,
            number: 0,
        };
        let mut o = Observed::default();
        let since = Instant::now();
        let mut w = Watch::new(0, since, "");
        s.checks(1_000_000, since, &mut o, &mut w);
        if o != Observed::default() {
            return Err(format!(
                "the system fails its checks before any injection: {o:?}"
            ));
        }
        Ok(s)
    }

    /// The console's lines from byte `from` on, and where it ends now.
    fn lines_since(&self, from: usize) -> (Vec<String>, usize) {
        let c = self.boot.console();
        let rest = c.get(from..).unwrap_or_default();
        (rest.lines().map(str::to_string).collect(), c.len())
    }

    /// The workload's checks, into `o`: three GETs compared with the disk, the guest's own
    /// disk check (a seeded MiB written to its second partition and read back, typed into
    /// its shell on UART1: the console path, the blk path and the guest all alive), and
    /// whatever the background load saw since `since`.
    fn checks(&mut self, seed: u64, since: Instant, o: &mut Observed, w: &mut Watch) {
        for (path, name) in [
            ("/", "index.html"),
            ("/small.bin", "small.bin"),
            ("/1m.bin", "1m.bin"),
        ] {
            if let Err((wrong, why)) = fetch(self.port, path, name, REQUEST_TIMEOUT).result {
                if wrong {
                    &mut o.wrong_data
                } else {
                    &mut o.failed
                }
                .push(why);
            }
        }
        let mark = self.boot.console().len();
        let line = format!("gateway-guest diskcheck {seed} 1\n");
        if let Err(f) = self.boot.send_uart1(line.as_bytes()) {
            o.system = Some(format!("typing into the guest's console: {}", f.what));
            return;
        }
        let ok = format!("{} seed={seed} ", io::DISKCHECK_OK);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (lines, _) = self.lines_since(mark);
            if lines.iter().any(|l| l.contains(&ok)) {
                break;
            }
            if let Some(l) = lines.iter().find(|l| l.contains(io::FAILED_MARKER)) {
                if l.contains("expected=") {
                    o.wrong_data.push(l.clone());
                } else {
                    o.failed.push(l.clone());
                }
                break;
            }
            if Instant::now() >= deadline {
                o.failed.push(format!(
                    "the guest's disk check (seed {seed}) gave no verdict in 120 s"
                ));
                break;
            }
            w.poll(&self.boot);
            thread::sleep(Duration::from_millis(100));
        }
        for f in self.load.take_since(since) {
            if let Err((wrong, why)) = f.result {
                if wrong {
                    &mut o.wrong_data
                } else {
                    &mut o.failed
                }
                .push(format!("load: {why}"));
            }
        }
    }
}

/// When the monitor first acted after an injection, and when the target said it serves
/// again, as the host saw them (polled while it waits and while the checks run: a fault
/// the target only trips over when the workload touches it is detected then).
struct Watch {
    mark: usize,
    at: Instant,
    gen_prefix: String,
    detect_ms: Option<u64>,
    recover_ms: Option<u64>,
}

impl Watch {
    fn new(mark: usize, at: Instant, pd: &str) -> Watch {
        Watch {
            mark,
            at,
            gen_prefix: format!("{pd}: generation "),
            detect_ms: None,
            recover_ms: None,
        }
    }

    fn poll(&mut self, boot: &Boot) {
        if self.recover_ms.is_some() {
            return;
        }
        let c = boot.console();
        let lines = c.get(self.mark..).unwrap_or_default().lines();
        let now = self.at.elapsed().as_millis() as u64;
        let mut detected = self.detect_ms.is_some();
        for l in lines {
            if !detected && monitor_line(l) {
                detected = true;
                self.detect_ms = Some(now);
            }
            if detected && l.starts_with(&self.gen_prefix) {
                self.recover_ms = Some(now);
                return;
            }
        }
    }
}

/// What one injection gave: its verdict and what the CSV keeps.
pub struct Done {
    pub outcome: Outcome,
    pub why: String,
    pub what: String,
    pub detect_ms: Option<u64>,
    pub recover_ms: Option<u64>,
    pub wall: Duration,
    /// The console from the injection on (kept for a manifested one).
    pub log: String,
    pub boot: u64,
}

/// Runs `p` into `pd` on `sys` (booting one first if there is none); `settle` is how long
/// the monitor may take to detect (its heartbeats: two periods and the last-chance ping).
fn inject_one(sys: &mut System, pd: &str, p: &Plan, settle: Duration) -> Result<Done, String> {
    let start = Instant::now();
    let req = request(pd, p)?;
    thread::sleep(Duration::from_millis(p.steps));
    let mark = sys.boot.console().len();
    // A PD in its restart backoff, or held, is not running: control answers BadState. The
    // last injection's restart may still be under way: wait for it, a bounded time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (reply, at) = loop {
        let at = Instant::now();
        match sys.client.ask(&req) {
            Ok(Reply::Error(e)) if Instant::now() < deadline => {
                let _ = e;
                thread::sleep(Duration::from_millis(200));
            }
            Ok(r) => break (r, at),
            Err(e) => {
                return Err(format!("control did not answer the injection: {e:?}"));
            }
        }
    };
    let what = match reply {
        Reply::Injected(Injected::Done) => format!("{}", p.kind),
        Reply::Injected(Injected::BitFlip(t)) => {
            format!("{} bit {}", t.register_name(), t.bit)
        }
        Reply::Injected(
            Injected::WildWrite { vaddr, old, new } | Injected::CodeFlip { vaddr, old, new },
        ) => {
            format!("{vaddr:#x}: {old:#x} -> {new:#x}")
        }
        Reply::Injected(Injected::RingCorruption {
            region,
            offset,
            word,
            old,
            new,
        }) => format!(
            "{}+{offset:#x} {word:?}: {old:#x} -> {new:#x}",
            region.as_str()
        ),
        other => return Err(format!("control refused the injection: {other:?}")),
    };
    sys.injections += 1;
    // Detection: the monitor's lines within the settle time (or until a restart is seen and
    // the target is back).
    let mut o = Observed::default();
    let mut w = Watch::new(mark, at, pd);
    let settle_end = at + settle;
    loop {
        w.poll(&sys.boot);
        let (lines, _) = sys.lines_since(mark);
        if let Some(l) = lines
            .iter()
            .find(|l| SYSTEM_FAILURE.iter().any(|n| l.contains(n)))
        {
            o.system = Some(l.clone());
            break;
        }
        if sys.boot.exited() {
            o.system = Some("QEMU exited".into());
            break;
        }
        if Instant::now() >= settle_end && (w.detect_ms.is_none() || w.recover_ms.is_some()) {
            break;
        }
        if Instant::now() >= settle_end + Duration::from_secs(30) {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    if o.system.is_none() {
        sys.checks(1 + p.id % 100_000, at, &mut o, &mut w);
    }
    if o.system.is_none() && !sys.boot.exited() {
        // The control plane still answers (status), or the system is lost to the operator.
        if let Err(e) = sys.client.status() {
            o.system = Some(format!("control no longer answers: {e:?}"));
        }
    }
    let (lines, _) = sys.lines_since(mark);
    o.monitor = lines.iter().filter(|l| monitor_line(l)).cloned().collect();
    if let Some(l) = lines
        .iter()
        .find(|l| SYSTEM_FAILURE.iter().any(|n| l.contains(n)))
    {
        o.system = Some(l.clone());
    }
    let (outcome, why) = classify(&o);
    Ok(Done {
        outcome,
        why,
        what,
        detect_ms: w.detect_ms,
        recover_ms: w.recover_ms,
        wall: start.elapsed(),
        log: lines.join("\n"),
        boot: sys.number,
    })
}

/// A worker's state across its injections: the system it has booted, if any.
pub struct Worker {
    image: PathBuf,
    board: axolotl_kernel_config::Board,
    tag: String,
    sys: Option<System>,
    boots: u64,
    per_boot: u64,
}

impl Worker {
    pub fn new(
        image: &Path,
        board: axolotl_kernel_config::Board,
        tag: &str,
        per_boot: u64,
    ) -> Worker {
        Worker {
            image: image.to_path_buf(),
            board,
            tag: tag.to_string(),
            sys: None,
            boots: 0,
            per_boot: per_boot.max(1),
        }
    }

    /// One injection: boots a system first when there is none.
    pub fn run(&mut self, pd: &str, p: &Plan, settle: Duration) -> Result<Done, String> {
        if self.sys.is_none() {
            let mut s = System::boot(&self.image, self.board, &self.tag)?;
            self.boots += 1;
            s.number = self.boots;
            self.sys = Some(s);
        }
        let sys = self.sys.as_mut().unwrap();
        let r = inject_one(sys, pd, p, settle);
        let keep = match &r {
            Ok(d) => {
                matches!(d.outcome, Outcome::NotManifested | Outcome::Recovered)
                    && sys.injections < self.per_boot
            }
            Err(_) => false,
        };
        if !keep {
            self.sys = None;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observed {
        Observed::default()
    }

    #[test]
    fn every_class_from_what_was_observed() {
        assert_eq!(classify(&obs()).0, Outcome::NotManifested);
        let restarted = "monitor: restarted vmm (cause: vm-fault write at 0x10 ip 0x2000) generation 1 in 9 us (standby)";
        let mut o = obs();
        o.monitor.push(restarted.into());
        assert_eq!(classify(&o).0, Outcome::Recovered);
        o.failed.push("GET /: connect: refused".into());
        assert_eq!(classify(&o).0, Outcome::RecoveryFailed);
        let mut u = obs();
        u.failed
            .push("the guest's disk check gave no verdict".into());
        assert_eq!(classify(&u).0, Outcome::Undetected);
        let mut h = obs();
        h.monitor.push(restarted.into());
        h.monitor
            .push("monitor: holding echo_b stopped: restart limit".into());
        assert_eq!(
            classify(&h).0,
            Outcome::RecoveryFailed,
            "a held PD is service lost"
        );
        let mut s = o.clone();
        s.wrong_data.push("GET /: 12 bytes differ".into());
        assert_eq!(classify(&s).0, Outcome::Sdc);
        s.system = Some("KERNEL PANIC".into());
        assert_eq!(classify(&s).0, Outcome::SystemFailure);
    }

    #[test]
    fn plans_replay_and_stay_inside_control_s_targets() {
        let kinds = KINDS.to_vec();
        let mut seen = std::collections::BTreeSet::new();
        for id in 0..2000 {
            let p = plan(7, id, &kinds);
            assert_eq!(p, plan(7, id, &kinds), "a plan replays");
            assert!(p.steps < MAX_DELAY_MS);
            let r = request("vmm", &p).unwrap();
            let Request::Inject { kind, at, .. } = r else {
                panic!("{r:?}")
            };
            match p.kind {
                Kind::Reg => assert!((3..=33).contains(&p.loc) && p.bit < 64),
                Kind::Pstate => assert!(p.loc == 2 && (28..=31).contains(&p.bit)),
                Kind::Pc => assert_eq!(p.loc, 0),
                Kind::Sp => assert_eq!(p.loc, 1),
                _ => assert!(at.is_none()),
            }
            if kind == FaultKind::BitFlip {
                let t = at.unwrap();
                assert!(
                    axolotl_control_proto::REGISTERS.len() > t.register as usize,
                    "{t:?}"
                );
            }
            seen.insert(p.kind);
        }
        assert_eq!(seen.len(), KINDS.len(), "every kind is planned");
        assert!(
            request(
                "vmm",
                &Plan {
                    kind: Kind::Stack,
                    ..plan(1, 1, &kinds)
                }
            )
            .is_err(),
            "the live stack is the gdb campaign's"
        );
    }
}
