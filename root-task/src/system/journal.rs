//! The monitor's journal (`root_service::Request::Record`): by PD, the record the monitor
//! keeps with us so that a restarted monitor goes on from its predecessor's bookkeeping
//! (docs/monitor.md, "The journal"). Opaque to us: the monitor alone writes it, and it
//! validates what it reads back.

use core::sync::atomic::{AtomicBool, Ordering};

use axolotl_boot_plan::MAX_PDS;
use axolotl_boot_plan::root_service::Record;

/// The entries: too large for the stack, so a static the one [`Journal`] owns.
static mut ENTRIES: [Record; MAX_PDS] = [const { Record::new() }; MAX_PDS];
static TAKEN: AtomicBool = AtomicBool::new(false);

pub struct Journal {
    entries: &'static mut [Record; MAX_PDS],
}

impl Journal {
    /// The journal, empty; `None` after the first call.
    pub fn take() -> Option<Journal> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: handed out once (`TAKEN`), so this is the only reference.
        let entries = unsafe { (&raw mut ENTRIES).as_mut().unwrap_unchecked() };
        Some(Journal { entries })
    }

    /// Keeps `record` as PD `pd`'s entry (ignored for an index no plan has).
    pub fn keep(&mut self, pd: usize, record: &Record) {
        if let Some(e) = self.entries.get_mut(pd) {
            e.clone_from(record);
        }
    }

    /// PD `pd`'s entry (empty if none).
    pub fn get(&self, pd: usize) -> Option<&Record> {
        self.entries.get(pd)
    }
}
