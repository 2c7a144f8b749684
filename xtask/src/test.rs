//! `cargo xtask test`: host unit tests of every crate, then the QEMU integration tests
//! against freshly built images. Ends with `N passed, N failed`.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

use axolotl_kernel_config::{BOARDS, Board};

use crate::images::{self, Variant};
use crate::setup;

/// Self-check images the integration tests boot (root-task cargo features).
const SELFTESTS: [&str; 3] = ["fault", "ticks", "ipc"];
/// Systems the integration tests boot: examples, and test systems of failing PDs.
const SYSTEMS: &[&str] = &[
    "systems/hello.system",
    "systems/resilient-echo.system",
    "tests/systems/restart.system",
    "tests/systems/monitor-crash.system",
    "tests/systems/monitor-hang.system",
    "tests/systems/standby.system",
    "tests/systems/call-abort.system",
    "tests/systems/resilient-echo-crash.system",
    "tests/systems/resilient-echo-hang.system",
    "tests/systems/backoff.system",
    "tests/systems/lying-reporter.system",
    "tests/systems/unrestartable-peer.system",
    "tests/systems/resilient-echo-scribble.system",
    "tests/systems/resilient-echo-capdelete.system",
    "tests/systems/resilient-echo-client-crash.system",
    "tests/systems/resilient-echo-liar.system",
    "tests/systems/vm-exits.system",
    "tests/systems/many-restartable.system",
    "tests/systems/cap-grant.system",
    "tests/systems/device-order.system",
    "tests/systems/ram-edge.system",
    "tests/systems/prefill.system",
    "tests/systems/linux-vm-gicv3.system",
    "tests/systems/linux-vm-gicv2.system",
    "tests/systems/linux-smp-gicv3.system",
    "tests/systems/linux-smp-gicv2.system",
    "tests/systems/linux-vm-console-crash-gicv3.system",
    "tests/systems/vmm-restart-gicv3.system",
    "tests/systems/vmm-restart-gicv2.system",
    "tests/systems/vmm-restart-smp-gicv3.system",
    "tests/systems/net-echo.system",
    "tests/systems/net-echo-restart.system",
    "tests/systems/blk.system",
    "tests/systems/blk-crash.system",
];

/// Systems written for one GIC (`*-gicv2.system`: a GICv2 guest needs the board's GICV frame)
/// are built for boards with that GIC alone.
fn builds_for(system: &str, board: &Board) -> bool {
    let only = |n: u8| system.ends_with(&format!("-gicv{n}.system"));
    !only(5 - board.gic.version().number())
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    suites_failed: Vec<String>,
}

/// Invocations of the kernel suite's randomized stress with `--stress-long` (the short form,
/// in every run, is the suite's default: tests/kernel-suite/src/cases/stress.rs).
pub const STRESS_LONG_ITERATIONS: u64 = 10_000_000;
/// Invocations of the stress in the kernel suite built with `user-error`.
const USER_ERROR_STRESS_ITERATIONS: u64 = 500;

pub fn run(filter: Option<&str>, stress_long: bool) -> Result<ExitCode, String> {
    setup::ensure()?;
    let mut t = Tally::default();

    let mut host = vec!["test", "--workspace", "--exclude", "axolotl-tests"];
    if let Some(f) = filter {
        host.push(f);
    }
    cargo_test(&mut t, "host unit tests", &host, &[]);
    // Model checking of the shared rings' memory ordering (lib/ring/tests/loom.rs).
    let mut loom = vec![
        "test",
        "-p",
        "axolotl-ring",
        "--features",
        "loom",
        "--release",
        "--test",
        "loom",
    ];
    if let Some(f) = filter {
        loom.push(f);
    }
    cargo_test(&mut t, "loom model checks", &loom, &[]);

    eprintln!("xtask: building test images");
    for board in BOARDS {
        images::build(&Variant::new(*board, None))?;
        for s in SELFTESTS {
            images::build(&Variant::new(*board, Some(s)))?;
        }
        let mut suite = Variant::kernel_suite(*board);
        if stress_long {
            suite.stress_iterations = Some(STRESS_LONG_ITERATIONS);
        }
        images::build(&suite)?;
        if board.gic.version().number() == 3 {
            // The suite once more with a kernel that says why it refuses each invocation
            // (`tests/tests/kernel_suite.rs`); a short stress, as every refusal is a line.
            let mut v = Variant::kernel_suite(*board);
            v.kernel_features = &["user-error"];
            v.stress_iterations = Some(USER_ERROR_STRESS_ITERATIONS);
            images::build(&v)?;
        }
        for s in SYSTEMS.iter().filter(|s| builds_for(s, board)) {
            let sdf = images::workspace_root().join(s);
            let mut v = Variant::new(*board, None);
            v.system = Some(crate::system::pack(&sdf, board)?);
            images::build(&v)?;
        }
    }
    let images = images::images_dir().display().to_string();
    let mut integ = vec!["test", "-p", "axolotl-tests"];
    if let Some(f) = filter {
        integ.push(f);
    }
    let mut env = vec![("AXOLOTL_IMAGES", images)];
    if stress_long {
        // The kernel suite's tests wait that much longer for its summary.
        env.push(("AXOLOTL_STRESS_LONG", "1".to_string()));
    }
    cargo_test(&mut t, "QEMU integration tests", &integ, &env);
    if filter.is_none_or(|f| SHORT_CAMPAIGN.contains(f)) {
        short_campaign(&mut t);
    }

    for s in &t.suites_failed {
        eprintln!("xtask: FAILED: {s}");
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    Ok(if t.failed == 0 && t.suites_failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

const SHORT_CAMPAIGN: &str = "campaign_short";

/// Issue #21: 20 injections into resilient-echo's serial driver (`cargo xtask campaign`),
/// checked as a test: every injection carried out and classified, its CSV row read back,
/// no system failure.
fn short_campaign(t: &mut Tally) {
    let dir = images::target_dir().join("campaign").join("short");
    let _ = std::fs::remove_dir_all(&dir);
    let args = crate::campaign::Args {
        system: "systems/resilient-echo.system".into(),
        target: "serial_driver".into(),
        faults: 20,
        kinds: Vec::new(),
        seed: 21,
        jobs: 2,
        resume: None,
        out: Some(dir.clone()),
        anchor: "serial_core6server+4poll".into(),
        max_steps: 1000,
        gic: 3,
    };
    let check = || -> Result<String, String> {
        let s = crate::campaign::run(args)?;
        let csv = std::fs::read_to_string(dir.join("injections.csv")).map_err(|e| e.to_string())?;
        let rows = crate::campaign::report::read_csv(&csv)?;
        if s.errors != 0 || rows.len() != 20 || s.records.len() != 20 {
            return Err(format!(
                "{} of 20 injections recorded ({} not carried out)",
                rows.len(),
                s.errors
            ));
        }
        if let Some(r) = rows
            .iter()
            .find(|r| r.outcome == crate::campaign::classify::Outcome::SystemFailure)
        {
            return Err(format!("a system failure: {}", r.to_csv()));
        }
        Ok(s.report)
    };
    match check() {
        Ok(report) => {
            println!("{report}");
            println!("test {SHORT_CAMPAIGN} ... ok");
            t.passed += 1;
        }
        Err(e) => {
            println!("test {SHORT_CAMPAIGN} ... FAILED: {e}");
            t.failed += 1;
        }
    }
}

/// Runs `cargo <args>`, echoing its output and adding up its `test result:` lines.
fn cargo_test(t: &mut Tally, what: &str, args: &[&str], env: &[(&str, String)]) {
    eprintln!("xtask: {what}: cargo {}", args.join(" "));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(images::workspace_root())
        .args(args)
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            t.suites_failed
                .push(format!("{what}: cannot run cargo: {e}"));
            return;
        }
    };
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        println!("{line}");
        if let Some((p, f)) = parse_result(&line) {
            t.passed += p;
            t.failed += f;
        }
    }
    match child.wait() {
        Ok(s) if s.success() => {}
        Ok(s) => t
            .suites_failed
            .push(format!("{what}: cargo exited with {s}")),
        Err(e) => t.suites_failed.push(format!("{what}: {e}")),
    }
}

/// `test result: ok. 12 passed; 0 failed; ...` → (12, 0).
fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |key: &str| -> Option<u64> {
        rest.split(';').find_map(|part| {
            let mut words = part.split_whitespace().rev();
            (words.next()? == key).then(|| words.next()?.parse().ok())?
        })
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    use super::parse_result;

    #[test]
    fn reads_cargo_test_summaries() {
        assert_eq!(
            parse_result(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            parse_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(parse_result("running 3 tests"), None);
    }
}
