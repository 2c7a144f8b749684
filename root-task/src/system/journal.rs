//! The monitor's journal (`axolotl_root_service::journal`): its entries, too large for the
//! stack, live in a static handed out once.

use core::sync::atomic::{AtomicBool, Ordering};

use axolotl_root_service::journal::{Entries, Entry, Journal};

static mut ENTRIES: Entries = [const { Entry::EMPTY }; axolotl_boot_plan::MAX_PDS + 1];
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The journal, empty; `None` after the first call.
pub fn take() -> Option<Journal<'static>> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: handed out once (`TAKEN`), so this is the only reference.
    let entries = unsafe { (&raw mut ENTRIES).as_mut().unwrap_unchecked() };
    Some(Journal::new(entries))
}
