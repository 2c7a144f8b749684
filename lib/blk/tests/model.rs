//! Model test: random request streams, random device completion orders and driver restarts
//! at every point (with the device's in-flight requests run or dropped by its reset). Every
//! request completes exactly once and OK, every read returns what the completed writes
//! left, and every flush makes durable what was written before it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axolotl_blk::{Completion, Op, Request, SECTOR_SIZE, Status};
use common::*;
use proptest::prelude::*;

const SECTORS: usize = 24;

#[derive(Clone, Debug)]
enum Step {
    Submit {
        op: u8,
        sector: u8,
        count: u8,
    },
    ClientPoll,
    ServerPoll,
    Complete(u8),
    /// The driver dies and restarts; its device reset runs the in-flight requests whose bit
    /// is set and drops the others.
    RestartDriver(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..8, 0u8..SECTORS as u8, 1u8..=MAX_SECTORS as u8)
            .prop_map(|(op, sector, count)| Step::Submit { op, sector, count }),
        3 => Just(Step::ClientPoll),
        3 => Just(Step::ServerPoll),
        4 => any::<u8>().prop_map(Step::Complete),
        1 => any::<u32>().prop_map(Step::RestartDriver),
    ]
}

/// What the test expects of one request in flight.
struct Flight {
    req: Request,
    buf: usize,
    /// A write's bytes.
    data: Vec<u8>,
}

/// A flush in flight: what the disk must durably hold once it completes (every write
/// submitted before it), and the sectors written since, which it need not cover.
struct FlushCheck {
    snapshot: Vec<u8>,
    excluded: BTreeSet<usize>,
}

struct Model {
    /// The disk as the completed writes left it.
    shadow: Vec<u8>,
    flights: BTreeMap<u64, Flight>,
    flushes: BTreeMap<u64, FlushCheck>,
    free_bufs: Vec<usize>,
    next_user: u64,
    completed: u64,
}

impl Model {
    fn sectors(r: &Request) -> std::ops::Range<usize> {
        let s = r.sector as usize;
        s..s + r.len as usize / SECTOR_SIZE
    }

    /// Overlapping requests are never in flight together when one of them writes: the rule
    /// every block layer keeps, and what makes re-issues idempotent.
    fn conflicts(&self, r: &Request) -> bool {
        let mine = Self::sectors(r);
        self.flights.values().any(|f| {
            f.req.op != Op::Flush
                && (f.req.op == Op::Write || r.op == Op::Write)
                && Self::sectors(&f.req).any(|s| mine.contains(&s))
        })
    }
}

fn pattern(user: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (user.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64 * 31) >> 3) as u8)
        .collect()
}

fn check_completion(m: &mut Model, c: Completion, link: &Link, d: &Disk) {
    let f = m
        .flights
        .remove(&c.user)
        .unwrap_or_else(|| panic!("request {} completed twice or never submitted", c.user));
    assert_eq!(c.status, Status::Ok, "request {} failed", c.user);
    assert_eq!(c.request, f.req);
    let range = Model::sectors(&f.req);
    let bytes = range.start * SECTOR_SIZE..range.end * SECTOR_SIZE;
    match f.req.op {
        Op::Write => m.shadow[bytes].copy_from_slice(&f.data),
        Op::Read => {
            let mut got = vec![0; f.req.len as usize];
            let c2 = link.client_view_copy_out(f.req.offset, &mut got);
            assert!(c2);
            assert_eq!(got, m.shadow[bytes], "read {} returned other data", c.user);
        }
        Op::Flush => {
            let fc = m.flushes.remove(&c.user).unwrap();
            let durable = &d.borrow().durable;
            for s in 0..SECTORS {
                if fc.excluded.contains(&s) {
                    continue;
                }
                let b = s * SECTOR_SIZE..(s + 1) * SECTOR_SIZE;
                assert_eq!(
                    durable[b.clone()],
                    fc.snapshot[b],
                    "flush {} completed, but sector {s} written before it is not durable",
                    c.user
                );
            }
        }
    }
    if f.req.op != Op::Flush {
        m.free_bufs.push(f.buf);
    }
    m.completed += 1;
}

trait ViewCopy {
    fn client_view_copy_out(&self, offset: u32, dst: &mut [u8]) -> bool;
}

impl ViewCopy for Link {
    fn client_view_copy_out(&self, offset: u32, dst: &mut [u8]) -> bool {
        for (i, b) in dst.iter_mut().enumerate() {
            let at = offset as usize + i;
            let w = self.data.read_u32(at & !3);
            *b = (w >> (8 * (at & 3))) as u8;
        }
        true
    }
}

fn run(steps: Vec<Step>, slots: usize, limit: usize, direct: bool) {
    let link = Link::new();
    let d = disk(SECTORS);
    let dev = |link: &Link| {
        if direct {
            FakeDevice::direct(d.clone(), slots, limit, link)
        } else {
            FakeDevice::new(d.clone(), slots, limit)
        }
    };
    let mut server = link.server(dev(&link));
    let mut client = link.client();
    let mut m = Model {
        shadow: vec![0; SECTORS * SECTOR_SIZE],
        flights: BTreeMap::new(),
        flushes: BTreeMap::new(),
        free_bufs: (0..IDS).collect(),
        next_user: 0,
        completed: 0,
    };
    let mut restarts = 0;
    let mut done = Vec::new();
    let poll_client = |client: &mut axolotl_blk::BlkClient<IDS>, done: &mut Vec<Completion>| {
        let _ = client
            .poll(|c| done.push(c))
            .expect("the driver never breaks the protocol");
    };
    for st in steps {
        match st {
            Step::Submit { op, sector, count } => {
                let op = match op {
                    0..=2 => Op::Read,
                    3..=6 => Op::Write,
                    _ => Op::Flush,
                };
                let count = (count as usize).min(SECTORS - sector as usize);
                let Some(&buf) = m.free_bufs.last() else {
                    continue;
                };
                let mut req = Request {
                    op,
                    sector: sector as u64,
                    offset: buffer_offset(buf),
                    len: (count * SECTOR_SIZE) as u32,
                };
                if op == Op::Flush {
                    req.offset = 0;
                    req.len = 0;
                    req.sector = 0;
                } else if m.conflicts(&req) {
                    continue;
                }
                let user = m.next_user;
                let data = if op == Op::Write {
                    let p = pattern(user, req.len as usize);
                    assert!(client.data().copy_in(req.offset as usize, &p));
                    p
                } else {
                    Vec::new()
                };
                match client.submit(req, user) {
                    Ok(()) => {}
                    Err(axolotl_blk::SubmitError::Full) => continue,
                    Err(e) => panic!("{e:?}"),
                }
                m.next_user += 1;
                if op != Op::Flush {
                    m.free_bufs.pop();
                }
                if op == Op::Write {
                    for f in m.flushes.values_mut() {
                        f.excluded.extend(Model::sectors(&req));
                    }
                }
                if op == Op::Flush {
                    // A barrier: it covers the writes still in flight too, so the disk
                    // must hold the completed writes' data overlaid with theirs.
                    let mut snapshot = m.shadow.clone();
                    for f in m.flights.values().filter(|f| f.req.op == Op::Write) {
                        let r = Model::sectors(&f.req);
                        snapshot[r.start * SECTOR_SIZE..r.end * SECTOR_SIZE]
                            .copy_from_slice(&f.data);
                    }
                    m.flushes.insert(
                        user,
                        FlushCheck {
                            snapshot,
                            excluded: BTreeSet::new(),
                        },
                    );
                }
                m.flights.insert(user, Flight { req, buf, data });
            }
            Step::ClientPoll => poll_client(&mut client, &mut done),
            Step::ServerPoll => {
                let act = server.poll();
                assert!(
                    act.fault.is_none() && act.device_broken.is_none(),
                    "{act:?}"
                );
            }
            Step::Complete(k) => {
                server.device().complete(k as usize);
            }
            Step::RestartDriver(bits) => {
                server.device().reset(|i| bits & (1 << (i % 32)) != 0);
                drop(server);
                restarts += 1;
                server = link.restart_server(dev(&link));
            }
        }
        for c in done.drain(..) {
            check_completion(&mut m, c, &link, &d);
        }
    }
    // Drain: everything still in flight completes.
    for _ in 0..200 {
        let act = server.poll();
        assert!(act.fault.is_none() && act.device_broken.is_none());
        while server.device().complete(0) {}
        let _ = server.poll();
        poll_client(&mut client, &mut done);
        for c in done.drain(..) {
            check_completion(&mut m, c, &link, &d);
        }
        if m.flights.is_empty() {
            break;
        }
    }
    assert!(
        m.flights.is_empty(),
        "requests never completed: {:?}",
        m.flights.keys()
    );
    assert_eq!(client.outstanding(), 0);
    assert_eq!(m.completed, m.next_user, "each request exactly once");
    assert!(client.stats().driver_restarts <= restarts);
    // What the completed writes left is on the disk.
    assert_eq!(d.borrow().data, m.shadow);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_request_completes_once_with_the_right_data_across_driver_restarts(
        steps in prop::collection::vec(step(), 1..120),
        slots in 1usize..=6,
        limit in 1usize..=6,
        direct in any::<bool>(),
    ) {
        run(steps, slots, limit, direct);
    }
}
