//! The monitor's journal (`axolotl_root_service::Request::Record`): by PD, the record the
//! monitor keeps with us so that a restarted monitor goes on from its predecessor's
//! bookkeeping (docs/monitor.md, "The journal"). Opaque to us: the monitor alone writes it,
//! and it validates what it reads back.
//!
//! A record arrives in our IPC buffer, which the invocations serving its request overwrite,
//! and a restart's record is kept only once the restart succeeded: so it is first copied
//! into a spare entry ([`Journal::stage`]), which [`Journal::commit`] then swaps in.

use core::sync::atomic::{AtomicBool, Ordering};

use axolotl_boot_plan::MAX_PDS;
use axolotl_root_service::RECORD_BYTES;

/// One entry.
struct Entry {
    len: usize,
    bytes: [u8; RECORD_BYTES],
}

/// Every PD's entry and the spare: too large for the stack, so a static the one [`Journal`]
/// owns.
static mut ENTRIES: [Entry; MAX_PDS + 1] = [const {
    Entry {
        len: 0,
        bytes: [0; RECORD_BYTES],
    }
}; MAX_PDS + 1];
static TAKEN: AtomicBool = AtomicBool::new(false);

const _: () = assert!(MAX_PDS < u8::MAX as usize);

pub struct Journal {
    entries: &'static mut [Entry; MAX_PDS + 1],
    /// Which entry is each PD's; the one none has is the spare.
    of: [u8; MAX_PDS],
    spare: u8,
}

/// A record copied into the spare entry, to be committed for a PD (or dropped).
#[must_use]
pub struct Staged {
    len: usize,
}

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Journal {
    /// The journal, empty; `None` after the first call.
    pub fn take() -> Option<Journal> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: handed out once (`TAKEN`), so this is the only reference.
        let entries = unsafe { (&raw mut ENTRIES).as_mut().unwrap_unchecked() };
        Some(Journal {
            entries,
            of: core::array::from_fn(|pd| pd as u8),
            spare: MAX_PDS as u8,
        })
    }

    /// Copies `bytes` into the spare entry (replacing what was staged before); `None` if they
    /// are more than an entry holds.
    pub fn stage(&mut self, bytes: &[u8]) -> Option<Staged> {
        let e = &mut self.entries[self.spare as usize];
        e.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        e.len = bytes.len();
        Some(Staged { len: bytes.len() })
    }

    /// Makes the staged record PD `pd`'s entry (ignored for an index no plan has).
    pub fn commit(&mut self, pd: usize, _: Staged) {
        if let Some(of) = self.of.get_mut(pd) {
            core::mem::swap(of, &mut self.spare);
        }
    }

    /// PD `pd`'s entry (empty if none).
    pub fn get(&self, pd: usize) -> Option<&[u8]> {
        let e = &self.entries[*self.of.get(pd)? as usize];
        Some(&e.bytes[..e.len])
    }
}
