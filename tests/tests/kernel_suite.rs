//! Issue #3: the in-QEMU kernel suite (tests/kernel-suite, after seL4test) booted in the
//! root task's place must report every case passed, on both GIC versions.

use std::time::Duration;

use axolotl_tests::{boot_named, check};

fn kernel_suite(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-kernel-suite"));
    let line = check(b.expect("kernel-suite: ", Duration::from_secs(5)));
    // `cargo xtask test --stress-long` makes the randomized stress case run for minutes.
    let limit = if std::env::var_os("AXOLOTL_STRESS_LONG").is_some() {
        Duration::from_secs(4 * 3600)
    } else {
        Duration::from_secs(240)
    };
    let summary = check(b.expect(" passed, ", limit));
    let nums: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (passed, failed) = match nums.as_slice() {
        [p, f, ..] => (*p, *f),
        _ => panic!(
            "{}",
            b.failure(format!("unreadable summary {summary:?} (after {line:?})"))
        ),
    };
    if failed != 0 || passed < 119 {
        panic!(
            "{}",
            b.failure(format!(
                "kernel suite on GICv{gic}: {passed} passed, {failed} failed"
            ))
        );
    }
    check(b.refute("KERNEL PANIC"));
    // Refusals are said only by a kernel built to say them.
    check(b.refute("kernel: user error"));
}

#[test]
fn kernel_suite_gicv3() {
    kernel_suite(3);
}

#[test]
fn kernel_suite_gicv2() {
    kernel_suite(2);
}

/// A kernel built with `user-error` says why it refuses an invocation, one line each, and
/// the suite passes as it does without (a short stress: each refusal is a line). Built with
/// `cpu-time` too, so that `sched_cpu_time` checks the counts, not their refusal.
#[test]
fn kernel_suite_user_error() {
    let mut b = check(boot_named(
        3,
        "cortex-a72",
        "-kernel-suite-user-error-cpu-time",
    ));
    check(b.expect("kernel-suite: ", Duration::from_secs(5)));
    // tcb.rs `priority_mcp`: a priority above the authority's MCP.
    let line = check(b.expect(
        "RangeError { min: 0, max: 50 }: above the authority's maximum controlled priority",
        Duration::from_secs(240),
    ));
    if !line.starts_with("kernel: user error: TcbSetPriority on cptr ") {
        panic!("{}", b.failure(format!("unexpected refusal line {line:?}")));
    }
    // sched.rs `cpu_time`, after the refusals above.
    let line = check(b.expect("kernel-suite: cpu time: ", Duration::from_secs(240)));
    if !line.contains(" spin charged ") {
        panic!("{}", b.failure(format!("CPU time not counted: {line:?}")));
    }
    let summary = check(b.expect(" passed, ", Duration::from_secs(240)));
    if !summary.contains(" passed, 0 failed") {
        panic!(
            "{}",
            b.failure(format!("kernel suite with user-error: {summary:?}"))
        );
    }
    check(b.refute("KERNEL PANIC"));
}
