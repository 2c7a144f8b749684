//! A virtio-mmio transport's state as the VMM's state region keeps it across a VMM restart
//! (docs/vmm.md, "Restart: the device state region"): saved from a [`Transport`], encoded
//! into words, and restored only after every field is checked against what the transport's
//! own interface could have produced.
//!
//! [`Transport`]: super::Transport

/// One queue's registers and ring positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueState {
    pub num: u32,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
    pub next_avail: u16,
    pub next_used: u16,
    pub signalled: u16,
    pub event_idx: bool,
    pub indirect: bool,
}

/// Words per queue in [`TransportState::encode`].
pub const QUEUE_WORDS: usize = 5;
/// Words before the queues.
pub const HEAD_WORDS: usize = 6;

/// Everything of a `Transport<Q>` but what is fixed by the build (device id and features,
/// queue maxima, guest RAM) and the diagnostics (counters, last error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportState<const Q: usize> {
    pub driver_features: u64,
    pub driver_features_high: bool,
    pub device_features_sel: u32,
    pub driver_features_sel: u32,
    pub queue_sel: u32,
    pub shm_sel: u32,
    pub status: u32,
    pub isr: u32,
    pub config_generation: u32,
    pub notified: u32,
    pub epoch: u32,
    pub queues: [QueueState; Q],
}

/// Why a saved transport was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioStateError {
    /// Status, features or interrupt bits the transport could not have reached.
    Transport,
    /// Queue `n` is inconsistent (size, ring addresses, indices).
    Queue(usize),
    /// The words do not encode a state (stray bits).
    Encoding,
}

impl<const Q: usize> TransportState<Q> {
    pub const WORDS: usize = HEAD_WORDS + QUEUE_WORDS * Q;

    /// Into `out` (at least [`Self::WORDS`] long).
    pub fn encode(&self, out: &mut [u64]) {
        let pack = |lo: u32, hi: u32| u64::from(lo) | u64::from(hi) << 32;
        out[0] = self.driver_features;
        out[1] = pack(self.device_features_sel, self.driver_features_sel);
        out[2] = pack(self.queue_sel, self.shm_sel);
        out[3] = pack(self.status, self.isr);
        out[4] = pack(self.config_generation, self.notified);
        out[5] = u64::from(self.epoch) | u64::from(self.driver_features_high) << 32;
        for (q, w) in self
            .queues
            .iter()
            .zip(out[HEAD_WORDS..].chunks_exact_mut(QUEUE_WORDS))
        {
            w[0] = q.desc;
            w[1] = q.avail;
            w[2] = q.used;
            w[3] = u64::from(q.num)
                | u64::from(q.size) << 32
                | u64::from(q.ready) << 48
                | u64::from(q.event_idx) << 49
                | u64::from(q.indirect) << 50;
            w[4] = u64::from(q.next_avail)
                | u64::from(q.next_used) << 16
                | u64::from(q.signalled) << 32;
        }
    }

    /// From `words` (at least [`Self::WORDS`]); refuses any word [`Self::encode`] would
    /// not write. The values themselves are checked by `Transport::restore`.
    pub fn decode(words: &[u64]) -> Result<Self, VirtioStateError> {
        if words.len() < Self::WORDS {
            return Err(VirtioStateError::Encoding);
        }
        let lo = |w: u64| w as u32;
        let hi = |w: u64| (w >> 32) as u32;
        let mut queues = [QueueState::default(); Q];
        for (q, w) in queues
            .iter_mut()
            .zip(words[HEAD_WORDS..].chunks_exact(QUEUE_WORDS))
        {
            *q = QueueState {
                desc: w[0],
                avail: w[1],
                used: w[2],
                num: lo(w[3]),
                size: (w[3] >> 32) as u16,
                ready: w[3] & 1 << 48 != 0,
                event_idx: w[3] & 1 << 49 != 0,
                indirect: w[3] & 1 << 50 != 0,
                next_avail: w[4] as u16,
                next_used: (w[4] >> 16) as u16,
                signalled: (w[4] >> 32) as u16,
            };
        }
        let st = Self {
            driver_features: words[0],
            device_features_sel: lo(words[1]),
            driver_features_sel: hi(words[1]),
            queue_sel: lo(words[2]),
            shm_sel: hi(words[2]),
            status: lo(words[3]),
            isr: hi(words[3]),
            config_generation: lo(words[4]),
            notified: hi(words[4]),
            epoch: lo(words[5]),
            driver_features_high: words[5] & 1 << 32 != 0,
            queues,
        };
        let mut again = [0u64; 64];
        let n = Self::WORDS;
        if n > again.len() {
            return Err(VirtioStateError::Encoding);
        }
        st.encode(&mut again[..n]);
        if again[..n] != words[..n] {
            return Err(VirtioStateError::Encoding);
        }
        Ok(st)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
