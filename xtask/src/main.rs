//! `cargo xtask`: the project's front door. See README.md.

mod bench;
mod campaign;
mod ctl;
mod flash;
mod images;
mod profile;
mod sdcard;
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
    /// Board to build for: qemu-virt-aarch64, rpi4b (the 1 GiB Pi 4; rpi4b_2gb, rpi4b_4gb,
    /// rpi4b_8gb use a larger one's RAM), odroid-c4 or odroid-c2 (Microkit's spellings,
    /// qemu_virt_aarch64, rpi4b_1gb, work too).
    #[arg(long, default_value = "qemu-virt-aarch64")]
    board: String,
    /// GIC version of the board variant (2 or 3); without it, GICv3 where the board has one
    /// (QEMU virt), else the board's own (rpi4b: the GIC-400, a GICv2).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    gic: Option<u8>,
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
        #[arg(long, value_parser = sdf_path)]
        system: Option<std::path::PathBuf>,
        /// Print the boot plan's table of PDs (priorities, budgets, memory, caps).
        #[arg(long)]
        show_plan: bool,
    },
    /// Build an image ready to flash: an SD card (MBR, FAT32 boot partition) with, for rpi4b,
    /// the Pi firmware, config.txt and the kernel; for odroid-c4/c2, the boot loader you give
    /// (--bootloader), boot.scr and the kernel as a U-Boot image. docs/boards.md.
    Image {
        #[command(flatten)]
        target: Target,
        /// The .system file (SDF) the image boots.
        #[arg(long, value_parser = sdf_path)]
        system: std::path::PathBuf,
        /// Where to write it (default: target/images/<image>.sd.img).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// odroid-c4, odroid-c2: the SD boot loader (Amlogic's BL2 and FIP around U-Boot, a
        /// `u-boot.bin.sd.bin`), written from sector 1; Debian has none (docs/boards.md).
        #[arg(long)]
        bootloader: Option<std::path::PathBuf>,
    },
    /// Build the SD-card image (as `image`) and write it to a card: refuses a mounted device,
    /// and, unless --force, one that is not removable or larger than --max-gib; asks first
    /// unless --yes.
    Flash {
        #[command(flatten)]
        target: Target,
        /// The .system file (SDF) the image boots.
        #[arg(long, value_parser = sdf_path)]
        system: std::path::PathBuf,
        /// The whole card's block device (/dev/sdX, /dev/mmcblkN), or a regular file.
        #[arg(long)]
        device: std::path::PathBuf,
        /// As for `image`.
        #[arg(long)]
        bootloader: Option<std::path::PathBuf>,
        /// Write to a device that is not removable or larger than --max-gib.
        #[arg(long)]
        force: bool,
        /// Do not ask before writing.
        #[arg(long)]
        yes: bool,
        /// The largest device taken for an SD card without --force, in GiB.
        #[arg(long, default_value_t = 256)]
        max_gib: u64,
    },
    /// Build and boot in QEMU, console on this terminal (quit: Ctrl-A then X).
    Run {
        #[command(flatten)]
        target: Target,
        /// QEMU CPU model.
        #[arg(long, default_value = "cortex-a72")]
        cpu: String,
        /// The .system file (SDF) to boot.
        #[arg(long, default_value = "systems/hello.system", value_parser = sdf_path)]
        system: std::path::PathBuf,
        /// Print the boot plan's table of PDs (priorities, budgets, memory, caps).
        #[arg(long)]
        show_plan: bool,
        /// For a system whose guest has a NIC (systems/gateway.system): the host port on
        /// 127.0.0.1 forwarded to the guest's port 80.
        #[arg(long, default_value_t = 8080)]
        net_port: u16,
        /// Where UART1 is a guest's console (a VMM's serial line), keep the system log
        /// (UART0) on the terminal too, instead of target/run/<system>.log.
        #[arg(long)]
        log_on_terminal: bool,
    },
    /// Benchmarks under QEMU -icount shift=0: kernel operations (instructions per operation),
    /// restart latencies, the Linux boot and guest I/O against bare QEMU (docs/benchmarks.md).
    Bench {
        /// Only these sections (kernel, restart, vmm-restart, boot, io); all by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<bench::Section>,
    },
    /// Talk to a running system's control PD (docs/control.md): status, log, restart, hold,
    /// release, inject, watch.
    Ctl(ctl::Args),
    /// A fault-injection campaign through QEMU's gdbstub (docs/resilience.md).
    Campaign(campaign::Args),
    /// Validate a System Description File (no image needed); exit status 1 on any error.
    Check {
        /// The .system file.
        #[arg(value_parser = sdf_path)]
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
    let found = match t.gic {
        Some(2) => board_by_name(&t.board, Some(GicVersion::V2)),
        Some(_) => board_by_name(&t.board, Some(GicVersion::V3)),
        None => {
            board_by_name(&t.board, Some(GicVersion::V3)).or_else(|| board_by_name(&t.board, None))
        }
    };
    found.ok_or_else(|| {
        let known: Vec<String> = axolotl_kernel_config::BOARDS
            .iter()
            .map(|b| format!("{} --gic {}", b.name, b.gic.version().number()))
            .collect();
        let gic = t.gic.map(|g| format!(" with GICv{g}")).unwrap_or_default();
        format!(
            "no board {:?}{gic}; the boards are: {}",
            t.board,
            known.join(", ")
        )
    })
}

/// One rule for every command's SDF path: as given (absolute, or relative to the current
/// directory), else relative to the workspace root (so `systems/hello.system` works from
/// anywhere in the checkout); a path found in neither is reported as given. Every command
/// gets its SDF through [`sdf_path`], clap's parser for it, so none can take another rule.
fn resolve(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    let in_root = images::workspace_root().join(path);
    if in_root.exists() {
        in_root
    } else {
        path.to_path_buf()
    }
}

/// clap's value parser of every command's SDF path: [`resolve`].
fn sdf_path(arg: &str) -> Result<std::path::PathBuf, String> {
    Ok(resolve(std::path::Path::new(arg)))
}

/// The program image of the driver that serves control-pd over a virtio-console instead of
/// UART1 (docs/control.md).
const VCONS_DRIVER_IMAGE: &str = "virtio-console-driver.elf";
/// The serial driver of a VMM's guest console on UART1.
const CONSOLE_DRIVER_IMAGE: &str = "console-serial-driver.elf";

/// Where a system's control PD reaches the host: `Some(true)` over the virtio-console (the
/// system has a `virtio-console-driver.elf` PD), `Some(false)` over UART1, `None`: the
/// system has no control PD.
fn control_transport(sdf: &std::path::Path) -> Option<bool> {
    let text = std::fs::read_to_string(sdf).ok()?;
    let board = axolotl_kernel_config::BOARDS[0];
    let sd = axolotl_sdf::parse(&sdf.display().to_string(), &text, &board).ok()?;
    let pds = sd.all_pds();
    pds.iter().any(|pd| pd.control.any()).then(|| {
        pds.iter()
            .any(|pd| pd.program_image.path == VCONS_DRIVER_IMAGE)
    })
}

/// Whether `sdf`'s UART1 is a guest's console: its serial driver serves a VMM
/// (`console-serial-driver.elf`, docs/vmm.md).
fn guest_console(sdf: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(sdf) else {
        return false;
    };
    let board = axolotl_kernel_config::BOARDS[0];
    axolotl_sdf::parse(&sdf.display().to_string(), &text, &board).is_ok_and(|sd| {
        sd.all_pds()
            .iter()
            .any(|pd| pd.program_image.path == CONSOLE_DRIVER_IMAGE)
    })
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

/// Whether this process holds the checkout's lock: a `flock` taken again through another
/// open of the file would wait for itself (a test run's short campaign builds its image
/// under the lock the run already holds).
static LOCK_HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The checkout's build lock, held until dropped (nothing when this process holds it already).
pub(crate) struct CheckoutLock(Option<std::fs::File>);

impl Drop for CheckoutLock {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            LOCK_HELD.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Holds the checkout's build lock: two `cargo xtask` commands at once (a `run` beside a
/// `test`) would otherwise rebuild the images the other is about to boot, and a test could boot
/// another variant's image. The second waits, saying so; the lock goes with the process.
pub(crate) fn lock_checkout() -> Result<CheckoutLock, String> {
    if LOCK_HELD.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(CheckoutLock(None));
    }
    let dir = images::target_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    lock_file(&dir.join("xtask.lock"))
}

/// [`lock_checkout`]'s lock on `path`: waits for whoever holds it.
fn lock_file(path: &std::path::Path) -> Result<CheckoutLock, String> {
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("xtask: another cargo xtask is building in this checkout: waiting for it");
            f.lock()
                .map_err(|e| format!("locking {}: {e}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("locking {}: {e}", path.display()));
        }
    }
    LOCK_HELD.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(CheckoutLock(Some(f)))
}

/// A fresh copy of the data disk (docs/guest.md) for a run: the guest may write to it, the
/// cached one stays as made. In target/, never in the repository's files.
fn gateway_disk() -> Result<std::path::PathBuf, String> {
    let a = axolotl_guest_artifacts::cached(&axolotl_guest_artifacts::default_cache_dir())
        .ok_or("no guest artifacts: run `cargo xtask setup`")?;
    let io = system::io_artifacts(&a)?;
    let out = images::images_dir().join("gateway-data.img");
    std::fs::copy(&io.disk, &out)
        .map_err(|e| format!("copying {} to {}: {e}", io.disk.display(), out.display()))?;
    Ok(out)
}

/// Prints `gateway: serving on http://127.0.0.1:PORT/` once the guest answers an HTTP
/// request there (a background thread, polling; it gives up silently after 30 minutes).
fn announce_http(port: u16) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1800);
        while std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_secs(2));
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
                continue;
            }
            let mut head = [0u8; 12];
            // QEMU accepts the connection before the guest listens: only an HTTP answer
            // counts.
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                // The console is in raw mode: end the line ourselves.
                eprint!("\r\ngateway: serving on http://127.0.0.1:{port}/\r\n");
                return;
            }
        }
    });
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    // Everything that builds images holds the lock; `run` lets go once its image is built.
    let mut lock = match cli.cmd {
        // A campaign boots its own copy of the image for hours: it holds the lock only
        // while it sets up and builds (campaign::build_image), so tests and builds in the
        // same checkout go on meanwhile.
        Cmd::Check { .. } | Cmd::Setup | Cmd::Ctl(_) | Cmd::Campaign(_) => None,
        _ => Some(lock_checkout()?),
    };
    match cli.cmd {
        Cmd::Ctl(args) => return Ok(ctl::main(args)),
        Cmd::Setup => {
            setup::ensure()?;
            println!("setup: everything is in place");
        }
        Cmd::Build {
            target,
            system,
            show_plan,
        } => {
            system::SHOW_PLAN.store(show_plan, std::sync::atomic::Ordering::Relaxed);
            let b = board(&target)?;
            setup::ensure_rust_targets()?;
            let img = images::build(&variant(b, system.as_deref())?)?;
            println!("image: {}", img.display());
        }
        Cmd::Image {
            target,
            system,
            out,
            bootloader,
        } => {
            let b = board(&target)?;
            sdcard::supported(&b, bootloader.as_deref())?;
            setup::ensure_rust_targets()?;
            let elf = images::build(&variant(b, Some(&system))?)?;
            let img = sdcard::write(&b, &elf, out.as_deref(), bootloader.as_deref())?;
            println!("image: {}", img.display());
        }
        Cmd::Flash {
            target,
            system,
            device,
            bootloader,
            force,
            yes,
            max_gib,
        } => {
            let b = board(&target)?;
            sdcard::supported(&b, bootloader.as_deref())?;
            let policy = flash::Policy {
                force,
                max_bytes: max_gib << 30,
            };
            // Refused before anything is built: a wrong device is the likely mistake.
            let dest = flash::check(&device, &policy, &flash::Host::real())?;
            setup::ensure_rust_targets()?;
            let elf = images::build(&variant(b, Some(&system))?)?;
            let img = sdcard::write(&b, &elf, None, bootloader.as_deref())?;
            drop(lock.take());
            let data = std::fs::read(&img).map_err(|e| format!("{}: {e}", img.display()))?;
            let stdin = std::io::stdin();
            let mut answer = stdin.lock();
            if !yes && !flash::confirm(&dest, &img, &mut answer, &mut std::io::stdout())? {
                return Err("not written".into());
            }
            flash::write(&dest, &data)?;
            println!(
                "flash: wrote and verified {} bytes on {}",
                data.len(),
                dest.path.display()
            );
        }
        Cmd::Run {
            target,
            cpu,
            system: sdf,
            show_plan,
            net_port,
            log_on_terminal,
        } => {
            system::SHOW_PLAN.store(show_plan, std::sync::atomic::Ordering::Relaxed);
            let b = board(&target)?;
            axolotl_qemu::emulated(&b)?;
            setup::ensure()?;
            let v = variant(b, Some(&sdf))?;
            let img = images::build(&v)?;
            let (net, blk) = system::io_devices_of(&sdf, &b)?;
            let disk = if blk { Some(gateway_disk()?) } else { None };
            drop(lock.take());
            // Wired to the kernel's console where the system left it (UART1 when the system
            // takes UART0): the system log on the terminal, the other UART the system's.
            let mut m = axolotl_qemu::Machine::new(v.kernel_board());
            m.cpu = Box::leak(cpu.into_boxed_str());
            m.disk = disk;
            if net {
                m.net = Some(axolotl_qemu::Net {
                    tcp_forwards: vec![(net_port, 80)],
                    ..Default::default()
                });
                announce_http(net_port);
            }
            if let Some(vcons) = control_transport(&sdf) {
                // UART1, or the virtio-console where UART1 is a guest's console, is the
                // control PD's line to the host (docs/control.md).
                let sock = ctl::default_socket();
                let _ = std::fs::remove_file(&sock);
                if vcons {
                    m.control_console(&sock);
                } else {
                    m.control_socket(&sock);
                }
                eprintln!(
                    "xtask: the control PD listens on {}: `cargo xtask ctl status` (or \
                     `--socket {}` from elsewhere)",
                    sock.display(),
                    sock.display()
                );
            }
            // The terminal set-up (keys to UART1, the console through its own chardev on
            // /dev/stdout) is for a terminal only: with output redirected to a file, that
            // chardev would open the file a second time and overwrite what the first wrote.
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
            if interactive && m.uart1.is_none() && !log_on_terminal && guest_console(&sdf) {
                // The terminal is the guest's serial line, byte for byte; the system log
                // would land in its prompt.
                let stem = sdf.file_stem().unwrap_or_default().to_string_lossy();
                let dir = images::target_dir().join("run");
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let log = dir.join(format!("{stem}.log"));
                eprintln!(
                    "xtask: the terminal is the guest's console (UART1); the system log (UART0) \
                     goes to {} (`--log-on-terminal` keeps it here)",
                    log.display()
                );
                m.log_file = Some(log);
            }
            let status = if interactive {
                eprintln!("xtask: booting {} (quit: Ctrl-A then X)", img.display());
                Command::new(axolotl_qemu::QEMU_AARCH64)
                    .args(m.args(&img, interactive))
                    .status()
                    .map_err(|e| format!("cannot start QEMU: {e}"))?
            } else {
                // Both UARTs merged a whole line at a time (the test harness's capture):
                // QEMU's own chardevs would open the file twice and overwrite each other.
                eprintln!(
                    "xtask: booting {} (output not a terminal: no input; UART0 and UART1 merged \
                     by lines)",
                    img.display()
                );
                let boot = axolotl_qemu::Boot::start(&m, &img).map_err(|f| f.to_string())?;
                boot.relay(&mut std::io::stdout().lock())
                    .map_err(|e| format!("relaying QEMU's output: {e}"))?
            };
            if !status.success() {
                return Err(format!("QEMU exited with {status}"));
            }
        }
        Cmd::Check { file, target } => {
            let b = board(&target)?;
            // The SDF's rules and the plan's, the root task's and the board's capacities:
            // everything `build` and the boot would refuse that the SDF alone shows.
            return Ok(match axolotl_boot_plan::limits::check_file(&file, &b) {
                Ok(mut checked) => {
                    let mut refused = system::vmm_gic_refusals(&mut checked);
                    refused.extend(system::region_size_refusals(&checked));
                    for w in checked.warnings.iter() {
                        eprintln!("{w}");
                    }
                    if !refused.is_empty() {
                        eprint!("{}", axolotl_sdf::Diagnostics::from(refused));
                        return Ok(ExitCode::from(1));
                    }
                    // The images that are there already (next to the SDF, or built before):
                    // one that `build` would refuse is refused here too.
                    let loaded = system::load_images(&file, &checked.system, false);
                    if !loaded.problems.is_empty() {
                        eprint!("{}", axolotl_sdf::Diagnostics::from(loaded.problems));
                        return Ok(ExitCode::from(1));
                    }
                    match checked
                        .board
                        .console_uart()
                        .filter(|u| u.base != b.uart_base)
                    {
                        Some(u) => println!(
                            "{}: ok (it takes the board's console UART: the kernel's log goes \
                             to {} at {:#x})",
                            file.display(),
                            u.name,
                            u.base
                        ),
                        None => println!("{}: ok", file.display()),
                    }
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
        Cmd::Bench { only } => return bench::run(&only),
        Cmd::Campaign(a) => {
            let held = lock_checkout()?;
            setup::ensure()?;
            drop(held);
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

#[cfg(test)]
mod tests {
    use super::{Cli, Cmd, Target, board, control_transport};
    use clap::{CommandFactory, Parser};
    use std::path::PathBuf;

    /// The SDF path of a parsed command line.
    fn sdf_of(args: &[&str]) -> PathBuf {
        let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.cmd {
            Cmd::Check { file, .. } => file,
            Cmd::Build { system, .. } => system.expect("--system given"),
            Cmd::Image { system, .. } | Cmd::Flash { system, .. } | Cmd::Run { system, .. } => {
                system
            }
            _ => panic!("{args:?}: no SDF"),
        }
    }

    /// Issue #19: `run --system` resolved paths against the workspace root, `check` and
    /// `build` against the current directory. One rule now, in clap's parser of the path:
    /// as given when it exists there, else in the workspace root, else as given.
    #[test]
    fn every_command_finds_its_sdf_by_one_rule() {
        // Tests run in xtask/: `systems/hello.system` is only in the workspace root,
        // `src/main.rs` only here.
        let root = crate::images::workspace_root();
        let commands: [&[&str]; 6] = [
            &["xtask", "check"],
            &["xtask", "build", "--system"],
            &["xtask", "run", "--system"],
            &["xtask", "image", "--system"],
            &["xtask", "flash", "--device", "/dev/null", "--system"],
            &["xtask", "check", "--board", "rpi4b"],
        ];
        for (path, want) in [
            ("systems/hello.system", root.join("systems/hello.system")),
            ("src/main.rs", PathBuf::from("src/main.rs")),
            ("no/such.system", PathBuf::from("no/such.system")),
        ] {
            for c in commands {
                let mut args = c.to_vec();
                args.push(path);
                assert_eq!(sdf_of(&args), want, "{args:?}");
            }
        }
        assert_eq!(
            sdf_of(&["xtask", "run"]),
            root.join("systems/hello.system"),
            "run's default"
        );
    }

    /// Two `cargo xtask` commands in one checkout take turns (issue #19: a test booted the
    /// image another command had just rebuilt): while one holds the lock, another's attempt
    /// would block; once it is gone, the next takes it.
    #[test]
    fn the_build_lock_is_held_until_dropped() {
        let path = std::env::temp_dir().join(format!("axolotl-lock-{}", std::process::id()));
        let held = super::lock_file(&path).unwrap();
        let other = std::fs::File::open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    /// An unknown board is refused with the list of boards, which `--help` gives too;
    /// Microkit's spelling of a board is understood.
    #[test]
    fn an_unknown_board_lists_the_boards() {
        let target = |name: &str, gic| Target {
            board: name.into(),
            gic,
        };
        let e = board(&target("qemu-virt", None)).unwrap_err();
        let help = Cli::command()
            .find_subcommand_mut("build")
            .unwrap()
            .render_long_help()
            .to_string();
        for b in axolotl_kernel_config::BOARDS {
            assert!(e.contains(b.name), "{e}");
            assert!(help.contains(b.name), "{help}");
        }
        assert!(
            e.starts_with("no board \"qemu-virt\"; the boards are: "),
            "{e}"
        );
        let b = board(&target("qemu_virt_aarch64", Some(2))).unwrap();
        assert_eq!((b.name, b.gic.version().number()), ("qemu-virt-aarch64", 2));
        assert!(board(&target("rpi4b", Some(3))).is_err());
    }

    #[test]
    fn the_control_socket_goes_where_the_system_s_control_driver_is() {
        let root = crate::images::workspace_root();
        for (sdf, want) in [
            ("tests/systems/control-gateway-gicv3.system", Some(true)),
            ("tests/systems/control-echo-gicv3.system", Some(true)),
            ("systems/control.system", Some(false)),
            ("tests/systems/control-net.system", Some(false)),
            ("systems/gateway.system", None),
            ("systems/hello.system", None),
        ] {
            assert_eq!(control_transport(&root.join(sdf)), want, "{sdf}");
        }
    }
}
