//! Thread control blocks.

use crate::arch::context::{FpState, UserContext};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Not runnable and not waiting on anything: new, suspended, or stopped after a fault.
    Inactive,
    Running,
    /// Runnable, in a ready queue.
    Ready,
}

/// A thread. `ctx` comes first: while the thread runs, SP_EL2 points at `ctx`'s end, and
/// entry.S saves the registers straight into it.
#[repr(C, align(1024))]
pub struct Tcb {
    pub ctx: UserContext,
    pub fp: FpState,
    pub state: ThreadState,
    pub priority: u8,
    /// Ticks left in the current timeslice.
    pub timeslice: u32,
    pub vspace_root: u64,
    pub vmid: u8,
    pub name: [u8; 16],
    pub id: u32,
    /// Ready-queue links (intrusive, so scheduling never allocates).
    pub next: *mut Tcb,
    pub prev: *mut Tcb,
}

const _: () = assert!(core::mem::offset_of!(Tcb, ctx) == 0);
const _: () = assert!(core::mem::size_of::<Tcb>() <= 2048, "a TCB object is 2 KiB");

impl Tcb {
    pub fn name(&self) -> &str {
        let n = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }

    pub fn set_name(&mut self, name: &str) {
        self.name = [0; 16];
        let n = name.len().min(15);
        self.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    }

    /// Initialises a TCB in place in zeroed memory.
    ///
    /// # Safety
    /// `at` is 2 KiB of zeroed, kernel-owned memory aligned to 1 KiB.
    pub unsafe fn init_at(
        at: u64,
        id: u32,
        ctx: UserContext,
        priority: u8,
        vspace_root: u64,
        vmid: u8,
    ) -> *mut Tcb {
        let t = at as *mut Tcb;
        // SAFETY: forwarded to the caller; every field is valid when zeroed except the enum,
        // which is written here before any read.
        unsafe {
            t.write(Tcb {
                ctx,
                fp: FpState::default(),
                state: ThreadState::Inactive,
                priority,
                timeslice: 0,
                vspace_root,
                vmid,
                name: [0; 16],
                id,
                next: core::ptr::null_mut(),
                prev: core::ptr::null_mut(),
            });
        }
        t
    }
}
