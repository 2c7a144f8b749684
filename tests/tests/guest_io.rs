//! Issue #15, the guest side: the Debian guest booted by QEMU directly (no axolotl) with the
//! same virtio-mmio NIC and disk as axolotl's machine (`Machine::virtio_args`). The
//! unmodified kernel's virtio_mmio, virtio_net, virtio_blk and ext4 modules bind, the guest
//! serves the data disk's files over HTTP (fetched from the host and compared byte for
//! byte), and its disk check writes a seeded pattern to the raw partition with O_DIRECT,
//! reads it back and reports a checksum, which the host checks against the image file.
//! The same guest runs under axolotl in the gateway system.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axolotl_guest_artifacts::{self as ga, disk, io};
use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine, Net, QEMU_AARCH64};
use axolotl_tests::check;

/// Host seconds; a TCG boot to userspace takes about 5 s here, several times that loaded.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Seed and size of the disk check's pattern.
const SEED: u64 = 1515;
const CHECK_MIB: u64 = 16;

/// Scratch directory removed on drop, also when an assertion fails.
struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A port on 127.0.0.1 nothing listens on now (QEMU binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// `GET path` over HTTP/1.0; the status code and the body, checked against Content-Length.
fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: gateway\r\n\r\n").map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .map_err(|e| format!("reading the answer to {path}: {e}"))?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {} bytes", all.len()))?;
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let body = all[head_end + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = length
        && n != body.len()
    {
        return Err(format!(
            "{path}: Content-Length {n}, body {} bytes",
            body.len()
        ));
    }
    Ok((status, body))
}

fn sha256_hex(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    let mut stdin = c.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn guest_io_debian_serves_the_data_disk_and_checks_its_writes_on_bare_qemu() {
    let a = ga::cached(&ga::default_cache_dir())
        .expect("no guest artifacts: run `cargo xtask setup` (docs/guest.md)");
    let tmp = TmpDir(std::env::temp_dir().join(format!("axolotl-guest-io-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).unwrap();
    // Everything the guest writes goes to this run's own disk and initramfs.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let tools = io::GuestTools::build(&target.join("guest-tools")).expect("guest tools");
    let initrd = tmp.0.join("initramfs-io.cpio");
    io::build_io_initramfs(&a, &tools, "", &initrd).expect("I/O initramfs");
    let img = tmp.0.join("data.img");
    disk::make_data_disk(&img).expect("data disk");
    let fresh = std::fs::read(&img).unwrap();

    let port = free_port();
    let board = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
    let mut m = Machine::new(board);
    m.disk = Some(img.clone());
    m.net = Some(Net {
        tcp_forwards: vec![(port, 80)],
        ..Net::default()
    });
    let mut cmd = Command::new(QEMU_AARCH64);
    cmd.args(io::direct_boot_args(
        &a,
        &initrd,
        &format!("gateway-guest diskcheck {SEED} {CHECK_MIB}"),
    ))
    .args(m.virtio_args());
    let mut b = check(Boot::spawn(cmd));
    check(b.expect_all(
        &[
            ga::USERSPACE_MARKER,
            // The kernel's lines as /init loads the modules.
            "virtio_blk virtio",
            " vda: vda1 vda2",
            io::MODULES_MARKER,
            io::NET_MARKER,
            io::DISK_MARKER,
            io::HTTPD_MARKER,
        ],
        TIMEOUT,
    ));
    let verdict = check(b.expect("gateway-guest: diskcheck", TIMEOUT));
    check(b.refute(io::FAILED_MARKER));
    if !verdict.starts_with(io::DISKCHECK_OK) {
        check::<()>(Err(b.failure(format!("disk check failed: {verdict}"))));
    }

    // Every file of the disk, over HTTP through QEMU's user network, byte for byte.
    let mut fetched = 0;
    let paths = std::iter::once(("/".to_string(), "index.html")).chain(
        disk::WEB_FILES
            .iter()
            .map(|f| (format!("/{}", f.name), f.name)),
    );
    for (path, name) in paths {
        let want = disk::web_file(name).unwrap();
        match http_get(port, &path) {
            Ok((200, body)) if body == want => fetched += body.len(),
            Ok((status, body)) => {
                let at = body.iter().zip(&want).position(|(x, y)| x != y);
                check::<()>(Err(b.failure(format!(
                    "GET {path}: status {status}, {} bytes (want {}), first difference at {at:?}",
                    body.len(),
                    want.len()
                ))));
            }
            Err(e) => check::<()>(Err(b.failure(format!("GET {path}: {e}")))),
        }
    }
    match http_get(port, "/no-such-file") {
        Ok((404, _)) => {}
        other => check::<()>(Err(b.failure(format!("GET /no-such-file: {other:?}")))),
    }
    assert!(fetched > 17 << 20, "{fetched}");

    // The disk as the host sees it: the pattern where the guest wrote it, zeros after it,
    // the read-only filesystem and the partition table untouched.
    drop(b);
    let now = std::fs::read(&img).unwrap();
    assert_eq!(now.len(), fresh.len());
    let raw = disk::RAW_OFFSET as usize;
    let n = (CHECK_MIB << 20) as usize;
    let mut want = vec![0u8; n];
    ga::pattern::fill(SEED, 0, &mut want);
    if let Some(at) = now[raw..raw + n]
        .iter()
        .zip(&want)
        .position(|(x, y)| x != y)
    {
        panic!("the image's raw partition differs from the pattern at byte {at}");
    }
    let sha = sha256_hex(&want);
    assert!(
        verdict.ends_with(&format!("sha256={sha}")),
        "the guest's checksum is not the host's {sha}: {verdict}"
    );
    assert!(
        now[raw + n..].iter().all(|&x| x == 0),
        "written past the checked region"
    );
    assert!(
        now[..raw] == fresh[..raw],
        "the MBR or the filesystem changed"
    );
}
