//! Issue #2: the kernel boots at EL2 on QEMU virt with GICv2 and GICv3, on cortex-a72 and
//! `max`, runs the root task at EL0, reports a user fault and keeps running, and ticks.

use axolotl_tests::{DEFAULT_TIMEOUT, boot, check};

fn boots_to_root_task(gic: u8, cpu: &'static str) {
    let mut b = check(boot(gic, cpu, None));
    let banner = format!("board: qemu-virt-aarch64, GICv{gic}");
    check(b.expect_all(
        &[
            "axolotl kernel v0.1.0 (EL2)",
            &banner,
            "memory: RAM 0x40000000-0xc0000000 (2048 MiB), kernel 0x40200000-",
            "timer: ",
            "root task: entry 0x200000",
            "root-task: hello from EL0",
            "root-task: done",
            "kernel: thread 'root-task' (id 1) exited",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.refute("KERNEL PANIC"));
}

#[test]
fn boots_gicv3_cortex_a72() {
    boots_to_root_task(3, "cortex-a72");
}

#[test]
fn boots_gicv2_cortex_a72() {
    boots_to_root_task(2, "cortex-a72");
}

#[test]
fn boots_gicv3_cpu_max() {
    boots_to_root_task(3, "max");
}

#[test]
fn boots_gicv2_cpu_max() {
    boots_to_root_task(2, "max");
}

fn user_fault_is_reported_and_contained(gic: u8) {
    let mut b = check(boot(gic, "cortex-a72", Some("fault")));
    check(b.expect(
        "root-task: selftest: writing to unmapped address 0x40dead0000",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect(
        "kernel: FAULT in thread 'root-task' (id 1): data abort from a lower EL",
        DEFAULT_TIMEOUT,
    ));
    let esr = check(b.expect("EC 0x24 (data abort from a lower EL)", DEFAULT_TIMEOUT));
    if !esr.contains("translation fault at level 1, write, 8 bytes via x") {
        panic!(
            "{}",
            b.failure(format!("syndrome not decoded as expected: {esr:?}"))
        );
    }
    check(b.expect_all(
        &[
            "FAR 0x40dead0000 (IPA 0x40dead0000)",
            "ELR (pc) 0x",
            "x0 ",
            "x30 ",
            "kernel: thread 'root-task' (id 1) stopped (VM fault): it has no fault handler; the kernel continues",
            // The kernel outlives the thread: its idle beacon comes 100 ticks later.
            "kernel: idle, no runnable threads; uptime",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.refute("selftest FAILED"));
    check(b.refute("KERNEL PANIC"));
}

#[test]
fn user_fault_is_reported_and_contained_gicv3() {
    user_fault_is_reported_and_contained(3);
}

#[test]
fn user_fault_is_reported_and_contained_gicv2() {
    user_fault_is_reported_and_contained(2);
}

fn number_after(line: &str, key: &str) -> u64 {
    let rest = &line[line
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} not in {line:?}"))
        + key.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

fn timer_ticks(gic: u8) {
    let mut b = check(boot(gic, "cortex-a72", Some("ticks")));
    let start = check(b.expect("root-task: selftest: ticks at start", DEFAULT_TIMEOUT));
    let end = check(b.expect("root-task: selftest: ticks at end", DEFAULT_TIMEOUT));
    let (s, e) = (
        number_after(&start, "at start "),
        number_after(&end, "at end "),
    );
    if e < s + 50 {
        panic!(
            "{}",
            b.failure(format!("ticks did not advance by 50: start {s}, end {e}"))
        );
    }
    check(b.expect("root-task: done", DEFAULT_TIMEOUT));
}

#[test]
fn timer_ticks_gicv3() {
    timer_ticks(3);
}

#[test]
fn timer_ticks_gicv2() {
    timer_ticks(2);
}
