//! virtio-blk over a BlkClient, against lib/blk's real server: what the guest writes
//! reaches the disk, reads come back, and a driver restart with requests in flight loses
//! and duplicates nothing.
extern crate std;

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::boxed::Box;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::vec;
use std::vec::Vec;

use axolotl_blk::{
    BlkClient, BlkServer, BlockDevice, DeviceError, DeviceOp, DeviceStatus, data_region_bytes,
};
use axolotl_ring::{Authority, Generations, SharedRegion, ring_region_bytes};

use super::*;
use crate::virtio::blk::{BlkConfig, ID_BYTES, T_FLUSH, T_IN, T_OUT};
use crate::virtio::mmio::QUEUE_NOTIFY;
use crate::virtio::testutil::*;

const IDS: usize = 4;
const BYTES: usize = 4096;
const CAP: u32 = 4;
const SECTORS: u64 = 256;

struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        Self { ptr, layout }
    }

    fn region(&self) -> SharedRegion {
        // SAFETY: lives as long as the test's endpoints (dropped first).
        unsafe { SharedRegion::new(self.ptr, self.layout.size()) }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A disk whose requests run when the test says.
struct Disk {
    data: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    in_device: Vec<(usize, DeviceOp, u64, usize)>,
    done: VecDeque<usize>,
}

impl Disk {
    fn new(data: Vec<u8>) -> Self {
        Self {
            data,
            bufs: vec![vec![0; BYTES]; 2],
            in_device: Vec::new(),
            done: VecDeque::new(),
        }
    }

    fn run_all(&mut self) {
        for (slot, op, sector, bytes) in core::mem::take(&mut self.in_device) {
            let at = sector as usize * 512;
            match op {
                DeviceOp::Read => {
                    self.bufs[slot][..bytes].copy_from_slice(&self.data[at..at + bytes])
                }
                DeviceOp::Write => {
                    self.data[at..at + bytes].copy_from_slice(&self.bufs[slot][..bytes])
                }
                DeviceOp::Flush => {}
            }
            self.done.push_back(slot);
        }
    }
}

impl BlockDevice for Disk {
    fn capacity(&self) -> u64 {
        SECTORS
    }
    fn slots(&self) -> usize {
        self.bufs.len()
    }
    fn max_bytes(&self) -> usize {
        BYTES
    }
    fn buffer(&mut self, slot: usize) -> &mut [u8] {
        &mut self.bufs[slot]
    }
    fn submit(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        bytes: usize,
    ) -> Result<(), DeviceError> {
        if self.in_device.len() == self.bufs.len() {
            return Err(DeviceError::Busy);
        }
        self.in_device.push((slot, op, sector, bytes));
        Ok(())
    }
    fn poll(&mut self) -> Result<Option<(usize, DeviceStatus)>, DeviceError> {
        Ok(self.done.pop_front().map(|s| (s, DeviceStatus::Ok)))
    }
}

// Fields drop in order: the endpoints before the memory they point into.
struct World {
    ram: Ram,
    q: DriverQueue,
    dev: VirtioBlk,
    ring: BlkRing<IDS, BYTES>,
    server: Option<BlkServer<Disk, IDS>>,
    next_area: u64,
    rings: Mem,
    data: Mem,
    vmm_pd: Box<AtomicU32>,
    driver_pd: Box<AtomicU32>,
}

fn authority(w: &AtomicU32) -> Authority {
    // SAFETY: the boxes outlive the endpoints (World drops them last).
    unsafe { Authority::new(NonNull::from(w)) }
}

impl World {
    fn new() -> Box<Self> {
        let rings = Mem::new(ring_region_bytes(CAP).unwrap());
        let data = Mem::new(data_region_bytes(IDS * BYTES));
        let vmm_pd = Box::new(AtomicU32::new(1));
        let driver_pd = Box::new(AtomicU32::new(1));
        let g = Generations {
            own: 1,
            peer: authority(&driver_pd),
        };
        let client = BlkClient::new(rings.region(), data.region(), CAP, g).unwrap();
        // Leaked: a test's few KiB, lent for the world's life.
        let ring = BlkRing::new(client).unwrap();
        let config = BlkConfig {
            capacity: SECTORS,
            blk_size: 512,
            seg_max: 1,
            size_max: Some(BYTES as u32),
            serial: [0; ID_BYTES],
        };
        let mut w = Box::new(World {
            rings,
            data,
            vmm_pd,
            driver_pd,
            ram: Ram::new(),
            q: DriverQueue::new(0, 64, RAM_BASE + 0x1_0000),
            dev: VirtioBlk::new(config, RAM),
            ring,
            server: None,
            next_area: 0,
        });
        let disk = Disk::new(vec![0; SECTORS as usize * 512]);
        w.start_driver(disk);
        let f = offered(&mut w.dev);
        init(&mut w.dev, f, &[w.q.clone()]);
        // The handshake with the driver.
        w.settle();
        w
    }

    /// The root task starts (or restarts) the driver with a new generation.
    fn start_driver(&mut self, disk: Disk) {
        let g = Generations {
            own: self.driver_pd.fetch_add(1, Ordering::Relaxed) + 1,
            peer: authority(&self.vmm_pd),
        };
        self.server =
            Some(BlkServer::new(disk, self.rings.region(), self.data.region(), CAP, g).unwrap());
    }

    /// A request on the guest's ring: header, data (OUT) or buffer (IN), status.
    fn add(&mut self, kind: u32, sector: u64, out: Option<&[u8]>, in_len: u32) -> (u16, u64, u64) {
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
        (head, data, status)
    }

    /// The guest's QueueNotify, then the VMM's and the driver's turns until quiet.
    fn kick(&mut self) {
        wr(&mut self.dev, QUEUE_NOTIFY, 0);
        self.settle();
    }

    fn settle(&mut self) {
        for _ in 0..16 {
            let a = self.ring.poll(&mut self.dev, &mut self.ram);
            assert_eq!(a.fault, None);
            if let Some(s) = self.server.as_mut() {
                let _ = s.poll();
                s.device().run_all();
                let _ = s.poll();
            }
        }
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn guest_writes_reach_the_disk_and_read_back() {
    let mut w = World::new();
    let data = pattern(7, 4096);
    let (wh, _, ws) = w.add(T_OUT, 16, Some(&data), 0);
    let (fh, _, fs) = w.add(T_FLUSH, 0, None, 0);
    w.kick();
    let used = w.q.take_used(&w.ram);
    assert_eq!(used, vec![(wh.into(), 1), (fh.into(), 1)]);
    assert_eq!(w.ram.get(ws, 1)[0], 0);
    assert_eq!(w.ram.get(fs, 1)[0], 0);
    let disk = &w.server.as_mut().unwrap().device().data;
    assert_eq!(&disk[16 * 512..16 * 512 + 4096], &data[..]);
    let (rh, rd, rs) = w.add(T_IN, 16, None, 4096);
    w.kick();
    assert_eq!(w.q.take_used(&w.ram), vec![(rh.into(), 4097)]);
    assert_eq!(w.ram.get(rs, 1)[0], 0);
    assert_eq!(w.ram.get(rd, 4096), &data[..]);
    assert!(w.dev.irq_level());
}

#[test]
fn more_requests_than_buffers_wait_and_complete_in_turn() {
    let mut w = World::new();
    let mut reqs = Vec::new();
    for i in 0..10u8 {
        let d = pattern(i, 4096);
        let (h, _, s) = w.add(T_OUT, u64::from(i) * 8, Some(&d), 0);
        reqs.push((h, s, d));
    }
    w.kick();
    let used = w.q.take_used(&w.ram);
    assert_eq!(used.len(), 10, "every request completed exactly once");
    let disk = w.server.as_mut().unwrap().device().data.clone();
    for (i, (_, s, d)) in reqs.iter().enumerate() {
        assert_eq!(w.ram.get(*s, 1)[0], 0);
        assert_eq!(&disk[i * 4096..(i + 1) * 4096], &d[..]);
    }
}

#[test]
fn a_driver_restart_with_requests_in_flight_loses_nothing() {
    let mut w = World::new();
    let mut reqs = Vec::new();
    for i in 0..6u8 {
        let d = pattern(i + 40, 4096);
        let (h, _, s) = w.add(T_OUT, u64::from(i) * 8, Some(&d), 0);
        reqs.push((h, s, d));
    }
    wr(&mut w.dev, QUEUE_NOTIFY, 0);
    // The VMM hands requests over; the driver takes them into its device and dies there.
    let _ = w.ring.poll(&mut w.dev, &mut w.ram);
    let _ = w.server.as_mut().unwrap().poll();
    assert!(w.server.as_ref().unwrap().in_device() > 0);
    let mut old = w.server.take().unwrap();
    // What the dead driver's device held never ran; its successor has the same disk.
    let disk = Disk::new(old.device().data.clone());
    drop(old);
    assert!(w.q.take_used(&w.ram).is_empty(), "nothing completed yet");
    w.start_driver(disk);
    w.settle();
    let used = w.q.take_used(&w.ram);
    assert_eq!(
        used.len(),
        6,
        "every request completed exactly once: {used:?}"
    );
    let disk = w.server.as_mut().unwrap().device().data.clone();
    for (i, (_, s, d)) in reqs.iter().enumerate() {
        assert_eq!(w.ram.get(*s, 1)[0], 0, "request {i}");
        assert_eq!(&disk[i * 4096..(i + 1) * 4096], &d[..], "request {i}");
    }
    assert!(w.ring.client().stats().reissued > 0);
}

#[test]
fn requests_larger_than_a_buffer_are_io_errors() {
    let mut w = World::new();
    let d = pattern(1, 8192);
    let (h, _, s) = w.add(T_OUT, 0, Some(&d), 0);
    w.kick();
    assert_eq!(w.q.take_used(&w.ram), vec![(h.into(), 1)]);
    assert_eq!(w.ram.get(s, 1)[0], crate::virtio::blk::S_IOERR);
}
