//! `VirtioConsole` against a fake virtio-console device: bytes both ways through the two
//! virtqueues, flow control, the interrupt status, and a device that lies (a used length
//! beyond the buffer, an id it was never given, an id handed back twice).

use std::alloc::{Layout, alloc_zeroed};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Mutex;

use axolotl_serial_core::{
    CONSOLE_BUF, CONSOLE_DMA_PAGES, CONSOLE_QUEUE, ConsoleError, DeviceFault, Irqs, RxError, Uart,
    VirtioConsole,
};
use axolotl_virtio_hal::{DmaRegion, RegionHal, StaticDmaRegion};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PAGE_SIZE, PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The `Hal`'s region is one static: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static REGION: DmaRegion = DmaRegion::new();
struct Region;
impl StaticDmaRegion for Region {
    fn region() -> &'static DmaRegion {
        &REGION
    }
}
type Hal = RegionHal<Region>;

const VERSION_1: u64 = 1 << 32;
const MULTIPORT: u64 = 1 << 1;
const Q: u16 = CONSOLE_QUEUE as u16;

#[derive(Default, Clone, Copy)]
struct Queue {
    desc: u64,
    avail: u64,
    used: u64,
    used_idx: u16,
    /// Available entries the device has taken.
    taken: u16,
}

#[derive(Default)]
struct Dev {
    status: u32,
    features: u64,
    queues: [Queue; 2],
    notified: [u32; 2],
    acks: u32,
    device_type: Option<DeviceType>,
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
    fn avail_idx(&self, q: usize) -> u16 {
        rd(self.queues[q].avail + 2)
    }
    /// The next chain the driver made available on `q`: its head, buffer address and length.
    fn next_avail(&mut self, q: usize) -> Option<(u16, u64, u32)> {
        let qu = self.queues[q];
        if qu.taken == self.avail_idx(q) {
            return None;
        }
        let head: u16 = rd(qu.avail + 4 + 2 * u64::from(qu.taken % Q));
        self.queues[q].taken = qu.taken.wrapping_add(1);
        let d = qu.desc + 16 * u64::from(head);
        Some((head, rd(d), rd(d + 8)))
    }
    /// Publishes a used element, as the device would (or as a lying one does).
    fn used(&mut self, q: usize, id: u32, len: u32) {
        let qu = &mut self.queues[q];
        let slot = qu.used + 4 + 8 * u64::from(qu.used_idx % Q);
        wr(slot, id);
        wr(slot + 4, len);
        qu.used_idx = qu.used_idx.wrapping_add(1);
        wr(qu.used + 2, qu.used_idx);
    }
    /// Host input: into the next posted receive buffer, honestly.
    fn deliver(&mut self, bytes: &[u8]) -> bool {
        let Some((head, addr, cap)) = self.next_avail(0) else {
            return false;
        };
        assert!(bytes.len() <= cap as usize);
        for (i, b) in bytes.iter().enumerate() {
            wr(addr + i as u64, *b);
        }
        self.used(0, u32::from(head), bytes.len() as u32);
        true
    }
    /// Sends every transmit buffer made available to the host; what went out.
    fn drain_tx(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((head, addr, len)) = self.next_avail(1) {
            out.extend((0..u64::from(len)).map(|i| rd::<u8>(addr + i)));
            self.used(1, u32::from(head), 0);
        }
        out
    }
}

struct Fake(Rc<RefCell<Dev>>);

impl Transport for Fake {
    fn device_type(&self) -> DeviceType {
        self.0.borrow().device_type.unwrap_or(DeviceType::Console)
    }
    fn read_device_features(&mut self) -> u64 {
        VERSION_1 | MULTIPORT | 1 // and SIZE
    }
    fn write_driver_features(&mut self, f: u64) {
        self.0.borrow_mut().features = f;
    }
    fn max_queue_size(&mut self, _: u16) -> u32 {
        128
    }
    fn notify(&mut self, q: u16) {
        self.0.borrow_mut().notified[usize::from(q)] += 1;
    }
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.0.borrow().status)
    }
    fn set_status(&mut self, status: DeviceStatus) {
        let mut d = self.0.borrow_mut();
        d.status = status.bits();
        if status.is_empty() {
            d.queues = Default::default();
        }
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, q: u16, size: u32, desc: PhysAddr, avail: PhysAddr, used: PhysAddr) {
        assert_eq!(size, u32::from(Q));
        self.0.borrow_mut().queues[usize::from(q)] = Queue {
            desc,
            avail,
            used,
            ..Queue::default()
        };
    }
    fn queue_unset(&mut self, q: u16) {
        self.0.borrow_mut().queues[usize::from(q)] = Queue::default();
    }
    fn queue_used(&mut self, q: u16) -> bool {
        self.0.borrow().queues[usize::from(q)].desc != 0
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.0.borrow_mut().acks += 1;
        InterruptStatus::QUEUE_INTERRUPT
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, _: usize) -> Result<T> {
        Ok(T::new_zeroed())
    }
    fn write_config_space<T: IntoBytes + Immutable>(&mut self, _: usize, _: T) -> Result<()> {
        Ok(())
    }
}

fn setup() -> Rc<RefCell<Dev>> {
    let len = CONSOLE_DMA_PAGES * PAGE_SIZE;
    // SAFETY: non-zero size; leaked: the device may point into it for the whole test.
    let mem = unsafe { alloc_zeroed(Layout::from_size_align(len, PAGE_SIZE).unwrap()) };
    region_at(mem);
    Rc::new(RefCell::new(Dev::default()))
}

/// The region over `mem` from its start, everything free (what the PD does at every start).
fn region_at(mem: *mut u8) {
    let len = CONSOLE_DMA_PAGES * PAGE_SIZE;
    // SAFETY: the leaked allocation, reached only through the region and the fake device.
    unsafe { REGION.init(NonNull::new(mem).unwrap(), mem as u64, len) }.unwrap();
}

fn console(dev: &Rc<RefCell<Dev>>) -> VirtioConsole<Hal, Fake> {
    VirtioConsole::<Hal, Fake>::new(Fake(dev.clone())).expect("console")
}

fn read_all(c: &mut VirtioConsole<Hal, Fake>) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(b) = c.try_read().expect("no error") {
        v.push(b);
    }
    v
}

#[test]
fn port_zero_only_in_its_dma_pages_every_receive_buffer_posted() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = setup();
    let _c = console(&dev);
    let d = dev.borrow();
    assert_eq!(
        d.features, VERSION_1,
        "no MULTIPORT: port 0 on queues 0 and 1"
    );
    assert!(
        DeviceStatus::from_bits_truncate(d.status).contains(DeviceStatus::DRIVER_OK),
        "{:#x}",
        d.status
    );
    assert_eq!(d.avail_idx(0), Q, "every receive buffer posted");
    assert!(d.notified[0] > 0);
    assert_eq!(d.avail_idx(1), 0);
    assert_eq!(REGION.remaining(), 0, "CONSOLE_DMA_PAGES is what it takes");
}

#[test]
fn a_device_of_another_kind_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = setup();
    dev.borrow_mut().device_type = Some(DeviceType::Network);
    assert_eq!(
        VirtioConsole::<Hal, Fake>::new(Fake(dev.clone())).err(),
        Some(ConsoleError::NotAConsole)
    );
}

#[test]
fn written_bytes_go_out_when_a_buffer_fills_or_at_flush_and_wait_for_free_buffers() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = setup();
    let mut c = console(&dev);
    for b in b"hello" {
        assert!(c.try_write(*b));
    }
    assert_eq!(dev.borrow_mut().drain_tx(), b"", "kept until flushed");
    c.flush();
    assert_eq!(dev.borrow_mut().drain_tx(), b"hello");
    assert!(dev.borrow().notified[1] > 0);
    c.flush();
    assert_eq!(dev.borrow_mut().drain_tx(), b"", "nothing twice");

    // The device holds on to every buffer: the 16th full one is the last accepted.
    let total = CONSOLE_QUEUE * CONSOLE_BUF;
    let data: Vec<u8> = (0..total + 10).map(|i| (i * 7 % 251) as u8).collect();
    let mut written = 0;
    while written < data.len() && c.try_write(data[written]) {
        written += 1;
    }
    assert_eq!(written, total, "every buffer with the device");
    c.set_irq_mask(Irqs::TX);
    assert_eq!(c.irq_status(), Irqs::NONE, "nothing handed back yet");
    let out = dev.borrow_mut().drain_tx();
    assert_eq!(c.irq_status(), Irqs::TX, "buffers handed back");
    assert_eq!(out, data[..total]);
    while written < data.len() && c.try_write(data[written]) {
        written += 1;
    }
    c.flush();
    assert_eq!(dev.borrow_mut().drain_tx(), data[total..]);
    c.set_irq_mask(Irqs::NONE);
    assert_eq!(c.irq_status(), Irqs::NONE, "masked");
    let acks = dev.borrow().acks;
    c.clear_irqs(Irqs::NONE);
    assert_eq!(
        dev.borrow().acks,
        acks + 1,
        "the line is acknowledged whatever the mask"
    );
}

#[test]
fn received_bytes_come_in_order_and_every_buffer_is_posted_again() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = setup();
    let mut c = console(&dev);
    c.set_irq_mask(Irqs::RX | Irqs::RX_TIMEOUT);
    assert_eq!(c.try_read(), Ok(None));
    assert_eq!(c.irq_status(), Irqs::NONE);
    let mut expect = Vec::new();
    // Many more buffers than posted: each is posted again once drained.
    for round in 0..5 {
        for k in 0..CONSOLE_QUEUE {
            let msg: Vec<u8> = (0..(k * 13 + round) % CONSOLE_BUF + 1)
                .map(|i| (i + k + round) as u8)
                .collect();
            assert!(dev.borrow_mut().deliver(&msg), "a buffer is posted");
            expect.extend(msg);
        }
        assert!(!dev.borrow_mut().deliver(b"x"), "all 16 used, none posted");
        assert_eq!(c.irq_status(), Irqs::RX | Irqs::RX_TIMEOUT);
        let got = read_all(&mut c);
        assert_eq!(got, expect);
        expect.clear();
        assert_eq!(dev.borrow().avail_idx(0), Q * (round as u16 + 2));
    }
    assert_eq!(c.stats().rx_buffers, 5 * CONSOLE_QUEUE as u64);
}

#[test]
fn a_used_length_beyond_the_buffer_is_dropped_and_the_buffer_posted_again() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = setup();
    let mut c = console(&dev);
    let (head, _, cap) = dev.borrow_mut().next_avail(0).unwrap();
    assert_eq!(cap as usize, CONSOLE_BUF);
    dev.borrow_mut()
        .used(0, u32::from(head), CONSOLE_BUF as u32 + 1);
    assert_eq!(c.try_read(), Err(RxError::Device));
    assert_eq!(c.stats().bad_lengths, 1);
    assert_eq!(dev.borrow().avail_idx(0), Q + 1, "posted again");
    assert!(dev.borrow_mut().deliver(b"ok"));
    assert_eq!(read_all(&mut c), b"ok");
    assert_eq!(c.failed(), None);
}

#[test]
fn a_used_id_never_given_makes_the_driver_give_up_on_the_device_without_a_panic() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dev = setup();
    let mut c = console(&dev);
    // Transmit: an id the driver never made available.
    assert!(c.try_write(b'a'));
    dev.borrow_mut().used(1, 9, 0);
    c.flush();
    assert_eq!(c.failed(), Some(DeviceFault::UnknownId { queue: 1, id: 9 }));
    let status = DeviceStatus::from_bits_truncate(dev.borrow().status);
    assert!(status.contains(DeviceStatus::FAILED), "{status:?}");
    assert!(!c.try_write(b'b'));
    assert_eq!(c.try_read(), Ok(None));
    c.set_irq_mask(Irqs::ALL);
    assert_eq!(c.irq_status(), Irqs::NONE);

    // Receive: an id beyond the queue, and one handed back twice.
    for lie in [u32::MAX, u32::from(Q)] {
        let dev = setup();
        let mut c = console(&dev);
        dev.borrow_mut().used(0, lie, 1);
        assert_eq!(c.try_read(), Ok(None));
        assert!(matches!(
            c.failed(),
            Some(DeviceFault::UnknownId { queue: 0, .. })
        ));
    }
    // Transmit: an id handed back twice (the driver took it back after the first).
    let dev = setup();
    let mut c = console(&dev);
    assert!(c.try_write(b'a'));
    c.flush();
    assert_eq!(dev.borrow_mut().drain_tx(), b"a");
    assert!(c.try_write(b'b'), "takes the first buffer back");
    let head = {
        let d = dev.borrow();
        rd::<u32>(d.queues[1].used + 4)
    };
    dev.borrow_mut().used(1, head, 0);
    c.flush();
    assert_eq!(
        c.failed(),
        Some(DeviceFault::UnknownId {
            queue: 1,
            id: head as u16
        })
    );
}

/// What the PD does with a console it gave up on: reset the device, set a fresh console up
/// over the same memory (the old one forgotten, not dropped: its queues' pages are the new
/// one's), and go on.
#[test]
fn a_console_given_up_on_is_reset_and_replaced_over_the_same_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let len = CONSOLE_DMA_PAGES * PAGE_SIZE;
    // SAFETY: non-zero size; leaked.
    let mem = unsafe { alloc_zeroed(Layout::from_size_align(len, PAGE_SIZE).unwrap()) };
    region_at(mem);
    let dev = Rc::new(RefCell::new(Dev::default()));
    let mut c = console(&dev);
    dev.borrow_mut().used(0, 77, 1);
    assert_eq!(c.try_read(), Ok(None));
    assert!(c.failed().is_some());
    c.reset();
    assert_eq!(dev.borrow().status, 0);
    assert_eq!(
        dev.borrow().queues[0].desc,
        0,
        "the device forgot its queues"
    );
    assert!(!c.try_write(b'x'), "inert");
    std::mem::forget(c);
    region_at(mem);
    let mut c = console(&dev);
    assert_eq!(c.failed(), None);
    assert!(dev.borrow_mut().deliver(b"again"));
    assert_eq!(read_all(&mut c), b"again");
    for b in b"out" {
        assert!(c.try_write(*b));
    }
    c.flush();
    assert_eq!(dev.borrow_mut().drain_tx(), b"out");
}
