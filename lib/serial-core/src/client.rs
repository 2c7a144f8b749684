//! The client PD's side: numbered messages, submitted, completed, checked.

use axolotl_ring::{ClientEvent, Error, Generations, LayoutError, SharedRegion, Signal, Wait};

use axolotl_ring::DataRegion;

/// Bytes of the data region each message buffer takes: buffer `id` is at
/// `id * MSG_SLOT`. Holds `"<name> <seq>\n"` for names up to [`MAX_NAME`].
pub const MSG_SLOT: usize = 32;
/// Longest client name.
pub const MAX_NAME: usize = MSG_SLOT - 12;

/// The completion stream broke its promise: `got` completed when `expected`
/// was next. Each seq must complete exactly once, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqError {
    pub expected: u32,
    pub got: u32,
}

/// What can go wrong for a [`SeqClient`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqClientError {
    /// A completion out of order (or lost, or duplicated).
    Seq(SeqError),
    /// A completion that says fewer bytes went out than the message has.
    Short { seq: u32, len: u32, sent: u32 },
    /// lib/ring found the driver corrupt (sticky until it restarts): report
    /// it to the monitor. Other ring errors are bugs here.
    Ring(Error),
}

/// Construction failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqConfigError {
    Layout(LayoutError),
    /// Empty, longer than [`MAX_NAME`], or containing a space or newline.
    BadName,
    /// The data region cannot hold `IDS` message buffers.
    DataTooSmall {
        needed: usize,
        len: usize,
    },
}

/// Counters for the PD to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqStats {
    /// Messages submitted for the first time.
    pub sent: u64,
    /// Messages completed (each seq once).
    pub completed: u64,
    /// Re-submissions of messages the driver handed back on a restart.
    pub resubmitted: u64,
    /// Driver restarts seen (server generation changes after the first).
    pub driver_restarts: u64,
}

/// What one [`SeqClient::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ClientActivity {
    /// Notify the driver (it asked to be woken, or the handshake moved).
    pub notify: bool,
    /// Seqs completed in this call: `first_completed..first_completed + completed`.
    pub first_completed: u32,
    pub completed: u32,
}

/// A client sending `"<name> <seq>\n"` with seq = 0, 1, 2, ... and checking
/// that every seq completes exactly once, in order, across driver restarts.
///
/// At most `window` (≤ `IDS`) messages are in flight. When the driver
/// restarts, lib/ring first delivers the completions the old driver posted,
/// then hands back every other in-flight message (`Reclaimed`); the client
/// then resubmits those, lowest seq first, before any new one. Writing a
/// message is idempotent enough for a console: a message the old driver had
/// partly or wholly put in the FIFO goes out again, so the wire is
/// at-least-once while the completion stream stays exactly-once.
pub struct SeqClient<const IDS: usize> {
    ring: axolotl_ring::Client<IDS>,
    data: DataRegion,
    name: [u8; MAX_NAME],
    name_len: usize,
    window: usize,
    limit: Option<u32>,
    /// Next seq to submit.
    next: u32,
    /// Seqs below this were submitted at least once.
    high_water: u32,
    /// Next seq to complete.
    expected: u32,
    /// id -> (seq, message length) in flight.
    slots: [Option<(u32, u32)>; IDS],
    stats: SeqStats,
}

impl<const IDS: usize> SeqClient<IDS> {
    /// Starts the client on its connection to the driver. `limit`: stop
    /// after seqs `0..limit` (`None`: forever). Then call [`SeqClient::poll`].
    pub fn new(
        name: &str,
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
        window: usize,
        limit: Option<u32>,
    ) -> Result<Self, SeqConfigError> {
        let bytes = name.as_bytes();
        if bytes.is_empty()
            || bytes.len() > MAX_NAME
            || bytes.iter().any(|&b| b == b' ' || b == b'\n')
        {
            return Err(SeqConfigError::BadName);
        }
        let needed = IDS * MSG_SLOT;
        if data.len() < needed {
            return Err(SeqConfigError::DataTooSmall {
                needed,
                len: data.len(),
            });
        }
        // SAFETY: the view lives next to the ring endpoint owning `data`.
        let view = unsafe { DataRegion::alias(&data) };
        let ring = axolotl_ring::Client::new(rings, data, capacity, generations)
            .map_err(SeqConfigError::Layout)?;
        let mut n = [0; MAX_NAME];
        n[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            ring,
            data: view,
            name: n,
            name_len: bytes.len(),
            window: window.min(IDS).max(1),
            limit,
            next: 0,
            high_water: 0,
            expected: 0,
            slots: [None; IDS],
            stats: SeqStats::default(),
        })
    }

    pub fn stats(&self) -> SeqStats {
        self.stats
    }

    /// The next seq expected to complete (= how many have completed).
    pub fn expected(&self) -> u32 {
        self.expected
    }

    /// All `limit` messages completed.
    pub fn is_done(&self) -> bool {
        self.limit.is_some_and(|n| self.expected >= n)
    }

    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_connected(&self) -> bool {
        self.ring.is_connected()
    }

    /// The connection for a deadline ([`axolotl_ring::Deadline::check_link`]).
    pub fn link_state(&self) -> axolotl_ring::LinkState {
        self.ring.link_state()
    }

    /// The PD generation of the driver this client is (or was last) connected to, `None`
    /// before the first: after an error, the incarnation the error was found against.
    pub fn driver_generation(&self) -> Option<u32> {
        axolotl_ring::pd_generation(self.ring.server_generation())
    }

    /// The bytes of message `seq` (what the wire must show).
    pub fn message(&self, seq: u32, out: &mut [u8; MSG_SLOT]) -> usize {
        format_message(&self.name[..self.name_len], seq, out)
    }

    /// Does all there is to do: handshake and resync with the driver,
    /// completions (checked), submissions up to the window. Returns with the
    /// response queue's "signal me" flag armed, so the PD may then wait.
    /// On an error the PD reports it; calling `poll` again continues (a
    /// ring corruption repeats until the driver restarts).
    pub fn poll(&mut self) -> Result<ClientActivity, SeqClientError> {
        let mut act = ClientActivity {
            first_completed: self.expected,
            ..ClientActivity::default()
        };
        loop {
            let acked = self.ring.server_generation();
            let r = self.ring.poll();
            if self.ring.server_generation() != acked {
                // We acknowledged a new driver generation: it waits for that.
                act.notify = true;
            }
            if let Some(ev) = r.map_err(SeqClientError::Ring)? {
                self.handle(ev, &mut act)?;
                continue;
            }
            if self.submit_more(&mut act)? {
                continue;
            }
            match self.ring.prepare_wait() {
                Ok(Wait::Block) => return Ok(act),
                Ok(Wait::Retry) => continue,
                Err(e) => return Err(SeqClientError::Ring(e)),
            }
        }
    }

    fn handle(&mut self, ev: ClientEvent, act: &mut ClientActivity) -> Result<(), SeqClientError> {
        act.notify = true;
        match ev {
            ClientEvent::Connected { .. } => {
                // Nothing is in flight here (first connection, or everything
                // was completed or reclaimed): resubmit from the oldest seq
                // not completed.
                self.next = self.expected;
            }
            ClientEvent::ServerRestarted { .. } => {
                self.stats.driver_restarts += 1;
            }
            ClientEvent::Completed(d) => {
                // lib/ring checked the id is outstanding; the table agrees.
                let Some((seq, len)) = self.slots.get_mut(d.id as usize).and_then(Option::take)
                else {
                    return Err(SeqClientError::Ring(Error::NotInService { id: d.id }));
                };
                if seq != self.expected {
                    return Err(SeqClientError::Seq(SeqError {
                        expected: self.expected,
                        got: seq,
                    }));
                }
                if d.len != len {
                    return Err(SeqClientError::Short {
                        seq,
                        len,
                        sent: d.len,
                    });
                }
                self.expected += 1;
                self.stats.completed += 1;
                act.completed += 1;
            }
            ClientEvent::Reclaimed(d) => {
                // Resubmitted after `Connected`, from `expected` on.
                if let Some(slot) = self.slots.get_mut(d.id as usize) {
                    *slot = None;
                }
            }
        }
        Ok(())
    }

    /// Submits messages while the window and the limit allow; whether any
    /// was submitted.
    fn submit_more(&mut self, act: &mut ClientActivity) -> Result<bool, SeqClientError> {
        let mut any = false;
        while self.ring.is_connected()
            && self.in_flight() < self.window
            && self.limit.is_none_or(|n| self.next < n)
        {
            let Some(id) = self.slots.iter().position(Option::is_none) else {
                break;
            };
            let seq = self.next;
            let mut msg = [0u8; MSG_SLOT];
            let len = self.message(seq, &mut msg);
            let offset = id * MSG_SLOT;
            // Slots lie inside the region (checked at construction).
            let _ = self.data.copy_in(offset, &msg[..len]);
            match self.ring.submit(id as u32, offset as u32, len as u32) {
                Ok(signal) => {
                    act.notify |= signal == Signal::Notify;
                }
                Err(Error::Full | Error::NotConnected) => break,
                Err(e) => return Err(SeqClientError::Ring(e)),
            }
            self.slots[id] = Some((seq, len as u32));
            if seq < self.high_water {
                self.stats.resubmitted += 1;
            } else {
                self.stats.sent += 1;
                self.high_water = seq + 1;
            }
            self.next += 1;
            any = true;
        }
        Ok(any)
    }
}

/// Writes `"<name> <seq>\n"` into `out`; returns its length.
pub fn format_message(name: &[u8], seq: u32, out: &mut [u8; MSG_SLOT]) -> usize {
    let name = &name[..name.len().min(MAX_NAME)];
    out[..name.len()].copy_from_slice(name);
    let mut n = name.len();
    out[n] = b' ';
    n += 1;
    let mut digits = [0u8; 10];
    let mut k = 0;
    let mut v = seq;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for d in digits[..k].iter().rev() {
        out[n] = *d;
        n += 1;
    }
    out[n] = b'\n';
    n + 1
}
