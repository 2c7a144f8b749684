//! Failure points of the test build (cargo feature `fault-injection`, which xtask turns on
//! for test systems only): a test arms one from outside by typing a line into the guest's
//! console input, and the VMM fails at the next exit of the kind it names. The line is a shell
//! comment, so the guest's shell ignores it:
//!
//! ```text
//! # vmm-fault <crash|hang|corrupt> <uart|gicd|inject|listed|cpu-on|notify|notify-done|any>
//! ```
//!
//! `crash` is a wild write (a VM fault the monitor sees), `hang` stops answering (the
//! monitor's heartbeat finds it), `corrupt` scribbles over the device state region a restart
//! recovers from (the caller, which owns it), then crashes. The kinds: a data abort in the vPL011's window, one in the vGIC
//! distributor's, putting an interrupt into a list register (`inject`: after the write;
//! `listed`: while the VMM handles a notification such as console input, so no vCPU waits
//! in an exit, after the commit that lists it and before the write), a PSCI CPU_ON, a virtio
//! QueueNotify write (before it is handled: the guest's I/O in flight as the last commit
//! left it), the same after its handling was committed and before the reply (the requests
//! it took at the backend), any exit.

use axolotl_pd::println;

/// What to do when the armed point is reached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Crash,
    Hang,
    Corrupt,
}

/// Where: the kind of exit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Point {
    Uart,
    Gicd,
    Inject,
    Listed,
    CpuOn,
    Notify,
    NotifyDone,
    Any,
}

/// The guest-physical windows the points name (lib/vmm-core's guest plan puts them where
/// QEMU virt does: docs/vmm.md).
const UART: core::ops::Range<u64> = 0x0900_0000..0x0900_1000;
const GICD: core::ops::Range<u64> = 0x0800_0000..0x0801_0000;
/// QEMU virt's virtio-mmio transports (0x200 apart) and their QueueNotify register.
const VIRTIO: core::ops::Range<u64> = 0x0a00_0000..0x0a00_4000;
const QUEUE_NOTIFY: u64 = 0x50;

const PREFIX: &[u8] = b"# vmm-fault ";

/// Watches console input for the arming line, a byte at a time (input comes in chunks of
/// any size).
pub struct Trigger {
    line: [u8; 48],
    len: usize,
    /// Whether the current line can still be an arming line (it began with `PREFIX`).
    live: bool,
    armed: Option<(Action, Point)>,
}

impl Trigger {
    pub const fn new() -> Self {
        Self {
            line: [0; 48],
            len: 0,
            live: true,
            armed: None,
        }
    }

    pub fn byte(&mut self, b: u8) {
        if b == b'\r' || b == b'\n' {
            if self.live
                && let Some(a) = parse(&self.line[..self.len])
            {
                println!(
                    "vmm: fault injection armed: {:?} at the next {:?} exit",
                    a.0, a.1
                );
                self.armed = Some(a);
            }
            self.len = 0;
            self.live = true;
            return;
        }
        if !self.live {
            return;
        }
        if self.len == self.line.len() {
            self.live = false;
            return;
        }
        self.line[self.len] = b;
        self.len += 1;
        let n = self.len.min(PREFIX.len());
        if self.line[..n] != PREFIX[..n] {
            self.live = false;
        }
    }

    /// The action armed for `point`, disarmed by being taken.
    pub fn take(&mut self, point: Point) -> Option<Action> {
        match self.armed {
            Some((a, p)) if p == point || p == Point::Any => {
                self.armed = None;
                Some(a)
            }
            _ => None,
        }
    }
}

/// The point of an exit: a data abort (`(ipa, write)`) in the UART's or distributor's
/// window, a write to a virtio QueueNotify, else `Any`.
pub fn point_of(abort: Option<(u64, bool)>) -> Point {
    match abort {
        Some((ipa, _)) if UART.contains(&ipa) => Point::Uart,
        Some((ipa, _)) if GICD.contains(&ipa) => Point::Gicd,
        Some((ipa, true)) if VIRTIO.contains(&ipa) && ipa % 0x200 == QUEUE_NOTIFY => Point::Notify,
        _ => Point::Any,
    }
}

fn parse(line: &[u8]) -> Option<(Action, Point)> {
    let rest = line.strip_prefix(PREFIX)?;
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let action = match words.next()? {
        b"crash" => Action::Crash,
        b"hang" => Action::Hang,
        b"corrupt" => Action::Corrupt,
        _ => return None,
    };
    let point = match words.next()? {
        b"uart" => Point::Uart,
        b"gicd" => Point::Gicd,
        b"inject" => Point::Inject,
        b"listed" => Point::Listed,
        b"cpu-on" => Point::CpuOn,
        b"notify" => Point::Notify,
        b"notify-done" => Point::NotifyDone,
        b"any" => Point::Any,
        _ => return None,
    };
    words.next().is_none().then_some((action, point))
}

/// Fails as `action` says, in the middle of the exit being handled.
pub fn fail(action: Action, point: Point) {
    // The time is the benchmark's start of a restart (`cargo xtask bench`).
    println!(
        "vmm: fault injection: {action:?} at a {point:?} exit at {} ns",
        axolotl_sys::time::now_ns()
    );
    match action {
        Action::Crash => crash(),
        Action::Hang => loop {
            core::hint::spin_loop();
        },
        // The caller scribbled over the state region already; the crash makes it count.
        Action::Corrupt => crash(),
    }
}

fn crash() {
    // SAFETY: a store to an address no PD maps: the kernel turns it into a VM fault for the
    // monitor, as a VMM bug's wild write would be; it touches no memory of ours.
    unsafe {
        core::arch::asm!("mov {t}, #0x10", "str xzr, [{t}]", t = out(reg) _, options(nostack))
    };
}
