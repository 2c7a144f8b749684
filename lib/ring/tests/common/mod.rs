//! Test-side shared memory: an aligned heap allocation standing in for a
//! memory region mapped into two protection domains. The test also plays
//! the misbehaving peer by poking words directly.
#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use axolotl_ring::{Client, ClientEvent, Server, ServerEvent, SharedRegion, ring_region_bytes};

pub struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: plain heap memory; all accesses go through atomics or the test's
// single thread.
unsafe impl Send for Mem {}
// SAFETY: as for Send: shared accesses are atomics, the rest is single-threaded.
unsafe impl Sync for Mem {}

impl Mem {
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), 64).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("alloc");
        Self { ptr, layout }
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// A handle on the whole allocation (one per endpoint, as each PD maps it).
    pub fn region(&self) -> SharedRegion {
        // SAFETY: lives as long as `self`; tests drop endpoints first.
        unsafe { SharedRegion::new(self.ptr, self.layout.size()) }
    }

    pub fn region_at(&self, offset: usize, len: usize) -> SharedRegion {
        assert!(offset + len <= self.layout.size());
        // SAFETY: in bounds; as in `region`.
        unsafe { SharedRegion::new(self.ptr.add(offset), len) }
    }

    /// The peer writing a 32-bit word of shared memory.
    pub fn write_u32(&self, offset: usize, v: u32) {
        assert!(offset + 4 <= self.layout.size() && offset.is_multiple_of(4));
        // SAFETY: in bounds, aligned; tests are single-threaded here.
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

// Byte offsets of the real-build layout (see the crate docs).
pub const Q_TAIL: usize = 0;
pub const Q_HEAD: usize = 64;
pub const Q_SIGNAL: usize = 68;
pub const Q_SLOTS: usize = 128;
pub const CLIENT_GEN: usize = 0;
pub const CLIENT_ACK: usize = 4;
pub const SERVER_GEN: usize = 64;
pub const SERVER_ACK: usize = 68;
pub const REQ_Q: usize = 128;

pub fn resp_q(capacity: u32) -> usize {
    REQ_Q + 128 + 16 * capacity as usize
}

/// Writes a descriptor into slot `index` of the queue at `q`, as a peer would:
/// sealed with the position it is written for (`slot_words`), so that what the
/// consumer finds wrong is the descriptor itself.
pub fn write_slot(mem: &Mem, q: usize, capacity: u32, index: u32, d: [u32; 4]) {
    let d = axolotl_ring::Descriptor {
        offset: d[0],
        len: d[1],
        id: d[2],
        tag: d[3],
    };
    write_raw_slot(mem, q, capacity, index, axolotl_ring::slot_words(d, index));
}

/// Writes the four words of slot `index` of the queue at `q` as they are.
pub fn write_raw_slot(mem: &Mem, q: usize, capacity: u32, index: u32, words: [u32; 4]) {
    let base = q + Q_SLOTS + 16 * (index & (capacity - 1)) as usize;
    for (i, w) in words.iter().enumerate() {
        mem.write_u32(base + 4 * i, *w);
    }
}

#[cfg(feature = "loom")]
use loom::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(feature = "loom"))]
use std::sync::atomic::{AtomicU32, Ordering};

use axolotl_ring::{Authority, Generations};

/// The authority's side: the PD generations of the client and the server, as the root task
/// publishes them (read-only to both). A test "restarts" a side by raising its word first,
/// as the root task does before resuming a restarted PD.
pub struct Pds {
    client: Box<AtomicU32>,
    server: Box<AtomicU32>,
}

// SAFETY: atomics only.
unsafe impl Sync for Pds {}

impl Pds {
    pub fn new() -> Self {
        Self::at(0, 0)
    }

    /// PD generations `client` and `server` (ring generations one more).
    pub fn at(client: u32, server: u32) -> Self {
        Pds {
            client: Box::new(AtomicU32::new(client)),
            server: Box::new(AtomicU32::new(server)),
        }
    }

    fn authority(word: &AtomicU32) -> Authority {
        // SAFETY: the box lives as long as `self`; tests drop endpoints first.
        unsafe { Authority::new(std::ptr::NonNull::from(word)) }
    }

    /// What a starting client is given: its own generation, the server's word.
    pub fn client(&self) -> Generations {
        Generations {
            own: self.client.load(Ordering::Acquire),
            peer: Self::authority(&self.server),
        }
    }

    pub fn server(&self) -> Generations {
        Generations {
            own: self.server.load(Ordering::Acquire),
            peer: Self::authority(&self.client),
        }
    }

    /// The authority restarts the client with a generation `by` higher.
    pub fn restart_client(&self, by: u32) {
        self.client.fetch_add(by, Ordering::Release);
    }

    pub fn restart_server(&self, by: u32) {
        self.server.fetch_add(by, Ordering::Release);
    }
}

/// A client and a server connected over fresh regions, polled together by the test.
pub struct Rig<const IDS: usize> {
    pub client: Client<IDS>,
    pub server: Server<IDS>,
    pub rings: Mem,
    pub data: Mem,
    /// After the endpoints: they read it until dropped.
    pub pds: Pds,
    cap: u32,
    /// Whether [`Rig::settle`] has the server answer each request at once with its whole
    /// buffer.
    answer: bool,
}

impl<const IDS: usize> Rig<IDS> {
    /// Connected: both sides polled until the handshake is done.
    pub fn connected(cap: u32, data_len: usize, answer: bool) -> Self {
        let rings = Mem::new(ring_region_bytes(cap).unwrap());
        let data = Mem::new(data_len);
        let pds = Pds::new();
        let client = Client::new(rings.region(), data.region(), cap, pds.client()).unwrap();
        let server = Server::new(rings.region(), data.region(), cap, pds.server()).unwrap();
        let mut rig = Rig {
            client,
            server,
            rings,
            data,
            pds,
            cap,
            answer,
        };
        rig.settle();
        assert!(rig.client.is_connected() && rig.server.is_connected());
        rig
    }

    /// Polls both until neither has anything to say; errors stop the side that got them
    /// (returned by its next poll, not followed).
    pub fn settle(&mut self) -> (Vec<ClientEvent>, Vec<ServerEvent>) {
        let (mut ce, mut se) = (Vec::new(), Vec::new());
        loop {
            let mut quiet = true;
            while let Ok(Some(e)) = self.server.poll() {
                if let (true, ServerEvent::Request(d)) = (self.answer, &e) {
                    let _ = self.server.respond(d.id, d.len).unwrap();
                }
                se.push(e);
                quiet = false;
            }
            while let Ok(Some(e)) = self.client.poll() {
                ce.push(e);
                quiet = false;
            }
            if quiet {
                return (ce, se);
            }
        }
    }

    /// The client's next incarnation over the same regions.
    pub fn restart_client(&mut self) {
        self.pds.restart_client(1);
        self.client = Client::new(
            self.rings.region(),
            self.data.region(),
            self.cap,
            self.pds.client(),
        )
        .unwrap();
    }

    /// The server's next incarnation over the same regions.
    pub fn restart_server(&mut self) {
        self.pds.restart_server(1);
        self.server = Server::new(
            self.rings.region(),
            self.data.region(),
            self.cap,
            self.pds.server(),
        )
        .unwrap();
    }
}
