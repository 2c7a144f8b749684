//! virtio-blk: requests, the backend contract and the ordering promises.
extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;
use crate::bus::MmioDevice;
use crate::virtio::mmio::{CONFIG, QUEUE_NOTIFY, STATUS};
use crate::virtio::testutil::*;
use crate::virtio::{F_VERSION_1, isr, status};

pub const SERIAL: [u8; ID_BYTES] = *b"axolotl-disk-0\0\0\0\0\0\0";
pub const CAPACITY: u64 = 2048;

pub fn config() -> BlkConfig {
    BlkConfig {
        capacity: CAPACITY,
        blk_size: 512,
        seg_max: 126,
        size_max: None,
        serial: SERIAL,
    }
}

/// A backend that records what it took.
#[derive(Default)]
pub struct FakeBackend {
    pub taken: Vec<(BlkRequest, Vec<u8>)>,
    pub busy: bool,
    pub refuse: bool,
}

impl BlkBackend for FakeBackend {
    fn submit(&mut self, req: &BlkRequest, fill: &mut dyn FnMut(BlkData<'_>) -> bool) -> Submit {
        if self.busy {
            return Submit::Busy;
        }
        if self.refuse {
            return Submit::Refused;
        }
        let mut buf = vec![];
        if req.op == BlkOp::Write {
            buf = vec![0; req.len as usize];
            if !fill(BlkData::Bytes(&mut buf)) {
                return Submit::Refused;
            }
        }
        self.taken.push((*req, buf));
        Submit::Accepted
    }
}

pub struct Guest {
    pub ram: Ram,
    pub q: DriverQueue,
    pub dev: VirtioBlk,
    pub be: FakeBackend,
    next_area: u64,
}

/// Where one request's pieces are.
#[derive(Debug, Clone, Copy)]
pub struct Req {
    pub head: u16,
    pub data: u64,
    pub status: u64,
}

impl Guest {
    pub fn new() -> Self {
        let mut g = Self {
            ram: Ram::new(),
            q: DriverQueue::new(0, 64, RAM_BASE + 0x1_0000),
            dev: VirtioBlk::new(config(), RAM),
            be: FakeBackend::default(),
            next_area: 0,
        };
        let f = offered(&mut g.dev);
        let s = init(&mut g.dev, f, &[g.q.clone()]);
        assert_ne!(s & status::FEATURES_OK, 0);
        g
    }

    /// A guest whose driver set the queue up again with `size` entries.
    pub fn with_queue(size: u16) -> Self {
        let mut g = Self::new();
        g.q = DriverQueue::new(0, size, RAM_BASE + 0x1_0000);
        let f = offered(&mut g.dev);
        init(&mut g.dev, f, &[g.q.clone()]);
        g
    }

    /// Puts a request on the ring (without notifying). `data`: bytes for OUT, or the
    /// buffer size for IN/GET_ID.
    pub fn add(&mut self, kind: u32, sector: u64, out: Option<&[u8]>, in_len: u32) -> Req {
        let area = RAM_BASE + 0x4_0000 + (self.next_area % 48) * 0x2000;
        self.next_area += 1;
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.ram.put(area, &h);
        let data = area + 0x100;
        let status = area + 0x1f00;
        self.ram.put(status, &[0xee]);
        let mut bufs = vec![(area, 16, false)];
        if let Some(d) = out {
            self.ram.put(data, d);
            bufs.push((data, d.len() as u32, false));
        }
        if in_len > 0 {
            bufs.push((data, in_len, true));
        }
        bufs.push((status, 1, true));
        let head = self.q.add(&mut self.ram, &bufs);
        Req { head, data, status }
    }

    pub fn kick(&mut self) {
        wr(&mut self.dev, QUEUE_NOTIFY, 0);
        self.dev.process(&mut self.ram, &mut self.be);
    }

    pub fn status_of(&self, r: &Req) -> u8 {
        self.ram.get(r.status, 1)[0]
    }

    pub fn used(&mut self) -> Vec<(u32, u32)> {
        self.q.take_used(&self.ram)
    }

    pub fn complete(&mut self, id: u64, status: u8, data: &[u8]) -> Completion {
        let c = self.dev.complete(&mut self.ram, id, status, data);
        self.dev.process(&mut self.ram, &mut self.be);
        c
    }
}

#[test]
fn config_space_and_features() {
    let mut d = VirtioBlk::new(
        BlkConfig {
            size_max: Some(4096),
            ..config()
        },
        RAM,
    );
    let f = offered(&mut d);
    for bit in [F_VERSION_1, F_BLK_SIZE, F_SEG_MAX, F_FLUSH, F_SIZE_MAX] {
        assert_ne!(f & bit, 0);
    }
    let r = |d: &mut VirtioBlk, off: u64| d.read(acc(CONFIG + off, 4)).unwrap();
    assert_eq!(r(&mut d, 0), CAPACITY);
    assert_eq!(r(&mut d, 4), 0);
    assert_eq!(r(&mut d, 8), 4096);
    assert_eq!(r(&mut d, 12), 126);
    assert_eq!(r(&mut d, 20), 512);
    let f = offered(&mut VirtioBlk::new(config(), RAM));
    assert_eq!(f & F_SIZE_MAX, 0);
    let mut d = VirtioBlk::new(
        BlkConfig {
            seg_max: 1000,
            ..config()
        },
        RAM,
    );
    assert_eq!(r(&mut d, 12), u64::from(QUEUE_MAX) - 2);
}

#[test]
fn read_completes_with_the_backends_data() {
    let mut g = Guest::new();
    let r = g.add(T_IN, 8, None, 1024);
    g.kick();
    assert!(g.used().is_empty(), "not before the backend completes");
    assert_eq!(g.be.taken.len(), 1);
    let (req, _) = g.be.taken[0].clone();
    assert_eq!((req.op, req.sector, req.len), (BlkOp::Read, 8, 1024));
    let data: Vec<u8> = (0..1024).map(|i| i as u8).collect();
    assert_eq!(g.complete(req.id, S_OK, &data), Completion::Done);
    assert_eq!(g.used(), vec![(r.head.into(), 1025)]);
    assert_eq!(g.ram.get(r.data, 1024), &data[..]);
    assert_eq!(g.status_of(&r), S_OK);
    assert!(g.dev.irq_level());
    assert_eq!(g.dev.in_flight(), 0);
}

#[test]
fn write_hands_the_data_over_and_completes_only_when_the_backend_does() {
    let mut g = Guest::new();
    let data: Vec<u8> = (0..512).map(|i| (i * 7) as u8).collect();
    let r = g.add(T_OUT, CAPACITY - 1, Some(&data), 0);
    g.kick();
    let (req, got) = g.be.taken[0].clone();
    assert_eq!(
        (req.op, req.sector, req.len),
        (BlkOp::Write, CAPACITY - 1, 512)
    );
    assert_eq!(got, data);
    assert!(g.used().is_empty());
    assert_eq!(g.status_of(&r), 0xee);
    g.complete(req.id, S_OK, &[]);
    assert_eq!(g.used(), vec![(r.head.into(), 1)]);
    assert_eq!(g.status_of(&r), S_OK);
}

#[test]
fn backend_error_status_reaches_the_guest() {
    let mut g = Guest::new();
    let r = g.add(T_IN, 0, None, 512);
    g.kick();
    let id = g.be.taken[0].0.id;
    g.complete(id, S_IOERR, &[]);
    assert_eq!(g.status_of(&r), S_IOERR);
    assert_eq!(g.used(), vec![(r.head.into(), 1)]);
}

#[test]
fn flush_waits_for_earlier_writes() {
    let mut g = Guest::new();
    let w1 = g.add(T_OUT, 0, Some(&[1; 512]), 0);
    let w2 = g.add(T_OUT, 1, Some(&[2; 512]), 0);
    let f = g.add(T_FLUSH, 0, None, 0);
    let rd = g.add(T_IN, 5, None, 512);
    g.kick();
    // Both writes went; the flush holds (and, in order, the read behind it).
    assert_eq!(g.be.taken.len(), 2);
    let ids: Vec<u64> = g.be.taken.iter().map(|t| t.0.id).collect();
    g.complete(ids[1], S_OK, &[]);
    assert_eq!(g.be.taken.len(), 2, "one write still outstanding");
    g.complete(ids[0], S_OK, &[]);
    assert_eq!(g.be.taken.len(), 4);
    assert_eq!(g.be.taken[2].0.op, BlkOp::Flush);
    assert_eq!(g.be.taken[3].0.op, BlkOp::Read);
    let used = g.used();
    assert_eq!(used, vec![(w2.head.into(), 1), (w1.head.into(), 1)]);
    g.complete(g.be.taken[2].0.id, S_OK, &[]);
    assert_eq!(g.used(), vec![(f.head.into(), 1)]);
    assert_eq!(g.status_of(&f), S_OK);
    g.complete(g.be.taken[3].0.id, S_OK, &[0; 512]);
    assert_eq!(g.used(), vec![(rd.head.into(), 513)]);
}

#[test]
fn get_id_is_answered_from_the_config() {
    let mut g = Guest::new();
    let r = g.add(T_GET_ID, 0, None, ID_BYTES as u32);
    g.kick();
    assert!(g.be.taken.is_empty());
    assert_eq!(g.ram.get(r.data, ID_BYTES), &SERIAL);
    assert_eq!(g.status_of(&r), S_OK);
    assert_eq!(g.used(), vec![(r.head.into(), ID_BYTES as u32 + 1)]);
}

#[test]
fn other_types_are_unsupported() {
    let mut g = Guest::new();
    // GET_LIFETIME, DISCARD, WRITE_ZEROES, and nonsense.
    for t in [10, 11, 13, 0xdead] {
        let r = g.add(t, 0, Some(&[0; 16]), 0);
        g.kick();
        assert_eq!(g.status_of(&r), S_UNSUPP);
        assert_eq!(g.used(), vec![(r.head.into(), 1)]);
    }
    assert!(g.be.taken.is_empty());
    assert_eq!(g.dev.counters.unsupported, 4);
}

#[test]
fn out_of_range_and_bad_lengths_are_ioerr_without_the_backend() {
    let mut g = Guest::new();
    let cases = [
        (T_IN, CAPACITY, None, 512),
        (T_IN, CAPACITY - 1, None, 1024),
        (T_IN, u64::MAX, None, 512),
        (T_IN, 0, None, 100),
        (T_OUT, CAPACITY, Some(&[0u8; 512][..]), 0),
        (T_OUT, 0, Some(&[0u8; 513][..]), 0),
        (T_OUT, 0, None, 0),
    ];
    for (t, sector, out, in_len) in cases {
        let r = g.add(t, sector, out, in_len);
        g.kick();
        assert_eq!(g.status_of(&r), S_IOERR, "{t} {sector} {in_len}");
        assert_eq!(g.used(), vec![(r.head.into(), 1)]);
    }
    assert!(g.be.taken.is_empty());
    assert!(g.dev.transport.live());
}

#[test]
fn back_pressure_keeps_requests_in_order() {
    let mut g = Guest::new();
    g.be.busy = true;
    let rs: Vec<Req> = (0..5).map(|i| g.add(T_IN, i, None, 512)).collect();
    g.kick();
    assert!(g.be.taken.is_empty());
    assert_eq!(g.dev.in_flight(), 5);
    g.be.busy = false;
    g.dev.process(&mut g.ram, &mut g.be);
    let sectors: Vec<u64> = g.be.taken.iter().map(|t| t.0.sector).collect();
    assert_eq!(sectors, vec![0, 1, 2, 3, 4]);
    for t in g.be.taken.clone().iter().rev() {
        g.complete(t.0.id, S_OK, &[9; 512]);
    }
    let mut heads: Vec<u32> = g.used().iter().map(|u| u.0).collect();
    heads.sort();
    let mut want: Vec<u32> = rs.iter().map(|r| r.head.into()).collect();
    want.sort();
    assert_eq!(heads, want);
}

#[test]
fn refused_requests_get_ioerr() {
    let mut g = Guest::new();
    g.be.refuse = true;
    let r = g.add(T_OUT, 0, Some(&[0; 512]), 0);
    g.kick();
    assert_eq!(g.status_of(&r), S_IOERR);
    assert_eq!(g.used(), vec![(r.head.into(), 1)]);
    assert_eq!(g.dev.in_flight(), 0);
}

#[test]
fn forged_duplicate_and_bad_status_completions_are_ignored() {
    let mut g = Guest::new();
    let r = g.add(T_IN, 0, None, 512);
    g.kick();
    let id = g.be.taken[0].0.id;
    assert_eq!(g.complete(id ^ 1, S_OK, &[0; 512]), Completion::UnknownId);
    assert_eq!(
        g.complete(id + (1 << 16), S_OK, &[0; 512]),
        Completion::UnknownId
    );
    assert_eq!(g.complete(u64::MAX, S_OK, &[]), Completion::UnknownId);
    assert_eq!(g.complete(id, 3, &[0; 512]), Completion::BadStatus);
    assert_eq!(g.complete(id, 0xff, &[0; 512]), Completion::BadStatus);
    assert!(g.used().is_empty());
    assert_eq!(g.complete(id, S_OK, &[5; 512]), Completion::Done);
    assert_eq!(g.complete(id, S_OK, &[6; 512]), Completion::UnknownId);
    assert_eq!(g.used(), vec![(r.head.into(), 513)]);
    assert_eq!(g.ram.get(r.data, 512), &[5; 512]);
    assert_eq!(g.dev.counters.unknown_completions, 4);
    assert_eq!(g.dev.counters.bad_status_completions, 2);
}

#[test]
fn an_id_is_never_reused_for_a_later_request() {
    let mut g = Guest::new();
    g.add(T_IN, 0, None, 512);
    g.kick();
    let old = g.be.taken[0].0.id;
    g.complete(old, S_OK, &[0; 512]);
    g.add(T_IN, 1, None, 512);
    g.kick();
    let new = g.be.taken[1].0.id;
    assert_ne!(old, new);
    assert_eq!(g.complete(old, S_OK, &[0; 512]), Completion::UnknownId);
}

#[test]
fn short_read_data_is_ioerr() {
    let mut g = Guest::new();
    let r = g.add(T_IN, 0, None, 1024);
    g.kick();
    let id = g.be.taken[0].0.id;
    assert_eq!(g.complete(id, S_OK, &[1; 512]), Completion::Done);
    assert_eq!(g.status_of(&r), S_IOERR);
    assert_eq!(g.ram.get(r.data, 4), &[0; 4], "no partial data");
    assert_eq!(g.dev.counters.short_completions, 1);
}

#[test]
fn completions_after_a_reset_are_dropped() {
    let mut g = Guest::new();
    let r = g.add(T_IN, 0, None, 512);
    g.be.busy = false;
    g.kick();
    g.be.busy = true;
    g.add(T_IN, 1, None, 512);
    g.kick();
    assert_eq!(g.dev.in_flight(), 2);
    wr(&mut g.dev, STATUS, 0);
    // What waited is forgotten; what the backend holds keeps its slot.
    assert_eq!(g.dev.in_flight(), 1);
    g.ram.writes.clear();
    let id = g.be.taken[0].0.id;
    assert_eq!(g.complete(id, S_OK, &[7; 512]), Completion::Dropped);
    assert!(g.ram.writes.is_empty(), "nothing written after the reset");
    assert_eq!(g.status_of(&r), 0xee);
    assert_eq!(g.dev.in_flight(), 0);
    assert_eq!(g.dev.counters.dropped_completions, 1);
}

#[test]
fn flush_after_a_reset_waits_for_orphaned_writes() {
    let mut g = Guest::new();
    g.add(T_OUT, 0, Some(&[1; 512]), 0);
    g.kick();
    let w = g.be.taken[0].0.id;
    // The driver resets and starts again (new queue state).
    g.q = DriverQueue::new(0, 64, RAM_BASE + 0x1_0000);
    let f = offered(&mut g.dev);
    init(&mut g.dev, f, &[g.q.clone()]);
    g.add(T_FLUSH, 0, None, 0);
    g.kick();
    assert_eq!(g.be.taken.len(), 1, "the flush waits for the old write");
    assert_eq!(g.complete(w, S_OK, &[]), Completion::Dropped);
    assert_eq!(g.be.taken.len(), 2);
    assert_eq!(g.be.taken[1].0.op, BlkOp::Flush);
}

#[test]
fn a_full_table_leaves_requests_on_the_ring() {
    let mut g = Guest::new();
    // Fill every slot with requests the backend holds, orphaned by resets (16 per
    // queue incarnation, 256 slots).
    for _ in 0..16 {
        g.q = DriverQueue::new(0, 64, RAM_BASE + 0x1_0000);
        let f = offered(&mut g.dev);
        init(&mut g.dev, f, &[g.q.clone()]);
        for i in 0..16 {
            g.add(T_IN, i, None, 512);
        }
        g.kick();
    }
    assert_eq!(g.dev.in_flight(), 256);
    g.q = DriverQueue::new(0, 64, RAM_BASE + 0x1_0000);
    let f = offered(&mut g.dev);
    init(&mut g.dev, f, &[g.q.clone()]);
    let r = g.add(T_IN, 3, None, 512);
    g.kick();
    assert_eq!(g.be.taken.len(), 256);
    assert_eq!(g.dev.transport.queues[0].pending(&g.ram), Ok(1));
    let id = g.be.taken[0].0.id;
    assert_eq!(g.complete(id, S_OK, &[0; 512]), Completion::Dropped);
    assert_eq!(g.be.taken.len(), 257);
    let id = g.be.taken[256].0.id;
    g.complete(id, S_OK, &[4; 512]);
    assert_eq!(g.used(), vec![(r.head.into(), 513)]);
}

/// Linux's 1 MiB request with SEG_MAX 256: header, 256 pages and status, 258 descriptors in
/// one indirect chain, legal in a queue of `QUEUE_MAX` (not in one of 256). One request at
/// the backend, every page written.
#[test]
fn a_whole_mib_in_pages_is_one_request_on_a_full_size_queue() {
    let mut g = Guest::with_queue(QUEUE_MAX);
    let header = RAM_BASE + 0x8_0000;
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&T_IN.to_le_bytes());
    g.ram.put(header, &h);
    // The test's RAM is 1 MiB: the pages alternate between two, the later write wins.
    let pages = [RAM_BASE + 0x9_0000, RAM_BASE + 0xa_0000];
    let status = RAM_BASE + 0xb_0000;
    let mut bufs = vec![(header, 16, false)];
    bufs.extend((0..256).map(|k| (pages[k % 2], 4096, true)));
    bufs.push((status, 1, true));
    let head = g.q.add_indirect(&mut g.ram, RAM_BASE + 0xc_0000, &bufs);
    g.kick();
    assert_eq!(g.be.taken.len(), 1);
    let req = g.be.taken[0].0;
    // The whole test disk (CAPACITY: 1 MiB).
    assert_eq!((req.op, req.sector, req.len), (BlkOp::Read, 0, 1 << 20));
    let data: Vec<u8> = (0..1usize << 20).map(|i| (i / 4096) as u8).collect();
    assert_eq!(g.complete(req.id, S_OK, &data), Completion::Done);
    assert_eq!(g.used(), vec![(head.into(), (1 << 20) + 1)]);
    assert_eq!(g.ram.get(pages[0], 4096), vec![254; 4096]);
    assert_eq!(g.ram.get(pages[1], 4096), vec![255; 4096]);
    assert_eq!(g.ram.get(status, 1), vec![S_OK]);
}

/// More requests on the ring than the request table holds: the table takes 256, the rest
/// wait on the ring and are taken, in order, as requests complete.
#[test]
fn requests_beyond_the_table_wait_on_the_ring_in_order() {
    let mut g = Guest::with_queue(QUEUE_MAX);
    // Three descriptors each would overrun 512: one indirect descriptor each.
    for i in 0..300u64 {
        let header = RAM_BASE + 0x2_0000 + i * 16;
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&T_IN.to_le_bytes());
        h[8..].copy_from_slice(&i.to_le_bytes());
        g.ram.put(header, &h);
        let bufs = [
            (header, 16, false),
            (RAM_BASE + 0x8_0000, 512, true),
            (RAM_BASE + 0x9_0000 + i, 1, true),
        ];
        g.q.add_indirect(&mut g.ram, RAM_BASE + 0xa_0000 + i * 64, &bufs);
    }
    g.kick();
    assert_eq!(g.be.taken.len(), 256);
    assert_eq!(g.dev.transport.queues[0].pending(&g.ram), Ok(44));
    for k in 0..44 {
        let id = g.be.taken[k].0.id;
        assert_eq!(g.complete(id, S_OK, &[1; 512]), Completion::Done);
        assert_eq!(g.be.taken.len(), 257 + k);
        assert_eq!(g.be.taken[256 + k].0.sector, 256 + k as u64);
    }
    assert_eq!(g.dev.transport.queues[0].pending(&g.ram), Ok(0));
}

#[test]
fn a_request_without_header_or_status_needs_reset() {
    let mut g = Guest::new();
    g.q.add(
        &mut g.ram,
        &[
            (RAM_BASE + 0x4_0000, 8, false),
            (RAM_BASE + 0x5_0000, 1, true),
        ],
    );
    g.kick();
    assert_eq!(g.dev.transport.last_error, Some(QueueError::MissingHeader));
    assert_ne!(g.dev.transport.status() & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(g.dev.transport.interrupt_status(), isr::CONFIG_CHANGE);

    let mut g = Guest::new();
    g.q.add(&mut g.ram, &[(RAM_BASE + 0x4_0000, 16, false)]);
    g.kick();
    assert_eq!(g.dev.transport.last_error, Some(QueueError::MissingHeader));
}

#[test]
fn nothing_happens_before_driver_ok() {
    let mut g = Guest::new();
    wr(&mut g.dev, STATUS, 0);
    g.add(T_IN, 0, None, 512);
    g.dev.process(&mut g.ram, &mut g.be);
    assert!(g.be.taken.is_empty());
    assert_eq!(g.dev.in_flight(), 0);
}

/// The ordering model: a well-behaved guest, a backend that completes in any order,
/// says IOERR sometimes, is full sometimes, and gets duplicate and forged completions
/// fed to the device.
mod ordering {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum MOp {
        Add(u8),
        Complete { pick: usize, ioerr: bool },
        Duplicate { pick: usize },
        Forge { id: u64 },
        Busy(bool),
        Kick,
    }

    fn mop() -> impl Strategy<Value = MOp> {
        prop_oneof![
            4 => (0u8..8).prop_map(MOp::Add),
            5 => (any::<usize>(), prop::bool::weighted(0.15))
                .prop_map(|(pick, ioerr)| MOp::Complete { pick, ioerr }),
            1 => any::<usize>().prop_map(|pick| MOp::Duplicate { pick }),
            1 => any::<u64>().prop_map(|id| MOp::Forge { id }),
            1 => any::<bool>().prop_map(MOp::Busy),
            1 => Just(MOp::Kick),
        ]
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Read,
        Write,
        Flush,
        GetId,
    }

    #[derive(Debug)]
    struct MReq {
        kind: Kind,
        req: Req,
        sector: u64,
        /// The backend completed it, with this status.
        backend: Option<u8>,
        guest_done: bool,
    }

    const MAX_REQUESTS: usize = 20;

    fn pattern(sector: u64) -> Vec<u8> {
        (0..512)
            .map(|i| (i as u64 * 13 + sector * 7) as u8)
            .collect()
    }

    struct Model {
        g: Guest,
        reqs: Vec<MReq>,
        by_head: HashMap<u16, usize>,
        /// Backend request index → model request.
        taken: Vec<usize>,
        /// Ids completed (Done or Dropped).
        completed: Vec<u64>,
    }

    impl Model {
        fn add(&mut self, k: u8) {
            if self.reqs.len() >= MAX_REQUESTS {
                return;
            }
            let sector = 100 + self.reqs.len() as u64;
            let kind = match k {
                0..=2 => Kind::Read,
                3..=5 => Kind::Write,
                6 => Kind::Flush,
                _ => Kind::GetId,
            };
            let req = match kind {
                Kind::Read => self.g.add(T_IN, sector, None, 512),
                Kind::Write => self.g.add(T_OUT, sector, Some(&pattern(sector)), 0),
                Kind::Flush => self.g.add(T_FLUSH, 0, None, 0),
                Kind::GetId => self.g.add(T_GET_ID, 0, None, ID_BYTES as u32),
            };
            assert!(self.by_head.insert(req.head, self.reqs.len()).is_none());
            self.reqs.push(MReq {
                kind,
                req,
                sector,
                backend: None,
                guest_done: false,
            });
        }

        /// Maps what the backend newly took to the guest's requests and checks the
        /// order: as made available, and a flush only after every earlier write
        /// completed at the backend.
        fn observe_backend(&mut self) {
            while self.taken.len() < self.g.be.taken.len() {
                let (r, data) = self.g.be.taken[self.taken.len()].clone();
                let last = self.taken.last().copied();
                let i = match r.op {
                    BlkOp::Flush => (last.map_or(0, |l| l + 1)..self.reqs.len())
                        .find(|&i| self.reqs[i].kind == Kind::Flush)
                        .expect("a flush the guest made"),
                    _ => self
                        .reqs
                        .iter()
                        .position(|m| m.sector == r.sector && m.kind != Kind::Flush)
                        .expect("a request the guest made"),
                };
                assert!(last.is_none_or(|l| i > l), "handed over out of order");
                let m = &self.reqs[i];
                match m.kind {
                    Kind::Read => assert_eq!((r.op, r.len), (BlkOp::Read, 512)),
                    Kind::Write => {
                        assert_eq!((r.op, r.len), (BlkOp::Write, 512));
                        assert_eq!(data, pattern(m.sector));
                    }
                    Kind::Flush => {
                        for e in &self.reqs[..i] {
                            if e.kind == Kind::Write {
                                assert!(
                                    e.backend.is_some(),
                                    "flush before an earlier write completed"
                                );
                            }
                        }
                    }
                    Kind::GetId => panic!("GET_ID went to the backend"),
                }
                self.taken.push(i);
            }
        }

        /// Checks what the guest newly got back.
        fn observe_guest(&mut self) {
            for (head, len) in self.g.used() {
                let i = self
                    .by_head
                    .remove(&(head as u16))
                    .expect("completed once, and only what the guest made available");
                let m = &self.reqs[i];
                let status = self.g.status_of(&m.req);
                match m.kind {
                    Kind::GetId => {
                        assert_eq!(status, S_OK);
                        assert_eq!(self.g.ram.get(m.req.data, ID_BYTES), &SERIAL);
                    }
                    _ => {
                        let b = m
                            .backend
                            .expect("completed to the guest before the backend");
                        assert_eq!(status, b);
                        if m.kind == Kind::Read && b == S_OK {
                            assert_eq!(len, 513);
                            assert_eq!(self.g.ram.get(m.req.data, 512), &pattern(m.sector)[..]);
                        } else {
                            assert_eq!(len, 1);
                        }
                    }
                }
                if m.kind == Kind::Flush {
                    for e in &self.reqs[..i] {
                        if e.kind == Kind::Write {
                            assert!(e.guest_done, "flush done before an earlier write");
                        }
                    }
                }
                self.reqs[i].guest_done = true;
            }
        }

        /// Backend requests not completed yet.
        fn open(&self) -> Vec<usize> {
            (0..self.taken.len())
                .filter(|&t| self.reqs[self.taken[t]].backend.is_none())
                .collect()
        }

        fn complete(&mut self, t: usize, ioerr: bool) {
            let (r, _) = self.g.be.taken[t].clone();
            let m = self.taken[t];
            let status = if ioerr { S_IOERR } else { S_OK };
            let data = if r.op == BlkOp::Read {
                pattern(r.sector)
            } else {
                vec![]
            };
            assert_eq!(self.g.complete(r.id, status, &data), Completion::Done);
            self.reqs[m].backend = Some(status);
            self.completed.push(r.id);
        }

        fn step(&mut self, op: &MOp) {
            match *op {
                MOp::Add(k) => self.add(k),
                MOp::Complete { pick, ioerr } => {
                    let open = self.open();
                    if !open.is_empty() {
                        self.complete(open[pick % open.len()], ioerr);
                    }
                }
                MOp::Duplicate { pick } => {
                    if !self.completed.is_empty() {
                        let id = self.completed[pick % self.completed.len()];
                        assert_eq!(self.g.complete(id, S_OK, &[0; 512]), Completion::UnknownId);
                    }
                }
                MOp::Forge { id } => {
                    if !self.g.be.taken.iter().any(|t| t.0.id == id) {
                        assert_eq!(self.g.complete(id, S_OK, &[0; 512]), Completion::UnknownId);
                    }
                }
                MOp::Busy(b) => {
                    self.g.be.busy = b;
                    self.g.dev.process(&mut self.g.ram, &mut self.g.be);
                }
                MOp::Kick => self.g.kick(),
            }
            self.observe_backend();
            self.observe_guest();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn every_request_completes_once_and_flushes_keep_order(
            ops in proptest::collection::vec(mop(), 1..80),
            finish in proptest::collection::vec(any::<usize>(), 64),
        ) {
            let mut m = Model {
                g: Guest::new(),
                reqs: Vec::new(),
                by_head: HashMap::new(),
                taken: Vec::new(),
                completed: Vec::new(),
            };
            for op in &ops {
                m.step(op);
            }
            // The backend drains in some order; every request then completes exactly once.
            m.g.be.busy = false;
            m.step(&MOp::Kick);
            let mut k = 0;
            loop {
                let open = m.open();
                if open.is_empty() {
                    break;
                }
                m.complete(open[finish[k % finish.len()] % open.len()], false);
                k += 1;
                m.observe_backend();
                m.observe_guest();
            }
            prop_assert!(m.by_head.is_empty(), "not completed: {:?}", m.by_head);
            prop_assert!(m.reqs.iter().all(|r| r.guest_done));
            prop_assert_eq!(m.g.dev.in_flight(), 0);
            prop_assert!(m.g.dev.transport.live());
        }
    }
}

/// A read's data straight from a driver connection's region into the guest's buffers (no
/// staging copy): the bytes arrive; a range the region does not hold is short data (IOERR),
/// never a copy from outside it.
#[test]
fn a_read_completes_straight_from_a_shared_region() {
    let mut words = vec![0u64; 1024];
    let ptr = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `words` outlives the region (dropped at the end of the test).
    let region = unsafe { DataRegion::alias(&axolotl_ring::SharedRegion::new(ptr, 8192)) };
    let data: Vec<u8> = (0..1024).map(|i| (i * 3) as u8).collect();
    assert!(region.copy_in(4096, &data));
    let mut g = Guest::new();
    let r = g.add(T_IN, 8, None, 1024);
    g.kick();
    let id = g.be.taken[0].0.id;
    let c = g
        .dev
        .complete_from_region(&mut g.ram, id, S_OK, &region, 4096, 1024);
    assert_eq!(c, Completion::Done);
    assert_eq!(g.ram.get(r.data, 1024), &data[..]);
    assert_eq!(g.status_of(&r), S_OK);

    let r = g.add(T_IN, 8, None, 1024);
    g.kick();
    let id = g.be.taken[1].0.id;
    let c = g
        .dev
        .complete_from_region(&mut g.ram, id, S_OK, &region, 8192 - 512, 1024);
    assert_eq!(c, Completion::Done);
    assert_eq!(
        g.status_of(&r),
        S_IOERR,
        "past the region's end: short data"
    );
    drop(words);
}
