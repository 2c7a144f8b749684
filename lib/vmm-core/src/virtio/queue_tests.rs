//! Split-ring walking and every check on guest-controlled ring contents.
extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;
use crate::virtio::mem::{GuestMemory, MemError};
use crate::virtio::testutil::*;
use crate::virtio::{F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1};

const DATA: u64 = RAM_BASE + 0x8_0000;

fn setup(features: u64) -> (Ram, DriverQueue, Queue) {
    let ram = Ram::new();
    let dq = DriverQueue::new(0, 8, RAM_BASE + 0x1_0000);
    let mut q = Queue::new(256);
    q.num = 8;
    q.desc = dq.desc;
    q.avail = dq.avail;
    q.used = dq.used;
    q.enable(F_VERSION_1 | features, |a, l| ram.contains(a, l))
        .unwrap();
    (ram, dq, q)
}

#[test]
fn pops_a_chain_with_its_lengths() {
    let (mut ram, mut dq, mut q) = setup(0);
    assert_eq!(q.pop(&mut ram), Ok(None));
    let head = dq.add(
        &mut ram,
        &[
            (DATA, 16, false),
            (DATA + 0x100, 512, true),
            (DATA + 0x400, 1, true),
        ],
    );
    assert_eq!(q.pending(&ram), Ok(1));
    let c = q.pop(&mut ram).unwrap().unwrap();
    assert_eq!((c.head, c.readable, c.writable), (head, 16, 513));
    let mut segs = Vec::new();
    c.segments(&ram, |s| segs.push(s)).unwrap();
    assert_eq!(segs.len(), 3);
    assert!(segs[1].write && !segs[0].write);
    assert_eq!(q.pop(&mut ram), Ok(None));
}

#[test]
fn copies_across_segments_at_offsets() {
    let (mut ram, mut dq, mut q) = setup(0);
    ram.put(DATA, b"abc");
    ram.put(DATA + 0x10, b"defgh");
    dq.add(
        &mut ram,
        &[
            (DATA, 3, false),
            (DATA + 0x10, 5, false),
            (DATA + 0x100, 2, true),
            (DATA + 0x200, 4, true),
        ],
    );
    let c = q.pop(&mut ram).unwrap().unwrap();
    let mut b = [0u8; 4];
    c.read(&ram, 2, &mut b).unwrap();
    assert_eq!(&b, b"cdef");
    assert_eq!(c.read(&ram, 6, &mut b), Err(QueueError::ChainChanged));
    c.write(&mut ram, 1, b"WXYZ").unwrap();
    assert_eq!(ram.get(DATA + 0x100, 2), b"\0W");
    assert_eq!(ram.get(DATA + 0x200, 4), b"XYZ\0");
    assert_eq!(c.write(&mut ram, 5, b"12"), Err(QueueError::ChainChanged));
}

#[test]
fn indirect_table_when_negotiated() {
    let (mut ram, mut dq, mut q) = setup(F_INDIRECT_DESC);
    let head = dq.add_indirect(
        &mut ram,
        DATA + 0x1000,
        &[
            (DATA, 16, false),
            (DATA + 0x100, 4096, true),
            (DATA + 0x2000, 1, true),
        ],
    );
    let c = q.pop(&mut ram).unwrap().unwrap();
    assert_eq!((c.head, c.readable, c.writable), (head, 16, 4097));
}

#[test]
fn indirect_refused_without_the_feature() {
    let (mut ram, mut dq, mut q) = setup(0);
    dq.add_indirect(&mut ram, DATA + 0x1000, &[(DATA, 16, false)]);
    assert_eq!(q.pop(&mut ram), Err(QueueError::BadIndirect));
}

fn one_desc(
    features: u64,
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
) -> Result<Option<Chain>, QueueError> {
    let (mut ram, mut dq, mut q) = setup(features);
    write_desc(&mut ram, dq.desc, 0, addr, len, flags, next);
    dq.publish(&mut ram, 0);
    q.pop(&mut ram)
}

#[test]
fn indirect_with_next_bad_size_or_outside_ram() {
    let f = F_INDIRECT_DESC;
    let e = Err(QueueError::BadIndirect);
    assert_eq!(one_desc(f, DATA, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1), e);
    assert_eq!(one_desc(f, DATA, 24, DESC_F_INDIRECT, 0), e);
    assert_eq!(one_desc(f, DATA, 0, DESC_F_INDIRECT, 0), e);
    assert_eq!(
        one_desc(f, 0x1000, 16, DESC_F_INDIRECT, 0),
        Err(QueueError::OutsideRam {
            addr: 0x1000,
            len: 16
        })
    );
}

#[test]
fn nested_and_non_head_indirect_refused() {
    let (mut ram, mut dq, mut q) = setup(F_INDIRECT_DESC);
    let table = DATA + 0x1000;
    write_desc(&mut ram, table, 0, DATA, 16, DESC_F_INDIRECT, 0);
    write_desc(&mut ram, dq.desc, 0, table, 16, DESC_F_INDIRECT, 0);
    dq.publish(&mut ram, 0);
    assert_eq!(q.pop(&mut ram), Err(QueueError::BadIndirect));

    let (mut ram, mut dq, mut q) = setup(F_INDIRECT_DESC);
    write_desc(&mut ram, dq.desc, 0, DATA, 16, DESC_F_NEXT, 1);
    write_desc(&mut ram, dq.desc, 1, table, 16, DESC_F_INDIRECT, 0);
    dq.publish(&mut ram, 0);
    assert_eq!(q.pop(&mut ram), Err(QueueError::BadIndirect));
}

#[test]
fn looping_chain() {
    let (mut ram, mut dq, mut q) = setup(0);
    write_desc(&mut ram, dq.desc, 0, DATA, 16, DESC_F_NEXT, 1);
    write_desc(&mut ram, dq.desc, 1, DATA, 16, DESC_F_NEXT, 0);
    dq.publish(&mut ram, 0);
    assert_eq!(q.pop(&mut ram), Err(QueueError::ChainTooLong));
}

#[test]
fn looping_indirect_chain() {
    let (mut ram, mut dq, mut q) = setup(F_INDIRECT_DESC);
    let table = DATA + 0x1000;
    write_desc(&mut ram, table, 0, DATA, 16, DESC_F_NEXT, 1);
    write_desc(&mut ram, table, 1, DATA, 16, DESC_F_NEXT, 0);
    write_desc(&mut ram, dq.desc, 0, table, 32, DESC_F_INDIRECT, 0);
    dq.publish(&mut ram, 0);
    assert_eq!(q.pop(&mut ram), Err(QueueError::ChainTooLong));
}

#[test]
fn next_beyond_the_table() {
    assert_eq!(
        one_desc(0, DATA, 16, DESC_F_NEXT, 8),
        Err(QueueError::IndexOutOfRange(8))
    );
}

#[test]
fn head_beyond_the_table() {
    let (mut ram, mut dq, mut q) = setup(0);
    dq.publish(&mut ram, 9);
    assert_eq!(q.pop(&mut ram), Err(QueueError::IndexOutOfRange(9)));
}

#[test]
fn available_index_jumping_past_the_queue_size() {
    let (mut ram, dq, mut q) = setup(0);
    ram.put16(dq.avail + 2, 9);
    assert_eq!(
        q.pop(&mut ram),
        Err(QueueError::AvailIndexJump {
            consumed: 0,
            idx: 9
        })
    );
    // Exactly the queue size is a full ring, not an error.
    ram.put16(dq.avail + 2, 8);
    assert_eq!(q.pending(&ram), Ok(8));
}

#[test]
fn zero_length_buffer() {
    assert_eq!(one_desc(0, DATA, 0, 0, 0), Err(QueueError::ZeroLength));
}

#[test]
fn buffers_outside_ram_or_wrapping() {
    assert_eq!(
        one_desc(0, 0x100, 16, 0, 0),
        Err(QueueError::OutsideRam {
            addr: 0x100,
            len: 16
        })
    );
    let end = RAM_BASE + RAM_SIZE as u64;
    assert_eq!(
        one_desc(0, end - 8, 16, DESC_F_WRITE, 0),
        Err(QueueError::OutsideRam {
            addr: end - 8,
            len: 16
        })
    );
    assert!(matches!(
        one_desc(0, u64::MAX - 4, 16, 0, 0),
        Err(QueueError::OutsideRam { .. })
    ));
}

#[test]
fn readable_after_writable() {
    let (mut ram, mut dq, mut q) = setup(0);
    dq.add(&mut ram, &[(DATA, 16, true), (DATA + 0x100, 16, false)]);
    assert_eq!(q.pop(&mut ram), Err(QueueError::ReadableAfterWritable));
}

/// Memory in which every address is RAM (reads of unknown places return zeros), to
/// build chains larger than the test RAM.
struct Everywhere(Ram);

impl GuestMemory for Everywhere {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if self.0.read(gpa, buf).is_err() {
            buf.fill(0);
        }
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let _ = self.0.write(gpa, data);
        Ok(())
    }
    fn contains(&self, _: u64, _: u64) -> bool {
        true
    }
}

#[test]
fn total_length_overflow() {
    let (mut ram, mut dq, q) = setup(0);
    dq.add(&mut ram, &[(DATA, u32::MAX, true), (DATA, 2, true)]);
    let mut q = q;
    let mut m = Everywhere(ram);
    assert_eq!(q.pop(&mut m), Err(QueueError::LengthOverflow));
}

#[test]
fn unpop_gives_the_chain_back() {
    let (mut ram, mut dq, mut q) = setup(0);
    let h = dq.add(&mut ram, &[(DATA, 16, false)]);
    assert_eq!(q.pop(&mut ram).unwrap().unwrap().head, h);
    q.unpop();
    assert_eq!(q.pop(&mut ram).unwrap().unwrap().head, h);
}

#[test]
fn used_ring_and_no_interrupt_flag() {
    let (mut ram, mut dq, mut q) = setup(0);
    let h = dq.add(&mut ram, &[(DATA, 16, true)]);
    q.pop(&mut ram).unwrap().unwrap();
    assert_eq!(q.should_notify(&ram), Ok(false), "nothing used yet");
    q.push_used(&mut ram, h, 7).unwrap();
    assert_eq!(dq.take_used(&ram), vec![(u32::from(h), 7)]);
    assert_eq!(q.should_notify(&ram), Ok(true));
    assert_eq!(q.should_notify(&ram), Ok(false), "already told");
    ram.put16(dq.avail, AVAIL_F_NO_INTERRUPT);
    q.push_used(&mut ram, h, 7).unwrap();
    assert_eq!(q.should_notify(&ram), Ok(false));
}

#[test]
fn event_idx_suppresses_until_used_event() {
    let (mut ram, mut dq, mut q) = setup(F_EVENT_IDX);
    // The driver wants to hear only when the third buffer is used (used_event = 2).
    dq.set_used_event(&mut ram, 2);
    // avail.flags is ignored with EVENT_IDX.
    ram.put16(dq.avail, AVAIL_F_NO_INTERRUPT);
    for i in 0..3 {
        let h = dq.add(&mut ram, &[(DATA, 16, true)]);
        q.pop(&mut ram).unwrap().unwrap();
        q.push_used(&mut ram, h, 0).unwrap();
        assert_eq!(q.should_notify(&ram), Ok(i == 2), "after {} used", i + 1);
    }
    // Several used at once that pass the event: one notification.
    dq.set_used_event(&mut ram, 3);
    for _ in 0..2 {
        let h = dq.add(&mut ram, &[(DATA, 16, true)]);
        q.pop(&mut ram).unwrap().unwrap();
        q.push_used(&mut ram, h, 0).unwrap();
    }
    assert_eq!(q.should_notify(&ram), Ok(true));
}

#[test]
fn event_idx_publishes_avail_event_when_empty() {
    let (mut ram, mut dq, mut q) = setup(F_EVENT_IDX);
    let avail_event = dq.used + 4 + 8 * 8;
    dq.add(&mut ram, &[(DATA, 16, false)]);
    dq.add(&mut ram, &[(DATA, 16, false)]);
    q.pop(&mut ram).unwrap().unwrap();
    q.pop(&mut ram).unwrap().unwrap();
    assert_eq!(q.pop(&mut ram), Ok(None));
    assert_eq!(ram.get16(avail_event), 2);
}

#[test]
fn not_ready_queue_does_nothing() {
    let (mut ram, mut dq, mut q) = setup(0);
    dq.add(&mut ram, &[(DATA, 16, false)]);
    q.ready = false;
    assert_eq!(q.pop(&mut ram), Ok(None));
    assert_eq!(q.pending(&ram), Ok(0));
    ram.writes.clear();
    q.push_used(&mut ram, 0, 0).unwrap();
    assert!(ram.writes.is_empty());
}

/// Guest memory that counts the descriptor reads in `table` (16 bytes each).
struct Counting<'a> {
    ram: &'a Ram,
    table: core::ops::Range<u64>,
    desc_reads: core::cell::Cell<u32>,
}

impl GuestMemory for Counting<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if self.table.contains(&gpa) {
            self.desc_reads.set(self.desc_reads.get() + 1);
        }
        self.ram.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, _: &[u8]) -> Result<(), MemError> {
        Err(MemError { gpa, len: 0 })
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.ram.contains(gpa, len)
    }
}

/// A TSO packet's segments are read in order through one cursor: every descriptor is read
/// (and checked) once for the whole packet, not once per piece, and what lands in the
/// region is the chain's bytes; a piece behind the cursor walks from the head again.
#[test]
fn a_cursor_reads_a_chain_in_order_with_one_walk() {
    let (mut ram, mut dq, mut q) = setup(0);
    let mut bufs = Vec::new();
    let mut want = Vec::new();
    for i in 0..8u64 {
        let len = 100 + i as u32;
        let bytes: Vec<u8> = (0..len)
            .map(|k| (k as u8).wrapping_mul(7) ^ i as u8)
            .collect();
        ram.put(DATA + i * 0x200 + 3, &bytes);
        bufs.push((DATA + i * 0x200 + 3, len, false));
        want.extend_from_slice(&bytes);
    }
    dq.add(&mut ram, &bufs);
    let c = q.pop(&mut ram).unwrap().unwrap();
    let mut words = vec![0u64; want.len() / 8 + 2];
    let ptr = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `words` outlives the region and is not resized.
    let region = unsafe {
        axolotl_ring::DataRegion::alias(&axolotl_ring::SharedRegion::new(ptr, words.len() * 8))
    };
    let mem = Counting {
        ram: &ram,
        table: dq.desc..dq.desc + 16 * 8,
        desc_reads: core::cell::Cell::new(0),
    };
    let mut cur = c.cursor();
    let mut at = 0;
    while at < want.len() {
        let n = 37.min(want.len() - at);
        c.read_to_region_with(&mem, &mut cur, at as u32, &region, at, n)
            .unwrap();
        at += n;
    }
    assert_eq!(mem.desc_reads.get(), 8, "each descriptor once");
    let mut got = vec![0u8; want.len()];
    assert!(region.copy_out(0, &mut got));
    assert_eq!(got, want);
    // Behind the cursor: from the head again, still the chain's bytes.
    let mut back = vec![0u8; 50];
    c.read_to_region_with(&mem, &mut cur, 90, &region, 0, 50)
        .unwrap();
    assert!(region.copy_out(0, &mut back));
    assert_eq!(back, want[90..140]);
    // Past the end: refused, as without a cursor.
    assert_eq!(
        c.read_to_region_with(&mem, &mut cur, want.len() as u32 - 10, &region, 0, 11),
        Err(QueueError::ChainChanged)
    );
    // Without one, every piece walks from the head.
    let before = mem.desc_reads.get();
    let mut at = 0;
    while at < want.len() {
        let n = 37.min(want.len() - at);
        c.read_to_region(&mem, at as u32, &region, at, n).unwrap();
        at += n;
    }
    assert!(mem.desc_reads.get() - before > 8 * 5);
}

/// [`Counting`] that also writes.
struct CountingMut<'a> {
    ram: &'a mut Ram,
    table: core::ops::Range<u64>,
    desc_reads: core::cell::Cell<u32>,
}

impl GuestMemory for CountingMut<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if self.table.contains(&gpa) {
            self.desc_reads.set(self.desc_reads.get() + 1);
        }
        self.ram.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.ram.write(gpa, data)
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.ram.contains(gpa, len)
    }
}

/// The writable part through a cursor (a read request's data, then its status byte): each
/// descriptor read once, the readable ones before passed over, the bytes where a plain
/// write puts them; a write behind the cursor walks from the head again.
#[test]
fn a_cursor_writes_a_chains_writable_part_with_one_walk() {
    let (mut ram, mut dq, mut q) = setup(0);
    let mut bufs = vec![(DATA, 16, false), (DATA + 0x100, 3, false)];
    for i in 0..6u64 {
        bufs.push((DATA + 0x1000 + i * 0x200 + 1, 50 + i as u32, true));
    }
    dq.add(&mut ram, &bufs);
    let c = q.pop(&mut ram).unwrap().unwrap();
    let data: Vec<u8> = (0..c.writable)
        .map(|k| (k as u8).wrapping_mul(11))
        .collect();
    let table = dq.desc..dq.desc + 16 * 8;
    let mut mem = CountingMut {
        ram: &mut ram,
        table,
        desc_reads: core::cell::Cell::new(0),
    };
    let mut cur = c.cursor();
    let body = c.writable as usize - 1;
    let mut at = 0;
    while at < body {
        let n = 23.min(body - at);
        c.write_with(&mut mem, &mut cur, at as u32, &data[at..at + n])
            .unwrap();
        at += n;
    }
    c.write_with(&mut mem, &mut cur, c.writable - 1, &data[body..])
        .unwrap();
    assert_eq!(
        mem.desc_reads.get(),
        8,
        "each descriptor once, the readable two included"
    );
    let mut got = Vec::new();
    for i in 0..6u64 {
        got.extend_from_slice(mem.ram.get(DATA + 0x1000 + i * 0x200 + 1, 50 + i as usize));
    }
    assert_eq!(got, data);
    // Behind the cursor: from the head again.
    c.write_with(&mut mem, &mut cur, 0, b"xy").unwrap();
    assert_eq!(mem.ram.get(DATA + 0x1001, 2), b"xy");
    assert_eq!(mem.desc_reads.get(), 8 + 3);
}

/// A frame built in a link buffer from a chain's pieces with its check out of the copy
/// (`read_to_region_summed_with`), through `GuestMemory`'s default (a staging buffer) and
/// through one copy (`Ram`'s, as the VMM's): the same bytes, and the check of what the
/// buffer holds.
#[test]
fn a_frame_and_its_check_come_out_of_one_copy_either_way() {
    use axolotl_net::check::{self, PieceSummer};
    let (mut ram, mut dq, mut q) = setup(0);
    let mut bufs = Vec::new();
    let mut want = Vec::new();
    for i in 0..5u64 {
        let len = 90 + 7 * i as u32;
        let bytes: Vec<u8> = (0..len)
            .map(|k| (k as u8).wrapping_mul(5) ^ i as u8)
            .collect();
        ram.put(DATA + i * 0x200 + 1 + i, &bytes);
        bufs.push((DATA + i * 0x200 + 1 + i, len, false));
        want.extend_from_slice(&bytes);
    }
    dq.add(&mut ram, &bufs);
    let c = q.pop(&mut ram).unwrap().unwrap();
    for through_default in [true, false] {
        let mut words = vec![0u64; want.len() / 8 + 4];
        let ptr = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `words` outlives the region and is not resized.
        let region = unsafe {
            axolotl_ring::DataRegion::alias(&axolotl_ring::SharedRegion::new(ptr, words.len() * 8))
        };
        let mut sum = PieceSummer::new(want.len());
        let mut cur = c.cursor();
        let mut at = 0;
        while at < want.len() {
            let n = 61.min(want.len() - at);
            let r = if through_default {
                let mem = Counting {
                    ram: &ram,
                    table: 0..0,
                    desc_reads: core::cell::Cell::new(0),
                };
                c.read_to_region_summed_with(&mem, &mut cur, at as u32, &region, at, n, &mut sum)
            } else {
                c.read_to_region_summed_with(&ram, &mut cur, at as u32, &region, at, n, &mut sum)
            };
            r.unwrap();
            at += n;
        }
        let mut got = vec![0u8; want.len()];
        assert!(region.copy_out(0, &mut got));
        assert_eq!(got, want, "default {through_default}");
        assert_eq!(
            sum.finish(),
            check::region_check(&region, 0, want.len()),
            "default {through_default}"
        );
    }
}
