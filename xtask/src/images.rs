//! Building bootable images: the root task, then the kernel with the root task packed in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use axolotl_kernel_config::{Board, BootFormat};

/// One image to build: a board variant plus, for tests, a root-task self-check or another
/// program in the root task's place.
pub struct Variant {
    pub board: Board,
    pub selftest: Option<&'static str>,
    /// The package booted as the root task.
    pub root_task: &'static str,
    /// A system packed into the root task (`--system`).
    pub system: Option<crate::system::Packed>,
    /// Invocations of the kernel suite's randomized stress (`AXOLOTL_STRESS_ITERATIONS` at
    /// its build); `None` leaves the suite's default (or the caller's environment).
    pub stress_iterations: Option<u64>,
    /// Kernel cargo features of this image (named in it), beyond those of
    /// `AXOLOTL_KERNEL_FEATURES`, which every kernel xtask builds gets.
    pub kernel_features: &'static [&'static str],
}

pub const ROOT_TASK: &str = "axolotl-root-task";
pub const KERNEL_SUITE: &str = "axolotl-kernel-suite";

impl Variant {
    pub fn new(board: Board, selftest: Option<&'static str>) -> Self {
        Variant {
            board,
            selftest,
            root_task: ROOT_TASK,
            system: None,
            stress_iterations: None,
            kernel_features: &[],
        }
    }

    pub fn kernel_suite(board: Board) -> Self {
        Variant {
            board,
            selftest: None,
            root_task: KERNEL_SUITE,
            system: None,
            stress_iterations: None,
            kernel_features: &[],
        }
    }

    /// The board the kernel is built for: the packed system's (its console moved off a UART
    /// the system takes), else [`Variant::board`].
    pub fn kernel_board(&self) -> Board {
        self.system.as_ref().map_or(self.board, |s| *s.board)
    }

    pub fn name(&self) -> String {
        let mut n = format!(
            "{}-gic{}",
            self.board.name,
            self.board.gic.version().number()
        );
        if let Some(s) = self.selftest {
            n.push_str("-selftest-");
            n.push_str(s);
        }
        if let Some(s) = &self.system {
            n.push('-');
            n.push_str(&s.name);
        }
        if self.root_task == KERNEL_SUITE {
            n.push_str("-kernel-suite");
        }
        for f in self.kernel_features {
            n.push('-');
            n.push_str(f);
        }
        n
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn images_dir() -> PathBuf {
    target_dir().join("images")
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds every binary of `packages` for `target` (release) in one cargo run.
pub fn cargo_build_many(
    packages: &[&str],
    target: &str,
    features: &[&str],
    env: &[(&str, String)],
) -> Result<(), String> {
    let mut cmd = cargo();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["build", "--release", "-q", "--target", target]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {packages:?} for {target} failed"));
    }
    Ok(())
}

fn cargo_build(
    package: &str,
    target: &str,
    features: &[String],
    env: &[(&str, String)],
) -> Result<PathBuf, String> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-q",
        "-p",
        package,
        "--target",
        target,
    ]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {package} for {target} failed"));
    }
    Ok(target_dir().join(target).join("release").join(package))
}

/// The kernel's cargo features for `v`: its own and those `AXOLOTL_KERNEL_FEATURES` asks for
/// (comma or space separated, e.g. `user-error`, which says on the console why each refused
/// invocation was refused: docs/abi.md).
fn kernel_features(v: &Variant) -> Vec<String> {
    let asked = std::env::var("AXOLOTL_KERNEL_FEATURES").unwrap_or_default();
    let mut f: Vec<String> = v.kernel_features.iter().map(|s| s.to_string()).collect();
    for a in asked.split([',', ' ']).filter(|a| !a.is_empty()) {
        if !f.iter().any(|x| x == a) {
            f.push(a.to_string());
        }
    }
    f
}

/// Builds the image for `v` and returns its path under target/images.
pub fn build(v: &Variant) -> Result<PathBuf, String> {
    let dir = images_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = v.name();
    let features: Vec<String> = v.selftest.iter().map(|s| format!("selftest-{s}")).collect();
    let pack = v
        .system
        .as_ref()
        .map(|s| s.pack.display().to_string())
        .unwrap_or_default();
    let mut root_env = vec![("AXOLOTL_SYSTEM_PACK", pack)];
    if let Some(n) = v.stress_iterations {
        root_env.push(("AXOLOTL_STRESS_ITERATIONS", n.to_string()));
    }
    let root = cargo_build(v.root_task, "aarch64-unknown-none", &features, &root_env)?;
    let root_copy = dir.join(format!("{name}.root-task.elf"));
    fs::copy(&root, &root_copy).map_err(|e| format!("copying {}: {e}", root.display()))?;
    let kb = v.kernel_board();
    let moved = (kb.uart_base != v.board.uart_base)
        .then(|| kb.console_uart())
        .flatten();
    let kernel = cargo_build(
        "axolotl-kernel",
        "aarch64-unknown-none-softfloat",
        &kernel_features(v),
        &[
            ("AXOLOTL_BOARD", v.board.name.to_string()),
            ("AXOLOTL_GIC", v.board.gic.version().number().to_string()),
            ("AXOLOTL_ROOT_TASK_ELF", root_copy.display().to_string()),
            (
                "AXOLOTL_CONSOLE",
                moved.map(|u| format!("{:#x}", u.base)).unwrap_or_default(),
            ),
            // Said at boot (`kernel: image <name>`): a test checks it booted this image.
            ("AXOLOTL_IMAGE", name.clone()),
        ],
    )?;
    let out = dir.join(format!("{name}.elf"));
    fs::copy(&kernel, &out).map_err(|e| format!("copying {}: {e}", kernel.display()))?;
    // Beside the image, where its kernel console is when not on the board's own UART: the
    // test harness boots QEMU wired to it (`console_file`).
    let side = console_file(&out);
    match moved {
        Some(u) => fs::write(&side, format!("{} {:#x}\n", u.name, u.base))
            .map_err(|e| format!("{}: {e}", side.display()))?,
        None => {
            let _ = fs::remove_file(&side);
        }
    }
    if v.board.boot_format == BootFormat::Raw {
        // Beside the ELF (which debuggers read), the flat binary the board's boot chain
        // loads: `raw_image` names it.
        let elf = fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let flat = axolotl_board_image::flat_binary(&elf, v.board.kernel_load)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        let raw = raw_image(&out);
        fs::write(&raw, flat).map_err(|e| format!("{}: {e}", raw.display()))?;
    }
    Ok(out)
}

/// The file beside an image's ELF that names the UART its kernel console is on (`UART1
/// 0x9040000`), present only when that is not the board's default.
pub fn console_file(elf: &Path) -> PathBuf {
    elf.with_extension("console")
}

/// The flat binary beside an image's ELF, for boards that boot one (`BootFormat::Raw`).
pub fn raw_image(elf: &Path) -> PathBuf {
    elf.with_extension("img")
}
