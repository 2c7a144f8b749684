//! Host-side guest artifacts for booting Linux under axolotl: Debian bookworm's
//! arm64 kernel (as a raw `Image`), its upstream DTBs, and a busybox initramfs
//! built here in Rust. Everything lives in a cache directory outside the repo.
//!
//! Cache layout (`<cache>` is [`default_cache_dir`] unless given):
//! ```text
//! <cache>/<package version>/debs/*.deb      downloaded packages
//! <cache>/<package version>/kernel/         linux-image package, extracted
//! <cache>/<package version>/busybox/        busybox-static package, extracted
//! <cache>/<package version>/Image           raw arm64 Image
//! <cache>/<package version>/initramfs.cpio  default initramfs (uncompressed newc)
//! <cache>/<package version>/complete        stamp: all of the above is done
//! <cache>/<package version>/initramfs-io.cpio  the I/O guest's initramfs ([`ensure_io`])
//! <cache>/<package version>/data-disk.img      its data disk ([`disk`])
//! ```

mod cpio;
pub mod disk;
mod image;
pub mod io;
pub mod modules;
pub mod pattern;

pub use cpio::CpioWriter;
pub use image::{ImageFormat, detect_format, extract_image};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The one pinned kernel package.
///
/// To bump: `dpkg --add-architecture arm64 && apt-get update`, then
/// `apt-cache show linux-image-arm64:arm64`; take the bookworm (not -backports)
/// `Version:` and the ABI from its `Depends: linux-image-<ABI>-arm64`, and put both
/// here. `ensure` says which version is available when the pinned one is gone.
pub const PINNED_KERNEL: PinnedKernel = PinnedKernel {
    abi: "6.1.0-56",
    version: "6.1.192-2",
};

/// A Debian `linux-image-<abi>-arm64` package at an exact version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedKernel {
    /// ABI part of the package name, e.g. `6.1.0-56`.
    pub abi: &'static str,
    /// Exact Debian package version.
    pub version: &'static str,
}

impl PinnedKernel {
    /// `linux-image-<abi>-arm64`.
    pub fn package(&self) -> String {
        format!("linux-image-{}-arm64", self.abi)
    }

    /// What `uname -r` prints in the guest.
    pub fn uname_r(&self) -> String {
        format!("{}-arm64", self.abi)
    }
}

/// Marker `/init` prints once userspace runs.
pub const USERSPACE_MARKER: &str = "AXOLOTL-GUEST-USERSPACE-UP";

/// Everything a boot needs, all inside the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestArtifacts {
    /// Root of this version's cache.
    pub dir: PathBuf,
    /// Raw arm64 `Image` (header magic at 0x38).
    pub image: PathBuf,
    /// Default initramfs (uncompressed newc cpio) with [`default_init`].
    pub initramfs: PathBuf,
    /// Static arm64 busybox, for building other initramfs images.
    pub busybox: PathBuf,
    /// `uname -r` of the kernel, e.g. `6.1.0-56-arm64`.
    pub kernel_version: String,
    /// Debian package version, e.g. `6.1.192-2`.
    pub package_version: String,
    /// Upstream DTBs: `usr/lib/linux-image-<uname -r>/` (vendor/board.dtb).
    pub dtb_dir: PathBuf,
}

impl GuestArtifacts {
    /// The kernel package's modules: `lib/modules/<uname -r>`.
    pub fn modules_dir(&self) -> PathBuf {
        self.dir
            .join("kernel/lib/modules")
            .join(&self.kernel_version)
    }
}

/// Failures, each with a message that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Prerequisite(String),
    #[error(
        "pinned kernel {package}={version} is no longer downloadable; available: {available}; bump PINNED_KERNEL in lib/guest-artifacts/src/lib.rs (see docs/guest.md)"
    )]
    PinnedUnavailable {
        package: String,
        version: &'static str,
        available: String,
    },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad kernel image {path}: {why}")]
    BadImage { path: PathBuf, why: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// `$AXOLOTL_GUEST_CACHE`, else `$XDG_CACHE_HOME/axolotl/guest`, else
/// `~/.cache/axolotl/guest`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("AXOLOTL_GUEST_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("axolotl/guest")
}

fn artifacts_in(dir: &Path) -> GuestArtifacts {
    let k = PINNED_KERNEL;
    GuestArtifacts {
        dir: dir.to_path_buf(),
        image: dir.join("Image"),
        initramfs: dir.join("initramfs.cpio"),
        busybox: dir.join("busybox/bin/busybox"),
        kernel_version: k.uname_r(),
        package_version: k.version.to_string(),
        dtb_dir: dir.join(format!("kernel/usr/lib/linux-image-{}", k.uname_r())),
    }
}

/// The artifacts for [`PINNED_KERNEL`] if a previous [`ensure`] completed; never
/// touches apt. Tests use this to skip when nothing is cached.
pub fn cached(cache_dir: &Path) -> Option<GuestArtifacts> {
    let a = artifacts_in(&cache_dir.join(PINNED_KERNEL.version));
    let ok = a.dir.join("complete").is_file()
        && a.image.is_file()
        && a.initramfs.is_file()
        && a.busybox.is_file();
    ok.then_some(a)
}

/// Makes sure the pinned kernel, busybox, `Image` and default initramfs are in
/// `cache_dir`, downloading with apt only what is missing. Once complete it never
/// runs apt again. Root is needed only to add the arm64 architecture or to run
/// `apt-get update` when no arm64 package lists exist; downloads and extraction
/// work as any user. Errors are one line saying what to do.
pub fn ensure(cache_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<GuestArtifacts, Error> {
    if let Some(a) = cached(cache_dir) {
        log(&format!("guest artifacts cached in {}", a.dir.display()));
        return Ok(a);
    }
    let k = PINNED_KERNEL;
    let a = artifacts_in(&cache_dir.join(k.version));
    check_tools()?;

    let foreign = run(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if !String::from_utf8_lossy(&foreign.stdout)
        .lines()
        .any(|l| l.trim() == "arm64")
    {
        require_root("`dpkg --add-architecture arm64`")?;
        log("dpkg --add-architecture arm64");
        run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    }
    if !arm64_lists_present() {
        require_root("`apt-get update` (no arm64 package lists yet)")?;
        log("apt-get update (no arm64 package lists yet)");
        run(Command::new("apt-get").args(["update", "-q"]))?;
    }

    let debs = a.dir.join("debs");
    fs::create_dir_all(&debs).map_err(io_err(format!("creating {}", debs.display())))?;
    let kernel_spec = format!("{}:arm64={}", k.package(), k.version);
    log(&format!(
        "apt-get download {kernel_spec} busybox-static:arm64"
    ));
    if apt_download(&debs, &kernel_spec).is_err() {
        // Lists may just be stale; one refresh (root only) before declaring the pin dead.
        let refreshed = require_root("").is_ok() && {
            log("download failed; apt-get update and retry");
            run(Command::new("apt-get").args(["update", "-q"]))?;
            true
        };
        if !refreshed || apt_download(&debs, &kernel_spec).is_err() {
            return Err(Error::PinnedUnavailable {
                package: k.package(),
                version: k.version,
                available: available_kernels(),
            });
        }
    }
    apt_download(&debs, "busybox-static:arm64")?;

    let kernel_deb = find_deb(&debs, &format!("{}_", k.package()))?;
    let busybox_deb = find_deb(&debs, "busybox-static_")?;
    for (deb, into) in [(&kernel_deb, "kernel"), (&busybox_deb, "busybox")] {
        let dest = a.dir.join(into);
        log(&format!("dpkg-deb -x {} {}", deb.display(), dest.display()));
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dest))?;
    }

    let vmlinuz = a.dir.join(format!("kernel/boot/vmlinuz-{}", k.uname_r()));
    let raw = fs::read(&vmlinuz).map_err(io_err(format!("reading {}", vmlinuz.display())))?;
    log(&format!("{}: {:?}", vmlinuz.display(), detect_format(&raw)));
    let image = extract_image(&raw).map_err(|why| Error::BadImage {
        path: vmlinuz.clone(),
        why,
    })?;
    axolotl_linux_boot::parse_image_header(&image).map_err(|e| Error::BadImage {
        path: vmlinuz.clone(),
        why: format!("{e:?}"),
    })?;
    write_atomic(&a.image, &image)?;

    log(&format!("building {}", a.initramfs.display()));
    build_initramfs(&a.busybox, &default_init(), &a.initramfs)?;
    write_atomic(
        &a.dir.join("complete"),
        format!("{kernel_spec}\n{}\n", busybox_deb.display()).as_bytes(),
    )?;
    log(&format!("guest artifacts ready in {}", a.dir.display()));
    Ok(a)
}

/// Tools must exist; root is needed only to add the architecture or refresh lists.
fn check_tools() -> Result<(), Error> {
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(has("apt-get") && has("apt-cache") && has("dpkg") && has("dpkg-deb")) {
        return Err(Error::Prerequisite(
            "guest artifacts need Debian's apt-get, apt-cache, dpkg and dpkg-deb on the host: install apt and dpkg (a Debian/Ubuntu host), or copy a finished cache from one".into(),
        ));
    }
    Ok(())
}

fn require_root(step: &str) -> Result<(), Error> {
    let is_root = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false);
    if !is_root {
        return Err(Error::Prerequisite(format!(
            "guest artifacts need {step}, which needs root: run `sudo dpkg --add-architecture arm64 && sudo apt-get update` once, then re-run"
        )));
    }
    Ok(())
}

fn arm64_lists_present() -> bool {
    fs::read_dir("/var/lib/apt/lists").is_ok_and(|d| {
        d.filter_map(|e| e.ok()).any(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("_binary-arm64_Packages")
        })
    })
}

fn apt_download(dir: &Path, spec: &str) -> Result<Output, Error> {
    // Sandbox user root: _apt can't write into an arbitrary cache dir.
    run(Command::new("apt-get").current_dir(dir).args([
        "-q",
        "-o",
        "APT::Sandbox::User=root",
        "download",
        spec,
    ]))
}

/// `version (package)` pairs apt offers for `linux-image-arm64:arm64`.
fn available_kernels() -> String {
    let Ok(out) = Command::new("apt-cache")
        .args(["show", "linux-image-arm64:arm64"])
        .output()
    else {
        return "unknown (apt-cache failed)".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        if let (Some(v), Some(d)) = (field("Version:"), field("Depends:")) {
            let dep = d.split_whitespace().next().unwrap_or("").to_string();
            found.push(format!("{v} ({dep})"));
        }
    }
    if found.is_empty() {
        "none found by `apt-cache show linux-image-arm64:arm64`".into()
    } else {
        found.join(", ")
    }
}

fn find_deb(dir: &Path, prefix: &str) -> Result<PathBuf, Error> {
    fs::read_dir(dir)
        .map_err(io_err(format!("listing {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with("_arm64.deb"))
        })
        .ok_or_else(|| Error::Prerequisite(format!("no {prefix}*_arm64.deb in {}", dir.display())))
}

fn run(cmd: &mut Command) -> Result<Output, Error> {
    let desc = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(io_err(format!("running {desc}")))?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: desc,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).map_err(io_err(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("renaming to {}", path.display())))
}

/// Applets linked in the initramfs up front; `/init` installs the rest itself.
const APPLETS: &[&str] = &[
    "sh", "mount", "umount", "echo", "cat", "ls", "mkdir", "uname", "dmesg", "setsid", "cttyhack",
    "poweroff", "reboot", "sleep", "ps",
];

/// The `/init` script: mounts, prints [`USERSPACE_MARKER`], runs `commands`, then
/// whatever the kernel command line passes as `axolotl_cmd="..."` (unknown
/// `key=value` parameters reach init as environment variables), then a shell.
pub fn init_script(commands: &str) -> String {
    format!(
        r#"#!/bin/sh
# axolotl guest /init (generated by axolotl-guest-artifacts)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
echo {USERSPACE_MARKER}
{commands}
if [ -n "$axolotl_cmd" ]; then eval "$axolotl_cmd"; fi
exec setsid cttyhack sh
"#
    )
}

/// [`init_script`] with no baked-in commands.
pub fn default_init() -> String {
    init_script("")
}

/// Writes an initramfs with `busybox` as `/bin/busybox`, `init_script` as `/init`.
///
/// Uncompressed newc: every kernel unpacks it with no decompressor configured,
/// the output is reproducible without a compression dependency, and at ~2 MB
/// copying it into guest RAM costs less than inflating it under emulation.
pub fn build_initramfs(busybox: &Path, init_script: &str, out: &Path) -> Result<(), Error> {
    build_initramfs_with(busybox, init_script, &[], out)
}

/// [`build_initramfs`] plus extra executable files, `(path without leading '/', bytes)`,
/// whose parent directories must be among the standard ones (`bin`, `sbin`, `usr/bin`, ...).
pub fn build_initramfs_with(
    busybox: &Path,
    init_script: &str,
    extra: &[(&str, &[u8])],
    out: &Path,
) -> Result<(), Error> {
    build_initramfs_tree(busybox, init_script, &[], extra, out)
}

/// [`build_initramfs_with`] plus directories of its own (`dirs`, parents first), created
/// after the standard ones and before `extra`. With no `dirs` the archive is byte for byte
/// what [`build_initramfs_with`] always wrote.
pub fn build_initramfs_tree(
    busybox: &Path,
    init_script: &str,
    dirs: &[&str],
    extra: &[(&str, &[u8])],
    out: &Path,
) -> Result<(), Error> {
    let bb = fs::read(busybox).map_err(io_err(format!("reading {}", busybox.display())))?;
    let mut w = CpioWriter::new();
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc", "root",
    ] {
        w.dir(d, if d == "tmp" { 0o1777 } else { 0o755 });
    }
    // The kernel opens /dev/console for init's stdio before devtmpfs exists.
    w.char_dev("dev/console", 0o600, 5, 1);
    w.file("bin/busybox", 0o755, &bb);
    for a in APPLETS {
        w.symlink(&format!("bin/{a}"), "busybox");
    }
    w.file("init", 0o755, init_script.as_bytes());
    for d in dirs {
        w.dir(d.trim_start_matches('/'), 0o755);
    }
    for (path, data) in extra {
        w.file(path.trim_start_matches('/'), 0o755, data);
    }
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    write_atomic(out, &w.finish())
}

/// Builds `tools/cntvct` (a static arm64 Linux program printing `CNTVCT_NS=<virtual clock in
/// ns>`, for boot-time measurements under `-icount`) into `target_dir` and returns the ELF.
pub fn build_cntvct(target_dir: &Path) -> Result<Vec<u8>, Error> {
    build_guest_tool("cntvct", target_dir)
}

/// Builds `tools/<name>` (package `axolotl-<name>`, a static arm64 Linux program with a
/// workspace of its own) for aarch64-unknown-none into `target_dir` and returns the ELF.
pub fn build_guest_tool(name: &str, target_dir: &Path) -> Result<Vec<u8>, Error> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tools/{name}/Cargo.toml"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args([
            "build",
            "-q",
            "--release",
            "--target",
            "aarch64-unknown-none",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .map_err(io_err(format!("running {cargo}")))?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: format!("cargo build --manifest-path {}", manifest.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let elf = target_dir.join(format!("aarch64-unknown-none/release/axolotl-{name}"));
    fs::read(&elf).map_err(io_err(format!("reading {}", elf.display())))
}

/// The I/O guest's artifacts in the cache (see [`ensure_io`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoArtifacts {
    /// `initramfs-io.cpio`: [`io::build_io_initramfs`] with no extra commands.
    pub initramfs: PathBuf,
    /// `data-disk.img`: [`disk::make_data_disk`]. Shared: a run that writes to the disk (the
    /// disk check, benchmarks) works on a copy or an image of its own.
    pub disk: PathBuf,
}

/// Builds the I/O guest's initramfs and data disk into the cache of `a` (tools built in
/// `tools_target`). The initramfs is rebuilt on every call and written only when it changed
/// (it follows the code); the disk when missing or made by an older layout.
pub fn ensure_io(
    a: &GuestArtifacts,
    tools_target: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<IoArtifacts, Error> {
    let io = IoArtifacts {
        initramfs: a.dir.join("initramfs-io.cpio"),
        disk: a.dir.join("data-disk.img"),
    };
    let tools = io::GuestTools::build(tools_target)?;
    // Per process: two setups may run at once.
    let fresh = a
        .dir
        .join(format!("initramfs-io.cpio.{}.new", std::process::id()));
    io::build_io_initramfs(a, &tools, "", &fresh)?;
    let new = fs::read(&fresh).map_err(io_err(format!("reading {}", fresh.display())))?;
    if fs::read(&io.initramfs).ok().as_ref() != Some(&new) {
        log(&format!("built {}", io.initramfs.display()));
        fs::rename(&fresh, &io.initramfs)
            .map_err(io_err(format!("renaming to {}", io.initramfs.display())))?;
    } else {
        let _ = fs::remove_file(&fresh);
    }
    let stamp = a.dir.join("data-disk.layout");
    let layout = disk::layout_description();
    if !io.disk.is_file() || fs::read_to_string(&stamp).ok().as_deref() != Some(&layout) {
        log(&format!("making {}", io.disk.display()));
        disk::make_data_disk(&io.disk)?;
        write_atomic(&stamp, layout.as_bytes())?;
    }
    Ok(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_names() {
        assert_eq!(
            PINNED_KERNEL.package(),
            format!("linux-image-{}-arm64", PINNED_KERNEL.abi)
        );
        assert!(PINNED_KERNEL.uname_r().ends_with("-arm64"));
    }

    #[test]
    fn init_runs_marker_then_commands_then_shell() {
        let s = init_script("uname -r");
        let m = s.find(USERSPACE_MARKER).unwrap();
        let c = s.find("uname -r").unwrap();
        let sh = s.find("exec setsid cttyhack sh").unwrap();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.find("mount -t devtmpfs").unwrap() < m && m < c && c < sh);
    }

    #[test]
    fn initramfs_contents() {
        let dir = std::env::temp_dir().join(format!("axolotl-ga-{}", std::process::id()));
        let bb = dir.join("busybox");
        fs::create_dir_all(&dir).unwrap();
        fs::write(&bb, b"\x7fELF fake").unwrap();
        let out = dir.join("out/initramfs.cpio");
        build_initramfs(&bb, "#!/bin/sh\necho hi\n", &out).unwrap();
        let a = fs::read(&out).unwrap();
        fs::remove_dir_all(&dir).ok();
        let has = |s: &[u8]| a.windows(s.len()).any(|w| w == s);
        assert!(has(b"init\0"));
        assert!(has(b"#!/bin/sh\necho hi\n"));
        assert!(has(b"bin/busybox\0\0\0\x7fELF fake"));
        assert!(has(b"dev/console\0"));
        assert!(has(b"bin/sh\0"));
        assert!(has(b"TRAILER!!!\0"));
    }

    #[test]
    fn cached_is_none_for_empty_dir() {
        assert_eq!(cached(Path::new("/nonexistent/axolotl")), None);
    }
}
