//! The virtio devices' chunks (docs/vmm.md, "Restart: the device state region"). The
//! devices are `vmm-pd`'s, not the `Vm`'s: before each commit the VMM hands them to
//! [`Vm::keep_virtio`], which encodes them and marks the chunks whose words changed; after
//! a restart [`Vm::recover_with`] checks the words (their encoding here, their values
//! against the transport's interface in `Transport::restore` and `VirtioBlk::restore`, which
//! the VMM calls with [`Vm::kept_net`]/[`Vm::kept_blk`]).

use super::chunk::{self, BLK, BLK_HEADS, NET};
use super::{Devices, StateError};
use crate::pl011::TxSink;
use crate::virtio::{BlkState, TransportState, VirtioBlk, VirtioNet};
use crate::vm::Vm;

const BLK_TRANSPORT: usize = TransportState::<1>::WORDS;
const BLK_SEQ: usize = BLK_TRANSPORT;
const BLK_COUNT: usize = BLK_TRANSPORT + 1;
const TABLE: usize = 4 * chunk::MAX_LEN;

const _: () = {
    assert!(TransportState::<2>::WORDS <= chunk::len(NET));
    assert!(BLK_COUNT < chunk::len(BLK));
    assert!(chunk::len(BLK_HEADS) * 4 == TABLE);
};

/// The words of the virtio chunks, as last encoded or recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioWords {
    net: [u64; chunk::SMALL_LEN],
    blk: [u64; chunk::SMALL_LEN],
    heads: [u64; chunk::MAX_LEN],
}

impl VirtioWords {
    pub const ZERO: Self = Self {
        net: [0; chunk::SMALL_LEN],
        blk: [0; chunk::SMALL_LEN],
        heads: [0; chunk::MAX_LEN],
    };

    fn blk_count(&self) -> usize {
        self.blk[BLK_COUNT] as usize
    }
}

fn encode_blk(dev: &VirtioBlk, blk: &mut [u64; chunk::SMALL_LEN], heads: &mut [u64; 64]) {
    let (t, st) = dev.save();
    blk.fill(0);
    t.encode(&mut blk[..BLK_TRANSPORT]);
    blk[BLK_SEQ] = st.next_seq;
    blk[BLK_COUNT] = st.count as u64;
    heads.fill(0);
    for (i, h) in st.heads[..st.count].iter().enumerate() {
        heads[i / 4] |= u64::from(*h) << (16 * (i % 4));
    }
}

impl<S: TxSink> Vm<S> {
    /// Declares the virtio devices the region keeps, before [`Vm::persist_format`] (a
    /// restarted VMM passes the same to [`Vm::recover_with`]).
    pub fn set_devices(&mut self, devices: Devices) {
        self.devices = devices;
    }

    /// Takes the devices' state for the next commit (call it before every commit that
    /// follows work on them: a queue notification, a backend's completions). Only chunks
    /// whose words changed are marked; the commit writes only words that changed.
    pub fn keep_virtio(&mut self, net: Option<&VirtioNet>, blk: Option<&VirtioBlk>) {
        if let Some(dev) = net.filter(|_| self.devices.net) {
            let mut w = [0u64; chunk::SMALL_LEN];
            dev.save().encode(&mut w);
            if w != self.virtio.net {
                self.virtio.net = w;
                self.dirty |= 1 << NET;
            }
        }
        if let Some(dev) = blk.filter(|_| self.devices.blk) {
            let mut b = [0u64; chunk::SMALL_LEN];
            let mut h = [0u64; chunk::MAX_LEN];
            encode_blk(dev, &mut b, &mut h);
            if b != self.virtio.blk {
                self.virtio.blk = b;
                self.dirty |= 1 << BLK;
            }
            if h != self.virtio.heads {
                self.virtio.heads = h;
                self.dirty |= 1 << BLK_HEADS;
            }
        }
    }

    /// After [`Vm::recover_with`]: the virtio-net transport as committed (to be restored
    /// with `VirtioNet::restore`, which checks its values).
    pub fn kept_net(&self) -> Option<TransportState<2>> {
        if !self.devices.net {
            return None;
        }
        TransportState::decode(&self.virtio.net).ok()
    }

    /// After [`Vm::recover_with`]: the virtio-blk transport and requests as committed (to
    /// be restored with `VirtioBlk::restore`).
    pub fn kept_blk(&self) -> Option<(TransportState<1>, BlkState)> {
        if !self.devices.blk {
            return None;
        }
        let t = TransportState::decode(&self.virtio.blk[..BLK_TRANSPORT]).ok()?;
        let count = self.virtio.blk_count();
        let mut heads = [0u16; TABLE];
        for (i, h) in heads.iter_mut().enumerate().take(count.min(TABLE)) {
            *h = (self.virtio.heads[i / 4] >> (16 * (i % 4))) as u16;
        }
        Some((
            t,
            BlkState {
                next_seq: self.virtio.blk[BLK_SEQ],
                heads,
                count,
            },
        ))
    }

    pub(super) fn encode_device(&self, id: usize, out: &mut [u64]) {
        let w: &[u64] = match id {
            NET => &self.virtio.net,
            BLK => &self.virtio.blk,
            _ => &self.virtio.heads,
        };
        out.copy_from_slice(&w[..out.len()]);
    }

    /// The encoding's checks (the values are the restore's): a transport that decodes,
    /// a request count within the table, sequence numbers within an id's 48 bits, no head
    /// past the count. Chunks are decoded in order, so the count is known for the heads.
    pub(super) fn decode_device(&mut self, id: usize, w: &[u64]) -> Result<(), StateError> {
        let bad = StateError::Invalid(id as u8);
        match id {
            NET => {
                TransportState::<2>::decode(w).map_err(|_| bad)?;
                self.virtio.net.copy_from_slice(w);
            }
            BLK => {
                TransportState::<1>::decode(&w[..BLK_TRANSPORT]).map_err(|_| bad)?;
                if w[BLK_SEQ] >> 48 != 0
                    || w[BLK_COUNT] > TABLE as u64
                    || w[BLK_COUNT + 1..].iter().any(|&x| x != 0)
                {
                    return Err(bad);
                }
                self.virtio.blk.copy_from_slice(w);
            }
            _ => {
                // Unused slots past the count must be zero (the re-encoding then holds).
                let count = self.virtio.blk_count();
                for (i, word) in w.iter().enumerate() {
                    let live = count.saturating_sub(4 * i).min(4);
                    let mask = if live == 4 {
                        u64::MAX
                    } else {
                        (1u64 << (16 * live)) - 1
                    };
                    if word & !mask != 0 {
                        return Err(bad);
                    }
                }
                self.virtio.heads.copy_from_slice(w);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "virtio_tests.rs"]
mod tests;
