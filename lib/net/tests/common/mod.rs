//! Heap allocations stand in for the regions the SDF maps into the two ends of a link, and
//! two words for the root task's generation table.
#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use axolotl_net::link::{CAPACITY, DATA_BYTES, RINGS_BYTES, TX_RINGS_OFFSET};
use axolotl_net::{LinkRegions, NetClient, NetServer};
use axolotl_ring::{Authority, DataRegion, Generations, SharedRegion};

pub struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 4096).unwrap();
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

fn authority(word: &AtomicU32) -> Authority {
    // SAFETY: the box lives as long as the link; tests drop endpoints first.
    unsafe { Authority::new(NonNull::from(word)) }
}

/// A link's regions and the PD generations the authority publishes for its two ends.
pub struct Link {
    pub rings: Mem,
    pub data: Mem,
    client_pd: Box<AtomicU32>,
    server_pd: Box<AtomicU32>,
    client_started: bool,
    server_started: bool,
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

impl Link {
    pub fn new() -> Self {
        Self {
            rings: Mem::new(RINGS_BYTES),
            data: Mem::new(DATA_BYTES),
            client_pd: Box::new(AtomicU32::new(0)),
            server_pd: Box::new(AtomicU32::new(0)),
            client_started: false,
            server_started: false,
        }
    }

    fn regions(&self) -> LinkRegions {
        LinkRegions::split(self.rings.region(), self.data.region()).unwrap()
    }

    /// A client starting now (the authority restarted it if one ran before).
    pub fn client(&mut self) -> NetClient {
        if std::mem::replace(&mut self.client_started, true) {
            self.client_pd.fetch_add(1, Ordering::Release);
        }
        let g = Generations {
            own: self.client_pd.load(Ordering::Acquire),
            peer: authority(&self.server_pd),
        };
        NetClient::new(self.regions(), g, g).unwrap()
    }

    /// A server starting now.
    pub fn server(&mut self) -> NetServer {
        if std::mem::replace(&mut self.server_started, true) {
            self.server_pd.fetch_add(1, Ordering::Release);
        }
        let g = Generations {
            own: self.server_pd.load(Ordering::Acquire),
            peer: authority(&self.client_pd),
        };
        NetServer::new(self.regions(), g, g).unwrap()
    }

    /// Byte offset of the transmit connection's request queue in the rings region.
    pub const TX_REQ_Q: usize = TX_RINGS_OFFSET + 128;
    /// The receive connection's response queue (after the control block and the request
    /// queue of `CAPACITY` 16-byte slots).
    pub const RX_RESP_Q: usize = 128 + 128 + 16 * CAPACITY as usize;
}

/// Polls both ends until neither has anything to do.
pub fn settle(c: &mut NetClient, s: &mut NetServer, got: &mut Vec<Vec<u8>>) {
    for _ in 0..64 {
        let a = c.poll(|f| got.push(f.to_vec()));
        let b = s.poll();
        if !a.notify && !b.notify && !a.again && !b.again {
            return;
        }
    }
}

/// A frame of `len` bytes: to `dst`, from `src`, with `seq` in its payload.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    f
}

impl Link {
    /// A view of the whole data region (receive buffers at 0, transmit buffers at
    /// `IDS * BUF_SIZE`), for tests that play a hostile or damaged peer.
    pub fn data_view(&self) -> DataRegion {
        // SAFETY: `self.data` outlives the view in every test.
        unsafe { DataRegion::alias(&self.data.region()) }
    }

    /// Writes the check of the `len` bytes now in the buffer at `buf` (data region offset)
    /// into its trailer, as an honest producer would.
    pub fn seal(&self, buf: usize, len: usize) {
        let d = self.data_view();
        let c = axolotl_net::check::region_check(&d, buf, len).unwrap();
        assert!(axolotl_net::check::write(&d, buf, c));
    }

    /// A raw lib/ring client on the transmit connection, playing a hostile net client.
    pub fn raw_tx_client(&mut self) -> axolotl_ring::Client<{ axolotl_net::IDS }> {
        if std::mem::replace(&mut self.client_started, true) {
            self.client_pd.fetch_add(1, Ordering::Release);
        }
        let g = Generations {
            own: self.client_pd.load(Ordering::Acquire),
            peer: authority(&self.server_pd),
        };
        let r = self.regions();
        axolotl_ring::Client::new(r.tx_rings, r.tx_data, CAPACITY, g).unwrap()
    }
}
