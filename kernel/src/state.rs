//! The kernel's global state: one `Kernel`, reached through one `Global`, and the IRQ node.
//!
//! The kernel runs on one core with interrupts masked whenever it executes (exceptions are
//! taken only from EL0 or from the idle loop's WFI), so kernel code is never re-entered:
//! the same discipline as seL4's big-lock-free uniprocessor kernel. `Global` encodes that
//! assumption in one place instead of sprinkling `static mut`.

use crate::arch::gic::Gic;
use crate::boot_alloc::BootAlloc;
use crate::sched::Scheduler;
use crate::thread::Tcb;

pub struct Global<T>(core::cell::UnsafeCell<T>);

// SAFETY: single core, never re-entered (see the module docs).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(core::cell::UnsafeCell::new(v))
    }

    /// # Safety
    /// No other reference obtained from this `Global` may be live. Kernel entry points call
    /// this once and pass the reference down.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: forwarded to the caller.
        unsafe { &mut *self.0.get() }
    }
}

/// `repr(C)` with the scheduler last: its per-domain queues are 64 KiB, and every field
/// before them stays within a load's immediate offset of the base.
#[repr(C)]
pub struct Kernel {
    pub gic: Option<Gic>,
    pub ticks: u64,
    /// Counter cycles per tick.
    pub tick_cycles: u64,
    /// The physical count (CNTPCT) at which the next tick is due: the EL2 timer is armed
    /// for it or for an earlier wake-up of a guest waiting for an interrupt.
    pub next_tick: u64,
    /// Guests waiting for an interrupt (`resume::WAIT`), each until `Vcpu::wfi_deadline` or
    /// an injection (`vcpu::wait_for_interrupt`).
    pub wfi: crate::endpoint::Queue,
    /// The thread whose FP/SIMD registers are in the CPU.
    pub fpu_owner: *mut Tcb,
    /// VSpace (root and VMID) currently installed in VTTBR_EL2.
    pub vspace: axolotl_kernel_core::asid::LoadedVSpace,
    pub boot_mem: BootAlloc,
    /// When a thread last stopped for good, so the idle loop can say the kernel lives on.
    pub stopped_at: Option<u64>,
    pub next_thread_id: u32,
    /// An IRQ handler cap exists for it.
    pub irq_claimed: [bool; MAX_IRQS],
    pub irq_edge: [bool; MAX_IRQS],
    /// Which VSpace owns which ASID (= VMID).
    pub asids: axolotl_kernel_core::asid::AsidTable,
    /// The VCPU whose registers and virtual GIC state are in the CPU (null: native mode).
    pub loaded_vcpu: *mut crate::vcpu::Vcpu,
    /// List registers of the virtual GIC interface.
    pub nr_lrs: usize,
    /// The CPU lets EL0 use the EL1 physical timer (a granted native thread runs).
    pub el0_ptimer: bool,
    /// The kernel timeout's deadline (physical count), if set (`IrqHandlerSetDeadline` on
    /// the `TIMEOUT_IRQ` handler): the EL2 timer is armed for it too.
    pub timeout: Option<u64>,
    /// Where the CPU's time went besides the threads' own (each in its TCB).
    pub cpu: CpuTime,
    pub sched: Scheduler,
}

/// The CPU's time by who had it, in counter cycles: a counter read at every kernel entry
/// from user level and every return to it, as seL4's benchmark builds keep thread
/// utilisation, in a kernel built with `cpu-time` (off by default: it costs every system
/// call about 16 instructions, `cargo xtask bench --only kernel`). A thread's time at user
/// level is charged to its TCB when it enters the kernel; the time between an entry and
/// the next return (whoever's system call, exit or interrupt it was) is the kernel's.
#[derive(Clone, Copy, Debug)]
pub struct CpuTime {
    /// When the current stretch began.
    pub since: u64,
    /// In the kernel, not idle.
    pub kernel: u64,
    /// Waiting for an interrupt with nothing to run.
    pub idle: u64,
}

/// Interrupt ids user level may claim: SPIs (32 and up) below this bound, and the EL1
/// physical timer's PPI (`Board::phys_timer_irq`); SGIs and the other PPIs (the kernel's
/// tick, the guests' virtual timer, the VGIC maintenance interrupt) stay the kernel's.
pub const MAX_IRQS: usize = axolotl_kernel_config::MAX_INTIDS as usize;

pub static KERNEL: Global<Kernel> = Global::new(Kernel {
    gic: None,
    ticks: 0,
    tick_cycles: 0,
    next_tick: 0,
    wfi: crate::endpoint::Queue {
        head: core::ptr::null_mut(),
        tail: core::ptr::null_mut(),
    },
    fpu_owner: core::ptr::null_mut(),
    vspace: axolotl_kernel_core::asid::LoadedVSpace::NONE,
    boot_mem: BootAlloc::new(0, 0),
    stopped_at: None,
    next_thread_id: 1,
    irq_claimed: [false; MAX_IRQS],
    irq_edge: [false; MAX_IRQS],
    asids: axolotl_kernel_core::asid::AsidTable::new(),
    loaded_vcpu: core::ptr::null_mut(),
    nr_lrs: 0,
    el0_ptimer: false,
    timeout: None,
    cpu: CpuTime {
        since: 0,
        kernel: 0,
        idle: 0,
    },
    sched: Scheduler::new(axolotl_kernel_config::BuildConfig::DEFAULT.timeslice_ticks),
});

/// seL4's IRQ node: per interrupt, a kernel-owned capability slot holding the notification
/// cap its handler signals (IrqHandlerSetNotification puts a copy there). Being a cap in the
/// MDB, the binding keeps the notification alive and cannot outlive it: deleting or revoking
/// the notification's caps (its untyped included) deletes this copy too, and deleting the
/// handler or IrqHandlerClear deletes it. A raw pointer kept here instead was written through
/// after the object was gone (issue #13, docs/security.md).
#[repr(C, align(32))]
pub struct IrqNode(core::cell::UnsafeCell<[axolotl_kernel_core::Slot; MAX_IRQS]>);

// SAFETY: one core, and the slots are only reached inside the kernel (big lock), through
// `axolotl_kernel_core`'s raw slot accesses.
unsafe impl Sync for IrqNode {}

pub static IRQ_NODE: IrqNode = IrqNode(core::cell::UnsafeCell::new(
    [axolotl_kernel_core::Slot::EMPTY; MAX_IRQS],
));

impl IrqNode {
    /// The slot of interrupt `irq` (taken modulo the table: callers pass claimed ids).
    pub fn slot(&self, irq: u32) -> axolotl_kernel_core::SlotRef {
        let base = self.0.get() as *mut axolotl_kernel_core::Slot;
        // SAFETY: in bounds; static kernel memory, 32-byte aligned slots that live forever
        // and are only accessed through kernel-core.
        unsafe {
            axolotl_kernel_core::SlotRef::from_addr(
                base.add(irq as usize % MAX_IRQS) as usize as u64
            )
            .expect("static slot")
        }
    }
}
