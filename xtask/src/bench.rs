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
    Ok(ExitCode::SUCCESS)
}
