//! Issue #5's demo: `systems/resilient-echo.system`, an IRQ-driven PL011 driver PD (QEMU
//! `virt`'s UART1) serving two clients over lib/ring, and `tests/systems/resilient-echo-crash.system`,
//! the same with a driver that crashes (a wild write) after 30 completed messages in
//! generation 0. The monitor restarts it from its pristine image; both clients must still see
//! each of their 100 messages complete exactly once and in order (`SeqClient` checks every
//! completion and prints `ERROR` on any broken promise).

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use axolotl_qemu::Boot;
use axolotl_tests::{DEFAULT_TIMEOUT, boot_with_uart1, check, uart1_pipes};

const CLIENTS: [&str; 2] = ["client_a", "client_b"];

/// Waits until each client has printed its final line (in whatever order they finish) and
/// returns those lines.
fn done_lines(b: &mut Boot) -> Vec<String> {
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    loop {
        let console = b.console();
        let lines: Vec<String> = CLIENTS
            .iter()
            .filter_map(|c| {
                let needle = format!("{c}: done: 100 messages completed in order, exactly once");
                console
                    .lines()
                    .find(|l| l.contains(&needle))
                    .map(str::to_string)
            })
            .collect();
        if lines.len() == CLIENTS.len() {
            return lines;
        }
        if Instant::now() >= deadline {
            check::<()>(Err(
                b.failure("timed out waiting for both clients to finish")
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn refute_all(b: &mut Boot, extra: &[&str]) {
    for bad in [
        "ERROR",
        "cannot start",
        "corrupt",
        "IRQ ack failed",
        "KERNEL PANIC",
        "kernel: FAULT",
        "refused",
        "failed:",
    ]
    .iter()
    .chain(extra)
    {
        check(b.refute(bad));
    }
}

/// Lines typed into UART1 once the system is idle: only the RX interrupt can wake the driver.
const LINES_TYPED: u32 = 20;

fn serves_both_clients(gic: u8) {
    let dir = uart1_pipes(&format!("echo-gic{gic}"));
    let backend = format!("pipe,path={}", dir.join("u").display());
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo",
        Some(&backend),
    ));
    check(b.expect_all(
        &[
            "root-task: system up: 4 protection domains and the monitor started",
            "serial_driver: generation 0: serving 2 clients on UART1 (ring generation 1), receiving for echo_rx",
            "echo_rx: generation 0: listening on UART1",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The driver is pinged for heartbeats (and answers: no hang restart below).
    if !b
        .console()
        .contains("monitor: watching 4 PDs (generation 0), 1 with heartbeats")
    {
        check::<()>(Err(b.failure("the monitor watches no heartbeats")));
    }
    let lines = done_lines(&mut b);
    // Everything is idle now (echo_rx has the lowest priority): type into UART1. QEMU holds
    // both FIFOs open read-write, so opening u.in does not block. A line at a time, 100 ms
    // apart: the heartbeat's ping also makes the driver poll, and a poll that comes between
    // a burst's arrival and its interrupt takes the bytes first (the interrupt then finds
    // the FIFO empty: seen once in a full suite with all lines typed as one burst); twenty
    // bursts cannot all meet a ping every 250 ms.
    let mut u = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("u.in"))
        .expect("open UART1's input");
    for i in 1..=LINES_TYPED {
        u.write_all(format!("ping {i}\n").as_bytes())
            .expect("type into UART1");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Receive: every line, in order, none lost.
    for i in 1..=LINES_TYPED {
        check(b.expect(&format!("echo_rx: received \"ping {i}\""), DEFAULT_TIMEOUT));
    }
    // The idle driver was woken by IRQ 40 with a receive cause (RX, or RX timeout). Looked
    // up after the lines, not in order with them: a heartbeat poll may take the first bytes
    // before the interrupt is taken, so its line may come after some echoes.
    axolotl_tests::expect_woken_by_receive_interrupt(&mut b, 0x50);
    let _ = std::fs::remove_dir_all(&dir);
    for line in lines {
        assert!(
            line.ends_with("(sent 100, resubmitted 0, driver restarts 0, errors 0)"),
            "{line}"
        );
    }
    let console = b.console();
    for c in CLIENTS {
        for mark in [20, 40, 60, 80, 100] {
            let p = format!("{c}: {mark} completed in order");
            if !console.contains(&p) {
                check::<()>(Err(b.failure(format!("missing {p:?}"))));
            }
        }
    }
    refute_all(
        &mut b,
        &["monitor: restarted", "serial_driver: generation 1"],
    );
}

fn survives_driver_crash(gic: u8) {
    // UART1's output (the wire) goes to a file.
    let wire = std::env::temp_dir().join(format!(
        "axolotl-uart1-crash-gic{gic}-{}.txt",
        std::process::id()
    ));
    let backend = format!("file,path={}", wire.display());
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo-crash",
        Some(&backend),
    ));
    check(b.expect_all(
        &[
            "root-task: system up: 3 protection domains and the monitor started",
            "serial_driver: generation 0: serving 2 clients on UART1 (ring generation 1)",
            "serial_driver: fault injection: wild write after",
            "monitor: restarted serial_driver (cause: vm-fault write at 0x700000000 ip 0x",
            // depends_on: the clients are signalled on their channel to the driver.
            "monitor: told client_a, client_b that serial_driver restarted",
            "serial_driver: generation 1: serving 2 clients on UART1 (ring generation 2)",
        ],
        DEFAULT_TIMEOUT,
    ));
    let lines = done_lines(&mut b);
    let mut restarts_seen = 0;
    let mut resubmitted = 0;
    for line in &lines {
        resubmitted += line
            .split("resubmitted ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no resubmitted count in {line:?}"));
        // Every seq completed exactly once and in order (the client checks each completion),
        // none lost: 100 first submissions, 100 completions, no errors.
        assert!(line.contains("(sent 100, resubmitted "), "{line}");
        assert!(line.ends_with(", errors 0)"), "{line}");
        if line.contains("driver restarts 1,") {
            restarts_seen += 1;
        } else {
            // A client may have had nothing connected to generation 0 yet.
            assert!(line.contains("driver restarts 0,"), "{line}");
        }
    }
    assert!(
        restarts_seen >= 1,
        "no client saw the driver restart: {lines:?}"
    );
    // The driver died with requests submitted but not taken: they came back (reclaimed)
    // and were sent again, each still completing once.
    assert!(resubmitted >= 1, "nothing was reclaimed: {lines:?}");
    // The wire is at-least-once: every message is there as a whole line (a message the dead
    // driver had started may also appear cut short or twice).
    let text = std::fs::read_to_string(&wire).unwrap_or_default();
    let _ = std::fs::remove_file(&wire);
    for c in CLIENTS {
        for seq in 0..100 {
            let m = format!("{c} {seq}");
            if !text.lines().any(|l| l.ends_with(&m)) {
                check::<()>(Err(
                    b.failure(format!("{m:?} is not on the wire; UART1 got:\n{text}"))
                ));
            }
        }
    }
    refute_all(&mut b, &["serial_driver: generation 2", "monitor: holding"]);
}

#[test]
fn resilient_echo_serves_both_clients_gicv3() {
    serves_both_clients(3);
}

#[test]
fn resilient_echo_serves_both_clients_gicv2() {
    serves_both_clients(2);
}

#[test]
fn resilient_echo_survives_driver_crash_gicv3() {
    survives_driver_crash(3);
}

#[test]
fn resilient_echo_survives_driver_crash_gicv2() {
    survives_driver_crash(2);
}

/// Issue #5 (3): the driver corrupts client_a's response ring indices (test-only driver,
/// tests/systems/resilient-echo-scribble.system). client_a detects the index overrun instead of
/// following it, reports the driver to the monitor through its fault endpoint, the monitor
/// restarts the driver, and both clients still complete every message exactly once, in order.
fn survives_ring_corruption(gic: u8) {
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo-scribble",
        None,
    ));
    check(b.expect_all(
        &[
            "serial_driver: generation 0: serving 2 clients on UART1 (ring generation 1)",
            "serial_driver: fault injection: scribbling client_a's response ring indices",
            "client_a: ERROR: Ring(Corrupt(IndexOverrun",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The monitor answers the report at once and restarts the driver after its backoff.
    check(b.expect_chain(
        &["client_a: reported the driver, restarted: true"],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(
        &[
            "monitor: restarted serial_driver (cause: corruption reported by pd 1) generation 1 in",
            "serial_driver: generation 1: serving 2 clients on UART1 (ring generation 2)",
        ],
        DEFAULT_TIMEOUT,
    ));
    for line in done_lines(&mut b) {
        assert!(line.contains("(sent 100, resubmitted "), "{line}");
        if line.starts_with("client_a") {
            assert!(line.contains("driver restarts 1,"), "{line}");
        } else {
            // The driver keeps serving during its restart backoff: client_b may be done
            // before the restart.
            assert!(
                line.contains("driver restarts 1,") || line.contains("driver restarts 0,"),
                "{line}"
            );
        }
        // The one error is the detection itself.
        let errors = if line.starts_with("client_a") { 1 } else { 0 };
        assert!(line.ends_with(&format!(", errors {errors})")), "{line}");
    }
    // The one ERROR and "corruption" lines above are expected; nothing else may go wrong.
    let console = b.console();
    if console.matches("ERROR").count() != 1 {
        check::<()>(Err(
            b.failure("expected exactly one ERROR line (the detection)")
        ));
    }
    for bad in [
        "serial_driver: generation 2",
        "monitor: holding",
        "cannot start",
        "KERNEL PANIC",
        "kernel: FAULT",
        "refused",
        "failed:",
    ] {
        check(b.refute(bad));
    }
}

#[test]
fn resilient_echo_survives_ring_corruption_gicv3() {
    survives_ring_corruption(3);
}

#[test]
fn resilient_echo_survives_ring_corruption_gicv2() {
    survives_ring_corruption(2);
}

/// Issue #21 (the campaign's silent failures): the driver kills client_a's connection and
/// reports nothing (test-only driver, tests/systems/resilient-echo-silent.system): it runs,
/// serves client_b and would answer heartbeats, so neither the ring nor the monitor sees a
/// thing. client_a's deadline, checked at its heartbeat pings, does: it reports the driver,
/// the monitor restarts it, and both clients complete every message exactly once, in order.
fn survives_silent_connection_loss(gic: u8) {
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo-silent",
        None,
    ));
    check(b.expect_chain(
        &[
            "serial_driver: generation 0: serving 2 clients on UART1 (ring generation 1)",
            "serial_driver: fault injection: flipping bit 24 of client_a's request tail",
            "serial_driver: fault injection: client Tx(0) is corrupt; not reporting it",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "client_a: no completion in ",
            "client_a: reported the driver, restarted: true",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(
        &[
            "monitor: restarted serial_driver (cause: corruption reported by pd ",
            "serial_driver: generation 1: serving 2 clients on UART1 (ring generation 2)",
        ],
        DEFAULT_TIMEOUT,
    ));
    for line in done_lines(&mut b) {
        assert!(line.contains("(sent 100, resubmitted "), "{line}");
        assert!(line.ends_with(", errors 0)"), "{line}");
        if line.starts_with("client_a") {
            assert!(line.contains("driver restarts 1,"), "{line}");
        }
    }
    for bad in [
        "serial_driver: generation 2",
        "client_b: no completion",
        "monitor: holding",
        "cannot start",
        "KERNEL PANIC",
        "kernel: FAULT",
        "ERROR",
    ] {
        check(b.refute(bad));
    }
}

#[test]
fn resilient_echo_survives_silent_connection_loss_gicv3() {
    survives_silent_connection_loss(3);
}

#[test]
fn resilient_echo_survives_silent_connection_loss_gicv2() {
    survives_silent_connection_loss(2);
}

/// Issue #5: the driver hangs (test-only driver that busy-loops forever after 30 completed
/// messages, tests/systems/resilient-echo-hang.system, heartbeat_ms 100). It no longer
/// answers the monitor's heartbeat pings; after two silent periods the monitor restarts it
/// with cause hang, and both clients still see every message complete exactly once, in order.
fn survives_driver_hang(gic: u8) {
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo-hang",
        None,
    ));
    check(b.expect_all(
        &[
            "monitor: watching 3 PDs (generation 0), 1 with heartbeats",
            "serial_driver: generation 0: serving 2 clients on UART1 (ring generation 1)",
            "serial_driver: fault injection: hanging after",
            "monitor: restarted serial_driver (cause: hang (no heartbeat in 100 ms)) generation 1 in",
            "serial_driver: generation 1: serving 2 clients on UART1 (ring generation 2)",
        ],
        DEFAULT_TIMEOUT,
    ));
    let lines = done_lines(&mut b);
    let mut restarts_seen = 0;
    for line in &lines {
        assert!(line.contains("(sent 100, resubmitted "), "{line}");
        assert!(line.ends_with(", errors 0)"), "{line}");
        if line.contains("driver restarts 1,") {
            restarts_seen += 1;
        } else {
            assert!(line.contains("driver restarts 0,"), "{line}");
        }
    }
    assert!(
        restarts_seen >= 1,
        "no client saw the driver restart: {lines:?}"
    );
    // Hung once, restarted once: the restarted driver answers its pings.
    thread::sleep(Duration::from_millis(300));
    refute_all(&mut b, &["serial_driver: generation 2", "monitor: holding"]);
}

#[test]
fn resilient_echo_survives_driver_hang_gicv3() {
    survives_driver_hang(3);
}

#[test]
fn resilient_echo_survives_driver_hang_gicv2() {
    survives_driver_hang(2);
}

/// Issue #5 (4): the driver deletes every capability in its CSpace (test-only driver with
/// `cnode_cap="true"`, tests/systems/resilient-echo-capdelete.system). Its next wait is a cap
/// fault; the monitor restarts it with its CSpace rebuilt from the plan; the rebuilt caps
/// work (IRQ, notifications, input endpoint) and both clients still complete every message
/// exactly once, in order.
fn survives_deleted_caps(gic: u8) {
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo-capdelete",
        None,
    ));
    check(b.expect_all(
        &[
            "serial_driver: generation 0: serving 2 clients on UART1 (ring generation 1)",
            "serial_driver: fault injection: deleted every capability in its CSpace",
            "monitor: restarted serial_driver (cause: cap-fault cptr 0x1 ip 0x",
            "serial_driver: generation 1: serving 2 clients on UART1 (ring generation 2)",
        ],
        DEFAULT_TIMEOUT,
    ));
    for line in done_lines(&mut b) {
        assert!(line.contains("(sent 100, resubmitted "), "{line}");
        assert!(line.ends_with(", errors 0)"), "{line}");
    }
    refute_all(&mut b, &["serial_driver: generation 2", "monitor: holding"]);
}

#[test]
fn resilient_echo_survives_deleted_caps_gicv3() {
    survives_deleted_caps(3);
}

#[test]
fn resilient_echo_survives_deleted_caps_gicv2() {
    survives_deleted_caps(2);
}

/// Issue #5 (5): a client crashes (test-only client_a, tests/systems/resilient-echo-client-crash
/// .system). The monitor restarts it; the driver drops what the dead client had in flight
/// and keeps serving client_b, which completes every message exactly once, in order, without
/// noticing; the new client_a starts over and completes its own 100.
fn survives_client_crash(gic: u8) {
    let mut b = check(boot_with_uart1(
        gic,
        "cortex-a72",
        "-resilient-echo-client-crash",
        None,
    ));
    check(b.expect_all(
        &[
            "client_a: generation 0: sending 100 messages",
            "client_a: fault injection: wild write after",
            "monitor: restarted client_a (cause: vm-fault write at 0x700000000 ip 0x",
            "client_a: generation 1: sending 100 messages",
        ],
        DEFAULT_TIMEOUT,
    ));
    for line in done_lines(&mut b) {
        assert!(
            line.contains("(sent 100, resubmitted 0, driver restarts 0, errors 0)"),
            "{line}"
        );
    }
    refute_all(
        &mut b,
        &[
            "serial_driver: generation 1",
            "client_a: generation 2",
            "monitor: holding",
        ],
    );
}

#[test]
fn resilient_echo_survives_client_crash_gicv3() {
    survives_client_crash(3);
}

#[test]
fn resilient_echo_survives_client_crash_gicv2() {
    survives_client_crash(2);
}
