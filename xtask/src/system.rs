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
    // systems/control.system: the management plane (docs/control.md).
    "axolotl-control-pd",
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
    /// The board the system was checked and planned for: the kernel's console where the
    /// system leaves it (`axolotl_sdf::console`), which the kernel is built for and QEMU is
    /// wired to. Boxed: a `Variant` carries it, and image job lists hold many variants.
    pub board: Box<Board>,
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
fn pd_build_env(
    board: &Board,
    initrd: Option<&Path>,
    io: bool,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut env = vec![(
        "AXOLOTL_BOARD_GIC",
        board.gic.version().number().to_string(),
    )];
    if let Some(a) = axolotl_guest_artifacts::cached(&axolotl_guest_artifacts::default_cache_dir())
    {
        let io_initrd = if io && initrd.is_none() {
            Some(io_artifacts(&a)?.initramfs)
        } else {
            None
        };
        let initrd = initrd.or(io_initrd.as_deref()).unwrap_or(&a.initramfs);
        env.push(("AXOLOTL_GUEST_KERNEL", a.image.display().to_string()));
        env.push(("AXOLOTL_GUEST_INITRD", initrd.display().to_string()));
    }
    Ok(env)
}

/// The I/O guest's initramfs and data disk (docs/guest.md), built into the guest cache.
pub fn io_artifacts(
    a: &axolotl_guest_artifacts::GuestArtifacts,
) -> Result<axolotl_guest_artifacts::IoArtifacts, String> {
    axolotl_guest_artifacts::ensure_io(a, &images::target_dir().join("guest-tools"), &mut |l| {
        eprintln!("xtask: {l}")
    })
    .map_err(|e| e.to_string())
}

/// The VMM's symbols that connect its guest's virtio devices (vmm-pd/src/pd.rs).
const VMM_IMAGE: &str = "vmm-pd.elf";
const VMM_NET_SYMBOL: &str = "net_rings";
const VMM_BLK_SYMBOL: &str = "blk_rings";

/// Which virtio devices the system's VMM gives its guest: `(net, blk)`. The rule for the I/O
/// guest (docs/guest.md, "Which guest a VMM carries"), visible in the SDF: a `vmm-pd.elf`
/// PD that maps a region with `setvar_vaddr="net_rings"` has a NIC, one with
/// `setvar_vaddr="blk_rings"` a disk; a system whose VMM has either carries the I/O guest
/// (its virtio modules, httpd and the disk check) instead of the console guest, and xtask
/// attaches QEMU's NIC and data disk when it runs it.
pub fn io_devices(sd: &axolotl_sdf::SystemDescription) -> (bool, bool) {
    let maps = |sym: &str| {
        sd.all_pds().iter().any(|pd| {
            pd.program_image.path == VMM_IMAGE
                && pd
                    .maps
                    .iter()
                    .any(|m| m.setvar_vaddr.as_deref() == Some(sym))
        })
    };
    (maps(VMM_NET_SYMBOL), maps(VMM_BLK_SYMBOL))
}

/// [`io_devices`] of the SDF at `sdf_path`.
pub fn io_devices_of(sdf_path: &Path, board: &Board) -> Result<(bool, bool), String> {
    let checked = axolotl_boot_plan::limits::check_file(sdf_path, board)
        .map_err(|d| format!("{} is refused:\n{d}", sdf_path.display()))?;
    Ok(io_devices(&checked.system))
}

/// The `vm-gic` warnings that are certain failures, turned into errors and taken out of
/// `checked.warnings`: the virtual machine's PD runs axolotl's VMM (`vmm-pd.elf`), which
/// gives its guest the board's GIC, so on a GICv2 board without the GICV frame mapped the
/// guest kernel panics probing its GIC at boot (issue #19: the GICv3 linux-vm file built with
/// `--gic 2` built, booted and ended so). Another VMM's guest may never touch its GIC
/// (tests/systems/vm-exits.system): that stays a warning. `check` and `build` both refuse.
pub fn vmm_gic_refusals(checked: &mut axolotl_sdf::Checked) -> Vec<axolotl_sdf::Diagnostic> {
    let ours: Vec<axolotl_sdf::Span> = checked
        .system
        .all_pds()
        .iter()
        .filter(|pd| pd.program_image.path == VMM_IMAGE)
        .filter_map(|pd| pd.virtual_machine.as_ref().map(|vm| vm.span))
        .collect();
    let (refused, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut checked.warnings.0)
        .into_iter()
        .partition(|w| w.rule == "vm-gic" && ours.contains(&w.span()));
    checked.warnings.0 = kept;
    refused
        .into_iter()
        .map(|w| axolotl_sdf::Diagnostic {
            severity: axolotl_sdf::Severity::Error,
            message: format!(
                "{} (its PD runs {VMM_IMAGE}, whose guest uses the board's GIC: without it the \
                 guest kernel panics at boot)",
                w.message
            ),
            ..w
        })
        .collect()
}

/// The bytes each of axolotl's I/O PD images uses of a region it finds through a setvar:
/// its links' buffers by id, its DMA carved to the end (lib/net `link`, lib/blk `layout`,
/// driver-pd). A smaller region maps and boots, and the PD faults past its end at run
/// time, over and over across restarts.
fn region_needs(image: &str) -> &'static [(&'static str, usize)] {
    use axolotl_blk::layout as blk;
    use axolotl_net::link::{DATA_BYTES, RINGS_BYTES};
    const NET_CLIENT: &[(&str, usize)] = &[("net_rings", RINGS_BYTES), ("net_data", DATA_BYTES)];
    const VMM: &[(&str, usize)] = &[
        (VMM_NET_SYMBOL, RINGS_BYTES),
        ("net_data", DATA_BYTES),
        (VMM_BLK_SYMBOL, blk::RINGS_BYTES),
        ("blk_data", blk::DATA_BYTES),
    ];
    const NET_DRIVER: &[(&str, usize)] = &[
        ("virt_rings", RINGS_BYTES),
        ("virt_data", DATA_BYTES),
        ("dma_vaddr", axolotl_driver_pd::NET_DMA_BYTES),
    ];
    const NET_VIRT: &[(&str, usize)] = &[
        ("driver_rings", RINGS_BYTES),
        ("driver_data", DATA_BYTES),
        ("client0_rings", RINGS_BYTES),
        ("client0_data", DATA_BYTES),
        ("client1_rings", RINGS_BYTES),
        ("client1_data", DATA_BYTES),
    ];
    const BLK_DRIVER: &[(&str, usize)] = &[
        ("blk_client_rings", blk::RINGS_BYTES),
        ("blk_client_data", blk::DATA_BYTES),
        ("blk_dma", blk::DMA_BYTES),
    ];
    const BLK_CLIENT: &[(&str, usize)] = &[
        ("blk_rings", blk::RINGS_BYTES),
        ("blk_data", blk::DATA_BYTES),
    ];
    match image {
        VMM_IMAGE => VMM,
        "net-echo-a.elf" | "net-echo-b.elf" => NET_CLIENT,
        "net-driver.elf" | "restarting-net-driver.elf" => NET_DRIVER,
        "net-virt.elf"
        | "crashing-net-virt.elf"
        | "deaf-net-virt.elf"
        | "misreading-net-virt.elf" => NET_VIRT,
        "blk-driver.elf" | "crashing-blk-driver.elf" => BLK_DRIVER,
        "blk-pattern-client.elf" => BLK_CLIENT,
        _ => &[],
    }
}

/// A map of one of axolotl's I/O PDs whose region is smaller than the image uses
/// ([`region_needs`]): an error at the map (`region-size`), for `check` and `build`.
pub fn region_size_refusals(checked: &axolotl_sdf::Checked) -> Vec<axolotl_sdf::Diagnostic> {
    let sd = &checked.system;
    let mut out = Vec::new();
    for pd in sd.all_pds() {
        let image = pd.program_image.path.as_str();
        for m in &pd.maps {
            let Some(sym) = m.setvar_vaddr.as_deref() else {
                continue;
            };
            let Some(&(_, need)) = region_needs(image).iter().find(|(s, _)| *s == sym) else {
                continue;
            };
            let Some(mr) = sd.memory_regions.iter().find(|r| r.name == m.mr) else {
                continue;
            };
            if mr.size < need as u64 {
                out.push(axolotl_sdf::Diagnostic::error(
                    &sd.file,
                    m.span,
                    "region-size",
                    format!(
                        "memory region `{}` is {:#x} bytes, but `{}` runs {image}, which uses \
                         {need:#x} bytes of the region it finds in `{sym}` (it would fault past \
                         the region's end at run time)",
                        m.mr, mr.size, pd.name
                    ),
                ));
            }
        }
    }
    out
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
    let mut checked = checked;
    let mut refused = vmm_gic_refusals(&mut checked);
    refused.extend(region_size_refusals(&checked));
    for w in checked.warnings.iter() {
        eprintln!("{w}");
    }
    if !refused.is_empty() {
        let n = refused.len();
        eprint!("{}", axolotl_sdf::Diagnostics::from(refused));
        return Err(format!(
            "{} is refused ({n} error{})",
            sdf_path.display(),
            if n == 1 { "" } else { "s" }
        ));
    }
    let sd = checked.system;
    if let Some(u) = checked
        .board
        .console_uart()
        .filter(|u| u.base != board.uart_base)
    {
        eprintln!(
            "xtask: {} takes the board's console UART: the kernel's log goes to {} ({:#x})",
            sdf_path.display(),
            u.name,
            u.base
        );
    }
    // From here on, the board the check chose: its console where the system leaves it.
    let board = &checked.board;
    let (net, blk) = io_devices(&sd);
    let campaign = sdf_path
        .file_stem()
        .is_some_and(|s| s.to_string_lossy().starts_with("campaign-"));
    let features: &[&str] = if is_test_system(sdf_path) && campaign {
        // A campaign measures the product's code: no test-only failure points in the PDs
        // it injects into (control-pd's crash on its fifth request would read as a
        // detected failure of every in-system campaign's first boot). The monitor's hooks
        // act only on PDs named for them; the VMM's test guest is the shell the in-system
        // workload types into.
        &[
            "axolotl-monitor-pd/fault-injection",
            "axolotl-vmm-pd/test-guest",
        ]
    } else if is_test_system(sdf_path) {
        &[
            "axolotl-monitor-pd/fault-injection",
            "axolotl-control-pd/fault-injection",
            "axolotl-vmm-pd/test-guest",
            "axolotl-vmm-pd/fault-injection",
        ]
    } else {
        &[]
    };
    // A benchmark's split of a transfer by PD (docs/benchmarks.md): the monitor prints every
    // PD's CPU time at each round.
    let mut features = features.to_vec();
    if std::env::var("AXOLOTL_MONITOR_CPU_ROUNDS").is_ok_and(|v| v == "1") {
        features.push("axolotl-monitor-pd/cpu-rounds");
    }
    cargo_build_many(
        PD_PACKAGES,
        PD_TARGET,
        &features,
        &pd_build_env(board, initrd, net || blk)?,
    )?;

    let loaded = load_images(sdf_path, &sd, true);
    if !loaded.problems.is_empty() {
        let n = loaded.problems.len();
        eprint!("{}", axolotl_sdf::Diagnostics::from(loaded.problems));
        return Err(format!(
            "{} is refused ({n} program image{} unusable)",
            sdf_path.display(),
            if n == 1 { "" } else { "s" }
        ));
    }
    let (infos, mut files) = (loaded.infos, loaded.files);
    let dir = sdf_path.parent().unwrap_or(Path::new("."));
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
    println!(
        "{}",
        plan_report(
            sdf_path,
            &plan,
            SHOW_PLAN.load(std::sync::atomic::Ordering::Relaxed)
        )
    );

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
    Ok(Packed {
        name,
        pack: out,
        board: Box::new(*board),
    })
}

/// What `build` and `run` say of the plan: one line, or with `--show-plan` the whole table of
/// PDs, regions and channels (issue #19: every run printed the table).
fn plan_report(sdf_path: &Path, plan: &axolotl_boot_plan::BootPlan, show_plan: bool) -> String {
    if show_plan {
        return plan.summary();
    }
    format!(
        "{}: {} PDs, {} memory regions, {} channels, {} vCPUs (--show-plan for the table)",
        sdf_path.display(),
        plan.pds.len(),
        plan.regions.len(),
        plan.channels.len(),
        plan.vcpus.len()
    )
}

/// The program images of a system's PDs, read and parsed once per distinct path.
pub struct Loaded {
    pub infos: Vec<ElfInfo>,
    pub files: Vec<(String, Vec<u8>)>,
    /// One error per image that cannot be used, at its `program_image` element.
    pub problems: Vec<axolotl_sdf::Diagnostic>,
    /// Images not found (only counted when `missing_is_error` was false).
    pub not_found: usize,
}

/// Reads every PD's program image (next to the SDF, then among this workspace's built PD
/// programs) and parses it as the plan builder will. Every problem is reported, each at the
/// PD's `program_image` with the PD, the path as written and the file it resolved to.
/// `missing_is_error`: `build` has built every workspace program first, so an image not
/// found is an error; `check` builds nothing and only counts it.
pub fn load_images(
    sdf_path: &Path,
    sd: &axolotl_sdf::SystemDescription,
    missing_is_error: bool,
) -> Loaded {
    let dir = sdf_path.parent().unwrap_or(Path::new("."));
    let file_name = sdf_path.display().to_string();
    let mut out = Loaded {
        infos: Vec::new(),
        files: Vec::new(),
        problems: Vec::new(),
        not_found: 0,
    };
    let mut seen: Vec<&str> = Vec::new();
    for pd in sd.all_pds() {
        let path = pd.program_image.path.as_str();
        if seen.contains(&path) {
            continue;
        }
        seen.push(path);
        let err = |message: String| {
            axolotl_sdf::Diagnostic::error(&file_name, pd.program_image.span, "image-elf", message)
        };
        let Some(file) = find_image(dir, path) else {
            if missing_is_error {
                out.problems.push(err(format!(
                    "program image {path:?} of PD {:?} not found next to the SDF ({}) nor \
                     built by any of {PD_PACKAGES:?}",
                    pd.name,
                    dir.display()
                )));
            } else {
                out.not_found += 1;
            }
            continue;
        };
        let parsed = fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                ElfInfo::from_bytes(path, &bytes)
                    .map(|info| (info, bytes))
                    .map_err(|e| format!("not a usable ELF file: {e}"))
            });
        match parsed {
            Ok((info, bytes)) => {
                out.infos.push(info);
                out.files.push((path.to_string(), bytes));
            }
            Err(e) => out.problems.push(err(format!(
                "program image {path:?} of PD {:?} ({}): {e}",
                pd.name,
                file.display()
            ))),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::{image_name, load_images, plan_report, region_size_refusals, vmm_gic_refusals};
    use std::path::Path;

    /// Issue #19: every run and build printed the whole PD/region/channel table. One line
    /// now; the table with `--show-plan`.
    #[test]
    fn the_plan_is_one_line_unless_asked_for() {
        let mut plan = axolotl_boot_plan::BootPlan::default();
        for _ in 0..2 {
            plan.pds.push(Default::default()).unwrap();
        }
        let line = plan_report(Path::new("s/x.system"), &plan, false);
        assert_eq!(
            line,
            "s/x.system: 2 PDs, 0 memory regions, 0 channels, 0 vCPUs (--show-plan for the table)"
        );
        let table = plan_report(Path::new("s/x.system"), &plan, true);
        assert_eq!(table, plan.summary());
        assert!(table.lines().count() > 2, "{table}");
    }

    /// Issue #19: images were named after the SDF's file name only, so two `hello.system`
    /// files overwrote each other's image. The checkout's own systems keep their stem (the
    /// names the docs and tests use); any other file gets its full path's hash too.
    #[test]
    fn same_named_systems_elsewhere_get_their_own_images() {
        let root = crate::images::workspace_root();
        assert_eq!(image_name(&root.join("systems/hello.system")), "hello");
        assert_eq!(
            image_name(&root.join("tests/systems/restart.system")),
            "restart"
        );
        let base = std::env::temp_dir().join(format!("axolotl-names-{}", std::process::id()));
        let (a, b) = (base.join("a/hello.system"), base.join("b/hello.system"));
        for f in [&a, &b] {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, "<system />").unwrap();
        }
        let (na, nb) = (image_name(&a), image_name(&b));
        assert!(
            na.starts_with("hello-") && nb.starts_with("hello-"),
            "{na} {nb}"
        );
        assert_ne!(na, nb);
        // Stable: the same file gets the same name, however it is reached.
        assert_eq!(image_name(&base.join("a/../a/hello.system")), na);
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Issue #19: the GICv3 linux-vm file built with `--gic 2` booted into a guest kernel
    /// panic. Axolotl's VMM without the GICV frame is refused on GICv2 (`check` and `build`),
    /// accepted on GICv3; another VMM keeps the warning.
    #[test]
    fn axolotl_s_vmm_without_gicv_is_refused_on_gicv2() {
        use axolotl_kernel_config::{GicVersion, board_by_name};
        let file = crate::images::workspace_root().join("tests/systems/linux-vm-gicv3.system");
        let check = |gic| {
            let b = board_by_name("qemu-virt-aarch64", Some(gic)).unwrap();
            let mut c = axolotl_boot_plan::limits::check_file(&file, &b).unwrap();
            let refused = vmm_gic_refusals(&mut c);
            (c, refused)
        };
        let (c, refused) = check(GicVersion::V2);
        let shown: Vec<String> = refused.iter().map(|d| d.to_string()).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains(
                "linux-vm-gicv3.system:35:9: error: virtual machine `linux` runs on a GICv2 board"
            ) && shown[0].contains("--gic 3")
                && shown[0].contains("vmm-pd.elf")
                && shown[0].ends_with("[vm-gic]"),
            "{shown:?}"
        );
        assert!(
            !c.warnings.iter().any(|w| w.rule == "vm-gic"),
            "{}",
            c.warnings
        );
        let (_, refused) = check(GicVersion::V3);
        assert!(refused.is_empty());

        let other = "<system>\
            <memory_region name=\"ram\" size=\"0x200000\" page_size=\"0x200000\" />\
            <protection_domain name=\"vmm\"><program_image path=\"tiny-vmm.elf\" />\
            <virtual_machine name=\"g\"><vcpu id=\"0\" />\
            <map mr=\"ram\" vaddr=\"0x40000000\" perms=\"rwx\" /></virtual_machine>\
            </protection_domain></system>";
        let b = board_by_name("qemu-virt-aarch64", Some(GicVersion::V2)).unwrap();
        let mut c = axolotl_sdf::check("o.system", other, &b).unwrap();
        assert!(vmm_gic_refusals(&mut c).is_empty());
        assert!(c.warnings.iter().any(|w| w.rule == "vm-gic"));
    }

    /// The gateway's net links grew from 64 KiB to 256 KiB of buffers: a system file with
    /// the old sizes checked and booted, and its I/O PDs faulted past the regions' ends. Each
    /// map of a region smaller than its PD's image uses is refused at the map.
    #[test]
    fn io_regions_smaller_than_their_pds_use_are_refused_at_each_map() {
        let file = crate::images::workspace_root().join("systems/gateway.system");
        let text = std::fs::read_to_string(&file).unwrap();
        let board = axolotl_kernel_config::board_by_name("qemu-virt-aarch64", None).unwrap();
        let c = axolotl_sdf::check("g.system", &text, &board).unwrap();
        assert!(region_size_refusals(&c).is_empty());

        let small = text
            .replace(
                r#"name="virt_data" size="0x40000""#,
                r#"name="virt_data" size="0x10000""#,
            )
            .replace(
                r#"name="net_dma" size="0x80000""#,
                r#"name="net_dma" size="0x40000""#,
            );
        assert_ne!(small, text);
        let c = axolotl_sdf::check("g.system", &small, &board).unwrap();
        let line_of = |needle: &str| {
            1 + text
                .lines()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle}"))
        };
        let mut got: Vec<(u32, &str)> = region_size_refusals(&c)
            .iter()
            .map(|d| (d.line, d.rule))
            .collect();
        got.sort();
        let want = [
            r#"mr="net_dma" vaddr="0x2100000""#,
            r#"mr="virt_data" vaddr="0x2210000""#,
            r#"mr="virt_data" vaddr="0x2010000""#,
        ];
        let mut want: Vec<(u32, &str)> = want
            .iter()
            .map(|n| (line_of(n) as u32, "region-size"))
            .collect();
        want.sort();
        assert_eq!(got, want);
        let shown = region_size_refusals(&c)[0].to_string();
        assert!(
            shown.starts_with("g.system:") && shown.contains("net-driver.elf"),
            "{shown}"
        );
    }

    /// An SDF beside a file that is not an ELF and naming an image that is nowhere: each is
    /// an error at its PD's `program_image`, naming the PD and the file (`check` and `build`).
    #[test]
    fn unusable_images_are_reported_each_at_its_program_image() {
        let dir = std::env::temp_dir().join(format!("axolotl-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.elf"), b"garbage").unwrap();
        let sdf = dir.join("two.system");
        let text = "<system>\n\
            <protection_domain name=\"a\" priority=\"100\">\n  <program_image path=\"bad.elf\" />\n</protection_domain>\n\
            <protection_domain name=\"b\" priority=\"90\">\n  <program_image path=\"nowhere.elf\" />\n</protection_domain>\n\
            </system>\n";
        std::fs::write(&sdf, text).unwrap();
        let board = axolotl_kernel_config::board_by_name("qemu-virt-aarch64", None).unwrap();
        let sd = axolotl_sdf::parse(&sdf.display().to_string(), text, &board).unwrap();

        let built = load_images(&sdf, &sd, true);
        let msgs: Vec<String> = built.problems.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("two.system:3:3: error: program image \"bad.elf\" of PD \"a\"")
                && msgs[0].contains("not a usable ELF file")
                && msgs[0].ends_with("[image-elf]"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].contains(
                "two.system:6:3: error: program image \"nowhere.elf\" of PD \"b\" not found"
            ),
            "{msgs:?}"
        );

        // `check` builds nothing: a missing image is only counted, a bad one still refused.
        let checked = load_images(&sdf, &sd, false);
        assert_eq!((checked.problems.len(), checked.not_found), (1, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
