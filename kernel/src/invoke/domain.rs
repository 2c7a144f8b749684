//! The domain cap's invocations (seL4's `decodeDomainInvocation`, and the dynamic domain
//! schedule of seL4 RFC-20): a thread's domain, and the schedule the kernel walks. The
//! schedule's checks and table are kernel-core's `domain`; nothing is allocated.

use axolotl_abi::{Invocation, MAX_DOMAIN_SCHEDULE, NUM_DOMAINS};
use axolotl_kernel_core::domain::DomainSchedule;
use axolotl_kernel_core::{Cap, SyscallError};

use super::{Decoded, Done, Msg, refuse};
use crate::state::Kernel;
use crate::thread::TcbRef;

pub enum DomainOp {
    Set(TcbRef, u8),
    /// `n` entries in `mr1..=mrn`, checked.
    Schedule(usize),
}

pub fn decode(m: &Msg, l: Invocation) -> Decoded<DomainOp> {
    Ok(match l {
        Invocation::DomainSetSet => {
            m.need(1)?;
            let d = m.mr(0);
            if d >= NUM_DOMAINS as u64 {
                return Err(refuse!(
                    SyscallError::InvalidArgument { arg: 0 },
                    "no such domain"
                ));
            }
            let (Cap::Tcb { ptr }, _) = m.extra_cap(0)? else {
                return Err(refuse!(
                    SyscallError::InvalidArgument { arg: 1 },
                    "not a TCB"
                ));
            };
            DomainOp::Set(TcbRef::of_cap(ptr), d as u8)
        }
        Invocation::DomainSetSchedule => {
            m.need(1)?;
            let n = m.mr(0);
            if n > MAX_DOMAIN_SCHEDULE as u64 {
                return Err(refuse!(
                    SyscallError::RangeError {
                        min: 0,
                        max: MAX_DOMAIN_SCHEDULE as u64
                    },
                    "longer than the kernel's schedule table"
                ));
            }
            m.need(1 + n)?;
            DomainSchedule::check((1..n as usize + 1).map(|i| m.mr(i)))
                .map_err(|e| refuse!(e, "a bad schedule entry"))?;
            DomainOp::Schedule(n as usize)
        }
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "not an invocation of the domain cap"
            ));
        }
    })
}

pub fn perform(k: &mut Kernel, m: &Msg, op: DomainOp) -> Done {
    match op {
        // SAFETY: the cap named a live TCB.
        DomainOp::Set(t, d) => unsafe { k.sched.set_domain(t.ptr(), d) },
        DomainOp::Schedule(n) => {
            let tick_us = axolotl_kernel_config::BuildConfig::DEFAULT.tick_us;
            k.sched
                .install_schedule((1..n + 1).map(|i| m.mr(i)), tick_us)
        }
    }
    Done::Reply(0)
}
