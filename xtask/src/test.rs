//! `cargo xtask test`: host unit tests of every crate, then the QEMU integration tests
//! against freshly built images. Ends with `N passed, N failed`.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

use axolotl_kernel_config::{BOARDS, Board, ODROID_C2, ODROID_C4, RPI4B, RPI4B_2GB, RPI4B_8GB};

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
    "tests/systems/ptimer.system",
    "tests/systems/lying-reporter.system",
    "tests/systems/unrestartable-peer.system",
    "tests/systems/resilient-echo-scribble.system",
    "tests/systems/resilient-echo-silent.system",
    "tests/systems/resilient-echo-capdelete.system",
    "tests/systems/resilient-echo-client-crash.system",
    "tests/systems/resilient-echo-liar.system",
    "tests/systems/resilient-echo-watched.system",
    "tests/systems/console-uart0.system",
    "tests/systems/vm-exits.system",
    "tests/systems/many-restartable.system",
    "tests/systems/cap-grant.system",
    "tests/systems/device-order.system",
    "tests/systems/qemu-devices-gicv2.system",
    "tests/systems/ram-edge-gicv3.system",
    "tests/systems/fixed-ram.system",
    "tests/systems/hello-domains.system",
    "tests/systems/prefill.system",
    "tests/systems/linux-vm-gicv3.system",
    "tests/systems/linux-vm-gicv2.system",
    "tests/systems/linux-smp-gicv3.system",
    "tests/systems/linux-smp-gicv2.system",
    "tests/systems/linux-vm-console-crash-gicv3.system",
    "tests/systems/vmm-restart-gicv3.system",
    "tests/systems/vmm-restart-gicv2.system",
    "tests/systems/vmm-restart-smp-gicv3.system",
    "tests/systems/vmm-restart-smp-gicv2.system",
    "tests/systems/block-copies-gicv3.system",
    "tests/systems/net-echo.system",
    "tests/systems/net-echo-restart.system",
    "tests/systems/net-echo-misread.system",
    "tests/systems/net-echo-deaf.system",
    "tests/systems/blk.system",
    "tests/systems/blk-crash.system",
    "tests/systems/campaign-blk.system",
    "tests/systems/campaign-net.system",
    "tests/systems/control-crash.system",
    "tests/systems/control-deaf-gicv3.system",
    "tests/systems/control-garble-gicv3.system",
    "tests/systems/control-mute-gicv3.system",
    "tests/systems/control-inject.system",
    "tests/systems/control-vm-gicv3.system",
    "tests/systems/control-net.system",
    "tests/systems/control-gateway-gicv3.system",
    "tests/systems/control-echo-gicv3.system",
    "tests/systems/gateway-gicv3.system",
    "tests/systems/gateway-gicv2.system",
    "tests/systems/gateway-faults-gicv3.system",
    "tests/systems/gateway-faults-gicv2.system",
    "tests/systems/gateway-vmm-restart-gicv3.system",
    "tests/systems/gateway-vmm-restart-gicv2.system",
];

/// Systems the Pi's tests boot on QEMU `raspi4b` (tests/tests/rpi4b.rs), built for the Pi
/// alone: they name its devices (the mini UART's aux page, the GIC-400's GICV frame) or its
/// RAM above 1 GiB (`rpi4b_2gb`, the RAM QEMU's machine has).
const RPI4B_SYSTEMS: &[(Board, &str)] = &[
    (RPI4B, "systems/hello.system"),
    (RPI4B, "tests/systems/resilient-echo-rpi4b.system"),
    (RPI4B, "tests/systems/linux-vm-rpi4b.system"),
    (RPI4B_2GB, "systems/hello.system"),
    (RPI4B_2GB, "tests/systems/fixed-ram-rpi4b-2gb.system"),
];

/// Systems built for boards no QEMU machine boots: the ODROIDs (built so that the kernel,
/// the root task and UART_A's serial driver keep building for them) and the 8 GiB Pi 4 (RAM
/// beyond QEMU `raspi4b`'s 2 GiB: the kernel with its largest memory map keeps building).
const BUILD_ONLY_SYSTEMS: &[(Board, &str)] = &[
    (RPI4B_8GB, "systems/hello.system"),
    (ODROID_C4, "systems/hello.system"),
    (ODROID_C4, "tests/systems/resilient-echo-odroid-c4.system"),
    (ODROID_C2, "systems/hello.system"),
    (ODROID_C2, "tests/systems/resilient-echo-odroid-c2.system"),
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

    let host = test_args(&["--workspace", "--exclude", "axolotl-tests"], filter);
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

    let images = images::images_dir().display().to_string();
    let mut jobs = image_jobs(stress_long);
    if let Some(f) = filter {
        // Only what the selected tests boot: a filtered run of a few tests must not wait for
        // every system's image.
        let wanted = wanted_images(f, &images)?;
        jobs.retain(|j| wanted.contains(&j.name()));
    }
    let n = jobs.len();
    for (k, job) in jobs.into_iter().enumerate() {
        eprintln!("xtask: building image {} of {n}: {}", k + 1, job.name());
        images::build(&job.into_variant()?)?;
    }
    let integ = test_args(&["-p", "axolotl-tests"], filter);
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

/// One image the integration tests may boot; systems are packed only when built.
enum ImageJob {
    Plain(Variant),
    System(Board, &'static str),
    /// A system on a kernel built with these features (its name ends in them).
    SystemWith(Board, &'static str, &'static [&'static str]),
}

impl ImageJob {
    /// The image's name (`<name>.elf` under target/images), known without building it.
    fn name(&self) -> String {
        match self {
            ImageJob::Plain(v) => v.name(),
            ImageJob::System(board, sdf) => format!(
                "{}-{}",
                Variant::new(*board, None).name(),
                crate::system::image_name(&images::workspace_root().join(sdf))
            ),
            ImageJob::SystemWith(board, sdf, features) => format!(
                "{}-{}",
                ImageJob::System(*board, sdf).name(),
                features.join("-")
            ),
        }
    }

    fn into_variant(self) -> Result<Variant, String> {
        match self {
            ImageJob::Plain(v) => Ok(v),
            ImageJob::System(board, sdf) => {
                let mut v = Variant::new(board, None);
                v.system = Some(crate::system::pack(
                    &images::workspace_root().join(sdf),
                    &board,
                )?);
                Ok(v)
            }
            ImageJob::SystemWith(board, sdf, features) => {
                let mut v = ImageJob::System(board, sdf).into_variant()?;
                v.kernel_features = features;
                Ok(v)
            }
        }
    }
}

/// Every image of a whole run, in build order.
fn image_jobs(stress_long: bool) -> Vec<ImageJob> {
    let mut jobs = Vec::new();
    // The Pi boots its own systems (tests/tests/rpi4b.rs): QEMU raspi4b has no virtio-mmio
    // and no second PL011, which the other systems use. The ODROIDs and the 8 GiB Pi 4 have
    // no QEMU machine: their systems are built (`BUILD_ONLY_SYSTEMS`), never booted.
    for board in BOARDS.iter().filter(|b| b.family == "qemu-virt-aarch64") {
        jobs.push(ImageJob::Plain(Variant::new(*board, None)));
        for s in SELFTESTS {
            jobs.push(ImageJob::Plain(Variant::new(*board, Some(s))));
        }
        let mut suite = Variant::kernel_suite(*board);
        if stress_long {
            suite.stress_iterations = Some(STRESS_LONG_ITERATIONS);
        }
        jobs.push(ImageJob::Plain(suite));
        if board.gic.version().number() == 3 {
            // The suite once more with a kernel that says why it refuses each invocation
            // (`tests/tests/kernel_suite.rs`); a short stress, as every refusal is a line.
            let mut v = Variant::kernel_suite(*board);
            v.kernel_features = &["user-error", "cpu-time"];
            v.stress_iterations = Some(USER_ERROR_STRESS_ITERATIONS);
            jobs.push(ImageJob::Plain(v));
        }
        for s in SYSTEMS.iter().filter(|s| builds_for(s, board)) {
            jobs.push(ImageJob::System(*board, s));
        }
        if board.gic.version().number() == 3 {
            // `ctl status` with CPU time (tests/tests/control.rs `cpu_time_in_status_gicv3`).
            jobs.push(ImageJob::SystemWith(
                *board,
                "tests/systems/control-crash.system",
                &["cpu-time"],
            ));
        }
    }
    for &(board, s) in RPI4B_SYSTEMS.iter().chain(BUILD_ONLY_SYSTEMS) {
        jobs.push(ImageJob::System(board, s));
    }
    jobs
}

/// The images the integration tests selected by `filter` boot: they run once with
/// `AXOLOTL_LIST_IMAGES`, under which the harness (`axolotl_qemu::Boot::start`) writes down
/// the image a test asks for instead of booting it, so the test stops at its first boot.
fn wanted_images(filter: &str, images: &str) -> Result<std::collections::HashSet<String>, String> {
    let list = images::target_dir().join("xtask-wanted-images.txt");
    let _ = std::fs::remove_file(&list);
    eprintln!("xtask: finding the images the tests matching {filter:?} boot");
    let status = Command::new(env!("CARGO"))
        .args([
            "test",
            "-q",
            "--no-fail-fast",
            "-p",
            "axolotl-tests",
            filter,
        ])
        .env("AXOLOTL_IMAGES", images)
        .env(axolotl_qemu::LIST_IMAGES_ENV, &list)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(images::workspace_root())
        .status()
        .map_err(|e| format!("cargo test (listing images): {e}"))?;
    // The listed tests fail by design; a build failure shows up in the real run below.
    let _ = status;
    Ok(parse_image_list(
        &std::fs::read_to_string(&list).unwrap_or_default(),
    ))
}

/// `Boot::start`'s list: one image path a line; the names without directory and `.elf`.
fn parse_image_list(list: &str) -> std::collections::HashSet<String> {
    list.lines()
        .filter_map(|l| std::path::Path::new(l.trim()).file_name()?.to_str())
        .filter_map(|f| f.strip_suffix(".elf"))
        .map(str::to_string)
        .collect()
}

const SHORT_CAMPAIGN: &str = "campaign_short";

/// Issue #21: 20 injections into resilient-echo's serial driver (`cargo xtask campaign`),
/// checked as a test: every injection carried out and classified (one that is not is tried
/// once more, as `--resume` would), its CSV row read back, no system failure.
fn short_campaign(t: &mut Tally) {
    let dir = images::target_dir().join("campaign").join("short");
    let _ = std::fs::remove_dir_all(&dir);
    let args = |resume: Option<std::path::PathBuf>| crate::campaign::Args {
        system: "systems/resilient-echo.system".into(),
        target: "serial_driver".into(),
        faults: Some(20),
        report: None,
        ids: Vec::new(),
        kinds: Vec::new(),
        seed: 21,
        jobs: 2,
        resume,
        out: Some(dir.clone()),
        anchor: Some("serial_core6server+4poll".into()),
        workload: None,
        max_steps: 1000,
        gic: 3,
        in_system: false,
        per_boot: 25,
        settle_ms: 6000,
    };
    let check = || -> Result<String, String> {
        let mut s = crate::campaign::run(args(None))?;
        if s.errors > 0 {
            // Not carried out (each said why above: a run short of its planned stop, or the
            // gdb stub gone with its QEMU on a loaded host): tried once more, as `--resume`
            // does; an injection that fails twice fails the test.
            println!(
                "{SHORT_CAMPAIGN}: {} injections not carried out; resuming once",
                s.errors
            );
            s = crate::campaign::run(args(Some(dir.clone())))?;
        }
        let csv = std::fs::read_to_string(dir.join("injections.csv")).map_err(|e| e.to_string())?;
        let rows = crate::campaign::report::read_csv(&csv)?;
        if s.errors > 0 || rows.len() != 20 || s.records.len() != rows.len() {
            return Err(format!(
                "{} of 20 injections recorded ({} not carried out after a resume)",
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

/// `cargo test` of `packages`, the tests matching `filter`: every test binary runs even when
/// one fails (`--no-fail-fast`), so one failure does not hide the files after it (a failed
/// gateway test once kept the Linux and VMM-restart tests from running at all).
fn test_args<'a>(packages: &[&'a str], filter: Option<&'a str>) -> Vec<&'a str> {
    let mut a = vec!["test", "--no-fail-fast"];
    a.extend(packages);
    a.extend(filter);
    a
}

#[cfg(test)]
mod tests {
    use super::{ImageJob, image_jobs, parse_image_list, parse_result, test_args};

    #[test]
    fn every_test_binary_runs_even_after_a_failure() {
        assert_eq!(
            test_args(&["-p", "axolotl-tests"], Some("gateway")),
            ["test", "--no-fail-fast", "-p", "axolotl-tests", "gateway"]
        );
        assert_eq!(
            test_args(&["--workspace"], None),
            ["test", "--no-fail-fast", "--workspace"]
        );
    }

    #[test]
    fn image_list_names_images_by_file_stem() {
        let got = parse_image_list(
            "/w/target/images/qemu-virt-aarch64-gic3-restart.elf\n\
             /w/target/images/qemu-virt-aarch64-gic2.elf\n\nnot-an-image.txt\n",
        );
        let mut got: Vec<_> = got.into_iter().collect();
        got.sort();
        assert_eq!(
            got,
            ["qemu-virt-aarch64-gic2", "qemu-virt-aarch64-gic3-restart"]
        );
    }

    /// The names a filtered run matches against are the names the images are built under
    /// and the harness boots (`tests/src/lib.rs`: `<board>-gic<N><suffix>`).
    #[test]
    fn job_names_are_the_names_tests_boot() {
        let names: Vec<String> = image_jobs(false).iter().map(ImageJob::name).collect();
        for want in [
            "qemu-virt-aarch64-gic3",
            "qemu-virt-aarch64-gic2-selftest-ipc",
            "qemu-virt-aarch64-gic3-kernel-suite",
            "qemu-virt-aarch64-gic3-kernel-suite-user-error-cpu-time",
            "qemu-virt-aarch64-gic3-restart",
            "qemu-virt-aarch64-gic2-restart",
            "qemu-virt-aarch64-gic3-linux-vm-gicv3",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n == "qemu-virt-aarch64-gic2-linux-vm-gicv3")
        );
    }

    /// Boards without a QEMU machine (the ODROIDs) only get systems built: hello, which
    /// shows the kernel still builds for them, and resilient-echo on their UART_A, which
    /// shows its driver does; nothing that a test would boot.
    #[test]
    fn boards_without_a_qemu_machine_are_built_not_booted() {
        let names: Vec<String> = image_jobs(false).iter().map(ImageJob::name).collect();
        for b in ["odroid-c4", "odroid-c2"] {
            let mine: Vec<_> = names.iter().filter(|n| n.starts_with(b)).collect();
            assert_eq!(
                mine,
                [
                    &format!("{b}-gic2-hello"),
                    &format!("{b}-gic2-resilient-echo-{b}")
                ],
                "{names:?}"
            );
        }
    }

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
