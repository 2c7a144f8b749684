//! Issue #19: Microkit's domain schedule. `tests/systems/hello-domains.system` is Microkit's
//! `hello_domains` with shorter slots and a first PD that would starve the others without
//! domains: each PD runs, in its own domain's slots only; a PD of domain 3 that fails is
//! restarted by the monitor (domain 0) and runs again in domain 3.

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

/// `(name, tick)` of each hello line so far.
fn hellos(console: &str) -> Vec<(String, u64)> {
    console
        .lines()
        .filter_map(|l| {
            let rest = l.split("hello, world from ").nth(1)?;
            let (name, tick) = rest.split_once(" at tick ")?;
            Some((name.to_string(), tick.trim().parse().ok()?))
        })
        .collect()
}

fn hello_domains(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-hello-domains"));
    check(b.expect(
        "root-task: domain schedule of 3 entries set",
        DEFAULT_TIMEOUT,
    ));
    check(b.expect(
        "root-task: system up: 4 protection domains and the monitor started",
        DEFAULT_TIMEOUT,
    ));
    // A new TCB is in domain 0, where `hello` (priority 200) leaves the crasher (100) no
    // time: generation 1 runs only if the restart kept the crasher in its domain.
    check(b.expect_chain(
        &[
            "crasher: generation 0",
            "monitor: restarted crasher (cause: vm-fault",
            "crasher: generation 1",
        ],
        DEFAULT_TIMEOUT,
    ));
    // Every PD has had its slot; then about four rounds (1.6 s each) more.
    check(b.expect_all(
        &[
            "hello, world from hello at tick",
            "hello, world from hello_2 at tick",
            "hello, world from hello_3 at tick",
        ],
        DEFAULT_TIMEOUT,
    ));
    let first = hellos(&b.console()).len();
    while hellos(&b.console()).len() < first + 80 {
        check(b.expect("hello, world from", DEFAULT_TIMEOUT));
    }
    // Slots of 100, 300 and 400 ticks (2 ms each): within one slot only its PD speaks, so
    // the lines come in runs by PD, each run within one slot's length, in domain order.
    let console = b.console();
    let lines = hellos(&console);
    let mut runs: Vec<(String, u64, u64)> = Vec::new();
    for (name, tick) in lines {
        match runs.last_mut() {
            Some((n, _, last)) if *n == name => *last = tick,
            _ => runs.push((name, tick, tick)),
        }
    }
    let order = ["hello", "hello_2", "hello_3"];
    for w in runs.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        let ia = order.iter().position(|n| n == a).unwrap();
        assert_eq!(
            order[(ia + 1) % 3],
            b.as_str(),
            "PDs speak in domain order: {runs:?}\n{console}"
        );
    }
    for (name, from, to) in &runs {
        let slot = match name.as_str() {
            "hello" => 100,
            "hello_2" => 300,
            _ => 400,
        };
        assert!(
            to - from < slot,
            "{name} spoke from tick {from} to {to}, longer than its domain's slot of {slot}: \
             {runs:?}\n{console}"
        );
    }
    // Domain 0 stops for 1.4 s a round, longer than two of the root task's 500 ms pings of
    // the monitor: the last-chance ping in domain 0's next slot keeps it from a false hang.
    refute_each(&mut b, &["restarted monitor", "cause: hang"]);
}

#[test]
fn hello_domains_gicv3() {
    hello_domains(3);
}

#[test]
fn hello_domains_gicv2() {
    hello_domains(2);
}
