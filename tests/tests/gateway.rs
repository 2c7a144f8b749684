//! Issue #15, the gateway: the Debian I/O guest under axolotl's VMM with virtio-net through
//! the network virtualiser and the net driver PD, and virtio-blk through the blk driver PD
//! (tests/systems/gateway-gicv3.system). The unmodified kernel's virtio modules bind to the
//! VMM's devices, the guest serves the data disk's files over HTTP (fetched from the host
//! and compared byte for byte), and its disk check writes a seeded pattern with O_DIRECT,
//! reads it back and reports a checksum, which the host checks against the image file.
//! tests/tests/guest_io.rs runs the same guest on bare QEMU.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use axolotl_guest_artifacts::{self as ga, disk, io};
use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Failure, Machine, Net};
use axolotl_tests::check;
use axolotl_tests::http::{TmpDir, free_port, free_udp_port, http_get, serve, sha256_hex};

/// Host seconds; the guest's boot under axolotl on a loaded TCG host takes minutes.
const TIMEOUT: Duration = Duration::from_secs(900);
/// Seed and size of the disk check's pattern: vmm-pd's test command line
/// (vmm-pd/src/pd.rs `IO_CMDLINE`).
const SEED: u64 = 1515;
const CHECK_MIB: u64 = 16;
/// echo_b, the virtualiser's second client (driver-pd's `NET_CLIENTS[1]`).
const ECHO_B_IP: [u8; 4] = [10, 0, 2, 16];

/// Boots `<board>-gic<gic>-<system>` with the NIC (host TCP `port` → guest port 80, host UDP
/// `udp` → echo_b's port 7) and the disk `img`.
fn boot_gateway(
    gic: u8,
    system: &str,
    port: u16,
    udp: u16,
    img: &std::path::Path,
) -> Result<Boot, Failure> {
    let dir = std::env::var_os("AXOLOTL_IMAGES")
        .map(PathBuf::from)
        .ok_or_else(|| Failure {
            what: "AXOLOTL_IMAGES is not set: run the integration tests through `cargo xtask test`"
                .into(),
            console: String::new(),
        })?;
    let version = if gic == 2 {
        GicVersion::V2
    } else {
        GicVersion::V3
    };
    let board = board_by_name("qemu-virt-aarch64", Some(version)).expect("known board");
    let mut m = Machine::new(board);
    m.disk = Some(img.to_path_buf());
    m.net = Some(Net {
        tcp_forwards: vec![(port, 80)],
        udp_forwards_to: vec![(udp, ECHO_B_IP, 7)],
        ..Net::default()
    });
    axolotl_tests::start_image(
        &m,
        &dir.join(format!("{}-gic{gic}-{system}.elf", board.name)),
    )
}

/// Fetches `/` and every file of the disk, comparing each with what the disk holds; the
/// bytes fetched.
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
    fetched
}

/// The disk as the host sees it after the guest's check: the pattern where the guest wrote
/// it, zeros after it, the read-only filesystem and the partition table untouched, and the
/// guest's checksum the host's.
fn check_image(img: &std::path::Path, fresh: &[u8], verdict: &str) {
    let now = std::fs::read(img).unwrap();
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

#[test]
fn gateway_gicv3_guest_serves_the_disk_over_the_driver_pds_and_checks_its_writes() {
    serves_the_disk_and_checks_its_writes(3);
}

#[test]
fn gateway_gicv2_guest_serves_the_disk_over_the_driver_pds_and_checks_its_writes() {
    serves_the_disk_and_checks_its_writes(2);
}

fn serves_the_disk_and_checks_its_writes(gic: u8) {
    let tmp = TmpDir::new("axolotl-gateway");
    let img = tmp.0.join("data.img");
    disk::make_data_disk(&img).expect("data disk");
    let fresh = std::fs::read(&img).unwrap();
    let port = free_port();
    let mut b = check(boot_gateway(
        gic,
        &format!("gateway-gicv{gic}"),
        port,
        free_udp_port(),
        &img,
    ));
    check(b.expect_all(
        &[
            "vmm: virtio-net at transport 30",
            "vmm: virtio-blk at transport 31",
            ga::USERSPACE_MARKER,
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
    let fetched = fetch_all(&mut b, port);
    match http_get(port, "/no-such-file") {
        Ok((404, _)) => {}
        other => check::<()>(Err(b.failure(format!("GET /no-such-file: {other:?}")))),
    }
    assert!(fetched > 17 << 20, "{fetched}");
    download(&mut b);
    // Nothing went wrong under the guest on the way.
    check(b.refute("vmm: guest write to"));
    check(b.refute("vmm: guest read of"));
    check(b.refute("broke its protocol"));
    drop(b);
    check_image(&img, &fresh, &verdict);
}

/// The other way: the guest downloads 8 MiB of a seeded pattern from a host server at its
/// shell's prompt (the NIC's receive path, where the VMM coalesces a flow's segments into
/// packets for the guest: docs/network.md, "Offloads") and reports its checksum, which must
/// be the host's; then its NIC's counters, for the log (bytes a packet above 1,514: packets
/// were coalesced).
fn download(b: &mut Boot) {
    let mut body = vec![0u8; 8 << 20];
    ga::pattern::fill(SEED + 1, 0, &mut body);
    let sha = sha256_hex(&body);
    let port = serve(body);
    // `$((..))`: the echoed input does not match what the commands print.
    let typed = format!(
        "echo download-$((6*7)) $(wget -q -O - http://{}:{port}/ | sha256sum); \
         echo nic-$((6*7)) $(cat /sys/class/net/eth0/statistics/rx_packets \
         /sys/class/net/eth0/statistics/rx_bytes)\n",
        io::HOST_IP
    );
    check(b.send_uart1(typed.as_bytes()));
    let line = check(b.expect("download-42 ", TIMEOUT));
    if !line.contains(&sha) {
        check::<()>(Err(b.failure(format!(
            "the guest's download is not the host's 8 MiB (sha256 {sha}): {line}"
        ))));
    }
    check(b.expect("nic-42 ", TIMEOUT));
}

/// Sends datagram `seq` to echo_b through `port` until its answer comes back byte-identical
/// (a datagram may be lost while the virtualiser or the driver restarts: UDP does not
/// resend, so the test does); the tries it took.
fn echo_b(sock: &UdpSocket, port: u16, seq: u32) -> Result<u32, String> {
    let msg = format!("gateway echo_b {seq:06} {}", "x".repeat(seq as usize % 600));
    let mut buf = [0u8; 2048];
    for attempt in 0..20 {
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port))
            .map_err(|e| format!("send: {e}"))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| e.to_string())?;
            match sock.recv_from(&mut buf) {
                Ok((n, _)) if buf[..n] == *msg.as_bytes() => return Ok(attempt + 1),
                // An answer to an earlier try of an earlier datagram.
                Ok((n, _)) if buf[..n].starts_with(b"gateway echo_b ") => {}
                Ok((n, _)) => {
                    return Err(format!(
                        "echo_b {seq}: foreign answer {:?}",
                        String::from_utf8_lossy(&buf[..n.min(40)])
                    ));
                }
                Err(_) => break,
            }
        }
    }
    Err(format!("echo_b {seq}: no answer after 20 tries"))
}

/// Waits until `needle` appears `n` times in the console.
fn wait_count(b: &mut Boot, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while b.console().matches(needle).count() < n {
        if std::time::Instant::now() >= deadline {
            check::<()>(Err(
                b.failure(format!("timed out waiting for {n} times {needle:?}"))
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HTTP requests while the net driver crashes and hangs and the virtualiser restarts. QEMU's
/// slirp never retransmits a TCP segment, so this passes only because no frame towards the
/// guest is lost across those restarts (docs/network.md, "Restarts lose no frame towards a
/// client").
const REQUESTS: u32 = 500;

#[test]
fn gateway_faults_gicv3_no_request_fails_while_the_driver_pds_crash() {
    no_request_fails_while_the_driver_pds_crash(3);
}

#[test]
fn gateway_faults_gicv2_no_request_fails_while_the_driver_pds_crash() {
    no_request_fails_while_the_driver_pds_crash(2);
}

fn no_request_fails_while_the_driver_pds_crash(gic: u8) {
    let tmp = TmpDir::new("axolotl-gateway-faults");
    let img = tmp.0.join("data.img");
    disk::make_data_disk(&img).expect("data disk");
    let fresh = std::fs::read(&img).unwrap();
    let (port, udp) = (free_port(), free_udp_port());
    let mut b = check(boot_gateway(
        gic,
        &format!("gateway-faults-gicv{gic}"),
        port,
        udp,
        &img,
    ));
    check(b.expect_all(&[io::HTTPD_MARKER], TIMEOUT));
    // The disk check runs while the blk driver crashes under it.
    let verdict = check(b.expect("gateway-guest: diskcheck", TIMEOUT));
    if !verdict.starts_with(io::DISKCHECK_OK) {
        check::<()>(Err(b.failure(format!("disk check failed: {verdict}"))));
    }
    wait_count(&mut b, "monitor: restarted blk_driver (cause: vm-fault", 3);

    // Small files, so that the requests are many and the faults fall among them.
    let small: Vec<(String, Vec<u8>)> = std::iter::once(("/".to_string(), "index.html"))
        .chain(
            disk::WEB_FILES
                .iter()
                .map(|f| (format!("/{}", f.name), f.name)),
        )
        .map(|(p, n)| (p, disk::web_file(n).unwrap()))
        .filter(|(_, d)| d.len() <= 64 << 10)
        .collect();
    assert!(!small.is_empty());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut echoes, mut tries) = (0, 0);
    for i in 0..REQUESTS {
        let (path, want) = &small[i as usize % small.len()];
        match http_get(port, path) {
            Ok((200, body)) if body == *want => {}
            other => {
                let what = match other {
                    Ok((s, body)) => format!("status {s}, {} bytes", body.len()),
                    Err(e) => e,
                };
                // Where the path is broken: echo_b's traffic shares the NIC, the driver and
                // the virtualiser with the guest's, not the VMM.
                let echo = echo_b(&sock, udp, 90_000 + i);
                let again = http_get(port, path).map(|(s, body)| (s, body.len()));
                check::<()>(Err(b.failure(format!(
                    "request {i}: GET {path}: {what} (then echo_b: {echo:?}; GET again: {again:?})"
                ))));
            }
        }
        // echo_b's traffic goes on beside the guest's.
        if i % 5 == 0 {
            match echo_b(&sock, udp, i / 5) {
                Ok(t) => {
                    echoes += 1;
                    tries += t;
                }
                Err(e) => check::<()>(Err(b.failure(e))),
            }
        }
    }
    eprintln!("gateway-faults: {REQUESTS} requests, {echoes} echoes in {tries} tries");
    // Generations 1 and 2 of the driver die with a received frame in the device: the next
    // ones salvage it (docs/network.md, "Restarts lose no frame towards a client").
    for g in [2, 3] {
        let l = check(b.expect(&format!("net_driver: generation {g}: salvaged "), TIMEOUT));
        eprintln!("gateway-faults: {}", l.trim());
    }
    check(b.refute("receive queue refused"));
    for n in [
        "monitor: restarted net_driver (cause: hang",
        "monitor: restarted net_virt (cause: vm-fault",
    ] {
        wait_count(&mut b, n, 1);
    }
    wait_count(&mut b, "monitor: restarted net_driver (cause: vm-fault", 3);
    // Generation 4 stops looking at its device: its own receive watch fails it.
    wait_count(&mut b, "net_driver: receive stalled: frames waited ", 1);
    check(b.refute(io::FAILED_MARKER));
    check(b.refute("KERNEL PANIC"));
    check(b.refute("vmm: guest write to"));
    check(b.refute("vmm: guest read of"));
    drop(b);
    check_image(&img, &fresh, &verdict);
}
