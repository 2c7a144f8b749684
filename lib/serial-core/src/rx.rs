//! The receiving client's side: keeps empty buffers posted to the driver and
//! hands over what comes back filled.

use axolotl_ring::{ClientEvent, Error, Generations, LayoutError, SharedRegion, Signal, Wait};

use axolotl_ring::DataRegion;

/// Counters for the PD to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Bytes received.
    pub bytes: u64,
    /// Buffers that came back filled.
    pub buffers: u64,
    /// Posted buffers handed back empty by a driver restart.
    pub reclaimed: u64,
    /// Driver restarts seen.
    pub driver_restarts: u64,
}

/// What one [`RxClient::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct RxActivity {
    /// Notify the driver (it asked to be woken, or the handshake moved).
    pub notify: bool,
    /// Bytes handed to the sink.
    pub bytes: usize,
    /// The sink refused bytes ([`RxClient::poll_with`]): they wait in the client (their
    /// buffer stays off the ring) until the next poll finds room for them.
    pub pending: bool,
}

/// Where [`RxClient::poll_whole`] puts received bytes.
pub trait WholeSink {
    /// Bytes [`WholeSink::put`] can take now.
    fn room(&self) -> usize;
    /// Takes `bytes`, no more than [`WholeSink::room`] said.
    fn put(&mut self, bytes: &[u8]);
}

/// A sink as [`RxClient::poll_gated`] drives it: whether a completion may leave the ring,
/// and how much of a chunk it took.
trait Gated {
    fn may_take(&self) -> bool;
    fn take(&mut self, chunk: &[u8]) -> usize;
}

/// `poll_with`'s sink: every completion may be taken, the sink takes a prefix.
struct Prefix<F>(F);

impl<F: FnMut(&[u8]) -> usize> Gated for Prefix<F> {
    fn may_take(&self) -> bool {
        true
    }

    fn take(&mut self, chunk: &[u8]) -> usize {
        (self.0)(chunk)
    }
}

/// `poll_whole`'s: a completion is taken only with a whole buffer's room, then all of it.
struct Whole<'a, S> {
    sink: &'a mut S,
    need: usize,
}

impl<S: WholeSink> Gated for Whole<'_, S> {
    fn may_take(&self) -> bool {
        self.sink.room() >= self.need
    }

    fn take(&mut self, chunk: &[u8]) -> usize {
        self.sink.put(chunk);
        chunk.len()
    }
}

/// A completed buffer the sink has not taken whole yet.
#[derive(Clone, Copy, Debug)]
struct Held {
    offset: u32,
    len: u32,
    /// Bytes of it already taken by the sink.
    done: u32,
}

/// The client of the driver's receive connection. The data region is cut
/// into `IDS` equal buffers (buffer `id` at `id * buffer_len`), all kept
/// posted; each comes back holding the bytes received into it, which
/// [`RxClient::poll`] passes to a sink in arrival order, and is posted again.
///
/// Across a driver restart, buffers the old driver completed are delivered;
/// the others come back empty (`Reclaimed`) and are re-posted. Bytes the
/// dead driver had taken from the UART into a buffer it never completed are
/// lost: receive is at-most-once, in order, never duplicated.
pub struct RxClient<const IDS: usize> {
    ring: axolotl_ring::Client<IDS>,
    data: DataRegion,
    buffer_len: u32,
    posted: [bool; IDS],
    held: Option<Held>,
    stats: RxStats,
}

impl<const IDS: usize> RxClient<IDS> {
    pub fn new(
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
    ) -> Result<Self, LayoutError> {
        let buffer_len = u32::try_from(data.len() / IDS.max(1)).unwrap_or(u32::MAX);
        if buffer_len == 0 {
            return Err(LayoutError::TooSmall {
                needed: IDS,
                len: data.len(),
            });
        }
        // SAFETY: the view lives next to the ring endpoint owning `data`.
        let view = unsafe { DataRegion::alias(&data) };
        let ring = axolotl_ring::Client::new(rings, data, capacity, generations)?;
        Ok(Self {
            ring,
            data: view,
            buffer_len,
            posted: [false; IDS],
            held: None,
            stats: RxStats::default(),
        })
    }

    pub fn stats(&self) -> RxStats {
        self.stats
    }

    pub fn is_connected(&self) -> bool {
        self.ring.is_connected()
    }

    /// The PD generation of the driver this client is (or was last) connected to, `None`
    /// before the first: after an error, the incarnation the error was found against.
    pub fn driver_generation(&self) -> Option<u32> {
        axolotl_ring::pd_generation(self.ring.server_generation())
    }

    /// Does all there is to do: handshake and resync, filled buffers (their
    /// bytes go to `sink`, in chunks, in order), re-posting. Returns with the
    /// "signal me" flag armed. A ring error (the driver is corrupt) repeats
    /// until the driver restarts.
    pub fn poll(&mut self, mut sink: impl FnMut(&[u8])) -> Result<RxActivity, Error> {
        self.poll_with(|chunk| {
            sink(chunk);
            chunk.len()
        })
    }

    /// [`RxClient::poll`] with back-pressure: `sink` returns how many bytes
    /// of the chunk it took (a prefix). Once it takes less than offered, the
    /// rest stays in its buffer, which is not posted again, and no further
    /// completion is taken from the ring; the poll returns with
    /// [`RxActivity::pending`] set and the next one starts with those bytes.
    /// Nothing is dropped or repeated. While bytes wait, the driver runs
    /// short of posted buffers and leaves further input in the UART (flow
    /// control, `docs/serial.md`). A driver restart is only seen once the
    /// held buffer is drained: the driver cannot write it (it is not posted).
    pub fn poll_with(&mut self, sink: impl FnMut(&[u8]) -> usize) -> Result<RxActivity, Error> {
        self.poll_gated(&mut Prefix(sink))
    }

    /// Whether received bytes wait for this client: held back by its sink, or completed on
    /// the ring and not yet polled. A client that keeps input waiting while nothing else
    /// holds it up has stalled on its own (control-pd's heartbeat watch); the driver did its
    /// part.
    pub fn input_waiting(&mut self) -> bool {
        self.held.is_some() || self.ring.has_completions()
    }

    /// The length of every buffer this client posts: the most one completion brings.
    pub fn buffer_len(&self) -> usize {
        self.buffer_len as usize
    }

    /// [`RxClient::poll`] for a sink that must take each completed buffer whole, because
    /// once it is off the ring its bytes live only in the sink (a VMM's device state, which
    /// survives the VMM's restart where this client's memory does not): a completion is
    /// taken only while the sink has [`RxClient::buffer_len`] bytes of room, so nothing
    /// waits in the client. Else the poll returns with [`RxActivity::pending`] set, the
    /// completion left on the ring (for the driver, still unread: a restarted client gets
    /// it from the driver), and the next poll, once the sink made room, goes on.
    pub fn poll_whole(&mut self, sink: &mut impl WholeSink) -> Result<RxActivity, Error> {
        let need = self.buffer_len as usize;
        self.poll_gated(&mut Whole { sink, need })
    }

    /// [`RxClient::poll_with`], taking a completion off the ring only while the sink's
    /// gate says so.
    fn poll_gated(&mut self, sink: &mut impl Gated) -> Result<RxActivity, Error> {
        let mut act = RxActivity::default();
        loop {
            if self.held.is_some() {
                if !self.drain_held(sink, &mut act) {
                    act.pending = true;
                    return Ok(act);
                }
                continue;
            }
            if !sink.may_take() {
                // Not armed for a signal: the caller polls again when the sink has room.
                act.pending = true;
                return Ok(act);
            }
            let acked = self.ring.server_generation();
            let r = self.ring.poll();
            if self.ring.server_generation() != acked {
                act.notify = true;
            }
            if let Some(ev) = r? {
                act.notify = true;
                match ev {
                    ClientEvent::Completed(d) => {
                        // lib/ring checked it names the buffer we posted
                        // and no more bytes than it holds.
                        if let Some(p) = self.posted.get_mut(d.id as usize) {
                            *p = false;
                        }
                        self.stats.buffers += 1;
                        self.held = Some(Held {
                            offset: d.offset,
                            len: d.len,
                            done: 0,
                        });
                    }
                    ClientEvent::Reclaimed(d) => {
                        if let Some(p) = self.posted.get_mut(d.id as usize) {
                            *p = false;
                        }
                        self.stats.reclaimed += 1;
                    }
                    ClientEvent::ServerRestarted { .. } => self.stats.driver_restarts += 1,
                    ClientEvent::Connected { .. } => {}
                }
                continue;
            }
            let mut any = false;
            while self.ring.is_connected() {
                let Some(id) = self.posted.iter().position(|p| !p) else {
                    break;
                };
                let offset = id as u32 * self.buffer_len;
                match self.ring.submit(id as u32, offset, self.buffer_len) {
                    Ok(signal) => act.notify |= signal == Signal::Notify,
                    Err(Error::Full | Error::NotConnected) => break,
                    Err(e) => return Err(e),
                }
                self.posted[id] = true;
                any = true;
            }
            if any {
                continue;
            }
            match self.ring.prepare_wait()? {
                Wait::Block => return Ok(act),
                Wait::Retry => continue,
            }
        }
    }

    /// Offers the held buffer's bytes to `sink`; true once all are taken
    /// (the buffer is free to post again).
    fn drain_held(&mut self, sink: &mut impl Gated, act: &mut RxActivity) -> bool {
        let Some(h) = self.held.as_mut() else {
            return true;
        };
        let mut chunk = [0u8; 64];
        while h.done < h.len {
            let n = chunk.len().min((h.len - h.done) as usize);
            let at = (h.offset as usize).saturating_add(h.done as usize);
            if !self.data.copy_out(at, &mut chunk[..n]) {
                // Checked when the completion was taken; zeros rather than a panic if not.
                chunk[..n].fill(0);
            }
            let took = sink.take(&chunk[..n]).min(n);
            h.done += took as u32;
            act.bytes += took;
            self.stats.bytes += took as u64;
            if took < n {
                return false;
            }
        }
        self.held = None;
        true
    }
}
