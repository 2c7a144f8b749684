//! The kernel's global state, reached through one `Global`.

use crate::arch::gic::Gic;
use crate::boot_alloc::BootAlloc;
use crate::global::Global;
use crate::sched::Scheduler;
use crate::thread::Tcb;

pub struct Kernel {
    pub sched: Scheduler,
    pub gic: Option<Gic>,
    pub ticks: u64,
    /// Counter cycles per tick.
    pub tick_cycles: u64,
    /// The thread whose FP/SIMD registers are in the CPU.
    pub fpu_owner: *mut Tcb,
    /// VSpace currently installed in VTTBR_EL2.
    pub vspace: u64,
    pub boot_mem: BootAlloc,
    /// Set once every user thread has stopped, so the idle loop can say the kernel lives.
    pub all_stopped_at: Option<u64>,
    pub live_threads: u32,
}

pub static KERNEL: Global<Kernel> = Global::new(Kernel {
    sched: Scheduler::new(axolotl_kernel_config::BuildConfig::DEFAULT.timeslice_ticks),
    gic: None,
    ticks: 0,
    tick_cycles: 0,
    fpu_owner: core::ptr::null_mut(),
    vspace: 0,
    boot_mem: BootAlloc::new(0, 0),
    all_stopped_at: None,
    live_threads: 0,
});
