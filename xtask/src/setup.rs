//! `cargo xtask setup`: installs what the build and the tests need, and says clearly what
//! to do by hand when it cannot.

use std::fs;
use std::path::Path;
use std::process::Command;

use axolotl_qemu::{MIN_QEMU_MAJOR, qemu_version};

/// Targets from rust-toolchain.toml: PDs use FP, the kernel never does.
const RUST_TARGETS: [&str; 2] = ["aarch64-unknown-none", "aarch64-unknown-none-softfloat"];
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/axolotl-bookworm-backports.sources";
/// Debian keeps the Pi's boot firmware in its `non-free-firmware` component, which a minimal
/// bookworm's sources may lack.
const NON_FREE_FIRMWARE_LIST: &str =
    "/etc/apt/sources.list.d/axolotl-bookworm-non-free-firmware.sources";

pub fn ensure() -> Result<(), String> {
    ensure_rust_targets()?;
    ensure_qemu()?;
    ensure_e2fsprogs()?;
    ensure_guest_artifacts()?;
    ensure_raspi_firmware()
}

/// The Raspberry Pi 4's boot firmware for `cargo xtask image --board rpi4b`: Debian's
/// `raspi-firmware` package at its pinned version, downloaded (never installed: its hooks
/// write to /boot/firmware) and extracted into a cache outside the repository.
fn ensure_raspi_firmware() -> Result<(), String> {
    use axolotl_board_image::rpi4;
    if rpi4::cached_firmware().is_some() {
        return Ok(());
    }
    let dir = rpi4::firmware_cache_dir();
    let spec = format!("{}={}", rpi4::FIRMWARE_PACKAGE, rpi4::FIRMWARE_VERSION);
    let by_hand = format!(
        "fetch it by hand: `apt-get download {spec}` (bookworm's non-free-firmware component),          then `dpkg-deb -x raspi-firmware_*.deb {}`",
        dir.display()
    );
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!("the Pi firmware needs apt-get: {by_hand}"));
    }
    if !apt_knows(&spec) {
        if !is_root() {
            return Err(format!(
                "apt does not know {spec} and adding its component needs root: {by_hand}"
            ));
        }
        if os_codename().as_deref() == Some("bookworm") && !suite_configured("non-free-firmware") {
            eprintln!(
                "setup: adding Debian's non-free-firmware component ({NON_FREE_FIRMWARE_LIST})"
            );
            fs::write(
                NON_FREE_FIRMWARE_LIST,
                "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\
                 Components: non-free-firmware\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            )
            .map_err(|e| format!("writing {NON_FREE_FIRMWARE_LIST}: {e}; {by_hand}"))?;
        }
        apt(&["update", "-q"])?;
    }
    let debs = dir.join("debs");
    fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!(
        "setup: fetching the Pi firmware ({spec}) into {}",
        dir.display()
    );
    run(Command::new("apt-get")
        .args(["download", "-q", &spec])
        .current_dir(&debs))
    .map_err(|e| format!("{e}; {by_hand}"))?;
    let deb = fs::read_dir(&debs)
        .map_err(|e| format!("{}: {e}", debs.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download left no .deb in {}", debs.display()))?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    rpi4::cached_firmware().map(|_| ()).ok_or_else(|| {
        format!(
            "{} has no {:?}; {by_hand}",
            deb.display(),
            rpi4::FIRMWARE_FILES
        )
    })
}

/// Whether apt can fetch `package=version` with the lists it has.
fn apt_knows(spec: &str) -> bool {
    let (package, version) = spec.split_once('=').unwrap_or((spec, ""));
    Command::new("apt-cache")
        .args(["madison", package])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split('|').nth(1).is_some_and(|v| v.trim() == version))
        })
}

/// The unmodified Debian arm64 kernel and busybox the Linux guest tests boot, fetched with
/// apt into a cache outside the repository, and the I/O guest's initramfs and data disk
/// made from them (see docs/guest.md).
fn ensure_guest_artifacts() -> Result<(), String> {
    let dir = axolotl_guest_artifacts::default_cache_dir();
    let log = &mut |line: &str| eprintln!("setup: {line}");
    let a = match axolotl_guest_artifacts::cached(&dir) {
        Some(a) => a,
        None => {
            eprintln!(
                "setup: fetching the Debian arm64 guest kernel and busybox into {}",
                dir.display()
            );
            axolotl_guest_artifacts::ensure(&dir, log)
                .map_err(|e| format!("guest artifacts: {e}"))?
        }
    };
    axolotl_guest_artifacts::ensure_io(&a, &crate::images::target_dir().join("guest-tools"), log)
        .map(|_| ())
        .map_err(|e| format!("I/O guest artifacts: {e}"))
}

/// mke2fs and debugfs make the I/O guest's data disk.
fn ensure_e2fsprogs() -> Result<(), String> {
    let has = |tool: &str| Command::new(tool).arg("-V").output().is_ok();
    if has("mke2fs") && has("debugfs") {
        return Ok(());
    }
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(
            "the data disk needs mke2fs and debugfs: install e2fsprogs (as root: `apt-get install e2fsprogs`)"
                .into(),
        );
    }
    apt(&["update", "-q"])?;
    apt(&install_args(None, "e2fsprogs"))
}

pub fn ensure_rust_targets() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| {
            format!("rustup is needed to add the bare-metal targets ({e}); install rustup")
        })?;
    let installed = String::from_utf8_lossy(&out.stdout).into_owned();
    let missing: Vec<&str> = RUST_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: adding rust targets {}", missing.join(" "));
    run(Command::new("rustup")
        .args(["target", "add"])
        .args(&missing))
}

fn ensure_qemu() -> Result<(), String> {
    match qemu_version() {
        Some((major, _)) if major >= MIN_QEMU_MAJOR => return Ok(()),
        Some((major, minor)) => {
            eprintln!("setup: QEMU {major}.{minor} is too old (need >= {MIN_QEMU_MAJOR})")
        }
        None => eprintln!("setup: qemu-system-aarch64 not found"),
    }
    let by_hand = "install QEMU >= 9 by hand: on Debian 12 as root, add the bookworm-backports suite and run \
                   `apt-get install -t bookworm-backports qemu-system-arm`";
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "cannot install QEMU (needs root and apt-get): {by_hand}"
        ));
    }
    let codename = os_codename();
    if codename.as_deref() == Some("bookworm") {
        if !backports_configured() {
            eprintln!("setup: adding the bookworm-backports apt suite ({BACKPORTS_LIST})");
            fs::write(
                BACKPORTS_LIST,
                "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            )
            .map_err(|e| format!("writing {BACKPORTS_LIST}: {e}; {by_hand}"))?;
        }
        apt(&["update", "-q"])?;
        apt(&install_args(Some("bookworm-backports"), "qemu-system-arm"))?;
    } else {
        apt(&["update", "-q"])?;
        apt(&install_args(None, "qemu-system-arm"))?;
    }
    match qemu_version() {
        Some((major, _)) if major >= MIN_QEMU_MAJOR => Ok(()),
        _ => Err(format!(
            "QEMU is still missing or older than {MIN_QEMU_MAJOR} after installing; {by_hand}"
        )),
    }
}

/// `apt-get install` of one package and what it depends on, nothing it merely recommends:
/// qemu-system-arm recommends ~200 GUI, audio, SPICE and firmware packages (qemu-system-gui,
/// ipxe, EDK2) that a headless host booting ELF images on virtio-mmio never uses.
fn install_args<'a>(suite: Option<&'a str>, package: &'a str) -> Vec<&'a str> {
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    if let Some(suite) = suite {
        args.extend(["-t", suite]);
    }
    args.push(package);
    args
}

fn apt(args: &[&str]) -> Result<(), String> {
    eprintln!("setup: apt-get {}", args.join(" "));
    run(Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{cmd:?} failed: {status}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn os_codename() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
}

fn backports_configured() -> bool {
    suite_configured("bookworm-backports")
}

/// Whether an enabled apt source line mentions `word` (a suite or a component).
fn suite_configured(word: &str) -> bool {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources")),
        );
    }
    files.iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains(word))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::install_args;

    #[test]
    fn installs_never_pull_recommended_packages() {
        for args in [
            install_args(None, "e2fsprogs"),
            install_args(Some("bookworm-backports"), "qemu-system-arm"),
        ] {
            assert_eq!(args[0], "install");
            assert!(args.contains(&"--no-install-recommends"), "{args:?}");
        }
        assert_eq!(
            install_args(Some("bookworm-backports"), "qemu-system-arm")[4..],
            ["-t", "bookworm-backports", "qemu-system-arm"]
        );
    }
}
