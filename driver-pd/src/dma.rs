//! The net driver's DMA memory: one SDF memory region, mapped into the driver (its vaddr
//! patched into `dma_vaddr`) with its physical address patched into `dma_paddr`. Everything
//! the device touches (virtqueues, packet buffers) is carved from it; nothing else is ever
//! given to the device. A private module until the shared `lib/virtio-hal` replaces it.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// A bump allocator over a region with known virtual and physical addresses. Nothing is
/// freed one by one: the device is reset and the whole region reused (`init` again).
/// Atomics only so it can be a `static` (the `Hal` methods are associated functions); a PD
/// is single-threaded.
pub struct DmaRegion {
    vaddr: AtomicUsize,
    paddr: AtomicU64,
    len: AtomicUsize,
    next: AtomicUsize,
}

impl Default for DmaRegion {
    fn default() -> Self {
        Self::new()
    }
}

impl DmaRegion {
    pub const fn new() -> Self {
        Self {
            vaddr: AtomicUsize::new(0),
            paddr: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        }
    }

    /// Takes the region `[vaddr, vaddr + len)` at physical `paddr`, everything free. `false`
    /// (and nothing usable) if it is empty, unaligned or wraps.
    pub fn init(&self, vaddr: usize, paddr: u64, len: usize) -> bool {
        let ok = len > 0
            && vaddr.is_multiple_of(PAGE_SIZE)
            && paddr.is_multiple_of(PAGE_SIZE as u64)
            && vaddr.checked_add(len).is_some()
            && paddr.checked_add(len as u64).is_some();
        let (v, p, l) = if ok { (vaddr, paddr, len) } else { (0, 0, 0) };
        self.vaddr.store(v, Ordering::Relaxed);
        self.paddr.store(p, Ordering::Relaxed);
        self.len.store(l, Ordering::Relaxed);
        self.next.store(0, Ordering::Relaxed);
        ok
    }

    /// `pages` fresh pages: `(paddr, vaddr)`, or `None` when the region is exhausted.
    pub fn alloc(&self, pages: usize) -> Option<(u64, usize)> {
        let bytes = pages.checked_mul(PAGE_SIZE)?;
        let at = self.next.load(Ordering::Relaxed);
        let end = at.checked_add(bytes)?;
        if bytes == 0 || end > self.len.load(Ordering::Relaxed) {
            return None;
        }
        self.next.store(end, Ordering::Relaxed);
        Some((
            self.paddr.load(Ordering::Relaxed) + at as u64,
            self.vaddr.load(Ordering::Relaxed) + at,
        ))
    }

    /// Where `len` bytes at physical `paddr` are mapped, if all inside the region.
    pub fn vaddr_of(&self, paddr: u64, len: usize) -> Option<usize> {
        let base = self.paddr.load(Ordering::Relaxed);
        let off = usize::try_from(paddr.checked_sub(base)?).ok()?;
        let end = off.checked_add(len)?;
        if len == 0 || end > self.len.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.vaddr.load(Ordering::Relaxed) + off)
    }

    /// The physical address of `[vaddr, vaddr + len)` if it lies wholly inside the region:
    /// the only buffers the device may be given.
    pub fn paddr_of(&self, vaddr: usize, len: usize) -> Option<u64> {
        let base = self.vaddr.load(Ordering::Relaxed);
        let off = vaddr.checked_sub(base)?;
        let end = off.checked_add(len)?;
        if len == 0 || end > self.len.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.paddr.load(Ordering::Relaxed) + off as u64)
    }
}

/// The driver's region.
pub static DMA: DmaRegion = DmaRegion::new();

/// `virtio_drivers::Hal` over [`DMA`].
pub struct NetHal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned, never-overlapping pages of the mapped
// region (the bump pointer only grows until the device is reset); `share` gives the device
// only addresses inside the region, so the device never reaches memory outside it.
unsafe impl Hal for NetHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // The driver's needs are fixed (two queues and its buffers) and the region is sized
        // for them in the SDF: running out is a bug in this PD, which the monitor restarts.
        let (paddr, vaddr) = DMA
            .alloc(pages)
            .expect("net driver: DMA region too small for the queues");
        let ptr = NonNull::new(vaddr as *mut u8).expect("DMA region at address 0");
        // SAFETY: freshly carved from the mapped region, not aliased; the region survives a
        // restart with whatever the last incarnation left, so it is zeroed here.
        unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, pages * PAGE_SIZE) };
        (paddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Reclaimed all at once when the device is reset (`DmaRegion::init`).
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport asks; this driver uses virtio-mmio, mapped by the SDF.
        panic!("net driver: no PCI BARs")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.as_ptr().cast::<u8>() as usize;
        // Refused rather than translated wrong: a buffer outside the region would give the
        // device an address it must never write.
        DMA.paddr_of(vaddr, buffer.len())
            .expect("net driver: a buffer outside its DMA region was to be shared")
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Shared in place: nothing to copy back.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_pages_in_order_until_full() {
        let r = DmaRegion::new();
        assert!(r.init(0x10_0000, 0x4800_0000, 3 * PAGE_SIZE));
        assert_eq!(r.alloc(2), Some((0x4800_0000, 0x10_0000)));
        assert_eq!(r.alloc(2), None, "one page left");
        assert_eq!(r.alloc(1), Some((0x4800_2000, 0x10_2000)));
        assert_eq!(r.alloc(0), None);
        assert!(r.init(0x10_0000, 0x4800_0000, 3 * PAGE_SIZE), "reset");
        assert_eq!(r.alloc(3), Some((0x4800_0000, 0x10_0000)));
    }

    #[test]
    fn share_refuses_buffers_outside_the_region() {
        let r = DmaRegion::new();
        assert!(r.init(0x10_0000, 0x4800_0000, 2 * PAGE_SIZE));
        assert_eq!(r.paddr_of(0x10_0010, 16), Some(0x4800_0010));
        assert_eq!(r.paddr_of(0x10_1ff0, 16), Some(0x4800_1ff0), "last bytes");
        assert_eq!(r.paddr_of(0x10_1ff0, 17), None, "runs past the end");
        assert_eq!(r.paddr_of(0x0f_fff0, 16), None, "before it");
        assert_eq!(r.paddr_of(usize::MAX, 2), None);
        assert_eq!(r.paddr_of(0x10_0000, 0), None);
    }

    #[test]
    fn refuses_unaligned_regions() {
        let r = DmaRegion::new();
        assert!(!r.init(0x10_0010, 0x4800_0000, PAGE_SIZE));
        assert_eq!(r.alloc(1), None);
    }
}
