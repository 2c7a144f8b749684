//! Issue #19: the kernel's console leaves a UART the system gives to user level.
//! `tests/systems/console-uart0.system` gives QEMU virt's UART0 (0x0900_0000) and its IRQ 33,
//! where the kernel's console is by default, to resilient-echo's serial driver; the build puts
//! the kernel's log on UART1 instead (`<image>.console` beside the image says so, and the
//! harness wires QEMU's second `-serial` to stdout). Both are captured: the kernel's and the
//! PDs' log lines on UART1, the clients' messages on UART0, and lines typed into UART0 reach
//! the driver through IRQ 33.

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

fn uart0_belongs_to_the_system(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-console-uart0"));
    // The kernel's log (from its first line on) and the PDs' debug lines: on UART1.
    check(b.expect_all(
        &[
            "console: UART1 at 0x9040000, irq 40: the system takes the board's own UART",
            "timer: ",
            "root-task: system up: 4 protection domains and the monitor started",
            "serial_driver: generation 0: serving 2 clients on UART0",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The two clients finish in either order (a full suite saw client_b first).
    for c in ["client_a", "client_b"] {
        check(b.expect_chain(
            &[&format!(
                "{c}: done: 100 messages completed in order, exactly once"
            )],
            DEFAULT_TIMEOUT,
        ));
    }
    // The clients' messages went out on UART0, which the driver owns, and nothing of the
    // kernel's log did: the kernel never wrote to it.
    let uart0 = String::from_utf8_lossy(&b.uart1_bytes()).into_owned();
    for m in [
        "client_a 0\n",
        "client_a 99\n",
        "client_b 0\n",
        "client_b 99\n",
    ] {
        if !uart0.contains(m) {
            check::<()>(Err(b.failure(format!(
                "{m:?} never went out on UART0 (UART0 had {uart0:?})"
            ))));
        }
    }
    for kernel_line in ["timer: ", "root-task:", "monitor:", "axolotl"] {
        if uart0.contains(kernel_line) {
            check::<()>(Err(b.failure(format!(
                "the kernel wrote {kernel_line:?} on UART0, which the system owns: {uart0:?}"
            ))));
        }
    }
    // Typed into UART0: the driver is woken by IRQ 33, which the kernel handed over.
    check(b.send_uart1(b"ping 1\nping 2\n"));
    for i in 1..=2 {
        check(b.expect(&format!("echo_rx: received \"ping {i}\""), DEFAULT_TIMEOUT));
    }
    refute_each(
        &mut b,
        &[
            "ERROR",
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed:",
        ],
    );
}

#[test]
fn uart0_belongs_to_the_system_gicv2() {
    uart0_belongs_to_the_system(2);
}

#[test]
fn uart0_belongs_to_the_system_gicv3() {
    uart0_belongs_to_the_system(3);
}
