//! A producer index moved ahead by a fault (the blk campaign: bit 2 of a client's request
//! tail, 4 slots ahead) exposes slots the producer did not write in this lap: descriptors
//! of the previous lap, or of a session before a reset. Their generation tag is the
//! current one, and their ids may be idle, so nothing but the position they were written
//! for tells them from new ones. The consumer must refuse them as the producer's
//! corruption (it wrote the index), take nothing, and resynchronise after the restart.
#![cfg(not(feature = "loom"))]

mod common;

use axolotl_ring::{
    Client, ClientEvent, Consumer, Corruption, Descriptor, Error, Producer, Server, ServerEvent,
    queue_bytes, ring_region_bytes,
};
use common::*;

const CAP: u32 = 8;
const IDS: usize = 8;
const BUF: u32 = 512;

type Rig = common::Rig<IDS>;

fn connected() -> Rig {
    Rig::connected(CAP, IDS * BUF as usize, true)
}

trait Lap {
    fn round(&mut self, ids: impl IntoIterator<Item = u32>);
    fn flip(&self, word: usize, bit: u32);
}

impl Lap for Rig {
    /// Submits `ids`, each on its own buffer, and lets the server answer them all.
    fn round(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            let _ = self.client.submit(id, id * BUF, BUF).unwrap();
        }
        let (ce, _) = self.settle();
        assert!(ce.iter().all(|e| matches!(e, ClientEvent::Completed(_))));
        assert_eq!(self.client.in_flight(), 0);
    }

    fn flip(&self, word: usize, bit: u32) {
        self.rings
            .write_u32(word, self.rings.read_u32(word) ^ (1 << bit));
    }
}

#[test]
fn a_request_tail_moved_onto_the_previous_laps_slots_is_the_clients_corruption() {
    let mut rig = connected();
    // One lap and two: positions 0..8 hold ids 0..8, then 8 and 9 hold ids 0 and 1.
    rig.round(0..8);
    rig.round(0..2);
    // The tail (10) flipped by bit 2: 14, onto positions 10..14, whose slots hold ids
    // 2..6 of the previous lap, idle on the server and tagged with its generation.
    rig.flip(REQ_Q + Q_TAIL, 2);
    let stale = Corruption::StalePosition {
        position: 10,
        written_for: 2,
    };
    assert_eq!(rig.server.poll(), Err(Error::Corrupt(stale)));
    assert_eq!(rig.server.in_service(), 0, "nothing taken");
    assert_eq!(rig.server.poll(), Err(Error::Corrupt(stale)), "sticky");
    // The client is the one accused, and what heals it is the driver's restart (the
    // monitor's answer to a report against a client that cannot be restarted): the new
    // server generation resynchronises the connection, and it serves again.
    rig.pds.restart_server(1);
    rig.server = Server::new(rig.rings.region(), rig.data.region(), CAP, rig.pds.server()).unwrap();
    let (ce, _) = rig.settle();
    assert!(ce.contains(&ClientEvent::ServerRestarted { generation: 2 }));
    assert!(rig.client.is_connected() && rig.server.is_connected());
    rig.round(0..8);
}

#[test]
fn a_response_tail_moved_onto_old_completions_of_live_ids_is_the_servers_corruption() {
    let mut rig = connected();
    rig.round(0..8);
    // Ids 0..4 in flight again, on the same buffers as their old completions; the server
    // takes them but has answered none.
    for id in 0..4 {
        let _ = rig.client.submit(id, id * BUF, BUF).unwrap();
    }
    for _ in 0..4 {
        assert!(matches!(
            rig.server.poll(),
            Ok(Some(ServerEvent::Request(_)))
        ));
    }
    // The response tail (8) flipped to 12: positions 8..12 hold the previous lap's
    // completions of ids 0..4, which match the live requests in every field: taken, they
    // would complete requests the server has not served.
    rig.flip(resp_q(CAP) + Q_TAIL, 2);
    let stale = Corruption::StalePosition {
        position: 8,
        written_for: 0,
    };
    assert_eq!(rig.client.poll(), Err(Error::Corrupt(stale)));
    assert_eq!(rig.client.in_flight(), 4, "nothing completed");
}

#[test]
fn a_request_tail_moved_onto_the_last_sessions_slots_after_a_client_restart() {
    let mut rig = connected();
    // The old client session wrote positions 0..6 (ids 0..6).
    rig.round(0..6);
    // The client restarts; the surviving server resets the queues for the new one.
    rig.pds.restart_client(1);
    rig.client = Client::new(rig.rings.region(), rig.data.region(), CAP, rig.pds.client()).unwrap();
    rig.settle();
    assert!(rig.client.is_connected() && rig.server.is_connected());
    // The new session writes positions 0 and 1 and the server takes them.
    for id in 0..2 {
        let _ = rig.client.submit(id, id * BUF, BUF).unwrap();
    }
    for _ in 0..2 {
        assert!(matches!(
            rig.server.poll(),
            Ok(Some(ServerEvent::Request(_)))
        ));
    }
    // Tail 2 -> 6: positions 2..6 are the slots the old session wrote for the very same
    // positions, with the same server generation. The reset must have forgotten them.
    rig.flip(REQ_Q + Q_TAIL, 2);
    assert_eq!(
        rig.server.poll(),
        Err(Error::Corrupt(Corruption::StalePosition {
            position: 2,
            written_for: 0xffff,
        }))
    );
    assert_eq!(rig.server.in_service(), 2, "only the two real requests");
}

#[test]
fn a_slot_is_sealed_with_its_position_across_the_index_wrap() {
    let mem = Mem::new(queue_bytes(4).unwrap());
    let start = u32::MAX - 1;
    mem.write_u32(Q_TAIL, start);
    mem.write_u32(Q_HEAD, start);
    let mut p = Producer::new_at(mem.region(), 4, start).unwrap();
    let mut c = Consumer::new_at(mem.region(), 4, start).unwrap();
    let d = |id| Descriptor {
        offset: 0,
        len: 1,
        id,
        tag: 9,
    };
    for id in 0..4 {
        p.push(d(id)).unwrap();
    }
    for id in 0..4 {
        assert_eq!(c.pop(), Ok(Some(d(id))));
    }
    // A tail 3 ahead of the real one: the slots hold positions one lap back.
    mem.write_u32(Q_TAIL, start.wrapping_add(7));
    assert_eq!(
        c.pop(),
        Err(Corruption::StalePosition {
            position: start.wrapping_add(4),
            written_for: start & 0xffff,
        })
    );
    // Refused, not consumed: the same slot is refused again.
    assert!(matches!(c.pop(), Err(Corruption::StalePosition { .. })));
    assert_eq!(mem.read_u32(Q_HEAD), start.wrapping_add(4));
}

#[test]
fn an_id_that_does_not_fit_the_slot_is_refused_not_truncated() {
    let mem = Mem::new(queue_bytes(4).unwrap());
    let mut p = Producer::new(mem.region(), 4).unwrap();
    let big = Descriptor {
        offset: 0,
        len: 1,
        id: 0x1_0000,
        tag: 1,
    };
    assert_eq!(
        p.push(big),
        Err(axolotl_ring::PushError::IdTooLarge { id: 0x1_0000 })
    );
    assert_eq!(mem.read_u32(Q_TAIL), 0, "nothing published");
}

#[test]
fn a_request_head_fallen_back_to_a_value_seen_before_is_the_servers_corruption() {
    let mut rig = connected();
    // The client saw head 0 when it filled the queue; the server consumed and answered
    // all 8 (head 8).
    rig.round(0..8);
    // Bit 3 of the head: back to 0, a value the client saw before, so not a regression
    // it can tell from the index alone; the queue now looks full with nothing in flight.
    rig.flip(REQ_Q + Q_HEAD, 3);
    assert_eq!(
        rig.client.submit(0, 0, BUF),
        Err(Error::Corrupt(Corruption::IndexBehind {
            index: axolotl_ring::Index::Head,
            observed: 0,
            proven: 8,
        }))
    );
}

#[test]
fn a_queue_full_of_requests_the_server_has_not_taken_is_just_full() {
    let rings = Mem::new(ring_region_bytes(CAP).unwrap());
    let data = Mem::new(16 * BUF as usize);
    let pds = Pds::new();
    let mut client = Client::<16>::new(rings.region(), data.region(), CAP, pds.client()).unwrap();
    let mut server = Server::<16>::new(rings.region(), data.region(), CAP, pds.server()).unwrap();
    for _ in 0..4 {
        while let Ok(Some(_)) = server.poll() {}
        while let Ok(Some(_)) = client.poll() {}
    }
    assert!(client.is_connected() && server.is_connected());
    for id in 0..CAP {
        let _ = client.submit(id, id * BUF, BUF).unwrap();
    }
    assert_eq!(client.submit(8, 8 * BUF, BUF), Err(Error::Full));
    // The server takes three and answers none: three more fit, then full again, and
    // the requests it holds are no evidence against it.
    for _ in 0..3 {
        assert!(matches!(server.poll(), Ok(Some(ServerEvent::Request(_)))));
    }
    for id in 8..11 {
        let _ = client.submit(id, id * BUF, BUF).unwrap();
    }
    assert_eq!(client.submit(11, 11 * BUF, BUF), Err(Error::Full));
    assert_eq!(client.in_flight(), 11);
}

#[test]
fn a_response_head_fallen_back_to_a_value_seen_before_is_the_clients_corruption() {
    let mut rig = connected();
    // The server answered 8 (seeing head 0 throughout), the client consumed them (head 8).
    rig.round(0..8);
    rig.flip(resp_q(CAP) + Q_HEAD, 3);
    let _ = rig.client.submit(0, 0, BUF).unwrap();
    assert!(matches!(
        rig.server.poll(),
        Ok(Some(ServerEvent::Request(_)))
    ));
    // Head 0 leaves 8 responses "unconsumed" while id 0 is in service: at most 7 can be.
    assert_eq!(
        rig.server.respond(0, BUF),
        Err(Error::Corrupt(Corruption::IndexBehind {
            index: axolotl_ring::Index::Head,
            observed: 0,
            proven: 1,
        }))
    );
}
