//! Invocations of non-IPC capabilities, in seL4's shape (`decodeInvocation`, then
//! `invoke*`): per object type, `decode` reads the message, looks up and checks everything
//! and returns a checked operation, or refuses with the error the caller gets; `perform`
//! carries the operation out and cannot fail on user input. So nothing changes before the
//! last refusal. The one way a perform stops early is a preemption point (a long delete),
//! after which the restarted call decodes again.
//!
//! With the `user-error` cargo feature every refusal prints one console line saying which
//! invocation was refused and why (seL4's `userError`, `docs/abi.md`); without it a
//! [`Refusal`] is only its error.

mod asid;
mod cnode;
mod domain;
mod irq;
pub mod tcb;
mod untyped;
mod vcpu;
mod vspace;

use axolotl_abi::{Invocation, MessageInfo};
use axolotl_kernel_core::cspace::{LookupFault, lookup_cap as core_lookup_cap};
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use crate::ipc::{self, Mrs, set_mr};
use crate::state::Kernel;
use crate::thread::{Tcb, TcbRef, slot};

/// Why an invocation is refused: the error its caller gets and, in a `user-error` build, a
/// reason for the console.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "user-error"), repr(transparent))]
pub struct Refusal {
    pub error: SyscallError,
    #[cfg(feature = "user-error")]
    why: &'static str,
}

impl Refusal {
    #[inline(always)]
    pub fn new(error: SyscallError, _why: &'static str) -> Refusal {
        Refusal {
            error,
            #[cfg(feature = "user-error")]
            why: _why,
        }
    }
}

/// A refusal from kernel-core's checks: its error says enough.
impl From<SyscallError> for Refusal {
    #[inline(always)]
    fn from(error: SyscallError) -> Refusal {
        Refusal::new(error, "")
    }
}

/// `Err(refuse!(ERROR, "why"))`: the reason exists only in a `user-error` build.
macro_rules! refuse {
    ($error:expr, $why:literal) => {
        $crate::invoke::Refusal::new($error, $why)
    };
}
pub(crate) use refuse;

pub type Decoded<T> = Result<T, Refusal>;

/// What a performed invocation left: a reply of that many message words, or a stop at a
/// preemption point (no reply; the call is made again).
pub enum Done {
    Reply(usize),
    Preempted,
}

/// The message of an invocation, as its decoder reads it.
pub struct Msg<'a> {
    pub caller: TcbRef,
    pub info: MessageInfo,
    pub mrs: &'a Mrs,
}

impl Msg<'_> {
    #[inline(always)]
    pub fn mr(&self, i: usize) -> u64 {
        self.mrs.get(i)
    }

    /// At least `n` message words.
    pub fn need(&self, n: u64) -> Decoded<()> {
        if self.info.length() < n {
            Err(refuse!(
                SyscallError::TruncatedMessage,
                "fewer message words than the invocation takes"
            ))
        } else {
            Ok(())
        }
    }

    /// Extra cap `i` of the message, looked up in the caller's CSpace.
    pub fn extra_cap(&self, i: usize) -> Decoded<(Cap, SlotRef)> {
        if (self.info.extra_caps() as usize) <= i {
            return Err(refuse!(
                SyscallError::TruncatedMessage,
                "fewer extra caps than the invocation takes"
            ));
        }
        let cptr = ipc::ipc_buffer(self.caller)
            .ok_or(refuse!(
                SyscallError::TruncatedMessage,
                "extra caps but no IPC buffer"
            ))?
            .caps_or_badges[i];
        lookup_cap(self.caller, cptr).map_err(|_| {
            refuse!(
                SyscallError::InvalidCapability { arg: i as u32 + 1 },
                "an extra cap's lookup failed"
            )
        })
    }
}

/// Invokes `cap` (found at `cap_slot`) for thread `t`; writes the reply into its registers
/// when `call`. The TCB invocations (a restart's, the benchmarked ones) are decoded and
/// performed inline on the syscall path; the other object types share one call (`rare`),
/// which keeps their decoders' stack frames off it: all of them inline cost the TCB
/// invocations 30 instructions, the TCB ones out of line too 25 (`cargo xtask bench`).
pub fn invoke(k: &mut Kernel, caller: TcbRef, cap: Cap, cap_slot: SlotRef, call: bool) {
    let info = MessageInfo::from_word(caller.ctx.x[1]);
    let mrs = Mrs::of(caller);
    let m = Msg {
        caller,
        info,
        mrs: &mrs,
    };
    let r = match Invocation::from_label(info.label()) {
        Some(l) => decode_and_perform(k, &m, l, cap, cap_slot),
        None => Err(refuse!(
            SyscallError::IllegalOperation,
            "no invocation has this label"
        )),
    };
    match r {
        Ok(Done::Preempted) => restart(caller),
        Ok(Done::Reply(len)) => {
            if call {
                reply(caller, MessageInfo::new(0, 0, 0, len as u64));
            }
        }
        Err(e) => refused(caller, info.label(), cap, e, call),
    }
}

/// One object type's decode, then its perform.
#[inline(always)]
fn decode_and_perform(
    k: &mut Kernel,
    m: &Msg,
    l: Invocation,
    cap: Cap,
    cap_slot: SlotRef,
) -> Decoded<Done> {
    match cap {
        Cap::Tcb { ptr } => {
            let t = TcbRef::of_cap(ptr);
            Ok(tcb::perform(k, m, t, tcb::decode(m, l, t, cap_slot)?))
        }
        _ => rare(k, m, l, cap, cap_slot),
    }
}

/// The invocations of every object type but TCBs, out of the syscall path's frame.
#[inline(never)]
fn rare(k: &mut Kernel, m: &Msg, l: Invocation, cap: Cap, cap_slot: SlotRef) -> Decoded<Done> {
    Ok(match cap {
        Cap::Untyped { .. } => untyped::perform(k, untyped::decode(m, l, cap_slot)?),
        Cap::CNode { .. } => cnode::perform(k, cnode::decode(m, l, cap)?),
        Cap::Vcpu { ptr } => {
            // SAFETY: the cap names a live VCPU object.
            let v = unsafe { crate::vcpu::Vcpu::at(ptr) };
            let op = vcpu::decode(k, m, l, v)?;
            vcpu::perform(k, m, v, op)
        }
        Cap::IrqControl | Cap::IrqHandler { .. } => {
            let op = irq::decode(k, m, l, cap, cap_slot)?;
            irq::perform(k, op)
        }
        Cap::VSpace { .. } | Cap::PageTable { .. } | Cap::Frame { .. } => {
            let op = vspace::decode(k, m, l, cap, cap_slot)?;
            vspace::perform(k, m, op)
        }
        Cap::AsidControl | Cap::AsidPool { .. } => {
            let op = asid::decode(k, m, l, cap, cap_slot)?;
            asid::perform(k, op)
        }
        Cap::DomainSet => domain::perform(k, m, domain::decode(m, l)?),
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "this cap has no invocations"
            ));
        }
    })
}

/// A refused invocation (message label `label`, on `cap`): said on the console in a
/// `user-error` build, replied when `call`.
pub fn refused(caller: TcbRef, label: u64, cap: Cap, e: Refusal, call: bool) {
    #[cfg(feature = "user-error")]
    crate::kprintln!(
        "kernel: user error: {} on cptr {:#x} ({:?}) by '{}' (id {}): {:?}{}{}",
        LabelName(label),
        caller.ctx.x[0],
        cap,
        caller.name(),
        caller.id,
        e.error,
        if e.why.is_empty() { "" } else { ": " },
        e.why
    );
    #[cfg(not(feature = "user-error"))]
    let _ = (label, cap);
    if call {
        reply_error(caller, e.error);
    }
}

/// An invocation's name, or its label when it has none.
#[cfg(feature = "user-error")]
struct LabelName(u64);

#[cfg(feature = "user-error")]
impl core::fmt::Display for LabelName {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match Invocation::from_label(self.0) {
            Some(l) => write!(f, "{l:?}"),
            None => write!(f, "label {}", self.0),
        }
    }
}

/// Replies to the caller with an invocation error and its detail words.
fn reply_error(caller: TcbRef, e: SyscallError) {
    let mut words = [0u64; 5];
    let n = e.detail_words(&mut words);
    for (i, w) in words[..n].iter().enumerate() {
        set_mr(caller, i, *w);
    }
    reply(caller, MessageInfo::new(e.error() as u64, 0, 0, n as u64));
}

fn reply(mut caller: TcbRef, info: MessageInfo) {
    caller.ctx.x[1] = info.word();
}

/// A long deletion stopped at a pending interrupt (seL4's preempted invocation): nothing is
/// replied and the caller's PC goes back to its `svc`. Returning to user level takes the
/// interrupt at once; when the caller runs again it re-executes the call, which finds the
/// zombies the deletion left in the slots and goes on from there.
fn restart(mut caller: TcbRef) {
    // ELR points past the `svc`.
    caller.ctx.elr -= 4;
}

/// Slot `i` of a thread's TCB object.
pub fn slot_of(t: TcbRef, i: usize) -> SlotRef {
    // SAFETY: TCB slots lie at the start of the live TCB object, 32-byte aligned.
    unsafe { SlotRef::from_addr(Tcb::slot_addr(t.ptr(), i)).unwrap() }
}

/// The thread's CSpace root, if its CSPACE slot holds a CNode.
pub fn cspace_root(t: TcbRef) -> Option<Cap> {
    let c = slot_of(t, slot::CSPACE).cap();
    matches!(c, Cap::CNode { .. }).then_some(c)
}

pub fn lookup_cap_in(root: Cap, cptr: u64) -> Result<(Cap, SlotRef), LookupFault> {
    core_lookup_cap(root, cptr)
}

/// Looks a capability address up in the thread's CSpace, to full depth.
pub fn lookup_cap(t: TcbRef, cptr: u64) -> Result<(Cap, SlotRef), LookupFault> {
    let root = cspace_root(t).ok_or(LookupFault::InvalidRoot)?;
    core_lookup_cap(root, cptr)
}
