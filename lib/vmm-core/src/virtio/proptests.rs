//! Random guests: random register accesses, random ring and descriptor contents in a
//! fake guest RAM, random backend behaviour. Whatever happens, the devices never
//! panic, every used entry's id is a head the guest made available (and is used no
//! more often than it was made available), every byte the device writes lies in
//! the used ring or in a buffer the guest marked device-writable, and nothing a guest
//! does to its rings makes a received frame fail its check (lib/net `check`) in the
//! copy that verifies it.
extern crate std;

use std::collections::{HashMap, HashSet, VecDeque};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::blk::{self, BlkBackend, BlkConfig, BlkOp, BlkRequest, Completion, Submit, VirtioBlk};
use super::mem::GuestMemory;
use super::mmio::*;
use super::net::{self, NetBackend, NetConfig, RxFrame, TxDest, TxOutcome, VirtioNet};
use super::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, Queue};
use super::testutil::*;
use super::{F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, status};
use crate::bus::{Access, MmioDevice};
use axolotl_net::Verdict;
use axolotl_ring::DataRegion;

const QBASE: [u64; 2] = [RAM_BASE + 0x1_0000, RAM_BASE + 0x2_0000];
/// Rings are laid out for the largest queue, so no QueueNum makes them overlap.
const AVAIL_OFF: u64 = 0x1000;
const USED_OFF: u64 = 0x2000;
const INDIRECT: u64 = RAM_BASE + 0x3_0000; // to DATA: 64 tables of 16 entries
const DATA: u64 = RAM_BASE + 0x4_0000;
const RAM_END: u64 = RAM_BASE + RAM_SIZE as u64;

#[derive(Debug, Clone)]
enum Op {
    /// Linux's probe sequence with these features and queue sizes; `bad` misplaces a
    /// ring of one queue.
    Init {
        features: u64,
        sizes: [u32; 2],
        bad: Option<(usize, u8)>,
    },
    Reg {
        offset: u64,
        size: u8,
        value: u64,
        write: bool,
    },
    Desc {
        queue: usize,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    },
    IndirectEntry {
        entry: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    },
    Publish {
        queue: usize,
        head: u16,
    },
    /// A well-formed chain from descriptor `start` on (or in the indirect table), made
    /// available: `(offset in the data area, len, writable)` buffers, readable first. The
    /// first buffer starts with a block request header.
    Chain {
        queue: usize,
        start: u16,
        indirect: bool,
        kind: u32,
        sector: u64,
        bufs: Vec<(u64, u32, bool)>,
    },
    AvailJump {
        queue: usize,
        by: u16,
    },
    Event {
        queue: usize,
        used_event: u16,
        flags: u16,
    },
    Kick {
        queue: u32,
    },
    /// Backend: complete the `pick`-th request it took (blk), or deliver a frame (net).
    Complete {
        pick: usize,
        status: u8,
        short: bool,
    },
    Forge {
        id: u64,
        status: u8,
    },
    Busy(bool),
    Frame {
        len: usize,
    },
    /// The next `n` segments of one TCP flow, `payload` bytes each, the last with PSH if
    /// `psh`, arriving together: what the device coalesces for a guest that negotiated
    /// GUEST_TSO4.
    Segments {
        n: usize,
        payload: usize,
        psh: bool,
    },
}

fn buffer_addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (0u64..0x3_0000).prop_map(|o| DATA + o),
        1 => (0u64..64).prop_map(|k| RAM_END - k * 8),
        1 => any::<u64>(),
    ]
}

fn indirect_addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..64).prop_map(|k| INDIRECT + 16 * k),
        1 => buffer_addr(),
    ]
}

fn length() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0u32..2048,
        1 => Just(0),
        1 => (1u32..=16).prop_map(|n| 16 * n),
        1 => any::<u32>(),
    ]
}

fn flags() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => Just(DESC_F_NEXT),
        3 => Just(DESC_F_WRITE),
        3 => Just(DESC_F_NEXT | DESC_F_WRITE),
        3 => Just(0),
        1 => Just(DESC_F_INDIRECT),
        1 => any::<u16>(),
    ]
}

fn desc_op() -> impl Strategy<Value = Op> {
    (
        0usize..2,
        0u16..20,
        any::<bool>(),
        length(),
        flags(),
        0u16..20,
    )
        .prop_flat_map(|(queue, index, indirect, len, flags, next)| {
            let addr = if indirect || flags & DESC_F_INDIRECT != 0 {
                indirect_addr().boxed()
            } else {
                buffer_addr().boxed()
            };
            addr.prop_map(move |addr| Op::Desc {
                queue,
                index,
                addr,
                len,
                flags,
                next,
            })
        })
}

fn chain_op(hostile: bool) -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        4 => prop::sample::select(vec![blk::T_IN, blk::T_OUT, blk::T_FLUSH, blk::T_GET_ID]),
        1 => any::<u32>(),
    ];
    let buf = (
        0u64..0x2f0,
        prop_oneof![3 => Just(512u32), 1 => 1u32..3000],
        any::<bool>(),
    );
    (
        0usize..2,
        0u16..16,
        prop::bool::weighted(0.3),
        kind,
        prop_oneof![4 => 0u64..70, 1 => any::<u64>()],
        proptest::collection::vec(buf, 1..5)
            .prop_filter("calm chains hold a header and a status", move |b| {
                hostile || b.len() > 1
            }),
    )
        .prop_map(|(queue, start, indirect, kind, sector, mut bufs)| {
            // Mostly what a block driver sends: a readable header first, a writable
            // status byte last, data between (readable before writable, as a driver must).
            bufs.sort_by_key(|b| b.2);
            let n = bufs.len();
            let bufs = bufs
                .into_iter()
                .enumerate()
                .map(|(i, (slot, len, w))| {
                    let (len, w) = match i {
                        0 => (len.max(16), n == 1 && w),
                        _ if i + 1 == n && slot % 5 != 0 => (1, true),
                        _ => (len, w),
                    };
                    (slot * 0x100, len, w)
                })
                .collect();
            Op::Chain {
                queue,
                start,
                indirect,
                kind,
                sector,
                bufs,
            }
        })
}

/// A chain as a virtio-net driver posts it: on the receive queue (0) writable buffers a
/// frame and its header can land in, mostly of the size of Linux's mergeable buffers
/// (1,536 bytes); on the transmit queue (1) readable ones, the first holding the virtio-net
/// header (random: the harness writes `kind` there). The block-shaped chains of `chain_op`
/// start with a readable header, which a receive queue refuses, so with them the random
/// guests' frames reached guest memory only through scribbled descriptors: 131 frames in
/// 256 cases, 22 of them in coalesced packets (hostile: 38 and 6); with these, 1,075 and 364
/// (hostile: 163 and 57). A hostile guest's chains get a buffer of the wrong direction now
/// and then.
fn net_chain_op(hostile: bool) -> impl Strategy<Value = Op> {
    let buf = (
        0u64..0x2f0,
        prop_oneof![4 => Just(1536u32), 2 => 12u32..4096, 1 => 1u32..3000],
        prop::bool::weighted(if hostile { 0.15 } else { 0.0 }),
    );
    (
        0usize..2,
        0u16..16,
        prop::bool::weighted(0.3),
        any::<u32>(),
        proptest::collection::vec(buf, 1..5),
    )
        .prop_map(|(queue, start, indirect, kind, bufs)| {
            let bufs = bufs
                .into_iter()
                .map(|(slot, len, wrong)| (slot * 0x100, len, (queue == 0) != wrong))
                .collect();
            Op::Chain {
                queue,
                start,
                indirect,
                kind,
                sector: 0,
                bufs,
            }
        })
}

/// Any register offset except the ring addresses: those only come from `Init` (so the
/// oracle knows where the rings are), which also misplaces them on purpose.
fn reg_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            DEVICE_FEATURES_SEL,
            DRIVER_FEATURES,
            DRIVER_FEATURES_SEL,
            QUEUE_SEL,
            QUEUE_NUM,
            QUEUE_READY,
            QUEUE_NOTIFY,
            INTERRUPT_ACK,
            STATUS,
            SHM_SEL,
            QUEUE_RESET,
        ]),
        0u64..0x200,
    ]
    .prop_filter("ring addresses", |o| !(0x80..0xa8).contains(o))
}

/// The op mix: `hostile` guests mostly scribble over rings and registers; the others
/// mostly queue well-formed chains, so that requests get through and complete.
fn op(device_features: u64, hostile: bool, net: bool) -> impl Strategy<Value = Op> {
    let w = |h: u32, calm: u32| if hostile { h } else { calm };
    let features = prop_oneof![
        4 => any::<u64>().prop_map(move |r| (r & device_features) | F_VERSION_1),
        1 => any::<u64>(),
    ];
    let size = prop_oneof![9 => prop::sample::select(vec![4u32, 8, 16]), 1 => 0u32..300];
    prop_oneof![
        w(3, 3) => (features, [size.clone(), size], prop::option::weighted(0.1, (0usize..2, 0u8..4)))
            .prop_map(|(features, sizes, bad)| Op::Init { features, sizes, bad }),
        w(2, 1) => (reg_offset(), prop_oneof![4 => Just(4u8), 1 => 0u8..9], any::<u64>(), any::<bool>())
            .prop_map(|(offset, size, value, write)| Op::Reg { offset, size, value: value & 0x1ff, write }),
        w(10, 1) => desc_op(),
        w(3, 1) => (0u16..64, buffer_addr(), length(), flags(), 0u16..20)
            .prop_map(|(entry, addr, len, flags, next)| Op::IndirectEntry { entry, addr, len, flags, next }),
        w(8, 1) => (0usize..2, prop_oneof![4 => 0u16..20, 1 => any::<u16>()]).prop_map(|(queue, head)| Op::Publish { queue, head }),
        w(12, 20) => if net { net_chain_op(hostile).boxed() } else { chain_op(hostile).boxed() },
        w(1, 1) => (0usize..2, prop_oneof![3 => 0u16..20, 1 => any::<u16>()]).prop_map(|(queue, by)| Op::AvailJump { queue, by }),
        w(1, 2) => (0usize..2, 0u16..20, 0u16..2).prop_map(|(queue, used_event, flags)| Op::Event { queue, used_event, flags }),
        w(6, 8) => prop_oneof![4 => 0u32..2, 1 => any::<u32>()].prop_map(|queue| Op::Kick { queue }),
        w(5, 10) => (any::<usize>(), prop_oneof![6 => Just(0u8), 1 => 0u8..=255], prop::bool::weighted(0.1))
            .prop_map(|(pick, status, short)| Op::Complete { pick, status, short }),
        w(1, 1) => (any::<u64>(), 0u8..3).prop_map(|(id, status)| Op::Forge { id, status }),
        w(1, 2) => any::<bool>().prop_map(Op::Busy),
        w(3, 6) => prop_oneof![3 => 1usize..2000, 1 => 0usize..70_000].prop_map(|len| Op::Frame { len }),
        w(3, 6) => (1usize..6, prop_oneof![3 => Just(1448usize), 1 => 1usize..1448], prop::bool::weighted(0.2))
            .prop_map(|(n, payload, psh)| Op::Segments { n, payload, psh }),
    ]
}

/// What the fake driver knows about one queue.
#[derive(Default, Clone)]
struct Track {
    avail_idx: u16,
    used_seen: u16,
    published: HashMap<u32, u32>,
    used: HashMap<u32, u32>,
}

struct Harness {
    ram: Ram,
    tracks: [Track; 2],
    ready: [bool; 2],
    /// Well-behaved driver: chains take the next free descriptors and their own
    /// indirect table, as Linux's do.
    sequential: bool,
    next_desc: [u16; 2],
    next_table: u64,
    /// The writable buffers as the last check found them: the descriptors (and indirect
    /// tables) as they stood when the op began.
    writable_before: Vec<(u64, u64)>,
}

fn ring_addrs(q: usize) -> (u64, u64, u64) {
    (QBASE[q], QBASE[q] + AVAIL_OFF, QBASE[q] + USED_OFF)
}

impl Harness {
    fn new(sequential: bool) -> Self {
        Self {
            ram: Ram::new(),
            tracks: Default::default(),
            ready: [false; 2],
            sequential,
            next_desc: [0; 2],
            next_table: 0,
            writable_before: Vec::new(),
        }
    }

    /// The driver starts a queue afresh: zero indices, nothing published.
    fn fresh(&mut self, q: usize) {
        let (_, avail, used) = ring_addrs(q);
        self.ram.put(avail, &[0; 4]);
        self.ram.put(used, &[0; 4]);
        self.tracks[q] = Track::default();
        self.next_desc[q] = 0;
    }

    /// The device made `queues` ready or stopped them: start those rings afresh.
    fn sync_ready(&mut self, queues: &[Queue]) {
        for (q, dq) in queues.iter().enumerate().take(2) {
            if dq.ready != self.ready[q] {
                self.fresh(q);
                self.ready[q] = dq.ready;
            }
        }
    }

    /// Moves `avail.idx` by `by`, counting every head it passes as made available.
    fn advance(&mut self, q: usize, size: u16, by: u16) {
        let (_, avail, _) = ring_addrs(q);
        let t = &mut self.tracks[q];
        for i in 0..by {
            let slot = avail + 4 + 2 * u64::from(t.avail_idx.wrapping_add(i) % size);
            let head = self.ram.get16(slot);
            *t.published.entry(head.into()).or_default() += 1;
        }
        t.avail_idx = t.avail_idx.wrapping_add(by);
        self.ram.put16(avail + 2, t.avail_idx);
    }

    /// Guest-side ops; returns false for ops the device must handle.
    fn guest_op(&mut self, op: &Op, queues: &[Queue]) -> bool {
        match *op {
            Op::Desc {
                queue,
                index,
                addr,
                len,
                flags,
                next,
            } => {
                let n = queues.get(queue).map_or(0, |q| q.size());
                if index < n.max(1) * 2 {
                    write_desc(
                        &mut self.ram,
                        QBASE[queue],
                        index % 256,
                        addr,
                        len,
                        flags,
                        next,
                    );
                }
            }
            Op::IndirectEntry {
                entry,
                addr,
                len,
                flags,
                next,
            } => write_desc(&mut self.ram, INDIRECT, entry, addr, len, flags, next),
            Op::Publish { queue, head } => {
                let n = queues.get(queue).map_or(0, |q| q.size());
                if n > 0 {
                    let (_, avail, _) = ring_addrs(queue);
                    let slot = avail + 4 + 2 * u64::from(self.tracks[queue].avail_idx % n);
                    self.ram.put16(slot, head);
                    self.advance(queue, n, 1);
                }
            }
            Op::Chain {
                queue,
                start,
                indirect,
                kind,
                sector,
                ref bufs,
            } => {
                let n = queues.get(queue).map_or(0, |q| q.size());
                if n == 0 {
                    return true;
                }
                let mut h = [0u8; 16];
                h[..4].copy_from_slice(&kind.to_le_bytes());
                h[8..].copy_from_slice(&sector.to_le_bytes());
                self.ram.put(DATA + bufs[0].0, &h);
                let start = if self.sequential {
                    let s = self.next_desc[queue];
                    let used = if indirect { 1 } else { bufs.len() as u16 };
                    self.next_desc[queue] = s.wrapping_add(used) % n;
                    s
                } else {
                    start
                };
                let table = if self.sequential {
                    self.next_table = (self.next_table + 1) % 64;
                    INDIRECT + 0x100 * self.next_table
                } else {
                    INDIRECT
                };
                let (table, first) = if indirect {
                    (table, 0)
                } else {
                    (QBASE[queue], start % n)
                };
                let count = if indirect { 16 } else { n };
                for (k, &(off, len, w)) in bufs.iter().enumerate() {
                    let i = (first + k as u16) % count;
                    let last = k + 1 == bufs.len();
                    let flags =
                        if w { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
                    write_desc(
                        &mut self.ram,
                        table,
                        i,
                        DATA + off,
                        len,
                        flags,
                        (i + 1) % count,
                    );
                }
                let head = if indirect {
                    let head = start % n;
                    let len = 16 * bufs.len() as u32;
                    write_desc(
                        &mut self.ram,
                        QBASE[queue],
                        head,
                        table,
                        len,
                        DESC_F_INDIRECT,
                        0,
                    );
                    head
                } else {
                    first
                };
                let (_, avail, _) = ring_addrs(queue);
                let slot = avail + 4 + 2 * u64::from(self.tracks[queue].avail_idx % n);
                self.ram.put16(slot, head);
                self.advance(queue, n, 1);
            }
            Op::AvailJump { queue, by } => {
                let n = queues.get(queue).map_or(0, |q| q.size());
                if n > 0 {
                    self.advance(queue, n, by);
                }
            }
            Op::Event {
                queue,
                used_event,
                flags,
            } => {
                let n = queues.get(queue).map_or(0, |q| q.size());
                let (_, avail, _) = ring_addrs(queue);
                self.ram.put16(avail, flags);
                self.ram.put16(avail + 4 + 2 * u64::from(n), used_event);
            }
            _ => return false,
        }
        true
    }

    /// Runs `Init` and `Reg`; returns false for other ops.
    fn register_op(&mut self, dev: &mut dyn MmioDevice, op: &Op) -> bool {
        match *op {
            Op::Init {
                features,
                sizes,
                bad,
            } => {
                for q in 0..2 {
                    self.fresh(q);
                }
                wr(dev, STATUS, 0);
                wr(dev, STATUS, status::ACKNOWLEDGE | status::DRIVER);
                wr(dev, DRIVER_FEATURES_SEL, 0);
                wr(dev, DRIVER_FEATURES, features as u32);
                wr(dev, DRIVER_FEATURES_SEL, 1);
                wr(dev, DRIVER_FEATURES, (features >> 32) as u32);
                wr(
                    dev,
                    STATUS,
                    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
                );
                let s = rd(dev, STATUS);
                for (q, &size) in sizes.iter().enumerate() {
                    let (mut desc, mut avail, mut used) = ring_addrs(q);
                    match bad {
                        Some((b, 0)) if b == q => desc += 8,
                        Some((b, 1)) if b == q => avail = RAM_END - 4,
                        Some((b, 2)) if b == q => used += 2,
                        Some((b, _)) if b == q => desc = 0x1000,
                        _ => {}
                    }
                    wr(dev, QUEUE_SEL, q as u32);
                    wr(dev, QUEUE_NUM, size);
                    for (lo, v) in [
                        (QUEUE_DESC_LOW, desc),
                        (QUEUE_DRIVER_LOW, avail),
                        (QUEUE_DEVICE_LOW, used),
                    ] {
                        wr(dev, lo, v as u32);
                        wr(dev, lo + 4, (v >> 32) as u32);
                    }
                    wr(dev, QUEUE_READY, 1);
                }
                wr(dev, STATUS, s | status::DRIVER_OK);
            }
            Op::Reg {
                offset,
                size,
                value,
                write,
            } => {
                let a = Access {
                    vcpu: 0,
                    region: 0,
                    offset,
                    size,
                };
                if write {
                    assert_eq!(dev.write(a, value), Ok(()));
                } else {
                    let v = dev.read(a).unwrap();
                    assert!(size >= 8 || v >> (8 * u32::from(size)) == 0);
                }
            }
            _ => return false,
        }
        true
    }

    /// The oracle, after every op: used entries and the device's writes.
    fn check(&mut self, queues: &[Queue]) {
        let mut allowed: Vec<(u64, u64)> = Vec::new();
        for (q, dq) in queues.iter().enumerate().take(2) {
            let n = dq.size();
            if n == 0 {
                continue;
            }
            assert_eq!((dq.desc, dq.avail, dq.used), ring_addrs(q));
            allowed.push((dq.used, 6 + 8 * u64::from(n)));
            for i in 0..u64::from(n) {
                let d = self.ram.get(dq.desc + 16 * i, 16).to_vec();
                let addr = u64::from_le_bytes(d[0..8].try_into().unwrap());
                let len = u32::from_le_bytes(d[8..12].try_into().unwrap());
                let flags = u16::from_le_bytes([d[12], d[13]]);
                if flags & DESC_F_INDIRECT != 0 {
                    for k in 0..u64::from(len / 16).min(4096) {
                        let mut e = [0u8; 16];
                        if self.ram.read(addr + 16 * k, &mut e).is_ok() {
                            let a = u64::from_le_bytes(e[0..8].try_into().unwrap());
                            let l = u32::from_le_bytes(e[8..12].try_into().unwrap());
                            if u16::from_le_bytes([e[12], e[13]]) & DESC_F_WRITE != 0 {
                                allowed.push((a, l.into()));
                            }
                        }
                    }
                } else if flags & DESC_F_WRITE != 0 {
                    allowed.push((addr, len.into()));
                }
            }
            // Used entries: each id a head made available, used at most as often.
            let t = &mut self.tracks[q];
            let idx = self.ram.get16(dq.used + 2);
            // A driver never has more chains outstanding than its ring holds, unless it
            // publishes a head still in flight again (the random guest may): then the device
            // may complete more than the ring holds in one go, overwriting entries before
            // they were read, the driver's own doing. Only a driver within the bound is owed
            // every entry.
            let outstanding = t.published.values().sum::<u32>() - t.used.values().sum::<u32>();
            if outstanding > u32::from(n) && idx.wrapping_sub(t.used_seen) > n {
                t.used_seen = idx;
            }
            assert!(
                idx.wrapping_sub(t.used_seen) <= n,
                "used index moved by more than the queue size"
            );
            while t.used_seen != idx {
                let e = dq.used + 4 + 8 * u64::from(t.used_seen % n);
                let id = self.ram.get32(e);
                let used = t.used.entry(id).or_default();
                *used += 1;
                let published = t.published.get(&id).copied().unwrap_or(0);
                assert!(
                    *used <= published,
                    "queue {q}: head {id} used {used} times, made available {published} times"
                );
                t.used_seen = t.used_seen.wrapping_add(1);
            }
        }
        // A write must lie in a buffer the guest made writable: as the descriptors stood when
        // the op began, or as they stand now. Both, because a hostile guest's buffer may
        // overlap its own descriptors or indirect tables: a frame copied into it rewrites
        // them, after the device has read (and used) what they said before, and the table
        // as it stands now no longer names the buffer the device was given.
        for &(gpa, len) in &self.ram.writes {
            let (gpa, len) = (gpa, len as u64);
            assert!(
                allowed
                    .iter()
                    .chain(&self.writable_before)
                    .any(|&(a, l)| gpa >= a && gpa + len <= a.saturating_add(l)),
                "device wrote {len} bytes at {gpa:#x}, outside every writable buffer"
            );
        }
        self.ram.writes.clear();
        self.writable_before = allowed;
    }
}

#[derive(Default)]
struct BlkFake {
    taken: Vec<BlkRequest>,
    busy: bool,
}

impl BlkBackend for BlkFake {
    fn submit(
        &mut self,
        req: &BlkRequest,
        fill: &mut dyn FnMut(blk::BlkData<'_>) -> bool,
    ) -> Submit {
        if self.busy {
            return Submit::Busy;
        }
        if req.op == BlkOp::Write {
            let mut b = vec![0; req.len as usize];
            if !fill(blk::BlkData::Bytes(&mut b)) {
                return Submit::Refused;
            }
        }
        self.taken.push(*req);
        Submit::Accepted
    }
}

fn run_blk(ops: &[Op], hostile: bool) {
    let mut dev = VirtioBlk::new(
        BlkConfig {
            capacity: 64,
            blk_size: 512,
            seg_max: 14,
            size_max: None,
            serial: [7; blk::ID_BYTES],
        },
        RAM,
    );
    let mut h = Harness::new(!hostile);
    let mut be = BlkFake::default();
    let mut done: HashSet<u64> = HashSet::new();
    for op in ops {
        if h.guest_op(op, &dev.transport.queues) {
        } else if h.register_op(&mut dev, op) {
            h.sync_ready(&dev.transport.queues);
        } else {
            match *op {
                Op::Kick { queue } => {
                    wr(&mut dev, QUEUE_NOTIFY, queue);
                    dev.process(&mut h.ram, &mut be);
                }
                Op::Complete {
                    pick,
                    status,
                    short,
                } if !be.taken.is_empty() => {
                    let req = be.taken[pick % be.taken.len()];
                    let data = vec![0x5a; if short { 1 } else { req.len as usize }];
                    let c = dev.complete(&mut h.ram, req.id, status, &data);
                    let want = if done.contains(&req.id) {
                        Completion::UnknownId
                    } else if status > blk::S_UNSUPP {
                        Completion::BadStatus
                    } else {
                        c
                    };
                    assert_eq!(c, want);
                    if matches!(c, Completion::Done | Completion::Dropped) {
                        done.insert(req.id);
                    }
                    dev.process(&mut h.ram, &mut be);
                }
                Op::Forge { id, status } if !be.taken.iter().any(|r| r.id == id) => {
                    assert_eq!(
                        dev.complete(&mut h.ram, id, status, &[]),
                        Completion::UnknownId
                    );
                }
                Op::Busy(b) => {
                    be.busy = b;
                    dev.process(&mut h.ram, &mut be);
                }
                _ => {}
            }
        }
        h.check(&dev.transport.queues);
        assert!(dev.in_flight() <= blk::QUEUE_MAX as usize);
        let _ = dev.irq_level();
    }
}

/// A received frame: bytes, or in a link buffer of its own with its check.
enum Rx {
    Bytes(Vec<u8>),
    Linked {
        region: DataRegion,
        len: usize,
        _backing: Vec<u64>,
    },
}

#[derive(Default)]
struct NetFake {
    sent: usize,
    busy: bool,
    rx: VecDeque<Rx>,
    verdicts: Vec<Verdict>,
    /// The next segment's sequence number.
    seq: u32,
}

impl NetFake {
    /// `frame`, in a link buffer if it fits one (every other one).
    fn push(&mut self, frame: Vec<u8>, linked: bool) {
        // A link holds a bounded number of frames (lib/net's has 16 receive buffers): with
        // the guest's buffers all taken, more stay with the virtualiser, never with the VMM.
        // 64, a generous bound, so that runs of segments still meet a full queue here.
        if self.rx.len() >= 64 {
            return;
        }
        if !linked || frame.is_empty() || frame.len() > axolotl_net::MAX_FRAME {
            self.rx.push_back(Rx::Bytes(frame));
            return;
        }
        let mut words = vec![0u64; axolotl_net::BUF_SIZE / 8];
        let ptr = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the vector's heap buffer, never resized, moves with the region into
        // the same queue entry and outlives it.
        let region =
            unsafe { DataRegion::alias(&axolotl_ring::SharedRegion::new(ptr, words.len() * 8)) };
        assert!(axolotl_net::check::copy_in(&region, 0, &frame));
        self.rx.push_back(Rx::Linked {
            region,
            len: frame.len(),
            _backing: words,
        });
    }
}

impl NetBackend for NetFake {
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(TxDest<'_>) -> bool) -> TxOutcome {
        if self.busy {
            return TxOutcome::Busy;
        }
        let mut b = vec![0; len];
        if !fill(TxDest::Bytes(&mut b)) {
            return TxOutcome::Dropped;
        }
        self.sent += 1;
        TxOutcome::Sent
    }

    fn peek_rx(&mut self) -> Option<RxFrame<'_>> {
        self.rx.front().map(|f| match f {
            Rx::Bytes(b) => RxFrame::Bytes(&b[..]),
            Rx::Linked { region, len, .. } => {
                RxFrame::Region(region, 0, *len, axolotl_net::check::read(region, 0))
            }
        })
    }

    fn peek_rx_at(&self, k: usize) -> Option<RxFrame<'_>> {
        self.rx.get(k).map(|f| match f {
            Rx::Bytes(b) => RxFrame::Bytes(&b[..]),
            Rx::Linked { region, len, .. } => {
                RxFrame::Region(region, 0, *len, axolotl_net::check::read(region, 0))
            }
        })
    }

    fn pop_rx(&mut self) {
        self.rx.pop_front();
    }

    fn rx_verdict(&mut self, v: Verdict) {
        self.verdicts.push(v);
    }
}

fn run_net(ops: &[Op], hostile: bool) {
    let mut dev = VirtioNet::new(
        NetConfig {
            mac: [2, 0, 0, 0, 0, 1],
            link_up: true,
        },
        RAM,
    );
    let mut h = Harness::new(!hostile);
    let mut be = NetFake::default();
    for op in ops {
        if h.guest_op(op, &dev.transport.queues) {
        } else if h.register_op(&mut dev, op) {
            h.sync_ready(&dev.transport.queues);
        } else {
            match *op {
                Op::Kick { queue } => {
                    wr(&mut dev, QUEUE_NOTIFY, queue);
                    dev.process(&mut h.ram, &mut be);
                }
                Op::Frame { len } => {
                    be.push((0..len).map(|i| i as u8).collect(), len % 2 == 0);
                    dev.process(&mut h.ram, &mut be);
                    assert!(
                        be.verdicts.iter().all(|&v| v == Verdict::Good),
                        "{:?}",
                        be.verdicts
                    );
                }
                Op::Segments { n, payload, psh } => {
                    use super::net_offload::tests::{tcp_packet, with_tcp_checksum};
                    let data: Vec<u8> = (0..payload).map(|i| (i as u8) ^ 0x5a).collect();
                    for k in 0..n {
                        let flags = if psh && k + 1 == n { 0x18 } else { 0x10 };
                        let f = tcp_packet(&data, flags, false, 0, 12, be.seq, k as u16);
                        be.seq = be.seq.wrapping_add(payload as u32);
                        be.push(with_tcp_checksum(&f), (payload + k) % 3 != 0);
                    }
                    dev.process(&mut h.ram, &mut be);
                    assert!(
                        be.verdicts.iter().all(|&v| v == Verdict::Good),
                        "{:?}",
                        be.verdicts
                    );
                }
                Op::Busy(b) => {
                    be.busy = b;
                    dev.process(&mut h.ram, &mut be);
                }
                Op::Complete { pick, .. } if pick % 4 == 0 => dev.set_link(pick % 8 == 0),
                _ => {}
            }
        }
        h.check(&dev.transport.queues);
        let _ = dev.irq_level();
    }
}

/// A driver that brings the device up properly first, so most cases get to the rings.
fn start(features: u64) -> Op {
    Op::Init {
        features: features | F_VERSION_1,
        sizes: [16, 16],
        bad: None,
    }
}

fn blk_features() -> u64 {
    blk::F_SEG_MAX | blk::F_BLK_SIZE | blk::F_FLUSH | F_INDIRECT_DESC | F_EVENT_IDX
}

fn net_features() -> u64 {
    net::F_MAC
        | net::F_STATUS
        | net::F_MRG_RXBUF
        | F_INDIRECT_DESC
        | F_EVENT_IDX
        | super::net_offload::F_CSUM
        | super::net_offload::F_HOST_TSO4
        | super::net_offload::F_GUEST_CSUM
        | super::net_offload::F_GUEST_TSO4
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_guests_on_virtio_blk(ops in proptest::collection::vec(op(blk_features(), false, false), 1..160)) {
        run_blk(&[&[start(blk_features())], &ops[..]].concat(), false);
    }

    #[test]
    fn hostile_guests_on_virtio_blk(ops in proptest::collection::vec(op(blk_features(), true, false), 1..160)) {
        run_blk(&[&[start(blk_features())], &ops[..]].concat(), true);
    }

    #[test]
    fn random_guests_on_virtio_net(ops in proptest::collection::vec(op(net_features(), false, true), 1..160)) {
        run_net(&[&[start(net_features())], &ops[..]].concat(), false);
    }

    #[test]
    fn hostile_guests_on_virtio_net(ops in proptest::collection::vec(op(net_features(), true, true), 1..160)) {
        run_net(&[&[start(net_features())], &ops[..]].concat(), true);
    }
}
