//! The net driver's device side against a fake virtio-net device that lies: a used id it
//! was never given, a used index that jumps (an id used twice), a used length beyond the
//! buffer or below the header. `virtio-drivers` trusts all of these; `Nic` must not.

use std::alloc::{Layout, alloc_zeroed};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;

use axolotl_driver_pd::dma::{DMA, NetHal};
use axolotl_driver_pd::nic::{Nic, QUEUE, RecordSlot};
use axolotl_net::device::DeviceError;
use axolotl_net::salvage::{RECORD_WORDS, Salvaged, salvage_rx};
use std::ptr::NonNull;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `DMA` is one static: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const HEADER: usize = 12;

#[derive(Default)]
struct Queue {
    desc: u64,
    avail: u64,
    used: u64,
    used_idx: u16,
}

#[derive(Default)]
struct Dev {
    status: u32,
    queues: [Queue; 2],
    notified: u32,
    /// Offers VIRTIO_F_EVENT_IDX.
    event_idx: bool,
}

/// The device's view of memory: DMA addresses are host addresses here (identity).
fn rd<T: Copy>(addr: u64) -> T {
    // SAFETY: inside the test's DMA allocation, which is never freed.
    unsafe { (addr as *const T).read_unaligned() }
}
fn wr<T>(addr: u64, v: T) {
    // SAFETY: as in `rd`.
    unsafe { (addr as *mut T).write_unaligned(v) }
}

impl Dev {
    /// The head the driver made available at avail slot `k` of queue `q`.
    fn avail(&self, q: usize, k: u16) -> u16 {
        rd(self.queues[q].avail + 4 + 2 * u64::from(k % QUEUE as u16))
    }
    fn buffer_addr(&self, q: usize, head: u16) -> u64 {
        rd(self.queues[q].desc + 16 * u64::from(head))
    }
    /// Publishes a used element, as the device would (or as a lying one does).
    fn used(&mut self, q: usize, id: u32, len: u32) {
        let qu = &mut self.queues[q];
        let slot = qu.used + 4 + 8 * u64::from(qu.used_idx % QUEUE as u16);
        wr(slot, id);
        wr(slot + 4, len);
        qu.used_idx = qu.used_idx.wrapping_add(1);
        wr(qu.used + 2, qu.used_idx);
    }
    /// Asks to be notified once queue `q`'s available index passes `event` (EVENT_IDX's
    /// `avail_event`, after the used ring's elements).
    fn set_avail_event(&mut self, q: usize, event: u16) {
        wr(self.queues[q].used + 4 + 8 * QUEUE as u64, event);
    }
    /// Receives `frame` into the next available receive buffer, honestly.
    fn receive(&mut self, k: u16, frame: &[u8]) {
        let head = self.avail(0, k);
        let addr = self.buffer_addr(0, head);
        for (i, b) in frame.iter().enumerate() {
            wr(addr + (HEADER + i) as u64, *b);
        }
        self.used(0, u32::from(head), (HEADER + frame.len()) as u32);
    }
}

struct Fake(Rc<RefCell<Dev>>);

impl Transport for Fake {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        // VERSION_1, MAC, and EVENT_IDX if asked.
        (1 << 32) | (1 << 5) | u64::from(self.0.borrow().event_idx) << 29
    }
    fn write_driver_features(&mut self, _: u64) {}
    fn max_queue_size(&mut self, _: u16) -> u32 {
        QUEUE as u32
    }
    fn notify(&mut self, _: u16) {
        self.0.borrow_mut().notified += 1;
    }
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.0.borrow().status)
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.0.borrow_mut().status = status.bits();
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, q: u16, _: u32, desc: PhysAddr, avail: PhysAddr, used: PhysAddr) {
        self.0.borrow_mut().queues[usize::from(q)] = Queue {
            desc,
            avail,
            used,
            used_idx: 0,
        };
    }
    fn queue_unset(&mut self, q: u16) {
        self.0.borrow_mut().queues[usize::from(q)] = Queue::default();
    }
    fn queue_used(&mut self, q: u16) -> bool {
        self.0.borrow().queues[usize::from(q)].desc != 0
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
        let mut config = [0u8; 16];
        config[..6].copy_from_slice(&MAC);
        Ok(T::read_from_prefix(&config[offset..])
            .expect("in config space")
            .0)
    }
    fn write_config_space<T: IntoBytes + Immutable>(&mut self, _: usize, _: T) -> Result<()> {
        Ok(())
    }
}

/// The region the SDF gives the driver.
const DMA_LEN: usize = axolotl_driver_pd::NET_DMA_BYTES;

fn nic() -> (Nic<NetHal, Fake>, Rc<RefCell<Dev>>) {
    // SAFETY: non-zero size; leaked: the device may point into it for the whole test.
    let mem = unsafe { alloc_zeroed(Layout::from_size_align(DMA_LEN, 4096).unwrap()) };
    let dev = Rc::new(RefCell::new(Dev::default()));
    (start(mem, &dev), dev)
}

/// What the driver PD does at every start: the region from its start, its first page the
/// salvage record, a fresh device.
fn start(mem: *mut u8, dev: &Rc<RefCell<Dev>>) -> Nic<NetHal, Fake> {
    assert!(DMA.init(mem as usize, mem as u64, DMA_LEN));
    let (_, page) = DMA.alloc(1).unwrap();
    // SAFETY: a page of the region nothing else is allocated over.
    let slot = unsafe { RecordSlot::new(NonNull::new(page as *mut u32).unwrap()) };
    Nic::<NetHal, Fake>::new(Fake(dev.clone()), Some(slot)).expect("nic")
}

/// A reset, as virtio's: status and queues cleared, guest memory untouched.
fn reset(dev: &Rc<RefCell<Dev>>) {
    dev.borrow_mut().status = 0;
    dev.borrow_mut().queues = Default::default();
}

/// The next incarnation's salvage: the record's words, then the frames.
fn salvage(
    mem: *mut u8,
) -> (
    std::result::Result<Salvaged, axolotl_net::salvage::Refusal>,
    Vec<Vec<u8>>,
) {
    // SAFETY: the record slot at the region's start (see `start`).
    let words: [u32; RECORD_WORDS] = unsafe { RecordSlot::read(NonNull::new(mem.cast()).unwrap()) };
    // SAFETY: the test's DMA allocation, which the (reset) device no longer writes.
    let region = unsafe { std::slice::from_raw_parts(mem, DMA_LEN) };
    let mut got = Vec::new();
    let r = salvage_rx(&words, region, mem as u64, |f| got.push(f.to_vec()));
    (r, got)
}

/// A driver dies with frames the device completed that it never forwarded: the next one
/// finds exactly those (and not the ones forwarded), then works as usual.
#[test]
fn the_next_driver_salvages_what_a_dead_one_left_in_its_receive_queue() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: non-zero size; leaked.
    let mem = unsafe { alloc_zeroed(Layout::from_size_align(DMA_LEN, 4096).unwrap()) };
    let dev = Rc::new(RefCell::new(Dev::default()));
    let mut old = start(mem, &dev);
    let frames: Vec<_> = (0..4).map(|i| frame(60 + 400 * i)).collect();
    for (k, f) in frames.iter().enumerate() {
        dev.borrow_mut().receive(k as u16, f);
    }
    let mut got = Vec::new();
    assert_eq!(old.next_rx(|f| got.push(f.to_vec())), Ok(true));
    assert_eq!(got, frames[..1]);
    // The driver dies here (its memory is gone; the region and the device are not).
    std::mem::forget(old);
    // The PD resets the device first, so that it writes nothing meanwhile.
    reset(&dev);
    let (r, salvaged) = salvage(mem);
    assert_eq!(
        r,
        Ok(Salvaged {
            frames: 3,
            refused: 0
        })
    );
    assert_eq!(salvaged, frames[1..]);
    // The new incarnation takes the region over, and the record starts afresh.
    let mut new = start(mem, &dev);
    assert_eq!(salvage(mem).0, Ok(Salvaged::default()));
    dev.borrow_mut().receive(0, &frame(99));
    let mut got = Vec::new();
    assert_eq!(new.next_rx(|f| got.push(f.to_vec())), Ok(true));
    assert_eq!(got, [frame(99)]);
}

fn frame(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

#[test]
fn an_honest_device_delivers_frames_and_gets_its_buffers_back() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    assert_eq!(nic.mac(), MAC);
    assert_eq!(nic.rx_posted(), QUEUE);
    dev.borrow_mut().receive(0, &frame(60));
    dev.borrow_mut().receive(1, &frame(1514));
    let mut got = Vec::new();
    while nic.next_rx(|f| got.push(f.to_vec())).unwrap() {}
    assert_eq!(got, vec![frame(60), frame(1514)]);
    assert_eq!(nic.rx_posted(), QUEUE, "re-posted");
    assert!(nic.tx_room());
    nic.send(&frame(100)).unwrap();
    let head = dev.borrow().avail(1, 0);
    dev.borrow_mut()
        .used(1, u32::from(head), (HEADER + 100) as u32);
    assert_eq!(nic.reap_tx(), Ok(true));
}

#[test]
fn a_used_id_never_made_available_is_refused_before_popping() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    // Past the queue: every id below it has a posted receive buffer.
    let id = QUEUE as u16 + 24;
    dev.borrow_mut().used(0, u32::from(id), 100);
    let r = nic.next_rx(|_| panic!("nothing may be delivered"));
    assert_eq!(r, Err(DeviceError::UnknownToken(id)));
    // A transmit id while nothing was sent.
    dev.borrow_mut().used(1, 3, 100);
    assert_eq!(nic.reap_tx(), Err(DeviceError::UnknownToken(3)));
}

#[test]
fn a_used_index_that_jumps_repeats_an_id_and_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    nic.send(&frame(100)).unwrap();
    let head = dev.borrow().avail(1, 0);
    // The index moves by two, both slots naming the one chain that was sent.
    dev.borrow_mut().used(1, u32::from(head), 112);
    dev.borrow_mut().used(1, u32::from(head), 112);
    assert_eq!(nic.reap_tx(), Err(DeviceError::UnknownToken(head)));
}

#[test]
fn a_used_length_beyond_the_buffer_or_below_the_header_drops_the_frame() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    for (k, len) in [(0u16, 5000u32), (1, 4), (2, (HEADER + 1515) as u32)] {
        let head = dev.borrow().avail(0, k);
        dev.borrow_mut().used(0, u32::from(head), len);
    }
    for _ in 0..3 {
        assert_eq!(
            nic.next_rx(|_| panic!("nothing may be delivered")),
            Ok(true)
        );
    }
    assert_eq!(nic.bad_lengths, 3);
    assert_eq!(nic.rx_posted(), QUEUE, "every buffer posted again");
    // And the device goes on working.
    dev.borrow_mut().receive(3, &frame(64));
    let mut got = Vec::new();
    assert_eq!(nic.next_rx(|f| got.push(f.to_vec())), Ok(true));
    assert_eq!(got, vec![frame(64)]);
}

/// With EVENT_IDX the device says when it wants a kick (`avail_event`); `virtio-drivers`
/// alone kicks on nearly every buffer while that index trails (plain-number comparison),
/// `Nic` only when virtio's `vring_need_event` says so.
#[test]
fn kicks_the_device_only_when_its_avail_event_asks() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: non-zero size; leaked.
    let mem = unsafe { alloc_zeroed(Layout::from_size_align(DMA_LEN, 4096).unwrap()) };
    let dev = Rc::new(RefCell::new(Dev {
        event_idx: true,
        ..Dev::default()
    }));
    let mut nic = start(mem, &dev);
    assert_eq!(
        dev.borrow().notified,
        1,
        "{QUEUE} receive buffers posted; avail_event 0 asked for the first only"
    );
    // The device wants to hear once the index passes 17: the second re-post.
    dev.borrow_mut().set_avail_event(0, QUEUE as u16 + 1);
    for k in 0..4 {
        dev.borrow_mut().receive(k, &frame(100));
        assert_eq!(nic.next_rx(|_| {}), Ok(true));
    }
    assert_eq!(dev.borrow().notified, 2, "one kick, at index {}", QUEUE + 2);
    // An event that trails (the device already saw these buffers): no kick.
    dev.borrow_mut().set_avail_event(0, 3);
    for k in 4..8 {
        dev.borrow_mut().receive(k, &frame(100));
        assert_eq!(nic.next_rx(|_| {}), Ok(true));
    }
    assert_eq!(dev.borrow().notified, 2);
}

/// The frame after the 12-byte virtio-net header starts 8-aligned in its buffer, so that
/// its copy into the link moves whole words (bytes assembled into words cost most of the
/// driver's time per received frame, docs/benchmarks.md); sending, the same for the
/// device's buffer.
#[test]
fn received_and_sent_frames_sit_8_aligned_after_the_header() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    for k in 0..3 {
        dev.borrow_mut().receive(k, &frame(100 + usize::from(k)));
        let mut at = 1;
        assert_eq!(nic.next_rx(|f| at = f.as_ptr() as usize), Ok(true));
        assert_eq!(at % 8, 0, "frame {k} at {at:#x}");
    }
    assert!(nic.tx_room());
    nic.send(&frame(200)).unwrap();
    let d = dev.borrow();
    let head = d.avail(1, 0);
    let addr = d.buffer_addr(1, head);
    assert_eq!(
        (addr as usize + HEADER) % 8,
        0,
        "sent frame at {addr:#x} + header"
    );
}

/// The driver's one-copy transmit (`send_with`): the frame is written straight into the
/// DMA buffer after the header, the device sees it byte-identical; a fill that fails
/// makes nothing available to the device.
#[test]
fn send_with_fills_the_dma_buffer_in_place_and_a_failed_fill_sends_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    let avail_idx = |d: &Dev| -> u16 { rd(d.queues[1].avail + 2) };
    let before = avail_idx(&dev.borrow());
    nic.send_with(300, |_| false).unwrap();
    assert_eq!(avail_idx(&dev.borrow()), before, "nothing made available");
    let f = frame(300);
    nic.send_with(300, |b| {
        b.copy_from_slice(&f);
        true
    })
    .unwrap();
    let d = dev.borrow();
    assert_eq!(avail_idx(&d), before.wrapping_add(1));
    let head = d.avail(1, 0);
    let addr = d.buffer_addr(1, head) + HEADER as u64;
    let got: Vec<u8> = (0..300).map(|i| rd::<u8>(addr + i)).collect();
    assert_eq!(got, f);
}

/// Every transmit buffer can be with the device at once, each its own: with the busy set a
/// `u32` and 64 buffers, the 33rd frame found no free bit, took buffer 32 and marked bit 0
/// (the shift wrapped), so the 34th was written into buffer 32 again while the device still
/// had the 33rd there.
#[test]
fn a_full_transmit_queue_keeps_every_frame_in_its_own_buffer() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut nic, dev) = nic();
    let frames: Vec<Vec<u8>> = (0..QUEUE)
        .map(|i| {
            let mut f = frame(60 + i);
            f[14] = i as u8;
            f
        })
        .collect();
    // virtio-drivers keeps room for a two-descriptor chain (`can_send`): one buffer short.
    let mut frames = frames;
    frames.truncate(QUEUE - 1);
    for f in &frames {
        assert!(nic.tx_room());
        nic.send(f).unwrap();
    }
    assert!(
        !nic.tx_room(),
        "every buffer it can take is with the device"
    );
    let d = dev.borrow();
    let mut addrs = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let addr = d.buffer_addr(1, d.avail(1, k as u16)) + HEADER as u64;
        let got: Vec<u8> = (0..f.len() as u64).map(|i| rd::<u8>(addr + i)).collect();
        assert_eq!(&got, f, "frame {k} as sent");
        addrs.push(addr);
    }
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), frames.len(), "one buffer a frame");
}
