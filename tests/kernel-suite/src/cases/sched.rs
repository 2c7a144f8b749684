//! Scheduling: a signal to a higher-priority thread preempts the signaller; equal
//! priorities take turns on yield and on timeslice expiry.

use crate::harness::{Env, Fail, log, log_contents, set_shared, shared};
use axolotl_abi::Rights;
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
