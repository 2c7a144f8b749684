//! Issue #18: the kernel on the Raspberry Pi 4 board definition, booted by QEMU's `raspi4b`
//! (QEMU >= 9): 4 Cortex-A72, the GIC-400 (GICv2) at 0xff84_1000, PL011 UART0 at 0xfe20_1000
//! on the first `-serial`, no virtio-mmio. The hello system runs there as on QEMU virt.

use std::time::{Duration, Instant};

use axolotl_guest_artifacts::PINNED_KERNEL;
use axolotl_qemu::Boot;
use axolotl_tests::{DEFAULT_TIMEOUT, boot_pi, boot_rpi4b, check, refute_each};

const HELLO: &[&str] = &[
    "root-task: system up: 3 protection domains and the monitor started",
    "hello_server: ready",
    "hello_client: server says 3^2 = 9",
    "hello_client: done",
    "hello_logger: client wrote \"3 squared is 9\"",
    "hello_logger: server notified",
];

/// As the Pi firmware boots it: the flat binary at 0x80000, entered at EL2 on the boot core,
/// the other three cores held on the spin table by the boot stub.
#[test]
fn rpi4b_hello_from_the_firmware_s_el2_entry() {
    let mut b = check(boot_rpi4b("-hello", false));
    check(b.expect_all(
        &[
            "axolotl kernel v",
            "board: rpi4b, GICv2, vectors at 0x81000",
            "memory: RAM 0x0-0x3b400000 (948 MiB), kernel 0x80000-",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(HELLO, DEFAULT_TIMEOUT));
    let console = b.console();
    assert_eq!(
        console.matches("axolotl kernel v").count(),
        1,
        "one kernel, on one core:\n{console}"
    );
    // The firmware's armstub (QEMU's stub here) drops to EL2 itself.
    refute_each(
        &mut b,
        &["entered at EL3", "PANIC", "faulted", "kernel: FAULT"],
    );
}

/// The ELF, which QEMU starts on all four cores at EL3: the kernel parks the secondaries
/// itself and does the armstub's part (CNTFRQ at the board's 54 MHz, the GIC's interrupts to
/// the non-secure group) before it drops to EL2; interrupts then reach it (the monitor's
/// heartbeats and the PDs' notifications need the timer and the GIC).
#[test]
fn rpi4b_hello_from_el3_on_every_core() {
    let mut b = check(boot_rpi4b("-hello", true));
    check(b.expect_all(
        &[
            "boot: entered at EL3, dropped to EL2 non-secure",
            "board: rpi4b, GICv2",
            "timer: 54000000 Hz, tick 2000 us",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(HELLO, DEFAULT_TIMEOUT));
    let console = b.console();
    assert_eq!(
        console.matches("axolotl kernel v").count(),
        1,
        "the secondary cores parked:\n{console}"
    );
    refute_each(
        &mut b,
        &["CNTFRQ says", "PANIC", "faulted", "kernel: FAULT"],
    );
}

const CLIENTS: [&str; 2] = ["client_a", "client_b"];

/// Waits until the console holds every needle, in whatever order the PDs printed them.
fn wait_for_all(b: &mut Boot, needles: &[&str]) {
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    loop {
        let console = b.console();
        let missing: Vec<&str> = needles
            .iter()
            .copied()
            .filter(|n| !console.contains(n))
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            check::<()>(Err(b.failure(format!("timed out waiting for {missing:?}"))));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
/// Lines typed into the mini UART once the clients are done.
const LINES_TYPED: u32 = 10;

/// Issue #18: resilient-echo on the Pi's mini UART (tests/systems/resilient-echo-rpi4b.system,
/// QEMU raspi4b's second `-serial`, on the harness's socket): the mini UART driver serves two
/// clients, crashes after 30 completed messages, is restarted by the monitor, and both
/// clients still see each of their 100 messages complete exactly once, in order, every one
/// on the wire; then every line typed into the mini UART reaches echo_rx, the idle driver
/// woken by the mini UART's receive interrupt (INTID 125).
#[test]
fn rpi4b_resilient_echo_on_the_mini_uart_survives_a_driver_crash() {
    let mut b = check(boot_rpi4b("-resilient-echo-rpi4b", false));
    wait_for_all(
        &mut b,
        &[
            "board: rpi4b, GICv2",
            "root-task: system up: 4 protection domains and the monitor started",
            "monitor: watching 4 PDs (generation 0)",
            "serial_driver: generation 0: serving 2 clients on the mini UART (ring generation 1), receiving for echo_rx",
            "serial_driver: fault injection: wild write after",
            "monitor: restarted serial_driver (cause: vm-fault write at 0x700000000 ip 0x",
            "monitor: told client_a, client_b, echo_rx that serial_driver restarted",
            "serial_driver: generation 1: serving 2 clients on the mini UART (ring generation 2), receiving for echo_rx",
        ],
    );
    // The clients finish in either order.
    let done = CLIENTS.map(|c| format!("{c}: done: 100 messages completed in order, exactly once"));
    wait_for_all(&mut b, &done.each_ref().map(String::as_str));
    let console = b.console();
    let mut restarts_seen = 0;
    for d in &done {
        let line = console
            .lines()
            .find(|l| l.contains(d.as_str()))
            .expect("seen above");
        // Every seq completed exactly once and in order (the client checks each), none lost.
        assert!(line.contains("(sent 100, resubmitted "), "{line}");
        assert!(line.ends_with(", errors 0)"), "{line}");
        if line.contains("driver restarts 1,") {
            restarts_seen += 1;
        }
    }
    assert!(restarts_seen >= 1, "no client saw the driver restart");
    // The wire (the mini UART's output) is at-least-once: every message as a whole line.
    let wire = String::from_utf8_lossy(&b.uart1_bytes()).replace('\r', "");
    for c in CLIENTS {
        for seq in 0..100 {
            let m = format!("{c} {seq}");
            if !wire.lines().any(|l| l.ends_with(&m)) {
                check::<()>(Err(b.failure(format!(
                    "{m:?} is not on the mini UART's wire; it got:\n{wire}"
                ))));
            }
        }
    }
    // Receive, once everything is idle: only the mini UART's interrupt wakes the driver.
    let typed: String = (1..=LINES_TYPED).map(|i| format!("ping {i}\n")).collect();
    check(b.send_uart1(typed.as_bytes()));
    for i in 1..=LINES_TYPED {
        check(b.expect(&format!("echo_rx: received \"ping {i}\""), DEFAULT_TIMEOUT));
    }
    // The mini UART's receive cause, in serial-core's (PL011) encoding: RX, bit 4.
    axolotl_tests::expect_woken_by_receive_interrupt(&mut b, 0x10);
    refute_each(
        &mut b,
        &[
            "ERROR",
            "cannot start",
            "corrupt",
            "IRQ ack failed",
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed:",
            "serial_driver: generation 2",
            "monitor: holding",
        ],
    );
}

/// Host seconds for the guest; a TCG boot to userspace takes about 10 s here, several times
/// that on a loaded machine.
const GUEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Issue #18: Debian's arm64 kernel under vmm-pd on the Pi (tests/systems/linux-vm-rpi4b.system):
/// the VMM's GICv2 layout with the GIC-400's GICV frame as the guest's GICC, guest RAM from
/// the board's RAM, the guest's serial line the mini UART through the serial driver (the
/// harness's socket). The guest boots to its shell, which runs a typed command, and powers off.
#[test]
fn rpi4b_debian_linux_boots_to_its_shell_under_the_vmm() {
    let mut b = check(boot_rpi4b("-linux-vm-rpi4b", false));
    check(b.expect_all(
        &[
            "board: rpi4b, GICv2",
            "root-task: system up: 2 protection domains and the monitor started",
            "serial_driver: generation 0: serving 1 clients on the mini UART (ring generation 1), receiving for the VMM",
            "vmm: Linux Image ",
            "vmm: guest started at 0x40000000",
            "Booting Linux on physical CPU 0x0000000000",
            "psci: PSCIv1.0 detected in firmware.",
            "Run /init as init process",
            axolotl_guest_artifacts::USERSPACE_MARKER,
            &PINNED_KERNEL.uname_r(),
            "AXOLOTL-GUEST-DONE",
        ],
        GUEST_TIMEOUT,
    ));
    // The shell waits for typed input: the result exists only if it ran the command.
    check(b.send_uart1(b"echo typed-$((6*7))\n"));
    check(b.expect("typed-42", GUEST_TIMEOUT));
    check(b.send_uart1(b"exit\n"));
    check(b.expect("vmm: guest powered off (PSCI SYSTEM_OFF)", GUEST_TIMEOUT));
    let console = b.console();
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("vmm: Linux Image") && l.trim_end().ends_with(", GICv2")),
        "the VMM emulates another GIC:\n{console}"
    );
    // The guest's lines went over the mini UART, not the kernel's console.
    let wire = b.uart1_bytes();
    if !wire
        .windows(b"Booting Linux on physical CPU".len())
        .any(|w| w == b"Booting Linux on physical CPU")
    {
        check::<()>(Err(
            b.failure("the mini UART did not carry the guest's boot log")
        ));
    }
    // /proc/interrupts: the virtual timer (PPI 27) ticked through the GIC-400's list registers.
    let marker = console
        .rfind(axolotl_guest_artifacts::USERSPACE_MARKER)
        .expect("seen above");
    let timer = console[marker..]
        .lines()
        .find(|l| l.contains("arch_timer"))
        .unwrap_or_else(|| panic!("no arch_timer line in /proc/interrupts:\n{console}"));
    let ticks: u64 = timer
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {timer:?}"));
    assert!(ticks > 0, "the guest's timer never ticked: {timer:?}");
    refute_each(
        &mut b,
        &[
            "PANIC",
            "kernel: FAULT",
            "cannot start",
            "monitor: restarted",
            "Kernel panic",
        ],
    );
}

/// The first RAM range every Pi 4 has, `0..0x3b40_0000`, in MiB.
const LOW_RAM_MIB: u64 = 948;

/// Issue #18: the 2 GiB Pi 4 (`rpi4b_2gb`; QEMU's `raspi4b` has 2 GiB): the kernel says both
/// RAM ranges, hands the second to the root task as untyped memory with what it leaves of
/// the first (more than the first range holds, all of `rpi4b`'s), and hello runs
/// (the root task takes the largest untypeds first: its PDs live above 1 GiB).
#[test]
fn rpi4b_2gb_hello_gets_the_ram_above_1_gib() {
    let mut b = check(boot_pi("rpi4b_2gb", "-hello", false));
    check(b.expect_all(
        &[
            "board: rpi4b_2gb, GICv2",
            "memory: RAM 0x0-0x3b400000, 0x40000000-0x80000000 (1972 MiB), kernel 0x80000-",
            "root task: entry ",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(HELLO, DEFAULT_TIMEOUT));
    let console = b.console();
    let line = console
        .lines()
        .find(|l| l.starts_with("root task: entry "))
        .expect("seen above");
    // "root task: entry 0x…, N pages; M untyped caps (X MiB), D device untyped caps"
    let mib: u64 = line
        .split_once(" untyped caps (")
        .and_then(|(_, r)| r.split_once(" MiB)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no untyped MiB in {line:?}"));
    // Both ranges but what the kernel keeps of the first: at most RESERVED_RAM (16 MiB) and
    // the system pack (a few MiB for hello). Seen: 1963 MiB; `rpi4b` cannot have 948.
    let both = 1024 + LOW_RAM_MIB;
    assert!(
        (both - 16 - 8..both).contains(&mib),
        "untyped memory {mib} MiB is not both ranges': {line}"
    );
    refute_each(&mut b, &["PANIC", "faulted", "kernel: FAULT"]);
}

/// Issue #18: regions at fixed addresses in `rpi4b_2gb`'s RAM above 1 GiB
/// (tests/systems/fixed-ram-rpi4b-2gb.system) are that memory: the root task carves them out
/// of the untyped the kernel made of the second range (with none, it cannot place them and
/// the system never comes up), the writer's patched physical addresses are the SDF's, and
/// what it writes through its maps the reader reads through its own.
#[test]
fn rpi4b_2gb_regions_at_fixed_addresses_above_1_gib() {
    let mut b = check(boot_pi("rpi4b_2gb", "-fixed-ram-rpi4b-2gb", false));
    check(b.expect(
        "root-task: system up: 2 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(
        &[
            "fixed-writer: mr_with_paddr vaddr 0x20000000 paddr 0x40000000",
            "fixed-writer: pl011 paddr 0xfe201000",
            "fixed-writer: small_mr_no_paddr paddr allocated and aligned: true",
            "fixed-writer: large_mr_no_paddr paddr allocated and aligned: true",
            "fixed-writer: mr_with_paddr at paddr 0x40000000: 512 words written",
            "fixed-writer: deep at paddr 0x60200000: 262144 words written",
            "fixed-writer: wide at paddr 0x50000000: 131584 words written",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "fixed-reader: mr_with_paddr at paddr 0x40000000: 512 words as written",
            "fixed-reader: deep at paddr 0x60200000: 262144 words as written",
            "fixed-reader: wide at paddr 0x50000000: 131584 words as written",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &["PANIC", "kernel: FAULT", "failed", "differs", "faulted"],
    );
}
