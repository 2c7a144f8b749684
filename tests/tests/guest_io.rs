//! Issue #15, the guest side: the Debian guest booted by QEMU directly (no axolotl) with the
//! same virtio-mmio NIC and disk as axolotl's machine (`Machine::virtio_args`). The
//! unmodified kernel's virtio_mmio, virtio_net, virtio_blk and ext4 modules bind, the guest
//! serves the data disk's files over HTTP (fetched from the host and compared byte for
//! byte), and its disk check writes a seeded pattern to the raw partition with O_DIRECT,
//! reads it back and reports a checksum, which the host checks against the image file.
//! The same guest runs under axolotl in the gateway system.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axolotl_guest_artifacts::{self as ga, disk, io};
use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine, Net, QEMU_AARCH64};
use axolotl_tests::check;
use axolotl_tests::http::{TmpDir, free_port, http_get, sha256_hex};

/// Host seconds; a TCG boot to userspace takes about 5 s here, several times that loaded.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Seed and size of the disk check's pattern.
const SEED: u64 = 1515;
const CHECK_MIB: u64 = 16;

#[test]
fn guest_io_debian_serves_the_data_disk_and_checks_its_writes_on_bare_qemu() {
    let a = ga::cached(&ga::default_cache_dir())
        .expect("no guest artifacts: run `cargo xtask setup` (docs/guest.md)");
    let tmp = TmpDir::new("axolotl-guest-io");
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
