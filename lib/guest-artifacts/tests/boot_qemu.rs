//! Boots the cached Debian kernel + our initramfs on bare QEMU: once with QEMU's
//! own DTB as a reference, then with DTBs from axolotl-fdt laid out by
//! axolotl-linux-boot. Skips (and says why) when artifacts or QEMU are missing;
//! run `cargo run -p axolotl-guest-artifacts --example fetch` to get them.

use std::path::{Path, PathBuf};
use std::process::Command;

use axolotl_fdt::{Gic, GuestFdt, Region};
use axolotl_guest_artifacts::{
    GuestArtifacts, USERSPACE_MARKER, build_cntvct, build_initramfs, build_initramfs_with, cached,
    default_cache_dir, init_script,
};

const RAM_BASE: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 1 << 30;
/// Host seconds; a TCG boot takes ~8 s here.
const TIMEOUT_S: &str = "180";

/// Scratch directory removed on drop, also when an assertion fails.
struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn setup(test: &str) -> Option<(GuestArtifacts, TmpDir)> {
    let Some(a) = cached(&default_cache_dir()) else {
        println!(
            "skipped {test}: no guest artifacts in {} (cargo run -p axolotl-guest-artifacts --example fetch)",
            default_cache_dir().display()
        );
        return None;
    };
    if Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped {test}: qemu-system-aarch64 not installed");
        return None;
    }
    let tmp = std::env::temp_dir().join(format!("axolotl-boot-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    Some((a, TmpDir(tmp)))
}

/// One QEMU at a time: the machines have two cores and TCG is CPU-bound.
static QEMU_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs QEMU to completion (the guest powers off) and returns the console output.
fn qemu(gic_version: u32, extra: &[&str]) -> String {
    qemu_with(&format!("virt,gic-version={gic_version}"), extra)
}

fn qemu_with(machine: &str, extra: &[&str]) -> String {
    let _one_at_a_time = QEMU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("timeout")
        .args([
            TIMEOUT_S,
            "qemu-system-aarch64",
            "-M",
            machine,
            "-cpu",
            "cortex-a72",
            "-m",
            "1G",
            "-nographic",
            "-no-reboot",
            // No default NIC: it needs a boot ROM from a package setup does not install.
            "-nic",
            "none",
        ])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running qemu");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "qemu {}: {}\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    log
}

/// Lines after the marker (which must be there).
fn userspace_lines(log: &str) -> Vec<&str> {
    let at = log
        .find(USERSPACE_MARKER)
        .unwrap_or_else(|| panic!("no {USERSPACE_MARKER} in console output:\n{log}"));
    log[at..].lines().skip(1).map(str::trim).collect()
}

#[test]
fn reference_boot_with_qemu_dtb() {
    let Some((a, _tmp)) = setup("reference") else {
        return;
    };
    let log = qemu(
        3,
        &[
            "-kernel",
            path(&a.image),
            "-initrd",
            path(&a.initramfs),
            "-append",
            r#"console=ttyAMA0 axolotl_cmd="uname -r; poweroff -f""#,
        ],
    );
    let lines = userspace_lines(&log);
    assert!(
        lines.contains(&a.kernel_version.as_str()),
        "no `uname -r` = {} after marker:\n{log}",
        a.kernel_version
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Our DTB carries bootargs and the initrd range; QEMU gets no -append/-initrd,
/// the initramfs is placed by a generic loader where linux-boot says.
fn boot_with_our_dtb(test: &str, gic_version: u32, gic: Gic) {
    let Some((a, tmp)) = setup(test) else {
        return;
    };
    let initrd = tmp.join("initramfs.cpio");
    build_initramfs(
        &a.busybox,
        &init_script(
            "uname -r\necho CMDLINE=$(cat /proc/cmdline)\necho COMPAT=$(cat /proc/device-tree/compatible)\npoweroff -f",
        ),
        &initrd,
    )
    .unwrap();
    let image = std::fs::read(&a.image).unwrap();
    let header = axolotl_linux_boot::parse_image_header(&image).unwrap();
    let initrd_size = std::fs::metadata(&initrd).unwrap().len();
    let ram = axolotl_linux_boot::Range {
        addr: RAM_BASE,
        size: RAM_SIZE,
    };
    // Size the DTB slot generously; the real size is known only after writing.
    let layout =
        axolotl_linux_boot::plan_layout(ram, &header, 0x1_0000, Some(initrd_size)).expect("layout");
    let ird = layout.initrd.unwrap();
    // QEMU puts its copy of the DTB at RAM + 128 MiB when there's no -initrd.
    assert!(ird.end() <= RAM_BASE + (128 << 20));

    let mem = [Region::new(RAM_BASE, RAM_SIZE)];
    let bootargs = "console=ttyAMA0 rdinit=/init";
    let mut cfg = GuestFdt::qemu_virt(&mem, 1);
    cfg.compatible = "axolotl,test-vm";
    cfg.gic = gic;
    cfg.bootargs = Some(bootargs);
    cfg.initrd = Some((ird.addr, ird.end()));
    let mut dtb = vec![0u8; 0x1_0000];
    let n = cfg.write(&mut dtb).unwrap();
    let dtb_path = tmp.join("guest.dtb");
    std::fs::write(&dtb_path, &dtb[..n]).unwrap();

    let loader = format!(
        "loader,file={},addr={:#x},force-raw=on",
        path(&initrd),
        ird.addr
    );
    let log = qemu(
        gic_version,
        &[
            "-kernel",
            path(&a.image),
            "-dtb",
            path(&dtb_path),
            "-device",
            &loader,
        ],
    );
    if std::env::var_os("AXOLOTL_SHOW_CONSOLE").is_some() {
        println!("{log}");
    }
    let lines = userspace_lines(&log);
    assert!(lines.contains(&a.kernel_version.as_str()), "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CMDLINE=") && l.contains(bootargs)),
        "bootargs not from our DTB:\n{log}"
    );
    assert!(
        lines.contains(&"COMPAT=axolotl,test-vm"),
        "root compatible not from our DTB:\n{log}"
    );
}

#[test]
fn boots_with_our_dtb_gicv3() {
    boot_with_our_dtb("dtb-gicv3", 3, Gic::qemu_virt_v3(1));
}

#[test]
fn boots_with_our_dtb_gicv2() {
    boot_with_our_dtb("dtb-gicv2", 2, Gic::qemu_virt_v2());
}

/// Boot-to-marker time in virtual ns under `-icount shift=0` (one ns per guest
/// instruction, so independent of host speed): a tiny static program run right
/// after the marker prints CNTVCT_EL0, which counts QEMU's virtual clock from
/// reset, so the pre-timer part of early boot is included too.
#[test]
fn icount_boot_to_marker_time() {
    let Some((a, tmp)) = setup("icount") else {
        return;
    };
    let Ok(elf) = build_cntvct(&tmp.join("target")) else {
        println!("skipped icount: can't build tools/cntvct for aarch64-unknown-none");
        return;
    };
    let initrd = tmp.join("initramfs.cpio");
    build_initramfs_with(
        &a.busybox,
        &init_script("/bin/cntvct\npoweroff -f"),
        &[("bin/cntvct", &elf)],
        &initrd,
    )
    .unwrap();
    let log = qemu_with(
        "virt,gic-version=3",
        &[
            "-icount",
            "shift=0",
            "-kernel",
            path(&a.image),
            "-initrd",
            path(&initrd),
            "-append",
            "console=ttyAMA0",
        ],
    );
    let ns: u64 = userspace_lines(&log)
        .iter()
        .find_map(|l| l.strip_prefix("CNTVCT_NS="))
        .unwrap_or_else(|| panic!("no CNTVCT_NS after marker:\n{log}"))
        .parse()
        .unwrap();
    println!("bare QEMU, -icount shift=0: userspace marker at {ns} virtual ns");
    // Sanity bounds only; the number itself is what docs/guest.md reports.
    assert!((100_000_000..10_000_000_000).contains(&ns), "{ns}");
}
