//! Scheduling: a signal to a higher-priority thread preempts the signaller; equal
//! priorities take turns on yield and on timeslice expiry.

use crate::harness::{Ctx, Env, Fail, expect_err, log, log_contents, set_shared, shared};
use axolotl_abi::Error;
use axolotl_abi::Rights;
use axolotl_sys::println;
use axolotl_sys::time::{counter, frequency};
use axolotl_sys::{debug_ticks, syscall, yield_now};

fn high(_: u64) {
    syscall::wait(shared(13));
    log(2);
}

fn low(_: u64) {
    log(1);
    syscall::signal(shared(13));
    log(3);
    syscall::signal(shared(15));
}

pub fn preempt(env: &mut Env) -> Result<(), Fail> {
    let x = env.notification()?;
    let xb = env.mint(x.0, Rights::ALL, 1)?;
    let d = env.notification()?;
    let db = env.mint(d.0, Rights::ALL, 1)?;
    set_shared(13, xb);
    set_shared(15, db);
    env.spawn(high, 0, 200, 0)?;
    env.spawn(low, 0, 100, 0)?;
    d.wait();
    let mut l = [0; 64];
    let n = log_contents(&mut l);
    ensure_eq!(
        &l[..n],
        &[1, 2, 3][..],
        "order of events (2 = woken higher-priority thread)"
    );
    Ok(())
}

fn turn_taker(id: u64) {
    for _ in 0..3 {
        log(id);
        yield_now();
    }
    syscall::signal(shared(id as usize));
}

/// Waits until the notification word has collected all of `bits`.
fn wait_all(n: axolotl_sys::Notification, bits: u64) {
    let mut got = 0;
    while got & bits != bits {
        got |= n.wait();
    }
}

pub fn round_robin(env: &mut Env) -> Result<(), Fail> {
    let d = env.notification()?;
    set_shared(1, env.mint(d.0, Rights::ALL, 1)?);
    set_shared(2, env.mint(d.0, Rights::ALL, 2)?);
    env.spawn(turn_taker, 1, 150, 0)?;
    env.spawn(turn_taker, 2, 150, 0)?;
    wait_all(d, 3);
    let mut l = [0; 64];
    let n = log_contents(&mut l);
    ensure_eq!(&l[..n], &[1, 2, 1, 2, 1, 2][..], "order of turns");
    Ok(())
}

fn spinner(id: u64) {
    let other = if id == 1 { 4 } else { 3 };
    set_shared(2 + id as usize, 1);
    let deadline = debug_ticks() + shared(5);
    while shared(other) == 0 && debug_ticks() < deadline {
        core::hint::spin_loop();
    }
    set_shared(5 + id as usize, (shared(other) != 0) as u64 + 1);
    syscall::signal(shared(id as usize));
}

pub fn timeslice(env: &mut Env) -> Result<(), Fail> {
    let d = env.notification()?;
    set_shared(1, env.mint(d.0, Rights::ALL, 1)?);
    set_shared(2, env.mint(d.0, Rights::ALL, 2)?);
    // Two seconds of ticks: far more than a timeslice, short enough not to stall the suite.
    set_shared(5, 2 * crate::harness::tick_hz(env));
    env.spawn(spinner, 1, 150, 0)?;
    env.spawn(spinner, 2, 150, 0)?;
    wait_all(d, 3);
    ensure_eq!(
        (shared(6), shared(7)),
        (2, 2),
        "each spinner saw the other run (2 = yes, 1 = timed out)"
    );
    Ok(())
}

/// Spins for `ms` milliseconds of the counter, then says so.
fn spin_for(ms: u64) {
    let until = counter() + ms * frequency() / 1000;
    while counter() < until {
        core::hint::spin_loop();
    }
    syscall::signal(shared(1));
}

/// Blocks until woken, then says so.
fn sleep_until_woken(_: u64) {
    syscall::wait(shared(2));
    syscall::signal(shared(3));
}

/// `TcbGetCpuTime`: a thread that spins is charged at least its spin; one that waits as
/// long is charged next to nothing; the threads', the kernel's and idle time never add up
/// to more than the time that passed. A kernel built without `cpu-time` refuses it
/// (IllegalOperation): the suite runs once with it (`kernel_suite_user_error`).
pub fn cpu_time(env: &mut Env) -> Result<(), Fail> {
    const SPIN_MS: u64 = 50;
    let me = env.thread(sleep_until_woken, 0, 1, 0)?;
    if let Err(e) = me.tcb.cpu_time() {
        expect_err(Err::<(), _>(e), Error::IllegalOperation, "TcbGetCpuTime")?;
        println!("kernel-suite: cpu time: not in this kernel (refused)");
        return Ok(());
    }
    let done = env.notification()?;
    set_shared(1, env.mint(done.0, Rights::ALL, 1)?);
    set_shared(3, env.mint(done.0, Rights::ALL, 2)?);
    let wake = env.notification()?;
    set_shared(2, env.mint(wake.0, Rights::ALL, 1)?);
    let sleeper = env.spawn(sleep_until_woken, 0, 150, 0)?;
    let before = sleeper.tcb.cpu_time().ctx("TcbGetCpuTime")?;
    // Below us: it runs while we wait.
    let spinner = env.spawn(spin_for, SPIN_MS, 50, 0)?;
    wait_all(done, 1);
    let spun = spinner.tcb.cpu_time().ctx("TcbGetCpuTime")?;
    wake.signal();
    wait_all(done, 2);
    let slept = sleeper.tcb.cpu_time().ctx("TcbGetCpuTime")?;
    let spin = SPIN_MS * frequency() / 1000;
    // Less the kernel's ticks that interrupted it (a few microseconds each).
    ensure!(
        spun.thread >= spin - spin / 10,
        "a thread that spun {spin} cycles was charged {}",
        spun.thread
    );
    // The sleeper ran a few instructions; a host that stops QEMU in them can stretch them,
    // never to half the spin.
    ensure!(
        slept.thread < spin / 2,
        "a thread that waited through a {spin}-cycle spin was charged {}",
        slept.thread
    );
    ensure!(
        slept.kernel > before.kernel && slept.idle >= before.idle && slept.now > spun.now,
        "the kernel's and idle time run on ({before:?} -> {slept:?})"
    );
    ensure!(
        spun.thread + slept.thread + slept.kernel + slept.idle <= slept.now,
        "more time charged than passed ({spun:?}, {slept:?})"
    );
    println!(
        "kernel-suite: cpu time: a {SPIN_MS} ms spin charged {} of {spin} cycles, the waiting thread {}",
        spun.thread, slept.thread
    );
    Ok(())
}
