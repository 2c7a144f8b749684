//! Issue #6 (root task side): a system with a `virtual_machine` (tests/systems/vm-exits.system).
//! The root task builds the VM — guest-physical address space with the SDF's maps, a vCPU TCB
//! bound to a VCPU object, guest exits to the VMM as faults of child `vcpu id` — and gives the
//! VMM its `VmTcb`/`Vcpu` caps. The VMM starts the guest at EL1 and answers a PSCI call over HVC
//! and MMIO store/load exits with one reply each (PC advanced, register written).

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check};

fn vm_exits(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-vm-exits"));
    check(b.expect_all(
        &[
            "root-task: system up: 1 protection domains and the monitor started",
            "tiny_vmm: guest of 44 bytes started at 0x40000000",
            "tiny_vmm: guest called PSCI_VERSION at 0x40000008",
            // The reply wrote x0 = 0x10001 and skipped the hvc: the guest stores it.
            "tiny_vmm: guest wrote 0x10001 to 0x9000000 at 0x40000010",
            "tiny_vmm: guest read 0x9000004 into x2",
            // The load's value reached x2, which the guest passes in x1.
            "tiny_vmm: guest SYSTEM_OFF (x1 = 0x1234): guest stopped",
        ],
        DEFAULT_TIMEOUT,
    ));
    for bad in [
        "unexpected",
        "cannot start",
        "faulted",
        "KERNEL PANIC",
        "kernel: FAULT",
    ] {
        check(b.refute(bad));
    }
}

#[test]
fn vm_built_from_the_sdf_runs_its_guest_gicv3() {
    vm_exits(3);
}

#[test]
fn vm_built_from_the_sdf_runs_its_guest_gicv2() {
    vm_exits(2);
}
