//! The monitor's journal (`root_service::RECORD`): by PD, the record the monitor keeps with
//! us so that a restarted monitor goes on from its predecessor's bookkeeping
//! (docs/monitor.md, "The journal"). Opaque to us: the monitor alone writes it, and it
//! validates what it reads back.

use core::sync::atomic::{AtomicBool, Ordering};

use axolotl_boot_plan::{MAX_PDS, root_service::RECORD_BYTES};

/// One PD's entry.
struct Entry {
    len: usize,
    bytes: [u8; RECORD_BYTES],
}

/// The entries: too large for the stack, so a static the one [`Journal`] owns.
static mut ENTRIES: [Entry; MAX_PDS] = [const {
    Entry {
        len: 0,
        bytes: [0; RECORD_BYTES],
    }
}; MAX_PDS];
static TAKEN: AtomicBool = AtomicBool::new(false);

pub struct Journal {
    entries: &'static mut [Entry; MAX_PDS],
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

    /// Keeps `bytes` as PD `pd`'s entry; false (nothing kept) for an index no plan has or
    /// more bytes than an entry holds.
    pub fn keep(&mut self, pd: usize, bytes: &[u8]) -> bool {
        match self.entries.get_mut(pd) {
            Some(e) if bytes.len() <= e.bytes.len() => {
                e.bytes[..bytes.len()].copy_from_slice(bytes);
                e.len = bytes.len();
                true
            }
            _ => false,
        }
    }

    /// PD `pd`'s entry (empty if none).
    pub fn get(&self, pd: usize) -> Option<&[u8]> {
        self.entries.get(pd).map(|e| &e.bytes[..e.len])
    }
}
