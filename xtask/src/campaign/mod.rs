//! `cargo xtask campaign`: fault-injection campaigns (issue #21, docs/resilience.md).
//!
//! A golden run first (the workload's verdict without a fault, and how often the target
//! reaches the anchor), then `--faults N` injected runs, each its own QEMU, `--jobs` at once.
//! Every finished injection is a CSV row at once, so an interrupted campaign (Ctrl-C kills
//! the QEMUs with it) keeps what is done and `--resume DIR` goes on from there; the report
//! and plots are written from the whole CSV at the end.

pub mod classify;
pub mod ctl;
pub mod gdb;
pub mod inject;
pub mod insystem;
pub mod report;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axolotl_kernel_config::{GicVersion, board_by_name};

use classify::{Outcome, Workload, classify};
use inject::{Budget, KINDS, Kind, Target};
use report::{HEADER, Record};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The system (SDF) to inject into.
    #[arg(long, default_value = "systems/resilient-echo.system")]
    pub system: PathBuf,
    /// The PD to inject into (`monitor`: the monitor every system gets).
    #[arg(long, default_value = "serial_driver")]
    pub target: String,
    /// How many injections the campaign has in all (a resumed one runs the missing ones).
    #[arg(long, required_unless_present_any = ["report", "ids"])]
    pub faults: Option<u64>,
    /// Only these injection ids, comma-separated (each planned from the seed as in a full
    /// campaign): to replay chosen rows of an earlier campaign's CSV. With `--faults`,
    /// only those of them below it.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<u64>,
    /// Only write the report and plots of the campaign in this directory, from its CSV as
    /// it stands (no QEMU, no re-classification).
    #[arg(long, conflicts_with_all = ["resume", "faults"])]
    pub report: Option<PathBuf>,
    /// Fault kinds, comma-separated (reg, sp, pc, pstate, code, data, stack, ring, hang,
    /// stop); all by default.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// QEMU instances at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Go on with the campaign in this directory (its CSV, golden run and settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Where the CSV, report and plots go (default target/campaign/<system>-<pd>-s<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The target function the injector stops at: `+`-separated substrings of its mangled
    /// symbol name. By default a function of the target's main loop, found in its ELF
    /// (`inject::AUTO_ANCHORS`: the serial server's poll, control's `step`, the monitor's
    /// `rearm`, else the PD's `Handler::notified`).
    #[arg(long)]
    pub anchor: Option<String>,
    /// The workload whose checks give the verdict (echo, blk, net, ctl); by default the
    /// system's (`Workload::of_system`: resilient-echo*, blk* and campaign-blk, net-echo* and
    /// campaign-net, campaign-control).
    #[arg(long)]
    pub workload: Option<String>,
    /// Target instructions single-stepped past the anchor, at most (uniform below this).
    #[arg(long, default_value_t = 1000)]
    pub max_steps: u64,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub gic: u8,
    /// Inject through the system's control plane (control-pd's `inject` grant), many
    /// injections per boot, under the gateway's workload (docs/resilience.md, "In-system
    /// campaigns"); `--system` defaults to tests/systems/campaign-gateway.system.
    #[arg(long)]
    pub in_system: bool,
    /// In-system: injections per boot at most (a manifested failure ends a boot earlier).
    #[arg(long, default_value_t = 25)]
    pub per_boot: u64,
    /// In-system: how long the monitor may take to detect an injection (ms).
    #[arg(long, default_value_t = 6000)]
    pub settle_ms: u64,
}

/// What a campaign left.
pub struct Summary {
    pub dir: PathBuf,
    pub records: Vec<Record>,
    pub errors: u64,
    pub report: String,
}

fn kinds(a: &Args) -> Result<Vec<Kind>, String> {
    if a.kinds.is_empty() {
        return Ok(KINDS.to_vec());
    }
    a.kinds
        .iter()
        .map(|k| Kind::parse(k).ok_or_else(|| format!("no fault kind {k:?}")))
        .collect()
}

/// The settings a resumed campaign must share with the one it continues: the anchor as
/// found, and the workload only when it is not the system's own (so that the directories of
/// campaigns made before `--workload` resume as they were).
fn settings(a: &Args, kinds: &[Kind], anchor: &str, w: &Workload, default: bool) -> String {
    let mut s = format!(
        "system={}\ntarget={}\nseed={}\nkinds={}\nanchor={}\nmax_steps={}\ngic={}\n",
        a.system.display(),
        a.target,
        a.seed,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        anchor,
        a.max_steps,
        a.gic
    );
    if !default {
        s.push_str(&format!("workload={}\n", w.name()));
    }
    s
}

/// The campaign's workload: `--workload`, else the system's.
fn workload(a: &Args, stem: &str) -> Result<(Workload, bool), String> {
    let own = Workload::of_system(stem);
    match &a.workload {
        Some(n) => {
            let w = Workload::named(n)
                .ok_or_else(|| format!("no workload {n:?} (one of {:?})", classify::WORKLOADS))?;
            let default = own.as_ref() == Some(&w);
            Ok((w, default))
        }
        None => own.map(|w| (w, true)).ok_or_else(|| {
            format!(
                "{stem}: no workload known for this system: give --workload (one of {:?})",
                classify::WORKLOADS
            )
        }),
    }
}

pub fn run(mut a: Args) -> Result<Summary, String> {
    if let Some(dir) = &a.report {
        return report_only(dir);
    }
    if a.in_system || a.resume.as_ref().is_some_and(|d| is_in_system(d)) {
        return run_in_system(a);
    }
    apply_resume(&mut a)?;
    let kinds = kinds(&a)?;
    let (sdf, stem) = system_of(&a);
    let dir = campaign_dir(&a, &format!("{stem}-{}-s{}", a.target, a.seed))?;
    let (w, default_workload) = workload(&a, &stem)?;
    let board = qemu_board(a.gic)?;
    let image = build_image(&dir, &sdf, board, Some(&a.target))?;
    let elf = target_elf(&dir, &sdf, &a.target)?;
    let target = Target::load(&sdf, &a.target, &elf, a.anchor.as_deref(), w.ring_layout())?;
    // A target with no shared ring (the monitor maps none) has no `ring` kind.
    let kinds = if target.ring_words.is_empty() && kinds.contains(&Kind::Ring) {
        if !a.kinds.is_empty() {
            return Err(format!("{} maps no ring: no `ring` kind", a.target));
        }
        kinds.into_iter().filter(|k| *k != Kind::Ring).collect()
    } else {
        kinds
    };
    keep_settings(
        &dir,
        &settings(&a, &kinds, &target.anchor_pattern, &w, default_workload),
    )?;
    eprintln!(
        "campaign: {} in {} ({} workload; {}; anchor {} at {:#x}, {} ring index words), into {}",
        a.target,
        stem,
        w.name(),
        target.elf_path.display(),
        target.anchor_name,
        target.anchor,
        target.ring_words.len(),
        dir.display()
    );

    let (golden, hits, golden_wall) = golden(&dir, &image, a.gic, &target, &w)?;
    // A loaded machine runs QEMU slower: generous, from what the golden run took.
    let budget = Budget {
        run: (golden_wall * 3).max(Duration::from_secs(30)),
        settle: Duration::from_millis(1500),
    };

    let mut records = read_records(&dir)?;
    // The verdicts are the current classifier's: a row whose run left its log is classified
    // again (a system failure stays one: whether QEMU exited is not in the log).
    for r in &mut records {
        let log = dir.join("logs").join(format!("{}.txt", r.plan.id));
        if let (Ok(text), false) = (
            std::fs::read_to_string(&log),
            r.outcome == Outcome::SystemFailure,
        ) {
            let (console, wire, host) = classify::split_log(&text);
            let host = classify::HostView {
                wire: wire.to_string(),
                qemu_exited: false,
                host: host.to_string(),
            };
            let v = classify(&w, &a.target, &golden, console, &host);
            r.outcome = v.outcome;
            r.why = v.summary();
            if v.detection.is_none() {
                r.detect_ms = None;
                r.recover_ms = None;
            }
        }
    }
    let ledger = Ledger::open(&dir, records, todo_ids(a.faults, &a.ids))?;
    eprintln!(
        "campaign: {} done before, {} to do, {} at once",
        ledger.done_before,
        ledger.todo.len(),
        a.jobs
    );
    std::thread::scope(|s| {
        for job in 0..a.jobs.max(1) {
            let (ledger, target, w, golden, image, kinds, a) =
                (&ledger, &target, &w, &golden, &image, &kinds, &a);
            s.spawn(move || {
                while let Some(id) = ledger.next_id() {
                    let plan = target.plan(a.seed, id, kinds, hits, a.max_steps);
                    let tag = format!("j{job}");
                    match inject::run(image, a.gic, target, w, Some(&plan), budget, &tag) {
                        Ok(log) => {
                            let v = classify(w, &a.target, golden, &log.console, &log.host);
                            let kept = (v.outcome != Outcome::NotManifested)
                                .then(|| classify::join_log(&log.console, &log.host));
                            // A latency is of a detection the classifier counts as one.
                            let detected = v.detection.is_some();
                            ledger.done(
                                Record {
                                    component: a.target.clone(),
                                    seed: a.seed,
                                    plan,
                                    pc: log.injected_at.unwrap_or(0),
                                    outcome: v.outcome,
                                    detect_ms: log.detect_ms.filter(|_| detected),
                                    recover_ms: log.recover_ms.filter(|_| detected),
                                    wall_ms: log.wall.as_millis() as u64,
                                    what: log.what.clone(),
                                    why: v.summary(),
                                },
                                kept,
                            );
                        }
                        Err(e) => {
                            ledger.not_done(format!(
                                "campaign: injection {id} ({}) not done: {e}",
                                plan.kind
                            ));
                        }
                    }
                }
            });
        }
    });
    ledger.finish()
}

/// A resumed campaign's settings win over the command line's (but for --faults, --jobs):
/// its plans depend on them. Keys a mode does not write are not in its settings.txt.
fn apply_resume(a: &mut Args) -> Result<(), String> {
    let Some(dir) = &a.resume else {
        return Ok(());
    };
    let path = dir.join("settings.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for l in text.lines() {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        match k {
            "system" => a.system = v.into(),
            "target" => a.target = v.into(),
            "seed" => a.seed = v.parse().map_err(|_| "bad seed in settings.txt")?,
            "kinds" => a.kinds = v.split(',').map(str::to_string).collect(),
            "anchor" => a.anchor = Some(v.into()),
            "workload" => a.workload = Some(v.into()),
            "max_steps" => a.max_steps = v.parse().map_err(|_| "bad max_steps")?,
            "gic" => a.gic = v.parse().map_err(|_| "bad gic")?,
            _ => {}
        }
    }
    Ok(())
}

/// The SDF's path in the workspace and its file stem.
fn system_of(a: &Args) -> (PathBuf, String) {
    let sdf = crate::images::workspace_root().join(&a.system);
    let stem = sdf
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    (sdf, stem)
}

/// `--resume`, else `--out`, else target/campaign/NAME; with its `logs/`.
fn campaign_dir(a: &Args, name: &str) -> Result<PathBuf, String> {
    let dir = a
        .resume
        .clone()
        .or(a.out.clone())
        .unwrap_or_else(|| crate::images::target_dir().join("campaign").join(name));
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn qemu_board(gic: u8) -> Result<axolotl_kernel_config::Board, String> {
    let v = if gic == 2 {
        GicVersion::V2
    } else {
        GicVersion::V3
    };
    board_by_name("qemu-virt-aarch64", Some(v)).ok_or_else(|| "no board".to_string())
}

/// Writes `set` as the directory's settings, or checks it is the one there.
fn keep_settings(dir: &Path, set: &str) -> Result<(), String> {
    match std::fs::read_to_string(dir.join("settings.txt")) {
        Ok(old) if old != set => Err(format!(
            "{} holds a campaign with other settings; use --resume or another --out",
            dir.display()
        )),
        Ok(_) => Ok(()),
        Err(_) => std::fs::write(dir.join("settings.txt"), set).map_err(|e| e.to_string()),
    }
}

fn read_records(dir: &Path) -> Result<Vec<Record>, String> {
    report::read_csv(&std::fs::read_to_string(dir.join("injections.csv")).unwrap_or_default())
}

/// The injection ids a campaign wants, in order: `ids` if any were given (deduplicated,
/// those below `faults` if that is given too), else `0..faults`.
fn todo_ids(faults: Option<u64>, ids: &[u64]) -> Vec<u64> {
    if ids.is_empty() {
        return (0..faults.unwrap_or(0)).collect();
    }
    let set: BTreeSet<u64> = ids
        .iter()
        .copied()
        .filter(|&i| faults.is_none_or(|f| i < f))
        .collect();
    set.into_iter().collect()
}

/// A campaign's rows as they come: each finished injection is appended to the CSV at once
/// (an interrupted campaign keeps it), the ids still to do are handed out to the jobs, the
/// progress bar (on stderr, drawn only when it is a terminal: a log gets the closing line
/// alone) and the count of injections not carried out.
struct Ledger {
    dir: PathBuf,
    csv: Mutex<std::fs::File>,
    records: Mutex<Vec<Record>>,
    todo: Vec<u64>,
    next: AtomicU64,
    done_before: usize,
    errors: AtomicU64,
    bar: indicatif::ProgressBar,
}

impl Ledger {
    /// Rewrites the CSV whole from `records` (a torn last line from a killed campaign goes);
    /// what is left of `wanted` (`todo_ids`) is to do.
    fn open(dir: &Path, records: Vec<Record>, wanted: Vec<u64>) -> Result<Ledger, String> {
        let path = dir.join("injections.csv");
        let mut text = format!("{HEADER}\n");
        for r in &records {
            text.push_str(&r.to_csv());
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let done: BTreeSet<u64> = records.iter().map(|r| r.plan.id).collect();
        let todo: Vec<u64> = wanted.into_iter().filter(|i| !done.contains(i)).collect();
        let bar = indicatif::ProgressBar::new(todo.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "campaign: {pos}/{len} [{bar:30}] {elapsed} elapsed, eta {eta} {msg}",
            )
            .map_err(|e| e.to_string())?
            .progress_chars("#>-"),
        );
        let csv = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| e.to_string())?;
        Ok(Ledger {
            dir: dir.to_path_buf(),
            csv: Mutex::new(csv),
            done_before: done.len(),
            records: Mutex::new(records),
            todo,
            next: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bar,
        })
    }

    fn next_id(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        self.todo.get(i as usize).copied()
    }

    /// One injection's row, and its log (kept for a manifested one).
    fn done(&self, rec: Record, log: Option<String>) {
        if let Some(log) = log {
            let _ = std::fs::write(
                self.dir.join("logs").join(format!("{}.txt", rec.plan.id)),
                log,
            );
        }
        let mut f = self.csv.lock().unwrap();
        let _ = writeln!(f, "{}", rec.to_csv());
        let _ = f.flush();
        self.records.lock().unwrap().push(rec);
        self.bar.inc(1);
    }

    fn not_done(&self, msg: String) {
        let n = self.errors.fetch_add(1, Ordering::SeqCst) + 1;
        // A hidden bar (stderr no terminal: a log) prints nothing.
        if self.bar.is_hidden() {
            eprintln!("{msg}");
        } else {
            self.bar.println(msg);
        }
        self.bar.set_message(format!("({n} not carried out)"));
        self.bar.inc(1);
    }

    /// The report and plots over every row.
    fn finish(self) -> Result<Summary, String> {
        self.bar.finish_and_clear();
        let mut records = self.records.into_inner().unwrap();
        records.sort_by_key(|r| r.plan.id);
        let md = write_report(&self.dir, &records)?;
        Ok(Summary {
            dir: self.dir,
            records,
            errors: self.errors.into_inner(),
            report: md,
        })
    }
}

/// `report.md`, `outcomes.svg` and `recovery-cdf.svg` in `dir`, from `records`.
fn write_report(dir: &Path, records: &[Record]) -> Result<String, String> {
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let md = report::markdown(records);
    write("report.md", &md)?;
    write("outcomes.svg", &report::svg_outcomes(records))?;
    write("recovery-cdf.svg", &report::svg_latency_cdf(records))?;
    Ok(md)
}

/// `--report DIR`: the report and plots of a campaign's CSV as it stands.
fn report_only(dir: &Path) -> Result<Summary, String> {
    let csv = dir.join("injections.csv");
    let text = std::fs::read_to_string(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let mut records = report::read_csv(&text)?;
    records.sort_by_key(|r| r.plan.id);
    let md = write_report(dir, &records)?;
    Ok(Summary {
        dir: dir.to_path_buf(),
        records,
        errors: 0,
        report: md,
    })
}

/// The golden run, or the one a resumed campaign already has: its console (with the wire
/// after a marker, as the fixtures keep it), the target's count of anchor stops, its time.
fn golden(
    dir: &Path,
    image: &Path,
    gic: u8,
    target: &Target,
    w: &Workload,
) -> Result<(String, u64, Duration), String> {
    let meta = dir.join("golden.meta");
    if let (Ok(g), Ok(m)) = (
        std::fs::read_to_string(dir.join("golden.txt")),
        std::fs::read_to_string(&meta),
    ) {
        let val = |k: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let (Some(h), Some(ms)) = (val("hits"), val("wall_ms")) {
            return Ok((g, h, Duration::from_millis(ms)));
        }
    }
    // The disk's and the host network's completions come in host time, and so do the lines
    // typed into resilient-echo's UART: every workload reaches the anchor a different
    // number of times each run (the short campaign saw an echo run end before its planned
    // stop). The plans' range is the fewest of a few golden runs (an injected run that
    // ends before its stop is not carried out).
    let reps = 3;
    let budget = Budget {
        run: Duration::from_secs(600),
        settle: Duration::from_millis(1500),
    };
    let mut first = None;
    let mut all_hits = Vec::new();
    let mut wall = Duration::ZERO;
    for r in 0..reps {
        eprintln!("campaign: golden run {}/{reps}", r + 1);
        let log = inject::run(image, gic, target, w, None, budget, "golden")?;
        let text = classify::join_log(&log.console, &log.host);
        let v = classify(w, &target.pd, "", &log.console, &log.host);
        if v.outcome != Outcome::NotManifested || log.hits == 0 {
            return Err(format!(
                "the golden run is not clean ({}: {}; {} anchor stops):\n{text}",
                v.outcome, v.why, log.hits
            ));
        }
        all_hits.push(log.hits);
        wall = wall.max(log.wall);
        first.get_or_insert(text);
    }
    let text = first.unwrap_or_default();
    let hits = all_hits.iter().copied().min().unwrap_or(0);
    std::fs::write(dir.join("golden.txt"), &text).map_err(|e| e.to_string())?;
    std::fs::write(
        &meta,
        format!(
            "hits={hits}\nwall_ms={}\nhits_per_run={}\n",
            wall.as_millis(),
            all_hits
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "campaign: golden run clean: the target stopped {all_hits:?} times at the anchor, {} ms at most",
        wall.as_millis()
    );
    Ok((text, hits, wall))
}

fn is_in_system(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("settings.txt"))
        .is_ok_and(|t| t.lines().any(|l| l == "mode=in-system"))
}

/// `--in-system`: injections through the control plane, many per boot
/// ([`insystem`]); the same CSV, report and plots as the gdb campaign's.
fn run_in_system(mut a: Args) -> Result<Summary, String> {
    if a.resume.is_some() {
        apply_resume(&mut a)?;
    } else if a.system == Path::new("systems/resilient-echo.system") {
        a.system = insystem::DEFAULT_SYSTEM.into();
    }
    let kinds: Vec<Kind> = if a.kinds.is_empty() {
        insystem::KINDS.to_vec()
    } else {
        let k = kinds(&a)?;
        if let Some(bad) = k.iter().find(|k| !insystem::KINDS.contains(k)) {
            return Err(format!(
                "{bad} cannot be injected in-system (one of {})",
                insystem::KINDS.map(|k| k.name()).join(",")
            ));
        }
        k
    };
    let (sdf, stem) = system_of(&a);
    let dir = campaign_dir(&a, &format!("{stem}-{}-insystem-s{}", a.target, a.seed))?;
    let board = qemu_board(a.gic)?;
    let image = build_image(&dir, &sdf, board, None)?;
    keep_settings(
        &dir,
        &format!(
            "mode=in-system\nsystem={}\ntarget={}\nseed={}\nkinds={}\ngic={}\n",
            a.system.display(),
            a.target,
            a.seed,
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
            a.gic
        ),
    )?;
    let ledger = Ledger::open(&dir, read_records(&dir)?, todo_ids(a.faults, &a.ids))?;
    eprintln!(
        "campaign: in-system, {} in {stem} into {}: {} done before, {} to do, {} systems at once",
        a.target,
        dir.display(),
        ledger.done_before,
        ledger.todo.len(),
        a.jobs
    );
    let settle = Duration::from_millis(a.settle_ms);
    std::thread::scope(|s| {
        for job in 0..a.jobs.max(1) {
            let (ledger, kinds, a, image) = (&ledger, &kinds, &a, &image);
            s.spawn(move || {
                let mut w = insystem::Worker::new(image, board, &format!("j{job}"), a.per_boot);
                // A worker whose system will not come up stops after a few tries rather
                // than spin through the plan.
                let mut boot_failures = 0;
                while let Some(id) = ledger.next_id() {
                    let plan = insystem::plan(a.seed, id, kinds);
                    match w.run(&a.target, &plan, settle) {
                        Ok(d) => {
                            boot_failures = 0;
                            let mut plan = plan;
                            plan.hit = d.boot;
                            let kept = (d.outcome != Outcome::NotManifested).then_some(d.log);
                            ledger.done(
                                Record {
                                    component: a.target.clone(),
                                    seed: a.seed,
                                    plan,
                                    pc: 0,
                                    outcome: d.outcome,
                                    detect_ms: d.detect_ms,
                                    recover_ms: d.recover_ms,
                                    wall_ms: d.wall.as_millis() as u64,
                                    what: d.what,
                                    why: d.why,
                                },
                                kept,
                            );
                        }
                        Err(e) => {
                            boot_failures += 1;
                            ledger.not_done(format!("campaign: injection {id} not done: {e}"));
                            if boot_failures >= 3 {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    ledger.finish()
}

/// The campaign's own copy of the system's image in `dir` (built, under the checkout's
/// build lock, unless a resumed campaign has it), with the ELF of `target`, the PD injected
/// into, from the same build: a build running meanwhile (another campaign, `cargo xtask
/// test`) rewrites the shared ones in place, and a resumed campaign must inject into the
/// image its plans were made for, at the addresses of that image's PD.
fn build_image(
    dir: &Path,
    sdf: &Path,
    board: axolotl_kernel_config::Board,
    target: Option<&str>,
) -> Result<PathBuf, String> {
    let image = dir.join("image.elf");
    if !image.is_file() {
        let _held = crate::lock_checkout()?;
        let mut v = crate::images::Variant::new(board, None);
        v.system = Some(crate::system::pack(sdf, &board)?);
        let built = crate::images::build(&v)?;
        if let Some(pd) = target {
            keep_copy(&Target::built_elf(sdf, pd)?, &dir.join(target_elf_name(pd)))?;
        }
        keep_copy(&built, &image)?;
    }
    Ok(image)
}

/// Copies `from` to `to` whole or not at all (a campaign stopped meanwhile leaves no torn
/// copy for its resumption to trust).
fn keep_copy(from: &Path, to: &Path) -> Result<(), String> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).map_err(|e| format!("{}: {e}", from.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| e.to_string())
}

fn target_elf_name(pd: &str) -> String {
    format!("target-{pd}.elf")
}

/// The ELF of the PD injected into, as the campaign's image holds it. A campaign directory
/// made before the copy was kept has only its image: the build's ELF then, which is right
/// only while the build is the one the image came from (said, not hidden).
fn target_elf(dir: &Path, sdf: &Path, pd: &str) -> Result<PathBuf, String> {
    let kept = dir.join(target_elf_name(pd));
    if kept.is_file() {
        return Ok(kept);
    }
    let built = Target::built_elf(sdf, pd)?;
    eprintln!(
        "campaign: {} keeps no copy of {pd}'s ELF (made before copies were kept): using {}, \
         which must be the build the image came from",
        dir.display(),
        built.display()
    );
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::{target_elf, todo_ids};

    /// A resumed campaign injects at the addresses of the PD its image holds, not of
    /// whatever the checkout built since (the build's ELF is not even looked for here).
    #[test]
    fn a_campaign_uses_its_own_copy_of_the_target_elf() {
        let dir = std::env::temp_dir().join(format!("campaign-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("target-net_driver.elf"), b"kept").unwrap();
        let no_sdf = dir.join("no.system");
        assert_eq!(
            target_elf(&dir, &no_sdf, "net_driver").unwrap(),
            dir.join("target-net_driver.elf")
        );
        // Without a copy the build's is looked for, through the system.
        assert!(target_elf(&dir, &no_sdf, "blk_driver").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chosen_ids_replace_the_range() {
        assert_eq!(todo_ids(Some(4), &[]), vec![0, 1, 2, 3]);
        assert_eq!(todo_ids(None, &[]), Vec::<u64>::new());
        assert_eq!(todo_ids(None, &[664, 471, 485, 471]), vec![471, 485, 664]);
        assert_eq!(todo_ids(Some(500), &[664, 471, 485]), vec![471, 485]);
    }
}
