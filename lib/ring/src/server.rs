//! The server end of a connection (a driver, a VMM back end): takes
//! requests, answers them, and on a client restart hands back whatever it
//! was holding.

use crate::control::{Control, Generations, Role, attach};
use crate::descriptor::{Descriptor, MAX_ID};
use crate::error::{Corruption, Error, LayoutError, PushError};
use crate::queue::{Consumer, Producer, Signal, Wait};
use crate::region::SharedRegion;

/// What [`Server::poll`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// Handshake done with this client generation.
    Connected { client_generation: u32 },
    /// A validated request; answer it with [`Server::respond`].
    Request(Descriptor),
    /// The client restarted. `Abandoned` events follow, then `Connected`.
    ClientRestarted { generation: u32 },
    /// A request of the dead client. Its buffer no longer belongs to us:
    /// cancel or finish the work, but touch the buffer no more.
    /// `started`: we had taken it (it may have had effects); otherwise it
    /// was still queued and never seen.
    Abandoned { request: Descriptor, started: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Fresh image: decide whether the client survived us.
    Starting,
    /// Waiting for the client to acknowledge our generation.
    Attaching,
    Connected,
    /// The client broke the protocol; nothing more is read from it.
    Poisoned(Corruption),
    /// Client restarted: handing back the requests we had taken.
    Abandoning {
        new_generation: u32,
        next: usize,
        drain_queued: bool,
    },
    /// Then the ones still queued (unless the client was poisoned).
    DrainingQueued {
        new_generation: u32,
    },
}

/// Server endpoint with an id table of `IDS` entries (ids `0..IDS`).
pub struct Server<const IDS: usize> {
    control: Control,
    generation: u32,
    /// Client generation we acknowledged; 0 = none yet.
    client_generation: u32,
    requests: Consumer,
    responses: Producer,
    data_len: usize,
    state: State,
    in_service: [Option<Descriptor>; IDS],
    /// Per id, our last response and the response-queue index it went to: a private copy,
    /// so what the client never read can be told after it died without trusting the
    /// slots it could scribble on.
    responded: [Option<(u32, Descriptor)>; IDS],
    /// The responses the last dead client never consumed, oldest first ([`Server::take_unread`]).
    unread: [Option<Descriptor>; IDS],
    unread_next: usize,
    _data: SharedRegion,
}

impl<const IDS: usize> Server<IDS> {
    /// Starts (or restarts) the server on a connection: publishes our
    /// generation. Then call [`Server::poll`] until `Connected`.
    pub fn new(
        rings: SharedRegion,
        data: SharedRegion,
        capacity: u32,
        generations: Generations,
    ) -> Result<Self, LayoutError> {
        const { assert!(IDS <= MAX_ID as usize + 1, "ids must fit a descriptor") };
        let parts = attach(rings, &data, capacity, Role::Server, generations)?;
        Ok(Self {
            control: parts.control,
            generation: parts.generation,
            client_generation: 0,
            requests: parts.incoming,
            responses: parts.outgoing,
            data_len: parts.data_len,
            state: State::Starting,
            in_service: [None; IDS],
            responded: [None; IDS],
            unread: [None; IDS],
            unread_next: 0,
            _data: data,
        })
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The client generation we are (or were last) connected to; 0 = none.
    pub fn client_generation(&self) -> u32 {
        self.client_generation
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Requests taken and not yet answered.
    pub fn in_service(&self) -> usize {
        self.in_service.iter().filter(|s| s.is_some()).count()
    }

    /// Drives everything: handshake, requests, client-restart handling.
    /// Returns `Ok(None)` when there is nothing to do.
    ///
    /// Most polls find nothing (a PD polls each of its links until none moves, at every
    /// notification), and the whole state machine's answer to that, through its event and
    /// error enums, cost the virtualiser about 220 instructions a queue on aarch64
    /// (docs/benchmarks.md, "Idle polls"). Connected, with a client whose word still holds
    /// the generation we know (so it did not restart: the full poll's first question),
    /// nothing published since the last look is that answer in two loads of shared words,
    /// and the next request is taken here too, where the caller's match sees the event
    /// built; the handshake, restarts and a poisoned link are [`Server::poll_busy`]'s.
    #[inline]
    pub fn poll(&mut self) -> Result<Option<ServerEvent>, Error> {
        if matches!(self.state, State::Connected) && self.control.peer_still(self.client_generation)
        {
            if self.requests.nothing_new() {
                return Ok(None);
            }
            // The client did not restart (the full poll's first question): its next
            // request, here too, so that the event is built where the caller matches it.
            return self.next_request();
        }
        self.poll_busy()
    }

    /// Connected, the client's restart ruled out: its next request, validated.
    #[inline]
    fn next_request(&mut self) -> Result<Option<ServerEvent>, Error> {
        match self.requests.pop() {
            Ok(None) => Ok(None),
            Ok(Some(d)) => match self.validate(d) {
                Ok(()) => {
                    self.in_service[d.id as usize] = Some(d);
                    Ok(Some(ServerEvent::Request(d)))
                }
                Err(c) => Err(self.poison(c)),
            },
            Err(c) => Err(self.poison(c)),
        }
    }

    /// [`Server::poll`] past its quiet case: the whole state machine.
    #[inline(never)]
    fn poll_busy(&mut self) -> Result<Option<ServerEvent>, Error> {
        match self.state {
            State::Starting => {
                // Whatever the client's word holds before it matches the authority is not
                // its claim yet (it may be restarting too): wait for it.
                let Some(c) = self.control.peer_moved(0).map_err(Error::Corrupt)? else {
                    return Ok(None);
                };
                if c == self.control.own_previous_ack() {
                    // Our previous incarnation was connected to this client,
                    // which survived it: its queues hold its in-flight state,
                    // and it resets them itself after draining. Hands off.
                    // (The client can write that ack word too; lying about it
                    // only spoils its own session, everything is validated.)
                    self.client_generation = c;
                } else {
                    // The client is new too (or never connected): nobody else
                    // will clear what earlier sessions left.
                    self.reset_for(c);
                }
                self.state = State::Attaching;
                self.poll_attaching()
            }
            State::Attaching => self.poll_attaching(),
            State::Connected => {
                if let Some(ev) = self.check_client_restart()? {
                    return Ok(Some(ev));
                }
                self.next_request()
            }
            State::Poisoned(c) => match self.check_client_restart()? {
                Some(ev) => Ok(Some(ev)),
                None => Err(Error::Corrupt(c)),
            },
            State::Abandoning {
                new_generation,
                next,
                drain_queued,
            } => {
                if let Some(i) = (next..IDS).find(|&i| self.in_service[i].is_some()) {
                    let d = self.in_service[i].take();
                    self.state = State::Abandoning {
                        new_generation,
                        next: i + 1,
                        drain_queued,
                    };
                    return Ok(d.map(|request| ServerEvent::Abandoned {
                        request,
                        started: true,
                    }));
                }
                if drain_queued {
                    self.state = State::DrainingQueued { new_generation };
                    return self.poll();
                }
                self.reset_for(new_generation);
                self.poll_attaching()
            }
            State::DrainingQueued { new_generation } => {
                match self.requests.pop().and_then(|d| match d {
                    Some(d) => self.validate(d).map(|()| Some(d)),
                    None => Ok(None),
                }) {
                    Ok(Some(request)) => Ok(Some(ServerEvent::Abandoned {
                        request,
                        started: false,
                    })),
                    // Garbage from the dead client ends the drain: the rest
                    // was never ours and is dropped with the reset.
                    Ok(None) | Err(_) => {
                        self.reset_for(new_generation);
                        self.poll_attaching()
                    }
                }
            }
        }
    }

    fn poll_attaching(&mut self) -> Result<Option<ServerEvent>, Error> {
        // Our own word again, every time: the peer may have scribbled over it, and
        // it waits for the word to say what the authority confirms.
        self.control.publish_generation(self.generation);
        // Ack before generation: the client writes its generation before its
        // ack, so if the ack is new, the generation we read is too.
        let ack = self.control.peer_ack();
        if let Some(c) = self
            .control
            .peer_moved(self.client_generation)
            .map_err(Error::Corrupt)?
        {
            // The client restarted while we were attaching: it is fresh and
            // not using the queues, so clearing them is ours to do.
            self.reset_for(c);
        }
        if ack == self.generation {
            self.state = State::Connected;
            return Ok(Some(ServerEvent::Connected {
                client_generation: self.client_generation,
            }));
        }
        Ok(None)
    }

    fn check_client_restart(&mut self) -> Result<Option<ServerEvent>, Error> {
        let c = match self.control.peer_moved(self.client_generation) {
            Ok(None) => return Ok(None),
            Ok(Some(c)) => c,
            Err(e) => return Err(self.poison(e)),
        };
        self.snapshot_unread();
        self.state = State::Abandoning {
            new_generation: c,
            next: 0,
            // A corrupt client's queue is not worth reading.
            drain_queued: !matches!(self.state, State::Poisoned(_)),
        };
        Ok(Some(ServerEvent::ClientRestarted { generation: c }))
    }

    /// Before the reset wipes the response queue: which of our responses the dead client
    /// never consumed. Only a connected, honest session counts: a poisoned client's `head`
    /// is not worth believing, and giving its responses again could duplicate them.
    fn snapshot_unread(&mut self) {
        self.unread = [None; IDS];
        self.unread_next = 0;
        if self.state != State::Connected {
            return;
        }
        // Validated: only forward from what we saw, never past our tail.
        let Ok(head) = self.responses.consumer_head() else {
            return;
        };
        let tail = self.responses.tail();
        let pending = tail.wrapping_sub(head);
        let mut n = 0;
        // Oldest first: by distance from the consumer's head.
        for k in 0..pending {
            let at = head.wrapping_add(k);
            if let Some((_, d)) = self.responded.iter().flatten().find(|(p, _)| *p == at)
                && n < IDS
            {
                self.unread[n] = Some(*d);
                n += 1;
            }
        }
    }

    /// The next response (oldest first) that the client which just restarted had not
    /// consumed when it died: the work is done and its result sits in the buffer the
    /// descriptor names, but nobody read it. Valid from the `ClientRestarted` event until the
    /// next client restart; the buffer belongs to the new client once it posts it again,
    /// so copy the result out before answering any of the new client's requests.
    pub fn take_unread(&mut self) -> Option<Descriptor> {
        let d = self.unread.get_mut(self.unread_next)?.take()?;
        self.unread_next += 1;
        Some(d)
    }

    /// Empties both queues and acknowledges the client generation; the new
    /// client touches no queue before it sees this ack.
    fn reset_for(&mut self, c: u32) {
        self.responded = [None; IDS];
        self.requests.reset();
        self.responses.reset();
        self.client_generation = c;
        self.state = State::Attaching;
        self.control.ack(c);
    }

    fn poison(&mut self, c: Corruption) -> Error {
        self.state = State::Poisoned(c);
        Error::Corrupt(c)
    }

    /// A request must name a known, idle id, carry our generation, and
    /// point inside the data region.
    fn validate(&self, d: Descriptor) -> Result<(), Corruption> {
        let slot = self
            .in_service
            .get(d.id as usize)
            .ok_or(Corruption::UnknownId { id: d.id })?;
        if d.tag != self.generation {
            return Err(Corruption::StaleGeneration {
                id: d.id,
                tag: d.tag,
                expected: self.generation,
            });
        }
        d.check_bounds(self.data_len)?;
        if slot.is_some() {
            return Err(Corruption::DuplicateId { id: d.id });
        }
        Ok(())
    }

    /// Answers request `id` with `len` bytes produced (at most its length);
    /// the buffer goes back to the client.
    pub fn respond(&mut self, id: u32, len: u32) -> Result<Signal, Error> {
        match self.state {
            State::Connected => {}
            State::Poisoned(c) => return Err(Error::Corrupt(c)),
            _ => return Err(Error::NotConnected),
        }
        if self.control.peer_generation() != self.client_generation {
            // Let `poll` hand the request back as abandoned.
            return Err(Error::NotConnected);
        }
        let req = self
            .in_service
            .get(id as usize)
            .ok_or(Error::IdOutOfRange { id })?
            .ok_or(Error::NotInService { id })?;
        if len > req.len {
            return Err(Error::BadBuffer {
                offset: req.offset,
                len,
            });
        }
        let d = Descriptor {
            len,
            tag: self.generation,
            ..req
        };
        let at = self.responses.tail();
        match self.responses.push(d) {
            Ok(()) => {}
            Err(PushError::Full) => return Err(self.full()),
            // Unreachable: ids are below `IDS`, which `new` keeps within `MAX_ID`.
            Err(PushError::IdTooLarge { id }) => return Err(Error::IdOutOfRange { id }),
            Err(PushError::Corrupt(c)) => return Err(self.poison(c)),
        }
        self.in_service[id as usize] = None;
        self.responded[id as usize] = Some((at, d));
        Ok(self.responses.signal_needed())
    }

    /// The response queue looks full. Every response the client has not consumed names an
    /// id it cannot submit again before consuming it, so none of them is in service: an
    /// honest client's `head` is never more than `IDS - in_service` behind our `tail`. A
    /// `head` fallen back to a value we saw before passes the producer's checks and would
    /// hold our answers back for good; found here, it is the client's corruption.
    fn full(&mut self) -> Error {
        let head = match self.responses.consumer_head() {
            Ok(head) => head,
            Err(c) => return self.poison(c),
        };
        let tail = self.responses.tail();
        let bound = IDS - self.in_service();
        if tail.wrapping_sub(head) as usize > bound {
            return self.poison(Corruption::IndexBehind {
                index: crate::Index::Head,
                observed: head,
                proven: tail.wrapping_sub(bound as u32),
            });
        }
        Error::Full
    }

    /// Call before blocking: arms the request queue's signal flag and
    /// re-checks. A client restart is announced by the monitor.
    pub fn prepare_wait(&mut self) -> Result<Wait, Error> {
        match self.state {
            State::Connected => self.requests.prepare_wait().map_err(|c| self.poison(c)),
            State::Poisoned(c) => Err(Error::Corrupt(c)),
            State::Starting | State::Attaching => Ok(Wait::Block),
            State::Abandoning { .. } | State::DrainingQueued { .. } => Ok(Wait::Retry),
        }
    }
}
