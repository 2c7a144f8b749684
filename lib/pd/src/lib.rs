//! The runtime every protection domain is written against: seL4 Microkit's model in Rust.
//!
//! A PD is a single-threaded event handler whose entry points never nest: [`Handler::init`]
//! once, then [`Handler::notified`] for each notification channel that fired,
//! [`Handler::protected`] for a protected procedure call (PPC) from a lower-priority PD, and
//! [`Handler::fault`] when a child PD faults. Capabilities sit in the slots the boot plan
//! gives every PD (`axolotl_boot_plan::cspace`, Microkit's numbering), so PD code names
//! channels by id, never by capability address.
//!
//! Event decoding ([`Event::decode`]) is pure and host-tested; the receive loop ([`run`])
//! and the channel operations exist only on the target.

#![no_std]

mod channel;
mod event;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod run;

pub use channel::{Channel, Child};
pub use event::Event;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use run::{report_panic, run};

pub use axolotl_abi::{CALL_ABORTED, Fault, MessageInfo, Resume};
pub use axolotl_sys::ipc::{get_mr, set_mr};
pub use axolotl_sys::println;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use axolotl_sys::time::now_us;

/// The fault a child's message `msg` (as [`Handler::fault`] receives it) reports; `None`
/// when its label is not a fault's or it is shorter than its layout (`axolotl_abi::Fault`).
#[inline]
pub fn fault_of(msg: MessageInfo) -> Option<Fault> {
    Fault::from_message(msg, get_mr)
}

/// The reply to a fault that resumes the child as `r` says: its words go into the message
/// registers, the returned info is what [`Handler::fault`] returns.
#[inline]
pub fn resume(r: Resume) -> MessageInfo {
    let mut words = [0; axolotl_abi::RESUME_MAX_WORDS];
    let n = r.to_words(&mut words);
    for (i, &w) in words[..n].iter().enumerate() {
        set_mr(i, w);
    }
    MessageInfo::new(0, 0, 0, n as u64)
}

/// A protection domain's code.
pub trait Handler {
    /// Called once before any event.
    fn init(&mut self) {}

    /// A notification arrived on `ch` (one call per channel, lowest id first).
    fn notified(&mut self, ch: Channel);

    /// A protected procedure call on `ch`; the returned message is the reply. PDs that
    /// serve no PPC keep the default, which answers with an error label.
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        let _ = (ch, msg);
        MessageInfo::new(axolotl_abi::Error::IllegalOperation as u64, 0, 0, 0)
    }

    /// The monitor's heartbeat ping was just answered (PDs with `heartbeat_ms` only): a
    /// periodic moment, with no timer of the PD's own, to check what only the PD can see, e.g.
    /// a client's requests that stopped completing (`axolotl_ring::Deadline`).
    fn heartbeat(&mut self) {}

    /// Child `child` faulted with message `msg` (a fault label and its words). Returning a
    /// message replies to the fault and resumes the child; `None` leaves it stopped.
    fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        let _ = (child, msg);
        None
    }
}

#[doc(hidden)]
#[unsafe(no_mangle)]
pub static mut __axolotl_pd_generation: u64 = 0;

/// How many times this PD has been restarted (0 after boot): the root task starts a PD
/// with its generation in `x0`. Ring protocols use it to tell incarnations apart.
pub fn generation() -> u64 {
    // SAFETY: written once by `_start` before any Rust code runs.
    unsafe { core::ptr::read_volatile(&raw const __axolotl_pd_generation) }
}

#[doc(hidden)]
#[unsafe(no_mangle)]
pub static mut __axolotl_pd_start_flags: u64 = 0;

/// Whether the monitor asked this incarnation to start afresh (`axolotl_abi::START_FRESH`
/// in `x1`: a VM's start or reboot from the control plane): what a restart keeps for it to
/// take up (a VMM's device state) is to be ignored, as at boot. False at boot and after a
/// failure's restart.
pub fn fresh_start() -> bool {
    // SAFETY: written once by `_start` before any Rust code runs.
    let flags = unsafe { core::ptr::read_volatile(&raw const __axolotl_pd_start_flags) };
    flags & axolotl_abi::START_FRESH != 0
}

/// Tells the monitor that this incarnation found the state it keeps across restarts invalid
/// and started afresh (`axolotl_abi::REPORT_RECOVERY_FAILED`): a failed recovery is counted
/// as such, not as a successful restart. Whether the monitor took note.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn report_recovery_failed() -> bool {
    let info = MessageInfo::new(axolotl_abi::REPORT_RECOVERY_FAILED, 0, 0, 0);
    let r = axolotl_sys::call(axolotl_boot_plan::cspace::MONITOR_EP, info, [0; 4]);
    r.info.label() == 0
}

/// This PD's plan index + 1 (0: not patched), which the builder patches when the image has
/// the symbol (`axolotl_boot_plan::generations::PD_INDEX_SYMBOL`): referenced only by
/// [`pd_index`], so only PDs that look up their peers carry it.
#[doc(hidden)]
#[unsafe(no_mangle)]
pub static __axolotl_pd_index: SetVar = SetVar::new();

/// This PD's index in the boot plan, if the builder patched it.
pub fn pd_index() -> Option<u8> {
    __axolotl_pd_index
        .get()
        .checked_sub(1)
        .and_then(|i| u8::try_from(i).ok())
}

/// This PD's name from the SDF, written by the loader at every (re)load as Microkit's tool
/// patches `microkit_name` (`axolotl_boot_plan::NAME_SYMBOL`): zero-padded, cut to 64 bytes.
#[doc(hidden)]
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static microkit_name: PdName = PdName(core::cell::UnsafeCell::new([0; 64]));

#[doc(hidden)]
#[repr(transparent)]
pub struct PdName(core::cell::UnsafeCell<[u8; 64]>);

// SAFETY: written only by the loader before the PD runs; afterwards only read.
unsafe impl Sync for PdName {}

/// This PD's name as the SDF gives it ("?" if the loader did not write one, e.g. an image
/// run outside a system).
pub fn name() -> &'static str {
    // SAFETY: the loader's bytes, never written while the PD runs. The UnsafeCell keeps the
    // static in writable memory and stops the compiler folding the zeros it starts with.
    let bytes: &'static [u8; 64] = unsafe { &*microkit_name.0.get() };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match core::str::from_utf8(&bytes[..end]) {
        Ok(s) if !s.is_empty() => s,
        _ => "?",
    }
}

/// The root task's generation table (`axolotl_boot_plan::generations`), mapped read-only
/// into every PD: every PD's generation as the root task, which restarts PDs, counts it.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn generation_table() -> &'static axolotl_boot_plan::generations::GenerationTable {
    // SAFETY: the root task maps the table's page read-only at this address into every PD
    // incarnation for its whole life, and writes it only atomically.
    unsafe {
        &*(axolotl_boot_plan::generations::GENERATION_TABLE_VADDR
            as *const axolotl_boot_plan::generations::GenerationTable)
    }
}

/// The word in which the root task publishes the generation of the PD at the other end of
/// channel `ch` (`None`: no such channel, or this PD's index was not patched). A ring
/// endpoint believes its peer's restart only when this word confirms it.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub fn peer_generation_word(ch: Channel) -> Option<&'static core::sync::atomic::AtomicU32> {
    let table = generation_table();
    table.word(table.peer(pd_index()?, ch.id())?)
}

/// The PD's own CNode, for PDs the SDF gives `cnode_cap="true"`: address slots with
/// depth [`CNODE_DEPTH`].
pub const OWN_CNODE: axolotl_sys::CNode =
    axolotl_sys::CNode(axolotl_boot_plan::cspace::OWN_CNODE_CAP);
pub const CNODE_DEPTH: u64 = axolotl_boot_plan::cspace::CNODE_SIZE_BITS as u64;

/// A word the system builder writes before the PD starts (Microkit's `setvar`): declare it
/// under the SDF's symbol name, e.g. `#[unsafe(no_mangle)] static log_ring: SetVar =
/// SetVar::new();` for `setvar_vaddr="log_ring"`. Reads are volatile, so the compiler never
/// folds the zero it is initialised with.
#[repr(transparent)]
pub struct SetVar(core::cell::UnsafeCell<u64>);

// SAFETY: written only before the PD runs; afterwards only read.
unsafe impl Sync for SetVar {}

impl SetVar {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        SetVar(core::cell::UnsafeCell::new(0))
    }
    pub fn get(&self) -> u64 {
        // SAFETY: an aligned u64 that nothing writes while the PD runs.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
}

/// Makes a binary a protection domain: its entry point runs `$handler` (an expression
/// building a [`Handler`]) under [`run`], and a panic is reported to its fault handler.
/// The binary must be linked with the user layout (`axolotl_user_layout::link()` in its build
/// script).
#[macro_export]
macro_rules! protection_domain {
    ($handler:expr) => {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        mod __axolotl_pd_entry {
            #[allow(unused_imports)]
            use super::*;

            ::core::arch::global_asm!(
                ".section .text.start, \"ax\"",
                ".global _start",
                "_start:",
                // x0: the generation the root task started us with.
                "    adrp x9, __axolotl_pd_generation",
                "    str x0, [x9, :lo12:__axolotl_pd_generation]",
                // x1: how (axolotl_abi::START_FRESH).
                "    adrp x9, __axolotl_pd_start_flags",
                "    str x1, [x9, :lo12:__axolotl_pd_start_flags]",
                "    bl __axolotl_pd_main",
                "1:  b 1b",
            );

            #[unsafe(no_mangle)]
            extern "C" fn __axolotl_pd_main() -> ! {
                $crate::run($handler)
            }

            #[panic_handler]
            fn panic(info: &::core::panic::PanicInfo) -> ! {
                $crate::report_panic(info)
            }
        }
    };
}

/// Cleans `[start, end)` of this PD's address space to the point of coherency, 2 MiB per
/// kernel call (Microkit's `microkit_arm_vspace_data_clean`): what it wrote through its
/// cacheable mappings becomes visible to whatever reads memory directly — a guest that
/// starts with its MMU off, a device.
pub fn vspace_data_clean(start: u64, end: u64) -> Result<(), axolotl_sys::InvocationError> {
    by_chunks(start, end, |a, b| {
        axolotl_sys::VSpace(axolotl_boot_plan::cspace::VSPACE_CAP).clean_data(a, b)
    })
}

/// Makes `[start, end)` of this PD's address space, written as data, visible to instruction
/// fetch (Microkit's `microkit_arm_vspace_unify_instruction`).
pub fn vspace_unify_instruction(start: u64, end: u64) -> Result<(), axolotl_sys::InvocationError> {
    by_chunks(start, end, |a, b| {
        axolotl_sys::VSpace(axolotl_boot_plan::cspace::VSPACE_CAP).unify_instruction(a, b)
    })
}

/// `op` on `[start, end)` in pieces that each stay within one 2 MiB-aligned stretch.
fn by_chunks(
    start: u64,
    end: u64,
    mut op: impl FnMut(u64, u64) -> Result<(), axolotl_sys::InvocationError>,
) -> Result<(), axolotl_sys::InvocationError> {
    const CHUNK: u64 = 2 << 20;
    let mut a = start;
    while a < end {
        let b = ((a / CHUNK + 1) * CHUNK).min(end);
        op(a, b)?;
        a = b;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn chunks_cover_the_range_within_2mib_stretches() {
        for (start, end) in [
            (0x4000_0000, 0x4220_0123),
            (0x1234, 0x1235),
            (5, 5),
            (0x3f_ffff, 0x40_0001),
        ] {
            let mut got = Vec::new();
            super::by_chunks(start, end, |a, b| {
                got.push((a, b));
                Ok(())
            })
            .unwrap();
            let mut at = start;
            for &(a, b) in &got {
                assert_eq!(a, at);
                assert!(b > a && (b - 1) >> 21 == a >> 21, "{a:#x}..{b:#x}");
                at = b;
            }
            assert_eq!(at, end.max(start));
        }
    }
}
