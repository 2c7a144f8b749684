//! The generation table: one page in which the root task, the authority that restarts PDs,
//! publishes every PD's generation. Every PD maps it read-only at [`GENERATION_TABLE_VADDR`]
//! (both incarnations of a standby PD too); no PD can write it.
//!
//! Shared-memory protocols cannot trust a generation a peer publishes in memory the peer
//! writes: a ring peer could claim a restart that never happened, or choose the generation
//! its peer's next incarnation derives. With the table a PD checks a peer's claim against
//! the root task's own count (`lib/ring`'s `Authority`).
//!
//! Layout (little-endian, real build; every word is accessed atomically):
//!
//! | offset | words | what |
//! |---|---|---|
//! | 0 | 64 | `generations[pd]`: PD `pd`'s generation (plan index; 0 at boot, as `x0` at its entry) |
//! | 256 | 1 | the number of channel entries below |
//! | 260 | 256 | the plan's channels, one word each: `pd_a \| id_a << 8 \| pd_b << 16 \| id_b << 24` |
//!
//! Written by the root task only: the channels once before any PD runs, a PD's generation
//! (Release) after the PD is stopped and before its new incarnation is resumed, so that
//! whatever the new incarnation publishes is never seen before its generation is.
//!
//! A PD learns its own plan index from the builder: if its image has the 8-byte symbol
//! [`PD_INDEX_SYMBOL`], the plan patches it with `index + 1` (0: not patched), as Microkit
//! patches `microkit_name` and friends.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::model::{BootPlan, MAX_CHANNELS, MAX_PDS};

/// Where every PD finds the table (read-only), one page below the default IPC buffer.
pub const GENERATION_TABLE_VADDR: u64 = 0xe000_0000;
/// Bytes mapped at [`GENERATION_TABLE_VADDR`].
pub const GENERATION_TABLE_BYTES: u64 = 0x1000;
/// The symbol the builder patches with the PD's plan index + 1 (`lib/pd`'s).
/// Whether `[vaddr, vaddr + len)` covers any of the table's page (saturating: sizes near
/// `u64::MAX` are the SDF's to refuse, not to overflow on).
pub fn overlaps_table(vaddr: u64, len: u64) -> bool {
    vaddr < GENERATION_TABLE_VADDR + GENERATION_TABLE_BYTES
        && GENERATION_TABLE_VADDR < vaddr.saturating_add(len)
}

pub const PD_INDEX_SYMBOL: &str = "__axolotl_pd_index";

/// Generation slots: one per possible plan index.
pub const GENERATION_SLOTS: usize = 64;
const _: () = assert!(GENERATION_SLOTS >= MAX_PDS);

#[repr(C)]
pub struct GenerationTable {
    generations: [AtomicU32; GENERATION_SLOTS],
    channel_count: AtomicU32,
    channels: [AtomicU32; MAX_CHANNELS],
}

const _: () = assert!(core::mem::size_of::<GenerationTable>() as u64 <= GENERATION_TABLE_BYTES);

impl GenerationTable {
    /// An empty table (host tests; the root task's is a zeroed frame).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        GenerationTable {
            generations: [const { AtomicU32::new(0) }; GENERATION_SLOTS],
            channel_count: AtomicU32::new(0),
            channels: [const { AtomicU32::new(0) }; MAX_CHANNELS],
        }
    }

    /// The word holding PD `pd`'s generation.
    pub fn word(&self, pd: u8) -> Option<&AtomicU32> {
        self.generations.get(pd as usize)
    }

    /// PD `pd`'s generation now (Acquire).
    pub fn generation(&self, pd: u8) -> Option<u32> {
        self.word(pd).map(|w| w.load(Ordering::Acquire))
    }

    /// The root task: PD `pd` runs again with `generation` (call before resuming it).
    pub fn publish(&self, pd: u8, generation: u32) {
        if let Some(w) = self.word(pd) {
            w.store(generation, Ordering::Release);
        }
    }

    /// The root task, before any PD runs: records the plan's channels.
    pub fn set_channels(&self, plan: &BootPlan) {
        let n = plan.channels.len().min(MAX_CHANNELS);
        for (w, c) in self.channels.iter().zip(&plan.channels[..n]) {
            let [a, b] = c.ends;
            let packed = u32::from_le_bytes([a.pd, a.id, b.pd, b.id]);
            w.store(packed, Ordering::Relaxed);
        }
        self.channel_count.store(n as u32, Ordering::Release);
    }

    /// The PD at the other end of PD `me`'s channel `id`.
    pub fn peer(&self, me: u8, id: u8) -> Option<u8> {
        let n = (self.channel_count.load(Ordering::Acquire) as usize).min(MAX_CHANNELS);
        self.channels[..n]
            .iter()
            .find_map(|w| match w.load(Ordering::Relaxed).to_le_bytes() {
                [a, ia, b, _] if a == me && ia == id => Some(b),
                [a, _, b, ib] if b == me && ib == id => Some(a),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, ChannelEnd};

    fn end(pd: u8, id: u8) -> ChannelEnd {
        ChannelEnd {
            pd,
            id,
            pp: false,
            notify: true,
        }
    }

    #[test]
    fn peers_are_found_from_either_end() {
        let mut plan = BootPlan::default();
        for (a, b) in [
            (end(0, 1), end(1, 0)),
            (end(0, 2), end(2, 0)),
            (end(3, 7), end(0, 3)),
        ] {
            plan.channels.push(Channel { ends: [a, b] }).unwrap();
        }
        let t = GenerationTable::new();
        assert_eq!(t.peer(0, 1), None, "no channels recorded yet");
        t.set_channels(&plan);
        assert_eq!(t.peer(0, 1), Some(1));
        assert_eq!(t.peer(1, 0), Some(0));
        assert_eq!(t.peer(0, 2), Some(2));
        assert_eq!(t.peer(2, 0), Some(0));
        assert_eq!(t.peer(0, 3), Some(3));
        assert_eq!(t.peer(3, 7), Some(0));
        assert_eq!(t.peer(0, 0), None);
        assert_eq!(t.peer(1, 1), None);
    }

    #[test]
    fn generations_are_per_pd() {
        let t = GenerationTable::new();
        t.publish(2, 5);
        assert_eq!(t.generation(2), Some(5));
        assert_eq!(t.generation(1), Some(0));
        assert_eq!(t.generation(GENERATION_SLOTS as u8), None);
        t.publish(200, 1);
    }
}
