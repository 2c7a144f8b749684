//! Issue #16, the gateway's guest: a VMM that dies with the guest's virtio I/O in flight is
//! restarted with the guest kept, its virtio-net and virtio-blk included
//! (tests/systems/gateway-vmm-restart-gicv{3,2}.system: gateway-gicv3.system with a restartable
//! VMM, a state region and the test build's failure points, armed through UART1 as in
//! tests/tests/vmm_restart.rs). The VMM crashes at virtio QueueNotify exits while the guest
//! runs its disk check (16 MiB written with O_DIRECT and fsync, read back, checksummed) and
//! while the host fetches the disk's files over HTTP: Linux boots once, the disk check
//! passes, every file comes back byte-identical, and the image holds the pattern.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axolotl_guest_artifacts::{self as ga, disk, io};
use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine, Net};
use axolotl_tests::check;
use axolotl_tests::http::{TmpDir, free_port, http_get, sha256_hex};

/// Host seconds; the guest's boot under axolotl on a loaded TCG host takes minutes.
const TIMEOUT: Duration = Duration::from_secs(900);
/// vmm-pd's test command line (`IO_CMDLINE`): `gateway-guest diskcheck 1515 16`.
const SEED: u64 = 1515;
const CHECK_MIB: u64 = 16;

/// Types `text` on the guest's console input (UART1, the harness's socket).
fn type_in(b: &mut Boot, text: &str) {
    check(b.send_uart1(text.as_bytes()));
}

/// Arms `point` and waits for the crash, the monitor's restart and the new VMM taking over
/// the guest with its devices. The guest's disk check notifies the disk's queue while it
/// runs; once it is over (a fast disk, a slow host) HTTP requests notify the NIC's.
fn crash_at(b: &mut Boot, port: u16, point: &str, armed: &str, generation: u32) {
    type_in(b, &format!("# vmm-fault crash {point}\n"));
    check(b.expect(
        &format!("vmm: fault injection armed: Crash at the next {armed} exit"),
        TIMEOUT,
    ));
    let crash = format!("vmm: fault injection: Crash at a {armed} exit");
    let deadline = Instant::now() + TIMEOUT;
    while !b.console().contains(&crash) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        if !b.console().contains(&crash) {
            // Its body is checked by `fetch_all` later; this one only makes traffic.
            let _ = http_get(port, "/");
        }
    }
    check(b.expect_all(
        &[
            &crash,
            "monitor: restarted vmm (cause: vm-fault write at 0x10 ",
            "vmm: virtio-net kept (",
            "vmm: virtio-blk kept (",
            &format!("vmm: generation {generation}: took over the running guest (1 vCPUs)"),
        ],
        TIMEOUT,
    ));
}

/// `/` and every file of the disk over HTTP, each compared with what the disk holds.
fn fetch_all(b: &mut Boot, port: u16) -> usize {
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
            Ok((status, body)) => check::<()>(Err(b.failure(format!(
                "GET {path}: status {status}, {} bytes (want {})",
                body.len(),
                want.len()
            )))),
            Err(e) => check::<()>(Err(b.failure(format!("GET {path}: {e}")))),
        }
    }
    fetched
}

#[test]
fn gateway_vmm_restart_gicv3_guest_keeps_its_virtio_devices_across_vmm_crashes() {
    gateway_vmm_restart(GicVersion::V3);
}

/// GICv2: the guest's CPU interface is the board's GICV frame, its list registers GICH's.
#[test]
fn gateway_vmm_restart_gicv2_guest_keeps_its_virtio_devices_across_vmm_crashes() {
    gateway_vmm_restart(GicVersion::V2);
}

fn gateway_vmm_restart(gic: GicVersion) {
    let n = gic.number();
    let tmp = TmpDir::new("axolotl-gateway-vmm");
    let img = tmp.0.join("data.img");
    disk::make_data_disk(&img).expect("data disk");
    let fresh = std::fs::read(&img).unwrap();
    let port = free_port();
    let images = std::env::var_os("AXOLOTL_IMAGES")
        .map(PathBuf::from)
        .expect("AXOLOTL_IMAGES is not set: run the integration tests through `cargo xtask test`");
    let board = board_by_name("qemu-virt-aarch64", Some(gic)).expect("known board");
    let mut m = Machine::new(board);
    m.disk = Some(img.clone());
    m.net = Some(Net {
        tcp_forwards: vec![(port, 80)],
        ..Net::default()
    });
    let mut b = check(axolotl_tests::start_image(
        &m,
        &images.join(format!(
            "{}-gic{n}-gateway-vmm-restart-gicv{n}.elf",
            board.name
        )),
    ));
    check(b.expect_all(
        &[
            "vmm: virtio-net at transport 30",
            "vmm: virtio-blk at transport 31",
            "vmm: console input from the serial driver",
            ga::USERSPACE_MARKER,
            io::HTTPD_MARKER,
        ],
        TIMEOUT,
    ));
    // The disk check starts now: the VMM dies at its queue notifications, once before it
    // handles one (the requests the last commit holds in flight) and once after it handed
    // the new requests to the blk driver and committed, before its reply.
    crash_at(&mut b, port, "notify", "Notify", 1);
    crash_at(&mut b, port, "notify-done", "NotifyDone", 2);
    // The verdict may have come before the crashes' lines (a check over before the second).
    let deadline = Instant::now() + TIMEOUT;
    let verdict = loop {
        let console = b.console();
        if let Some(l) = console
            .lines()
            .find(|l| l.contains("gateway-guest: diskcheck"))
        {
            // The guest's tty echoes what `crash_at` types wherever its output stands: seen
            // on the verdict's line, after its checksum.
            break l
                .replace("# vmm-fault crash notify-done", "")
                .replace("# vmm-fault crash notify", "")
                .trim()
                .to_string();
        }
        if Instant::now() >= deadline {
            check::<()>(Err(b.failure("no disk check verdict".to_string())));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if !verdict.starts_with(io::DISKCHECK_OK) {
        check::<()>(Err(b.failure(format!("disk check failed: {verdict}"))));
    }
    // Then under HTTP: the next notification is the NIC's (or the disk's, for a file read).
    type_in(&mut b, "# vmm-fault crash notify\n");
    let fetched = fetch_all(&mut b, port);
    check(b.expect_all(
        &[
            "vmm: fault injection: Crash at a Notify exit",
            "vmm: generation 3: took over the running guest (1 vCPUs)",
        ],
        TIMEOUT,
    ));
    let fetched = fetched + fetch_all(&mut b, port);
    assert!(fetched > 34 << 20, "{fetched}");
    let boots = b.console().matches("Booting Linux on physical CPU").count();
    if boots != 1 {
        check::<()>(Err(b.failure(format!("the guest booted {boots} times"))));
    }
    for bad in [
        io::FAILED_MARKER,
        "recovery failed",
        "kernel: FAULT",
        "KERNEL PANIC",
        "Kernel panic",
        "cut here",
        "vmm: guest write to",
        "vmm: guest read of",
        "broke its protocol",
        "I/O error",
    ] {
        check(b.refute(bad));
    }
    drop(b);
    // The disk as the host sees it: the pattern where the guest wrote it, the rest intact.
    let now = std::fs::read(&img).unwrap();
    let raw = disk::RAW_OFFSET as usize;
    let n = (CHECK_MIB << 20) as usize;
    let mut want = vec![0u8; n];
    ga::pattern::fill(SEED, 0, &mut want);
    let at = now[raw..raw + n]
        .iter()
        .zip(&want)
        .position(|(x, y)| x != y);
    assert_eq!(at, None, "the raw partition differs from the pattern");
    let sha = sha256_hex(&want);
    assert!(verdict.ends_with(&format!("sha256={sha}")), "{verdict}");
    assert!(
        now[raw + n..].iter().all(|&x| x == 0),
        "written past the check"
    );
    assert!(
        now[..raw] == fresh[..raw],
        "the MBR or the filesystem changed"
    );
}
