//! `cargo xtask bench`: boots the benchmark image under QEMU `-icount shift=0`, where one
//! nanosecond of virtual time is one instruction, and prints the figures the image reports.
//! Deterministic: the same build gives the same numbers on any host.

use std::process::ExitCode;
use std::time::Duration;

use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine};

use crate::images::{self, Variant};

/// A part of `cargo xtask bench`, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Kernel operations (instructions per operation).
    Kernel,
    /// PD restart latency.
    Restart,
    /// VMM restart latency.
    VmmRestart,
    /// The Linux guest's boot against bare QEMU.
    Boot,
    /// Guest network and disk I/O against bare QEMU.
    Io,
    /// The I/O pause of a blk driver restart.
    BlkRestart,
    /// The receive pause of a net driver restart.
    NetRestart,
}

pub fn run(only: &[Section]) -> Result<ExitCode, String> {
    crate::setup::ensure()?;
    let board = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).ok_or("no board")?;
    let wanted = |s: Section| only.is_empty() || only.contains(&s);
    if wanted(Section::Kernel) {
        kernel_ops(board)?;
    }
    if wanted(Section::Restart) {
        restart_latency(board)?;
    }
    if wanted(Section::VmmRestart) {
        vmm_restart_latency(board)?;
    }
    if wanted(Section::Boot) {
        linux_boot(board)?;
    }
    if wanted(Section::Io) {
        io_baseline()?;
    }
    if wanted(Section::BlkRestart) {
        blk_restart_pause(board)?;
    }
    if wanted(Section::NetRestart) {
        net_restart_pause(board)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Kernel operations: the bench image's instruction counts per operation.
fn kernel_ops(board: axolotl_kernel_config::Board) -> Result<(), String> {
    let img = images::build(&Variant::new(board, Some("bench")))?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    let mut b = Boot::start(&m, &img).map_err(|f| f.to_string())?;
    b.expect("bench: done", Duration::from_secs(300))
        .map_err(|f| f.to_string())?;
    let console = b.console();
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse().ok())
    };
    let rows: Vec<(String, u64)> = console
        .lines()
        .filter(|l| l.starts_with("bench: ") && l.contains("per_op="))
        .filter_map(|l| {
            Some((
                l.split_whitespace().nth(1)?.to_string(),
                field(l, "per_op=")?,
            ))
        })
        .collect();
    let null = rows
        .iter()
        .find(|(n, _)| n == "null_syscall")
        .map(|r| r.1)
        .ok_or("no null_syscall figure")?;
    println!(
        "QEMU virt (GICv3, cortex-a72), -icount shift=0; instructions per operation, 10,000 iterations,"
    );
    println!("empty-loop baseline subtracted; ratio against the null syscall of the same run.");
    println!("{:<34} {:>12} {:>8}", "operation", "insns/op", "ratio");
    for (name, per_op) in &rows {
        println!(
            "{name:<34} {per_op:>12} {:>8.2}",
            *per_op as f64 / null.max(1) as f64
        );
    }
    if console.contains("bench: FAILED") {
        return Err("a benchmark failed; see the console above".into());
    }
    Ok(())
}

/// PDs of the restart benchmark and their image sizes (tests/pds: 16 and 256 pages of text
/// and data), switched to their standby or (`*_in_place`) restored in place.
const RESTART_PDS: [(&str, u64); 4] = [
    ("bench_64k", 64 << 10),
    ("bench_1m", 1 << 20),
    ("bench_64k_in_place", 64 << 10),
    ("bench_1m_in_place", 1 << 20),
];

/// Restart latency (issue #5): tests/systems/bench-restart.system, whose PDs fail in each of
/// their first generations and report the time from the fault to their next start.
fn restart_latency(board: axolotl_kernel_config::Board) -> Result<(), String> {
    let sdf = images::workspace_root().join("tests/systems/bench-restart.system");
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack(&sdf, &board)?);
    let img = images::build(&v)?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    let mut b = Boot::start(&m, &img).map_err(|f| f.to_string())?;
    for (pd, _) in RESTART_PDS {
        b.expect_chain(
            &[&format!("bench: restarts {pd} done")],
            Duration::from_secs(300),
        )
        .map_err(|f| f.to_string())?;
    }
    let console = b.console();
    let num = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse().ok())
    };
    println!();
    println!(
        "Restart latency, same run conditions: fault -> restarted PD running again (ns), mean"
    );
    println!("of 5 restarts; floor = copying the image's bytes with the same copy routine.");
    println!(
        "{:<20} {:>10} {:>14} {:>12} {:>8}",
        "PD", "image", "restart ns", "floor ns", "ratio"
    );
    for (pd, image) in RESTART_PDS {
        let restarts: Vec<u64> = console
            .lines()
            .filter(|l| l.starts_with(&format!("bench: restart {pd} ")))
            .filter_map(|l| num(l, "ns="))
            .collect();
        let floor_line = console
            .lines()
            .find(|l| l.starts_with(&format!("bench: copy_floor {pd} ")))
            .ok_or(format!("no copy floor for {pd}"))?;
        let (bytes, ns) = (
            num(floor_line, "bytes=").ok_or("floor bytes")?,
            num(floor_line, "ns=").ok_or("floor ns")?,
        );
        if restarts.is_empty() {
            return Err(format!("no restart figures for {pd}"));
        }
        let mean = restarts.iter().sum::<u64>() / restarts.len() as u64;
        let floor = ns * image / bytes.max(1);
        println!(
            "{pd:<20} {:>8}Ki {mean:>14} {floor:>12} {:>8.2}",
            image >> 10,
            mean as f64 / floor.max(1) as f64
        );
    }
    Ok(())
}

/// The I/O pause of a blk driver restart (issue #15): tests/systems/blk-crash.system under
/// `-icount shift=0`. The driver crashes with requests in the device four times (twice while
/// the pattern client writes, twice while it reads); the client logs, in virtual time, from
/// its last completion before each restart to its first after it: the crash, the monitor's
/// restart, the new driver's device reset and queue setup, the client's re-issue and the
/// device's first completion.
fn blk_restart_pause(board: axolotl_kernel_config::Board) -> Result<(), String> {
    let sdf = images::workspace_root().join("tests/systems/blk-crash.system");
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack(&sdf, &board)?);
    let img = images::build(&v)?;
    let dir = images::target_dir().join("bench-blk-restart");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let disk = dir.join("disk.img");
    // A fresh 8 MiB disk, as the storage test's.
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(8 << 20))
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    m.disk = Some(disk);
    let mut b = Boot::start(&m, &img).map_err(|f| f.to_string())?;
    let verdict = b
        .expect("blk_client: verdict: ", Duration::from_secs(900))
        .map_err(|f| f.to_string())?;
    let console = b.console();
    let _ = std::fs::write(dir.join("console.log"), &console);
    if !verdict.contains("verdict: PASS") {
        return Err(format!("the storage workload failed:\n{console}"));
    }
    // Each pause, with the monitor's crash-loop backoff if it held that restart back (the
    // test driver crashes again well within the monitor's MIN_RUN_MS floor of 50 ms: its
    // "floor" and "backoff", docs/monitor.md).
    let mut pauses: Vec<(u64, Option<u64>)> = Vec::new();
    let mut backoff = None;
    for l in console.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("monitor: restarting blk_driver after ") {
            backoff = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        }
        if let Some(rest) = l.strip_prefix("blk_client: restart pause ")
            && let Some(us) = rest.split_whitespace().next().and_then(|v| v.parse().ok())
        {
            pauses.push((us, backoff.take()));
        }
    }
    if pauses.len() < 3 {
        return Err(format!(
            "{} restart pauses logged, at least 3 expected:\n{console}",
            pauses.len()
        ));
    }
    println!();
    println!("blk driver restart, same run conditions: the client's last completion before each");
    println!("restart -> its first after it (virtual us; goal < 1000):");
    for (i, (us, b)) in pauses.iter().enumerate() {
        match b {
            Some(ms) => println!(
                "  restart {}: {us} us (of which the monitor's backoff {ms} ms)",
                i + 1
            ),
            None => println!("  restart {}: {us} us", i + 1),
        }
    }
    let pauses: Vec<u64> = pauses.iter().map(|p| p.0).collect();
    let mean = pauses.iter().sum::<u64>() / pauses.len() as u64;
    let max = pauses.iter().max().copied().unwrap_or(0);
    println!("  mean {mean} us, max {max} us");
    Ok(())
}

/// The receive pause of a net driver restart (issue #15): tests/systems/net-echo-restart.system
/// under `-icount shift=0` while the host keeps echo_a's forwarded UDP port flooded, so that
/// QEMU's network always has a frame for the NIC. Its driver crashes after 120 frames in
/// generations 0 to 2 and hangs in generation 3 (found by its 100 ms heartbeat); the
/// virtualiser logs, in virtual time, from the last poll round that received frames from one
/// driver incarnation to the first that received from the next: the fault, the monitor's
/// restart, the new driver's device reset and queue setup, and the first frame through.
fn net_restart_pause(board: axolotl_kernel_config::Board) -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let sdf = images::workspace_root().join("tests/systems/net-echo-restart.system");
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack(&sdf, &board)?);
    let img = images::build(&v)?;
    let port = axolotl_qemu::http::free_udp_port().map_err(|e| format!("no free port: {e}"))?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    // echo_a (driver-pd's NET_CLIENTS[0]) answers UDP echo on port 7.
    m.net = Some(axolotl_qemu::Net {
        udp_forwards_to: vec![(port, [10, 0, 2, 15], 7)],
        ..axolotl_qemu::Net::default()
    });
    let mut b = Boot::start(&m, &img).map_err(|f| f.to_string())?;
    b.expect(
        "net_virt: generation 0: routing for 2 clients",
        Duration::from_secs(300),
    )
    .map_err(|f| f.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<u64, String> {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let msg = [b'f'; 1024];
            let mut buf = [0u8; 2048];
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A burst a millisecond: more than the path drains under -icount, so a
                // frame always waits in QEMU for the NIC's next receive buffer.
                for _ in 0..8 {
                    let _ = s.send_to(&msg, ("127.0.0.1", port));
                }
                while s.recv_from(&mut buf).is_ok() {
                    answered += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(answered)
        })
    };
    let seen = b.expect_chain(
        &[
            "net_virt: receive pause across net_driver's restart: ",
            "net_virt: receive pause across net_driver's restart: ",
            "net_virt: receive pause across net_driver's restart: ",
            "net_virt: receive pause across net_driver's restart: ",
        ],
        Duration::from_secs(900),
    );
    stop.store(true, Ordering::Relaxed);
    let answered = flood.join().map_err(|_| "the flood thread panicked")??;
    let console = b.console();
    let dir = images::target_dir().join("bench-net-restart");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = std::fs::write(dir.join("console.log"), &console);
    seen.map_err(|f| f.to_string())?;
    let mut pauses: Vec<(String, u64, Option<u64>)> = Vec::new();
    let mut backoff = None;
    for l in console.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("monitor: restarting net_driver after ") {
            backoff = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        }
        if let Some(rest) = l.strip_prefix("net_virt: receive pause across net_driver's restart: ")
            && let Some((us, gens)) = rest.split_once(" us ")
            && let Ok(us) = us.parse()
        {
            pauses.push((gens.to_string(), us, backoff.take()));
        }
    }
    println!();
    println!("net driver restart, same run conditions ({answered} echoes came back to the flood):");
    println!("the virtualiser's last frame from the driver before each restart -> its first after");
    println!("it (virtual us; goal < 1000); generation 3 hangs, found by its 100 ms heartbeat:");
    for (gens, us, b) in &pauses {
        match b {
            Some(ms) => println!("  {gens}: {us} us (of which the monitor's wait {ms} ms)"),
            None => println!("  {gens}: {us} us"),
        }
    }
    Ok(())
}

/// VMM restarts (issue #16): tests/systems/vmm-restart-gicv3.system under -icount; once the
/// guest's shell runs, the VMM is crashed at a UART exit (a `# vmm-fault crash uart` line on
/// UART1, vmm-pd's test build) this many times, and each restart's virtual time from the
/// crash to the first reply that lets the guest run again is what the VMM logs.
const VMM_RESTARTS: usize = 3;

fn vmm_restart_latency(board: axolotl_kernel_config::Board) -> Result<(), String> {
    let sdf = images::workspace_root().join("tests/systems/vmm-restart-gicv3.system");
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack(&sdf, &board)?);
    let img = images::build(&v)?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    // UART1 (the guest's serial line both ways) is the harness's.
    let mut b = Boot::start(&m, &img).map_err(|f| f.to_string())?;
    let wait = Duration::from_secs(600);
    b.expect_all(&["Run /init as init process", "AXOLOTL-GUEST-DONE"], wait)
        .map_err(|f| f.to_string())?;
    let type_in =
        |b: &mut Boot, text: &str| b.send_uart1(text.as_bytes()).map_err(|f| f.to_string());
    for n in 1..=VMM_RESTARTS {
        type_in(&mut b, "# vmm-fault crash uart\n")?;
        b.expect_all(
            &[
                &format!("vmm: generation {n}: took over the running guest"),
                "vmm: guest running again at ",
            ],
            wait,
        )
        .map_err(|f| f.to_string())?;
        // The monitor never restarts a PD that ran less than 50 ms since its last restart.
        type_in(&mut b, &format!("echo bench-restart-{n}\n"))?;
        b.expect(&format!("bench-restart-{n}"), wait)
            .map_err(|f| f.to_string())?;
    }
    let console = b.console();
    // Kept for reading what the figures came from (as the I/O bench keeps its consoles).
    let log = images::workspace_root().join("target/bench-vmm-restart-console.log");
    let _ = std::fs::write(&log, &console);
    let ns_of = |prefix: &str| -> Vec<u64> {
        console
            .lines()
            .filter_map(|l| l.split(prefix).nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let crashes = ns_of("vmm: fault injection: Crash at a Uart exit at ");
    let resumed = ns_of("vmm: guest running again at ");
    // `(us, how)`: how is `standby` or `in place`.
    let monitor: Vec<(u64, String)> = console
        .lines()
        .filter(|l| l.starts_with("monitor: restarted vmm "))
        .filter_map(|l| {
            let rest = l.split(" in ").nth(1)?;
            let us = rest.split_whitespace().next()?.parse().ok()?;
            let how = rest.split('(').nth(1)?.trim_end_matches(')').to_string();
            Some((us, how))
        })
        .collect();
    let refills: Vec<u64> = ns_of("root-task: the standby of vmm restored in ");
    if crashes.len() != VMM_RESTARTS || resumed.len() != VMM_RESTARTS {
        return Err(format!(
            "VMM restarts: {} crashes and {} resumptions logged, {VMM_RESTARTS} expected",
            crashes.len(),
            resumed.len()
        ));
    }
    println!();
    println!(
        "VMM restart latency, same run conditions: crash at a UART exit -> guest running again"
    );
    println!(
        "(virtual ns; the monitor's figure is its failure report -> restarted VMM running, us):"
    );
    println!(
        "{:<10} {:>16} {:>12}  how",
        "restart", "crash->resumed", "monitor us"
    );
    for (i, (c, r)) in crashes.iter().zip(&resumed).enumerate() {
        let (mon, how) = monitor
            .get(i)
            .map_or(("-".to_string(), "-"), |(u, h)| (u.to_string(), h.as_str()));
        println!(
            "{:<10} {:>16} {:>12}  {how}",
            i + 1,
            r.saturating_sub(*c),
            mon
        );
    }
    // The refresher restores the incarnation a restart left when the CPU is otherwise idle;
    // a restart that finds it not yet restored is done in place.
    println!(
        "standby refills (root task's refresher, us, in order): {}",
        if refills.is_empty() {
            "none logged".to_string()
        } else {
            refills
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(())
}

/// Guest boot (issue #6): virtual time from QEMU's reset to the guest's userspace marker, for
/// the Debian kernel and a busybox initramfs booted by axolotl (systems/linux-vm.system) and
/// by QEMU directly, same CPU model and kernel command line. The initramfs runs the static
/// `cntvct` tool (lib/guest-artifacts/tools) first: CNTVCT_EL0 counts the virtual clock from
/// reset in both cases (the VMM leaves CNTVOFF at 0), so axolotl's own boot, the root task
/// building the system and the VMM loading the guest are all counted.
fn linux_boot(board: axolotl_kernel_config::Board) -> Result<(), String> {
    use axolotl_guest_artifacts as ga;
    let a = ga::cached(&ga::default_cache_dir())
        .ok_or("no guest artifacts: run `cargo xtask setup`")?;
    let out = images::images_dir();
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let elf = ga::build_cntvct(&images::target_dir().join("cntvct")).map_err(|e| e.to_string())?;
    let initrd = out.join("bench-initramfs.cpio");
    ga::build_initramfs_with(
        &a.busybox,
        &ga::init_script("/bin/cntvct\npoweroff -f"),
        &[("bin/cntvct", &elf)],
        &initrd,
    )
    .map_err(|e| e.to_string())?;
    let marker_ns = |console: &str| -> Option<u64> {
        let after = &console[console.find(ga::USERSPACE_MARKER)?..];
        after
            .lines()
            .find_map(|l| l.trim().strip_prefix("CNTVCT_NS=")?.parse().ok())
    };

    // Directly on QEMU: the same machine without EL2, the kernel as QEMU's -kernel.
    let direct = std::process::Command::new("timeout")
        .args([
            "600",
            axolotl_qemu::QEMU_AARCH64,
            "-M",
            "virt,gic-version=3",
        ])
        .args([
            "-cpu",
            "cortex-a72",
            "-m",
            "1024M",
            "-smp",
            "1",
            "-icount",
            "shift=0",
        ])
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
            // QEMU virt's default NIC needs a boot ROM that setup does not install (QEMU
            // without its recommended packages), and refuses to start without it.
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&a.image)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", VMM_CMDLINE])
        .output()
        .map_err(|e| format!("running QEMU: {e}"))?;
    let direct_console = String::from_utf8_lossy(&direct.stdout).into_owned();
    let direct_ns = marker_ns(&direct_console).ok_or_else(|| {
        format!(
            "direct boot: no CNTVCT_NS after the marker ({}):\n{direct_console}{}",
            direct.status,
            String::from_utf8_lossy(&direct.stderr)
        )
    })?;

    let boots = [
        (
            "axolotl (kernel, root task, VMM)",
            "systems/linux-vm.system",
        ),
        (
            "axolotl, restartable VMM",
            "systems/linux-vm-restartable.system",
        ),
    ];
    println!();
    println!(
        "Linux guest boot, same run conditions: QEMU reset -> guest userspace marker (virtual ns);"
    );
    println!("Debian {} with a busybox initramfs.", a.kernel_version);
    println!("{:<34} {:>14} {:>8}", "boot", "ns", "ratio");
    println!(
        "{:<34} {direct_ns:>14} {:>8.2}",
        "QEMU -kernel (no hypervisor)", 1.0
    );
    for (label, system) in boots {
        axolotl_boot(board, label, system, &initrd, direct_ns, &marker_ns)?;
    }
    Ok(())
}

/// One row of [`linux_boot`]: `system` booted by axolotl under -icount, against `direct_ns`.
fn axolotl_boot(
    board: axolotl_kernel_config::Board,
    label: &str,
    system: &str,
    initrd: &std::path::Path,
    direct_ns: u64,
    marker_ns: &dyn Fn(&str) -> Option<u64>,
) -> Result<(), String> {
    let sdf = images::workspace_root().join(system);
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack_with_initrd(&sdf, &board, Some(initrd))?);
    let img = images::build(&v)?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    let mut b = Boot::start(&m, &img).map_err(|f| f.to_string())?;
    b.expect("CNTVCT_NS=", Duration::from_secs(600))
        .map_err(|f| f.to_string())?;
    b.expect("vmm: guest powered off", Duration::from_secs(600))
        .map_err(|f| f.to_string())?;
    let console = b.console();
    let axolotl_ns = marker_ns(&console)
        .ok_or_else(|| format!("{system}: no CNTVCT_NS after the marker:\n{console}"))?;
    println!(
        "{label:<34} {axolotl_ns:>14} {:>8.3}",
        axolotl_ns as f64 / direct_ns.max(1) as f64
    );
    // Where axolotl's time goes: before the guest's first instruction (kernel boot, the root
    // task building the system, the VMM copying the guest into its RAM), and the guest's own
    // boot with its exits.
    if let Some(start) = console.lines().find_map(|l| {
        l.strip_prefix("vmm: guest started at ")?
            .split_whitespace()
            .rev()
            .nth(3)?
            .parse::<u64>()
            .ok()
    }) {
        println!("{:<34} {start:>14}", "  of which before the guest starts");
        println!(
            "{:<34} {:>14} {:>8.3}",
            "  of which the guest's own boot",
            axolotl_ns - start,
            (axolotl_ns - start) as f64 / direct_ns.max(1) as f64
        );
        let exits = console.lines().find_map(|l| {
            l.strip_prefix("vmm: guest powered off")?
                .split_whitespace()
                .rev()
                .nth(1)?
                .parse::<u64>()
                .ok()
        });
        if let Some(exits) = exits {
            let extra = (axolotl_ns - start).saturating_sub(direct_ns);
            println!(
                "  guest exits until power-off: {exits}; the guest's extra boot time is {} ns per exit",
                extra / exits.max(1)
            );
        }
    }
    Ok(())
}

/// vmm-pd's kernel command line outside test builds (vmm-pd/src/pd.rs `CMDLINE`).
const VMM_CMDLINE: &str = "console=ttyAMA0 earlycon rdinit=/init";

/// Size of each I/O benchmark transfer.
const IO_MIB: u64 = 64;
/// Runs of each transfer. The virtual clock runs on in host time while the guest waits for a
/// device (QEMU's backends run in host time, `-icount` sleep=on): the best of a few runs is
/// the one the loaded host disturbed least.
const IO_REPEATS: u64 = 3;

/// Guest I/O (issue #15): the I/O guest (docs/guest.md) measures with its virtual clock
/// (`cntvct`) 64 MiB of TCP each way with a host peer and 64 MiB of sequential O_DIRECT disk
/// writes and reads in 1 MiB requests, each [`IO_REPEATS`] times, under `-icount shift=0`:
/// booted by QEMU directly with the virtio-mmio NIC and disk of axolotl's machine, and as the
/// gateway system's guest (`systems/gateway.system`: virtio-net through the network
/// virtualiser and the net driver PD, virtio-blk through the blk driver PD) with the same
/// initramfs, the same commands and a fresh copy of the same disk. The guest starts every
/// transfer and times it itself, so the figures are guest virtual time as with the boot.
fn io_baseline() -> Result<(), String> {
    use axolotl_guest_artifacts::{self as ga, disk, io};
    // Narrower runs while profiling (docs/benchmarks.md): the recorded figures come from the
    // defaults.
    let env = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (mib, repeats) = (
        env("AXOLOTL_BENCH_IO_MIB", IO_MIB),
        env("AXOLOTL_BENCH_IO_REPEATS", IO_REPEATS),
    );
    let only_axolotl = std::env::var("AXOLOTL_BENCH_IO_AXOLOTL_ONLY").is_ok_and(|v| v == "1");
    let a = ga::cached(&ga::default_cache_dir())
        .ok_or("no guest artifacts: run `cargo xtask setup`")?;
    let dir = images::target_dir().join("bench-io");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tools = io::GuestTools::build(&images::target_dir().join("guest-tools"))
        .map_err(|e| e.to_string())?;
    let peers = IoPeers::start()?;
    // A sampling profile of the gateway's run (docs/benchmarks.md, "Profiling the I/O path"):
    // its directory, and the host time between samples.
    let profile = std::env::var_os("AXOLOTL_BENCH_IO_PROFILE").map(std::path::PathBuf::from);
    let profile_every = Duration::from_micros(
        std::env::var("AXOLOTL_BENCH_IO_PROFILE_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
    );
    let board = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).ok_or("no board")?;

    // QEMU directly: the commands on the kernel command line.
    let initrd = dir.join("initramfs-io.cpio");
    io::build_io_initramfs(&a, &tools, "", &initrd).map_err(|e| e.to_string())?;
    let img = dir.join("data.img");
    disk::make_data_disk(&img).map_err(|e| e.to_string())?;
    let mut m = Machine::new(board);
    m.disk = Some(img);
    m.net = Some(axolotl_qemu::Net::default());
    let mut cmd = std::process::Command::new(axolotl_qemu::QEMU_AARCH64);
    cmd.args(io::direct_boot_args(
        &a,
        &initrd,
        &peers.guest_cmd(mib, repeats, false),
    ))
    .args(m.virtio_args())
    .args(["-icount", "shift=0"]);
    let direct = if only_axolotl {
        None
    } else {
        let b = Boot::spawn(cmd).map_err(|f| f.to_string())?;
        Some(io_runs("QEMU directly", b, repeats, None)?)
    };

    // axolotl's gateway: its VMM's command line has no commands, so they are the
    // initramfs's own (run by /init after `gateway-guest up`).
    let initrd = dir.join("initramfs-io-bench.cpio");
    io::build_io_initramfs(
        &a,
        &tools,
        &peers.guest_cmd(mib, repeats, profile.is_some() || io_diag()),
        &initrd,
    )
    .map_err(|e| e.to_string())?;
    let sdf = images::workspace_root().join("systems/gateway.system");
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack_with_initrd(
        &sdf,
        &board,
        Some(&initrd),
    )?);
    let elf = images::build(&v)?;
    let img = dir.join("data-axolotl.img");
    disk::make_data_disk(&img).map_err(|e| e.to_string())?;
    let mut m = Machine::new(board);
    m.icount_shift = Some(0);
    m.disk = Some(img);
    m.net = Some(axolotl_qemu::Net::default());
    // A packet capture of the NIC (QEMU's filter-dump), for profiling the TCP steps.
    let mut extra = Vec::new();
    if let Ok(pcap) = std::env::var("AXOLOTL_BENCH_IO_PCAP") {
        extra = vec![
            "-object".to_string(),
            format!("filter-dump,id=dump0,netdev=n0,file={pcap}"),
        ];
    }
    let profiling = match &profile {
        Some(dir) => {
            let images = crate::profile::sampler::Images::load(&sdf, &elf)?;
            let port = crate::profile::sampler::free_port()?;
            extra.extend(["-gdb".to_string(), format!("tcp:127.0.0.1:{port}")]);
            Some((dir, images, port))
        }
        None => None,
    };
    // Through the harness's start: the guest's lines are UART1's (docs/vmm.md).
    let b = Boot::start_with(&m, &elf, &extra).map_err(|f| f.to_string())?;
    let sampler = profiling.as_ref().map(|(_, images, port)| {
        crate::profile::sampler::Sampler::start(*port, images.fingerprints.clone(), profile_every)
    });
    let gateway = io_runs("axolotl gateway", b, repeats, sampler.as_ref());
    if let (Some(s), Some((dir, images, _))) = (sampler, &profiling) {
        let taken = s.finish();
        // The guest's symbols come after its transfers, before it powers off.
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let kallsyms = loop {
            let got = peers.kallsyms.lock().unwrap().take();
            if got.is_some() || gateway.is_err() || std::time::Instant::now() >= deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let guest = kallsyms
            .map(|k| crate::profile::FuncTable::from_kallsyms(&String::from_utf8_lossy(&k)));
        let summary = crate::profile::sampler::report(dir, images, &taken, guest, 6)?;
        println!();
        println!(
            "Profile of the gateway's run, a sample every {profile_every:?} of host time while a \
             transfer runs (all of it in {}):",
            dir.display()
        );
        print!("{summary}");
    }
    let gateway = gateway?;
    let Some(direct) = direct else {
        for (name, g) in &gateway {
            println!(
                "{:<34} axolotl  {:>12} {:>9.1} {:>7.2}",
                io_row_label(name),
                g.best_ns,
                g.mib_s,
                g.spread
            );
        }
        return Ok(());
    };

    println!();
    println!(
        "Guest I/O, same run conditions: the I/O guest's own virtual time per transfer of {mib} MiB,"
    );
    println!(
        "best of {repeats} (spread: slowest / best); Debian {}, virtio-mmio NIC (QEMU user net) and",
        a.kernel_version
    );
    println!(
        "disk (raw file), guest-timed with its virtual clock; ratio: axolotl's MiB/s over QEMU's."
    );
    println!(
        "{:<34} {:<8} {:>12} {:>9} {:>7} {:>7}",
        "transfer", "system", "best ns", "MiB/s", "spread", "ratio"
    );
    for ((name, q), (_, g)) in direct.iter().zip(&gateway) {
        let ratio = g.mib_s / q.mib_s;
        for (system, r, ratio) in [("QEMU", q, None), ("axolotl", g, Some(ratio))] {
            println!(
                "{:<34} {system:<8} {:>12} {:>9.1} {:>7.2} {:>7}",
                io_row_label(name),
                r.best_ns,
                r.mib_s,
                r.spread,
                ratio.map_or(String::new(), |x| format!("{x:.2}"))
            );
        }
    }
    Ok(())
}

/// One transfer's best of [`IO_REPEATS`].
struct IoFigure {
    best_ns: u64,
    mib_s: f64,
    spread: f64,
}

/// The transfers' figures, in [`IO_TRANSFERS`] order, once `b`'s guest is done.
/// With `profile`, the guest marks each transfer's start (`BENCH_MARKS=1`), and the
/// sampler is told which transfer runs.
fn io_runs(
    what: &str,
    mut b: Boot,
    repeats: u64,
    profile: Option<&crate::profile::sampler::Sampler>,
) -> Result<Vec<(&'static str, IoFigure)>, String> {
    use axolotl_guest_artifacts::io;
    let diag = io_diag();
    if diag || profile.is_some() {
        // Host time per step beside the guest's virtual time: how fast the virtual clock
        // ran while each step waited for QEMU's I/O thread. The diagnostic run is one round.
        let t = std::time::Instant::now();
        let rounds = if diag { 1 } else { repeats };
        for name in (0..rounds).flat_map(|_| IO_TRANSFERS) {
            let wait = |b: &mut Boot, marker: &str| {
                b.expect(&format!("{marker}{name}"), Duration::from_secs(1800))
                    .map_err(|f| format!("{what}: {f}"))
            };
            if let Some(p) = profile {
                wait(&mut b, io::BENCH_START_MARKER)?;
                p.phase(Some(name));
            }
            let line = wait(&mut b, io::BENCH_MARKER)?;
            if let Some(p) = profile {
                p.phase(None);
            }
            if diag {
                eprintln!("{what}: host {:>8.1} s: {line}", t.elapsed().as_secs_f64());
            }
        }
    }
    b.expect(io::BENCH_DONE, Duration::from_secs(1800))
        .map_err(|f| format!("{what}: {f}"))?;
    // The guest's own counters after the runs (AXOLOTL_BENCH_IO_DIAG), and the VMM's exit
    // count at power-off, for profiling; a profiled guest sends its symbols before it.
    if diag || profile.is_some() {
        let _ = b.expect("SYSTEM_OFF", Duration::from_secs(300));
    }
    let console = b.console();
    let log = images::target_dir()
        .join("bench-io")
        .join(format!("console-{}.log", what.replace(' ', "-")));
    let _ = std::fs::write(&log, &console);
    if console.contains(io::FAILED_MARKER) {
        return Err(format!("{what}: the I/O guest failed:\n{console}"));
    }
    if diag {
        for line in cpu_split(&console) {
            eprintln!("{what}: {line}");
        }
    }
    let rows = io_rows(&console);
    IO_TRANSFERS
        .iter()
        .map(|&name| {
            let runs: Vec<(u64, u64)> = rows
                .iter()
                .filter(|r| r.0 == name)
                .map(|r| (r.1, r.2))
                .collect();
            if runs.len() != repeats as usize {
                return Err(format!(
                    "{what}: {} {name} figures, not {repeats}:\n{console}",
                    runs.len()
                ));
            }
            let bytes = runs[0].0;
            let best = runs.iter().map(|r| r.1).min().unwrap_or(0).max(1);
            let worst = runs.iter().map(|r| r.1).max().unwrap_or(0);
            Ok((
                name,
                IoFigure {
                    best_ns: best,
                    mib_s: bytes as f64 / (1 << 20) as f64 / (best as f64 / 1e9),
                    spread: worst as f64 / best as f64,
                },
            ))
        })
        .collect()
}

/// The I/O guest's transfers, in the table's order.
const IO_TRANSFERS: [&str; 4] = ["tcp_rx", "tcp_tx", "blk_write", "blk_read"];

fn io_row_label(name: &str) -> &'static str {
    match name {
        "tcp_rx" => "TCP host -> guest (HTTP GET)",
        "tcp_tx" => "TCP guest -> host (HTTP POST)",
        "blk_write" => "blk sequential write, O_DIRECT",
        "blk_read" => "blk sequential read, O_DIRECT",
        _ => "?",
    }
}

fn io_diag() -> bool {
    std::env::var("AXOLOTL_BENCH_IO_DIAG").is_ok_and(|v| v == "1")
}

/// Where each marked transfer's time went, from the VMM's `cpu-time-mark` lines at its start
/// and end (a `cpu-time` kernel; none otherwise): the guest, the kernel, idle and the rest
/// (the PDs), in per cent of the transfer, and the whole in instructions (a counter cycle
/// is 16 under `-icount shift=0`).
fn cpu_split(console: &str) -> Vec<String> {
    let mut start: std::collections::HashMap<String, [u64; 4]> = Default::default();
    let rounds = cpu_rounds(console);
    let mut out = Vec::new();
    for l in console.lines() {
        let Some(rest) = l.split("vmm: cpu-time-mark ").nth(1) else {
            continue;
        };
        let Some((mark, counts)) = rest.split_once(": ") else {
            continue;
        };
        let w: Vec<&str> = counts.split_whitespace().collect();
        let num = |k: &str| -> Option<u64> {
            w.iter()
                .position(|x| *x == k)
                .and_then(|i| w.get(i + 1)?.parse().ok())
        };
        let (Some(g), Some(k), Some(i), Some(n)) =
            (num("guest"), num("kernel"), num("idle"), num("now"))
        else {
            continue;
        };
        if let Some(name) = mark.strip_prefix("start-") {
            start.insert(name.to_string(), [g, k, i, n]);
        } else if let Some(name) = mark.strip_prefix("end-")
            && let Some([g0, k0, i0, n0]) = start.remove(name)
        {
            let all = n.saturating_sub(n0).max(1);
            let (g, k, i) = (
                g.saturating_sub(g0),
                k.saturating_sub(k0),
                i.saturating_sub(i0),
            );
            let rest = all.saturating_sub(g + k + i);
            let pc = |x: u64| 100.0 * x as f64 / all as f64;
            out.push(format!(
                "cpu time of {name}: {} instructions: guest {:.1} %, PDs {:.1} %, kernel {:.1} %, idle {:.1} %",
                all * 16,
                pc(g),
                pc(rest),
                pc(k),
                pc(i)
            ));
            if !rounds.is_empty() {
                out.push(by_pd(name, &rounds, n0, n));
            }
        }
    }
    out
}

/// One monitor round: the counter, and each PD's (name, CPU time, its guest's).
type Round = (u64, Vec<(String, u64, u64)>);

/// The monitor's `cpu-round` lines (its `cpu-rounds` feature, AXOLOTL_MONITOR_CPU_ROUNDS=1).
fn cpu_rounds(console: &str) -> Vec<Round> {
    let mut rounds: Vec<Round> = Vec::new();
    for l in console.lines() {
        let Some(rest) = l.split("monitor: cpu-round ").nth(1) else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        let [at, name, pd, guest] = w[..] else {
            continue;
        };
        let (Ok(at), Ok(pd), Ok(guest)) = (at.parse(), pd.parse(), guest.parse()) else {
            continue;
        };
        match rounds.last_mut() {
            Some((t, pds)) if *t == at => pds.push((name.to_string(), pd, guest)),
            _ => rounds.push((at, vec![(name.to_string(), pd, guest)])),
        }
    }
    rounds
}

/// Transfer `name`'s time by PD, from the first to the last monitor round inside it
/// (`from..=to`, counter cycles): each PD's share, a VMM's guest apart.
fn by_pd(name: &str, rounds: &[Round], from: u64, to: u64) -> String {
    let inside: Vec<_> = rounds
        .iter()
        .filter(|(t, _)| (from..=to).contains(t))
        .collect();
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        return format!("cpu time of {name} by PD: no monitor round inside it");
    };
    let span = last.0.saturating_sub(first.0);
    if span == 0 {
        return format!(
            "cpu time of {name} by PD: under two monitor rounds inside it (a longer transfer: AXOLOTL_BENCH_IO_MIB)"
        );
    }
    let mut shares: Vec<(String, u64)> = Vec::new();
    for (pd, c, g) in &last.1 {
        if let Some((_, c0, g0)) = first.1.iter().find(|(p, _, _)| p == pd) {
            shares.push((pd.clone(), c.saturating_sub(*c0)));
            if g > g0 {
                shares.push((format!("{pd}'s guest"), g - g0));
            }
        }
    }
    shares.sort_by_key(|s| std::cmp::Reverse(s.1));
    let parts: Vec<String> = shares
        .iter()
        .filter(|(_, c)| *c > 0)
        .map(|(pd, c)| format!("{pd} {:.1} %", 100.0 * *c as f64 / span as f64))
        .collect();
    format!(
        "cpu time of {name} by PD, {} instructions between {} monitor rounds: {}",
        span * 16,
        inside.len(),
        parts.join(", ")
    )
}

/// `(name, bytes, virtual ns)` of each `gateway-guest: bench NAME bytes=N t0=NS t1=NS` line.
fn io_rows(console: &str) -> Vec<(String, u64, u64)> {
    let num = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse().ok())
    };
    console
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(axolotl_guest_artifacts::io::BENCH_MARKER)?;
            let name = rest.split_whitespace().next()?.to_string();
            let (t0, t1) = (num(l, "t0=")?, num(l, "t1=")?);
            Some((name, num(l, "bytes=")?, t1.checked_sub(t0)?))
        })
        .collect()
}

/// The host's end of the guest's TCP benchmark, reached from the guest at 10.0.2.2 through
/// QEMU's user network: a source answering an HTTP GET of `/<MiB>` with that many MiB of
/// zeros, and a sink reading an HTTP POST's body and answering `received <bytes>`. Threads
/// that live as long as xtask.
struct IoPeers {
    source: u16,
    sink: u16,
    /// The body of a POST to the sink's `/kallsyms`: the guest kernel's text symbols, which
    /// a profiled run's guest sends after its transfers.
    kallsyms: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

/// The most of the guest's symbols the sink keeps (its text symbols are about 4 MiB).
const KALLSYMS_MAX: u64 = 64 << 20;

/// An HTTP request's head (up to the empty line), read byte by byte so nothing of the body
/// is taken with it.
fn read_head(c: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match c.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

impl IoPeers {
    fn start() -> Result<IoPeers, String> {
        use std::io::{Read, Write};
        use std::net::TcpListener;
        let bind = || TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"));
        let (source, sink) = (bind()?, bind()?);
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
        let peers = IoPeers {
            source: port(&source)?,
            sink: port(&sink)?,
            kallsyms: Default::default(),
        };
        let kallsyms = peers.kallsyms.clone();
        std::thread::spawn(move || {
            for mut c in source.incoming().map_while(Result::ok) {
                let mib: u64 = read_head(&mut c)
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.trim_start_matches('/').parse::<u64>().ok())
                    .unwrap_or(0)
                    // What a guest asks for is bounded like any peer's input.
                    .min(1024);
                let chunk = vec![0u8; 1 << 16];
                let _ = write!(
                    c,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                    mib << 20
                );
                for _ in 0..mib * 16 {
                    if c.write_all(&chunk).is_err() {
                        break;
                    }
                }
            }
        });
        std::thread::spawn(move || {
            for mut c in sink.incoming().map_while(Result::ok) {
                let head = read_head(&mut c);
                let keep = head.starts_with("POST /kallsyms ");
                let mut kept = Vec::new();
                let length: u64 = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0u64;
                while total < length {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            total += n as u64;
                            if keep && total <= KALLSYMS_MAX {
                                kept.extend_from_slice(&buf[..n]);
                            }
                        }
                    }
                }
                if keep {
                    *kallsyms.lock().unwrap() = Some(kept);
                }
                let body = format!("received {total}\n");
                let _ = write!(
                    c,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(peers)
    }

    /// The guest's commands: the network transfers and the disk's, `repeats` times, then
    /// power off.
    /// `marks`: the guest says when each transfer starts (for the profiler).
    fn guest_cmd(&self, mib: u64, repeats: u64, marks: bool) -> String {
        // A profiled guest sends its kernel's text symbols (/proc/kallsyms: root sees the
        // addresses, KASLR included) once its transfers are done.
        let (marks, symbols) = if marks {
            (
                "export BENCH_MARKS=1; ",
                format!(
                    "grep ' [tT] ' /proc/kallsyms >/tmp/ksyms; \
                     wget -q -O /dev/null --post-file /tmp/ksyms http://10.0.2.2:{}/kallsyms; ",
                    self.sink
                ),
            )
        } else {
            ("", String::new())
        };
        if io_diag() {
            // One round with the guest's CPU time (user, nice, system, idle, ...) between
            // the steps, then its counters.
            let (src, sink) = (self.source, self.sink);
            return format!(
                "{marks}head -1 /proc/stat; gateway-guest bench-net {src} {sink} {mib}; head -1 /proc/stat; \
                 gateway-guest bench-blk {mib}; head -1 /proc/stat; echo gateway-guest: bench done; \
                 cat /proc/net/snmp /proc/net/netstat /proc/interrupts; {symbols}poweroff -f"
            );
        }
        format!(
            "{marks}gateway-guest bench {repeats} {} {} {mib}; {symbols}poweroff -f",
            self.source, self.sink
        )
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_split;

    #[test]
    fn a_transfers_cpu_time_is_split_from_its_marks() {
        let console = "\
vmm: cpu-time-mark start-tcp_rx: guest 100 kernel 10 idle 0 now 1000
gateway-guest: bench tcp_rx bytes=1 t0=1 t1=2
vmm: cpu-time-mark end-blk_read: guest 1 kernel 1 idle 1 now 1
vmm: cpu-time-mark end-tcp_rx: guest 600 kernel 60 idle 100 now 2000
";
        assert_eq!(
            cpu_split(console),
            vec![
                "cpu time of tcp_rx: 16000 instructions: guest 50.0 %, PDs 35.0 %, kernel 5.0 %, idle 10.0 %"
            ]
        );
    }

    #[test]
    fn a_transfers_cpu_time_is_split_by_pd_from_the_monitors_rounds() {
        let console = "\
monitor: cpu-round 900 vmm 10 5
monitor: cpu-round 900 net_driver 1 0
vmm: cpu-time-mark start-tcp_rx: guest 100 kernel 10 idle 0 now 1000
monitor: cpu-round 1100 vmm 50 105
monitor: cpu-round 1100 net_driver 20 0
monitor: cpu-round 1300 vmm 90 205
monitor: cpu-round 1300 net_driver 60 0
vmm: cpu-time-mark end-tcp_rx: guest 600 kernel 60 idle 100 now 2000
monitor: cpu-round 2100 vmm 900 900
";
        let got = cpu_split(console);
        assert_eq!(
            got[1],
            "cpu time of tcp_rx by PD, 3200 instructions between 2 monitor rounds: \
             vmm's guest 50.0 %, vmm 20.0 %, net_driver 20.0 %"
        );
    }
}
