//! Issue #5: restart from a pristine image (tests/systems/restart.system). PDs fail in their
//! first generation; the monitor classifies each failure, applies the SDF's policy and has the
//! root task restart the PD: memory refilled from the pristine image (dirtied data and bss
//! come back clean), CSpace rebuilt (the restarted PD notifies its peer again), started with
//! its generation. A PD with restart="never" is held and reported.

use std::thread;
use std::time::{Duration, Instant};

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check};

fn restart(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-restart"));
    check(b.expect(
        "root-task: system up: 4 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect("monitor: watching 4 PDs (generation 0)", DEFAULT_TIMEOUT));
    // Highest priority first: doomed (never restarted), then panicker, then crasher.
    check(b.expect_all(
        &[
            "monitor: doomed failed (panic ip 0x",
            "monitor: holding doomed stopped: restart=never",
            "monitor: restarted panicker (cause: panic ip 0x",
            "panicker: generation 1 running",
            "crasher: generation 0: data 7, bss 0",
            "monitor: restarted crasher (cause: vm-fault write at 0x700000000 ip 0x",
            // The image's data and bss as linked, although generation 0 changed both.
            "crasher: generation 1: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The rebuilt CSpaces work: the restarted PDs' notifications reach the witness. It has
    // the lowest priority, so its lines may come after everything above, in either order.
    for ch in [
        "witness: notified on channel 0",
        "witness: notified on channel 1",
    ] {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        while !b.console().contains(ch) {
            if Instant::now() >= deadline {
                check::<()>(Err(b.failure(format!("missing {ch:?}"))));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    for bad in [
        "generation 2",
        "KERNEL PANIC",
        "kernel: FAULT",
        "refused",
        "failed:",
    ] {
        check(b.refute(bad));
    }
}

#[test]
fn restart_from_pristine_image_gicv3() {
    restart(3);
}

#[test]
fn restart_from_pristine_image_gicv2() {
    restart(2);
}
