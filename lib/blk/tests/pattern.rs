//! The storage test's workload on the fake device, with driver restarts while it writes and
//! while it reads: it finishes, nothing failed, everything read back matched, and the disk
//! holds the pattern. And it notices a disk that does not.

mod common;

use axolotl_blk::SECTOR_SIZE;
use axolotl_blk::pattern::{PatternClient, Phase, pattern_sector};
use common::*;

const SECTORS: u64 = 64;
const SEED: u64 = 0x5eed_0015;

fn drive(corrupt_at: Option<u64>) -> (axolotl_blk::pattern::PatternStats, Disk, u64) {
    let link = Link::new();
    let d = disk(SECTORS as usize + 16);
    let mut server = link.server(FakeDevice::direct(d.clone(), 3, 3, &link));
    let mut p = PatternClient::new(link.client(), SEED, SECTORS, MAX_SECTORS as u32).unwrap();
    let mut restarts = 0;
    let mut last_phase = Phase::Writing;
    for step in 0..10_000u64 {
        let _ = p.poll().unwrap();
        let _ = server.poll();
        server.device().complete(step as usize * 7);
        let _ = server.poll();
        if p.phase() != last_phase {
            last_phase = p.phase();
            if last_phase == Phase::Reading
                && let Some(s) = corrupt_at
            {
                d.borrow_mut().data[s as usize * SECTOR_SIZE] ^= 1;
            }
        }
        // Restarts in the middle of each phase, with requests in the device.
        if step % 9 == 4 && restarts < 6 && server.in_device() > 0 {
            server.device().reset(|i| i % 2 == 0);
            drop(server);
            server = link.restart_server(FakeDevice::direct(d.clone(), 3, 3, &link));
            restarts += 1;
        }
        if p.phase() == Phase::Done {
            assert!(p.client().stats().driver_restarts > 0);
            return (p.stats(), d, restarts);
        }
    }
    panic!(
        "the workload never finished: {:?} at {}",
        p.phase(),
        p.position()
    );
}

#[test]
fn the_pattern_survives_driver_restarts_in_both_phases() {
    let (stats, d, restarts) = drive(None);
    assert!(restarts >= 3, "restarts: {restarts}");
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.mismatched, 0);
    assert_eq!(stats.writes, SECTORS / MAX_SECTORS as u64);
    assert_eq!(stats.reads, SECTORS / MAX_SECTORS as u64);
    assert_eq!(stats.flushes, 1);
    let mut s = [0u8; SECTOR_SIZE];
    let d = d.borrow();
    for sector in 0..SECTORS {
        pattern_sector(SEED, sector, &mut s);
        let at = sector as usize * SECTOR_SIZE;
        assert_eq!(d.data[at..at + SECTOR_SIZE], s, "sector {sector}");
        assert_eq!(
            d.durable[at..at + SECTOR_SIZE],
            s,
            "sector {sector} durable"
        );
    }
    assert!(
        d.data[SECTORS as usize * SECTOR_SIZE..]
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn a_sector_that_changed_on_the_disk_is_counted() {
    let (stats, _, _) = drive(Some(17));
    assert_eq!(stats.mismatched, 1);
}

/// The blk campaign's failed recovery (docs/resilience.md, blk driver, id 2): a flip of a
/// ring index word while the client reads back. Whoever finds the ring corrupt reports
/// its peer; the client cannot be restarted, so the monitor restarts the driver either
/// way (a report against the client resets the connection through the driver's
/// restart). The workload must then finish with every request answered once, nothing
/// failed and nothing read back wrong: not stall after the re-issue.
fn flip_while_reading(
    word: usize,
    bit: u32,
    after: u64,
) -> Result<(axolotl_blk::pattern::PatternStats, u64), String> {
    let link = Link::new();
    let d = disk(SECTORS as usize + 16);
    let mut server = link.server(FakeDevice::direct(d.clone(), 3, 3, &link));
    let mut p = PatternClient::new(link.client(), SEED, SECTORS, MAX_SECTORS as u32).unwrap();
    let mut flipped = None;
    let mut restarts = 0;
    for step in 0..20_000u64 {
        let client_fault = p.poll().is_err();
        let act = server.poll();
        let server_fault = act.fault.is_some() || server.fault().is_some();
        server.device().complete(step as usize * 7);
        let _ = server.poll();
        if p.phase() == Phase::Reading && flipped.is_none() {
            flipped = Some(step + after);
        }
        if flipped == Some(step) {
            let v = link.rings.read_u32(word);
            link.rings.write_u32(word, v ^ (1 << bit));
        }
        if (client_fault || server_fault) && restarts < 4 {
            server.device().reset(|_| true);
            drop(server);
            server = link.restart_server(FakeDevice::direct(d.clone(), 3, 3, &link));
            restarts += 1;
        }
        if p.phase() == Phase::Done {
            return Ok((p.stats(), restarts));
        }
    }
    Err(format!(
        "the workload stalled after a flip of bit {bit} at {word:#x} ({restarts} restarts): {:?} at {}, client {:?}, server {:?}, in device {}, rings {:?}",
        p.phase(),
        p.position(),
        p.client().stats(),
        server.stats(),
        server.in_device(),
        [128, 192, 256 + 16 * CAP as usize, 320 + 16 * CAP as usize]
            .map(|w| link.rings.read_u32(w)),
    ))
}

#[test]
fn a_flipped_ring_index_while_reading_back_is_recovered_by_the_drivers_restart() {
    // lib/ring's layout: the request queue at 128 (tail +0, head +64), the response queue
    // at 256 + 16 * CAP.
    let resp = 256 + 16 * CAP as usize;
    let mut manifested = 0;
    let mut stalls = Vec::new();
    for (word, bits) in [
        (128, [0, 1, 2, 3]),
        (128 + 64, [0, 1, 2, 3]),
        (resp, [0, 1, 2, 3]),
        (resp + 64, [0, 1, 2, 3]),
    ] {
        for bit in bits {
            for after in [0, 1, 3] {
                let (stats, restarts) = match flip_while_reading(word, bit, after) {
                    Ok(r) => r,
                    Err(e) => {
                        stalls.push(e);
                        continue;
                    }
                };
                assert_eq!(stats.failed, 0, "{word:#x} bit {bit}");
                assert_eq!(stats.mismatched, 0, "{word:#x} bit {bit}");
                assert_eq!(stats.reads, SECTORS / MAX_SECTORS as u64);
                manifested += u32::from(restarts > 0);
            }
        }
    }
    assert!(stalls.is_empty(), "{}", stalls.join("\n"));
    assert!(manifested > 0, "no flip was noticed");
}

/// `poll_with` tells completions as they are taken, the driver's restart after the
/// completions of the same round, and every round's need to notify: what the storage
/// bench's restart pause is measured with (docs/benchmarks.md).
#[test]
fn poll_with_tells_completions_restarts_and_notifications_as_they_happen() {
    use axolotl_blk::pattern::PatternEvent;
    let link = Link::new();
    let d = disk(SECTORS as usize + 16);
    let mut server = link.server(FakeDevice::direct(d.clone(), 3, 3, &link));
    let mut p = PatternClient::new(link.client(), SEED, SECTORS, MAX_SECTORS as u32).unwrap();
    let mut events = Vec::new();
    let act = p.poll_with(|e| events.push(e)).unwrap();
    assert!(!act.notify, "told through the callback instead");
    assert!(events.contains(&PatternEvent::Notify), "{events:?}");
    // Connected, then requests in the device and a completion taken.
    for _ in 0..10 {
        let _ = server.poll();
        let _ = p.poll_with(|e| events.push(e)).unwrap();
        if server.in_device() > 1 {
            break;
        }
    }
    server.device().complete(0);
    let _ = server.poll();
    assert!(server.in_device() > 0, "requests left in the device");
    events.clear();
    // The driver dies with requests in the device; its next incarnation comes up.
    server.device().reset(|_| false);
    drop(server);
    let _server = link.restart_server(FakeDevice::direct(d.clone(), 3, 3, &link));
    let _ = p.poll_with(|e| events.push(e)).unwrap();
    let restarted = events
        .iter()
        .position(|e| *e == PatternEvent::DriverRestarted)
        .expect("the restart told");
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == PatternEvent::DriverRestarted)
            .count(),
        1
    );
    assert!(
        events[restarted..].contains(&PatternEvent::Notify),
        "the re-issues notified: {events:?}"
    );
    if let Some(c) = events.iter().position(|e| *e == PatternEvent::Completed) {
        assert!(
            c < restarted,
            "completions of the restart's round first: {events:?}"
        );
    }
}

/// Each request is published (and the driver told) as soon as its data is made, not after
/// the data of every free slot: the driver and device work on the first while the client
/// makes the next. Batched, a round with all slots free (as after a driver restart that
/// found nothing in the device) held its first request back for the whole batch's data
/// making, about 1 ms in the storage bench: what its "~1 ms idle wait" was
/// (docs/benchmarks.md).
#[test]
fn poll_with_publishes_each_request_before_making_the_next_ones_data() {
    use axolotl_blk::pattern::PatternEvent;
    let link = Link::new();
    let d = disk(SECTORS as usize + 16);
    let mut server = link.server(FakeDevice::direct(d.clone(), IDS, IDS, &link));
    // 4-sector requests: 16 of them, twice the client's slots.
    let mut p = PatternClient::new(link.client(), SEED, SECTORS, 4).unwrap();
    // Connect; the requests made before the driver answered go out together.
    for _ in 0..4 {
        let _ = p.poll_with(|_| {}).unwrap();
        let _ = server.poll();
    }
    assert_eq!(
        server.in_device(),
        IDS,
        "the first slots' requests in the device"
    );
    // The device finishes them all: every slot comes free in one round of the client.
    while server.device().complete(0) {}
    let _ = server.poll();
    let mut seen = Vec::new();
    let _ = p
        .poll_with(|e| {
            if e == PatternEvent::Notify {
                // The driver runs at once (as the PD of higher priority does).
                let _ = server.poll();
                seen.push(server.device().submitted);
            }
        })
        .unwrap();
    assert!(
        seen.len() >= 2,
        "the driver was told of each request: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[1] - w[0] <= 1) && seen.last() == Some(&(2 * IDS as u64)),
        "one more request in the device at each notification: {seen:?}"
    );
}
