//! A peer that writes nonsense gets a specific `Corruption` back: never
//! followed, never a panic, and sticky until the peer is restarted.
// Real-build layout and atomics; the loom build runs only tests/loom.rs.
#![cfg(not(feature = "loom"))]

mod common;

use axolotl_ring::{
    Client, ClientEvent, Consumer, Corruption, Descriptor, Error, Index, Producer, Server,
    ServerEvent, queue_bytes, ring_region_bytes,
};
use common::*;
use proptest::prelude::*;

const CAP: u32 = 4;
const IDS: usize = 8;
const DATA: usize = 4096;

fn d(offset: u32, len: u32, id: u32, tag: u32) -> Descriptor {
    Descriptor {
        offset,
        len,
        id,
        tag,
    }
}

fn queue() -> (Mem, Producer, Consumer) {
    let mem = Mem::new(queue_bytes(CAP).unwrap());
    let p = Producer::new(mem.region(), CAP).unwrap();
    let c = Consumer::new(mem.region(), CAP).unwrap();
    (mem, p, c)
}

#[test]
fn tail_moving_backwards() {
    let (mem, mut p, mut c) = queue();
    p.push(d(0, 1, 0, 0)).unwrap();
    p.push(d(0, 1, 1, 0)).unwrap();
    assert!(c.pop().unwrap().is_some());
    mem.write_u32(Q_TAIL, 1);
    assert!(c.pop().unwrap().is_some()); // still within what we validated
    assert_eq!(
        c.pop(),
        Err(Corruption::IndexRegressed {
            index: Index::Tail,
            previous: 2,
            observed: 1
        })
    );
}

#[test]
fn tail_beyond_capacity() {
    let (mem, _p, mut c) = queue();
    mem.write_u32(Q_TAIL, CAP + 1);
    assert_eq!(
        c.pop(),
        Err(Corruption::IndexOverrun {
            index: Index::Tail,
            head: 0,
            tail: CAP + 1,
            capacity: CAP
        })
    );
    // Half the index space away is ambiguous (ahead or behind?): caught either way.
    mem.write_u32(Q_TAIL, 0x8000_0000);
    assert!(matches!(
        c.len(),
        Err(Corruption::IndexRegressed {
            index: Index::Tail,
            ..
        } | Corruption::IndexOverrun { .. })
    ));
}

#[test]
fn head_moving_backwards() {
    let (mem, mut p, mut c) = queue();
    for i in 0..3 {
        p.push(d(0, 1, i, 0)).unwrap();
    }
    c.pop().unwrap();
    c.pop().unwrap();
    assert_eq!(p.free(), Ok(CAP - 1));
    mem.write_u32(Q_HEAD, 1);
    assert_eq!(
        p.free(),
        Err(Corruption::IndexRegressed {
            index: Index::Head,
            previous: 2,
            observed: 1
        })
    );
}

#[test]
fn head_past_tail() {
    let (mem, mut p, _c) = queue();
    p.push(d(0, 1, 0, 0)).unwrap();
    mem.write_u32(Q_HEAD, 2);
    assert_eq!(
        p.free(),
        Err(Corruption::IndexOverrun {
            index: Index::Head,
            head: 2,
            tail: 1,
            capacity: CAP
        })
    );
}

// --- server facing a hostile client ---------------------------------------

struct ServerRig {
    rings: Mem,
    _data: Mem,
    server: Server<IDS>,
    req_tail: u32,
    /// After the endpoint: it reads these until dropped.
    _pds: Pds,
}

/// A connected server whose client is played by the test.
fn server_rig() -> ServerRig {
    let rings = Mem::new(ring_region_bytes(CAP).unwrap());
    let data = Mem::new(DATA);
    // Server ring generation 3, client 1.
    let pds = Pds::at(0, 2);
    let mut server = Server::<IDS>::new(rings.region(), data.region(), CAP, pds.server()).unwrap();
    rings.write_u32(CLIENT_GEN, 1);
    assert_eq!(server.poll(), Ok(None));
    assert_eq!(
        rings.read_u32(SERVER_ACK),
        1,
        "server acknowledges the new client"
    );
    rings.write_u32(CLIENT_ACK, 3);
    assert_eq!(
        server.poll(),
        Ok(Some(ServerEvent::Connected {
            client_generation: 1
        }))
    );
    ServerRig {
        rings,
        _data: data,
        server,
        req_tail: 0,
        _pds: pds,
    }
}

impl ServerRig {
    fn inject(&mut self, desc: Descriptor) {
        write_slot(
            &self.rings,
            REQ_Q,
            CAP,
            self.req_tail,
            [desc.offset, desc.len, desc.id, desc.tag],
        );
        self.req_tail += 1;
        self.rings.write_u32(REQ_Q + Q_TAIL, self.req_tail);
    }

    fn expect(&mut self, desc: Descriptor, c: Corruption) {
        let held = self.server.in_service();
        self.inject(desc);
        assert_eq!(self.server.poll(), Err(Error::Corrupt(c)));
        // Sticky: not followed, not forgotten.
        assert_eq!(self.server.poll(), Err(Error::Corrupt(c)));
        assert_eq!(self.server.respond(0, 0), Err(Error::Corrupt(c)));
        assert_eq!(self.server.in_service(), held);
    }
}

#[test]
fn request_offset_plus_len_overflows() {
    server_rig().expect(
        d(u32::MAX, 2, 0, 3),
        Corruption::BufferOverflow {
            offset: u32::MAX,
            len: 2,
        },
    );
}

#[test]
fn request_outside_data_region() {
    server_rig().expect(
        d(DATA as u32 - 1, 2, 0, 3),
        Corruption::BufferOutOfBounds {
            offset: DATA as u32 - 1,
            len: 2,
            region_len: DATA,
        },
    );
}

#[test]
fn request_with_unknown_id() {
    server_rig().expect(
        d(0, 1, IDS as u32, 3),
        Corruption::UnknownId { id: IDS as u32 },
    );
}

#[test]
fn request_with_duplicate_id() {
    let mut rig = server_rig();
    rig.inject(d(0, 1, 5, 3));
    assert_eq!(
        rig.server.poll(),
        Ok(Some(ServerEvent::Request(d(0, 1, 5, 3))))
    );
    rig.expect(d(8, 1, 5, 3), Corruption::DuplicateId { id: 5 });
}

#[test]
fn request_from_another_session() {
    server_rig().expect(
        d(0, 1, 0, 2),
        Corruption::StaleGeneration {
            id: 0,
            tag: 2,
            expected: 3,
        },
    );
}

#[test]
fn client_generation_going_backwards() {
    let mut rig = server_rig();
    rig.rings.write_u32(CLIENT_GEN, 0);
    let c = Corruption::GenerationRegressed {
        previous: 1,
        observed: 0,
    };
    assert_eq!(rig.server.poll(), Err(Error::Corrupt(c)));
}

// --- client facing a hostile server ---------------------------------------

struct ClientRig {
    rings: Mem,
    _data: Mem,
    client: Client<IDS>,
    resp_tail: u32,
    /// After the endpoint: it reads these until dropped.
    pds: Pds,
}

const SERVER: u32 = 7;

/// A connected client with requests 0 (offset 0, len 100) and 1 (offset 100,
/// len 50) outstanding; the server is played by the test.
fn client_rig() -> ClientRig {
    let rings = Mem::new(ring_region_bytes(CAP).unwrap());
    let data = Mem::new(DATA);
    let pds = Pds::at(0, SERVER - 1);
    let mut client = Client::<IDS>::new(rings.region(), data.region(), CAP, pds.client()).unwrap();
    assert_eq!(client.generation(), 1);
    assert_eq!(client.poll(), Ok(None));
    rings.write_u32(SERVER_GEN, SERVER);
    rings.write_u32(SERVER_ACK, 1);
    assert_eq!(
        client.poll(),
        Ok(Some(ClientEvent::Connected {
            server_generation: SERVER
        }))
    );
    assert_eq!(rings.read_u32(CLIENT_ACK), SERVER);
    let _ = client.submit(0, 0, 100).unwrap();
    let _ = client.submit(1, 100, 50).unwrap();
    ClientRig {
        rings,
        _data: data,
        client,
        resp_tail: 0,
        pds,
    }
}

impl ClientRig {
    fn inject(&mut self, desc: Descriptor) {
        let q = resp_q(CAP);
        write_slot(
            &self.rings,
            q,
            CAP,
            self.resp_tail,
            [desc.offset, desc.len, desc.id, desc.tag],
        );
        self.resp_tail += 1;
        self.rings.write_u32(q + Q_TAIL, self.resp_tail);
    }

    fn expect(&mut self, desc: Descriptor, c: Corruption) {
        self.inject(desc);
        assert_eq!(self.client.poll(), Err(Error::Corrupt(c)));
        assert_eq!(self.client.poll(), Err(Error::Corrupt(c)));
        assert_eq!(self.client.submit(2, 0, 1), Err(Error::Corrupt(c)));
        // Nothing was retired on the strength of a bad completion.
        assert_eq!(self.client.in_flight(), 2);
    }
}

#[test]
fn completion_with_unknown_id() {
    client_rig().expect(d(0, 1, 1000, SERVER), Corruption::UnknownId { id: 1000 });
}

#[test]
fn completion_for_id_never_requested() {
    client_rig().expect(
        d(0, 1, 4, SERVER),
        Corruption::DuplicateCompletion { id: 4 },
    );
}

#[test]
fn completion_delivered_twice() {
    let mut rig = client_rig();
    rig.inject(d(0, 10, 0, SERVER));
    assert_eq!(
        rig.client.poll(),
        Ok(Some(ClientEvent::Completed(d(0, 10, 0, SERVER))))
    );
    rig.inject(d(0, 10, 0, SERVER));
    let c = Corruption::DuplicateCompletion { id: 0 };
    assert_eq!(rig.client.poll(), Err(Error::Corrupt(c)));
    assert_eq!(rig.client.in_flight(), 1);
}

#[test]
fn completion_naming_another_buffer() {
    client_rig().expect(
        d(100, 10, 0, SERVER),
        Corruption::CompletionMismatch { id: 0 },
    );
}

#[test]
fn completion_longer_than_request() {
    client_rig().expect(
        d(100, 51, 1, SERVER),
        Corruption::CompletionMismatch { id: 1 },
    );
}

#[test]
fn completion_from_another_session() {
    client_rig().expect(
        d(0, 1, 0, SERVER - 1),
        Corruption::StaleGeneration {
            id: 0,
            tag: SERVER - 1,
            expected: SERVER,
        },
    );
}

#[test]
fn completion_tail_overrun() {
    let mut rig = client_rig();
    rig.rings.write_u32(resp_q(CAP) + Q_TAIL, CAP + 1);
    let c = Corruption::IndexOverrun {
        index: Index::Tail,
        head: 0,
        tail: CAP + 1,
        capacity: CAP,
    };
    assert_eq!(rig.client.poll(), Err(Error::Corrupt(c)));
}

#[test]
fn server_generation_going_backwards() {
    let mut rig = client_rig();
    rig.rings.write_u32(SERVER_GEN, SERVER - 1);
    let c = Corruption::GenerationRegressed {
        previous: SERVER,
        observed: SERVER - 1,
    };
    assert_eq!(rig.client.poll(), Err(Error::Corrupt(c)));
    assert_eq!(rig.client.poll(), Err(Error::Corrupt(c)));
}

#[test]
fn corrupt_server_restarted_by_monitor_reclaims_everything() {
    let mut rig = client_rig();
    rig.inject(d(0, 10, 0, SERVER)); // valid, but behind it comes garbage
    rig.inject(d(0, 1, 1000, SERVER));
    assert!(matches!(
        rig.client.poll(),
        Ok(Some(ClientEvent::Completed(_)))
    ));
    assert!(rig.client.poll().is_err());
    // Monitor restarts the server; its old queue is not trusted any more.
    rig.pds.restart_server(1);
    rig.rings.write_u32(SERVER_GEN, SERVER + 1);
    assert_eq!(
        rig.client.poll(),
        Ok(Some(ClientEvent::ServerRestarted {
            generation: SERVER + 1
        }))
    );
    assert_eq!(
        rig.client.poll(),
        Ok(Some(ClientEvent::Reclaimed(d(100, 50, 1, SERVER))))
    );
    assert_eq!(
        rig.client.poll(),
        Ok(Some(ClientEvent::Connected {
            server_generation: SERVER + 1
        }))
    );
    assert_eq!(rig.client.in_flight(), 0);
    assert_eq!(rig.rings.read_u32(CLIENT_ACK), SERVER + 1);
    assert_eq!(rig.rings.read_u32(resp_q(CAP) + Q_TAIL), 0, "queues reset");
}

// --- fuzz: arbitrary scribbling never panics nor breaks accounting ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scribbling_server_never_breaks_the_client(
        writes in prop::collection::vec((0usize..(ring_region_bytes(CAP).unwrap() / 4), any::<u32>(), 0u32..4), 1..40),
    ) {
        let mut rig = client_rig();
        let mut resolved = [0u32; IDS];
        for (word, value, polls) in writes {
            // Anywhere: the client never reads its own words back.
            rig.rings.write_u32(word * 4, value);
            for _ in 0..polls {
                match rig.client.poll() {
                    Ok(Some(ClientEvent::Completed(x))) => {
                        prop_assert!(x.id < 2);
                        resolved[x.id as usize] += 1;
                    }
                    // The authority never restarted the server: whatever it
                    // writes, nothing is taken back from it (issue #20, 3).
                    Ok(Some(e @ (ClientEvent::Reclaimed(_) | ClientEvent::ServerRestarted { .. }))) => {
                        prop_assert!(false, "a scribbler faked a restart: {:?}", e);
                    }
                    _ => {}
                }
            }
        }
        prop_assert!(resolved.iter().all(|&n| n <= 1), "{resolved:?}");
        prop_assert_eq!(resolved.iter().sum::<u32>() as usize + rig.client.in_flight(), 2);
    }
}

// --- quiet polls: their short answer hides nothing ------------------------
//
// `Server::poll` and `Client::poll` answer a connected link on which nothing moved from the
// peer's generation word and the queue's tail alone, without the state machine
// (docs/benchmarks.md, "Idle polls"). Each test below polls a quiet link a few times, then
// makes one change of the peer's, which the next poll must see as the full poll would.

fn quiet_server(rig: &mut ServerRig) {
    for _ in 0..3 {
        assert_eq!(rig.server.poll(), Ok(None));
    }
}

fn quiet_client(rig: &mut ClientRig) {
    for _ in 0..3 {
        assert_eq!(rig.client.poll(), Ok(None));
    }
}

#[test]
fn a_quiet_server_takes_the_next_request() {
    let mut rig = server_rig();
    quiet_server(&mut rig);
    rig.inject(d(0, 1, 5, 3));
    assert_eq!(
        rig.server.poll(),
        Ok(Some(ServerEvent::Request(d(0, 1, 5, 3))))
    );
    quiet_server(&mut rig);
}

#[test]
fn a_quiet_server_sees_its_client_restart_with_the_queues_still() {
    let mut rig = server_rig();
    quiet_server(&mut rig);
    rig._pds.restart_client(1);
    rig.rings.write_u32(CLIENT_GEN, 2);
    assert_eq!(
        rig.server.poll(),
        Ok(Some(ServerEvent::ClientRestarted { generation: 2 }))
    );
}

#[test]
fn a_quiet_server_refuses_a_generation_nobody_confirmed() {
    let mut rig = server_rig();
    quiet_server(&mut rig);
    rig.rings.write_u32(CLIENT_GEN, 2);
    let c = Corruption::GenerationUnconfirmed {
        observed: 2,
        confirmed: 1,
    };
    assert_eq!(rig.server.poll(), Err(Error::Corrupt(c)));
    assert_eq!(rig.server.poll(), Err(Error::Corrupt(c)));
}

#[test]
fn a_quiet_server_sees_a_tail_moved_back() {
    let mut rig = server_rig();
    rig.inject(d(0, 1, 5, 3));
    assert!(matches!(
        rig.server.poll(),
        Ok(Some(ServerEvent::Request(_)))
    ));
    quiet_server(&mut rig);
    rig.rings.write_u32(REQ_Q + Q_TAIL, 0);
    let c = Corruption::IndexRegressed {
        index: Index::Tail,
        previous: 1,
        observed: 0,
    };
    assert_eq!(rig.server.poll(), Err(Error::Corrupt(c)));
}

#[test]
fn a_quiet_client_takes_the_next_completion() {
    let mut rig = client_rig();
    quiet_client(&mut rig);
    rig.inject(d(0, 10, 0, SERVER));
    assert_eq!(
        rig.client.poll(),
        Ok(Some(ClientEvent::Completed(d(0, 10, 0, SERVER))))
    );
    quiet_client(&mut rig);
}

#[test]
fn a_quiet_client_sees_its_server_restart_with_the_queues_still() {
    let mut rig = client_rig();
    quiet_client(&mut rig);
    rig.pds.restart_server(1);
    rig.rings.write_u32(SERVER_GEN, SERVER + 1);
    assert_eq!(
        rig.client.poll(),
        Ok(Some(ClientEvent::ServerRestarted {
            generation: SERVER + 1
        }))
    );
}
