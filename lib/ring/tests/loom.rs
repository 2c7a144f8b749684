//! Model-checked concurrency (loom swaps the crate's atomics and slot cells):
//! cargo test -p axolotl-ring --features loom --release --test loom

mod common;

use std::sync::Arc;

use axolotl_ring::{
    ByteConsumer, ByteProducer, Client, ClientEvent, Consumer, Descriptor, Producer, Server,
    ServerEvent, Signal, Wait, byte_ring_bytes, init_byte_ring, init_connection, init_queue,
    queue_bytes, ring_region_bytes,
};
use common::{Mem, Pds};
use loom::cell::UnsafeCell;
use loom::sync::Notify;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn desc(id: u32) -> Descriptor {
    Descriptor {
        offset: id,
        len: 1,
        id,
        tag: 0,
    }
}

fn queue(capacity: u32) -> (Arc<Mem>, Producer, Consumer) {
    let mem = Arc::new(Mem::new(queue_bytes(capacity).unwrap()));
    // SAFETY: nobody else uses the region yet.
    unsafe { init_queue(&mem.region(), capacity).unwrap() };
    let p = Producer::new(mem.region(), capacity).unwrap();
    let c = Consumer::new(mem.region(), capacity).unwrap();
    (mem, p, c)
}

/// Slots are reused across laps (capacity 2, three items): loom's cells
/// prove a slot is never read and written at once, i.e. `head`/`tail`
/// really hand ownership over.
#[test]
fn descriptors_arrive_in_order_and_slots_are_never_shared() {
    model(|| {
        let (mem, mut p, mut c) = queue(2);
        let producer = thread::spawn(move || {
            for id in 0..3 {
                while p.push(desc(id)).is_err() {
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            match c.pop().unwrap() {
                Some(d) => got.push(d.id),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [0, 1, 2]);
        drop(mem);
    });
}

/// Consumer blocks only after `prepare_wait` says so; the producer notifies
/// only when `signal_needed` says so. A lost wake-up is a deadlock, which
/// loom reports.
#[test]
fn signal_me_flag_loses_no_wakeup() {
    model(|| consumer_that_blocks(true));
}

/// The same consumer without honouring the re-check: loom must find the
/// interleaving that sleeps forever. Shows the model can fail.
#[test]
#[should_panic(expected = "deadlock")]
fn skipping_the_recheck_loses_a_wakeup() {
    model(|| consumer_that_blocks(false));
}

fn consumer_that_blocks(recheck: bool) {
    let (mem, mut p, mut c) = queue(2);
    let bell = Arc::new(Notify::new());
    let ring = bell.clone();
    let producer = thread::spawn(move || {
        for id in 0..2 {
            p.push(desc(id)).unwrap();
            if p.signal_needed() == Signal::Notify {
                ring.notify();
            }
        }
    });
    let mut got = 0;
    while got < 2 {
        if c.pop().unwrap().is_some() {
            got += 1;
            continue;
        }
        let wait = c.prepare_wait().unwrap();
        if wait == Wait::Block || !recheck {
            bell.wait();
        }
    }
    producer.join().unwrap();
    drop(mem);
}

struct Conn {
    rings: Mem,
    data: Mem,
    pds: Pds,
}

fn connection() -> Arc<Conn> {
    let conn = Arc::new(Conn {
        rings: Mem::new(ring_region_bytes(2).unwrap()),
        data: Mem::new(64),
        pds: Pds::new(),
    });
    // SAFETY: nobody else uses the region yet.
    unsafe { init_connection(&conn.rings.region(), 2).unwrap() };
    conn
}

fn connected(conn: &Conn) -> (Client<2>, Server<2>) {
    let mut c = Client::new(
        conn.rings.region(),
        conn.data.region(),
        2,
        conn.pds.client(),
    )
    .unwrap();
    let mut s = Server::new(
        conn.rings.region(),
        conn.data.region(),
        2,
        conn.pds.server(),
    )
    .unwrap();
    while !(c.is_connected() && s.is_connected()) {
        s.poll().unwrap();
        c.poll().unwrap();
    }
    (c, s)
}

/// A buffer's contents (a loom cell standing in for the data region) move
/// client -> server -> client with the request and its completion; loom
/// checks the two sides never touch it at the same time.
#[test]
fn buffer_ownership_moves_with_request_and_completion() {
    model(|| {
        let conn = connection();
        let (mut c, mut s) = connected(&conn);
        // Shared across threads on purpose: loom checks every access to it.
        #[allow(clippy::arc_with_non_send_sync)]
        let buffer = Arc::new(UnsafeCell::new(0u32));
        let b = buffer.clone();
        let server = thread::spawn(move || {
            loop {
                match s.poll().unwrap() {
                    Some(ServerEvent::Request(d)) => {
                        // SAFETY: loom checks exclusivity.
                        b.with_mut(|v| unsafe { *v += 1 });
                        let _ = s.respond(d.id, d.len).unwrap();
                        return;
                    }
                    _ => thread::yield_now(),
                }
            }
        });
        // SAFETY: loom checks exclusivity.
        buffer.with_mut(|v| unsafe { *v = 41 });
        let _ = c.submit(0, 0, 4).unwrap();
        loop {
            match c.poll().unwrap() {
                Some(ClientEvent::Completed(d)) => {
                    assert_eq!(d.id, 0);
                    break;
                }
                _ => thread::yield_now(),
            }
        }
        // SAFETY: loom checks exclusivity.
        assert_eq!(buffer.with(|v| unsafe { *v }), 42);
        server.join().unwrap();
    });
}

/// A server restarts while the client is polling: the restarted server's
/// handshake and the client's drain/reset/ack race. The completion posted by
/// the old server arrives exactly once and the new session is clean.
#[test]
fn restart_handshake_races_the_survivor() {
    model(|| {
        let conn = connection();
        let (mut c, mut s) = connected(&conn);
        let _ = c.submit(0, 0, 4).unwrap();
        let _ = c.submit(1, 4, 4).unwrap();
        assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
        let _ = s.respond(0, 4).unwrap();
        // Old server gone; the authority publishes its new generation before
        // the new one comes up, concurrently with the client.
        conn.pds.restart_server(1);
        let conn2 = conn.clone();
        let server = thread::spawn(move || {
            let mut s = Server::<2>::new(
                conn2.rings.region(),
                conn2.data.region(),
                2,
                conn2.pds.server(),
            )
            .unwrap();
            while !s.is_connected() {
                assert_eq!(s.poll().unwrap().is_some(), s.is_connected());
                thread::yield_now();
            }
            // First thing in the new session: the client's request.
            loop {
                match s.poll().unwrap() {
                    Some(ServerEvent::Request(d)) => {
                        assert_eq!((d.id, d.tag), (1, 2));
                        return;
                    }
                    None => thread::yield_now(),
                    Some(e) => panic!("{e:?}"),
                }
            }
        });
        let mut events = Vec::new();
        while !matches!(events.last(), Some(ClientEvent::Connected { .. })) {
            match c.poll().unwrap() {
                Some(e) => events.push(e),
                None => thread::yield_now(),
            }
        }
        // The completion may be taken before or after the restart is noticed;
        // either way once, and the unanswered request is reclaimed once.
        let completed = ClientEvent::Completed(Descriptor {
            offset: 0,
            len: 4,
            id: 0,
            tag: 1,
        });
        let restarted = ClientEvent::ServerRestarted { generation: 2 };
        let tail = [
            ClientEvent::Reclaimed(Descriptor {
                offset: 4,
                len: 4,
                id: 1,
                tag: 1,
            }),
            ClientEvent::Connected {
                server_generation: 2,
            },
        ];
        assert!(
            events == [completed, restarted, tail[0], tail[1]]
                || events == [restarted, completed, tail[0], tail[1]],
            "{events:?}"
        );
        // Re-issue the reclaimed request in the new session.
        let _ = c.submit(1, 4, 4).unwrap();
        server.join().unwrap();
    });
}

/// The serial ring: a stream larger than the ring arrives intact and in
/// order, the reader blocking only when the flag protocol says so.
#[test]
fn byte_stream_arrives_intact_without_lost_wakeups() {
    model(|| {
        let mem = Arc::new(Mem::new(byte_ring_bytes(2).unwrap()));
        // SAFETY: nobody else uses the region yet.
        unsafe { init_byte_ring(&mem.region(), 2).unwrap() };
        let mut p = ByteProducer::new(mem.region(), 2).unwrap();
        let mut c = ByteConsumer::new(mem.region(), 2).unwrap();
        let bell = Arc::new(Notify::new());
        let ring = bell.clone();
        let writer = thread::spawn(move || {
            let mut rest: &[u8] = b"abc";
            while !rest.is_empty() {
                let n = p.write(rest).unwrap();
                rest = &rest[n..];
                if p.signal_needed() == Signal::Notify {
                    ring.notify();
                }
                thread::yield_now();
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut buf = [0; 2];
            let n = c.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            if n == 0 && c.prepare_wait().unwrap() == Wait::Block {
                bell.wait();
            }
        }
        writer.join().unwrap();
        assert_eq!(got, b"abc");
        drop(mem);
    });
}

/// The client restarts while the server is polling: the server hands back
/// the request it held exactly once, and both sides end up connected.
#[test]
fn client_restart_races_the_server() {
    model(|| {
        let conn = connection();
        let (mut c, mut s) = connected(&conn);
        let _ = c.submit(0, 0, 4).unwrap();
        assert!(matches!(s.poll(), Ok(Some(ServerEvent::Request(_)))));
        conn.pds.restart_client(1);
        let conn2 = conn.clone();
        let client = thread::spawn(move || {
            let mut c = Client::<2>::new(
                conn2.rings.region(),
                conn2.data.region(),
                2,
                conn2.pds.client(),
            )
            .unwrap();
            while !c.is_connected() {
                if let Some(e) = c.poll().unwrap() {
                    assert_eq!(
                        e,
                        ClientEvent::Connected {
                            server_generation: 1
                        }
                    );
                }
                thread::yield_now();
            }
            let _ = c.submit(1, 4, 4).unwrap();
        });
        let mut events = Vec::new();
        loop {
            match s.poll().unwrap() {
                Some(ServerEvent::Request(d)) => {
                    assert_eq!((d.id, d.tag), (1, 1), "only the new client's request");
                    break;
                }
                Some(e) => events.push(e),
                None => thread::yield_now(),
            }
        }
        assert_eq!(
            events,
            [
                ServerEvent::ClientRestarted { generation: 2 },
                ServerEvent::Abandoned {
                    request: Descriptor {
                        offset: 0,
                        len: 4,
                        id: 0,
                        tag: 1
                    },
                    started: true
                },
                ServerEvent::Connected {
                    client_generation: 2
                },
            ]
        );
        client.join().unwrap();
    });
}
