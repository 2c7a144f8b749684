//! Issue #4: `systems/hello.system` built into an image by `cargo xtask build --system` —
//! the root task creates the three PDs from the boot plan, and they exchange a protected call,
//! notifications and lines in a shared region, each through the capability slots and the
//! setvar the plan gave it.

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check};

fn hello(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-hello"));
    check(b.expect_all(
        &[
            "root-task: system up: 3 protection domains and the monitor started",
            // The server has the highest priority: its init runs first.
            "hello_server: ready",
            // setvar_vaddr patched by the root task.
            "hello_client: log_ring at 0x2000000",
            // Protected calls: MR0 in, MR0 out, through the pp channel's endpoint.
            "hello_server: call 1 from hello_client: 1^2",
            "hello_client: server says 1^2 = 1",
            "hello_server: call 2 from hello_client: 2^2",
            "hello_client: server says 2^2 = 4",
            "hello_server: call 3 from hello_client: 3^2",
            "hello_client: server says 3^2 = 9",
            "hello_client: done",
            // The logger (lowest priority) reads the shared region through its own mapping.
            "hello_logger: watching log_ring at 0x2000000",
            "hello_logger: client wrote \"1 squared is 1\"",
            "hello_logger: client wrote \"2 squared is 4\"",
            "hello_logger: client wrote \"3 squared is 9\"",
            // The server's notifications arrive on the logger's channel 1 (badge bit 1).
            "hello_logger: server notified",
        ],
        DEFAULT_TIMEOUT,
    ));
    for bad in [
        "PANIC",
        "faulted",
        "unexpected",
        "kernel: FAULT",
        "impossible",
    ] {
        check(b.refute(bad));
    }
}

#[test]
fn hello_system_gicv3() {
    hello(3);
}

#[test]
fn hello_system_gicv2() {
    hello(2);
}
