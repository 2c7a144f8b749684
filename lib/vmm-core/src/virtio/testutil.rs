//! A fake guest for the device tests: RAM in a vector (recording every device write)
//! and a driver that sets devices up and fills rings the way Linux does.
extern crate std;

use std::vec;
use std::vec::Vec;

use axolotl_net::check::PieceSummer;
use axolotl_ring::DataRegion;

use super::mem::{GuestMemory, MemError};
use super::mmio::*;
use super::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use super::status;
use crate::bus::{Access, MmioDevice};

pub const RAM_BASE: u64 = 0x4000_0000;
pub const RAM_SIZE: usize = 1 << 20;

pub struct Ram {
    pub bytes: Vec<u8>,
    /// Every device write: (gpa, len).
    pub writes: Vec<(u64, usize)>,
}

impl Ram {
    pub fn new() -> Self {
        Self {
            bytes: vec![0; RAM_SIZE],
            writes: Vec::new(),
        }
    }

    fn off(&self, gpa: u64, len: usize) -> Option<usize> {
        let o = usize::try_from(gpa.checked_sub(RAM_BASE)?).ok()?;
        (o.checked_add(len)? <= self.bytes.len()).then_some(o)
    }

    /// The guest's own accesses (not recorded).
    pub fn put(&mut self, gpa: u64, data: &[u8]) {
        let o = self.off(gpa, data.len()).expect("test writes inside RAM");
        self.bytes[o..o + data.len()].copy_from_slice(data);
    }

    pub fn get(&self, gpa: u64, len: usize) -> &[u8] {
        let o = self.off(gpa, len).expect("test reads inside RAM");
        &self.bytes[o..o + len]
    }

    pub fn put16(&mut self, gpa: u64, v: u16) {
        self.put(gpa, &v.to_le_bytes());
    }

    pub fn get16(&self, gpa: u64) -> u16 {
        u16::from_le_bytes(self.get(gpa, 2).try_into().unwrap())
    }

    pub fn get32(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(self.get(gpa, 4).try_into().unwrap())
    }
}

impl GuestMemory for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError {
            gpa,
            len: buf.len() as u64,
        };
        let o = self.off(gpa, buf.len()).ok_or(err)?;
        buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let err = MemError {
            gpa,
            len: data.len() as u64,
        };
        let o = self.off(gpa, data.len()).ok_or(err)?;
        self.bytes[o..o + data.len()].copy_from_slice(data);
        self.writes.push((gpa, data.len()));
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|l| self.off(gpa, l).is_some())
    }

    /// As the VMM's (vmm-pd `RamWindow`): one copy from the region, each word read back
    /// in its loop.
    fn write_from_region_summed(
        &mut self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        let err = MemError {
            gpa,
            len: len as u64,
        };
        let o = self.off(gpa, len).ok_or(err)?;
        // SAFETY: `len` bytes of the vector from `o` (checked), no part of the region.
        unsafe {
            super::mem::copy_region_summed(
                sum,
                region,
                offset,
                self.bytes.as_mut_ptr().add(o),
                gpa,
                len,
            )
        }?;
        self.writes.push((gpa, len));
        Ok(())
    }

    /// As the VMM's: one copy into the region, each word read back in its loop.
    fn read_to_region_summed(
        &self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        let err = MemError {
            gpa,
            len: len as u64,
        };
        let o = self.off(gpa, len).ok_or(err)?;
        if sum.copy_in(region, offset, &self.bytes[o..o + len]) {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// [`Ram`] through `GuestMemory`'s default copies (a staging buffer, read back with
/// `read`), whose every write that covers guest-physical `damage` flips that byte's bit 0
/// after storing it: a store that went wrong, seen only by a read-back.
pub struct Damaging<'a> {
    pub ram: &'a mut Ram,
    pub damage: Option<u64>,
}

impl GuestMemory for Damaging<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.ram.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.ram.write(gpa, data)?;
        if let Some(at) = self.damage
            && (gpa..gpa + data.len() as u64).contains(&at)
        {
            let b = self.ram.get(at, 1)[0];
            self.ram.put(at, &[b ^ 1]);
        }
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.ram.contains(gpa, len)
    }
}

pub const RAM: (u64, u64) = (RAM_BASE, RAM_SIZE as u64);

pub fn acc(offset: u64, size: u8) -> Access {
    Access {
        vcpu: 0,
        region: 0,
        offset,
        size,
    }
}

pub fn rd(dev: &mut dyn MmioDevice, off: u64) -> u32 {
    dev.read(acc(off, 4)).unwrap() as u32
}

pub fn wr(dev: &mut dyn MmioDevice, off: u64, v: u32) {
    dev.write(acc(off, 4), v.into()).unwrap();
}

/// One queue as the driver lays it out: descriptors, then the available ring, then the
/// used ring (4-aligned), in a 64 KiB area at `base`.
#[derive(Debug, Clone)]
pub struct DriverQueue {
    pub index: u32,
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub avail_idx: u16,
    pub used_seen: u16,
    next_desc: u16,
}

impl DriverQueue {
    pub fn new(index: u32, size: u16, base: u64) -> Self {
        let desc = base;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
        Self {
            index,
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            used_seen: 0,
            next_desc: 0,
        }
    }

    /// Makes `head` available and publishes the new index.
    pub fn publish(&mut self, ram: &mut Ram, head: u16) {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        ram.put16(slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.put16(self.avail + 2, self.avail_idx);
    }

    /// Adds a chain of `(addr, len, writable)` buffers from the next free descriptors.
    pub fn add(&mut self, ram: &mut Ram, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (k, &(addr, len, w)) in bufs.iter().enumerate() {
            let i = self.next_desc;
            self.next_desc = (self.next_desc + 1) % self.size;
            let last = k + 1 == bufs.len();
            let flags = if w { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            write_desc(ram, self.desc, i, addr, len, flags, self.next_desc);
        }
        self.publish(ram, head);
        head
    }

    /// Adds the buffers as an indirect table at `table`.
    pub fn add_indirect(&mut self, ram: &mut Ram, table: u64, bufs: &[(u64, u32, bool)]) -> u16 {
        for (k, &(addr, len, w)) in bufs.iter().enumerate() {
            let last = k + 1 == bufs.len();
            let flags = if w { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            write_desc(ram, table, k as u16, addr, len, flags, k as u16 + 1);
        }
        let head = self.next_desc;
        self.next_desc = (self.next_desc + 1) % self.size;
        write_desc(
            ram,
            self.desc,
            head,
            table,
            16 * bufs.len() as u32,
            DESC_F_INDIRECT,
            0,
        );
        self.publish(ram, head);
        head
    }

    /// New used entries `(id, len)`.
    pub fn take_used(&mut self, ram: &Ram) -> Vec<(u32, u32)> {
        let idx = ram.get16(self.used + 2);
        let mut v = Vec::new();
        while self.used_seen != idx {
            let e = self.used + 4 + 8 * u64::from(self.used_seen % self.size);
            v.push((ram.get32(e), ram.get32(e + 4)));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        v
    }

    /// Sets `used_event` (EVENT_IDX).
    pub fn set_used_event(&self, ram: &mut Ram, v: u16) {
        ram.put16(self.avail + 4 + 2 * u64::from(self.size), v);
    }
}

/// Writes descriptor `i` of the table at `table`.
pub fn write_desc(ram: &mut Ram, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    d[12..14].copy_from_slice(&flags.to_le_bytes());
    d[14..16].copy_from_slice(&next.to_le_bytes());
    ram.put(table + 16 * u64::from(i), &d);
}

/// Linux's probe sequence: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues,
/// DRIVER_OK. Returns the status read back after FEATURES_OK.
pub fn init(dev: &mut dyn MmioDevice, features: u64, queues: &[DriverQueue]) -> u32 {
    wr(dev, STATUS, 0);
    wr(dev, STATUS, status::ACKNOWLEDGE);
    wr(dev, STATUS, status::ACKNOWLEDGE | status::DRIVER);
    wr(dev, DRIVER_FEATURES_SEL, 0);
    wr(dev, DRIVER_FEATURES, features as u32);
    wr(dev, DRIVER_FEATURES_SEL, 1);
    wr(dev, DRIVER_FEATURES, (features >> 32) as u32);
    wr(
        dev,
        STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    let s = rd(dev, STATUS);
    for q in queues {
        wr(dev, QUEUE_SEL, q.index);
        wr(dev, QUEUE_NUM, q.size.into());
        wr(dev, QUEUE_DESC_LOW, q.desc as u32);
        wr(dev, QUEUE_DESC_HIGH, (q.desc >> 32) as u32);
        wr(dev, QUEUE_DRIVER_LOW, q.avail as u32);
        wr(dev, QUEUE_DRIVER_HIGH, (q.avail >> 32) as u32);
        wr(dev, QUEUE_DEVICE_LOW, q.used as u32);
        wr(dev, QUEUE_DEVICE_HIGH, (q.used >> 32) as u32);
        wr(dev, QUEUE_READY, 1);
    }
    wr(dev, STATUS, s | status::DRIVER_OK);
    s
}

/// The device's offered features.
pub fn offered(dev: &mut dyn MmioDevice) -> u64 {
    wr(dev, DEVICE_FEATURES_SEL, 0);
    let lo = rd(dev, DEVICE_FEATURES);
    wr(dev, DEVICE_FEATURES_SEL, 1);
    let hi = rd(dev, DEVICE_FEATURES);
    u64::from(lo) | u64::from(hi) << 32
}
