//! Issue #15's network (docs/network.md): `tests/systems/net-echo.system`, the virtio-net
//! driver PD, the network virtualiser and two native clients answering UDP echo, reached from
//! the host through QEMU's user network (forwards on 127.0.0.1 only); and
//! `tests/systems/net-echo-restart.system`, the same while the driver is crashed three times
//! and hung once and the virtualiser crashed once under traffic. Every datagram must come
//! back byte-identical from the client it was sent to (a retry counts as success, a datagram
//! unanswered after its retries as failure). `tests/systems/block-copies-gicv3.system`: the
//! frame check's vector copies (lib/ring `DataRegion::copy_*_raw_blocks`) as built for the
//! target, against their definition.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine, Net};
use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

/// The clients' addresses on QEMU's network (driver-pd's `NET_CLIENTS`) and echo port.
const CLIENTS: [(&str, [u8; 4]); 2] = [("echo_a", [10, 0, 2, 15]), ("echo_b", [10, 0, 2, 16])];
const ECHO_PORT: u16 = 7;
/// How long one try waits for its answer, and how many tries a datagram gets: a restart
/// (backoff, heartbeat detection of the hang: a few hundred ms) fits many times over.
const TRY_TIMEOUT: Duration = Duration::from_millis(250);
const TRIES: u32 = 80;

/// Two distinct free UDP ports on 127.0.0.1 (bound together, then released: QEMU takes them
/// right after).
fn free_ports() -> [u16; 2] {
    let bind = || UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
    let socks = [bind(), bind()];
    socks.map(|s| s.local_addr().expect("bound").port())
}

/// Boots `<board>-gic<N>-<system>` with the NIC, each client's echo port forwarded from its
/// own host port; returns the boot and the host ports, by client.
fn boot_net(gic: u8, system: &str) -> (Boot, [u16; 2]) {
    let dir = PathBuf::from(
        std::env::var_os("AXOLOTL_IMAGES")
            .expect("AXOLOTL_IMAGES: run the integration tests through `cargo xtask test`"),
    );
    let version = if gic == 2 {
        GicVersion::V2
    } else {
        GicVersion::V3
    };
    let board = board_by_name("qemu-virt-aarch64", Some(version)).expect("known board");
    let ports = free_ports();
    let mut m = Machine::new(board);
    m.net = Some(Net {
        udp_forwards_to: CLIENTS
            .iter()
            .zip(ports)
            .map(|((_, ip), p)| (p, *ip, ECHO_PORT))
            .collect(),
        ..Net::default()
    });
    let image = dir.join(format!("{}-gic{gic}-{system}.elf", board.name));
    (check(axolotl_tests::start_image(&m, &image)), ports)
}

fn wait_up(b: &mut Boot) {
    let up = format!(
        "net_driver: generation 0: virtio-net 52:54:00:12:34:56 up, {} buffers each way",
        axolotl_driver_pd::nic::QUEUE
    );
    check(b.expect_all(
        &[&up, "net_virt: generation 0: routing for 2 clients"],
        DEFAULT_TIMEOUT,
    ));
    for (name, _) in CLIENTS {
        check(b.expect_chain(&[&format!("{name}: generation 0: ")], DEFAULT_TIMEOUT));
    }
}

/// What one client's socket saw.
#[derive(Default, Debug)]
struct Tally {
    answered: u32,
    retried: u32,
    /// Answers to an earlier try of a datagram already answered, or to an older datagram.
    late: u32,
}

/// Sends datagram `seq` to `port` until its own answer comes back byte-identical (stale
/// answers to earlier tries are skipped); `Err` with what happened after `TRIES` tries.
fn echo_one(sock: &UdpSocket, port: u16, tag: &str, seq: u32, t: &mut Tally) -> Result<(), String> {
    // Sizes vary from a runt payload to a full MTU.
    let len = [8usize, 64, 512, 1400, 1472][seq as usize % 5];
    let mut msg = format!("{tag} {seq:06} ").into_bytes();
    msg.extend((0..len.saturating_sub(msg.len())).map(|i| b'a' + ((seq as usize + i) % 26) as u8));
    let mut buf = [0u8; 2048];
    for attempt in 0..TRIES {
        if attempt > 0 {
            t.retried += 1;
        }
        sock.send_to(&msg, ("127.0.0.1", port))
            .map_err(|e| format!("send: {e}"))?;
        let deadline = Instant::now() + TRY_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| e.to_string())?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if from.port() != port {
                        return Err(format!("{tag} {seq}: answer from {from}, not port {port}"));
                    }
                    if buf[..n] == msg[..] {
                        t.answered += 1;
                        return Ok(());
                    }
                    // Only an earlier datagram of this very socket may arrive instead.
                    if !buf[..n].starts_with(format!("{tag} ").as_bytes()) {
                        return Err(format!(
                            "{tag} {seq}: foreign answer {:?}",
                            String::from_utf8_lossy(&buf[..n.min(40)])
                        ));
                    }
                    t.late += 1;
                }
                Err(_) => break,
            }
        }
    }
    Err(format!("{tag} {seq}: no answer after {TRIES} tries"))
}

/// Sends `count` datagrams to each client, alternating, one at a time per client; returns
/// each client's tally.
fn traffic(ports: [u16; 2], count: u32) -> Result<[Tally; 2], String> {
    let socks = [
        UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?,
        UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?,
    ];
    let mut tallies = [Tally::default(), Tally::default()];
    for seq in 0..count {
        for (i, (name, _)) in CLIENTS.iter().enumerate() {
            echo_one(&socks[i], ports[i], name, seq, &mut tallies[i])?;
        }
    }
    Ok(tallies)
}

const BAD: &[&str] = &[
    "ERROR",
    "cannot start",
    "corrupt",
    "IRQ ack failed",
    "device error",
    "KERNEL PANIC",
    "kernel: FAULT",
    "holding",
    "receive queue refused",
];

fn serves_both_clients(gic: u8) {
    let (mut b, ports) = boot_net(gic, "net-echo");
    wait_up(&mut b);
    match traffic(ports, 50) {
        Ok(t) => eprintln!("net-echo gic{gic}: {t:?}"),
        Err(e) => check::<()>(Err(b.failure(e))),
    }
    refute_each(&mut b, BAD);
    check(b.refute("monitor: restarted"));
}

#[test]
fn net_echo_serves_both_clients_gicv2() {
    serves_both_clients(2);
}

#[test]
fn net_echo_serves_both_clients_gicv3() {
    serves_both_clients(3);
}

/// Waits until `needle` appears `n` times in the console.
fn wait_count(b: &mut Boot, needle: &str, n: usize) {
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    while b.console().matches(needle).count() < n {
        if Instant::now() >= deadline {
            check::<()>(Err(
                b.failure(format!("timed out waiting for {n} times {needle:?}"))
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn survives_restarts(gic: u8) {
    let (mut b, ports) = boot_net(gic, "net-echo-restart");
    wait_up(&mut b);
    // 2 × 260 datagrams: the faults are injected after 120 frames per driver incarnation
    // (about 60 datagrams; five faulty ones) and 400 routed frames of the first
    // virtualiser (about 200).
    let tallies = match traffic(ports, 260) {
        Ok(t) => t,
        Err(e) => {
            check::<()>(Err(b.failure(e)));
            unreachable!()
        }
    };
    eprintln!("net-echo-restart gic{gic}: {tallies:?}");
    for t in &tallies {
        assert_eq!(t.answered, 260);
    }
    for n in [
        "monitor: restarted net_driver (cause: vm-fault write at 0x700000000",
        "monitor: restarted net_driver (cause: hang",
        "monitor: restarted net_virt (cause: vm-fault write at 0x700000000",
    ] {
        wait_count(&mut b, n, 1);
    }
    wait_count(&mut b, "monitor: restarted net_driver (cause: vm-fault", 3);
    // Generation 4 stops looking at its device (the campaign's net driver id 681): its own
    // receive watch fails it; generation 5 serves the rest.
    wait_count(
        &mut b,
        "net_driver: fault injection: deaf to the device's interrupts",
        1,
    );
    wait_count(&mut b, "net_driver: receive stalled: frames waited ", 1);
    wait_count(&mut b, "monitor: restarted net_driver (cause: panic", 1);
    wait_count(&mut b, "net_driver: generation 5: virtio-net", 1);
    // Generations 1 and 2 die with a received frame in the device: the next ones salvage it.
    for g in [2, 3] {
        wait_count(&mut b, &format!("net_driver: generation {g}: salvaged "), 1);
    }
    wait_count(&mut b, "net_virt: generation 1: routing for 2 clients", 1);
    for (name, _) in CLIENTS {
        wait_count(
            &mut b,
            &format!("{name}: virtualiser restarted (1 so far)"),
            1,
        );
    }
    refute_each(&mut b, BAD);
}

#[test]
fn net_survives_driver_crashes_hang_and_virtualiser_restart_gicv2() {
    survives_restarts(2);
}

#[test]
fn net_survives_driver_crashes_hang_and_virtualiser_restart_gicv3() {
    survives_restarts(3);
}

/// Issue #21 (the virtualiser's campaign id 242): a virtualiser whose own state makes its
/// sound link to the driver read as corrupt reports the driver; the driver's restart
/// repairs nothing, the virtualiser reports the fresh driver again, and the monitor holds
/// that against the reporter and restarts it. Without the repeated accusation the
/// virtualiser fell silent after its first report, and the link stayed dead for good.
fn repeated_accusation(gic: u8) {
    let (mut b, ports) = boot_net(gic, "net-echo-misread");
    wait_up(&mut b);
    // The misreading starts after 200 routed frames (about 100 datagrams): 2 × 160.
    let tallies = match traffic(ports, 160) {
        Ok(t) => t,
        Err(e) => {
            check::<()>(Err(b.failure(e)));
            unreachable!()
        }
    };
    eprintln!("net-echo-misread gic{gic}: {tallies:?}");
    for t in &tallies {
        assert_eq!(t.answered, 160);
    }
    check(b.expect_chain(
        &[
            "net_virt: net_driver is corrupt (Rx: GenerationUnconfirmed",
            "monitor: restarted net_driver (cause: corruption reported by pd 1)",
            "net_virt: net_driver is still corrupt after its restart",
            "monitor: restarted net_virt (cause: false corruption report against pd 0)",
            "net_virt: generation 1: routing for 2 clients",
        ],
        DEFAULT_TIMEOUT,
    ));
    // One restart each: the driver's did not help, the virtualiser's did.
    check(b.refute("net_driver: generation 2"));
    check(b.refute("net_virt: generation 2"));
    // Here "corrupt" is the test (the accusations above).
    let bad: Vec<&str> = BAD.iter().copied().filter(|s| *s != "corrupt").collect();
    refute_each(&mut b, &bad);
}

/// Issue #21 (the virtualiser's campaign id 541): a virtualiser that published
/// itself on its clients' links and never acknowledges them, while it answers heartbeats.
/// Nothing is in flight on a link that never connected, so the request deadline saw
/// nothing and the network never came up; the clients' connect deadline reports it, the
/// monitor restarts it, and generation 1 serves both clients.
fn connect_deadline(gic: u8) {
    let (mut b, ports) = boot_net(gic, "net-echo-deaf");
    wait_up(&mut b);
    check(b.expect_all(
        &[
            "net_virt has not acknowledged the link in ",
            "monitor: restarted net_virt (cause: corruption reported by pd ",
            "net_virt: generation 1: routing for 2 clients",
        ],
        DEFAULT_TIMEOUT,
    ));
    let tallies = match traffic(ports, 20) {
        Ok(t) => t,
        Err(e) => {
            check::<()>(Err(b.failure(e)));
            unreachable!()
        }
    };
    for t in &tallies {
        assert_eq!(t.answered, 20, "{tallies:?}");
    }
    // One restart: the reports of both clients against generation 0 move it once.
    check(b.refute("net_virt: generation 2"));
    check(b.refute("restarted net_driver"));
    let bad: Vec<&str> = BAD.iter().copied().filter(|s| *s != "corrupt").collect();
    refute_each(&mut b, &bad);
}

#[test]
fn net_connect_deadline_reports_a_virtualiser_that_never_attaches_gicv2() {
    connect_deadline(2);
}

#[test]
fn net_connect_deadline_reports_a_virtualiser_that_never_attaches_gicv3() {
    connect_deadline(3);
}

#[test]
fn net_repeated_accusation_restarts_the_reporter_gicv2() {
    repeated_accusation(2);
}

#[test]
fn net_repeated_accusation_restarts_the_reporter_gicv3() {
    repeated_accusation(3);
}

/// The vector loop of lib/ring's block copies is aarch64 assembly the host's tests never run
/// (they step the same lanes in Rust): on the target, every block count to 20 and every
/// alignment of the caller's side, both ways, must copy exactly and sum as defined.
#[test]
fn block_copies_on_the_target_are_as_defined() {
    let mut b = check(boot_named(3, "cortex-a72", "-block-copies-gicv3"));
    check(b.expect("block-copies: 1008 copies as defined", DEFAULT_TIMEOUT));
    refute_each(&mut b, &["panic"]);
}
