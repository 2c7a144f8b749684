//! Issue #3 (first slice): objects from untyped, a second thread, endpoint call/reply, a VM
//! fault delivered to a fault endpoint, fixed by the handler (page tables and a page mapped)
//! and resumed by its reply. The full in-QEMU kernel suite is tests/kernel-suite.

use axolotl_tests::{DEFAULT_TIMEOUT, boot, check};

fn ipc_and_fault_handling(gic: u8) {
    let mut b = check(boot(gic, "cortex-a72", Some("ipc")));
    check(b.expect_all(
        &[
            "root-task: selftest: 1000 call/reply round trips through an endpoint ok",
            "root-task: selftest: VM fault delivered: pc 0x",
            "root-task: done",
            "root-task: selftest: faulter resumed after its fault, reads back 0x600d",
        ],
        DEFAULT_TIMEOUT,
    ));
    let fault = b.console();
    if !fault.contains("address 0x40000000, fsr 0x93") {
        panic!(
            "{}",
            b.failure("fault message lacks the faulting address or a data-abort syndrome")
        );
    }
    check(b.refute("selftest FAILED"));
    check(b.refute("KERNEL PANIC"));
    check(b.refute("kernel: FAULT"));
}

#[test]
fn ipc_and_fault_handling_gicv3() {
    ipc_and_fault_handling(3);
}

#[test]
fn ipc_and_fault_handling_gicv2() {
    ipc_and_fault_handling(2);
}
