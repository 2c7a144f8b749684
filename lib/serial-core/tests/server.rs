//! The driver and the sequence client with a fake UART: flow control,
//! interleaving, receive, interrupt policy, restart, and the checks.

mod common;

use axolotl_ring::{ClientEvent, Corruption, Descriptor, Error, Index, Signal};
use axolotl_serial_core::{
    ConnId, FakeUart, Irqs, RxError, SeqClient, SeqClientError, SeqError, Uart,
};
use common::*;

/// Polls clients and driver until neither does anything.
fn settle<const N: usize>(s: &mut Driver<N>, cs: &mut [&mut SeqClient<IDS>]) {
    for _ in 0..20 {
        for c in cs.iter_mut() {
            let _ = c.poll().unwrap();
        }
        let act = s.poll();
        assert!(act.faults.is_empty(), "{act:?}");
        check_irq_policy(s);
    }
}

/// The TX interrupt is enabled only while bytes wait for FIFO room, which
/// the driver only concludes from a full FIFO.
fn check_irq_policy<const N: usize>(s: &Driver<N>) {
    if s.irq_mask().contains(Irqs::TX) {
        assert_eq!(
            s.uart().tx_level(),
            fifo_depth(s),
            "TX irq on with FIFO room"
        );
    }
}

fn fifo_depth<const N: usize>(s: &Driver<N>) -> usize {
    // The fake exposes its depth through behaviour only: fill a clone.
    let mut u = s.uart().clone();
    let mut n = u.tx_level();
    while u.try_write(0) {
        n += 1;
    }
    n
}

fn shift_all(u: &mut FakeUart, wire: &mut Vec<u8>) {
    while let Some(b) = u.shift_out() {
        wire.push(b);
    }
}

#[test]
fn flow_control_with_a_full_fifo() {
    let links = [Link::new()];
    let mut c = links[0].seq_client("alpha", 4, Some(3));
    let mut s = driver(FakeUart::new(4), &links, None, 1);
    assert_eq!(s.irq_mask(), Irqs::NONE);
    settle(&mut s, &mut [&mut c]);
    // "alpha 0\n" is 8 bytes: the FIFO holds 4, the rest waits for room.
    assert_eq!(s.uart().tx_level(), 4);
    assert_eq!(s.irq_mask(), Irqs::TX, "TX irq while bytes wait");
    assert_eq!(c.expected(), 0, "nothing complete before its last byte");
    let mut wire = Vec::new();
    let mut completed_at = Vec::new();
    for _ in 0..100 {
        if let Some(b) = s.uart_mut().shift_out() {
            wire.push(b);
        }
        if s.uart().line() {
            let act = s.on_irq();
            assert!(act.irqs.contains(Irqs::TX));
            check_irq_policy(&s);
        }
        let before = c.expected();
        let _ = c.poll().unwrap();
        if c.expected() > before {
            completed_at.push((before, wire.len(), s.uart().tx_level()));
        }
        let _ = s.poll();
        check_irq_policy(&s);
    }
    assert_eq!(wire, b"alpha 0\nalpha 1\nalpha 2\n");
    // Each completion came while its last byte was still in the FIFO.
    for (seq, on_wire, in_fifo) in completed_at {
        let end = 8 * (seq as usize + 1);
        assert!(on_wire < end && on_wire + in_fifo >= end, "seq {seq}");
    }
    assert_eq!(c.expected(), 3);
    assert_eq!(s.irq_mask(), Irqs::NONE, "idle: no TX irq");
    let st = c.stats();
    assert_eq!((st.sent, st.completed, st.resubmitted), (3, 3, 0));
    assert_eq!(s.stats().tx_completed, 3);
}

#[test]
fn two_clients_interleave_by_whole_messages() {
    let links = [Link::new(), Link::new()];
    let mut a = links[0].seq_client("a", 4, Some(6));
    let mut b = links[1].seq_client("b", 4, Some(6));
    let mut s = driver(FakeUart::new(8), &links, None, 1);
    let mut wire = Vec::new();
    for _ in 0..50 {
        settle(&mut s, &mut [&mut a, &mut b]);
        shift_all(s.uart_mut(), &mut wire);
        let _ = s.on_irq();
    }
    let expect: Vec<u8> = (0..6)
        .flat_map(|i| [msg("a", i), msg("b", i)])
        .flatten()
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&wire),
        String::from_utf8_lossy(&expect)
    );
    assert!(a.is_done() && b.is_done());
    assert_eq!(s.irq_mask(), Irqs::NONE);
}

#[test]
fn tx_irq_mask_is_written_only_on_change() {
    let links = [Link::new()];
    let mut c = links[0].seq_client("a", 1, Some(1));
    let mut s = driver(FakeUart::new(32), &links, None, 1);
    settle(&mut s, &mut [&mut c]);
    assert!(c.is_done(), "fits the FIFO: no interrupt needed at all");
    assert_eq!(s.uart().mask_writes, 1, "only the reset by Server::new");
    for _ in 0..5 {
        let _ = s.poll();
    }
    assert_eq!(s.uart().mask_writes, 1);
}

#[test]
fn received_bytes_go_to_posted_buffers() {
    let links = [Link::new()];
    let rx = Link::new();
    let mut s = driver(FakeUart::new(16), &links, Some(&rx), 1);
    let mut rc = rx.ring_client();
    // Handshake.
    for _ in 0..3 {
        while rc.poll().unwrap().is_some() {}
        let _ = s.poll();
    }
    assert!(rc.is_connected() && s.is_connected(ConnId::Rx));
    // No buffer posted: bytes wait in the UART, RX interrupts stay off.
    for &b in b"hi" {
        assert!(s.uart_mut().inject_rx(b));
    }
    let _ = s.poll();
    assert_eq!(s.uart().rx_level(), 2);
    assert_eq!(s.irq_mask(), Irqs::NONE);
    // Two 8-byte buffers.
    let _ = rc.submit(0, 0, 8).unwrap();
    let _ = rc.submit(1, 32, 8).unwrap();
    let act = s.poll();
    assert!(act.notify.is_empty() || act.notify.contains(ConnId::Rx));
    assert_eq!(s.uart().rx_level(), 0);
    assert_eq!(
        s.irq_mask(),
        Irqs::RX | Irqs::RX_TIMEOUT,
        "a buffer is posted"
    );
    match rc.poll().unwrap() {
        Some(ClientEvent::Completed(d)) => {
            assert_eq!((d.id, d.len), (0, 2), "delivered when the FIFO ran dry");
            assert_eq!(rx.data.bytes(0, 2), b"hi");
        }
        e => panic!("{e:?}"),
    }
    for &b in b"hello world" {
        assert!(s.uart_mut().inject_rx(b));
    }
    assert!(s.uart().line(), "RX interrupt raised");
    let act = s.on_irq();
    assert!(act.irqs.contains(Irqs::RX));
    assert_eq!(s.uart().rx_level(), 3, "the rest waits for a buffer");
    assert_eq!(s.irq_mask(), Irqs::NONE, "no buffer: RX interrupts off");
    match rc.poll().unwrap() {
        Some(ClientEvent::Completed(d)) => {
            assert_eq!((d.id, d.len), (1, 8));
            assert_eq!(rx.data.bytes(32, 8), b"hello wo");
        }
        e => panic!("{e:?}"),
    }
    let _ = rc.submit(0, 0, 8).unwrap();
    // A damaged byte is counted and dropped.
    assert!(s.uart_mut().inject_rx_error(RxError::Framing));
    let _ = s.poll();
    match rc.poll().unwrap() {
        Some(ClientEvent::Completed(d)) => {
            assert_eq!((d.id, d.len), (0, 3));
            assert_eq!(rx.data.bytes(0, 3), b"rld");
        }
        e => panic!("{e:?}"),
    }
    let st = s.stats();
    assert_eq!((st.rx_bytes, st.rx_completed, st.rx_errors), (13, 3, 1));
}

#[test]
fn driver_restart_mid_message_resubmits_without_gaps_or_duplicates() {
    let links = [Link::new()];
    let mut c = links[0].seq_client("alpha", 2, Some(3));
    let mut s = driver(FakeUart::new(4), &links, None, 1);
    settle(&mut s, &mut [&mut c]);
    assert_eq!(c.in_flight(), 2);
    assert_eq!(s.uart().tx_level(), 4, "\"alph\" in the FIFO");
    // Crash: the monitor reloads the image; the UART keeps its FIFO.
    let uart = s.into_uart();
    let mut s = driver(uart, &links, None, 2);
    let mut wire = Vec::new();
    for _ in 0..40 {
        settle(&mut s, &mut [&mut c]);
        shift_all(s.uart_mut(), &mut wire);
        let _ = s.on_irq();
    }
    assert_eq!(
        wire, b"alphalpha 0\nalpha 1\nalpha 2\n",
        "at-least-once on the wire"
    );
    assert!(c.is_done());
    let st = c.stats();
    assert_eq!(
        (st.sent, st.completed, st.resubmitted, st.driver_restarts),
        (3, 3, 2, 1)
    );
}

#[test]
fn completions_before_the_crash_are_kept() {
    let links = [Link::new()];
    let mut c = links[0].seq_client("a", 4, Some(8));
    let mut s = driver(FakeUart::new(6), &links, None, 7);
    for _ in 0..10 {
        let _ = c.poll().unwrap();
        let _ = s.poll();
        if s.stats().tx_completed > 0 {
            break;
        }
    }
    // "a 0\n" completed (4 bytes in FIFO), "a 1\n" partly in: crash before
    // the client has seen the completion.
    assert_eq!(s.stats().tx_completed, 1);
    assert_eq!(c.expected(), 0);
    let uart = s.into_uart();
    let mut s = driver(uart, &links, None, 8);
    let mut wire = Vec::new();
    for _ in 0..40 {
        settle(&mut s, &mut [&mut c]);
        shift_all(s.uart_mut(), &mut wire);
        let _ = s.on_irq();
    }
    assert!(c.is_done());
    let st = c.stats();
    assert_eq!(
        (st.completed, st.resubmitted, st.driver_restarts),
        (8, 3, 1)
    );
    for i in 0..8 {
        assert!(contains(&wire, &msg("a", i)), "a {i}");
    }
    assert!(
        !contains(&wire[4..], &msg("a", 0)),
        "seq 0 was completed: not re-sent"
    );
}

#[test]
fn client_scribbling_its_request_tail_is_reported_once_and_others_go_on() {
    let links = [Link::new(), Link::new()];
    let mut a = links[0].seq_client("a", 2, None);
    let mut b = links[1].seq_client("b", 2, Some(5));
    let mut s = driver(FakeUart::new(32), &links, None, 1);
    settle(&mut s, &mut [&mut a, &mut b]);
    links[0].rings.write_u32(REQ_Q + Q_TAIL, 1000);
    let act = s.poll();
    assert!(act.faults.contains(ConnId::Tx(0)));
    assert!(!act.faults.contains(ConnId::Tx(1)));
    assert!(matches!(
        s.fault(ConnId::Tx(0)),
        Some(
            Corruption::IndexOverrun {
                index: Index::Tail,
                ..
            } | Corruption::IndexRegressed { .. }
        )
    ));
    assert!(s.poll().faults.is_empty(), "reported once");
    let mut wire = Vec::new();
    for _ in 0..20 {
        let _ = b.poll().unwrap();
        let _ = s.poll();
        shift_all(s.uart_mut(), &mut wire);
    }
    assert!(b.is_done(), "the other client is still served");
}

#[test]
fn descriptor_outside_the_data_region_is_reported_not_followed() {
    let links = [Link::new()];
    let mut rc = links[0].ring_client();
    let mut s = driver(FakeUart::new(32), &links, None, 3);
    for _ in 0..3 {
        while rc.poll().unwrap().is_some() {}
        let _ = s.poll();
    }
    assert!(s.is_connected(ConnId::Tx(0)));
    // The client writes a request pointing past its data region.
    let len = links[0].data.len() as u32;
    write_slot(&links[0].rings, REQ_Q, 0, [len - 2, 8, 0, 3]);
    links[0].rings.write_u32(REQ_Q + Q_TAIL, 1);
    let act = s.poll();
    assert!(act.faults.contains(ConnId::Tx(0)));
    assert_eq!(
        s.fault(ConnId::Tx(0)),
        Some(Corruption::BufferOutOfBounds {
            offset: len - 2,
            len: 8,
            region_len: len as usize
        })
    );
    assert_eq!(s.uart().tx_level(), 0, "nothing sent from it");
    // An offset + len that overflows u32.
    let links = [Link::new()];
    let mut rc = links[0].ring_client();
    let mut s = driver(FakeUart::new(32), &links, None, 3);
    for _ in 0..3 {
        while rc.poll().unwrap().is_some() {}
        let _ = s.poll();
    }
    write_slot(&links[0].rings, REQ_Q, 0, [u32::MAX, 2, 0, 3]);
    links[0].rings.write_u32(REQ_Q + Q_TAIL, 1);
    assert!(s.poll().faults.contains(ConnId::Tx(0)));
    assert!(matches!(
        s.fault(ConnId::Tx(0)),
        Some(Corruption::BufferOverflow { .. })
    ));
}

#[test]
fn client_scribbling_the_response_head_is_reported() {
    let links = [Link::new()];
    let mut rc = links[0].ring_client();
    let mut s = driver(FakeUart::new(32), &links, None, 1);
    for _ in 0..3 {
        while rc.poll().unwrap().is_some() {}
        let _ = s.poll();
    }
    for id in 0..4 {
        let _ = rc.submit(id, id * 32, 4).unwrap();
    }
    let _ = s.poll();
    assert_eq!(s.stats().tx_completed, 4);
    assert!(matches!(rc.poll(), Ok(Some(ClientEvent::Completed(_)))));
    links[0].rings.write_u32(resp_q(CAP) + Q_HEAD, 1000);
    let _ = rc.submit(0, 0, 4).unwrap();
    let act = s.poll();
    assert!(act.faults.contains(ConnId::Tx(0)));
    assert!(matches!(
        s.fault(ConnId::Tx(0)),
        Some(Corruption::IndexOverrun {
            index: Index::Head,
            ..
        })
    ));
    assert_eq!(
        s.stats().tx_completed,
        4,
        "no completion into a corrupt queue"
    );
}

#[test]
fn driver_scribbling_responses_is_a_ring_error_for_the_client() {
    let links = [Link::new()];
    let mut c = links[0].seq_client("a", 2, Some(4));
    let mut s = driver(FakeUart::new(2), &links, None, 1);
    settle(&mut s, &mut [&mut c]);
    write_slot(&links[0].rings, resp_q(CAP), 0, [0, 4, 99, 1]);
    links[0].rings.write_u32(resp_q(CAP) + Q_TAIL, 1);
    let e = SeqClientError::Ring(Error::Corrupt(Corruption::UnknownId { id: 99 }));
    assert_eq!(c.poll(), Err(e));
    assert_eq!(c.poll(), Err(e), "sticky until the driver restarts");
    // The monitor restarts the driver: the client recovers.
    let uart = s.into_uart();
    let mut s = driver(uart, &links, None, 2);
    let mut wire = Vec::new();
    for _ in 0..40 {
        settle(&mut s, &mut [&mut c]);
        shift_all(s.uart_mut(), &mut wire);
        let _ = s.on_irq();
    }
    assert!(c.is_done());
    assert_eq!(c.stats().driver_restarts, 1);
}

/// A hand-driven driver that misbehaves honestly (valid ring traffic).
fn raw_server(link: &Link) -> axolotl_ring::Server<IDS> {
    link.ring_server(1)
}

fn take_two(link: &Link) -> (SeqClient<IDS>, axolotl_ring::Server<IDS>, [Descriptor; 2]) {
    let mut c = link.seq_client("a", 2, None);
    let mut s = raw_server(link);
    let mut got = Vec::new();
    for _ in 0..4 {
        let _ = c.poll().unwrap();
        while let Some(e) = s.poll().unwrap() {
            if let axolotl_ring::ServerEvent::Request(d) = e {
                got.push(d);
            }
        }
    }
    (c, s, [got[0], got[1]])
}

#[test]
fn out_of_order_completion_is_a_seq_error() {
    let link = Link::new();
    let (mut c, mut s, [_, second]) = take_two(&link);
    let _: Signal = s.respond(second.id, second.len).unwrap();
    assert_eq!(
        c.poll(),
        Err(SeqClientError::Seq(SeqError {
            expected: 0,
            got: 1
        }))
    );
}

#[test]
fn short_completion_is_an_error() {
    let link = Link::new();
    let (mut c, mut s, [first, _]) = take_two(&link);
    let _ = s.respond(first.id, 2).unwrap();
    assert_eq!(
        c.poll(),
        Err(SeqClientError::Short {
            seq: 0,
            len: 4,
            sent: 2
        })
    );
}

#[test]
fn messages_are_formatted_as_name_space_seq_newline() {
    let link = Link::new();
    let (_, _, [first, second]) = take_two(&link);
    assert_eq!(
        link.data.bytes(first.offset as usize, first.len as usize),
        b"a 0\n"
    );
    assert_eq!(
        link.data.bytes(second.offset as usize, second.len as usize),
        b"a 1\n"
    );
    let mut out = [0; axolotl_serial_core::MSG_SLOT];
    let name = [b'x'; axolotl_serial_core::MAX_NAME];
    let n = axolotl_serial_core::format_message(&name, u32::MAX, &mut out);
    assert_eq!(&out[n - 11..n], b"4294967295\n");
    assert!(
        SeqClient::<IDS>::new(
            "bad name",
            link.rings.region(),
            link.data.region(),
            CAP,
            link.client_generations(),
            1,
            None
        )
        .is_err()
    );
}

#[test]
fn client_restart_abandons_its_messages_and_the_driver_goes_on() {
    let links = [Link::new(), Link::new()];
    let mut a = links[0].seq_client("alpha", 4, Some(3));
    let mut b = links[1].seq_client("beta", 4, Some(3));
    let mut s = driver(FakeUart::new(4), &links, None, 1);
    settle(&mut s, &mut [&mut a, &mut b]);
    assert_eq!(
        s.held(ConnId::Tx(0)),
        3,
        "alpha's messages held, one on the wire"
    );
    // Client "alpha" dies and comes back (generation + 1, state lost).
    let mut a = links[0].seq_client("alpha", 4, Some(2));
    let mut wire = Vec::new();
    for _ in 0..60 {
        settle(&mut s, &mut [&mut a, &mut b]);
        shift_all(s.uart_mut(), &mut wire);
        let _ = s.on_irq();
    }
    assert!(a.is_done() && b.is_done());
    assert_eq!(s.stats().abandoned, 3);
    let wire = String::from_utf8_lossy(&wire);
    // The interrupted message left a fragment; beta is whole and in order.
    assert!(wire.starts_with("alph"), "{wire}");
    for i in 0..3 {
        assert_eq!(wire.matches(&format!("beta {i}\n")).count(), 1, "{wire}");
    }
    for i in 0..2 {
        assert!(wire.contains(&format!("alpha {i}\n")), "{wire}");
    }
}

/// Runs only what a PD would run: init once, then a side only when notified
/// (or, for the driver, on its interrupt line).
#[test]
fn notifications_alone_drive_handshake_traffic_and_restart() {
    for (driver_first, restart_at) in [
        (true, None),
        (false, None),
        (true, Some(9)),
        (false, Some(30)),
    ] {
        let links = [Link::new(), Link::new()];
        let (mut s, mut a, mut b);
        let mut to_driver = false;
        let mut to_client = [false, false];
        if driver_first {
            s = driver(FakeUart::new(4), &links, None, 1);
            let act = s.poll();
            to_client = [0, 1].map(|i| act.notify.contains(ConnId::Tx(i)));
            a = links[0].seq_client("a", 2, Some(5));
            b = links[1].seq_client("b", 3, Some(5));
            to_driver |= a.poll().unwrap().notify | b.poll().unwrap().notify;
        } else {
            a = links[0].seq_client("a", 2, Some(5));
            b = links[1].seq_client("b", 3, Some(5));
            to_driver |= a.poll().unwrap().notify | b.poll().unwrap().notify;
            s = driver(FakeUart::new(4), &links, None, 1);
            let act = s.poll();
            to_client = [0, 1].map(|i| to_client[i] | act.notify.contains(ConnId::Tx(i)));
        }
        let mut wire = Vec::new();
        for k in 0..2000 {
            if a.is_done() && b.is_done() {
                break;
            }
            if restart_at == Some(k) {
                // The restarted driver's first poll tells the clients.
                let uart = s.into_uart();
                s = driver(uart, &links, None, 2);
                let act = s.poll();
                for (i, notified) in to_client.iter_mut().enumerate() {
                    assert!(act.notify.contains(ConnId::Tx(i)));
                    *notified = true;
                }
            }
            if to_client[0] {
                to_client[0] = false;
                to_driver |= a.poll().unwrap().notify;
            }
            if to_client[1] {
                to_client[1] = false;
                to_driver |= b.poll().unwrap().notify;
            }
            let mut act = None;
            if to_driver {
                to_driver = false;
                act = Some(s.poll());
            } else if s.uart().line() {
                act = Some(s.on_irq());
            }
            if let Some(act) = act {
                assert!(!act.again);
                for (i, notified) in to_client.iter_mut().enumerate() {
                    *notified |= act.notify.contains(ConnId::Tx(i));
                }
            }
            if let Some(byte) = s.uart_mut().shift_out() {
                wire.push(byte);
            }
        }
        assert!(a.is_done() && b.is_done(), "{driver_first} {restart_at:?}");
        if restart_at.is_some() {
            assert_eq!(a.stats().driver_restarts + b.stats().driver_restarts, 2);
        }
    }
}
