//! virtio-blk's backend over lib/blk's [`BlkClient`]: the VMM as a client of the blk
//! driver PD (docs/vmm.md, "Backends"; docs/storage.md).
//!
//! The driver never sees guest memory: a write's data is copied from the guest's
//! buffers straight into one of the connection's data buffers, a read's data out of it
//! straight into the guest's (one copy each way, no staging buffer; the driver's device
//! DMAs into and out of the same buffers, docs/storage.md). One request holds one data buffer (a flush too: it needs a command record,
//! and keeping one count for both keeps the client from ever being full while a buffer
//! is free). The client keeps each request until the driver completes it and re-issues
//! what a driver restart reclaimed, in order, so the device's "completes exactly once"
//! contract holds across restarts.

use axolotl_blk::{BlkClient, ClientError, DATA_START, Op, Request, Status, SubmitError};

use super::blk::{
    BlkBackend, BlkData, BlkOp, BlkRequest, S_IOERR, S_OK, S_UNSUPP, Submit, VirtioBlk,
};
use super::mem::GuestMemory;

/// Rounds of "client, then device" one [`BlkRing::poll`] runs at most: each round either
/// completes or issues something, so a handful suffices; the bound keeps a hostile driver
/// from holding the VMM (the next notification resumes).
const ROUNDS: usize = 8;

/// A [`BlkBackend`] over `IDS` request ids with one `BYTES`-byte data buffer each (buffer
/// `i` at `DATA_START + i * BYTES` in the connection's data region).
pub struct BlkRing<const IDS: usize, const BYTES: usize> {
    client: BlkClient<IDS>,
    /// The device's request id each buffer serves (`None`: free).
    bufs: [Option<u64>; IDS],
}

/// What one [`BlkRing::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct BlkActivity {
    /// Notify the driver.
    pub notify: bool,
    /// The driver broke the protocol: report it (requests are kept and re-issued).
    pub fault: Option<ClientError>,
}

impl<const IDS: usize, const BYTES: usize> BlkRing<IDS, BYTES> {
    /// `client`'s data region must hold `IDS` buffers of `BYTES` after the command area.
    pub fn new(client: BlkClient<IDS>) -> Option<Self> {
        if !client.data().contains(DATA_START, IDS * BYTES) || BYTES == 0 {
            return None;
        }
        Some(Self {
            client,
            bufs: [None; IDS],
        })
    }

    pub fn client(&self) -> &BlkClient<IDS> {
        &self.client
    }

    fn offset(i: usize) -> usize {
        DATA_START + i * BYTES
    }

    /// Moves everything along: the driver's completions to the guest, the guest's new
    /// requests (and those that waited for room) to the driver. Call it when the driver
    /// notifies and after the guest's QueueNotify.
    pub fn poll<M: GuestMemory + ?Sized>(
        &mut self,
        dev: &mut VirtioBlk,
        mem: &mut M,
    ) -> BlkActivity {
        let mut act = BlkActivity::default();
        for _ in 0..ROUNDS {
            let mut done = [None; IDS];
            let mut n = 0;
            let r = self.client.poll(|c| {
                // At most IDS requests are outstanding, so at most IDS complete.
                if let Some(slot) = done.get_mut(n) {
                    *slot = Some(c);
                    n += 1;
                }
            });
            match r {
                Ok(a) => act.notify |= a.notify,
                Err(e) => {
                    act.fault.get_or_insert(e);
                    act.notify = true;
                }
            }
            for c in done.iter().flatten() {
                self.complete(dev, mem, c);
            }
            let submitted = self.client.stats().submitted;
            dev.process(mem, self);
            if n == 0 && self.client.stats().submitted == submitted {
                break;
            }
        }
        act
    }

    fn complete<M: GuestMemory + ?Sized>(
        &mut self,
        dev: &mut VirtioBlk,
        mem: &mut M,
        c: &axolotl_blk::Completion,
    ) {
        let Some(id) = self.bufs.get_mut(c.user as usize).and_then(Option::take) else {
            // Only we submit, with a buffer index we hold: cannot happen; nothing to do.
            return;
        };
        let status = match c.status {
            Status::Ok => S_OK,
            Status::Unsupported => S_UNSUPP,
            // The device checked the range and length before: the driver's disk changed
            // under us or it failed the request, which is an I/O error to the guest.
            Status::IoError | Status::OutOfRange | Status::BadBuffer => S_IOERR,
        };
        // Straight from the buffer into the guest's; a range the region does not hold (the
        // request is our own record, so never) is short data, which the device answers
        // with IOERR.
        let len = if c.request.op == Op::Read && status == S_OK {
            (c.request.len as usize).min(BYTES)
        } else {
            0
        };
        let data = self.client.data();
        let _ = dev.complete_from_region(mem, id, status, data, c.request.offset as usize, len);
    }
}

impl<const IDS: usize, const BYTES: usize> BlkBackend for BlkRing<IDS, BYTES> {
    fn submit(&mut self, req: &BlkRequest, fill: &mut dyn FnMut(BlkData<'_>) -> bool) -> Submit {
        let len = req.len as usize;
        if len > BYTES {
            return Submit::Refused;
        }
        let Some(i) = self.bufs.iter().position(Option::is_none) else {
            return Submit::Busy;
        };
        let offset = Self::offset(i);
        let op = match req.op {
            BlkOp::Read => Op::Read,
            BlkOp::Write => {
                let buf = BlkData::Region {
                    region: self.client.data(),
                    offset,
                    len,
                };
                if !fill(buf) {
                    return Submit::Refused;
                }
                Op::Write
            }
            BlkOp::Flush => Op::Flush,
        };
        let request = Request {
            op,
            sector: req.sector,
            offset: offset as u32,
            len: req.len,
        };
        match self.client.submit(request, i as u64) {
            Ok(()) => {
                self.bufs[i] = Some(req.id);
                Submit::Accepted
            }
            Err(SubmitError::Full) => Submit::Busy,
            Err(SubmitError::BadBuffer) => Submit::Refused,
        }
    }
}

#[cfg(test)]
#[path = "ring_blk_tests.rs"]
mod tests;
