//! Issue #20, findings 3 and 4: a peer that writes generation words it does not own.
//!
//! 3. A server that raises its own generation word must not be taken for a restarted one:
//!    nothing reclaimed, no queue reset under it, the server reported as corrupt; once the
//!    authority really restarts it, the client resynchronises as after any restart.
//! 4. A side's own generation never comes from a word the peer can write: a server writing
//!    `u32::MAX` or something low into the client's generation word changes nothing about
//!    the client's next incarnation.
#![cfg(not(feature = "loom"))]

mod common;

use axolotl_ring::{Client, ClientEvent, Corruption, Error, Server, ServerEvent};
use common::*;

const CAP: u32 = 4;
const IDS: usize = 6;

type Rig = common::Rig<IDS>;

fn connected() -> Rig {
    Rig::connected(CAP, 4096, false)
}

#[test]
fn a_server_raising_its_own_generation_is_not_a_restart() {
    // One above (what a real restart would publish), far above, the largest.
    for forged in [3, 1000, u32::MAX] {
        let mut rig = connected();
        let _ = rig.client.submit(0, 0, 8).unwrap();
        let _ = rig.client.submit(1, 8, 8).unwrap();
        assert!(matches!(
            rig.server.poll(),
            Ok(Some(ServerEvent::Request(_)))
        ));
        rig.rings.write_u32(SERVER_GEN, forged);
        // The authority still says ring generation 1.
        let lie = Corruption::GenerationUnconfirmed {
            observed: forged,
            confirmed: 1,
        };
        assert_eq!(
            rig.client.poll(),
            Err(Error::Corrupt(lie)),
            "forged {forged}"
        );
        assert_eq!(rig.client.poll(), Err(Error::Corrupt(lie)), "sticky");
        // Nothing taken back from the live server, no queue reset under it.
        assert_eq!(rig.client.in_flight(), 2);
        assert_eq!(rig.rings.read_u32(CLIENT_ACK), 1, "no ack of the lie");
        assert_eq!(
            rig.rings.read_u32(REQ_Q + Q_TAIL),
            2,
            "request queue intact"
        );
        assert_eq!(rig.rings.read_u32(REQ_Q + Q_HEAD), 1);
        // The server, innocent of the client, still sees nothing wrong with it.
        assert_eq!(rig.server.respond(0, 8).map(|_| ()), Ok(()));
        assert!(matches!(
            rig.server.poll(),
            Ok(Some(ServerEvent::Request(_)))
        ));
        assert_eq!(rig.server.poll(), Ok(None));

        // The monitor acts on the client's report: the authority restarts the server,
        // whose new generation resynchronises the connection.
        rig.restart_server();
        let (ce, se) = rig.settle();
        assert_eq!(
            ce,
            [
                ClientEvent::ServerRestarted { generation: 2 },
                // From a server that broke the rules nothing more is believed: everything
                // outstanding, the answered request included, comes back reclaimed.
                ClientEvent::Reclaimed(desc(0, 8, 0, 1)),
                ClientEvent::Reclaimed(desc(8, 8, 1, 1)),
                ClientEvent::Connected {
                    server_generation: 2
                },
            ],
            "forged {forged}"
        );
        assert_eq!(
            se,
            [ServerEvent::Connected {
                client_generation: 1
            }]
        );
        let _ = rig.client.submit(1, 8, 8).unwrap();
        assert_eq!(
            rig.server.poll(),
            Ok(Some(ServerEvent::Request(desc(8, 8, 1, 2))))
        );
    }
}

#[test]
fn a_client_raising_its_own_generation_is_not_a_restart() {
    for forged in [2, u32::MAX] {
        let mut rig = connected();
        let _ = rig.client.submit(0, 0, 8).unwrap();
        assert!(matches!(
            rig.server.poll(),
            Ok(Some(ServerEvent::Request(_)))
        ));
        rig.rings.write_u32(CLIENT_GEN, forged);
        let lie = Error::Corrupt(Corruption::GenerationUnconfirmed {
            observed: forged,
            confirmed: 1,
        });
        assert_eq!(rig.server.poll(), Err(lie));
        assert_eq!(rig.server.in_service(), 1, "nothing abandoned");
        assert_eq!(rig.rings.read_u32(SERVER_ACK), 1, "no ack of the lie");
        // Restarted by the monitor, the client attaches normally.
        rig.restart_client();
        let (_, se) = rig.settle();
        assert_eq!(
            se,
            [
                ServerEvent::ClientRestarted { generation: 2 },
                ServerEvent::Abandoned {
                    request: desc(0, 8, 0, 1),
                    started: true
                },
                ServerEvent::Connected {
                    client_generation: 2
                },
            ]
        );
        assert!(rig.client.is_connected());
    }
}

#[test]
fn a_restart_is_waited_for_until_its_generation_is_published() {
    let mut rig = connected();
    // The authority restarted the server twice; the first new incarnation published and
    // died before the second published: its word is not a lie, just not the latest.
    rig.pds.restart_server(2);
    rig.rings.write_u32(SERVER_GEN, 2);
    assert_eq!(rig.client.poll(), Ok(None));
    assert!(rig.client.is_connected());
    rig.server = Server::new(rig.rings.region(), rig.data.region(), CAP, rig.pds.server()).unwrap();
    let (ce, _) = rig.settle();
    assert_eq!(
        ce,
        [
            ClientEvent::ServerRestarted { generation: 3 },
            ClientEvent::Connected {
                server_generation: 3
            },
        ]
    );
}

#[test]
fn a_forged_word_left_over_a_restart_is_not_the_new_incarnations_claim() {
    for forged in [3, u32::MAX] {
        let mut rig = connected();
        // Scribbled into the client's word (by the server, say) and then the client is
        // restarted: until the new incarnation publishes, the word is not its claim.
        rig.rings.write_u32(CLIENT_GEN, forged);
        rig.pds.restart_client(1);
        assert_eq!(
            rig.server.poll(),
            Ok(None),
            "forged {forged}: innocent reported"
        );
        rig.client =
            Client::new(rig.rings.region(), rig.data.region(), CAP, rig.pds.client()).unwrap();
        let (_, se) = rig.settle();
        assert_eq!(
            se,
            [
                ServerEvent::ClientRestarted { generation: 2 },
                ServerEvent::Connected {
                    client_generation: 2
                },
            ]
        );
    }
}

#[test]
fn a_peer_written_own_generation_word_does_not_decide_a_restarted_client() {
    // The largest (`Generation::Next` overflowed), zero and one below the real one
    // (the server then saw the restarted client as regressed).
    for forged in [u32::MAX, 0, 1] {
        let mut rig = connected();
        let _ = rig.client.submit(0, 0, 8).unwrap();
        rig.rings.write_u32(CLIENT_GEN, forged);
        // (The server, liar or not, sees the word; an honest one would report it.)
        let _ = rig.server.poll();
        rig.restart_client();
        assert_eq!(rig.client.generation(), 2, "forged {forged}");
        let (ce, _) = rig.settle();
        assert!(
            ce.contains(&ClientEvent::Connected {
                server_generation: 1
            }),
            "forged {forged}: {ce:?}"
        );
        assert!(rig.server.is_connected(), "forged {forged}");
        assert_eq!(rig.server.client_generation(), 2);
    }
}

#[test]
fn a_peer_written_own_generation_word_does_not_decide_a_restarted_server() {
    for forged in [u32::MAX, 0] {
        let mut rig = connected();
        rig.rings.write_u32(SERVER_GEN, forged);
        rig.restart_server();
        assert_eq!(rig.server.generation(), 2, "forged {forged}");
        let (ce, _) = rig.settle();
        assert!(
            ce.contains(&ClientEvent::Connected {
                server_generation: 2
            }),
            "forged {forged}: {ce:?}"
        );
        assert!(rig.server.is_connected());
    }
}

fn desc(offset: u32, len: u32, id: u32, tag: u32) -> axolotl_ring::Descriptor {
    axolotl_ring::Descriptor {
        offset,
        len,
        id,
        tag,
    }
}

#[test]
fn a_side_restores_its_own_scribbled_word_while_attaching() {
    let mut rig = connected();
    // The server scribbles the client's word and then is restarted (say, reported for
    // another lie): the new server waits for the client's word to match the authority,
    // which the surviving client restores as it resynchronises.
    rig.rings.write_u32(CLIENT_GEN, u32::MAX);
    rig.restart_server();
    assert_eq!(rig.server.poll(), Ok(None), "not the client's claim yet");
    let (ce, se) = rig.settle();
    assert_eq!(
        ce,
        [
            ClientEvent::ServerRestarted { generation: 2 },
            ClientEvent::Connected {
                server_generation: 2
            },
        ]
    );
    assert_eq!(
        se,
        [ServerEvent::Connected {
            client_generation: 1
        }]
    );
    assert_eq!(rig.rings.read_u32(CLIENT_GEN), 1);
}
