//! Issue #6: the unmodified Debian arm64 kernel and a busybox initramfs, booted by vmm-pd
//! (tests/systems/linux-vm-gicv{2,3}.system; the test build of the VMM makes the guest run
//! `uname -r` and `cat /proc/interrupts`, then power off). The guest's console is the VMM's
//! emulated PL011; its interrupts come through the VMM's virtual distributor and the kernel's
//! list registers; the timer ticks through the virtual timer PPI.

use std::time::Duration;

use axolotl_guest_artifacts::PINNED_KERNEL;
use axolotl_tests::{boot_named, check};

/// Host seconds; a TCG boot to userspace takes about 10 s here, several times that on a
/// loaded CI machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

fn linux(gic: u8) {
    let mut b = check(boot_named(
        gic,
        "cortex-a72",
        &format!("-linux-vm-gicv{gic}"),
    ));
    check(b.expect_all(
        &[
            "root-task: system up: 1 protection domains and the monitor started",
            "vmm: Linux Image ",
            "vmm: guest started at 0x40000000",
            "Booting Linux on physical CPU 0x0000000000",
            "psci: PSCIv1.0 detected in firmware.",
            "Run /init as init process",
            axolotl_guest_artifacts::USERSPACE_MARKER,
            &PINNED_KERNEL.uname_r(),
        ],
        BOOT_TIMEOUT,
    ));
    check(b.expect("AXOLOTL-GUEST-DONE", BOOT_TIMEOUT));
    check(b.expect("vmm: guest powered off (PSCI SYSTEM_OFF)", BOOT_TIMEOUT));
    let console = b.console();
    assert!(
        console.lines().any(|l| l.starts_with("vmm: Linux Image")
            && l.trim_end().ends_with(&format!(", GICv{gic}"))),
        "the VMM emulates another GIC:\n{console}"
    );
    let marker = console
        .rfind(axolotl_guest_artifacts::USERSPACE_MARKER)
        .expect("marker seen above");
    let out = &console[marker..];
    // /proc/interrupts: the virtual timer (PPI 27) ticked, and the console UART is wired.
    let timer = out
        .lines()
        .find(|l| l.contains("arch_timer"))
        .unwrap_or_else(|| panic!("no arch_timer line in /proc/interrupts:\n{out}"));
    let ticks: u64 = timer
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {timer:?}"));
    assert!(ticks >= 50, "only {ticks} timer interrupts: {timer:?}");
    assert!(
        timer.contains(" 27 ") && timer.contains("Level"),
        "{timer:?}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("uart-pl011") && l.contains(" 33 ")),
        "the UART's interrupt is missing from /proc/interrupts:\n{out}"
    );
    for bad in [
        "kernel: FAULT",
        "KERNEL PANIC",
        "vmm: unknown exit",
        "vmm: guest fetched",
        "vmm: guest access",
        "unclaimed or misused",
        "Kernel panic",
        "Internal error",
        "Unable to handle kernel",
        "cut here",
    ] {
        check(b.refute(bad));
    }
}

#[test]
fn debian_linux_boots_to_userspace_under_the_vmm_gicv3() {
    linux(3);
}

#[test]
fn debian_linux_boots_to_userspace_under_the_vmm_gicv2() {
    linux(2);
}
