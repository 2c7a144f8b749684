//! The client's side: requests kept until they complete, re-issued in their original order
//! when a driver restart reclaims them.

use axolotl_ring::{
    ClientEvent, Descriptor, Error, Generations, LayoutError, SharedRegion, Signal, Wait,
};

use crate::{
    CMD_BYTES, DATA_START, INFO_OFFSET, INFO_READY, MAX_CAPACITY, MAX_IDS, Op, REC_OP, REC_SECTOR,
    REC_STATUS, Request, SECTOR_SIZE, Status, StorageInfo,
};
use axolotl_ring::DataRegion;

/// One request's end, given to the user exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// What the user passed to [`BlkClient::submit`].
    pub user: u64,
    pub request: Request,
    pub status: Status,
}

/// Why [`BlkClient::submit`] did not take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every id is in use: poll, then retry.
    Full,
    /// The buffer is not inside the data area, or not a whole, non-zero number of sectors.
    BadBuffer,
}

/// What can go wrong for a [`BlkClient`]: the driver broke the protocol. The PD reports the
/// driver to the monitor; polling on is safe (requests are kept and re-issued to the
/// restarted driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// lib/ring found the driver corrupt (sticky until it restarts).
    Ring(Error),
    /// A completion without a valid status, or an OK one with a length other than the
    /// request's: the request is kept and re-issued.
    BadCompletion { id: u32, status: u32, len: u32 },
}

/// Construction failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientConfigError {
    Layout(LayoutError),
    TooManyIds,
    DataTooSmall,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests taken by `submit`.
    pub submitted: u64,
    pub completed: u64,
    /// Re-issues of requests a driver restart handed back (or the driver answered badly).
    pub reissued: u64,
    /// Driver restarts seen.
    pub driver_restarts: u64,
}

/// What one [`BlkClient::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ClientActivity {
    /// Notify the driver.
    pub notify: bool,
    /// Completions given to the callback in this call.
    pub completed: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    request: Request,
    user: u64,
    /// Submission order: re-issues go lowest first.
    seq: u64,
    /// On the ring now (else waiting to be (re-)issued).
    sent: bool,
    /// Issued before (a re-issue counts as such).
    issued: bool,
}

/// A block client with `IDS` request ids on one connection to the driver.
///
/// Every request given to [`BlkClient::submit`] completes exactly once through the
/// callback of [`BlkClient::poll`]. When the driver restarts, lib/ring first delivers the
/// completions the old driver posted, then hands back every other request in flight; the
/// client re-issues those in their original submission order before anything newer. A
/// re-issued request may already have taken effect (a write done but not answered):
/// reads and writes are idempotent as long as the user keeps overlapping requests out of
/// flight together, the rule every block layer follows.
pub struct BlkClient<const IDS: usize> {
    ring: axolotl_ring::Client<IDS>,
    data: DataRegion,
    entries: [Option<Entry>; IDS],
    next_seq: u64,
    stats: ClientStats,
}

impl<const IDS: usize> BlkClient<IDS> {
    pub fn new(
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
    ) -> Result<Self, ClientConfigError> {
        if IDS > MAX_IDS {
            return Err(ClientConfigError::TooManyIds);
        }
        if data.len() <= DATA_START {
            return Err(ClientConfigError::DataTooSmall);
        }
        // SAFETY: the view lives next to the ring endpoint owning `data`.
        let view = unsafe { DataRegion::alias(&data) };
        let ring = axolotl_ring::Client::new(rings, data, capacity, generations)
            .map_err(ClientConfigError::Layout)?;
        Ok(Self {
            ring,
            data: view,
            entries: [None; IDS],
            next_seq: 0,
            stats: ClientStats::default(),
        })
    }

    /// The device's geometry as the server published it, checked: `None` until a server
    /// published it, or if the record is not one a server writes (a corrupt peer).
    pub fn storage_info(&self) -> Option<StorageInfo> {
        if self.data.read_u32(INFO_OFFSET)? != INFO_READY {
            return None;
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let sector_size = self.data.read_u32(INFO_OFFSET + 4)?;
        let capacity = self.data.read_u64(INFO_OFFSET + 8)?;
        (sector_size as usize == SECTOR_SIZE && (1..=MAX_CAPACITY).contains(&capacity))
            .then_some(StorageInfo { capacity })
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    pub fn is_connected(&self) -> bool {
        self.ring.is_connected()
    }

    /// The connection for a deadline ([`axolotl_ring::Deadline::check_link`]).
    pub fn link_state(&self) -> axolotl_ring::LinkState {
        self.ring.link_state()
    }

    /// Requests submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.entries.iter().filter(|e| e.is_some()).count()
    }

    /// The PD generation of the driver this client is (or was last) connected to.
    pub fn driver_generation(&self) -> Option<u32> {
        axolotl_ring::pd_generation(self.ring.server_generation())
    }

    /// The data region, for the user's buffers (at or after `DATA_START`).
    pub fn data(&self) -> &DataRegion {
        &self.data
    }

    /// Takes a request; it is issued by the next [`BlkClient::poll`] (in submission order).
    /// The buffer belongs to the client until the request completes.
    pub fn submit(&mut self, request: Request, user: u64) -> Result<(), SubmitError> {
        if request.op != Op::Flush {
            let len = request.len as usize;
            if (request.offset as usize) < DATA_START
                || len == 0
                || !len.is_multiple_of(SECTOR_SIZE)
                || !self.data.contains(request.offset as usize, len)
            {
                return Err(SubmitError::BadBuffer);
            }
        }
        let slot = self
            .entries
            .iter()
            .position(Option::is_none)
            .ok_or(SubmitError::Full)?;
        self.entries[slot] = Some(Entry {
            request,
            user,
            seq: self.next_seq,
            sent: false,
            issued: false,
        });
        self.next_seq += 1;
        self.stats.submitted += 1;
        Ok(())
    }

    /// Does all there is to do: handshake and resync with the driver, completions (each
    /// checked, then given to `done`), (re-)issues in order. Returns with the response
    /// queue's "signal me" flag armed, so the PD may then wait.
    pub fn poll(
        &mut self,
        mut done: impl FnMut(Completion),
    ) -> Result<ClientActivity, ClientError> {
        let mut act = ClientActivity::default();
        loop {
            let acked = self.ring.server_generation();
            let r = self.ring.poll();
            if self.ring.server_generation() != acked {
                // We acknowledged a new driver generation: it waits for that.
                act.notify = true;
            }
            if let Some(ev) = r.map_err(ClientError::Ring)? {
                act.notify = true;
                match ev {
                    ClientEvent::Connected { .. } => {}
                    ClientEvent::ServerRestarted { .. } => self.stats.driver_restarts += 1,
                    ClientEvent::Completed(d) => self.complete(d, &mut done, &mut act)?,
                    ClientEvent::Reclaimed(d) => {
                        if let Some(Some(e)) = self.entries.get_mut(d.id as usize) {
                            e.sent = false;
                        }
                    }
                }
                continue;
            }
            if self.issue(&mut act)? {
                continue;
            }
            match self.ring.prepare_wait() {
                Ok(Wait::Block) => return Ok(act),
                Ok(Wait::Retry) => continue,
                Err(e) => return Err(ClientError::Ring(e)),
            }
        }
    }

    fn complete(
        &mut self,
        d: Descriptor,
        done: &mut impl FnMut(Completion),
        act: &mut ClientActivity,
    ) -> Result<(), ClientError> {
        // lib/ring checked that the id was outstanding on the ring.
        let Some(Some(e)) = self.entries.get_mut(d.id as usize) else {
            return Err(ClientError::Ring(Error::NotInService { id: d.id }));
        };
        let code = self
            .data
            .read_u32(d.id as usize * CMD_BYTES + REC_STATUS)
            .unwrap_or(Status::PENDING);
        let status = Status::from_code(code);
        let want = if e.request.op == Op::Flush {
            0
        } else {
            e.request.len
        };
        let bad = match status {
            None => true,
            Some(Status::Ok) => d.len != want,
            Some(_) => false,
        };
        if bad {
            // Keep it: it goes out again (to this driver now, and to its successor if the
            // PD's report gets it restarted).
            e.sent = false;
            return Err(ClientError::BadCompletion {
                id: d.id,
                status: code,
                len: d.len,
            });
        }
        let c = Completion {
            user: e.user,
            request: e.request,
            status: status.unwrap_or(Status::IoError),
        };
        self.entries[d.id as usize] = None;
        self.stats.completed += 1;
        act.completed += 1;
        done(c);
        Ok(())
    }

    /// Issues every request not on the ring, oldest first; whether any was.
    fn issue(&mut self, act: &mut ClientActivity) -> Result<bool, ClientError> {
        let mut any = false;
        while self.ring.is_connected() {
            let Some(id) = (0..IDS)
                .filter(|&i| self.entries[i].is_some_and(|e| !e.sent))
                .min_by_key(|&i| self.entries[i].map_or(u64::MAX, |e| e.seq))
            else {
                break;
            };
            let Some(e) = self.entries[id] else { break };
            let r = e.request;
            let rec = id * CMD_BYTES;
            self.data.write_u32(rec + REC_OP, r.op.code());
            self.data.write_u64(rec + REC_SECTOR, r.sector);
            self.data.write_u32(rec + REC_STATUS, Status::PENDING);
            let (offset, len) = if r.op == Op::Flush {
                (0, 0)
            } else {
                (r.offset, r.len)
            };
            match self.ring.submit(id as u32, offset, len) {
                Ok(signal) => act.notify |= signal == Signal::Notify,
                Err(Error::Full | Error::NotConnected) => break,
                Err(e) => return Err(ClientError::Ring(e)),
            }
            if e.issued {
                self.stats.reissued += 1;
            }
            self.entries[id] = Some(Entry {
                sent: true,
                issued: true,
                ..e
            });
            any = true;
        }
        Ok(any)
    }
}
