//! Issue #18: the kernel on the Raspberry Pi 4 board definition, booted by QEMU's `raspi4b`
//! (QEMU >= 9): 4 Cortex-A72, the GIC-400 (GICv2) at 0xff84_1000, PL011 UART0 at 0xfe20_1000
//! on the first `-serial`, no virtio-mmio. The hello system runs there as on QEMU virt.

use axolotl_tests::{DEFAULT_TIMEOUT, boot_rpi4b, check};

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
    for bad in ["entered at EL3", "PANIC", "faulted", "kernel: FAULT"] {
        check(b.refute(bad));
    }
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
    for bad in ["CNTFRQ says", "PANIC", "faulted", "kernel: FAULT"] {
        check(b.refute(bad));
    }
}
