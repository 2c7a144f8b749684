//! `--system FILE`: validating an SDF, building the PD programs it names, turning both into a
//! boot plan and packing plan and images for the root task to carry.

use std::fs;
use std::path::{Path, PathBuf};

use axolotl_boot_plan::{ElfInfo, pack};
use axolotl_kernel_config::Board;

use crate::images::{self, cargo_build_many};

/// Packages whose binaries are program images (`program_image path="<bin>.elf"`).
pub const PD_PACKAGES: &[&str] = &[
    "axolotl-monitor-pd",
    "axolotl-example-hello",
    // resilient-echo: serial-driver, echo-client-a, echo-client-b.
    "axolotl-driver-pd",
    // PDs that fail on purpose; only test systems (tests/systems) name them.
    "axolotl-test-pds",
    // linux-vm: the VMM, carrying the Debian guest.
    "axolotl-vmm-pd",
];
/// The monitor's program, added to every system.
pub const MONITOR_IMAGE: &str = "monitor-pd.elf";
pub const PD_TARGET: &str = "aarch64-unknown-none";

/// Print the whole PD/region table of each system packed (`--show-plan`), not one line.
pub static SHOW_PLAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A packed system, ready to go into a root task.
pub struct Packed {
    /// Names the image: see [`image_name`].
    pub name: String,
    pub pack: PathBuf,
}

/// Finds a program image the way Microkit's tool searches: next to the SDF first, then among
/// the PD programs this workspace builds (`<bin>.elf` is cargo's `<bin>`).
fn find_image(sdf_dir: &Path, path: &str) -> Option<PathBuf> {
    let beside = sdf_dir.join(path);
    if beside.is_file() {
        return Some(beside);
    }
    let bin = path.strip_suffix(".elf").unwrap_or(path);
    let built = images::target_dir()
        .join(PD_TARGET)
        .join("release")
        .join(bin);
    built.is_file().then_some(built)
}

/// Test systems (under `tests/systems/`) get the monitor built with its fault-injection
/// hook; no other system does.
pub fn is_test_system(sdf_path: &Path) -> bool {
    let tests = images::workspace_root().join("tests").join("systems");
    std::fs::canonicalize(sdf_path)
        .ok()
        .zip(std::fs::canonicalize(tests).ok())
        .is_some_and(|(f, t)| f.starts_with(t))
}

/// What PD programs learn at build time, as Microkit's are built per board: the board's GIC
/// (the VMM emulates the same one for its guest) and the guest the VMM carries, from the
/// cache `cargo xtask setup` fills (docs/guest.md). Without the cache the VMM is built empty
/// and says so when started.
fn pd_build_env(board: &Board, initrd: Option<&Path>) -> Vec<(&'static str, String)> {
    let mut env = vec![(
        "AXOLOTL_BOARD_GIC",
        board.gic.version().number().to_string(),
    )];
    if let Some(a) = axolotl_guest_artifacts::cached(&axolotl_guest_artifacts::default_cache_dir())
    {
        let initrd = initrd.unwrap_or(&a.initramfs);
        env.push(("AXOLOTL_GUEST_KERNEL", a.image.display().to_string()));
        env.push(("AXOLOTL_GUEST_INITRD", initrd.display().to_string()));
    }
    env
}

pub fn pack(sdf_path: &Path, board: &Board) -> Result<Packed, String> {
    pack_with_initrd(sdf_path, board, None)
}

/// [`pack`], the VMM carrying `initrd` instead of the default initramfs (benchmarks).
pub fn pack_with_initrd(
    sdf_path: &Path,
    board: &Board,
    initrd: Option<&Path>,
) -> Result<Packed, String> {
    // The diagnostics go out as they are (FILE:LINE:COL: ...), not inside xtask's own
    // "error:" line: one prefix per line.
    let checked = axolotl_boot_plan::limits::check_file(sdf_path, board).map_err(|d| {
        eprint!("{d}");
        let n = d.errors().count();
        format!(
            "{} is refused ({n} error{})",
            sdf_path.display(),
            if n == 1 { "" } else { "s" }
        )
    })?;
    for w in checked.warnings.iter() {
        eprintln!("{w}");
    }
    let sd = checked.system;
    let features: &[&str] = if is_test_system(sdf_path) {
        &[
            "axolotl-monitor-pd/fault-injection",
            "axolotl-vmm-pd/test-guest",
            "axolotl-vmm-pd/fault-injection",
        ]
    } else {
        &[]
    };
    cargo_build_many(
        PD_PACKAGES,
        PD_TARGET,
        features,
        &pd_build_env(board, initrd),
    )?;

    let dir = sdf_path.parent().unwrap_or(Path::new("."));
    let mut infos = Vec::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut missing = Vec::new();
    for pd in sd.all_pds() {
        let path = pd.program_image.path.clone();
        if files.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let Some(file) = find_image(dir, &path) else {
            missing.push(format!(
                "{}: program image {path:?} of PD {:?} not found next to the SDF nor built by \
                 any of {PD_PACKAGES:?}",
                sdf_path.display(),
                pd.name
            ));
            continue;
        };
        let bytes = fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        infos.push(ElfInfo::from_bytes(&path, &bytes).map_err(|e| e.to_string())?);
        files.push((path, bytes));
    }
    if !missing.is_empty() {
        return Err(missing.join("\n"));
    }
    let monitor_file = find_image(dir, MONITOR_IMAGE)
        .ok_or_else(|| format!("the monitor's program {MONITOR_IMAGE} was not built"))?;
    let monitor_bytes =
        fs::read(&monitor_file).map_err(|e| format!("{}: {e}", monitor_file.display()))?;
    let monitor = ElfInfo::from_bytes(MONITOR_IMAGE, &monitor_bytes).map_err(|e| e.to_string())?;
    files.push((MONITOR_IMAGE.to_string(), monitor_bytes));
    // Prefill bytes go in the pack beside the images; the plan carries each one's length,
    // so a file changed since the check is refused here rather than half-copied at boot.
    for mr in &sd.memory_regions {
        let Some(p) = &mr.prefill else { continue };
        let bytes = fs::read(&p.file).map_err(|e| format!("{}: {e}", p.file))?;
        if bytes.len() as u64 != p.len {
            return Err(format!(
                "{}: prefill file of region {:?} changed while building ({} bytes, was {})",
                p.file,
                mr.name,
                bytes.len(),
                p.len
            ));
        }
        files.push((pack::prefill_name(&mr.name), bytes));
    }
    // The pack holds every image and the plan (at most `PLAN_SIZE_LIMIT`), in the kernel
    // image: RAM the root task never gets.
    let pack_bytes = files.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
        + axolotl_boot_plan::PLAN_SIZE_LIMIT as u64;
    let plan = axolotl_boot_plan::build_for_board(&sd, &infos, &monitor, board, pack_bytes)
        .map_err(|errs| {
            errs.iter()
                .map(|e| match e {
                    axolotl_boot_plan::BuildError::Sdf(d) => d.to_string(),
                    e => format!("{}: error: {e}", sdf_path.display()),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    if SHOW_PLAN.load(std::sync::atomic::Ordering::Relaxed) {
        println!("{}", plan.summary());
    } else {
        println!(
            "{}: {} PDs, {} memory regions, {} channels, {} vCPUs (--show-plan for the table)",
            sdf_path.display(),
            plan.pds.len(),
            plan.regions.len(),
            plan.channels.len(),
            plan.vcpus.len()
        );
    }

    let mut buf = vec![0u8; axolotl_boot_plan::PLAN_SIZE_LIMIT];
    let encoded = axolotl_boot_plan::encode(&plan, &mut buf).map_err(|e| e.to_string())?;
    let images: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let blob = pack::write(encoded, &images);

    let name = image_name(sdf_path);
    let out_dir = images::images_dir();
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.pack"));
    fs::write(&out, &blob).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(Packed { name, pack: out })
}

/// The SDF's file stem for the checkout's own `systems/` and `tests/systems/` (the names the
/// docs and tests use); any other file gets a hash of its full path added, so that two
/// `hello.system` files in different directories do not overwrite each other's image.
pub fn image_name(sdf_path: &Path) -> String {
    let stem = sdf_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("system")
        .to_string();
    let full = fs::canonicalize(sdf_path).unwrap_or_else(|_| sdf_path.to_path_buf());
    let root = images::workspace_root();
    let ours = [root.join("systems"), root.join("tests").join("systems")]
        .iter()
        .filter_map(|d| fs::canonicalize(d).ok())
        .any(|d| full.parent() == Some(d.as_path()));
    if ours {
        return stem;
    }
    // FNV-1a: stable across runs and Rust versions, unlike std's DefaultHasher.
    let hash = full
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{stem}-{:08x}", hash as u32)
}
