//! Domains: a thread of another domain does not run in this domain's slot, whatever its
//! priority; it runs in its own; the domain cap refuses bad domains and schedules.

use crate::harness::{Ctx, Env, Fail, expect_err, set_shared, shared};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{Error, MAX_DOMAIN_SCHEDULE, Rights, domain_entry};
use axolotl_sys::{DomainSet, debug_ticks, syscall};

const DOMAIN: DomainSet = DomainSet(init_cap::DOMAIN);

/// Records the tick it first ran at (+1, so 0 means "never ran") in `shared(8 + id)`.
fn stamp(id: u64) {
    set_shared(8 + id as usize, debug_ticks() + 1);
    syscall::signal(shared(id as usize));
}

pub fn other_domain_waits(env: &mut Env) -> Result<(), Fail> {
    let d = env.notification()?;
    set_shared(1, env.mint(d.0, Rights::ALL, 1)?);
    set_shared(2, env.mint(d.0, Rights::ALL, 2)?);
    // Both slots far longer than a tick, and the suite (domain 0) at the start of its own.
    let slot_us = 200_000;
    let slot_ticks = slot_us * crate::harness::tick_hz(env) / 1_000_000;
    DOMAIN
        .set_schedule(&[domain_entry(0, slot_us), domain_entry(1, slot_us)])
        .ctx("DomainSetSchedule")?;
    let start = debug_ticks();
    let other = env.thread(stamp, 1, 200, 0)?;
    DOMAIN.set(1, other.tcb).ctx("DomainSetSet")?;
    other.tcb.resume().ctx("resume the domain-1 thread")?;
    env.spawn(stamp, 2, 200, 0)?;
    let mut got = 0;
    while got & 3 != 3 {
        got |= d.wait();
    }
    // Back to domain 0 alone before checking, so a failure leaves the suite running.
    DOMAIN.set_schedule(&[]).ctx("reset the schedule")?;
    let (ran_other, ran_same) = (shared(9), shared(10));
    ensure!(
        ran_same != 0 && ran_same - 1 < start + slot_ticks,
        "the domain-0 thread ran in domain 0's slot (at {ran_same} - 1, slot from {start})"
    );
    ensure!(
        ran_other != 0 && ran_other >= start + slot_ticks,
        "the domain-1 thread (priority 200) ran at tick {}, inside domain 0's slot [{start}, {})",
        ran_other.wrapping_sub(1),
        start + slot_ticks
    );
    Ok(())
}

pub fn bad_arguments(env: &mut Env) -> Result<(), Fail> {
    let t = env.thread(stamp, 1, 100, 0)?;
    expect_err(
        DOMAIN.set(axolotl_abi::NUM_DOMAINS as u8, t.tcb),
        Error::InvalidArgument,
        "a domain past NUM_DOMAINS",
    )?;
    expect_err(
        DOMAIN.set_schedule(&[domain_entry(0, 1000), domain_entry(1, 0)]),
        Error::InvalidArgument,
        "an entry of length 0",
    )?;
    expect_err(
        DOMAIN.set_schedule(&[domain_entry(0, 1000); MAX_DOMAIN_SCHEDULE + 1]),
        Error::RangeError,
        "more entries than the kernel's table",
    )?;
    Ok(())
}
