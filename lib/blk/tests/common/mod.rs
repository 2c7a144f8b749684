//! Test-side shared memory, generations and a fake disk: heap allocations stand in for the
//! regions the SDF maps into the driver and its client, and for the device.
#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use axolotl_blk::{
    BlkClient, BlkServer, BlockDevice, DATA_START, DataRegion, DeviceError, DeviceOp, DeviceStatus,
    SECTOR_SIZE, data_region_bytes,
};
use axolotl_ring::{Authority, Generations, SharedRegion, ring_region_bytes};

pub const CAP: u32 = 8;
pub const IDS: usize = 8;
/// Sectors one request may move (the fake device's bounce buffers).
pub const MAX_SECTORS: usize = 4;
pub const MAX_BYTES: usize = MAX_SECTORS * SECTOR_SIZE;
/// The client's buffers: one per id, `MAX_BYTES` each, after the command area.
pub const DATA_BYTES: usize = IDS * MAX_BYTES;

pub fn buffer_offset(i: usize) -> u32 {
    (DATA_START + i * MAX_BYTES) as u32
}

pub struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("alloc");
        Self { ptr, layout }
    }

    pub fn region(&self) -> SharedRegion {
        // SAFETY: lives as long as `self`; tests drop endpoints first.
        unsafe { SharedRegion::new(self.ptr, self.layout.size()) }
    }

    pub fn write_u32(&self, offset: usize, v: u32) {
        assert!(offset + 4 <= self.layout.size() && offset.is_multiple_of(4));
        // SAFETY: in bounds, aligned; single-threaded tests.
        unsafe {
            self.ptr
                .add(offset)
                .cast::<u32>()
                .as_ptr()
                .write_volatile(v)
        }
    }

    pub fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset + 4 <= self.layout.size() && offset.is_multiple_of(4));
        // SAFETY: as in `write_u32`.
        unsafe { self.ptr.add(offset).cast::<u32>().as_ptr().read_volatile() }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// What the disk holds, across device resets and driver restarts.
#[derive(Debug)]
pub struct DiskState {
    /// What reads see.
    pub data: Vec<u8>,
    /// What a flush made durable.
    pub durable: Vec<u8>,
    pub writes: u64,
    pub flushes: u64,
}

pub type Disk = Rc<RefCell<DiskState>>;

pub fn disk(sectors: usize) -> Disk {
    Rc::new(RefCell::new(DiskState {
        data: vec![0; sectors * SECTOR_SIZE],
        durable: vec![0; sectors * SECTOR_SIZE],
        writes: 0,
        flushes: 0,
    }))
}

/// A device that runs a request when the test says it completes, in any order the test
/// picks; it holds at most `limit` at once (`Busy` beyond).
pub struct FakeDevice {
    pub disk: Disk,
    bufs: Vec<Vec<u8>>,
    pub limit: usize,
    /// In the device: (slot, op, sector, bytes).
    pub in_device: Vec<(usize, DeviceOp, u64, usize)>,
    done: std::collections::VecDeque<(usize, DeviceStatus)>,
    /// Completions for slots never submitted (a device gone wrong).
    pub inject_bogus: Option<usize>,
    pub submitted: u64,
    /// Direct mode (sDDF's, the driver's real one): the device reads and writes the
    /// client's data region itself, at the offsets the server passed (`offsets[slot]`).
    region: Option<DataRegion>,
    offsets: Vec<usize>,
}

impl FakeDevice {
    pub fn new(disk: Disk, slots: usize, limit: usize) -> Self {
        Self {
            disk,
            bufs: vec![vec![0; MAX_BYTES]; slots],
            limit,
            in_device: Vec::new(),
            done: Default::default(),
            inject_bogus: None,
            submitted: 0,
            region: None,
            offsets: vec![0; slots],
        }
    }

    /// A device that DMAs straight into and out of `link`'s data region.
    pub fn direct(disk: Disk, slots: usize, limit: usize, link: &Link) -> Self {
        let mut d = Self::new(disk, slots, limit);
        // SAFETY: the link outlives the device in every test (dropped after the endpoints).
        d.region = Some(unsafe { DataRegion::alias(&link.data.region()) });
        d
    }

    /// Runs the `k`-th request in the device (mod how many there are).
    pub fn complete(&mut self, k: usize) -> bool {
        if self.in_device.is_empty() {
            return false;
        }
        let (slot, op, sector, bytes) = self.in_device.remove(k % self.in_device.len());
        self.run(slot, op, sector, bytes);
        self.done.push_back((slot, DeviceStatus::Ok));
        true
    }

    fn run(&mut self, slot: usize, op: DeviceOp, sector: u64, bytes: usize) {
        let mut d = self.disk.borrow_mut();
        let at = sector as usize * SECTOR_SIZE;
        if let Some(r) = self.region.as_ref()
            && op != DeviceOp::Flush
        {
            let off = self.offsets[slot];
            if op == DeviceOp::Read {
                assert!(r.copy_in(off, &d.data[at..at + bytes]));
            } else {
                assert!(r.copy_out(off, &mut d.data[at..at + bytes]));
                d.writes += 1;
            }
            return;
        }
        match op {
            DeviceOp::Read => self.bufs[slot][..bytes].copy_from_slice(&d.data[at..at + bytes]),
            DeviceOp::Write => {
                d.data[at..at + bytes].copy_from_slice(&self.bufs[slot][..bytes]);
                d.writes += 1;
            }
            DeviceOp::Flush => {
                d.durable = d.data.clone();
                d.flushes += 1;
            }
        }
    }

    /// A reset (the next driver's init): what was in the device either ran or not.
    pub fn reset(&mut self, run: impl Fn(usize) -> bool) {
        let reqs = std::mem::take(&mut self.in_device);
        for (i, (slot, op, sector, bytes)) in reqs.into_iter().enumerate() {
            if run(i) {
                self.run(slot, op, sector, bytes);
            }
        }
        self.done.clear();
    }
}

impl BlockDevice for FakeDevice {
    fn capacity(&self) -> u64 {
        (self.disk.borrow().data.len() / SECTOR_SIZE) as u64
    }

    fn slots(&self) -> usize {
        self.bufs.len()
    }

    fn max_bytes(&self) -> usize {
        MAX_BYTES
    }

    fn buffer(&mut self, slot: usize) -> &mut [u8] {
        assert!(
            self.region.is_none(),
            "the server copied through a bounce buffer although the device is direct"
        );
        assert!(
            !self.in_device.iter().any(|r| r.0 == slot),
            "the server touched the buffer of slot {slot} while it was in the device"
        );
        &mut self.bufs[slot]
    }

    fn submit(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        bytes: usize,
    ) -> Result<(), DeviceError> {
        if self.in_device.len() >= self.limit {
            return Err(DeviceError::Busy);
        }
        assert!(slot < self.bufs.len());
        assert!(!self.in_device.iter().any(|r| r.0 == slot), "slot reused");
        let end = sector as usize * SECTOR_SIZE + bytes;
        assert!(
            end <= self.disk.borrow().data.len(),
            "the server passed a range past the end"
        );
        self.in_device.push((slot, op, sector, bytes));
        self.submitted += 1;
        Ok(())
    }

    fn direct(&self) -> bool {
        self.region.is_some()
    }

    fn submit_direct(
        &mut self,
        slot: usize,
        op: DeviceOp,
        sector: u64,
        offset: usize,
        bytes: usize,
    ) -> Result<(), DeviceError> {
        assert!(
            self.region.is_some(),
            "direct submission to a bounce device"
        );
        assert!(
            offset >= DATA_START && offset + bytes <= data_region_bytes(DATA_BYTES),
            "the server let a buffer outside the data area through: {offset:#x}+{bytes:#x}"
        );
        assert!(op != DeviceOp::Flush, "a flush has no buffer");
        self.submit(slot, op, sector, bytes)?;
        self.offsets[slot] = offset;
        Ok(())
    }

    fn poll(&mut self) -> Result<Option<(usize, DeviceStatus)>, DeviceError> {
        if let Some(s) = self.inject_bogus.take() {
            return Ok(Some((s, DeviceStatus::Ok)));
        }
        Ok(self.done.pop_front())
    }
}

/// One connection's regions and the PD generations the authority publishes for its ends.
pub struct Link {
    pub rings: Mem,
    pub data: Mem,
    pub client_pd: Box<AtomicU32>,
    pub server_pd: Box<AtomicU32>,
}

fn authority(word: &AtomicU32) -> Authority {
    // SAFETY: the box lives as long as the link; tests drop endpoints first.
    unsafe { Authority::new(NonNull::from(word)) }
}

impl Link {
    pub fn new() -> Self {
        Self {
            rings: Mem::new(ring_region_bytes(CAP).unwrap()),
            data: Mem::new(data_region_bytes(DATA_BYTES)),
            client_pd: Box::new(AtomicU32::new(0)),
            server_pd: Box::new(AtomicU32::new(0)),
        }
    }

    pub fn client(&self) -> BlkClient<IDS> {
        let g = Generations {
            own: self.client_pd.load(Ordering::Relaxed),
            peer: authority(&self.server_pd),
        };
        BlkClient::new(self.rings.region(), self.data.region(), CAP, g).unwrap()
    }

    pub fn server(&self, dev: FakeDevice) -> BlkServer<FakeDevice, IDS> {
        let g = Generations {
            own: self.server_pd.load(Ordering::Relaxed),
            peer: authority(&self.client_pd),
        };
        BlkServer::new(dev, self.rings.region(), self.data.region(), CAP, g).unwrap()
    }

    /// The authority restarts the server: a new generation, then the new incarnation.
    pub fn restart_server(&self, dev: FakeDevice) -> BlkServer<FakeDevice, IDS> {
        self.server_pd.fetch_add(1, Ordering::Relaxed);
        self.server(dev)
    }
}
