//! The driver's side checks everything the client sends and answers what it refuses; writes
//! complete after the device's completion; flushes order; a lying device is detected.

mod common;

use std::ptr::NonNull;

use axolotl_blk::{BlkServer, CMD_BYTES, Completion, DATA_START, Op, Request, SECTOR_SIZE, Status};
use axolotl_ring::{Authority, ClientEvent, Corruption, Generations};
use common::*;

const SECTORS: usize = 64;

fn raw_client(link: &Link) -> axolotl_ring::Client<IDS> {
    let g = Generations {
        own: 0,
        // SAFETY: the box lives as long as the link.
        peer: unsafe { Authority::new(NonNull::from(&*link.server_pd)) },
    };
    axolotl_ring::Client::new(link.rings.region(), link.data.region(), CAP, g).unwrap()
}

fn connect(c: &mut axolotl_ring::Client<IDS>, s: &mut BlkServer<FakeDevice, IDS>) {
    for _ in 0..10 {
        let _ = s.poll();
        while let Some(ev) = c.poll().unwrap() {
            if let ClientEvent::Connected { .. } = ev {
                let _ = s.poll();
                return;
            }
        }
    }
    panic!("no handshake");
}

fn record(link: &Link, id: u32, op: u32, sector: u64) {
    let rec = id as usize * CMD_BYTES;
    link.data.write_u32(rec, op);
    link.data.write_u32(rec + 8, sector as u32);
    link.data.write_u32(rec + 12, (sector >> 32) as u32);
    link.data.write_u32(rec + 16, Status::PENDING);
}

fn status(link: &Link, id: u32) -> u32 {
    link.data.read_u32(id as usize * CMD_BYTES + 16)
}

#[test]
fn every_field_from_the_client_is_checked_and_refusals_are_answered() {
    let link = Link::new();
    let d = disk(SECTORS);
    let mut s = link.server(FakeDevice::new(d.clone(), 4, 4));
    let mut c = raw_client(&link);
    connect(&mut c, &mut s);
    let b = buffer_offset(0);
    let cases: [(u32, u64, u32, u32, Status); 7] = [
        (7, 0, b, 512, Status::Unsupported),
        (0, SECTORS as u64 - 1, b, 1024, Status::OutOfRange),
        (1, u64::MAX, b, 512, Status::OutOfRange),
        (0, 0, 0, 512, Status::BadBuffer),
        (0, 0, DATA_START as u32 - 512, 1024, Status::BadBuffer),
        (1, 0, b, 100, Status::BadBuffer),
        (0, 0, b, (MAX_BYTES + SECTOR_SIZE) as u32, Status::BadBuffer),
    ];
    for (id, (op, sector, offset, len, _)) in cases.iter().enumerate() {
        record(&link, id as u32, *op, *sector);
        let _ = c.submit(id as u32, *offset, *len).unwrap();
    }
    let _ = s.poll();
    let mut answered = 0;
    while let Some(ev) = c.poll().unwrap() {
        if let ClientEvent::Completed(dsc) = ev {
            assert_eq!(dsc.len, 0, "a refusal transfers nothing");
            let want = cases[dsc.id as usize].4;
            assert_eq!(status(&link, dsc.id), want.code(), "case {}", dsc.id);
            answered += 1;
        }
    }
    assert_eq!(answered, cases.len());
    assert_eq!(
        s.device().submitted,
        0,
        "nothing refused reached the device"
    );
    assert_eq!(s.stats().refused, cases.len() as u64);
    assert!(s.fault().is_none(), "bad requests are answered, not faults");

    // The last sector is fine; a flush's buffer is not looked at.
    record(&link, 0, Op::Read.code(), SECTORS as u64 - 1);
    let _ = c.submit(0, b, 512).unwrap();
    record(&link, 1, Op::Flush.code(), u64::MAX);
    let _ = c.submit(1, 0, 0).unwrap();
    let _ = s.poll();
    assert_eq!(s.device().submitted, 1, "the flush waits for the read");
    s.device().complete(0);
    let _ = s.poll();
    assert_eq!(s.device().submitted, 2);
}

#[test]
fn an_id_reused_while_in_flight_is_a_fault_not_a_panic() {
    let link = Link::new();
    let mut s = link.server(FakeDevice::new(disk(SECTORS), 4, 4));
    let mut c = raw_client(&link);
    connect(&mut c, &mut s);
    record(&link, 0, Op::Read.code(), 0);
    let _ = c.submit(0, buffer_offset(0), 512).unwrap();
    // A second request with id 0 written straight into the request queue (lib/ring's
    // layout: the queue at 128, its tail first, slots from +128), as a lying client would,
    // sealed with its position (1) as lib/ring's producer seals it.
    let slot = 128 + 128 + 16;
    let dup = axolotl_ring::Descriptor {
        offset: buffer_offset(1),
        len: 512,
        id: 0,
        tag: 1,
    };
    for (k, w) in axolotl_ring::slot_words(dup, 1).into_iter().enumerate() {
        link.rings.write_u32(slot + 4 * k, w);
    }
    link.rings.write_u32(128, 2);
    let act = s.poll();
    assert_eq!(act.fault, Some(Corruption::DuplicateId { id: 0 }));
    assert_eq!(s.fault(), Some(Corruption::DuplicateId { id: 0 }));
    assert!(s.poll().fault.is_none(), "reported once");
}

fn run(
    c: &mut axolotl_blk::BlkClient<IDS>,
    s: &mut BlkServer<FakeDevice, IDS>,
    out: &mut Vec<Completion>,
) {
    for _ in 0..4 {
        let _ = s.poll();
        let _ = c.poll(|x| out.push(x)).unwrap();
    }
}

#[test]
fn a_write_completes_only_after_the_device_completed_it() {
    let link = Link::new();
    let d = disk(SECTORS);
    let mut s = link.server(FakeDevice::new(d.clone(), 4, 4));
    let mut c = link.client();
    let mut out = Vec::new();
    run(&mut c, &mut s, &mut out);
    let b = buffer_offset(0);
    assert!(c.data().copy_in(b as usize, &[0x5a; 1024]));
    let w = Request {
        op: Op::Write,
        sector: 3,
        offset: b,
        len: 1024,
    };
    c.submit(w, 42).unwrap();
    run(&mut c, &mut s, &mut out);
    assert!(out.is_empty(), "no completion before the device's");
    assert_eq!(s.device().in_device.len(), 1);
    assert!(s.device().complete(0));
    run(&mut c, &mut s, &mut out);
    assert_eq!(
        out,
        [Completion {
            user: 42,
            request: w,
            status: Status::Ok
        }]
    );
    assert!(d.borrow().data[3 * 512..5 * 512].iter().all(|&x| x == 0x5a));
}

#[test]
fn a_flush_waits_for_earlier_requests_and_holds_later_ones() {
    let link = Link::new();
    let mut s = link.server(FakeDevice::new(disk(SECTORS), 4, 4));
    let mut c = link.client();
    let mut out = Vec::new();
    run(&mut c, &mut s, &mut out);
    let req = |op, sector, i| Request {
        op,
        sector,
        offset: buffer_offset(i),
        len: 512,
    };
    c.submit(req(Op::Write, 1, 0), 1).unwrap();
    c.submit(req(Op::Write, 2, 1), 2).unwrap();
    c.submit(
        Request {
            op: Op::Flush,
            sector: 0,
            offset: 0,
            len: 0,
        },
        3,
    )
    .unwrap();
    c.submit(req(Op::Read, 1, 2), 4).unwrap();
    run(&mut c, &mut s, &mut out);
    let ops = |s: &mut BlkServer<FakeDevice, IDS>| -> Vec<_> {
        s.device().in_device.iter().map(|r| (r.1, r.2)).collect()
    };
    use axolotl_blk::DeviceOp as D;
    assert_eq!(ops(&mut s), [(D::Write, 1), (D::Write, 2)]);
    s.device().complete(1);
    run(&mut c, &mut s, &mut out);
    assert_eq!(
        ops(&mut s),
        [(D::Write, 1)],
        "the flush waits for every earlier write"
    );
    s.device().complete(0);
    run(&mut c, &mut s, &mut out);
    assert_eq!(
        ops(&mut s),
        [(D::Flush, 0)],
        "and the read waits for the flush"
    );
    s.device().complete(0);
    run(&mut c, &mut s, &mut out);
    assert_eq!(ops(&mut s), [(D::Read, 1)]);
    s.device().complete(0);
    run(&mut c, &mut s, &mut out);
    let users: Vec<u64> = out.iter().map(|x| x.user).collect();
    assert_eq!(users, [2, 1, 3, 4]);
    assert!(out.iter().all(|x| x.status == Status::Ok));
}

#[test]
fn a_device_that_completes_what_it_never_got_is_reported_broken() {
    let link = Link::new();
    let mut s = link.server(FakeDevice::new(disk(SECTORS), 4, 4));
    let mut c = link.client();
    let mut out = Vec::new();
    run(&mut c, &mut s, &mut out);
    s.device().inject_bogus = Some(2);
    let act = s.poll();
    assert!(act.device_broken.is_some());
    assert!(s.poll().device_broken.is_some(), "and stays so until reset");
    s.device().inject_bogus = Some(99);
    let link2 = Link::new();
    let mut s2 = link2.server(FakeDevice::new(disk(SECTORS), 4, 4));
    s2.device().inject_bogus = Some(99);
    assert!(s2.poll().device_broken.is_some(), "a slot out of range too");
}

#[test]
fn a_driver_restart_reissues_every_request_in_its_original_order() {
    let link = Link::new();
    let d = disk(SECTORS);
    let mut s = link.server(FakeDevice::new(d.clone(), 4, 2));
    let mut c = link.client();
    let mut out = Vec::new();
    run(&mut c, &mut s, &mut out);
    for i in 0..6u64 {
        let r = Request {
            op: Op::Write,
            sector: 10 + i,
            offset: buffer_offset(i as usize),
            len: 512,
        };
        c.submit(r, i).unwrap();
    }
    run(&mut c, &mut s, &mut out);
    s.device().complete(1); // sector 11 done, 10 still in the device
    let _ = s.poll(); // answered; the device takes sector 12
    // The driver dies; the next one resets the device, which drops what it held.
    s.device().reset(|_| false);
    drop(s);
    let mut s = link.restart_server(FakeDevice::new(d.clone(), 8, 8));
    run(&mut c, &mut s, &mut out);
    let sectors: Vec<u64> = s.device().in_device.iter().map(|r| r.2).collect();
    assert_eq!(sectors, [10, 12, 13, 14, 15], "re-issued oldest first");
    while s.device().complete(0) {}
    run(&mut c, &mut s, &mut out);
    let mut users: Vec<u64> = out.iter().map(|x| x.user).collect();
    users.sort();
    assert_eq!(users, [0, 1, 2, 3, 4, 5], "each exactly once");
    assert_eq!(c.stats().driver_restarts, 1);
    assert_eq!(c.stats().reissued, 5);
    assert_eq!(c.outstanding(), 0);
}

/// The capacity reaches the client through the connection (sDDF's `blk_storage_info`):
/// published by each server incarnation, read and checked by the client, which believes no
/// record a server would not write.
#[test]
fn the_server_publishes_the_capacity_and_the_client_checks_it() {
    use axolotl_blk::{INFO_OFFSET, INFO_READY, MAX_CAPACITY, StorageInfo};
    let link = Link::new();
    let client = link.client();
    assert_eq!(client.storage_info(), None, "nothing published yet");
    let d = disk(SECTORS);
    let server = link.server(FakeDevice::new(d.clone(), 2, 2));
    let want = Some(StorageInfo {
        capacity: SECTORS as u64,
    });
    assert_eq!(client.storage_info(), want);
    drop(server);
    // A restarted server publishes it again, over whatever the client wrote there.
    link.data.write_u32(INFO_OFFSET, 0);
    assert_eq!(client.storage_info(), None);
    let _server = link.restart_server(FakeDevice::new(d, 2, 2));
    assert_eq!(client.storage_info(), want);

    // Records no server writes.
    let set_capacity = |c: u64| {
        link.data.write_u32(INFO_OFFSET + 8, c as u32);
        link.data.write_u32(INFO_OFFSET + 12, (c >> 32) as u32);
    };
    for c in [0, MAX_CAPACITY + 1, u64::MAX] {
        set_capacity(c);
        assert_eq!(client.storage_info(), None, "capacity {c}");
    }
    set_capacity(MAX_CAPACITY);
    assert_eq!(
        client.storage_info(),
        Some(StorageInfo {
            capacity: MAX_CAPACITY
        })
    );
    link.data.write_u32(INFO_OFFSET + 4, 4096);
    assert_eq!(client.storage_info(), None, "sector size");
    link.data.write_u32(INFO_OFFSET + 4, SECTOR_SIZE as u32);
    link.data.write_u32(INFO_OFFSET, INFO_READY + 1);
    assert_eq!(client.storage_info(), None, "not ready");
}

/// Direct DMA (the device works on the client's buffers in place): a client that restarts
/// while the device still reads or writes one of its buffers gets its connection back only
/// once the device is done with it, so a late DMA never lands in a buffer the new
/// incarnation already reuses (nor takes data it already put there).
#[test]
fn a_restarted_client_is_held_off_until_the_device_has_left_its_buffers() {
    let link = Link::new();
    let d = disk(SECTORS);
    d.borrow_mut().data[..MAX_BYTES].fill(0xd1);
    let mut s = link.server(FakeDevice::direct(d.clone(), 4, 4, &link));
    let mut c = link.client();
    let mut out = Vec::new();
    run(&mut c, &mut s, &mut out);
    assert!(c.is_connected());
    let r = Request {
        op: Op::Read,
        sector: 0,
        offset: buffer_offset(0),
        len: MAX_BYTES as u32,
    };
    c.submit(r, 7).unwrap();
    run(&mut c, &mut s, &mut out);
    assert_eq!(s.in_device(), 1);
    // The client restarts; its read is still in the device.
    link.client_pd
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut c = link.client();
    run(&mut c, &mut s, &mut out);
    assert!(
        !c.is_connected(),
        "the new client was let in while the device still writes its buffer"
    );
    assert!(s.device().complete(0));
    run(&mut c, &mut s, &mut out);
    assert!(c.is_connected(), "connected once the device is done");
    assert!(out.is_empty(), "the dead client's read is not answered");
    assert_eq!(s.stats().abandoned, 1);
    // The new incarnation's buffer 0 is its own from now on: a write from it reaches the
    // disk as written.
    assert!(c.data().copy_in(buffer_offset(0) as usize, &[0x5a; 512]));
    let w = Request {
        op: Op::Write,
        sector: 3,
        offset: buffer_offset(0),
        len: 512,
    };
    c.submit(w, 8).unwrap();
    run(&mut c, &mut s, &mut out);
    assert!(s.device().complete(0));
    run(&mut c, &mut s, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        d.borrow().data[3 * SECTOR_SIZE..4 * SECTOR_SIZE],
        [0x5a; 512]
    );
}
