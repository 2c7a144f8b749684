//! Issue #20: what the SDF allows, the root task builds.
//!
//! `tests/systems/many-restartable.system`: twenty restartable PDs with standbys need more
//! VSpaces than one ASID pool holds; the root task makes pools as it needs them.

use std::thread;
use std::time::{Duration, Instant};

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

fn many_restartable(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-many-restartable"));
    check(b.expect(
        "root-task: system up: 20 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "crasher: generation 0: data 7, bss 0",
            "monitor: restarted crasher (cause: vm-fault write at 0x700000000 ip 0x",
            "crasher: generation 1: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The victims have the lowest priority: they may all come after the crasher's restart.
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    loop {
        let started = b.console().matches("victim: generation 0 running").count();
        if started == 19 {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "{}",
                b.failure(format!("{started} of the 19 victims started"))
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed:",
            "generation 2",
        ],
    );
}

#[test]
fn many_restartable_pds_boot_gicv3() {
    many_restartable(3);
}

#[test]
fn many_restartable_pds_boot_gicv2() {
    many_restartable(2);
}
