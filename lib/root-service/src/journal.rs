//! The root task's side of the monitor's journal ([`Request::Record`](crate::Request::Record)):
//! by PD, the record the monitor keeps with the root task so that a restarted monitor goes on
//! from its predecessor's bookkeeping (docs/monitor.md, "The journal"). Opaque here: the
//! monitor alone writes it, and it validates what it reads back.
//!
//! A record arrives in the root task's IPC buffer, which the invocations serving its request
//! overwrite, and a restart's record is kept only once the restart succeeded: so it is first
//! copied into a spare entry ([`Journal::stage`]), which [`Journal::commit`] then swaps in
//! (no second copy). The entries are the caller's (a static in the root task: too large for
//! its stack).

use axolotl_boot_plan::MAX_PDS;

use crate::RECORD_BYTES;

/// One record's room.
pub struct Entry {
    len: usize,
    bytes: [u8; RECORD_BYTES],
}

impl Entry {
    pub const EMPTY: Entry = Entry {
        len: 0,
        bytes: [0; RECORD_BYTES],
    };
}

/// Entries for every PD and the spare.
pub type Entries = [Entry; MAX_PDS + 1];

const _: () = assert!(MAX_PDS < u8::MAX as usize);

pub struct Journal<'e> {
    entries: &'e mut Entries,
    /// Which entry is each PD's; the one none has is the spare.
    of: [u8; MAX_PDS],
    spare: u8,
}

/// A record copied into the spare entry, to be committed for a PD (or dropped).
#[must_use]
#[derive(Debug)]
pub struct Staged {
    len: usize,
}

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<'e> Journal<'e> {
    /// An empty journal in `entries`.
    pub fn new(entries: &'e mut Entries) -> Self {
        for e in entries.iter_mut() {
            e.len = 0;
        }
        Journal {
            entries,
            of: core::array::from_fn(|pd| pd as u8),
            spare: MAX_PDS as u8,
        }
    }

    /// Copies `bytes` into the spare entry (replacing what was staged before); `None` if they
    /// are more than an entry holds.
    pub fn stage(&mut self, bytes: &[u8]) -> Option<Staged> {
        let e = &mut self.entries[self.spare as usize];
        e.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        e.len = bytes.len();
        Some(Staged { len: bytes.len() })
    }

    /// Makes the staged record PD `pd`'s entry (dropped for an index no plan has).
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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn entries() -> Box<Entries> {
        Box::new([const { Entry::EMPTY }; MAX_PDS + 1])
    }

    #[test]
    fn a_record_is_kept_only_once_committed() {
        let mut e = entries();
        let mut j = Journal::new(&mut e);
        assert_eq!(j.get(3), Some(&[][..]));
        let s = j.stage(b"first").unwrap();
        j.commit(3, s);
        assert_eq!(j.get(3), Some(&b"first"[..]));
        // Staged for a restart that then failed: never committed.
        let _ = j.stage(b"second");
        assert_eq!(j.get(3), Some(&b"first"[..]));
        let s = j.stage(b"third").unwrap();
        assert!(!s.is_empty());
        j.commit(3, s);
        assert_eq!(j.get(3), Some(&b"third"[..]));
        assert_eq!(j.get(MAX_PDS), None);
        let s = j.stage(b"nowhere").unwrap();
        j.commit(MAX_PDS, s);
        assert_eq!(j.get(3), Some(&b"third"[..]));
        assert!(j.stage(&[0; RECORD_BYTES + 1]).is_none());
        assert!(j.stage(&[7; RECORD_BYTES]).is_some());
    }

    #[test]
    fn a_new_journal_is_empty_whatever_its_entries_held() {
        let mut e = entries();
        let mut j = Journal::new(&mut e);
        for pd in 0..MAX_PDS {
            let s = j.stage(&[pd as u8; 9]).unwrap();
            j.commit(pd, s);
        }
        let j = Journal::new(&mut e);
        assert!((0..MAX_PDS).all(|pd| j.get(pd) == Some(&[][..])));
    }

    proptest! {
        /// Against a model: each PD's entry is the last record committed for it, whatever
        /// was staged and dropped in between (the spare never aliases a PD's entry).
        #[test]
        fn entries_are_the_last_committed(
            ops in proptest::collection::vec(
                (0..MAX_PDS + 2, proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()),
                0..200,
            ),
        ) {
            let mut e = entries();
            let mut j = Journal::new(&mut e);
            let mut model: Vec<Vec<u8>> = std::vec![Vec::new(); MAX_PDS];
            for (pd, bytes, commit) in ops {
                let s = j.stage(&bytes).unwrap();
                if commit {
                    j.commit(pd, s);
                    if let Some(m) = model.get_mut(pd) {
                        *m = bytes;
                    }
                }
                for (pd, m) in model.iter().enumerate() {
                    prop_assert_eq!(j.get(pd), Some(&m[..]));
                }
            }
        }
    }
}
