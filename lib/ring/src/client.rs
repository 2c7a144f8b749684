//! The client end of a connection: owns the buffers, issues requests, and
//! keeps the outstanding-request table that makes peer restarts lossless.

use crate::control::{Control, Generations, Role, attach};
use crate::descriptor::{Descriptor, MAX_ID};
use crate::error::{Corruption, Error, LayoutError, PushError};
use crate::queue::{Consumer, Producer, Signal, Wait};
use crate::region::SharedRegion;

/// What [`Client::poll`] reports. Every id passed to [`Client::submit`] comes
/// back exactly once, as `Completed` or as `Reclaimed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Handshake done with this server generation; `submit` may be used.
    Connected { server_generation: u32 },
    /// The server answered this request (`len` = bytes it produced).
    Completed(Descriptor),
    /// The server restarted. Its old completions follow as `Completed`, then
    /// every other outstanding request as `Reclaimed`, then `Connected`.
    ServerRestarted { generation: u32 },
    /// The request was in flight when the server restarted and has no
    /// completion: its buffer is ours again. It may or may not have taken
    /// effect; re-issue only if it is idempotent, else report it.
    Reclaimed(Descriptor),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the server to acknowledge our generation.
    Attaching,
    Connected,
    /// The server broke the protocol; nothing more is read from this
    /// server generation.
    Poisoned(Corruption),
    /// Server restarted: taking the completions its old incarnation posted.
    Draining {
        new_generation: u32,
    },
    /// Handing back the outstanding requests that got no completion.
    Reclaiming {
        new_generation: u32,
        next: usize,
    },
}

/// Where a connection stands for its client's end-to-end deadline ([`Client::link_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No server has published a generation yet: nothing to wait for.
    Absent,
    /// Waiting for the server: to acknowledge us, or to be restarted.
    Waiting,
    Connected,
}

/// Client endpoint with an id table of `IDS` entries (ids `0..IDS`).
pub struct Client<const IDS: usize> {
    control: Control,
    generation: u32,
    /// Server generation we acknowledged; 0 = none yet.
    server_generation: u32,
    requests: Producer,
    responses: Consumer,
    data_len: usize,
    state: State,
    outstanding: [Option<Descriptor>; IDS],
    in_flight: usize,
    _data: SharedRegion,
}

impl<const IDS: usize> Client<IDS> {
    /// Starts (or restarts) the client on a connection: publishes our
    /// generation. Then call [`Client::poll`] until `Connected`.
    pub fn new(
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
    ) -> Result<Self, LayoutError> {
        const { assert!(IDS <= MAX_ID as usize + 1, "ids must fit a descriptor") };
        let parts = attach(rings, &data, capacity, Role::Client, generations)?;
        Ok(Self {
            control: parts.control,
            generation: parts.generation,
            server_generation: 0,
            requests: parts.outgoing,
            responses: parts.incoming,
            data_len: parts.data_len,
            state: State::Attaching,
            outstanding: [None; IDS],
            in_flight: 0,
            _data: data,
        })
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The server generation we are (or were last) connected to; 0 = none.
    pub fn server_generation(&self) -> u32 {
        self.server_generation
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// What this connection waits for, as [`crate::Deadline::check_link`] counts it.
    pub fn link_state(&self) -> LinkState {
        match self.state {
            State::Connected => LinkState::Connected,
            // No server incarnation has published itself: it has not started serving (a
            // server still in its own start, which the monitor's heartbeat watches).
            State::Attaching if self.server_generation == 0 => LinkState::Absent,
            // A server that published itself and has not acknowledged us, one we found
            // corrupt (reported, waiting for its restart), or a resync in progress.
            _ => LinkState::Waiting,
        }
    }

    /// Requests submitted and not yet completed or reclaimed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether completions wait on a connected ring for [`Client::poll`] to take them: for a
    /// client's own progress watch (input delivered that it does not take is its stall, not
    /// the server's). Takes nothing; a tail the server corrupted reads as none here and is
    /// found by the next poll.
    pub fn has_completions(&mut self) -> bool {
        self.state == State::Connected && self.responses.len().is_ok_and(|n| n > 0)
    }

    /// Drives everything: handshake, completions, restart detection and
    /// resynchronisation. Returns `Ok(None)` when there is nothing to do.
    ///
    /// Connected, with a server whose word still holds the generation we know, nothing
    /// published since the last look is that answer in two loads of shared words, and the
    /// next completion is taken here (as in [`crate::Server::poll`]); the rest is
    /// [`Client::poll_busy`].
    #[inline]
    pub fn poll(&mut self) -> Result<Option<ClientEvent>, Error> {
        if matches!(self.state, State::Connected) && self.control.peer_still(self.server_generation)
        {
            if self.responses.nothing_new() {
                return Ok(None);
            }
            return self.next_completion();
        }
        self.poll_busy()
    }

    /// Connected, the server's restart ruled out: its next completion, checked.
    #[inline]
    fn next_completion(&mut self) -> Result<Option<ClientEvent>, Error> {
        match self.responses.pop() {
            Ok(None) => Ok(None),
            Ok(Some(d)) => match self.complete(d) {
                Ok(d) => Ok(Some(ClientEvent::Completed(d))),
                Err(c) => Err(self.poison(c)),
            },
            Err(c) => Err(self.poison(c)),
        }
    }

    /// [`Client::poll`] past its quiet case: the whole state machine.
    #[inline(never)]
    fn poll_busy(&mut self) -> Result<Option<ClientEvent>, Error> {
        match self.state {
            State::Attaching => self.poll_attaching(),
            State::Connected => {
                if let Some(ev) = self.check_server_restart()? {
                    return Ok(Some(ev));
                }
                self.next_completion()
            }
            State::Poisoned(c) => match self.check_server_restart()? {
                Some(ev) => Ok(Some(ev)),
                None => Err(Error::Corrupt(c)),
            },
            State::Draining { new_generation } => {
                match self.responses.pop().and_then(|d| match d {
                    Some(d) => self.complete(d).map(Some),
                    None => Ok(None),
                }) {
                    Ok(Some(d)) => Ok(Some(ClientEvent::Completed(d))),
                    // Empty, or the dead server left garbage: the rest of its
                    // queue is not trusted, everything left gets reclaimed.
                    Ok(None) | Err(_) => {
                        self.state = State::Reclaiming {
                            new_generation,
                            next: 0,
                        };
                        self.poll()
                    }
                }
            }
            State::Reclaiming {
                new_generation,
                next,
            } => {
                if let Some(i) = (next..IDS).find(|&i| self.outstanding[i].is_some()) {
                    let d = self.outstanding[i].take();
                    self.in_flight -= 1;
                    self.state = State::Reclaiming {
                        new_generation,
                        next: i + 1,
                    };
                    return Ok(d.map(ClientEvent::Reclaimed));
                }
                self.reset_for(new_generation);
                self.poll_attaching()
            }
        }
    }

    fn poll_attaching(&mut self) -> Result<Option<ClientEvent>, Error> {
        // Our own word again, every time: the peer may have scribbled over it, and
        // it waits for the word to say what the authority confirms.
        self.control.publish_generation(self.generation);
        // Ack before generation: the server writes its generation first, so
        // an ack we see is never older than the generation we then read.
        let ack = self.control.peer_ack();
        if let Some(g) = self
            .control
            .peer_moved(self.server_generation)
            .map_err(Error::Corrupt)?
        {
            // Never reset here: a fresh client's queues are the server's to
            // clear (it sees a client generation it has not acknowledged),
            // and it may still be draining them. A survivor only passes
            // through Attaching after its own reset.
            self.server_generation = g;
            self.control.ack(g);
        }
        // Only a confirmed server generation counts: an ack alone proves nothing.
        if ack == self.generation && self.server_generation != 0 {
            self.state = State::Connected;
            return Ok(Some(ClientEvent::Connected {
                server_generation: self.server_generation,
            }));
        }
        Ok(None)
    }

    /// Starts a resync if the server's generation moved.
    fn check_server_restart(&mut self) -> Result<Option<ClientEvent>, Error> {
        let g = match self.control.peer_moved(self.server_generation) {
            Ok(None) => return Ok(None),
            Ok(Some(g)) => g,
            Err(c) => return Err(self.poison(c)),
        };
        self.state = match self.state {
            // Completions from a server that already broke the protocol
            // aren't trusted: reclaim everything.
            State::Poisoned(_) => State::Reclaiming {
                new_generation: g,
                next: 0,
            },
            _ => State::Draining { new_generation: g },
        };
        Ok(Some(ClientEvent::ServerRestarted { generation: g }))
    }

    /// Empties both queues and acknowledges the new server generation; the
    /// new server touches no queue before it sees this ack.
    fn reset_for(&mut self, g: u32) {
        self.requests.reset();
        self.responses.reset();
        self.server_generation = g;
        self.state = State::Attaching;
        self.control.ack(g);
    }

    fn poison(&mut self, c: Corruption) -> Error {
        self.state = State::Poisoned(c);
        Error::Corrupt(c)
    }

    /// Validates a completion against its request and retires the id.
    fn complete(&mut self, d: Descriptor) -> Result<Descriptor, Corruption> {
        let id = d.id;
        let slot = self
            .outstanding
            .get_mut(id as usize)
            .ok_or(Corruption::UnknownId { id })?;
        let req = slot.ok_or(Corruption::DuplicateCompletion { id })?;
        if d.tag != self.server_generation {
            return Err(Corruption::StaleGeneration {
                id,
                tag: d.tag,
                expected: self.server_generation,
            });
        }
        if d.offset != req.offset || d.len > req.len {
            return Err(Corruption::CompletionMismatch { id });
        }
        *slot = None;
        self.in_flight -= 1;
        Ok(d)
    }

    /// Sends request `id` for the buffer `offset..offset + len` of the data
    /// region, which then belongs to the server until the id comes back.
    pub fn submit(&mut self, id: u32, offset: u32, len: u32) -> Result<Signal, Error> {
        match self.state {
            State::Connected => {}
            State::Poisoned(c) => return Err(Error::Corrupt(c)),
            _ => return Err(Error::NotConnected),
        }
        if self.control.peer_generation() != self.server_generation {
            // Let `poll` run the resync first.
            return Err(Error::NotConnected);
        }
        let slot = self
            .outstanding
            .get(id as usize)
            .ok_or(Error::IdOutOfRange { id })?;
        if slot.is_some() {
            return Err(Error::IdInUse { id });
        }
        let d = Descriptor {
            offset,
            len,
            id,
            tag: self.server_generation,
        };
        if d.check_bounds(self.data_len).is_err() {
            return Err(Error::BadBuffer { offset, len });
        }
        match self.requests.push(d) {
            Ok(()) => {}
            Err(PushError::Full) => return Err(self.full()),
            // Unreachable: ids are below `IDS`, which `new` keeps within `MAX_ID`.
            Err(PushError::IdTooLarge { id }) => return Err(Error::IdOutOfRange { id }),
            Err(PushError::Corrupt(c)) => return Err(self.poison(c)),
        }
        self.outstanding[id as usize] = Some(d);
        self.in_flight += 1;
        Ok(self.requests.signal_needed())
    }

    /// The request queue looks full. An honest server's `head` is never further behind
    /// our `tail` than the requests still outstanding: every one that completed was popped
    /// first (its `head` store happens before its response, which we took). A `head` that
    /// fell back to a value we saw before (a flipped bit) passes the producer's checks and
    /// would keep the queue "full" for good with nothing in flight, the server idle: a
    /// silent stall. Found here, it is the server's corruption like any other.
    fn full(&mut self) -> Error {
        let head = match self.requests.consumer_head() {
            Ok(head) => head,
            Err(c) => return self.poison(c),
        };
        let tail = self.requests.tail();
        if tail.wrapping_sub(head) as usize > self.in_flight {
            return self.poison(Corruption::IndexBehind {
                index: crate::Index::Head,
                observed: head,
                proven: tail.wrapping_sub(self.in_flight as u32),
            });
        }
        Error::Full
    }

    /// Call before blocking: arms the response queue's signal flag and
    /// re-checks. `Wait::Block` only when nothing can be missed.
    /// (A server restart is announced by the monitor, not by this flag.)
    pub fn prepare_wait(&mut self) -> Result<Wait, Error> {
        match self.state {
            State::Connected => self.responses.prepare_wait().map_err(|c| self.poison(c)),
            State::Poisoned(c) => Err(Error::Corrupt(c)),
            State::Attaching => Ok(Wait::Block),
            State::Draining { .. } | State::Reclaiming { .. } => Ok(Wait::Retry),
        }
    }
}
