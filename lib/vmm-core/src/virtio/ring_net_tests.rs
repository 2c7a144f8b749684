//! virtio-net over a NetClient, against lib/net's real server end (what the virtualiser
//! runs): frames both ways, back-pressure, and a virtualiser restart.
extern crate std;

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::boxed::Box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::vec;
use std::vec::Vec;

use axolotl_net::link::{DATA_BYTES, RINGS_BYTES};
use axolotl_net::{LinkRegions, NetClient, NetServer};
use axolotl_ring::{Authority, Generations, SharedRegion};

use super::*;
use crate::virtio::mmio::QUEUE_NOTIFY;
use crate::virtio::net::{HDR_LEN, NetConfig, RX_QUEUE, TX_QUEUE};
use crate::virtio::testutil::*;

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

fn authority(w: &AtomicU32) -> Authority {
    // SAFETY: the boxes outlive the endpoints (World drops them last).
    unsafe { Authority::new(NonNull::from(w)) }
}

// Fields drop in order: the endpoints before the memory they point into.
struct World {
    ram: Ram,
    rxq: DriverQueue,
    txq: DriverQueue,
    dev: VirtioNet,
    ring: Box<NetRing<4>>,
    virt: Option<NetServer>,
    rings: Mem,
    data: Mem,
    vmm_pd: Box<AtomicU32>,
    virt_pd: Box<AtomicU32>,
}

const MAC: [u8; 6] = [2, 0, 0, 10, 0, 15];

impl World {
    fn new() -> Self {
        let rings = Mem::new(RINGS_BYTES);
        let data = Mem::new(DATA_BYTES);
        let vmm_pd = Box::new(AtomicU32::new(1));
        let virt_pd = Box::new(AtomicU32::new(1));
        let g = || Generations {
            own: 1,
            peer: authority(&virt_pd),
        };
        let link = LinkRegions::split(rings.region(), data.region()).unwrap();
        let client = NetClient::new(link, g(), g()).unwrap();
        let mut w = World {
            ram: Ram::new(),
            rxq: DriverQueue::new(0, 64, RAM_BASE + 0x1_0000),
            txq: DriverQueue::new(1, 64, RAM_BASE + 0x2_0000),
            dev: VirtioNet::new(
                NetConfig {
                    mac: MAC,
                    link_up: true,
                },
                RAM,
            ),
            ring: Box::new(NetRing::new(client)),
            virt: None,
            rings,
            data,
            vmm_pd,
            virt_pd,
        };
        w.start_virt();
        let f = offered(&mut w.dev);
        init(&mut w.dev, f, &[w.rxq.clone(), w.txq.clone()]);
        w
    }

    fn start_virt(&mut self) {
        let g = || Generations {
            own: self.virt_pd.load(Ordering::Relaxed) + 1,
            peer: authority(&self.vmm_pd),
        };
        let (a, b) = (g(), g());
        self.virt_pd.fetch_add(1, Ordering::Relaxed);
        let link = LinkRegions::split(self.rings.region(), self.data.region()).unwrap();
        self.virt = Some(NetServer::new(link, a, b).unwrap());
    }

    /// Posts `n` receive buffers of 2 KiB.
    fn post_rx(&mut self, n: u64) {
        for i in 0..n {
            let b = RAM_BASE + 0x8_0000 + (i % 32) * 0x800;
            self.rxq.add(&mut self.ram, &[(b, 0x800, true)]);
        }
    }

    fn send(&mut self, i: u64, frame: &[u8]) {
        let b = RAM_BASE + 0x4_0000 + (i % 32) * 0x800;
        let mut buf = vec![0u8; HDR_LEN as usize];
        buf.extend_from_slice(frame);
        self.ram.put(b, &buf);
        self.txq.add(&mut self.ram, &[(b, buf.len() as u32, false)]);
    }

    /// The VMM's and the virtualiser's turns until quiet; what the virtualiser got.
    fn settle(&mut self, inject: &mut Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..16 {
            let a = self.ring.poll(&mut self.dev, &mut self.ram);
            assert_eq!(a.fault, None);
            if let Some(v) = self.virt.as_mut() {
                let _ = v.poll();
                let mut out = [0u8; axolotl_net::MAX_FRAME];
                let mut notify = false;
                while let Some(n) = v.take_tx(&mut out, &mut notify) {
                    got.push(out[..n].to_vec());
                }
                while !inject.is_empty() && v.rx_ready() {
                    assert!(v.deliver(&inject.remove(0)));
                }
                let _ = v.poll();
            }
        }
        got
    }
}

fn frame(n: u8, len: usize) -> Vec<u8> {
    let mut f = vec![n; len];
    f[..6].copy_from_slice(&MAC);
    f
}

#[test]
fn frames_go_both_ways() {
    let mut w = World::new();
    w.post_rx(8);
    w.send(0, &frame(1, 60));
    w.send(1, &frame(2, 1514));
    wr(&mut w.dev, QUEUE_NOTIFY, TX_QUEUE as u32);
    let got = w.settle(&mut vec![frame(3, 100), frame(4, 1514)]);
    assert_eq!(got, vec![frame(1, 60), frame(2, 1514)]);
    assert_eq!(w.txq.take_used(&w.ram).len(), 2);
    let rx = w.rxq.take_used(&w.ram);
    assert_eq!(rx.len(), 2);
    assert_eq!(rx[0].1 as usize, HDR_LEN as usize + 100);
    let b0 = RAM_BASE + 0x8_0000 + u64::from(rx[0].0) * 0x800;
    assert_eq!(w.ram.get(b0 + u64::from(HDR_LEN), 100), &frame(3, 100)[..]);
    assert!(w.dev.irq_level());
    let _ = RX_QUEUE;
}

#[test]
fn received_frames_wait_for_the_guests_buffers() {
    let mut w = World::new();
    let mut inject: Vec<Vec<u8>> = (0..3).map(|i| frame(10 + i, 200)).collect();
    w.settle(&mut inject);
    assert!(w.rxq.take_used(&w.ram).is_empty());
    assert_eq!(w.ring.queued(), 3);
    w.post_rx(8);
    wr(&mut w.dev, QUEUE_NOTIFY, RX_QUEUE as u32);
    w.settle(&mut Vec::new());
    let rx = w.rxq.take_used(&w.ram);
    assert_eq!(rx.len(), 3, "in order, none lost");
    for (k, (id, _)) in rx.iter().enumerate() {
        let b = RAM_BASE + 0x8_0000 + u64::from(*id) * 0x800 + u64::from(HDR_LEN);
        assert_eq!(w.ram.get(b, 200), &frame(10 + k as u8, 200)[..]);
    }
}

#[test]
fn the_guest_keeps_sending_across_a_virtualiser_restart() {
    let mut w = World::new();
    w.post_rx(8);
    w.settle(&mut Vec::new());
    w.virt = None;
    // Sent while the virtualiser is dead: it may be lost with the old incarnation (TCP
    // resends), but the guest gets its buffer back and its queue goes on.
    w.send(0, &frame(5, 80));
    wr(&mut w.dev, QUEUE_NOTIFY, TX_QUEUE as u32);
    let _ = w.ring.poll(&mut w.dev, &mut w.ram);
    w.start_virt();
    let got = w.settle(&mut vec![frame(6, 90)]);
    assert!(got.is_empty() || got == vec![frame(5, 80)], "{got:?}");
    w.send(1, &frame(7, 70));
    wr(&mut w.dev, QUEUE_NOTIFY, TX_QUEUE as u32);
    let got2 = w.settle(&mut Vec::new());
    assert_eq!(got2, vec![frame(7, 70)]);
    assert_eq!(w.txq.take_used(&w.ram).len(), 2);
    assert_eq!(
        w.rxq.take_used(&w.ram).len(),
        1,
        "the new virtualiser delivers"
    );
    assert!(w.ring.client().stats().server_restarts >= 1);
}

/// Flips bit 3 of byte `byte` of the oldest frame the VMM holds in its link (after the
/// driver's check went with it: damage on the way, before the VMM).
fn damage_kept_frame(w: &World, byte: usize) {
    let (off, _) = w.ring.client().rx_peek().unwrap();
    let r = w.ring.client().rx_region();
    let b = r.read_u8(off + byte).unwrap();
    assert!(r.write_u8(off + byte, b ^ 8));
}

#[test]
fn a_frame_damaged_before_the_vmm_is_dropped_and_the_virtualiser_reported() {
    let mut w = World::new();
    w.settle(&mut vec![frame(20, 300), frame(21, 300), frame(22, 300)]);
    assert_eq!(w.ring.queued(), 3);
    damage_kept_frame(&w, 150);
    w.post_rx(8);
    wr(&mut w.dev, QUEUE_NOTIFY, RX_QUEUE as u32);
    let a = w.ring.poll(&mut w.dev, &mut w.ram);
    assert!(
        matches!(
            a.fault,
            Some((
                axolotl_net::Dir::Rx,
                axolotl_ring::Corruption::DataCheck { .. }
            ))
        ),
        "{a:?}"
    );
    assert_eq!(a.contradiction, None);
    let rx = w.rxq.take_used(&w.ram);
    assert_eq!(rx.len(), 2, "the damaged frame is not delivered");
    for (k, (id, _)) in rx.iter().enumerate() {
        let b = RAM_BASE + 0x8_0000 + u64::from(*id) * 0x800 + u64::from(HDR_LEN);
        assert_eq!(w.ram.get(b, 300), &frame(21 + k as u8, 300)[..]);
    }
    assert_eq!(w.ring.client().stats().rx_check_failed, 1);
    assert_eq!(w.dev.counters.rx_check_failed, 1);
    // Its buffer went back to the virtualiser: the link goes on.
    w.settle(&mut vec![frame(23, 64)]);
    assert_eq!(w.rxq.take_used(&w.ram).len(), 1);
}

#[test]
fn a_frame_the_vmms_own_copy_damaged_is_a_contradiction() {
    let mut w = World::new();
    w.settle(&mut vec![frame(30, 400)]);
    w.post_rx(1);
    wr(&mut w.dev, QUEUE_NOTIFY, RX_QUEUE as u32);
    // Byte 100 of the frame in the guest's buffer, after the 12-byte header.
    let mut mem = Damaging {
        ram: &mut w.ram,
        damage: Some(RAM_BASE + 0x8_0000 + 12 + 100),
    };
    let a = w.ring.poll(&mut w.dev, &mut mem);
    assert!(
        matches!(
            a.contradiction,
            Some(axolotl_net::Contradiction::Copy {
                dir: axolotl_net::Dir::Rx,
                ..
            })
        ),
        "{a:?}"
    );
    assert_eq!(a.fault, None, "the virtualiser is not blamed");
    assert!(w.rxq.take_used(&w.ram).is_empty(), "never published");
    assert_eq!(w.ring.client().stats().rx_check_failed, 0);
    let a = w.ring.poll(&mut w.dev, &mut w.ram);
    assert!(a.contradiction.is_some(), "sticky: the VMM fail-stops");
    assert!(w.rxq.take_used(&w.ram).is_empty());
}
