//! What a `VirtioBlk` had in flight, kept across a VMM restart (docs/vmm.md, "Restart: the
//! device state region"). Completions may come back in any order, so the queue cannot
//! simply be rewound: the heads of the requests the dead VMM held (waiting or at the
//! backend) are kept in the order it took them, and a restarted VMM takes those chains
//! again from guest memory and hands them to the backend again.

use super::{State, TABLE, VirtioBlk};
use crate::virtio::GuestMemory;
use crate::virtio::state::{TransportState, VirtioStateError};

/// How far a restarted VMM's request sequence jumps past the committed one: further than
/// the ids one VMM can hand out between two commits (a commit ends every exit and every
/// notification's service, which takes at most a few rounds of the queue's chains), so a
/// completion of a request the dead VMM issued after its last commit never matches one of
/// the new VMM's. 2^32 restarts fit in the 48-bit sequence before it wraps.
pub const RESTART_SEQ_GAP: u64 = 1 << 16;
const SEQ_MASK: u64 = 0xFFFF_FFFF_FFFF;

/// The requests a `VirtioBlk` holds, for the state region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkState {
    /// The sequence number the next request gets: ids stay unique across the restart, so
    /// a completion the backend sends for a request of the dead VMM matches nothing.
    pub next_seq: u64,
    /// Chain heads of the requests waiting or at the backend, oldest first.
    pub heads: [u16; TABLE],
    pub count: usize,
}

impl VirtioBlk {
    /// The transport and the requests in flight (a reset's orphans are not: their
    /// completions are dropped anyway).
    pub fn save(&self) -> (TransportState<1>, BlkState) {
        // Not a zeroed table of every possible request: this runs at every commit after
        // the disk's work, and zeroing 4 KiB (the target's byte-wise `memset`) was most
        // of it; a few requests are in flight at a time.
        let mut held = heapless::Vec::<(u64, u16), TABLE>::new();
        for s in &self.slots[..self.used_top.min(TABLE)] {
            if let (State::Pending | State::Submitted, Some(c)) = (s.state, s.chain) {
                // Ids are (sequence << 16) | slot: the sequence orders them. At most one
                // per slot, so never more than TABLE.
                let _ = held.push((self.next_seq.wrapping_sub(s.id >> 16), c.head));
            }
        }
        let count = held.len();
        // Oldest first: the furthest behind the next sequence number.
        held.sort_unstable_by_key(|h| core::cmp::Reverse(h.0));
        let mut heads = [0u16; TABLE];
        for (h, (_, head)) in heads.iter_mut().zip(&held) {
            *h = *head;
        }
        (
            self.transport.save(),
            BlkState {
                next_seq: self.next_seq,
                heads,
                count,
            },
        )
    }

    /// A restarted VMM's device: the transport restored (checked), the used ring caught up
    /// with guest memory (a request whose completion the dead VMM had written is done), and
    /// every other request it held taken again from its chain, to be handed to the backend
    /// by the next [`VirtioBlk::process`] (reads and writes of the same sectors again: the
    /// driver was not told they completed, so its buffers are as they were). On error the
    /// device is unusable: the caller reports a failed recovery.
    pub fn restore<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        transport: &TransportState<1>,
        st: &BlkState,
    ) -> Result<usize, VirtioStateError> {
        if st.count > TABLE || st.next_seq >> 48 != 0 {
            return Err(VirtioStateError::Queue(0));
        }
        let mut fresh = VirtioBlk::new(self.config, self.transport.ram());
        fresh.counters = self.counters;
        fresh.transport.restore(transport)?;
        fresh.epoch = fresh.transport.epoch();
        // Past every id the dead VMM may have handed out after its last commit (they are
        // not in the region): the ids it gave the backend then must match nothing of ours.
        fresh.next_seq = st.next_seq.wrapping_add(RESTART_SEQ_GAP) & SEQ_MASK;
        let mut heads = st.heads;
        let mut count = st.count;
        // What the guest made available past the commit: the dead VMM may have taken some
        // of these (in ring order) and completed some of those before it died.
        let mut later = [(0u16, false); TABLE];
        let mut nlater = 0;
        let q = &mut fresh.transport.queues[0];
        q.available_heads(&*mem, |h| {
            if let Some(l) = later.get_mut(nlater) {
                *l = (h, false);
                nlater += 1;
            }
        })
        .map_err(|_| VirtioStateError::Queue(0))?;
        let mut taken_after = 0;
        let mut unknown = false;
        let synced = q.sync_used(&*mem, |done| {
            if let Some(i) = heads[..count].iter().position(|&h| h == done) {
                heads.copy_within(i + 1..count, i);
                count -= 1;
            } else if let Some(i) = later[..nlater]
                .iter()
                .position(|&(h, completed)| h == done && !completed)
            {
                // Taken after the commit and completed: so was every chain before it.
                later[i].1 = true;
                taken_after = taken_after.max(i + 1);
            } else {
                unknown = true;
            }
        });
        if synced.is_err() || unknown {
            return Err(VirtioStateError::Queue(0));
        }
        q.advance_avail(taken_after as u16);
        if q.in_flight() as usize != count + later[..taken_after].iter().filter(|l| !l.1).count() {
            return Err(VirtioStateError::Queue(0));
        }
        // Oldest first: what the commit held, then what was taken after it.
        let retake = heads[..count].iter().copied().chain(
            later[..taken_after]
                .iter()
                .filter(|l| !l.1)
                .map(|&(h, _)| h),
        );
        let mut n = 0;
        for head in retake {
            let chain = fresh.transport.queues[0]
                .chain_at(&*mem, head)
                .map_err(|_| VirtioStateError::Queue(0))?;
            // Room is certain: at most TABLE requests, into an empty table.
            if !fresh.take(mem, chain) {
                return Err(VirtioStateError::Queue(0));
            }
            n += 1;
        }
        // Completions the dead VMM wrote after its commit may never have been signalled:
        // one interrupt more is harmless, one less leaves the driver waiting.
        if fresh.transport.status() & crate::virtio::status::DRIVER_OK != 0 {
            fresh.transport.interrupt_used();
        }
        *self = fresh;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "blk_state_tests.rs"]
mod tests;
