//! The management plane (issue #17, docs/control.md): `tests/systems/control-crash.system`
//! (hello's PDs, a serial driver on UART1 and control-pd; control-pd's first incarnation
//! crashes on its fifth request) driven through lib/control-proto's host client, the one
//! `cargo xtask ctl` uses, over QEMU's unix socket on UART1. Both GICs.

use std::path::PathBuf;
use std::time::Duration;

use axolotl_control_proto::client::{Client, ClientError};
use axolotl_control_proto::{
    BitTarget, Error, FRAME_BUFFER, FaultKind, Injected, PdState, PdStatus, Reply, Request,
    RingWord, VmOp, encode, name,
};
use axolotl_qemu::Boot;
use axolotl_tests::{DEFAULT_TIMEOUT, boot_with_uart1, check};

const PDS: [&str; 6] = [
    "serial_driver",
    "control",
    "hello_server",
    "hello_client",
    "hello_logger",
    "monitor",
];

/// A fresh directory for the control socket; `tag` tells apart tests running at once.
fn socket(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axolotl-control-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the socket directory");
    dir.join("control.sock")
}

/// Fails the test with the console.
fn ok<T>(b: &mut Boot, what: &str, r: Result<T, ClientError>) -> T {
    r.unwrap_or_else(|e| {
        let f = b.failure(format!("{what}: {e}"));
        panic!("{f}")
    })
}

fn row<'a>(rows: &'a [PdStatus], pd: &str) -> &'a PdStatus {
    rows.iter()
        .find(|r| r.name.as_str() == pd)
        .unwrap_or_else(|| panic!("no row for {pd}: {rows:?}"))
}

/// A well-formed COBS frame (delimited both sides) of a request with one byte changed:
/// only its CRC can tell.
fn bad_crc_frame() -> Vec<u8> {
    for seq in 0x0101_0101u32.. {
        let mut out = [0u8; FRAME_BUFFER];
        let n = encode(0x0101, &Request::Log { seq }, &mut out).unwrap();
        let f = &out[..n - 1];
        // A payload without a 0 is one COBS run: a code byte, then the payload as is.
        if f[0] as usize == f.len() {
            let mut g = f.to_vec();
            g[4] ^= if g[4] == 0x02 { 0x04 } else { 0x02 };
            g.insert(0, 0);
            g.push(0);
            return g;
        }
    }
    unreachable!()
}

fn pd(s: &str) -> axolotl_control_proto::Name {
    name(s).unwrap()
}

/// Where `cargo xtask test` put the images, and QEMU virt with a GICv3, for the tests that
/// set up their own machine (a disk, a NIC or the virtio-console).
fn images_and_gicv3_board() -> (PathBuf, axolotl_kernel_config::Board) {
    let dir = PathBuf::from(
        std::env::var_os("AXOLOTL_IMAGES")
            .expect("AXOLOTL_IMAGES: run the integration tests through `cargo xtask test`"),
    );
    let board = axolotl_kernel_config::board_by_name(
        "qemu-virt-aarch64",
        Some(axolotl_kernel_config::GicVersion::V3),
    )
    .expect("known board");
    (dir, board)
}

/// The status rows' PD names, sorted.
fn sorted_names(rows: &[PdStatus]) -> Vec<&str> {
    let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names
}

#[test]
fn control_plane_gicv3() {
    control_plane(3);
}

#[test]
fn control_plane_gicv2() {
    control_plane(2);
}

/// On a kernel built with `cpu-time`, `status` says how long each PD ran: the root task
/// reads the kernel's counts for the monitor (`Request::CpuTime`).
#[test]
fn cpu_time_in_status_gicv3() {
    let (mut b, mut c) = boot_control(3, "-control-crash-cpu-time", "cpu-time");
    // control-pd's first incarnation crashes on its fifth request (the test system's hook):
    // the counts compared below are its second's, whose TCB may be another (a standby).
    ok(&mut b, "status", c.status());
    check(b.expect(
        "control: generation 1: serving the host through the serial driver",
        DEFAULT_TIMEOUT,
    ));
    let first = ok(&mut b, "status again", c.status());
    let rows = ok(&mut b, "status a third time", c.status());
    for r in &rows {
        let was = row(&first, r.name.as_str()).cpu_us;
        // Every PD has run (the monitor and control answered, the rest started); no count
        // goes back; none is a guest's (no VM here).
        assert!(
            r.cpu_us.is_some_and(|us| us > 0) && r.cpu_us >= was && r.guest_cpu_us.is_none(),
            "{r:?} (first read {was:?})"
        );
    }
    // control-pd works for every request: its count grows between two reads.
    assert!(
        row(&rows, "control").cpu_us > row(&first, "control").cpu_us,
        "{rows:?}"
    );
}

fn control_plane(gic: u8) {
    let sock = socket(&format!("gic{gic}"));
    let backend = format!("socket,path={},server=on,wait=off", sock.display());
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-control-crash",
        Some(&backend),
    ));
    check(b.expect_all(
        &[
            "root-task: system up: 5 protection domains and the monitor started",
            "control: generation 0: serving the host through the serial driver",
            "hello_client: done",
        ],
        DEFAULT_TIMEOUT,
    ));
    // Generous: the machine is shared, and a lost request waits an attempt (5 s) before
    // it is sent again.
    let mut c = ok(
        &mut b,
        "connect",
        Client::connect(&sock, Duration::from_secs(120)),
    );

    // `status` lists every PD. control-pd crashes on the fifth request (its first
    // incarnation): the client's retry gets the answer from the restarted one.
    let rows = ok(&mut b, "status", c.status());
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, PDS, "{rows:?}");
    check(b.expect_all(
        &[
            "control: fault injection: crashing before answering request 5",
            "monitor: restarted control (cause: vm-fault write at 0x700000000",
            "control: generation 1: serving the host through the serial driver",
        ],
        DEFAULT_TIMEOUT,
    ));
    assert!(c.next_id() > 7, "no request was retried");
    let rows = ok(&mut b, "status after the crash", c.status());
    let control = row(&rows, "control");
    assert_eq!(
        (control.generation, control.restarts),
        (1, 1),
        "{control:?}"
    );
    assert!(
        control
            .last_cause
            .as_deref()
            .is_some_and(|c| c.starts_with("vm-fault write at 0x700000000")),
        "{control:?}"
    );
    assert!(row(&rows, "serial_driver").heartbeat_ms == Some(250));
    assert!(!row(&rows, "monitor").managed);
    // The kernel does not count CPU time unless built to (`cpu_time_in_status_gicv3`).
    assert!(rows.iter().all(|r| r.cpu_us.is_none()), "{rows:?}");

    // Malformed frames get error replies, and the stream goes on.
    for (garbage, want) in [
        (&[0u8, 1, 2, 3, 0][..], Error::BadFrame),
        (&bad_crc_frame()[..], Error::BadCrc),
    ] {
        ok(&mut b, "send garbage", c.send_raw(garbage));
        let got = ok(&mut b, "error reply", c.next_reply(Duration::from_secs(60)));
        assert_eq!(got, Some((0, Reply::Error(want))));
    }
    let mut oversize = vec![0u8];
    oversize.extend(std::iter::repeat_n(0x55, 700));
    oversize.push(0);
    ok(&mut b, "send an oversize frame", c.send_raw(&oversize));
    let got = ok(&mut b, "error reply", c.next_reply(Duration::from_secs(60)));
    assert_eq!(got, Some((0, Reply::Error(Error::Oversize))));

    // Restart: the next generation, the latency, the log.
    ok(
        &mut b,
        "restart serial_driver",
        c.act(&Request::Restart {
            pd: pd("serial_driver"),
            if_generation: None,
        }),
    );
    check(b.expect(
        "monitor: restarted serial_driver (requested by control) generation 1",
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status after restart", c.status());
    let drv = row(&rows, "serial_driver");
    assert_eq!((drv.generation, drv.restarts), (1, 1), "{drv:?}");
    assert!(drv.last_recovery_us.is_some(), "{drv:?}");

    // Hold and release.
    ok(
        &mut b,
        "hold hello_logger",
        c.act(&Request::Hold {
            pd: pd("hello_logger"),
        }),
    );
    check(b.expect(
        "monitor: holding hello_logger stopped: held by the operator",
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status when held", c.status());
    assert!(
        matches!(row(&rows, "hello_logger").state, PdState::Held { .. }),
        "{rows:?}"
    );
    let r = ok(
        &mut b,
        "restart a held PD",
        c.ask(&Request::Restart {
            pd: pd("hello_logger"),
            if_generation: None,
        }),
    );
    assert_eq!(r, Reply::Error(Error::BadState));
    ok(
        &mut b,
        "release hello_logger",
        c.act(&Request::Release {
            pd: pd("hello_logger"),
        }),
    );
    check(b.expect(
        "monitor: restarted hello_logger (requested by control) generation 1",
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status when released", c.status());
    let logger = row(&rows, "hello_logger");
    assert_eq!((&logger.state, logger.generation), (&PdState::Running, 1));

    // A restart of generation 0 (a retry of a request carried out before its answer was
    // lost): done, and nothing restarted again; of the generation it has: carried out.
    let r = ok(
        &mut b,
        "restart generation 0 again",
        c.ask(&Request::Restart {
            pd: pd("hello_logger"),
            if_generation: Some(0),
        }),
    );
    assert_eq!(r, Reply::Done);
    ok(
        &mut b,
        "restart generation 1",
        c.act(&Request::Restart {
            pd: pd("hello_logger"),
            if_generation: Some(1),
        }),
    );
    check(b.expect(
        "monitor: restarted hello_logger (requested by control) generation 2",
        DEFAULT_TIMEOUT,
    ));
    axolotl_tests::refute_each(
        &mut b,
        &["hello_logger (requested by control) generation 3"],
    );

    // Refusals: no grant for injection here; unknown and unmanaged PDs.
    for (req, want) in [
        (
            Request::Inject {
                pd: pd("serial_driver"),
                kind: FaultKind::Crash,
                at: None,
            },
            Error::NotGranted,
        ),
        (
            Request::Restart {
                pd: pd("nobody"),
                if_generation: None,
            },
            Error::UnknownName,
        ),
        (
            Request::Restart {
                pd: pd("monitor"),
                if_generation: None,
            },
            Error::NotManaged,
        ),
        (Request::Hold { pd: pd("control") }, Error::NotManaged),
    ] {
        let r = ok(&mut b, "a refused request", c.ask(&req));
        assert_eq!(r, Reply::Error(want), "{req:?}");
    }

    // The log: control-pd's crash, the requested restart, the hold and the release, in
    // order, numbered from 0.
    let mut entries = Vec::new();
    let mut seq = 0;
    while let Reply::Log(Some(e)) = ok(&mut b, "log", c.ask(&Request::Log { seq })) {
        seq = e.seq + 1;
        entries.push(e);
    }
    let got: Vec<(u32, &str, &str)> = entries
        .iter()
        .map(|e| (e.seq, e.pd.as_str(), e.cause.as_str()))
        .collect();
    assert_eq!(got.len(), 5, "{entries:?}");
    assert_eq!(got[0].1, "control");
    assert!(got[0].2.starts_with("vm-fault write"), "{entries:?}");
    assert_eq!(
        got[1..],
        [
            (1, "serial_driver", "requested by control"),
            (2, "hello_logger", "held by the operator"),
            (3, "hello_logger", "requested by control"),
            (4, "hello_logger", "requested by control"),
        ]
    );
    // Nothing else failed meanwhile.
    axolotl_tests::refute_each(&mut b, &["PD PANIC", "control: transmit connection"]);
}

/// `tests/systems/control-inject.system` grants `inject`: a crash injected into the serial
/// driver (the control plane's own transport) is a real fault, detected and recovered as
/// any other, and its answer still arrives; a hang is caught by the heartbeat watchdog.
#[test]
fn injected_faults_are_recovered_gicv3() {
    injected_faults_are_recovered(3);
}

#[test]
fn injected_faults_are_recovered_gicv2() {
    injected_faults_are_recovered(2);
}

/// `tests/systems/control-inject.system` booted with its control socket (named after `tag`),
/// up and connected.
fn boot_control_inject(gic: u8, tag: &str) -> (Boot, Client) {
    boot_control(gic, "-control-inject", tag)
}

/// Image `suffix` booted with its control socket, control serving, the client connected.
fn boot_control(gic: u8, suffix: &str, tag: &str) -> (Boot, Client) {
    let sock = socket(&format!("{tag}-gic{gic}"));
    let backend = format!("socket,path={},server=on,wait=off", sock.display());
    let mut b = check(boot_with_uart1(gic, "cortex-a72", suffix, Some(&backend)));
    check(b.expect_all(
        &[
            "control: generation 0: serving the host through the serial driver",
            "hello_client: done",
        ],
        DEFAULT_TIMEOUT,
    ));
    let c = ok(
        &mut b,
        "connect",
        Client::connect(&sock, Duration::from_secs(120)),
    );
    (b, c)
}

fn injected_faults_are_recovered(gic: u8) {
    let (mut b, mut c) = boot_control_inject(gic, "inject");
    // control-pd's own crash (its fifth request) out of the way first.
    let rows = ok(&mut b, "status", c.status());
    assert_eq!(rows.len(), PDS.len());

    let r = ok(
        &mut b,
        "inject serial_driver crash",
        c.ask(&Request::Inject {
            pd: pd("serial_driver"),
            kind: FaultKind::Crash,
            at: None,
        }),
    );
    assert_eq!(r, Reply::Injected(Injected::Done));
    check(b.expect_all(
        &[
            "monitor: control injected crash into serial_driver",
            "monitor: restarted serial_driver (cause: vm-fault exec at 0x700000000",
        ],
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status after the crash", c.status());
    let drv = row(&rows, "serial_driver");
    assert_eq!((drv.generation, drv.restarts), (1, 1), "{drv:?}");
    assert!(
        drv.last_cause
            .as_deref()
            .is_some_and(|c| c.starts_with("vm-fault exec at 0x700000000")),
        "{drv:?}"
    );

    let r = ok(
        &mut b,
        "inject hello_logger hang",
        c.ask(&Request::Inject {
            pd: pd("hello_logger"),
            kind: FaultKind::Hang,
            at: None,
        }),
    );
    assert_eq!(r, Reply::Injected(Injected::Done));
    check(b.expect(
        "monitor: restarted hello_logger (cause: hang (no heartbeat in 200 ms))",
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status after the hang", c.status());
    assert_eq!(row(&rows, "hello_logger").generation, 1);

    // A hang nobody would notice is refused; so are a ring corruption of a PD that writes
    // no ring (the logger maps its log ring read-only) and bit-flip targets that do not
    // exist or are not a bit flip's.
    for (pd_, kind, at, want) in [
        ("hello_server", FaultKind::Hang, None, None),
        (
            "hello_logger",
            FaultKind::RingCorruption,
            None,
            Some(Error::NoRing),
        ),
        (
            "hello_logger",
            FaultKind::BitFlip,
            Some(BitTarget {
                register: 35,
                bit: 0,
            }),
            Some(Error::BadTarget),
        ),
        (
            "hello_logger",
            FaultKind::Crash,
            BitTarget::new(0, 0),
            Some(Error::BadTarget),
        ),
    ] {
        let r = ok(
            &mut b,
            "a refused injection",
            c.ask(&Request::Inject {
                pd: pd(pd_),
                kind,
                at,
            }),
        );
        match want {
            Some(e) => assert_eq!(r, Reply::Error(e), "{pd_} {kind:?} {at:?}"),
            None => assert!(matches!(r, Reply::Error(Error::Refused(_))), "{r:?}"),
        }
    }
    axolotl_tests::refute_each(&mut b, &["PD PANIC", "control: transmit connection"]);

    // A wild write into the logger's own memory (restarted above: the write must land in
    // the incarnation that runs now): the answer says where, the monitor logs it, and
    // whatever it does the system goes on.
    let r = ok(
        &mut b,
        "inject hello_logger wild-write",
        c.ask(&Request::Inject {
            pd: pd("hello_logger"),
            kind: FaultKind::WildWrite,
            at: None,
        }),
    );
    let Reply::Injected(Injected::WildWrite { vaddr, old, new }) = r else {
        panic!("{}", b.failure(format!("wild write answered {r:?}")))
    };
    assert_ne!(old, new);
    check(b.expect(
        &format!("monitor: control injected wild-write ({vaddr:#x}: {old:#x} -> {new:#x}) into hello_logger"),
        DEFAULT_TIMEOUT,
    ));
    std::thread::sleep(Duration::from_secs(3));
    let rows = ok(&mut b, "status after the wild write", c.status());
    let logger = row(&rows, "hello_logger");
    assert!(
        matches!(logger.state, PdState::Running | PdState::Restarting { .. }),
        "{logger:?}"
    );

    // A bit flip the CLI chose (a campaign case replayed): exactly there.
    let at = BitTarget::new(34, 63).unwrap();
    let r = inject_running(
        &mut b,
        &mut c,
        &Request::Inject {
            pd: pd("hello_logger"),
            kind: FaultKind::BitFlip,
            at: Some(at),
        },
    );
    assert_eq!(r, Reply::Injected(Injected::BitFlip(at)));
    check(b.expect(
        "monitor: control injected bit-flip (tpidr_el0 bit 63) into hello_logger",
        DEFAULT_TIMEOUT,
    ));

    // A bit flip of a saved register: whatever it does to the logger (nothing, a fault, a
    // hang, a panic), the monitor says where it landed and the system goes on serving, the
    // logger running again, never held (its restart policy allows far more than one).
    let r = inject_running(
        &mut b,
        &mut c,
        &Request::Inject {
            pd: pd("hello_logger"),
            kind: FaultKind::BitFlip,
            at: None,
        },
    );
    let Reply::Injected(Injected::BitFlip(t)) = r else {
        panic!("{}", b.failure(format!("bit flip answered {r:?}")))
    };
    check(b.expect(
        &format!(
            "monitor: control injected bit-flip ({} bit {}) into hello_logger",
            t.register_name(),
            t.bit
        ),
        DEFAULT_TIMEOUT,
    ));
    // Long enough for a hang to be found (200 ms heartbeat) and a restart to be done.
    std::thread::sleep(Duration::from_secs(3));
    let rows = ok(&mut b, "status after the bit flip", c.status());
    let logger = row(&rows, "hello_logger");
    assert!(
        matches!(logger.state, PdState::Running | PdState::Restarting { .. }),
        "{logger:?}"
    );

    // A bit of the logger's code flipped below it: code scrubbing finds the page within a
    // round (a step every 250 ms, one PD each) and the monitor restarts it from its image.
    // Should the flipped instruction run first and fault, that restart undoes it too; then
    // another try (three at most: most of a PD's text does not run in its loop).
    let mut scrubbed = false;
    for _ in 0..3 {
        let r = inject_running(
            &mut b,
            &mut c,
            &Request::Inject {
                pd: pd("hello_logger"),
                kind: FaultKind::CodeFlip,
                at: None,
            },
        );
        let Reply::Injected(Injected::CodeFlip { vaddr, old, new }) = r else {
            panic!("{}", b.failure(format!("code flip answered {r:?}")))
        };
        assert_eq!((old ^ new).count_ones(), 1, "one bit: {old:#x} -> {new:#x}");
        check(b.expect(
            &format!("monitor: control injected code-flip ({vaddr:#x}: {old:#x} -> {new:#x}) into hello_logger"),
            DEFAULT_TIMEOUT,
        ));
        let line = check(b.expect("monitor: restarted hello_logger (cause: ", DEFAULT_TIMEOUT));
        if line.contains(&format!("code corrupt in page {:#x}", vaddr & !0xfff)) {
            scrubbed = true;
            break;
        }
    }
    if !scrubbed {
        panic!("{}", b.failure("three code flips, none found by scrubbing"));
    }
}

/// Asks `req`, an injection, again while the PD is not running (`BadState`: a restart of an
/// earlier injection's making under way): the answer once it ran.
fn inject_running(b: &mut Boot, c: &mut Client, req: &Request) -> Reply {
    for _ in 0..60 {
        match ok(b, "inject", c.ask(req)) {
            Reply::Error(Error::BadState) => std::thread::sleep(Duration::from_millis(500)),
            r => return r,
        }
    }
    let f = b.failure(format!("{req:?}: never running"));
    panic!("{f}")
}

/// Two free UDP ports on 127.0.0.1 (bound together, then released: QEMU takes them).
fn free_ports() -> [u16; 2] {
    let bind = || std::net::UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
    let socks = [bind(), bind()];
    socks.map(|s| s.local_addr().expect("bound").port())
}

/// Datagram `seq` to the echo client at host port `port` until its own answer comes back
/// (tries of 250 ms, earlier datagrams' late answers skipped): whether it did in `tries`.
fn echoed(sock: &std::net::UdpSocket, port: u16, seq: u32, tries: u32) -> bool {
    let msg = format!("ctl {seq:06} ring corruption");
    let mut buf = [0u8; 256];
    for _ in 0..tries {
        if sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_err() {
            return false;
        }
        let deadline = std::time::Instant::now() + Duration::from_millis(250);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let _ = sock.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match sock.recv_from(&mut buf) {
                Ok((n, _)) if &buf[..n] == msg.as_bytes() => return true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    false
}

/// Issue #17: `inject echo_a ring-corruption` on `tests/systems/control-net.system` (the
/// network's resilient echo with the control plane). The monitor picks echo_a's ring
/// region and, echo_a being the client there (it depends on net_virt), the index it writes:
/// its request tail, which the root task scribbles out of range. The virtualiser's
/// validation finds the overrun and reports echo_a, the monitor restarts it, and echo_b
/// answers throughout; echo_a answers again once restarted.
#[test]
fn ring_corruption_restarts_the_pd_at_fault_gicv3() {
    use axolotl_qemu::{Machine, Net};
    let sock = socket("ring-gic3");
    let (dir, board) = images_and_gicv3_board();
    let ports = free_ports();
    let mut m = Machine::new(board);
    m.uart1 = Some(format!("socket,path={},server=on,wait=off", sock.display()));
    m.net = Some(Net {
        udp_forwards_to: vec![(ports[0], [10, 0, 2, 15], 7), (ports[1], [10, 0, 2, 16], 7)],
        ..Net::default()
    });
    let image = dir.join(format!("{}-gic3-control-net.elf", board.name));
    let mut b = check(axolotl_tests::start_image(&m, &image));
    // Each in its own time: the PDs start in an order of their priorities and dependencies.
    for line in [
        "net_virt: generation 0: routing for 2 clients",
        "echo_a: generation 0: ",
        "echo_b: generation 0: ",
        "control: generation 0: serving the host through the serial driver",
    ] {
        check(b.expect_chain(&[line], DEFAULT_TIMEOUT));
    }
    let udp = [
        std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket"),
        std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket"),
    ];
    for seq in 0..5 {
        for i in 0..2 {
            if !echoed(&udp[i], ports[i], seq, 80) {
                check::<()>(Err(b.failure(format!("echo {i} {seq}: no answer before"))));
            }
        }
    }
    let mut c = ok(
        &mut b,
        "connect",
        Client::connect(&sock, Duration::from_secs(120)),
    );
    let r = ok(
        &mut b,
        "inject echo_a ring-corruption",
        c.ask(&Request::Inject {
            pd: pd("echo_a"),
            kind: FaultKind::RingCorruption,
            at: None,
        }),
    );
    let Reply::Injected(Injected::RingCorruption {
        region,
        offset,
        word,
        old,
        new,
    }) = r
    else {
        panic!("{}", b.failure(format!("ring corruption answered {r:?}")))
    };
    assert_eq!(
        (region.as_str(), offset, word),
        ("a_rings", 128, RingWord::RequestTail)
    );
    assert_eq!(old ^ new, 0x8000_0000);
    check(b.expect(
        &format!(
            "monitor: control injected ring-corruption (a_rings+0x80, request tail: {old:#x} -> {new:#x}) into echo_a"
        ),
        DEFAULT_TIMEOUT,
    ));
    // Traffic to echo_a makes the virtualiser look at its ring; echo_b answers all along.
    for seq in 5..25 {
        for i in [1, 0] {
            if !echoed(&udp[i], ports[i], seq, 80) {
                check::<()>(Err(b.failure(format!("echo {i} {seq}: no answer after"))));
            }
        }
    }
    check(b.expect_chain(
        &[
            "net_virt: echo_a is corrupt (",
            "monitor: restarted echo_a (cause: corruption reported by pd",
            "echo_a: generation 1: ",
        ],
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status after the corruption", c.status());
    assert_eq!(row(&rows, "echo_a").generation, 1, "{rows:?}");
    for pd_ in ["net_driver", "net_virt", "echo_b"] {
        assert_eq!(row(&rows, pd_).generation, 0, "{pd_}: {rows:?}");
    }
    axolotl_tests::refute_each(&mut b, &["PD PANIC", "KERNEL PANIC", "holding"]);
}

/// A ring word the serial driver writes in one of control's two connections scribbled over
/// (control-pd's campaign, its commonest undetected case): control finds its connection broken
/// and, the driver's only client, reports the driver; the monitor restarts it, both
/// connections resynchronise and control serves the host again. Without the report control
/// stalled for good while answering its heartbeats.
fn a_broken_driver_connection_is_reported(gic: u8) {
    let (mut b, mut c) = boot_control_inject(gic, "ctlring");
    // control-pd's own crash (its fifth request) out of the way first.
    ok(&mut b, "status", c.status());
    ok(&mut b, "status", c.status());
    // The monitor picks which of the two connections' request head to scribble, and the
    // driver writes its own position back at its next move (sealed positions), so control
    // sees a scribble only if it reads the word in between: most injections change nothing.
    // Each must leave the system serving (without the report, one control sees stalls it for
    // good, and the status after it fails); once control has seen one, it reported the
    // driver and the monitor restarted it.
    let reported = "control: reported the serial driver, restarted: true";
    for _ in 0..24 {
        let _ = c.ask(&Request::Inject {
            pd: pd("serial_driver"),
            kind: FaultKind::RingCorruption,
            at: None,
        });
        let rows = ok(&mut b, "status after the corruption", c.status());
        assert_eq!(row(&rows, "control").state, PdState::Running, "{rows:?}");
        if b.console().contains(reported) {
            break;
        }
    }
    if b.console().contains(" connection: Corrupt(") {
        check(b.expect_chain(
            &[
                " connection: Corrupt(",
                "monitor: restarted serial_driver (cause: corruption reported by pd",
                reported,
            ],
            DEFAULT_TIMEOUT,
        ));
    } else {
        eprintln!("no scribble was seen by control in 24 injections: only serving was checked");
    }
    axolotl_tests::refute_each(&mut b, &["KERNEL PANIC", "holding"]);
}

#[test]
fn a_broken_driver_connection_is_reported_gicv3() {
    a_broken_driver_connection_is_reported(3);
}

#[test]
fn a_broken_driver_connection_is_reported_gicv2() {
    a_broken_driver_connection_is_reported(2);
}

/// control stops taking input after its second frame while its event loop runs on and answers
/// the monitor's pings (`inject_deaf`, the control campaign's id 683: a stack pointer flipped
/// by two). Its heartbeat watch finds the host's request waiting with no reply owed to the
/// driver and fail-stops; the monitor restarts it and the CLI's retry is answered. Without the
/// watch nobody saw the stall: every status after the second request went unanswered.
#[test]
fn control_that_stops_taking_input_restarts_itself_gicv3() {
    let (mut b, mut c) = boot_control(3, "-control-deaf-gicv3", "deaf");
    // A status is six requests: the third finds control deaf.
    let rows = ok(&mut b, "status", c.status());
    assert_eq!(sorted_names(&rows).len(), PDS.len(), "{rows:?}");
    check(b.expect_chain(
        &[
            "control: input waited ",
            "monitor: restarted control (cause: panic",
            "control: generation 1: serving the host through the serial driver",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The next incarnation serves on; nothing else was restarted.
    let rows = ok(&mut b, "status after the restart", c.status());
    let control = row(&rows, "control");
    assert_eq!(control.state, PdState::Running, "{rows:?}");
    assert_eq!(control.generation, 1, "{rows:?}");
    assert_eq!(row(&rows, "serial_driver").restarts, 0, "{rows:?}");
    axolotl_tests::refute_each(&mut b, &["KERNEL PANIC", "holding"]);
}

/// control damages one byte of the first reply it relays (`inject_garble`: the first byte
/// of serial_driver's name in its status row), as a fault in its relay would (the control
/// campaign's id 463, where a code flip in control's decoding showed the host wrong memory
/// figures). The CRC the host checks is the monitor's, over the monitor's bytes: the damaged
/// reply is never shown, the CLI asks again and every row is right. A relay that decoded
/// the monitor's reply and framed it anew (control before 4e8da52) would have passed
/// "rerial_driver" on under a CRC of its own.
#[test]
fn a_reply_damaged_in_control_s_relay_is_never_shown_gicv3() {
    let (mut b, mut c) = boot_control(3, "-control-garble-gicv3", "garble");
    let rows = ok(&mut b, "status", c.status());
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, PDS, "{rows:?}");
    check(b.expect_all(
        &["control: fault injection: damaged byte 7 of the monitor's reply"],
        DEFAULT_TIMEOUT,
    ));
    axolotl_tests::refute_each(&mut b, &["KERNEL PANIC", "holding"]);
}

/// control stops signalling the driver from its event loop once its first incarnation served
/// two frames (`inject_mute`), as a flipped `notify` flag would (the confirmation campaign's
/// ids 165 and 215: control answered pings, the host never again). Its heartbeat signals the
/// driver on both connections and polls both: every request is still answered. Without
/// those signals the status's third request went unanswered.
#[test]
fn signals_lost_by_control_are_redone_at_its_heartbeat_gicv3() {
    let (mut b, mut c) = boot_control(3, "-control-mute-gicv3", "mute");
    let rows = ok(&mut b, "status", c.status());
    assert_eq!(sorted_names(&rows).len(), PDS.len(), "{rows:?}");
    // Requests 3 and 4 were served by the muted incarnation: it reached its fifth, where
    // every test system's control crashes (its other hook); the next one serves on.
    check(b.expect_all(
        &["control: fault injection: crashing before answering request 5"],
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status again", c.status());
    let control = row(&rows, "control");
    assert_eq!(control.state, PdState::Running, "{rows:?}");
    assert_eq!(control.generation, 1, "{rows:?}");
    axolotl_tests::refute_each(
        &mut b,
        &["KERNEL PANIC", "holding", "control: input waited"],
    );
}

/// Guest boots under QEMU's TCG take minutes on a loaded machine.
const GUEST_BOOT: Duration = Duration::from_secs(300);

/// VM `linux` of `tests/systems/control-vm-gicv3.system` rebooted, stopped and started from
/// the host (issue #17): each start boots the guest afresh through a fresh restart of its
/// VMM; a stop holds the VMM with the guest's vCPUs; the wrong state is `BadState`.
#[test]
fn vm_reboot_stop_and_start_gicv3() {
    let sock = socket("vm-gic3");
    let backend = format!("socket,path={},server=on,wait=off", sock.display());
    let mut b = check(boot_with_uart1(
        3,
        "cortex-a72",
        "-control-vm-gicv3",
        Some(&backend),
    ));
    check(b.expect_all(
        &[
            "vmm: guest started at 0x40000000",
            "Run /init as init process",
            "AXOLOTL-GUEST-DONE",
        ],
        GUEST_BOOT,
    ));
    let mut c = ok(
        &mut b,
        "connect",
        Client::connect(&sock, Duration::from_secs(120)),
    );
    let vm = |op| Request::Vm {
        name: name("linux").unwrap(),
        op,
    };
    let rows = ok(&mut b, "status", c.status());
    let vmm = row(&rows, "vmm");
    assert_eq!(vmm.vm.as_deref(), Some("linux"), "{vmm:?}");
    assert_eq!(row(&rows, "control").vm, None);

    // A running VM cannot be started; an unknown one is unknown.
    let r = ok(&mut b, "vm start (running)", c.ask(&vm(VmOp::Start)));
    assert_eq!(r, Reply::Error(Error::BadState));
    let r = ok(
        &mut b,
        "vm reboot nobody",
        c.ask(&Request::Vm {
            name: name("nobody").unwrap(),
            op: VmOp::Reboot,
        }),
    );
    assert_eq!(r, Reply::Error(Error::UnknownName));

    ok(&mut b, "vm reboot", c.act(&vm(VmOp::Reboot)));
    check(b.expect_all(
        &[
            "monitor: control asked VM linux to reboot",
            "vmm: generation 1: starting the guest afresh (asked for)",
            "vmm: guest started at 0x40000000",
            "Run /init as init process",
            "AXOLOTL-GUEST-DONE",
        ],
        GUEST_BOOT,
    ));

    ok(&mut b, "vm stop", c.act(&vm(VmOp::Stop)));
    check(b.expect("monitor: control asked VM linux to stop", DEFAULT_TIMEOUT));
    let rows = ok(&mut b, "status (stopped)", c.status());
    let vmm = row(&rows, "vmm");
    assert!(matches!(vmm.state, PdState::Held { .. }), "{vmm:?}");
    for op in [VmOp::Stop, VmOp::Reboot] {
        let r = ok(&mut b, "vm stop/reboot (stopped)", c.ask(&vm(op)));
        assert_eq!(r, Reply::Error(Error::BadState), "{op:?}");
    }

    // The monitor crashes (its hook, once it restarted kill_monitor) while the VM is
    // stopped: the restarted one learns from its journal that the VMM's hold is a `vm
    // stop`, so a plain release boots the guest afresh (taking up the stopped one would
    // leave it frozen, its vCPUs stopped).
    let r = ok(
        &mut b,
        "inject kill_monitor crash",
        c.ask(&Request::Inject {
            pd: name("kill_monitor").unwrap(),
            kind: FaultKind::Crash,
            at: None,
        }),
    );
    assert_eq!(r, Reply::Injected(Injected::Done));
    check(b.expect_all(
        &[
            "monitor: restarted kill_monitor (cause: vm-fault exec at 0x700000000",
            "monitor: fault injection: crashing the monitor",
            "root-task: monitor: restarted monitor (cause: vm-fault write at 0x700000000",
        ],
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status (stopped, monitor restarted)", c.status());
    let vmm = row(&rows, "vmm");
    assert_eq!(
        vmm.state,
        PdState::Held {
            reason: axolotl_control_proto::text("its VM stopped by the operator")
        },
        "{vmm:?}"
    );
    ok(
        &mut b,
        "release vmm",
        c.act(&Request::Release {
            pd: name("vmm").unwrap(),
        }),
    );
    check(b.expect_all(
        &[
            "vmm: generation 2: starting the guest afresh (asked for)",
            "vmm: guest started at 0x40000000",
            "Run /init as init process",
            "AXOLOTL-GUEST-DONE",
        ],
        GUEST_BOOT,
    ));
    let rows = ok(&mut b, "status (released)", c.status());
    let vmm = row(&rows, "vmm");
    assert_eq!(
        (&vmm.state, vmm.generation),
        (&PdState::Running, 2),
        "{vmm:?}"
    );

    // Stopped again, and started: afresh (the guest's boot begins; its end is the test
    // above's).
    ok(&mut b, "vm stop (again)", c.act(&vm(VmOp::Stop)));
    ok(&mut b, "vm start", c.act(&vm(VmOp::Start)));
    check(b.expect_all(
        &[
            "monitor: control asked VM linux to start",
            "vmm: generation 3: starting the guest afresh (asked for)",
            "vmm: guest started at 0x40000000",
        ],
        GUEST_BOOT,
    ));
    let rows = ok(&mut b, "status (started)", c.status());
    let vmm = row(&rows, "vmm");
    assert_eq!(
        (&vmm.state, vmm.generation),
        (&PdState::Running, 3),
        "{vmm:?}"
    );
    axolotl_tests::refute_each(&mut b, &["PD PANIC", "recovery failed", "KERNEL PANIC"]);
}

/// Issue #17 against a running gateway (`tests/systems/control-gateway-gicv3.system`): the
/// Debian guest serves HTTP from its disk, its console input on UART1, and the control plane
/// reaches the host over a virtio-console (virtio-mmio transport 29) served by
/// `virtio-console-driver`. `status` lists every PD and names the VM; `inject net_driver
/// crash` restarts the NIC's driver while the guest goes on serving; `restart
/// control_driver` restarts the plane's own transport, whose next incarnation resets the
/// device and carries the answer; the guest's disk check passes after all of it.
#[test]
fn control_over_virtio_console_on_a_running_gateway_gicv3() {
    use axolotl_guest_artifacts::{disk, io};
    use axolotl_qemu::{Machine, Net};
    use axolotl_tests::http::{TmpDir, free_port, http_get};

    let tmp = TmpDir::new("axolotl-control-gateway");
    let img = tmp.0.join("data.img");
    disk::make_data_disk(&img).expect("data disk");
    let sock = socket("gateway-gic3");
    let (dir, board) = images_and_gicv3_board();
    let port = free_port();
    let mut m = Machine::new(board);
    m.disk = Some(img.clone());
    m.net = Some(Net {
        tcp_forwards: vec![(port, 80)],
        ..Net::default()
    });
    m.control_console(&sock);
    let image = dir.join(format!("{}-gic3-control-gateway-gicv3.elf", board.name));
    let mut b = check(axolotl_tests::start_image(&m, &image));
    check(b.expect_all(
        &[
            "serial_driver: generation 0: serving 1 clients on virtio-console",
            "control: generation 0: serving the host",
            io::HTTPD_MARKER,
        ],
        GUEST_BOOT,
    ));
    let get = |b: &mut Boot, what: &str| match http_get(port, "/") {
        Ok((200, body)) if body == disk::web_file("index.html").unwrap() => {}
        other => check::<()>(Err(b.failure(format!("GET / {what}: {other:?}")))),
    };
    get(&mut b, "before");
    let mut c = ok(
        &mut b,
        "connect",
        Client::connect(&sock, Duration::from_secs(120)),
    );

    // Every PD, and the VM its VMM runs. (control-pd's first incarnation, built for tests,
    // crashes on its fifth request: the client's retry gets the answer from the next one.)
    let rows = ok(&mut b, "status", c.status());
    let names = sorted_names(&rows);
    assert_eq!(
        names,
        [
            "blk_driver",
            "control",
            "control_driver",
            "echo_b",
            "monitor",
            "net_driver",
            "net_virt",
            "serial_driver",
            "vmm",
        ],
        "{rows:?}"
    );
    assert_eq!(
        row(&rows, "vmm").vm.as_ref().map(|v| v.as_str()),
        Some("linux"),
        "{rows:?}"
    );
    get(&mut b, "after status");

    // The NIC's driver crashes for real while the guest serves.
    let r = ok(
        &mut b,
        "inject net_driver crash",
        c.ask(&Request::Inject {
            pd: pd("net_driver"),
            kind: FaultKind::Crash,
            at: None,
        }),
    );
    assert_eq!(r, Reply::Injected(Injected::Done), "{r:?}");
    check(b.expect_chain(
        &[
            "monitor: restarted net_driver (cause: vm-fault exec at 0x700000000",
            "net_driver: generation 1: ",
        ],
        DEFAULT_TIMEOUT,
    ));
    // A connection the crash cut may need a second try (TCP resends, a test's GET may time
    // out first); the guest itself goes on serving.
    for k in 0..5 {
        if http_get(port, "/").is_err() {
            get(&mut b, &format!("after the crash (GET {k}, second try)"));
        }
    }

    // The plane's own transport restarted: the new driver resets the device and answers.
    ok(
        &mut b,
        "restart control_driver",
        c.act(&Request::Restart {
            pd: pd("control_driver"),
            if_generation: None,
        }),
    );
    check(b.expect_chain(
        &[
            "monitor: restarted control_driver (requested by control)",
            "serial_driver: generation 1: serving 1 clients on virtio-console",
        ],
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status after the restarts", c.status());
    for (p, g) in [
        ("net_driver", 1),
        ("control_driver", 1),
        ("blk_driver", 0),
        ("serial_driver", 0),
        ("vmm", 0),
    ] {
        assert_eq!(row(&rows, p).generation, g, "{p}: {rows:?}");
    }
    get(&mut b, "at the end");
    let verdict = check(b.expect("gateway-guest: diskcheck", GUEST_BOOT));
    if !verdict.starts_with(io::DISKCHECK_OK) {
        check::<()>(Err(b.failure(format!("disk check failed: {verdict}"))));
    }
    axolotl_tests::refute_each(
        &mut b,
        &[
            "PD PANIC",
            "KERNEL PANIC",
            "holding",
            "broke virtio's rules",
            io::FAILED_MARKER,
        ],
    );
}

/// Issue #17's "against a running resilient-echo": control over the virtio-console beside
/// resilient-echo's serial driver, which keeps UART1. The operator sees every PD, crashes the
/// serial driver through the plane (the monitor restarts it, status says so with the cause),
/// holds and releases it, and input typed into UART1 afterwards still reaches echo_rx.
#[test]
fn control_over_virtio_console_beside_resilient_echo_gicv3() {
    use axolotl_qemu::Machine;
    use axolotl_tests::uart1_pipes;
    use std::io::Write;

    let sock = socket("echo-gic3");
    let pipes = uart1_pipes("control-echo");
    let (dir, board) = images_and_gicv3_board();
    let mut m = Machine::new(board);
    m.uart1 = Some(format!("pipe,path={}", pipes.join("u").display()));
    m.control_console(&sock);
    let image = dir.join(format!("{}-gic3-control-echo-gicv3.elf", board.name));
    let mut b = check(axolotl_tests::start_image(&m, &image));
    check(b.expect_all(
        &[
            "serial_driver: generation 0: serving 2 clients on UART1",
            "serial_driver: generation 0: serving 1 clients on virtio-console",
            "control: generation 0: serving the host",
            "echo_rx: generation 0: listening on UART1",
        ],
        DEFAULT_TIMEOUT,
    ));
    let mut c = ok(
        &mut b,
        "connect",
        Client::connect(&sock, Duration::from_secs(120)),
    );
    let rows = ok(&mut b, "status", c.status());
    let names = sorted_names(&rows);
    assert_eq!(
        names,
        [
            "client_a",
            "client_b",
            "control",
            "control_driver",
            "echo_rx",
            "monitor",
            "serial_driver",
        ],
        "{rows:?}"
    );

    let r = ok(
        &mut b,
        "inject serial_driver crash",
        c.ask(&Request::Inject {
            pd: pd("serial_driver"),
            kind: FaultKind::Crash,
            at: None,
        }),
    );
    assert_eq!(r, Reply::Injected(Injected::Done), "{r:?}");
    check(b.expect_chain(
        &[
            "monitor: restarted serial_driver (cause: vm-fault exec at 0x700000000",
            "serial_driver: generation 1: serving 2 clients on UART1",
        ],
        DEFAULT_TIMEOUT,
    ));
    let rows = ok(&mut b, "status after the crash", c.status());
    let s = row(&rows, "serial_driver");
    assert_eq!(s.generation, 1, "{rows:?}");
    assert!(
        s.last_cause
            .as_deref()
            .is_some_and(|c| c.contains("vm-fault")),
        "{rows:?}"
    );
    for p in ["client_a", "client_b", "echo_rx", "control_driver"] {
        assert_eq!(row(&rows, p).generation, 0, "{p}: {rows:?}");
    }

    // Held and released through the plane: released, it is restarted (generation 2).
    ok(
        &mut b,
        "hold serial_driver",
        c.act(&Request::Hold {
            pd: pd("serial_driver"),
        }),
    );
    let rows = ok(&mut b, "status while held", c.status());
    assert!(
        matches!(row(&rows, "serial_driver").state, PdState::Held { .. }),
        "{rows:?}"
    );
    ok(
        &mut b,
        "release serial_driver",
        c.act(&Request::Release {
            pd: pd("serial_driver"),
        }),
    );
    check(b.expect(
        "serial_driver: generation 2: serving 2 clients on UART1",
        DEFAULT_TIMEOUT,
    ));

    // The echo's own line works through all of it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(pipes.join("u.in"))
        .and_then(|mut f| f.write_all(b"after the plane\n"))
        .expect("type into UART1");
    check(b.expect("echo_rx: received \"after the plane\"", DEFAULT_TIMEOUT));
    let _ = std::fs::remove_dir_all(&pipes);
    axolotl_tests::refute_each(
        &mut b,
        &["PD PANIC", "KERNEL PANIC", "broke virtio's rules"],
    );
}
