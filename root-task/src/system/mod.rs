//! Building the system of the packed boot plan: every object from untyped memory, every image
//! loaded from the pack (which stays untouched: the pristine copies), every capability minted
//! into the slot the plan names, then every PD started.
//!
//! The root task keeps an original capability to every object it creates (endpoints,
//! notifications, TCBs, CNodes, VSpaces, region frames); PDs only ever get copies or badged
//! mints, so a PD's CSpace can be revoked and rebuilt from the same originals.

mod build;
mod clock;
mod image;
mod journal;
mod restart;
mod restore;
mod service;
mod standby;
mod vspace;

use axolotl_abi::BootInfo;
use axolotl_boot_plan::BootPlan;
use axolotl_boot_plan::pack::Pack;
use axolotl_sys::println;

pub use build::System;

/// The pack `cargo xtask build --system` gave the build (empty without `--system`).
#[repr(C, align(4096))]
struct Aligned<T: ?Sized>(T);
static PACK: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("AXOLOTL_SYSTEM_PACK_FILE")));

/// The decoded plan: too large for the stack, decoded once into a static.
static mut PLAN: core::mem::MaybeUninit<BootPlan> = core::mem::MaybeUninit::uninit();

/// Whether this image carries a system.
pub fn packed() -> bool {
    !PACK.0.is_empty()
}

/// Builds and starts the packed system, then serves as the fault handler of its PDs.
pub fn run(bi: &BootInfo) -> ! {
    let pack = match Pack::parse(&PACK.0) {
        Ok(p) => p,
        Err(e) => halt(format_args!("bad system pack: {e}")),
    };
    // SAFETY: the root task is single-threaded and this is the only writer, before any reader.
    let plan: &'static BootPlan = unsafe {
        let slot: *mut core::mem::MaybeUninit<BootPlan> = &raw mut PLAN;
        match postcard::from_bytes::<BootPlan>(pack.plan()) {
            Ok(p) => (*slot).write(p),
            Err(e) => halt(format_args!("bad boot plan: {e}")),
        }
    };
    let started = axolotl_sys::time::now_us();
    let mut sys = match System::build(bi, plan, pack) {
        Ok(s) => s,
        Err(e) => halt(format_args!("building the system failed: {e}")),
    };
    let pds = plan.pds.len() - plan.monitor.is_some() as usize;
    let monitor = if plan.monitor.is_some() {
        " and the monitor"
    } else {
        ""
    };
    println!(
        "root-task: system up: {pds} protection domains{monitor} started (built in {} us, {} us after reset)",
        axolotl_sys::time::now_us() - started,
        axolotl_sys::time::now_us()
    );
    service::serve(&mut sys)
}

fn halt(what: core::fmt::Arguments) -> ! {
    println!("root-task: {what}");
    axolotl_sys::thread_exit()
}
