//! `Client::link_state`, what a client's connect deadline waits on (lib/ring `deadline.rs`):
//! nothing while no server has published itself, the server while it has and has not
//! acknowledged the client (or was found corrupt and is not restarted yet), and requests
//! in flight once connected.
#![cfg(not(feature = "loom"))]

mod common;

use axolotl_ring::{Client, Error, LinkState, Server, ring_region_bytes};
use common::*;

const CAP: u32 = 4;
const IDS: usize = 6;

#[test]
fn a_client_waits_for_a_server_that_published_itself_and_never_acknowledged_it() {
    let rings = Mem::new(ring_region_bytes(CAP).unwrap());
    let data = Mem::new(4096);
    let pds = Pds::new();
    let mut client = Client::<IDS>::new(rings.region(), data.region(), CAP, pds.client()).unwrap();
    assert_eq!(client.poll(), Ok(None));
    assert_eq!(client.link_state(), LinkState::Absent, "no server yet");

    // The server starts (it publishes its generation) and is never polled again: stuck in
    // its handshake, as the virtualiser of campaign id 541 was.
    let mut server = Server::<IDS>::new(rings.region(), data.region(), CAP, pds.server()).unwrap();
    for _ in 0..3 {
        let _ = client.poll();
    }
    assert_eq!(client.link_state(), LinkState::Waiting);

    // It attaches: connected.
    for _ in 0..4 {
        let _ = server.poll();
        let _ = client.poll();
    }
    assert_eq!(client.link_state(), LinkState::Connected);

    // A server that lies about its generation poisons the connection: the client waits
    // for its restart.
    rings.write_u32(SERVER_GEN, 1000);
    assert!(matches!(client.poll(), Err(Error::Corrupt(_))));
    assert_eq!(client.link_state(), LinkState::Waiting);
}
