//! Issue #16: restarting a failed VMM with its guest kept (tests/systems/vmm-restart-gicv3.system:
//! the Debian guest of tests/tests/linux.rs under a VMM with `restart="on-failure"`, a
//! heartbeat, a device state region, and the test build's failure points, armed by typing
//! `# vmm-fault <action> <point>` into the guest's console — a comment to the guest's shell;
//! vmm-pd/src/inject.rs).
//!
//! The root task keeps the guest's vCPUs, RAM and stage-2 space across the restart; the vCPU
//! that exited into the dead VMM takes its exit again into the new one (kernel suite:
//! `vcpu_*_redelivered_after_vmm_dies`); the new VMM recovers the device state from the region
//! and goes on. A state region that fails validation is a failed recovery: the guest is
//! rebooted, never run on it.

use std::time::Duration;

use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Machine};
use axolotl_tests::{boot_named, check};

/// Host seconds; a TCG boot to userspace takes about 10 s here, several times that loaded.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Types `text` on the guest's console input (UART1, the harness's socket).
fn type_in(b: &mut Boot, text: &str) {
    check(b.send_uart1(text.as_bytes()));
}

/// Boots the GICv3 system to the guest's shell, sets a shell variable, arms `action` at
/// `point`, and expects the monitor to restart the VMM with `cause` and the new VMM to log
/// `outcome`. Returns the boot.
fn fail_vmm(
    action: &str,
    point: &str,
    armed: &str,
    cause: &str,
    outcome: &str,
) -> axolotl_qemu::Boot {
    fail_vmm_on(3, "vmm-restart-gicv3", action, point, armed, cause, outcome)
}

/// [`fail_vmm`] on `system` (tests/systems/<system>.system) of a GICv`gic` board.
#[allow(clippy::too_many_arguments)]
fn fail_vmm_on(
    gic: u8,
    system: &str,
    action: &str,
    point: &str,
    armed: &str,
    cause: &str,
    outcome: &str,
) -> axolotl_qemu::Boot {
    let mut b = arm_vmm_on(gic, system, action, point);
    check(b.expect_all(
        &[
            &format!("vmm: fault injection armed: {armed}"),
            "vmm: fault injection: ",
            &format!("monitor: restarted vmm (cause: {cause}"),
            outcome,
        ],
        BOOT_TIMEOUT,
    ));
    b
}

/// Boots `system` to the guest's shell, sets a shell variable and arms `action` at `point`.
fn arm_vmm_on(gic: u8, system: &str, action: &str, point: &str) -> axolotl_qemu::Boot {
    let mut b = boot_to_shell(gic, system);
    type_in(&mut b, &format!("# vmm-fault {action} {point}\n"));
    b
}

/// Boots `system` to the guest's shell and sets a shell variable.
fn boot_to_shell(gic: u8, system: &str) -> axolotl_qemu::Boot {
    let mut b = check(boot_named(gic, "cortex-a72", &format!("-{system}")));
    check(b.expect_all(
        &[
            "vmm: guest started at 0x40000000",
            "vmm: console input from the serial driver",
            // Not earlier: the kernel command line names the guest's markers too.
            "Run /init as init process",
            "AXOLOTL-GUEST-DONE",
        ],
        BOOT_TIMEOUT,
    ));
    // State only this shell holds: a reboot loses it.
    type_in(&mut b, "x=kept; echo set-$x-$((6*7))\n");
    check(b.expect("set-kept-42", BOOT_TIMEOUT));
    b
}

/// Boots `system` of a GICv`gic` board with `vcpus` vCPUs to its shell, arms a crash at `point`
/// (`kind` as the VMM names it), types `command`, which makes the guest reach that point, and
/// expects the restart, the takeover and `marker` (the command's own output); then the guest
/// goes on.
fn crash_on_command(
    gic: u8,
    system: &str,
    vcpus: u8,
    point: &str,
    kind: &str,
    command: &str,
    marker: &str,
) {
    let mut b = arm_vmm_on(gic, system, "crash", point);
    check(b.expect(
        &format!("vmm: fault injection armed: Crash at the next {kind} exit"),
        BOOT_TIMEOUT,
    ));
    type_in(&mut b, command);
    check(b.expect_all(
        &[
            &format!("vmm: fault injection: Crash at a {kind} exit"),
            "monitor: restarted vmm (cause: vm-fault write at 0x10 ",
            &format!("vmm: generation 1: took over the running guest ({vcpus} vCPUs)"),
            marker,
        ],
        BOOT_TIMEOUT,
    ));
    guest_went_on(b);
}

/// The guest went on: the shell kept its variable, it counts without a gap, and Linux booted
/// once. Then it powers off cleanly.
fn guest_went_on(mut b: axolotl_qemu::Boot) {
    type_in(
        &mut b,
        "echo still-$x; for i in 1 2 3 4 5; do echo tick-$i; done\n",
    );
    check(b.expect_all(
        &[
            "still-kept",
            "tick-1",
            "tick-2",
            "tick-3",
            "tick-4",
            "tick-5",
        ],
        BOOT_TIMEOUT,
    ));
    let boots = b.console().matches("Booting Linux on physical CPU").count();
    if boots != 1 {
        check::<()>(Err(b.failure(format!("the guest booted {boots} times"))));
    }
    type_in(&mut b, "exit\n");
    check(b.expect("vmm: guest powered off (PSCI SYSTEM_OFF)", BOOT_TIMEOUT));
    for bad in [
        "kernel: FAULT",
        "KERNEL PANIC",
        "Kernel panic",
        "cut here",
        "recovery failed",
        "vmm: generation 2",
    ] {
        check(b.refute(bad));
    }
}

/// A wild write while the VMM handles a guest access to its UART (the guest reading the
/// armed line's bytes, or echoing them): the exit is taken again by the recovered VMM.
#[test]
fn vmm_crash_at_a_uart_exit_keeps_the_guest_gicv3() {
    let b = fail_vmm(
        "crash",
        "uart",
        "Crash at the next Uart exit",
        "vm-fault write at 0x10 ",
        "vmm: generation 1: took over the running guest (1 vCPUs)",
    );
    guest_went_on(b);
}

/// A crash while the guest reads a line typed in one go behind the arming line: the VMM dies
/// at the first UART exit after arming, with the rest of the typed input taken from the
/// driver but not yet read by the guest. That input is device state (the guest UART's FIFO
/// and line) or still the driver's, so the new VMM delivers all of it, once, in order. An
/// earlier VMM held what the FIFO had no room for in its own memory, and the line's tail
/// died with it (`vmm_crash_at_a_distributor_exit_keeps_the_guest_gicv2` failed so).
#[test]
fn vmm_crash_while_the_guest_reads_typed_input_keeps_the_input_gicv3() {
    crash_while_reading_typed_input(3, "vmm-restart-gicv3");
}

#[test]
fn vmm_crash_while_the_guest_reads_typed_input_keeps_the_input_gicv2() {
    crash_while_reading_typed_input(2, "vmm-restart-gicv2");
}

fn crash_while_reading_typed_input(gic: u8, system: &str) {
    let mut b = boot_to_shell(gic, system);
    // Several FIFOs' worth behind the arming line, sent at once: the output names each
    // stretch once, so a byte lost or repeated anywhere shows.
    let words: Vec<String> = (0..12).map(|i| format!("w{i:02}-abcdefgh")).collect();
    type_in(
        &mut b,
        &format!(
            "# vmm-fault crash uart\necho typed-$((6*7)) {} end-$((2*4))\n",
            words.join(" ")
        ),
    );
    check(b.expect_all(
        &[
            "vmm: fault injection armed: Crash at the next Uart exit",
            "vmm: fault injection: Crash at a Uart exit",
            "monitor: restarted vmm (cause: vm-fault write at 0x10 ",
            "vmm: generation 1: took over the running guest (1 vCPUs)",
            &format!("typed-42 {} end-8", words.join(" ")),
        ],
        BOOT_TIMEOUT,
    ));
    guest_went_on(b);
}

/// The monitor's line for restart `generation` of the VMM ("monitor: restarted vmm (cause:
/// ...) generation N in M us (standby|in place)").
fn vmm_restart_line(b: &mut Boot, generation: u32) -> String {
    let console = b.console();
    let needle = format!(") generation {generation} in ");
    match console
        .lines()
        .find(|l| l.starts_with("monitor: restarted vmm ") && l.contains(&needle))
    {
        Some(l) => l.to_string(),
        None => check(Err(
            b.failure(format!("no line for VMM generation {generation}"))
        )),
    }
}

/// Two VMM crashes in a row: the first switches to the standby built at boot, the root
/// task's refresher restores the incarnation it left, and the second restart switches to
/// that, not restoring in place. Here the guest idles at its shell before the first crash,
/// so the refresher already waits when signalled; the case where it had never run (the
/// guest busy from boot to the crash, `xtask bench --only vmm-restart` under -icount: its
/// badge-0 signal was lost) is the kernel suite's `ntfn_zero_badge_signal_pending`.
#[test]
fn vmm_crashes_in_a_row_each_switch_to_a_standby_gicv3() {
    let mut b = fail_vmm(
        "crash",
        "uart",
        "Crash at the next Uart exit",
        "vm-fault write at 0x10 ",
        "vmm: generation 1: took over the running guest (1 vCPUs)",
    );
    let first = vmm_restart_line(&mut b, 1);
    if !first.ends_with("(standby)") {
        check::<()>(Err(b.failure(format!("first restart: {first:?}"))));
    }
    type_in(&mut b, "echo after-first-$x\n");
    check(b.expect("after-first-kept", BOOT_TIMEOUT));
    type_in(&mut b, "# vmm-fault crash uart\n");
    check(b.expect_all(
        &[
            "vmm: generation 2: took over the running guest (1 vCPUs)",
            "root-task: the standby of vmm restored in ",
        ],
        BOOT_TIMEOUT,
    ));
    let second = vmm_restart_line(&mut b, 2);
    if !second.ends_with("(standby)") {
        check::<()>(Err(b.failure(format!(
            "second restart not from a refreshed standby: {second:?}"
        ))));
    }
    type_in(&mut b, "echo after-second-$x\n");
    check(b.expect("after-second-kept", BOOT_TIMEOUT));
    for bad in [
        "kernel: FAULT",
        "KERNEL PANIC",
        "Kernel panic",
        "recovery failed",
        "restoring the standby of vmm failed",
        "standby refresher failed",
    ] {
        check(b.refute(bad));
    }
}

/// The VMM stops answering in the middle of an exit: its heartbeat stops, the monitor
/// restarts it, and the guest goes on, with the input typed meanwhile.
#[test]
fn vmm_hang_keeps_the_guest_gicv3() {
    vmm_hang(3);
}

#[test]
fn vmm_hang_keeps_the_guest_gicv2() {
    vmm_hang(2);
}

fn vmm_hang(gic: u8) {
    let mut b = arm_vmm_on(gic, &format!("vmm-restart-gicv{gic}"), "hang", "any");
    check(b.expect_all(
        &[
            "vmm: fault injection armed: Hang at the next Any exit",
            "vmm: fault injection: Hang at",
        ],
        BOOT_TIMEOUT,
    ));
    // Typed while the VMM hangs: the serial driver hands the line to the hung VMM, which
    // never reads it; its successor must get it (the driver keeps what a dead receiver
    // never read). The driver's line proves the line went that way, not straight to the
    // successor (the heartbeat's 2 s are the window to type in).
    type_in(&mut b, "echo typed-while-hung-$((2*3))\n");
    check(b.expect_all(
        &[
            "monitor: restarted vmm (cause: hang (no heartbeat in 2000 ms)",
            "vmm: generation 1: took over the running guest (1 vCPUs)",
            "serial_driver: the receiving client restarted; 31 bytes it never read go to its successor",
            "typed-while-hung-6",
        ],
        BOOT_TIMEOUT,
    ));
    guest_went_on(b);
}

/// A scribbled state region fails validation: a failed recovery, logged, and the guest is
/// rebooted rather than run on it; the rebooted guest's shell takes typed input.
#[test]
fn vmm_corrupt_state_reboots_the_guest_gicv3() {
    let mut b = fail_vmm(
        "corrupt",
        "uart",
        "Corrupt at the next Uart exit",
        "vm-fault write at 0x10 ",
        "vmm: generation 1: recovery failed (device state refused: HeaderChecksum): rebooting the guest",
    );
    check(b.expect_all(
        &[
            // Counted by the monitor as a failed recovery, not as one more good restart.
            "monitor: vmm generation 1: recovery failed, started afresh (1 so far)",
            "vmm: guest started at 0x40000000",
            "Run /init as init process",
            "AXOLOTL-GUEST-DONE",
        ],
        BOOT_TIMEOUT,
    ));
    type_in(&mut b, "echo after-$((3*3))\n");
    check(b.expect("after-9", BOOT_TIMEOUT));
    type_in(&mut b, "exit\n");
    check(b.expect("vmm: guest powered off (PSCI SYSTEM_OFF)", BOOT_TIMEOUT));
    for bad in ["kernel: FAULT", "KERNEL PANIC", "Kernel panic", "cut here"] {
        check(b.refute(bad));
    }
}

/// A crash after the VMM committed an exit and wrote the list registers it implies, before
/// its reply: the kernel re-sends that exit under its number, and the new VMM answers it from
/// the committed record instead of handling it twice.
#[test]
fn vmm_crash_after_an_injection_keeps_the_guest_gicv3() {
    crash_after_an_injection(3);
}

#[test]
fn vmm_crash_after_an_injection_keeps_the_guest_gicv2() {
    crash_after_an_injection(2);
}

fn crash_after_an_injection(gic: u8) {
    let mut b = fail_vmm_on(
        gic,
        &format!("vmm-restart-gicv{gic}"),
        "crash",
        "inject",
        "Crash at the next Inject exit",
        "vm-fault write at 0x10 ",
        "vmm: generation 1: took over the running guest (1 vCPUs)",
    );
    check(b.expect(
        "was committed before the restart: answered from its record",
        BOOT_TIMEOUT,
    ));
    guest_went_on(b);
}

/// A crash between the commit that lists an interrupt and the list register write, while
/// the VMM handles a notification (console input: the UART's line goes up): no vCPU waits
/// in an exit, so the new VMM must write every committed listing itself, or the guest never
/// sees its UART's interrupt again (its shell would take no more input).
#[test]
fn vmm_crash_between_listing_and_writing_keeps_the_guest_gicv3() {
    crash_between_listing_and_writing(3);
}

#[test]
fn vmm_crash_between_listing_and_writing_keeps_the_guest_gicv2() {
    crash_between_listing_and_writing(2);
}

fn crash_between_listing_and_writing(gic: u8) {
    // Input while the guest idles in its shell: the notification raises the UART's line.
    crash_on_command(
        gic,
        &format!("vmm-restart-gicv{gic}"),
        1,
        "listed",
        "Listed",
        "echo x-$((4+4))\n",
        "x-8",
    );
}

/// A crash while the VMM handles a write to the vGIC distributor: the guest moves its
/// interrupts to its second CPU (each `smp_affinity` write is a GICD_IROUTER write on GICv3,
/// GICD_ITARGETSR on GICv2, with the interrupt disabled and enabled around it), the exit is
/// taken again by the new VMM, and the interrupts still arrive (the shell's input is the UART's).
#[test]
fn vmm_crash_at_a_distributor_exit_keeps_the_guest_gicv3() {
    crash_at_a_distributor_exit(3);
}

#[test]
fn vmm_crash_at_a_distributor_exit_keeps_the_guest_gicv2() {
    crash_at_a_distributor_exit(2);
}

fn crash_at_a_distributor_exit(gic: u8) {
    crash_on_command(
        gic,
        &format!("vmm-restart-smp-gicv{gic}"),
        2,
        "gicd",
        "Gicd",
        "for f in /proc/irq/*/smp_affinity; do echo 2 > $f; done 2>/dev/null; echo moved-$((3*3))\n",
        "moved-9",
    );
}

/// A crash while the VMM handles a PSCI CPU_ON: the guest takes its second CPU offline and
/// brings it back (Linux's hotplug: PSCI CPU_OFF, then CPU_ON), the VMM dies in the CPU_ON,
/// and the new VMM must still start that CPU, though it ran before.
#[test]
fn vmm_crash_at_a_cpu_on_keeps_the_guest_gicv3() {
    crash_at_a_cpu_on(3);
}

#[test]
fn vmm_crash_at_a_cpu_on_keeps_the_guest_gicv2() {
    crash_at_a_cpu_on(2);
}

fn crash_at_a_cpu_on(gic: u8) {
    let online = "/sys/devices/system/cpu/cpu1/online";
    crash_on_command(
        gic,
        &format!("vmm-restart-smp-gicv{gic}"),
        2,
        "cpu-on",
        "CpuOn",
        &format!("echo 0 > {online}; echo 1 > {online}; echo online-$(cat {online})-$((2+2))\n"),
        "online-1-4",
    );
}

/// GICv2: the guest's CPU interface is the real GICV frame, its list registers GICH's.
#[test]
fn vmm_crash_at_a_uart_exit_keeps_the_guest_gicv2() {
    let b = fail_vmm_on(
        2,
        "vmm-restart-gicv2",
        "crash",
        "uart",
        "Crash at the next Uart exit",
        "vm-fault write at 0x10 ",
        "vmm: generation 1: took over the running guest (1 vCPUs)",
    );
    guest_went_on(b);
}

/// Two vCPUs: the one that exited into the dead VMM takes its exit again, the other ran on.
#[test]
fn vmm_crash_keeps_the_two_vcpu_guest_gicv3() {
    crash_keeps_the_two_vcpu_guest(3);
}

#[test]
fn vmm_crash_keeps_the_two_vcpu_guest_gicv2() {
    crash_keeps_the_two_vcpu_guest(2);
}

fn crash_keeps_the_two_vcpu_guest(gic: u8) {
    let mut b = fail_vmm_on(
        gic,
        &format!("vmm-restart-smp-gicv{gic}"),
        "crash",
        "any",
        "Crash at the next Any exit",
        "vm-fault write at 0x10 ",
        "vmm: generation 1: took over the running guest (2 vCPUs)",
    );
    let console = b.console();
    if !console.contains("smp: Brought up 1 node, 2 CPUs") {
        check::<()>(Err(b.failure("the guest did not bring up its second CPU")));
    }
    guest_went_on(b);
}

/// The guest's workload never notices: a shell loop counting into a file (and onto the
/// console) runs while the VMM is crashed at a UART exit in the middle of it; afterwards the
/// file holds every count once, in order, and the guest's boot id and uptime went on. (The
/// console line the dead VMM was buffering may be cut: docs/vmm.md, "Restart".)
#[test]
fn vmm_crash_in_a_counting_loop_loses_no_count_gicv3() {
    let mut b = check(boot_named(3, "cortex-a72", "-vmm-restart-gicv3"));
    check(b.expect_all(
        &["Run /init as init process", "AXOLOTL-GUEST-DONE"],
        BOOT_TIMEOUT,
    ));
    type_in(
        &mut b,
        "read b0 < /proc/sys/kernel/random/boot_id; read u0 x < /proc/uptime; echo boot0=$((1+1))-$b0\n",
    );
    let before = check(b.expect("boot0=2-", BOOT_TIMEOUT));
    let boot_id = before
        .split("boot0=2-")
        .nth(1)
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if boot_id.len() < 32 {
        check::<()>(Err(b.failure(format!("no boot id in {before:?}"))));
    }
    type_in(
        &mut b,
        "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo $i >> /count; echo tick-$i; done\n",
    );
    check(b.expect("tick-40", BOOT_TIMEOUT));
    // Taken by the guest's tty while the loop runs (the shell reads it after the loop).
    type_in(&mut b, "# vmm-fault crash uart\n");
    check(b.expect_all(
        &[
            "vmm: fault injection: Crash at a Uart exit",
            "monitor: restarted vmm (cause: vm-fault write at 0x10 ",
            "vmm: generation 1: took over the running guest (1 vCPUs)",
            "tick-400",
        ],
        BOOT_TIMEOUT,
    ));
    type_in(
        &mut b,
        "awk 'NR != $1 { bad = 1 } END { print (bad ? \"BAD\" : \"GOOD\") \"-counts-\" NR }' /count; \
         read b1 < /proc/sys/kernel/random/boot_id; read u1 x < /proc/uptime; \
         [ \"$b1\" = \"$b0\" ] && echo same-$((2+3))-boot; \
         awk -v a=$u0 -v b=$u1 'BEGIN { if (b > a) print \"uptime-\" 6*7 }'\n",
    );
    check(b.expect_all(
        &["GOOD-counts-400", "same-5-boot", "uptime-42"],
        BOOT_TIMEOUT,
    ));
    let boots = b.console().matches("Booting Linux on physical CPU").count();
    if boots != 1 {
        check::<()>(Err(b.failure(format!("the guest booted {boots} times"))));
    }
    type_in(&mut b, "exit\n");
    check(b.expect("vmm: guest powered off (PSCI SYSTEM_OFF)", BOOT_TIMEOUT));
    for bad in [
        "kernel: FAULT",
        "KERNEL PANIC",
        "Kernel panic",
        "BAD-counts",
        "recovery failed",
    ] {
        check(b.refute(bad));
    }
}

/// The root task watches the monitor's heartbeat from the monitor's start, not from when it
/// took the timer: the build goes on after that (the VM, every CSpace, the standby images,
/// the VMM's with the guest kernel it embeds), and under instruction-counted time
/// (`-icount shift=7`: 128 ns per instruction, whatever the host's load) that is
/// virtual seconds, more than the monitor's allowance (two 500 ms periods and a last
/// chance). Seen loaded without icount: a Linux test's monitor restarted as hung at boot.
#[test]
fn the_monitor_is_watched_from_its_start_gicv3() {
    let dir =
        std::path::PathBuf::from(std::env::var_os("AXOLOTL_IMAGES").expect(
            "AXOLOTL_IMAGES is not set: run the integration tests through `cargo xtask test`",
        ));
    let board = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).expect("known board");
    let mut m = Machine::new(board);
    m.cpu = "cortex-a72";
    m.icount_shift = Some(7);
    let mut b = check(axolotl_tests::start_image(
        &m,
        &dir.join(format!("{}-gic3-vmm-restart-gicv3.elf", board.name)),
    ));
    check(b.expect_all(
        &[
            "root-task: system up:",
            "monitor: watching 2 PDs (generation 0)",
            "vmm: guest started at 0x40000000",
        ],
        BOOT_TIMEOUT,
    ));
    check(b.refute("restarted monitor"));
}
