//! Test-side shared memory and wiring: heap allocations stand in for the
//! regions the SDF maps into the driver and a client.
#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use axolotl_ring::{Authority, Generations, SharedRegion, ring_region_bytes};
use axolotl_serial_core::{Connection, FakeUart, MSG_SLOT, SeqClient, Server};

pub const CAP: u32 = 4;
pub const IDS: usize = 4;

pub struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), 128).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("alloc");
        Self { ptr, layout }
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn region(&self) -> SharedRegion {
        // SAFETY: lives as long as `self`; tests drop endpoints first.
        unsafe { SharedRegion::new(self.ptr, self.layout.size()) }
    }

    pub fn write_u32(&self, offset: usize, v: u32) {
        assert!(offset + 4 <= self.len() && offset.is_multiple_of(4));
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
        assert!(offset + 4 <= self.len() && offset.is_multiple_of(4));
        // SAFETY: as in `write_u32`.
        unsafe { self.ptr.add(offset).cast::<u32>().as_ptr().read_volatile() }
    }

    pub fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.len());
        // SAFETY: in bounds; single-threaded tests.
        (0..len)
            .map(|i| unsafe { self.ptr.add(offset + i).as_ptr().read_volatile() })
            .collect()
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// Byte offsets of lib/ring's layout (its crate docs).
pub const Q_TAIL: usize = 0;
pub const Q_HEAD: usize = 64;
pub const Q_SLOTS: usize = 128;
pub const REQ_Q: usize = 128;

pub fn resp_q(capacity: u32) -> usize {
    REQ_Q + 128 + 16 * capacity as usize
}

/// Writes a descriptor into slot `index` of the queue at `q`, as a peer would.
pub fn write_slot(mem: &Mem, q: usize, index: u32, d: [u32; 4]) {
    let base = q + Q_SLOTS + 16 * (index & (CAP - 1)) as usize;
    let d = axolotl_ring::Descriptor {
        offset: d[0],
        len: d[1],
        id: d[2],
        tag: d[3],
    };
    // Sealed with its position, as lib/ring's producer writes it: what the consumer
    // finds wrong is then the descriptor itself.
    for (i, w) in axolotl_ring::slot_words(d, index).iter().enumerate() {
        mem.write_u32(base + 4 * i, *w);
    }
}

/// One connection's two regions, and the two PD generations the authority (the root task)
/// publishes for its ends, which neither end can write.
pub struct Link {
    pub rings: Mem,
    pub data: Mem,
    client_pd: Box<AtomicU32>,
    server_pd: Box<AtomicU32>,
    /// Whether a client was started (the next one is a restart).
    client_started: Cell<bool>,
}

fn authority(word: &AtomicU32) -> Authority {
    // SAFETY: the box lives as long as the link; tests drop endpoints first.
    unsafe { Authority::new(NonNull::from(word)) }
}

impl Link {
    pub fn new() -> Self {
        Self::with_data(IDS * MSG_SLOT)
    }

    /// A link whose data region is `bytes` long (a receiving client's buffers are a sixteenth).
    pub fn with_data(bytes: usize) -> Self {
        Self {
            rings: Mem::new(ring_region_bytes(CAP).unwrap()),
            data: Mem::new(bytes),
            client_pd: Box::new(AtomicU32::new(0)),
            server_pd: Box::new(AtomicU32::new(0)),
            client_started: Cell::new(false),
        }
    }

    pub fn conn(&self) -> Connection {
        Connection {
            rings: self.rings.region(),
            data: self.data.region(),
            capacity: CAP,
            client: authority(&self.client_pd),
        }
    }

    /// The generations of a client starting now: the first at PD generation 0, each later
    /// one restarted by the authority with the next.
    pub fn client_generations(&self) -> Generations {
        if self.client_started.replace(true) {
            self.client_pd.fetch_add(1, Ordering::Release);
        }
        Generations {
            own: self.client_pd.load(Ordering::Acquire),
            peer: authority(&self.server_pd),
        }
    }

    /// The authority (re)starts the driver with ring generation `ring` on this link.
    pub fn start_server(&self, ring: u32) -> u32 {
        let pd = ring.checked_sub(1).expect("ring generations start at 1");
        self.server_pd.store(pd, Ordering::Release);
        pd
    }

    pub fn seq_client(&self, name: &str, window: usize, limit: Option<u32>) -> SeqClient<IDS> {
        SeqClient::new(
            name,
            self.rings.region(),
            self.data.region(),
            CAP,
            self.client_generations(),
            window,
            limit,
        )
        .unwrap()
    }

    pub fn rx_client(&self) -> axolotl_serial_core::RxClient<IDS> {
        axolotl_serial_core::RxClient::new(
            self.rings.region(),
            self.data.region(),
            CAP,
            self.client_generations(),
        )
        .unwrap()
    }

    pub fn ring_client(&self) -> axolotl_ring::Client<IDS> {
        axolotl_ring::Client::new(
            self.rings.region(),
            self.data.region(),
            CAP,
            self.client_generations(),
        )
        .unwrap()
    }

    /// A hand-driven server end (the test plays a driver) with ring generation `ring`.
    pub fn ring_server(&self, ring: u32) -> axolotl_ring::Server<IDS> {
        let own = self.start_server(ring);
        axolotl_ring::Server::new(
            self.rings.region(),
            self.data.region(),
            CAP,
            Generations {
                own,
                peer: authority(&self.client_pd),
            },
        )
        .unwrap()
    }
}

pub type Driver<const N: usize> = Server<FakeUart, N, IDS>;

/// The driver with ring generation `generation` (PD generation one less) on every link.
pub fn driver<const N: usize>(
    uart: FakeUart,
    links: &[Link; N],
    rx: Option<&Link>,
    generation: u32,
) -> Driver<N> {
    let mut pd = 0;
    for l in links.iter().chain(rx) {
        pd = l.start_server(generation);
    }
    Server::new(
        uart,
        std::array::from_fn(|i| links[i].conn()),
        rx.map(Link::conn),
        pd,
    )
    .unwrap()
}

/// The expected wire bytes of message `seq` of client `name`.
pub fn msg(name: &str, seq: u32) -> Vec<u8> {
    format!("{name} {seq}\n").into_bytes()
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Link {
    pub fn tx_stream(&self) -> axolotl_serial_core::TxStream<IDS> {
        axolotl_serial_core::TxStream::new(
            self.rings.region(),
            self.data.region(),
            CAP,
            self.client_generations(),
        )
        .unwrap()
    }
}
