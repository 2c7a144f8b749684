//! Issue #5: restart from a pristine image (tests/systems/restart.system). PDs fail in their
//! first generation; the monitor classifies each failure, applies the SDF's policy and has the
//! root task restart the PD: memory refilled from the pristine image (dirtied data and bss
//! come back clean), CSpace rebuilt (the restarted PD notifies its peer again), started with
//! its generation. A PD with restart="never" is held and reported. A PD's report that a
//! shared ring is corrupt gets its peer restarted.

use std::thread;
use std::time::{Duration, Instant};

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

fn restart(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-restart"));
    check(b.expect(
        "root-task: system up: 6 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect("monitor: watching 6 PDs (generation 0)", DEFAULT_TIMEOUT));
    // Each PD's story in order. A first failure is restarted at once (backoff is for
    // repeated failures), so the restart comes without a `restarting <pd> after` line.
    check(b.expect_chain(
        &[
            // The panic line names the PD, not its image (panicker.elf serves two PDs).
            "PD PANIC in doomed: deliberate panic in generation 0 at ",
            "monitor: doomed failed (panic ip 0x",
            "monitor: holding doomed stopped: restart=never",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "monitor: restarted panicker (cause: panic ip 0x",
            "panicker: generation 1 running",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
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
    // A PD reports the ring it shares with `victim` corrupt: the monitor restarts the peer,
    // at once (its first failure), then answers the reporter.
    check(b.expect_chain(
        &[
            "victim: generation 0 running",
            "reporter: corruption on channel 0 reported, peer restarted: true",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "victim: generation 0 running",
            "monitor: restarted victim (cause: corruption reported by pd 5) generation 1 in",
            "victim: generation 1 running",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "generation 2",
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed:",
            "monitor: restarting ",
        ],
    );
}

#[test]
fn restart_from_pristine_image_gicv3() {
    restart(3);
}

#[test]
fn restart_from_pristine_image_gicv2() {
    restart(2);
}

/// Issues #5 and #20: restart backoff is for repeated failures. `crash_thrice`
/// (restart_backoff_ms 100) fails in generations 0, 1 and 2; its first restart is immediate
/// (no `restarting` line), and the monitor's own log says it waited at least 100 ms before
/// the second and at least 200 ms (twice the backoff, same run) before the third.
fn backoff(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-backoff"));
    check(b.expect_chain(
        &[
            "crasher: generation 0: data 7, bss 0",
            "monitor: restarted crash_thrice (cause: vm-fault",
            "crasher: generation 1: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    if b.console()
        .contains("monitor: restarting crash_thrice after ")
        && !b.console().contains("crasher: generation 2")
    {
        check::<()>(Err(b.failure("the first restart waited")));
    }
    let mut waits = Vec::new();
    for _ in 0..2 {
        let line = check(b.expect("monitor: restarting crash_thrice after ", DEFAULT_TIMEOUT));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        let [waited, delay] = nums[..] else {
            panic!("{}", b.failure(format!("unreadable backoff line {line:?}")));
        };
        check(b.expect(
            "monitor: restarted crash_thrice (cause: vm-fault",
            DEFAULT_TIMEOUT,
        ));
        waits.push((waited, delay));
    }
    check(b.expect("crasher: generation 3: data 7, bss 0", DEFAULT_TIMEOUT));
    let [(w0, d0), (w1, d1)] = waits[..] else {
        unreachable!()
    };
    if (d0, d1) != (100, 200) || w0 < 100 || w1 < 200 {
        panic!(
            "{}",
            b.failure(format!(
                "backoffs {d0} and {d1} ms (want 100, 200), waited {w0} and {w1} ms"
            ))
        );
    }
    refute_each(
        &mut b,
        &["KERNEL PANIC", "kernel: FAULT", "refused", "holding"],
    );
}

#[test]
fn restart_backoff_is_applied_gicv3() {
    backoff(3);
}

#[test]
fn restart_backoff_is_applied_gicv2() {
    backoff(2);
}

/// Issue #5 (6): the monitor itself crashes (its fault-injection hook, built only for test
/// systems) right after restarting `kill_monitor`. The root task restarts the monitor, the
/// faults that arrive next are handled by the new monitor, and generations keep growing
/// (the root task's count is the authority: the new monitor's own count started over).
fn monitor_crash(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-monitor-crash"));
    check(b.expect_all(
        &[
            "root-task: system up: 3 protection domains and the monitor started",
            "monitor: watching 3 PDs (generation 0)",
            "monitor: restarted kill_monitor (cause: vm-fault write at 0x700000000 ip 0x",
            "monitor: fault injection: crashing the monitor",
            "root-task: monitor: restarted monitor (cause: vm-fault write at 0x700000000 ip 0x",
            "monitor: watching 3 PDs (generation 1)",
        ],
        DEFAULT_TIMEOUT,
    ));
    // crasher (lower priority) fails after the first monitor crashed: the new one handles
    // it (a fault that reached the crashed monitor unanswered would be re-delivered: the
    // kernel does so for a fault whose handler is restarted).
    check(b.expect_chain(
        &["monitor: restarted crasher (cause: vm-fault write at 0x700000000 ip 0x"],
        DEFAULT_TIMEOUT,
    ));
    // kill_monitor fails again in its generation 1: handled by the new monitor.
    check(b.expect_all(
        &[
            "monitor: restarted kill_monitor (cause: vm-fault write at 0x700000000 ip 0x",
            "crasher: generation 2: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed:",
            "holding",
        ],
    );
}

#[test]
fn monitor_crash_is_recovered_by_the_root_task_gicv3() {
    monitor_crash(3);
}

#[test]
fn monitor_crash_is_recovered_by_the_root_task_gicv2() {
    monitor_crash(2);
}

/// Issue #5: restarts switch a PD to its standby incarnation, which the root task's
/// refresher restores while nothing else runs. `fresh` (priority 0, below the refresher)
/// fails twice: both restarts use a standby, the second the incarnation generation 0 ran
/// in and dirtied, now refilled and with its CSpace rebuilt. `again` has
/// `restart_standby="false"` and is restored in place.
fn standby(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-standby"));
    check(b.expect_chain(
        &[
            "monitor: restarted fresh (cause: vm-fault write at 0x700000000 ip 0x",
            ") generation 1 in ",
            " us (standby)",
            "monitor: restarted fresh (cause: vm-fault write at 0x700000000 ip 0x",
            ") generation 2 in ",
            " us (standby)",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "monitor: restarted again (cause: vm-fault write at 0x700000000 ip 0x",
            ") generation 1 in ",
            " us (in place)",
            "monitor: restarted again (cause: vm-fault write at 0x700000000 ip 0x",
            ") generation 2 in ",
            " us (in place)",
        ],
        DEFAULT_TIMEOUT,
    ));
    // Both PDs' third generation: pristine data and bss, and the witness notified (its
    // channel cap is back) by all six incarnations.
    let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
    loop {
        let console = b.console();
        let fresh_gens = console
            .matches("crasher: generation 2: data 7, bss 0")
            .count();
        let notified = console.matches("witness: notified on channel").count();
        if fresh_gens == 2 && notified == 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected two pristine generation-2 starts and six notifications:\n{console}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed",
            "holding",
        ],
    );
}

#[test]
fn restarts_switch_to_a_refreshed_standby_gicv3() {
    standby(3);
}

#[test]
fn restarts_switch_to_a_refreshed_standby_gicv2() {
    standby(2);
}

/// Issue #5 (6): the monitor hangs (its fault-injection hook spins) right after restarting
/// `hang_monitor`, while `slow`'s second restart waits for its 200 ms backoff (its first
/// was immediate). The root task, which
/// pings the monitor every 500 ms, restarts it after two silent periods; the new monitor
/// resumes from the journal the old one kept with the root task: it carries out `slow`'s
/// pending restart (it never saw `slow` fail, and `slow` is blocked on a fault nobody will
/// re-deliver) and counts on from hang_monitor's generation and restarts.
fn monitor_hang(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-monitor-hang"));
    check(b.expect_all(
        &[
            "root-task: system up: 3 protection domains and the monitor started",
            "monitor: watching 3 PDs (generation 0)",
            "monitor: restarted hang_monitor (cause: vm-fault write at 0x700000000 ip 0x",
            "monitor: fault injection: hanging the monitor",
            "root-task: monitor: restarted monitor (cause: hang (no heartbeat in 500 ms)) generation 1",
            "monitor: watching 3 PDs (generation 1)",
            "monitor: resumed from the journal: 1 restarts pending, 0 PDs held",
            "monitor: slow: generation 1, 1 restarts, restart pending",
            "monitor: hang_monitor: generation 1, 1 restarts, running",
            "monitor: restarting slow after ",
            "monitor: restarted slow (cause: vm-fault write at 0x700000000 ip 0x",
        ],
        DEFAULT_TIMEOUT,
    ));
    // The journal's count goes on: hang_monitor's second failure is its second restart.
    check(b.expect_all(
        &[
            "monitor: restarted hang_monitor (cause: vm-fault write at 0x700000000 ip 0x",
            "crasher: generation 2: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
    let console = b.console();
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("monitor: restarted hang_monitor")
                && l.contains(") generation 2 in ")),
        "hang_monitor's second restart should be generation 2:\n{console}"
    );
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "refused",
            "failed:",
            "holding",
            "unreadable",
        ],
    );
}

#[test]
fn monitor_hang_is_recovered_by_the_root_task_gicv3() {
    monitor_hang(3);
}

#[test]
fn monitor_hang_is_recovered_by_the_root_task_gicv2() {
    monitor_hang(2);
}

/// Issue #5: "peers blocked on it get an error result, never a hang". The callee of a
/// protected call crashes while serving it; its restart releases the caller with
/// `CALL_ABORTED`, the caller retries, the restarted callee answers.
fn call_abort(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-call-abort"));
    check(b.expect_all(
        &[
            "pp_callee: generation 0 ready",
            "pp_callee: crashing while serving call 1",
            "monitor: restarted pp_callee (cause: vm-fault write at 0x700000000 ip 0x",
            "pp_callee: generation 1 ready",
            "pp_caller: call 1 aborted: the callee was restarted; retrying",
            "pp_callee: serving call 1",
            "pp_caller: call 1 answered 2",
            "pp_callee: serving call 2",
            "pp_caller: call 2 answered 4",
            "pp_caller: done",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "failed with label",
            "holding",
        ],
    );
}

#[test]
fn call_to_a_restarted_pd_is_aborted_not_hung_gicv3() {
    call_abort(3);
}

#[test]
fn call_to_a_restarted_pd_is_aborted_not_hung_gicv2() {
    call_abort(2);
}

/// Issue #20 (1): false corruption reports must not disarm the watchdog. `liar` reports the
/// healthy `honest` corrupt, again each time it is told honest restarted. The monitor acts
/// on the first report, finds the second one, against an incarnation it just started from
/// the pristine image, not credible and restarts the liar instead; it never holds honest
/// on a report. Honest's later real hang is detected and honest restarted.
fn lying_reporter(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-lying-reporter"));
    check(b.expect_chain(
        &[
            "monitor: restarted honest (cause: corruption reported by pd 5) generation 1",
            "monitor: restarted liar (cause: false corruption report against pd 4) generation 1",
            "liar: generation 1 running",
        ],
        DEFAULT_TIMEOUT,
    ));
    check(b.expect_chain(
        &[
            "honest: generation 1 hanging",
            "monitor: restarted honest (cause: hang (no heartbeat in 100 ms)) generation 2",
            "honest: generation 2 running",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "holding honest",
            "holding liar",
        ],
    );
}

#[test]
fn false_reports_do_not_disarm_the_watchdog_gicv3() {
    lying_reporter(3);
}

#[test]
fn false_reports_do_not_disarm_the_watchdog_gicv2() {
    lying_reporter(2);
}

/// Issue #20 (2): a report Sent, not Called, brings no reply cap. The monitor's answer must
/// not go through the reply cap of the last fault it left unanswered: `held`
/// (restart="never") would be resumed, re-run its faulting instruction and fail again.
fn send_report(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-lying-reporter"));
    check(b.expect_chain(
        &[
            "monitor: holding held stopped: restart=never",
            "send_reporter: sent a report without a reply cap",
            // Lower priorities: runs after whatever the report set off.
            "liar: done lying",
        ],
        DEFAULT_TIMEOUT,
    ));
    let console = b.console();
    let failed = console.matches("monitor: held failed").count();
    if failed != 1 {
        check::<()>(Err(b.failure(format!(
            "held failed {failed} times: the monitor's answer to a Send resumed it"
        ))));
    }
}

#[test]
fn a_sent_report_resumes_no_held_pd_gicv3() {
    send_report(3);
}

/// Issue #20 (suspected, confirmed): a restart the root task refuses stays pending and is
/// retried, rather than leaving the PD stopped and unwatched for good. The monitor's
/// fault-injection hook makes its first request for `refuse_once` malformed, which the
/// root task refuses.
fn refused_restart(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-lying-reporter"));
    check(b.expect_chain(
        &[
            "monitor: the root task refused to restart refuse_once (reason 2)",
            "monitor: restarted refuse_once (cause: vm-fault write at 0x700000000 ip 0x",
            "crasher: generation 1: data 7, bss 0",
        ],
        DEFAULT_TIMEOUT,
    ));
}

#[test]
fn a_refused_restart_is_retried_gicv3() {
    refused_restart(3);
}

/// Issue #21's serial-driver campaign: a driver blamed a `restart="never"` client, the monitor
/// declined, and the connection stayed dead. A report against a peer that cannot be restarted
/// now restarts the reporter (its new generation resets their rings); nobody is held.
fn unrestartable_peer(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-unrestartable-peer"));
    check(b.expect_chain(
        &[
            "monitor: accuser reported innocent corrupt, which cannot be restarted: restarting accuser resets their connection",
            "monitor: restarted accuser (cause: reset of its connection with pd ",
            "accuser: generation 1 running; notifying the peer",
            "witness: notified on channel 3",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "holding innocent",
            "holding accuser",
            "declined",
        ],
    );
}

#[test]
fn a_report_against_an_unrestartable_peer_restarts_the_reporter_gicv3() {
    unrestartable_peer(3);
}

#[test]
fn a_report_against_an_unrestartable_peer_restarts_the_reporter_gicv2() {
    unrestartable_peer(2);
}
