//! Issue #20: what the SDF allows, the root task builds, and no PD gets authority the plan does
//! not give it.
//!
//! `tests/systems/many-restartable.system`: twenty restartable PDs with standbys need more
//! VSpaces than one ASID pool holds; the root task makes pools as it needs them.
//! `tests/systems/cap-grant.system`: a PD cannot pass a cap on a protected call nor receive on
//! the monitor's endpoint, and a restart leaves nothing in slots the plan does not name.
//! `tests/systems/device-order.system`: device regions declared in decreasing address order.
//! `tests/systems/ram-edge-gicv3.system`: a system near the RAM the check allows boots.
//! `tests/systems/fixed-ram.system`: regions at fixed RAM addresses (Microkit's `setvar`
//! example's, and two carved deep inside RAM) are that memory, shared by two PDs.

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

fn cap_grant(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-cap-grant"));
    check(b.expect(
        "root-task: system up: 3 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "fence: generation 0 called with 0 caps",
            "fence: generation 0 probed slot 0",
            "monitor: restarted fence (cause: vm-fault",
            "fence: generation 1 probed slot 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect(
        "monitor: smuggler failed (cap-fault cptr 0x5 ip 0x",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect(
        "monitor: holding smuggler stopped: restart=never",
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "witness: notified",
            "smuggler: received on the monitor's endpoint",
            "KERNEL PANIC",
            "kernel: FAULT",
        ],
    );
}

#[test]
fn pds_cannot_grant_caps_or_steal_faults_gicv3() {
    cap_grant(3);
}

#[test]
fn pds_cannot_grant_caps_or_steal_faults_gicv2() {
    cap_grant(2);
}

/// Regions at fixed device addresses, declared in decreasing address order, are placed.
fn device_order(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-device-order"));
    check(b.expect(
        "root-task: system up: 1 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    refute_each(&mut b, &["KERNEL PANIC", "kernel: FAULT", "failed"]);
}

#[test]
fn device_regions_in_any_order_gicv3() {
    device_order(3);
}

#[test]
fn device_regions_in_any_order_gicv2() {
    device_order(2);
}

/// QEMU virt's device memory beyond its device window (issue #19: refused until then), as
/// Microkit's board hands it out: the PCIe host bridge answers through ECAM (QEMU's generic
/// host bridge, vendor Red Hat 0x1b36, device 0x0008) and the GICv2m frame says its SPIs
/// (64 from INTID 80).
#[test]
fn pcie_ecam_and_gicv2m_are_device_memory_gicv2() {
    let mut b = check(boot_named(2, "cortex-a72", "-qemu-devices-gicv2"));
    check(b.expect_all(
        &[
            "root-task: system up: 1 protection domains and the monitor started",
            "device-probe: ECAM 00:00.0 vendor 0x1b36 device 0x0008",
            "device-probe: GICv2m SPIs from 80 count 64",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(&mut b, &["KERNEL PANIC", "kernel: FAULT", "failed"]);
}

/// A system the check accepts near the RAM limit (a 2016 MiB region of 2 MiB pages, mapped,
/// beside one at a fixed address in the middle of RAM) boots: the RAM the limits leave the
/// root task is there, the RAM below the fixed region included.
fn ram_edge(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-ram-edge-gicv3"));
    check(b.expect(
        "root-task: system up: 1 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    refute_each(&mut b, &["KERNEL PANIC", "kernel: FAULT", "failed"]);
}

/// GICv3 only: the root task zeroes all 2 GiB of the board's RAM here (2.1 GB of QEMU
/// memory, about 4.5 s), and what it measures, the RAM the kernel and the root task keep,
/// does not depend on the GIC (the two kernels differ by a few KiB; kernel-config's
/// `RESERVED_RAM` leaves megabytes).
#[test]
fn ram_near_the_limit_boots_gicv3() {
    ram_edge(3);
}

/// Regions at fixed RAM addresses are placed there: the writer's patched physical addresses
/// are the SDF's, and what it writes through its maps the reader reads through its own.
/// Besides, the root task checks each region's first and last frame's physical address.
fn fixed_ram(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-fixed-ram"));
    check(b.expect(
        "root-task: system up: 2 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_all(
        &[
            "fixed-writer: mr_with_paddr vaddr 0x20000000 paddr 0x80000000",
            "fixed-writer: pl011 paddr 0x9000000",
            "fixed-writer: small_mr_no_paddr paddr allocated and aligned: true",
            "fixed-writer: large_mr_no_paddr paddr allocated and aligned: true",
            "fixed-writer: mr_with_paddr at paddr 0x80000000: 512 words written",
            "fixed-writer: deep at paddr 0xa0200000: 262144 words written",
            "fixed-writer: wide at paddr 0x90000000: 131584 words written",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "fixed-reader: mr_with_paddr at paddr 0x80000000: 512 words as written",
            "fixed-reader: deep at paddr 0xa0200000: 262144 words as written",
            "fixed-reader: wide at paddr 0x90000000: 131584 words as written",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &["KERNEL PANIC", "kernel: FAULT", "failed", "differs"],
    );
}

#[test]
fn regions_at_fixed_ram_addresses_gicv3() {
    fixed_ram(3);
}

#[test]
fn regions_at_fixed_ram_addresses_gicv2() {
    fixed_ram(2);
}
