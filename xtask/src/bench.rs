//! `cargo xtask bench`: boots the benchmark image under QEMU `-icount shift=0`, where one
//! nanosecond of virtual time is one instruction, and prints the figures the image reports.
//! Deterministic: the same build gives the same numbers on any host.

use std::process::ExitCode;
use std::time::Duration;

use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine};

use crate::images::{self, Variant};

pub fn run() -> Result<ExitCode, String> {
    crate::setup::ensure()?;
    let board = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).ok_or("no board")?;
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
    restart_latency(board)?;
    linux_boot(board)?;
    Ok(ExitCode::SUCCESS)
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
        ])
        .arg("-kernel")
        .arg(&a.image)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", VMM_CMDLINE])
        .output()
        .map_err(|e| format!("running QEMU: {e}"))?;
    let direct_console = String::from_utf8_lossy(&direct.stdout).into_owned();
    let direct_ns = marker_ns(&direct_console)
        .ok_or_else(|| format!("direct boot: no CNTVCT_NS after the marker:\n{direct_console}"))?;

    let sdf = images::workspace_root().join("systems/linux-vm.system");
    let mut v = Variant::new(board, None);
    v.system = Some(crate::system::pack_with_initrd(
        &sdf,
        &board,
        Some(&initrd),
    )?);
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
        .ok_or_else(|| format!("axolotl: no CNTVCT_NS after the marker:\n{console}"))?;
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
    println!(
        "{:<34} {axolotl_ns:>14} {:>8.3}",
        "axolotl (kernel, root task, VMM)",
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
                "guest exits until power-off: {exits}; the guest's extra boot time is {} ns per exit",
                extra / exits.max(1)
            );
        }
    }
    Ok(())
}

/// vmm-pd's kernel command line outside test builds (vmm-pd/src/pd.rs `CMDLINE`).
const VMM_CMDLINE: &str = "console=ttyAMA0 earlycon rdinit=/init";
