//! Standby incarnations: a restartable PD has a second CNode and VSpace with their own image,
//! stack and IPC buffer frames, restored ahead of time. A restart then switches the PD's
//! thread to them (suspend, TcbConfigure, registers) instead of copying the image while the
//! PD's clients wait; the incarnation it leaves becomes the standby and is restored by the
//! root task's refresher, a thread of its own at [`REFRESHER_PRIORITY`], when nothing else
//! wants the CPU. A PD that fails again before its standby is fresh is restarted in place.
//!
//! Who may touch a standby is decided by its state alone: the main thread from `Ready` (it
//! takes it: `Switching`) until it hands it back as `Dirty`; the refresher from `Dirty`
//! (`Refreshing`) until `Ready` (or `Broken`, never used again).

use core::cell::UnsafeCell;
use core::ops::Range;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use axolotl_abi::CPtr;
use axolotl_boot_plan::MAX_PDS;
use axolotl_sys::{CNode, Frame, VSpace, println};

use super::build::Page;
use super::restore::Sources;

/// Above priority-0 PDs only: restoring a standby is background work, but it must not wait
/// behind PDs that spin at the lowest priority forever.
pub const REFRESHER_PRIORITY: u64 = 1;

/// One incarnation of a PD: what a restart switches its thread to.
#[derive(Clone, Debug)]
pub struct Incarnation {
    pub cnode: CNode,
    pub vspace: VSpace,
    pub ipc_frame: Frame,
    /// Its pages in the root task's page table.
    pub pages: Range<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum State {
    None = 0,
    Ready,
    Switching,
    Dirty,
    Refreshing,
    Broken,
}

struct Standbys {
    state: [AtomicU8; MAX_PDS],
    inc: [UnsafeCell<Option<Incarnation>>; MAX_PDS],
}

// SAFETY: `inc[i]` is accessed only by the thread the state protocol above gives it to.
unsafe impl Sync for Standbys {}

static STANDBYS: Standbys = Standbys {
    state: [const { AtomicU8::new(State::None as u8) }; MAX_PDS],
    inc: [const { UnsafeCell::new(None) }; MAX_PDS],
};

/// What the refresher reads: set once before it starts.
struct Shared {
    sources: UnsafeCell<Option<&'static Sources>>,
    pages: UnsafeCell<&'static [Page]>,
}

// SAFETY: written once by the main thread before the refresher exists, read-only afterwards.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    sources: UnsafeCell::new(None),
    pages: UnsafeCell::new(&[]),
};

/// The refresher's notification (0 until it runs).
static WAKE: AtomicU64 = AtomicU64::new(0);

fn transition(i: usize, from: State, to: State) -> bool {
    STANDBYS.state[i]
        .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Build time, before the refresher runs: PD `i`'s standby, restored and ready.
pub fn install(i: usize, inc: Incarnation) {
    // SAFETY: no other thread exists yet.
    unsafe { *STANDBYS.inc[i].get() = Some(inc) };
    STANDBYS.state[i].store(State::Ready as u8, Ordering::Release);
}

/// Main thread: takes PD `i`'s standby if it is fresh; give it back with [`switched`] or
/// [`broken`].
pub fn take(i: usize) -> Option<&'static mut Incarnation> {
    if !transition(i, State::Ready, State::Switching) {
        return None;
    }
    // SAFETY: `Switching` gives the cell to the main thread alone, until it hands it back.
    unsafe { (*STANDBYS.inc[i].get()).as_mut() }
}

/// Main thread: the PD now runs in what was its standby, and the standby holds the
/// incarnation it left: to be refreshed.
pub fn switched(i: usize) {
    STANDBYS.state[i].store(State::Dirty as u8, Ordering::Release);
    let wake = WAKE.load(Ordering::Acquire);
    if wake != 0 {
        // The refresher may not have run yet at all (a guest's vCPU above it, busy since
        // boot): this unbadged signal stays pending for its first Wait (the kernel keeps a
        // badge-0 signal, as seL4 does; it used to drop it and the refresher slept for good).
        axolotl_sys::signal(wake);
    }
}

/// Main thread: switching to the standby failed; it is not used again.
pub fn broken(i: usize) {
    STANDBYS.state[i].store(State::Broken as u8, Ordering::Release);
}

/// The refresher's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; 32768]>);
// SAFETY: the refresher's alone.
unsafe impl Sync for Stack {}
static STACK: Stack = Stack(UnsafeCell::new([0; 32768]));

/// Where the refresher's IPC buffer is mapped in the root task.
const REFRESHER_IPC_BUFFER: u64 = 0xe000_3000;

/// Starts the refresher, a thread in the root task's spaces waiting on notification `wake`
/// (a root slot), its faults to `fault_ep` (a root slot: the service endpoint, badged).
pub fn start(
    alloc: &mut axolotl_sys::alloc::ObjectAlloc,
    sources: &'static Sources,
    pages: &'static [Page],
    wake: CPtr,
    fault_ep: CPtr,
) -> Result<(), &'static str> {
    // SAFETY: the refresher does not exist yet; nothing writes these again.
    unsafe {
        *SHARED.sources.get() = Some(sources);
        *SHARED.pages.get() = pages;
    }
    WAKE.store(wake, Ordering::Release);
    let sp = STACK.0.get() as u64 + core::mem::size_of::<Stack>() as u64;
    crate::spawn::spawn(
        alloc,
        refresher,
        sp,
        REFRESHER_IPC_BUFFER,
        REFRESHER_PRIORITY,
        fault_ep,
    )
    .map(|_| ())
}

extern "C" fn refresher() -> ! {
    // SAFETY: set before this thread was started, never written again.
    let (sources, pages) = unsafe { ((*SHARED.sources.get()).unwrap(), *SHARED.pages.get()) };
    let wake = WAKE.load(Ordering::Acquire);
    loop {
        axolotl_sys::wait(wake);
        for i in 0..MAX_PDS {
            if !transition(i, State::Dirty, State::Refreshing) {
                continue;
            }
            // SAFETY: `Refreshing` gives the cell to this thread alone.
            let Some(inc) = (unsafe { (*STANDBYS.inc[i].get()).as_ref() }) else {
                continue;
            };
            let pd = &sources.plan.pds[i];
            let started = axolotl_sys::time::now_us();
            let done = pages
                .get(inc.pages.clone())
                .ok_or(super::build::Error::Plan("standby pages"))
                .and_then(|p| sources.refill(pd, p, inc.vspace))
                .and_then(|()| sources.empty_cspace(pd, inc.cnode, true))
                .and_then(|()| sources.fill_cspace(i, pd, inc.cnode, inc.vspace));
            match done {
                Ok(()) => {
                    STANDBYS.state[i].store(State::Ready as u8, Ordering::Release);
                    // What a restart in a row needs the refresher to have had (cargo xtask
                    // bench --only vmm-restart reports it): wall time, preemptions included.
                    println!(
                        "root-task: the standby of {} restored in {} us",
                        pd.name.as_str(),
                        axolotl_sys::time::now_us().saturating_sub(started)
                    );
                }
                Err(e) => {
                    println!(
                        "root-task: restoring the standby of {} failed: {e}; it restarts in place",
                        pd.name.as_str()
                    );
                    STANDBYS.state[i].store(State::Broken as u8, Ordering::Release);
                }
            }
        }
    }
}
