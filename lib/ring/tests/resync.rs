//! Peer restarts: every request comes back exactly once (completed or
//! reclaimed on the client; answered or abandoned on the server), and honest
//! peers never see a `Corruption`.
// Real-build layout and atomics; the loom build runs only tests/loom.rs.
#![cfg(not(feature = "loom"))]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use axolotl_ring::{
    Client, ClientEvent, Descriptor, Error, Generations, Server, ServerEvent, Signal, Wait,
    ring_region_bytes,
};
use common::*;
use proptest::prelude::*;

const CAP: u32 = 4;
const IDS: usize = 6;
const DATA: usize = 1 << 20;

fn mems() -> (Mem, Mem, Pds) {
    (
        Mem::new(ring_region_bytes(CAP).unwrap()),
        Mem::new(DATA),
        Pds::new(),
    )
}

fn client(r: &Mem, d: &Mem, g: Generations) -> Client<IDS> {
    Client::new(r.region(), d.region(), CAP, g).unwrap()
}

fn server(r: &Mem, d: &Mem, g: Generations) -> Server<IDS> {
    Server::new(r.region(), d.region(), CAP, g).unwrap()
}

/// Polls both until neither has anything to say; returns all events.
fn settle(c: &mut Client<IDS>, s: &mut Server<IDS>) -> (Vec<ClientEvent>, Vec<ServerEvent>) {
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    loop {
        let mut quiet = true;
        while let Some(e) = s.poll().unwrap() {
            se.push(e);
            quiet = false;
        }
        while let Some(e) = c.poll().unwrap() {
            ce.push(e);
            quiet = false;
        }
        if quiet {
            return (ce, se);
        }
    }
}

fn req(offset: u32, len: u32, id: u32, tag: u32) -> Descriptor {
    Descriptor {
        offset,
        len,
        id,
        tag,
    }
}

#[test]
fn first_boot_handshake_in_either_order() {
    for server_first in [false, true] {
        let (r, d, pds) = mems();
        let (mut c, mut s);
        if server_first {
            s = server(&r, &d, pds.server());
            assert_eq!(s.poll(), Ok(None), "no client yet");
            c = client(&r, &d, pds.client());
        } else {
            c = client(&r, &d, pds.client());
            assert_eq!(c.poll(), Ok(None), "no server yet");
            s = server(&r, &d, pds.server());
        }
        let (ce, se) = settle(&mut c, &mut s);
        assert_eq!(
            ce,
            [ClientEvent::Connected {
                server_generation: 1
            }]
        );
        assert_eq!(
            se,
            [ServerEvent::Connected {
                client_generation: 1
            }]
        );
        assert_eq!(c.submit(0, 0, 1), Ok(Signal::Quiet));
    }
}

#[test]
fn signal_flags_across_the_connection() {
    let (r, d, pds) = mems();
    let mut c = client(&r, &d, pds.client());
    let mut s = server(&r, &d, pds.server());
    settle(&mut c, &mut s);
    assert_eq!(s.prepare_wait(), Ok(Wait::Block));
    assert_eq!(
        c.submit(0, 0, 8),
        Ok(Signal::Notify),
        "server asked to be woken"
    );
    assert_eq!(c.submit(1, 8, 8), Ok(Signal::Quiet), "and only once");
    assert_eq!(
        s.prepare_wait(),
        Ok(Wait::Retry),
        "re-check sees the requests"
    );
    assert_eq!(c.prepare_wait(), Ok(Wait::Block));
    assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
    assert_eq!(s.respond(0, 3), Ok(Signal::Notify));
}

#[test]
fn server_restart_completes_posted_and_reclaims_the_rest() {
    let (r, d, _) = mems();
    let pds = Pds::at(0, 9);
    let mut c = client(&r, &d, pds.client());
    let mut s = server(&r, &d, pds.server());
    settle(&mut c, &mut s);
    for id in 0..4 {
        let _ = c.submit(id, id * 100, 100).unwrap();
    }
    // Server takes three, answers one, then dies; request 3 is still queued.
    for _ in 0..3 {
        assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
    }
    let _ = s.respond(1, 42).unwrap();
    // The server dies; its image is reloaded, its memory is gone.
    pds.restart_server(1);
    let mut s = server(&r, &d, pds.server());
    assert_eq!(s.generation(), 11);
    assert_eq!(
        s.poll(),
        Ok(None),
        "the restarted server waits for the survivor"
    );
    let (ce, se) = settle(&mut c, &mut s);
    assert_eq!(
        ce,
        [
            ClientEvent::ServerRestarted { generation: 11 },
            ClientEvent::Completed(req(100, 42, 1, 10)),
            ClientEvent::Reclaimed(req(0, 100, 0, 10)),
            ClientEvent::Reclaimed(req(200, 100, 2, 10)),
            ClientEvent::Reclaimed(req(300, 100, 3, 10)),
            ClientEvent::Connected {
                server_generation: 11
            },
        ]
    );
    assert_eq!(
        se,
        [ServerEvent::Connected {
            client_generation: 1
        }]
    );
    assert_eq!(c.in_flight(), 0);
    // Ids are free again, and the new session works.
    let _ = c.submit(2, 0, 5).unwrap();
    assert_eq!(s.poll(), Ok(Some(ServerEvent::Request(req(0, 5, 2, 11)))));
}

#[test]
fn client_restart_abandons_taken_and_queued_requests() {
    let (r, d, _) = mems();
    let pds = Pds::at(4, 0);
    let mut c = client(&r, &d, pds.client());
    let mut s = server(&r, &d, pds.server());
    settle(&mut c, &mut s);
    for id in 0..3 {
        let _ = c.submit(id, id * 10, 10).unwrap();
    }
    assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
    // The client dies; its image is reloaded, its memory is gone.
    pds.restart_client(1);
    let mut c = client(&r, &d, pds.client());
    assert_eq!(c.generation(), 6);
    assert_eq!(
        s.respond(0, 1),
        Err(Error::NotConnected),
        "no answers to a dead client"
    );
    let (ce, se) = settle(&mut c, &mut s);
    assert_eq!(
        se,
        [
            ServerEvent::ClientRestarted { generation: 6 },
            ServerEvent::Abandoned {
                request: req(0, 10, 0, 1),
                started: true
            },
            ServerEvent::Abandoned {
                request: req(10, 10, 1, 1),
                started: false
            },
            ServerEvent::Abandoned {
                request: req(20, 10, 2, 1),
                started: false
            },
            ServerEvent::Connected {
                client_generation: 6
            },
        ]
    );
    assert_eq!(
        ce,
        [ClientEvent::Connected {
            server_generation: 1
        }]
    );
    assert_eq!(s.in_service(), 0);
}

/// The responses a client never read before it died are handed to the server (oldest
/// first) instead of vanishing with the reset: a receive path can give them to the client's
/// next incarnation. What the client consumed is not among them.
#[test]
fn client_restart_leaves_the_responses_it_never_read() {
    let (r, d, _) = mems();
    let pds = Pds::at(4, 0);
    let mut c = client(&r, &d, pds.client());
    let mut s = server(&r, &d, pds.server());
    settle(&mut c, &mut s);
    for id in 0..4 {
        let _ = c.submit(id, id * 10, 10).unwrap();
    }
    for id in 0..4 {
        assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
        let _ = s.respond(id, id + 1).unwrap();
    }
    // The client reads the first answer, then dies.
    assert_eq!(c.poll(), Ok(Some(ClientEvent::Completed(req(0, 1, 0, 1)))));
    assert_eq!(s.take_unread(), None, "nothing before a restart");
    pds.restart_client(1);
    let mut c = client(&r, &d, pds.client());
    assert_eq!(
        s.poll(),
        Ok(Some(ServerEvent::ClientRestarted { generation: 6 }))
    );
    let unread: Vec<_> = std::iter::from_fn(|| s.take_unread()).collect();
    assert_eq!(
        unread,
        [req(10, 2, 1, 1), req(20, 3, 2, 1), req(30, 4, 3, 1)]
    );
    let (_, se) = settle(&mut c, &mut s);
    assert_eq!(
        se,
        [ServerEvent::Connected {
            client_generation: 6
        }]
    );
    assert_eq!(s.take_unread(), None, "each once");
}

/// A dead client that lied about its progress gets nothing handed on: a `head` past our
/// tail is refused, and so is anything from a client that was already poisoned.
#[test]
fn unread_responses_of_a_lying_client_are_not_believed() {
    for poison_first in [false, true] {
        let (r, d, _) = mems();
        let pds = Pds::at(4, 0);
        let mut c = client(&r, &d, pds.client());
        let mut s = server(&r, &d, pds.server());
        settle(&mut c, &mut s);
        for id in 0..2 {
            let _ = c.submit(id, id * 10, 10).unwrap();
            assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
            let _ = s.respond(id, 1).unwrap();
        }
        if poison_first {
            // A request for an id out of range: the server stops trusting this client.
            let req_q = 128;
            r.write_u32(req_q + Q_SLOTS + 2 * 16 + 8, 99);
            r.write_u32(req_q + Q_TAIL, 3);
            assert!(s.poll().is_err());
        } else {
            // The response queue's head claims more was consumed than was ever sent.
            let resp_q = 128 + axolotl_ring::queue_bytes(CAP).unwrap();
            r.write_u32(resp_q + Q_HEAD, 7);
        }
        pds.restart_client(1);
        let _c = client(&r, &d, pds.client());
        assert!(matches!(
            s.poll(),
            Ok(Some(ServerEvent::ClientRestarted { .. }))
        ));
        assert_eq!(s.take_unread(), None, "poison_first {poison_first}");
    }
}

#[test]
fn both_restart_at_once() {
    let (r, d, pds) = mems();
    let mut c = client(&r, &d, pds.client());
    let mut s = server(&r, &d, pds.server());
    settle(&mut c, &mut s);
    let _ = c.submit(0, 0, 1).unwrap();
    let _ = c.submit(1, 0, 1).unwrap();
    s.poll().unwrap();
    let _ = s.respond(0, 1).unwrap();
    // Both die.
    // Restarted server first sees the old client generation, then the new one.
    pds.restart_server(1);
    pds.restart_client(1);
    let mut s = server(&r, &d, pds.server());
    assert_eq!(s.poll(), Ok(None));
    let mut c = client(&r, &d, pds.client());
    let (ce, se) = settle(&mut c, &mut s);
    assert_eq!(
        ce,
        [ClientEvent::Connected {
            server_generation: 2
        }]
    );
    assert!(se.contains(&ServerEvent::Connected {
        client_generation: 2
    }));
    // Whatever the old session left is gone: a clean, working session.
    assert_eq!(c.poll(), Ok(None));
    let _ = c.submit(1, 0, 7).unwrap();
    assert_eq!(s.poll(), Ok(Some(ServerEvent::Request(req(0, 7, 1, 2)))));
}

// --- random interleavings with restarts ------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Submit(u32),
    ClientPoll,
    ServerPoll,
    Respond(usize),
    RestartServer { explicit_skip: Option<u32> },
    RestartClient { explicit_skip: Option<u32> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..IDS as u32).prop_map(Op::Submit),
        5 => Just(Op::ClientPoll),
        5 => Just(Op::ServerPoll),
        4 => (0usize..IDS).prop_map(Op::Respond),
        1 => prop::option::of(1u32..3).prop_map(|explicit_skip| Op::RestartServer { explicit_skip }),
        1 => prop::option::of(1u32..3).prop_map(|explicit_skip| Op::RestartClient { explicit_skip }),
    ]
}

/// Requests are told apart by a serial carried in `len` (and echoed back).
struct Sim {
    client: Client<IDS>,
    server: Server<IDS>,
    rings: Mem,
    data: Mem,
    /// Declared after the endpoints: they read it until dropped.
    pds: Pds,
    epoch: u32,
    next_serial: u32,
    /// serial -> client incarnation (epoch) that issued it
    issued: HashMap<u32, u32>,
    /// current client's outstanding requests: id -> serial
    live: HashMap<u32, u32>,
    /// serial -> how the current-or-past client got it back
    returned: HashMap<u32, &'static str>,
    /// current server's taken requests: id -> serial
    held: BTreeMap<u32, u32>,
    taken: HashSet<u32>,
    answered: HashSet<u32>,
    /// serials a server finished with (answered or abandoned), exactly once
    server_done: HashSet<u32>,
}

impl Sim {
    fn new() -> Self {
        let (rings, data, pds) = mems();
        let client = client(&rings, &data, pds.client());
        let server = server(&rings, &data, pds.server());
        Sim {
            client,
            server,
            rings,
            data,
            pds,
            epoch: 0,
            next_serial: 1,
            issued: HashMap::new(),
            live: HashMap::new(),
            returned: HashMap::new(),
            held: BTreeMap::new(),
            taken: HashSet::new(),
            answered: HashSet::new(),
            server_done: HashSet::new(),
        }
    }

    fn client_event(&mut self, e: ClientEvent) {
        match e {
            ClientEvent::Connected { .. } | ClientEvent::ServerRestarted { .. } => {}
            ClientEvent::Completed(d) | ClientEvent::Reclaimed(d) => {
                let serial = d.len;
                let completed = matches!(e, ClientEvent::Completed(_));
                if completed {
                    assert!(
                        self.answered.contains(&serial),
                        "completion nobody sent: {d:?}"
                    );
                } else {
                    assert!(
                        !self.answered.contains(&serial),
                        "answered but reclaimed (lost completion): {d:?}"
                    );
                }
                assert_eq!(
                    self.live.remove(&d.id),
                    Some(serial),
                    "not outstanding: {e:?}"
                );
                assert_eq!(d.offset, d.id * 16);
                let how = if completed { "completed" } else { "reclaimed" };
                assert_eq!(
                    self.returned.insert(serial, how),
                    None,
                    "returned twice: {e:?}"
                );
            }
        }
    }

    fn server_event(&mut self, e: ServerEvent) {
        match e {
            ServerEvent::Connected { .. } | ServerEvent::ClientRestarted { .. } => {}
            ServerEvent::Request(d) => {
                let serial = d.len;
                assert_eq!(
                    self.issued.get(&serial),
                    Some(&self.epoch),
                    "request from nowhere: {d:?}"
                );
                assert!(self.taken.insert(serial), "request delivered twice: {d:?}");
                assert!(self.held.insert(d.id, serial).is_none());
            }
            ServerEvent::Abandoned {
                request: d,
                started,
            } => {
                let serial = d.len;
                assert!(
                    self.issued[&serial] < self.epoch,
                    "abandoned a live client's request"
                );
                if started {
                    assert_eq!(self.held.remove(&d.id), Some(serial));
                } else {
                    assert!(self.taken.insert(serial), "queued request seen twice");
                }
                assert!(self.server_done.insert(serial));
            }
        }
    }

    fn poll_client(&mut self) {
        match self.client.poll() {
            Ok(Some(e)) => self.client_event(e),
            Ok(None) => {}
            Err(e) => panic!("client error between honest peers: {e:?}"),
        }
    }

    fn poll_server(&mut self) {
        match self.server.poll() {
            Ok(Some(e)) => self.server_event(e),
            Ok(None) => {}
            Err(e) => panic!("server error between honest peers: {e:?}"),
        }
    }

    fn respond(&mut self, k: usize) {
        let Some((&id, &serial)) = self.held.iter().nth(k % self.held.len().max(1)) else {
            return;
        };
        match self.server.respond(id, serial) {
            Ok(_) => {
                self.held.remove(&id);
                assert!(self.answered.insert(serial));
                assert!(self.server_done.insert(serial));
            }
            Err(Error::NotConnected | Error::Full) => {}
            Err(e) => panic!("respond: {e:?}"),
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Submit(id) => {
                let serial = self.next_serial;
                match self.client.submit(id, id * 16, serial) {
                    Ok(_) => {
                        self.next_serial += 1;
                        self.issued.insert(serial, self.epoch);
                        assert!(self.live.insert(id, serial).is_none());
                    }
                    Err(Error::IdInUse { .. }) => assert!(self.live.contains_key(&id)),
                    Err(Error::NotConnected | Error::Full) => {}
                    Err(e) => panic!("submit: {e:?}"),
                }
            }
            Op::ClientPoll => self.poll_client(),
            Op::ServerPoll => self.poll_server(),
            Op::Respond(k) => self.respond(k),
            Op::RestartServer { explicit_skip } => {
                // The dead server's held requests are the client's to reclaim.
                self.held.clear();
                self.pds.restart_server(explicit_skip.unwrap_or(1));
                self.server = server(&self.rings, &self.data, self.pds.server());
            }
            Op::RestartClient { explicit_skip } => {
                self.live.clear();
                self.epoch += 1;
                self.pds.restart_client(explicit_skip.unwrap_or(1));
                self.client = client(&self.rings, &self.data, self.pds.client());
            }
        }
    }

    /// No more faults: let everything finish, answering every request.
    fn quiesce(&mut self) {
        for _ in 0..10_000 {
            if self.client.is_connected()
                && self.server.is_connected()
                && self.live.is_empty()
                && self.held.is_empty()
            {
                return;
            }
            self.poll_server();
            self.respond(0);
            self.poll_client();
        }
        panic!("did not settle: live {:?} held {:?}", self.live, self.held);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_request_returns_exactly_once(ops in prop::collection::vec(op(), 0..150)) {
        let mut sim = Sim::new();
        for op in &ops {
            sim.step(op);
        }
        sim.quiesce();
        prop_assert_eq!(sim.client.in_flight(), 0);
        prop_assert_eq!(sim.server.in_service(), 0);
        // The surviving client got every one of its requests back once.
        for (serial, epoch) in &sim.issued {
            if *epoch == sim.epoch {
                prop_assert!(sim.returned.contains_key(serial), "request {} never returned", serial);
            }
        }
        // A server finished with every request it took (or died holding it,
        // in which case the client above reclaimed or got its completion).
        for serial in &sim.answered {
            prop_assert!(sim.taken.contains(serial));
        }
    }
}
