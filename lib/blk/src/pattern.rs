//! A client that writes a seeded pseudo-random pattern over the first sectors of a disk,
//! flushes, reads everything back and compares: the storage test's workload
//! (`tests/pds`' `blk-pattern-client`), and what the host compares the image file against.

use crate::client::{BlkClient, ClientActivity, ClientError, Completion};
use crate::{DATA_START, Op, Request, SECTOR_SIZE, Status};

/// Word `k` (0..64) of sector `sector` of the pattern `seed` (splitmix64 of both).
pub fn pattern_word(seed: u64, sector: u64, k: u64) -> u64 {
    let mut z = seed
        ^ sector
            .wrapping_mul(64)
            .wrapping_add(k)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 512 bytes of `sector` in the pattern `seed` (words little-endian).
pub fn pattern_sector(seed: u64, sector: u64, out: &mut [u8; SECTOR_SIZE]) {
    for (k, w) in out.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&pattern_word(seed, sector, k as u64).to_le_bytes());
    }
}

/// What [`PatternClient::poll_with`] tells its caller as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternEvent {
    /// Completions were taken from the ring.
    Completed,
    /// The driver restarted: what it held is re-issued. Told after `Completed` when one
    /// round saw both (the completions count as before the restart: a pause measured from
    /// them is never too short).
    DriverRestarted,
    /// Requests were published: notify the driver.
    Notify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Writing,
    Flushing,
    Reading,
    Done,
}

/// Counters for the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatternStats {
    pub writes: u64,
    pub reads: u64,
    pub flushes: u64,
    /// Requests that completed with a status other than OK.
    pub failed: u64,
    /// Sectors read back different from the pattern.
    pub mismatched: u64,
}

/// Writes sectors `0..sectors` in requests of `chunk` sectors (buffer `i` of the data area at
/// `DATA_START + i * chunk * 512`, `IDS` in flight), then flushes, then reads them back.
pub struct PatternClient<const IDS: usize> {
    blk: BlkClient<IDS>,
    seed: u64,
    sectors: u64,
    chunk: u32,
    phase: Phase,
    /// Next sector to submit in this phase.
    next: u64,
    /// Buffers in use (bit i).
    busy: u64,
    in_flight: usize,
    stats: PatternStats,
}

impl<const IDS: usize> PatternClient<IDS> {
    /// `None` if the data area cannot hold `IDS` buffers of `chunk` sectors (or `IDS` > 64).
    pub fn new(blk: BlkClient<IDS>, seed: u64, sectors: u64, chunk: u32) -> Option<Self> {
        let need = DATA_START + IDS * chunk as usize * SECTOR_SIZE;
        if IDS > 64 || chunk == 0 || blk.data().len() < need {
            return None;
        }
        Some(Self {
            blk,
            seed,
            sectors,
            chunk,
            phase: Phase::Writing,
            next: 0,
            busy: 0,
            in_flight: 0,
            stats: PatternStats::default(),
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn stats(&self) -> PatternStats {
        self.stats
    }

    pub fn client(&self) -> &BlkClient<IDS> {
        &self.blk
    }

    /// Sectors of the current phase submitted so far.
    pub fn position(&self) -> u64 {
        self.next
    }

    fn buffer(&self, i: usize) -> u32 {
        (DATA_START + i * self.chunk as usize * SECTOR_SIZE) as u32
    }

    /// Submits what the phase allows, polls the client, checks completions; repeats until
    /// nothing more can be done now. The driver is to be notified if the result says so.
    pub fn poll(&mut self) -> Result<ClientActivity, ClientError> {
        let mut notify = false;
        let mut act = self.poll_with(|e| notify |= e == PatternEvent::Notify)?;
        act.notify = notify;
        Ok(act)
    }

    /// As [`poll`](Self::poll), telling `on` as it goes: [`PatternEvent::Completed`] as soon
    /// as completions were taken from the ring (before this client checks them or makes
    /// new data: the time a restart's I/O pause ends, docs/benchmarks.md), and
    /// [`PatternEvent::Notify`] as soon as a round published requests the driver must be
    /// told of (re-issues after a driver restart among them), so that the driver works
    /// while this client makes the next requests' data instead of after. With `Notify`
    /// told, the returned activity's `notify` is always false. [`PatternEvent::DriverRestarted`]
    /// when a round saw the driver's new generation.
    pub fn poll_with(
        &mut self,
        mut on: impl FnMut(PatternEvent),
    ) -> Result<ClientActivity, ClientError> {
        let mut total = ClientActivity::default();
        loop {
            let submitted = self.submit_more();
            let mut done: [Option<Completion>; IDS] = [None; IDS];
            let mut n = 0;
            let restarts = self.blk.stats().driver_restarts;
            let r = self.blk.poll(|c| {
                if n < IDS {
                    done[n] = Some(c);
                }
                n += 1;
            });
            if n > 0 {
                on(PatternEvent::Completed);
            }
            // Before the error, if any: the client has retired these requests and will
            // not give them again, so dropping them would leave their buffers busy and
            // the workload waiting for them for good (the blk campaign's stall after a
            // driver restart: a completion taken, then a corrupt one in the same poll).
            for c in done.iter().flatten() {
                self.complete(*c);
            }
            self.advance();
            let act = r?;
            total.completed += act.completed;
            if self.blk.stats().driver_restarts != restarts {
                on(PatternEvent::DriverRestarted);
            }
            if act.notify {
                on(PatternEvent::Notify);
            }
            if !submitted && n == 0 {
                return Ok(total);
            }
        }
    }

    fn submit_more(&mut self) -> bool {
        let mut any = false;
        match self.phase {
            // One request a call: `poll_with` publishes it (and tells `Notify`) before the
            // next one's data is made, so the driver and device work meanwhile. Making the
            // data of every free slot first held the first request back for the whole
            // batch (about 1 ms for 16 in the storage bench, docs/benchmarks.md).
            Phase::Writing | Phase::Reading if self.next < self.sectors => {
                let Some(i) = (0..IDS).find(|i| self.busy & (1 << i) == 0) else {
                    return false;
                };
                let count = (self.sectors - self.next).min(self.chunk as u64);
                let offset = self.buffer(i);
                let op = if self.phase == Phase::Writing {
                    let mut s = [0u8; SECTOR_SIZE];
                    for k in 0..count {
                        pattern_sector(self.seed, self.next + k, &mut s);
                        self.blk
                            .data()
                            .copy_in(offset as usize + k as usize * SECTOR_SIZE, &s);
                    }
                    Op::Write
                } else {
                    Op::Read
                };
                let r = Request {
                    op,
                    sector: self.next,
                    offset,
                    len: count as u32 * SECTOR_SIZE as u32,
                };
                if self.blk.submit(r, i as u64).is_err() {
                    return false;
                }
                self.busy |= 1 << i;
                self.in_flight += 1;
                self.next += count;
                any = true;
            }
            Phase::Flushing if self.in_flight == 0 => {
                let r = Request {
                    op: Op::Flush,
                    sector: 0,
                    offset: 0,
                    len: 0,
                };
                if self.blk.submit(r, u64::MAX).is_ok() {
                    self.in_flight += 1;
                    any = true;
                }
            }
            _ => {}
        }
        any
    }

    fn complete(&mut self, c: Completion) {
        self.in_flight -= 1;
        if c.status != Status::Ok {
            self.stats.failed += 1;
        }
        match c.request.op {
            Op::Flush => {
                self.stats.flushes += 1;
                return;
            }
            Op::Write => self.stats.writes += 1,
            Op::Read => {
                self.stats.reads += 1;
                if c.status == Status::Ok {
                    let mut want = [0u8; SECTOR_SIZE];
                    let mut got = [0u8; SECTOR_SIZE];
                    for k in 0..(c.request.len as usize / SECTOR_SIZE) {
                        let sector = c.request.sector + k as u64;
                        pattern_sector(self.seed, sector, &mut want);
                        self.blk
                            .data()
                            .copy_out(c.request.offset as usize + k * SECTOR_SIZE, &mut got);
                        if got != want {
                            self.stats.mismatched += 1;
                        }
                    }
                }
            }
        }
        if let Some(i) = usize::try_from(c.user).ok().filter(|&i| i < IDS) {
            self.busy &= !(1 << i);
        }
    }

    fn advance(&mut self) {
        match self.phase {
            Phase::Writing if self.next >= self.sectors && self.in_flight == 0 => {
                self.phase = Phase::Flushing;
            }
            Phase::Flushing if self.stats.flushes > 0 && self.in_flight == 0 => {
                self.phase = Phase::Reading;
                self.next = 0;
            }
            Phase::Reading if self.next >= self.sectors && self.in_flight == 0 => {
                self.phase = Phase::Done;
            }
            _ => {}
        }
    }
}
