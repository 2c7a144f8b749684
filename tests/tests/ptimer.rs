//! Issue #19: a PD owns the EL1 physical timer (its SDF `irq` 30, as sDDF's timer driver
//! does) while the root task runs the monitor's clock on the kernel timeout
//! (`tests/systems/ptimer.system`, docs/abi.md "Timer"). The sleeper's five 20 ms sleeps end
//! at or after their deadlines; meanwhile the monitor's back-offs for `crash_thrice` (100 and
//! 200 ms, timed by the root task's clock) are kept and the sleeper's heartbeat is answered.

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

fn a_pd_owns_the_physical_timer(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-ptimer"));
    // Two independent stories, each in its own order.
    let sleeps: Vec<String> = (1..=5)
        .map(|n| format!("ptimer: sleep {n} ended "))
        .collect();
    let mut chain = vec!["ptimer: sleeping 5 times on the EL1 physical timer"];
    chain.extend(sleeps.iter().map(String::as_str));
    chain.push("ptimer: done");
    check(b.expect_chain(&chain, DEFAULT_TIMEOUT));
    check(b.expect_chain(
        &[
            "crasher: generation 2: data 7, bss 0",
            "crasher: generation 3: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The monitor's timer, through the root task's kernel timeout: both back-offs waited.
    let console = b.console();
    let waits: Vec<(u64, u64)> = console
        .lines()
        .filter(|l| l.contains("monitor: restarting crash_thrice after "))
        .filter_map(|l| {
            let n: Vec<u64> = l
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            match n[..] {
                [waited, delay] => Some((waited, delay)),
                _ => None,
            }
        })
        .collect();
    if !matches!(waits[..], [(w0, 100), (w1, 200)] if w0 >= 100 && w1 >= 200) {
        panic!(
            "{}",
            b.failure(format!(
                "back-offs (waited, delay) {waits:?}: want 100 and 200 ms"
            ))
        );
    }
    refute_each(
        &mut b,
        &[
            "ERROR",
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "holding",
            "missed",
            "undelivered interrupt",
            "restarted sleeper",
        ],
    );
}

#[test]
fn a_pd_owns_the_physical_timer_gicv3() {
    a_pd_owns_the_physical_timer(3);
}

#[test]
fn a_pd_owns_the_physical_timer_gicv2() {
    a_pd_owns_the_physical_timer(2);
}
