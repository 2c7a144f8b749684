//! Thread control blocks.
//!
//! A TCB object (2 KiB, retyped from untyped) starts with its capability slots, as seL4's
//! TCB CNode: the deletion logic in `axolotl-kernel-core` empties them when the last cap to
//! the TCB goes. The thread state (`Tcb`) follows at `TCB_STATE_OFFSET`.

use crate::arch::context::{FpState, UserContext};

/// Capability slots at the start of a TCB object.
pub mod slot {
    pub const CSPACE: usize = 0;
    pub const VSPACE: usize = 1;
    pub const IPC_BUFFER: usize = 2;
    /// A copy of the fault endpoint cap, taken at configure time (MCS-style).
    pub const FAULT_EP: usize = 3;
    /// The one-shot reply cap of the last Call this thread received.
    pub const REPLY: usize = 4;
    pub const COUNT: u32 = 5;
}

pub const TCB_STATE_OFFSET: u64 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Not runnable and not waiting on anything: new, suspended, or stopped after a fault.
    Inactive,
    Running,
    /// Runnable, in a ready queue.
    Ready,
    BlockedOnSend {
        ep: u64,
        badge: u64,
        can_grant: bool,
        is_call: bool,
    },
    BlockedOnRecv {
        ep: u64,
    },
    BlockedOnReply,
    BlockedOnNotification {
        ntfn: u64,
    },
    /// A guest whose VMM answered its exit with `resume::WAIT`: in `Kernel::wfi` until an
    /// interrupt is due for its VCPU (`vcpu::wait_for_interrupt`).
    WaitingForInterrupt,
}

/// A thread. `ctx` comes first: while the thread runs, SP_EL2 points at `ctx`'s end, and
/// entry.S saves the registers straight into it.
#[repr(C, align(16))]
pub struct Tcb {
    pub ctx: UserContext,
    pub fp: FpState,
    pub state: ThreadState,
    pub priority: u8,
    /// Scheduling domain (`DomainSetSet`); 0 for a new thread, kept across configures, so
    /// a PD restarted on its TCB stays in its domain.
    pub domain: u8,
    /// Maximum controlled priority: the highest priority this thread may give any thread.
    pub mcp: u8,
    /// Ticks left in the current timeslice.
    pub timeslice: u32,
    pub name: [u8; 16],
    pub id: u32,
    /// IPC buffer: user address and the physical address the kernel reaches it at (0: none).
    pub ipc_buffer: u64,
    pub ipc_buffer_pa: u64,
    /// Notification bound to this thread (0: none).
    pub bound_ntfn: u64,
    /// The thread whose REPLY slot holds the reply cap to us, while we are BlockedOnReply.
    pub reply_holder: *mut Tcb,
    /// A fault waiting for its handler's reply: what the kernel sent, so the reply is read
    /// right.
    pub fault: Option<axolotl_abi::Fault>,
    /// May program the EL1 physical timer and read CNTPCT at EL0 while native
    /// (`TcbSetTimerAccess`; ignored while bound to a VCPU: guests always trap it).
    pub ptimer: bool,
    /// The bound VCPU: the thread is a guest running at EL1 (null: a native thread).
    #[cfg(target_os = "none")]
    pub vcpu: *mut crate::vcpu::Vcpu,
    #[cfg(not(target_os = "none"))]
    pub vcpu: *mut u8,
    /// Ready-queue or IPC-queue links (a thread is in at most one queue).
    pub next: *mut Tcb,
    pub prev: *mut Tcb,
    /// Counter cycles this thread ran at user level (or as a guest) since the TCB was made,
    /// up to its last kernel entry (`TcbGetCpuTime`; docs/kernel.md, "CPU time").
    pub cpu_cycles: u64,
}

/// A live thread. Making one is where "this thread exists" is claimed, once, instead of at
/// every access: from a TCB cap ([`TcbRef::of_cap`]; caps name live objects), or from a
/// pointer the kernel keeps (the current thread, a queue, a VCPU binding, a reply link), all
/// of which deletion clears before a TCB's memory can be reused. Accesses through it are
/// brief borrows: another `TcbRef` to the same thread may exist (caller and target are often
/// one), so no borrow is kept across a call that may reach the thread again.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct TcbRef(core::ptr::NonNull<Tcb>);

impl TcbRef {
    /// # Safety
    /// `t` is the thread state of a live TCB object, and the object stays live for as long
    /// as the result is used (within one kernel entry: nothing deletes it meanwhile but
    /// through the finalisation that clears every kept pointer).
    #[inline(always)]
    pub unsafe fn new(t: *mut Tcb) -> TcbRef {
        // SAFETY: a live thread's address is not null (the caller's promise).
        TcbRef(unsafe { core::ptr::NonNull::new_unchecked(t) })
    }

    /// The thread of the TCB object that a capability names (the `ptr` of `Cap::Tcb`).
    #[inline(always)]
    pub fn of_cap(obj: u64) -> TcbRef {
        // SAFETY: a TCB cap names a live TCB object, whose thread state `of_object` finds.
        unsafe { TcbRef::new(Tcb::of_object(obj)) }
    }

    /// The caller a reply cap names (the `tcb` of `Cap::Reply`). Reply caps sit outside the
    /// derivation tree, so no deletion reaches them; instead the caller keeps the one slot
    /// holding its reply cap in `reply_holder`, and whatever ends its wait (`ipc::cancel_ipc`
    /// on suspend or deletion, a reply, an abort) empties that slot or finds the link gone:
    /// a reply cap in a slot names a live thread.
    #[inline(always)]
    pub fn of_reply_cap(tcb: u64) -> TcbRef {
        // SAFETY: as above: a reply cap still in a slot names a live thread.
        unsafe { TcbRef::new(tcb as *mut Tcb) }
    }

    #[inline(always)]
    pub fn ptr(self) -> *mut Tcb {
        self.0.as_ptr()
    }
}

impl core::ops::Deref for TcbRef {
    type Target = Tcb;
    #[inline(always)]
    fn deref(&self) -> &Tcb {
        // SAFETY: live (the constructor's invariant); the borrow is as short as the use.
        unsafe { self.0.as_ref() }
    }
}

impl core::ops::DerefMut for TcbRef {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Tcb {
        // SAFETY: as in `deref`; the kernel is never re-entered, and a borrow is not kept
        // across anything that reaches the thread through another path.
        unsafe { self.0.as_mut() }
    }
}

const _: () = assert!(core::mem::offset_of!(Tcb, ctx) == 0);
const _: () = assert!(
    core::mem::size_of::<Tcb>() as u64 + TCB_STATE_OFFSET <= 2048,
    "a TCB object is 2 KiB"
);
const _: () = assert!(slot::COUNT as u64 * 32 <= TCB_STATE_OFFSET);

impl Tcb {
    pub fn name(&self) -> &str {
        let n = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        match core::str::from_utf8(&self.name[..n]) {
            Ok("") | Err(_) => "unnamed",
            Ok(s) => s,
        }
    }

    pub fn set_name(&mut self, name: &str) {
        self.name = [0; 16];
        let n = name.len().min(15);
        self.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    }

    /// The thread of a TCB object.
    pub fn of_object(obj: u64) -> *mut Tcb {
        (obj + TCB_STATE_OFFSET) as *mut Tcb
    }

    /// The TCB object a thread lives in.
    pub fn object(t: *const Tcb) -> u64 {
        t as u64 - TCB_STATE_OFFSET
    }

    /// Address of one of the thread's capability slots.
    pub fn slot_addr(t: *const Tcb, i: usize) -> u64 {
        Self::object(t) + (i as u64) * 32
    }

    /// Initialises the thread state of a zeroed TCB object.
    ///
    /// # Safety
    /// `obj` is a zeroed, kernel-owned 2 KiB TCB object.
    pub unsafe fn init_object(obj: u64, id: u32) -> *mut Tcb {
        let t = Self::of_object(obj);
        // SAFETY: forwarded to the caller; the state area lies inside the object.
        unsafe {
            t.write(Tcb {
                ctx: UserContext::default(),
                fp: FpState::default(),
                state: ThreadState::Inactive,
                priority: 0,
                domain: 0,
                mcp: 0,
                timeslice: 0,
                name: [0; 16],
                id,
                ipc_buffer: 0,
                ipc_buffer_pa: 0,
                bound_ntfn: 0,
                reply_holder: core::ptr::null_mut(),
                fault: None,
                ptimer: false,
                vcpu: core::ptr::null_mut(),
                next: core::ptr::null_mut(),
                prev: core::ptr::null_mut(),
                cpu_cycles: 0,
            });
        }
        t
    }
}
