//! `cargo xtask`: the project's front door. See README.md.

mod bench;
mod campaign;
mod images;
mod setup;
mod system;
mod test;

use std::process::{Command, ExitCode};

use axolotl_kernel_config::{GicVersion, board_by_name};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, run and test axolotl")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// Board to build for.
    #[arg(long, default_value = "qemu-virt-aarch64")]
    board: String,
    /// GIC version of the board variant (2 or 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    gic: u8,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (QEMU >= 9, rustup targets). Idempotent.
    Setup,
    /// Build a bootable image (with `--system`, of the system an SDF describes).
    Build {
        #[command(flatten)]
        target: Target,
        /// The .system file (SDF) to build; without it the image holds the root task alone.
        #[arg(long)]
        system: Option<std::path::PathBuf>,
    },
    /// Build and boot in QEMU, console on this terminal (quit: Ctrl-A then X).
    Run {
        #[command(flatten)]
        target: Target,
        /// QEMU CPU model.
        #[arg(long, default_value = "cortex-a72")]
        cpu: String,
        /// The .system file (SDF) to boot.
        #[arg(long, default_value = "systems/hello.system")]
        system: std::path::PathBuf,
    },
    /// Kernel microbenchmarks under QEMU -icount shift=0 (instructions per operation).
    Bench,
    /// A fault-injection campaign through QEMU's gdbstub (docs/resilience.md).
    Campaign(campaign::Args),
    /// Validate a System Description File (no image needed); exit status 1 on any error.
    Check {
        /// The .system file.
        file: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Run every test: host unit tests of every crate, then QEMU integration tests.
    Test {
        /// Only run tests whose name contains this (passed to cargo test).
        filter: Option<String>,
        /// Run the kernel suite's randomized invocation stress long (10000000 invocations
        /// instead of 20000; e.g. `cargo xtask test --stress-long kernel_suite`).
        #[arg(long)]
        stress_long: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn board(t: &Target) -> Result<axolotl_kernel_config::Board, String> {
    let gic = if t.gic == 2 {
        GicVersion::V2
    } else {
        GicVersion::V3
    };
    board_by_name(&t.board, Some(gic))
        .ok_or_else(|| format!("no board {:?} with GICv{}", t.board, t.gic))
}

/// The image variant for `board`, packing the system of `sdf` if one is given.
fn variant(
    board: axolotl_kernel_config::Board,
    sdf: Option<&std::path::Path>,
) -> Result<images::Variant, String> {
    let mut v = images::Variant::new(board, None);
    if let Some(sdf) = sdf {
        v.system = Some(system::pack(sdf, &board)?);
    }
    Ok(v)
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Setup => {
            setup::ensure()?;
            println!("setup: everything is in place");
        }
        Cmd::Build { target, system } => {
            let b = board(&target)?;
            setup::ensure_rust_targets()?;
            let img = images::build(&variant(b, system.as_deref())?)?;
            println!("image: {}", img.display());
        }
        Cmd::Run {
            target,
            cpu,
            system,
        } => {
            let b = board(&target)?;
            setup::ensure()?;
            let sdf = images::workspace_root().join(system);
            let img = images::build(&variant(b, Some(&sdf))?)?;
            let mut m = axolotl_qemu::Machine::new(b);
            m.cpu = Box::leak(cpu.into_boxed_str());
            eprintln!("xtask: booting {} (quit: Ctrl-A then X)", img.display());
            let status = Command::new(axolotl_qemu::QEMU_AARCH64)
                .args(m.args(&img, true))
                .status()
                .map_err(|e| format!("cannot start QEMU: {e}"))?;
            if !status.success() {
                return Err(format!("QEMU exited with {status}"));
            }
        }
        Cmd::Check { file, target } => {
            let b = board(&target)?;
            // The SDF's rules and the plan's, the root task's and the board's capacities:
            // everything `build` and the boot would refuse that the SDF alone shows.
            return Ok(match axolotl_boot_plan::limits::check_file(&file, &b) {
                Ok(checked) => {
                    for w in checked.warnings.iter() {
                        eprintln!("{w}");
                    }
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(diags) => {
                    eprintln!("{diags}");
                    ExitCode::from(1)
                }
            });
        }
        Cmd::Test {
            filter,
            stress_long,
        } => return test::run(filter.as_deref(), stress_long),
        Cmd::Bench => return bench::run(),
        Cmd::Campaign(a) => {
            setup::ensure()?;
            let s = campaign::run(a)?;
            println!("{}", s.report);
            println!(
                "campaign: {} injections recorded ({} not carried out) in {}",
                s.records.len(),
                s.errors,
                s.dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
