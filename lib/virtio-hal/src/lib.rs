//! `virtio_drivers::Hal` over a driver PD's own DMA region (issue #15).
//!
//! A driver PD gets one physically contiguous memory region from the SDF, mapped into it
//! (`setvar_vaddr`) with its physical address patched in (`<setvar region_paddr=...>`). All
//! DMA memory the device may touch comes from that region: the virtqueues that
//! `virtio_drivers` allocates through [`Hal::dma_alloc`], and the driver's own bounce buffers
//! ([`DmaRegion::alloc`]). The device never sees any other memory of the PD, and never a
//! client's: the driver copies between a client's data region and its bounce buffers.
//!
//! `Hal`'s functions take no `self`, so the region is reached through a type:
//! [`RegionHal<R>`] with `R: StaticDmaRegion` naming a `static` [`DmaRegion`]. A PD declares
//! one static and one marker type; host tests declare one per test.
//!
//! * Allocation is a bump allocator of whole pages, zeroed. Freeing the most recent
//!   allocation gives its pages back; anything else stays allocated (a driver allocates at
//!   init and keeps what it got; a restarted driver is a fresh image whose region starts
//!   empty again).
//! * `share` is the identity within the region: a buffer inside it has the physical address
//!   `paddr + (vaddr - base)`. A buffer outside the region is refused by a panic: it can only
//!   come from a bug in the driver (device and client input never choose a buffer), and a
//!   driver PD that panics is restarted by the monitor, while handing the device a wrong
//!   address would let it write anywhere. The one exception is opt-in: a driver that uses
//!   `virtio-drivers`' blocking helpers (a blk flush puts its request header and status byte
//!   on the stack) reserves a one-page bounce pool ([`DmaRegion::reserve_bounce_pool`]); a
//!   small outside buffer is then copied into the pool for the device and back by
//!   `unshare`. Either way the device only ever sees addresses inside the region. Buffers
//!   inside the region are not copied: QEMU `virt`'s virtio-mmio DMA is cache-coherent (its
//!   device tree says `dma-coherent`), so the region is mapped cached.
//! * The words every device address is derived from (the region's and the client window's
//!   vaddr, paddr and length) live in the driver's writable memory; each is kept twice, one
//!   copy inverted, and checked at every translation, so a bit flipped in one panics the
//!   driver into a restart rather than pointing the device at memory nobody gave it.
//! * `mmio_phys_to_virt` (only the PCI transport calls it) translates inside the device
//!   window the PD registered with [`DmaRegion::set_mmio`], and refuses anything else.
#![no_std]

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// A DMA region: where it is mapped, its physical address, and what is allocated from it.
///
/// Atomics only so that it can be a `static` without `unsafe`; a PD is single-threaded.
#[derive(Debug)]
pub struct DmaRegion {
    vaddr: Sealed,
    paddr: Sealed,
    len: Sealed,
    /// Bytes allocated from the start (page multiple).
    used: AtomicUsize,
    mmio_vaddr: AtomicUsize,
    mmio_paddr: AtomicU64,
    mmio_len: AtomicUsize,
    /// The bounce pool (`reserve_bounce_pool`): its offset in the region + 1; 0 = none.
    pool: AtomicUsize,
    /// Pool chunks in use (bit i = chunk i).
    pool_used: AtomicU64,
    /// A client's data region the device may DMA into and out of directly
    /// ([`DmaRegion::set_client_window`]); len 0 = none.
    client_vaddr: Sealed,
    client_paddr: Sealed,
    client_len: Sealed,
}

/// A word the device's addresses are derived from, kept twice, the second copy inverted,
/// and compared at every read. These words sit in the driver's writable memory; without an
/// IOMMU a flipped bit in one of them points the device at physical memory of no one in
/// particular (the blk campaign's id 253: a window address 256 MiB off, every read and
/// write after it to memory the driver was never given). A mismatch panics: the driver is
/// restarted from its clean image with the SDF's values, so a flip costs a restart instead
/// of stray DMA. Both copies flipping to a consistent pair needs the same bit in both words
/// flipped in opposite directions.
#[derive(Debug)]
struct Sealed {
    value: AtomicU64,
    inverse: AtomicU64,
}

impl Sealed {
    const fn new(v: u64) -> Self {
        Self {
            value: AtomicU64::new(v),
            inverse: AtomicU64::new(!v),
        }
    }

    fn store(&self, v: u64) {
        self.value.store(v, Ordering::Relaxed);
        self.inverse.store(!v, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        let v = self.value.load(Ordering::Relaxed);
        let inv = self.inverse.load(Ordering::Relaxed);
        assert!(
            v == !inv,
            "virtio: a DMA window word is corrupt ({v:#x} vs !{inv:#x}); restart"
        );
        v
    }

    fn get_usize(&self) -> usize {
        self.get() as usize
    }
}

/// Bytes of one bounce-pool chunk.
pub const BOUNCE_CHUNK: usize = 64;
/// Chunks in the bounce pool (one page).
pub const BOUNCE_CHUNKS: usize = PAGE_SIZE / BOUNCE_CHUNK;
const _: () = assert!(BOUNCE_CHUNKS <= 64);

/// Why a region cannot be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The virtual or physical address is not page-aligned, or the region is empty.
    Misaligned,
    /// `paddr + len` or `vaddr + len` overflows.
    Overflow,
}

impl DmaRegion {
    /// An empty region: every allocation fails until [`DmaRegion::init`].
    pub const fn new() -> Self {
        Self {
            vaddr: Sealed::new(0),
            paddr: Sealed::new(0),
            len: Sealed::new(0),
            used: AtomicUsize::new(0),
            mmio_vaddr: AtomicUsize::new(0),
            mmio_paddr: AtomicU64::new(0),
            mmio_len: AtomicUsize::new(0),
            pool: AtomicUsize::new(0),
            pool_used: AtomicU64::new(0),
            client_vaddr: Sealed::new(0),
            client_paddr: Sealed::new(0),
            client_len: Sealed::new(0),
        }
    }

    /// Sets the region up, with nothing allocated (whatever was allocated before is
    /// forgotten).
    ///
    /// # Safety
    /// `vaddr..vaddr + len` must be mapped read-write for as long as this region and anything
    /// allocated from it are used, be physically contiguous at `paddr`, and be reached by
    /// nothing but this region's allocations and the device.
    pub unsafe fn init(
        &self,
        vaddr: NonNull<u8>,
        paddr: u64,
        len: usize,
    ) -> Result<(), RegionError> {
        let v = vaddr.as_ptr() as usize;
        if len == 0
            || !v.is_multiple_of(PAGE_SIZE)
            || !paddr.is_multiple_of(PAGE_SIZE as u64)
            || !len.is_multiple_of(PAGE_SIZE)
        {
            return Err(RegionError::Misaligned);
        }
        if v.checked_add(len).is_none() || paddr.checked_add(len as u64).is_none() {
            return Err(RegionError::Overflow);
        }
        self.vaddr.store(v as u64);
        self.paddr.store(paddr);
        self.len.store(len as u64);
        self.used.store(0, Ordering::Relaxed);
        self.pool.store(0, Ordering::Relaxed);
        self.pool_used.store(0, Ordering::Relaxed);
        self.client_len.store(0);
        Ok(())
    }

    /// Registers a client's data region (mapped at `vaddr`, physically contiguous at
    /// `paddr`) as a second range the device may be given directly: sDDF's way, the device
    /// DMAs straight into and out of the buffers the client named, so the driver copies
    /// nothing. Nothing is allocated from it; `share` answers its paddr for a buffer wholly
    /// inside it. Which bytes of it a request may name is the caller's check (lib/blk's
    /// server checks every descriptor against the region and its data area first).
    ///
    /// # Safety
    /// `vaddr..vaddr + len` must be mapped for as long as the device is used, be physically
    /// contiguous at `paddr`, and its owner must expect the device to write its buffers.
    pub unsafe fn set_client_window(
        &self,
        vaddr: NonNull<u8>,
        paddr: u64,
        len: usize,
    ) -> Result<(), RegionError> {
        let v = vaddr.as_ptr() as usize;
        if len == 0 || !v.is_multiple_of(PAGE_SIZE) || !paddr.is_multiple_of(PAGE_SIZE as u64) {
            return Err(RegionError::Misaligned);
        }
        if v.checked_add(len).is_none() || paddr.checked_add(len as u64).is_none() {
            return Err(RegionError::Overflow);
        }
        self.client_vaddr.store(v as u64);
        self.client_paddr.store(paddr);
        self.client_len.store(len as u64);
        Ok(())
    }

    /// The physical address of `ptr..ptr + len` if it lies wholly inside the client window.
    pub fn client_paddr_of(&self, ptr: *const u8, len: usize) -> Option<u64> {
        let wlen = self.client_len.get_usize();
        let off = (ptr as usize).checked_sub(self.client_vaddr.get_usize())?;
        if wlen == 0 || off.checked_add(len)? > wlen {
            return None;
        }
        Some(self.client_paddr.get() + off as u64)
    }

    /// Where the device may be pointed at `ptr..ptr + len` without a copy: inside the
    /// region or inside the client window.
    fn device_paddr_of(&self, ptr: *const u8, len: usize) -> Option<u64> {
        self.paddr_of(ptr, len)
            .or_else(|| self.client_paddr_of(ptr, len))
    }

    /// Takes one page of the region as a bounce pool: from then on `share` copies a small
    /// buffer that lies outside the region (virtio-drivers' blocking requests, e.g. a blk
    /// flush, put their header and status on the stack) into the pool, and `unshare` copies
    /// it back. Without a pool such a buffer is refused. Whether bounced or not, the device
    /// is only ever given addresses inside the region. `false` if the region has no room.
    pub fn reserve_bounce_pool(&self) -> bool {
        match self.alloc(1) {
            Some((_, v)) => {
                let off = v.as_ptr() as usize - self.vaddr.get_usize();
                self.pool.store(off + 1, Ordering::Relaxed);
                self.pool_used.store(0, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Copies `len` bytes at `src` (outside the region) into free pool chunks; their
    /// physical address. `None` without a pool, or when it has no room.
    ///
    /// # Safety
    /// `src..src + len` must be readable.
    unsafe fn bounce_in(&self, src: *const u8, len: usize) -> Option<u64> {
        let pool = self.pool.load(Ordering::Relaxed).checked_sub(1)?;
        if len == 0 {
            return None;
        }
        let n = len.div_ceil(BOUNCE_CHUNK);
        if n > BOUNCE_CHUNKS {
            return None;
        }
        let used = self.pool_used.load(Ordering::Relaxed);
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let first = (0..=BOUNCE_CHUNKS - n).find(|&i| used & (mask << i) == 0)?;
        self.pool_used
            .store(used | (mask << first), Ordering::Relaxed);
        let off = pool + first * BOUNCE_CHUNK;
        let dst = (self.vaddr.get_usize() + off) as *mut u8;
        // SAFETY: `dst..dst + len` lies in the pool page inside the region, in chunks just
        // marked used; `src` is readable per the caller and outside the region, so the two
        // do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        Some(self.paddr.get() + off as u64)
    }

    /// Ends a bounce: copies the pool's bytes back to `dst` if `copy_back`, frees the
    /// chunks. `false` if `paddr` is not a bounce of `len` bytes.
    ///
    /// # Safety
    /// `dst..dst + len` must be writable (if `copy_back`).
    unsafe fn bounce_out(&self, paddr: u64, dst: *mut u8, len: usize, copy_back: bool) -> bool {
        let Some(pool) = self.pool.load(Ordering::Relaxed).checked_sub(1) else {
            return false;
        };
        let base = self.paddr.get() + pool as u64;
        let Some(off) = paddr.checked_sub(base).map(|o| o as usize) else {
            return false;
        };
        let n = len.div_ceil(BOUNCE_CHUNK);
        if len == 0 || !off.is_multiple_of(BOUNCE_CHUNK) || off / BOUNCE_CHUNK + n > BOUNCE_CHUNKS {
            return false;
        }
        let first = off / BOUNCE_CHUNK;
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << first
        };
        let used = self.pool_used.load(Ordering::Relaxed);
        if used & mask != mask {
            return false;
        }
        if copy_back {
            let src = (self.vaddr.get_usize() + pool + off) as *const u8;
            // SAFETY: the chunks are in the pool page and in use by this bounce; `dst` is
            // writable per the caller and outside the region.
            unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        }
        self.pool_used.store(used & !mask, Ordering::Relaxed);
        true
    }

    /// Registers the device window `mmio_paddr..+len` mapped at `vaddr`, for
    /// [`Hal::mmio_phys_to_virt`].
    ///
    /// # Safety
    /// The window must be mapped (uncached) at `vaddr` for as long as the device is used.
    pub unsafe fn set_mmio(&self, vaddr: NonNull<u8>, paddr: u64, len: usize) {
        self.mmio_vaddr
            .store(vaddr.as_ptr() as usize, Ordering::Relaxed);
        self.mmio_paddr.store(paddr, Ordering::Relaxed);
        self.mmio_len.store(len, Ordering::Relaxed);
    }

    /// Bytes of the region.
    pub fn len(&self) -> usize {
        self.len.get_usize()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes not yet allocated.
    pub fn remaining(&self) -> usize {
        self.len() - self.used.load(Ordering::Relaxed)
    }

    /// `pages` zeroed pages from the region: their physical address and where they are
    /// mapped. `None` when the region has no room (or `pages` is 0).
    pub fn alloc(&self, pages: usize) -> Option<(u64, NonNull<u8>)> {
        let bytes = pages.checked_mul(PAGE_SIZE)?;
        if bytes == 0 || bytes > self.remaining() {
            return None;
        }
        let off = self.used.load(Ordering::Relaxed);
        self.used.store(off + bytes, Ordering::Relaxed);
        let v = self.vaddr.get_usize() + off;
        // SAFETY: `off..off + bytes` lies inside the region (checked above), mapped
        // read-write per `init`, and was handed out to nobody (the bump pointer just moved
        // past it).
        unsafe { core::ptr::write_bytes(v as *mut u8, 0, bytes) };
        Some((self.paddr.get() + off as u64, NonNull::new(v as *mut u8)?))
    }

    /// Gives pages back: only the most recent allocation is taken back (the others stay
    /// allocated). Returns whether they were.
    pub fn dealloc(&self, paddr: u64, pages: usize) -> bool {
        let base = self.paddr.get();
        let used = self.used.load(Ordering::Relaxed);
        let Some(bytes) = pages.checked_mul(PAGE_SIZE) else {
            return false;
        };
        if paddr.checked_sub(base) == Some((used as u64).wrapping_sub(bytes as u64)) {
            self.used.store(used - bytes, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The physical address of `ptr..ptr + len` if it lies wholly inside the region.
    pub fn paddr_of(&self, ptr: *const u8, len: usize) -> Option<u64> {
        let base = self.vaddr.get_usize();
        let off = (ptr as usize).checked_sub(base)?;
        if off.checked_add(len)? > self.len() {
            return None;
        }
        Some(self.paddr.get() + off as u64)
    }

    /// Where the device window's `paddr..paddr + len` is mapped, if inside it.
    pub fn mmio_vaddr_of(&self, paddr: u64, len: usize) -> Option<NonNull<u8>> {
        let off = paddr.checked_sub(self.mmio_paddr.load(Ordering::Relaxed))?;
        if off.checked_add(len as u64)? > self.mmio_len.load(Ordering::Relaxed) as u64 {
            return None;
        }
        NonNull::new((self.mmio_vaddr.load(Ordering::Relaxed) + off as usize) as *mut u8)
    }
}

impl Default for DmaRegion {
    fn default() -> Self {
        Self::new()
    }
}

/// Names the static [`DmaRegion`] a [`RegionHal`] allocates from.
pub trait StaticDmaRegion {
    fn region() -> &'static DmaRegion;
}

/// `virtio_drivers::Hal` over the region `R` names.
pub struct RegionHal<R>(PhantomData<R>);

// SAFETY: `dma_alloc` returns page-aligned (the region is, and it hands out whole pages),
// zeroed memory inside the mapped region that no other allocation overlaps, or paddr 0 on
// failure (virtio_drivers' `Dma::new` turns that into `Error::DmaError`). `share` returns a
// physical address only for memory inside the region, the identity mapping the device uses.
unsafe impl<R: StaticDmaRegion> Hal for RegionHal<R> {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        R::region().alloc(pages).unwrap_or((0, NonNull::dangling()))
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        // Pages that are not the latest allocation stay allocated: not an error, the
        // region is the driver's for its whole life.
        R::region().dealloc(paddr, pages);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        R::region()
            .mmio_vaddr_of(paddr, size)
            .expect("virtio: MMIO address outside the device window the driver maps")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let r = R::region();
        let p = buffer.as_ptr().cast::<u8>();
        if let Some(pa) = r.device_paddr_of(p, buffer.len()) {
            return pa;
        }
        // SAFETY: the caller promises a valid buffer, not accessed by anyone else meanwhile.
        unsafe { r.bounce_in(p, buffer.len()) }
            .expect("virtio: a buffer outside the DMA region was given to the device")
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let r = R::region();
        let p = buffer.as_ptr().cast::<u8>();
        if r.device_paddr_of(p, buffer.len()).is_some() {
            return;
        }
        let back = direction != BufferDirection::DriverToDevice;
        // SAFETY: the caller promises a valid buffer, the one `share` bounced to `paddr`.
        let ok = unsafe { r.bounce_out(paddr, p, buffer.len(), back) };
        assert!(ok, "virtio: unshare of a buffer that was never bounced");
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// A page-aligned heap block standing in for the mapped region.
    pub(super) fn block(pages: usize) -> NonNull<u8> {
        let v: Vec<[u8; PAGE_SIZE]> = std::vec![[0xaa; PAGE_SIZE]; pages + 1];
        let p = Box::leak(v.into_boxed_slice()).as_mut_ptr().cast::<u8>();
        let aligned = (p as usize).next_multiple_of(PAGE_SIZE);
        NonNull::new(aligned as *mut u8).unwrap()
    }

    const PADDR: u64 = 0x4800_0000;

    fn region(pages: usize) -> (&'static DmaRegion, NonNull<u8>) {
        let r: &'static DmaRegion = Box::leak(Box::new(DmaRegion::new()));
        let v = block(pages);
        // SAFETY: a leaked block of `pages` pages, used only by this region.
        unsafe { r.init(v, PADDR, pages * PAGE_SIZE) }.unwrap();
        (r, v)
    }

    #[test]
    fn allocations_are_zeroed_disjoint_pages_at_the_matching_paddr() {
        let (r, v) = region(4);
        let (p1, v1) = r.alloc(1).unwrap();
        let (p2, v2) = r.alloc(2).unwrap();
        assert_eq!((p1, v1), (PADDR, v));
        assert_eq!(p2, PADDR + PAGE_SIZE as u64);
        assert_eq!(v2.as_ptr() as usize, v.as_ptr() as usize + PAGE_SIZE);
        // SAFETY: inside the allocation just made.
        let bytes = unsafe { core::slice::from_raw_parts(v2.as_ptr(), 2 * PAGE_SIZE) };
        assert!(bytes.iter().all(|&b| b == 0), "zeroed");
        assert_eq!(r.remaining(), PAGE_SIZE);
        assert!(r.alloc(2).is_none(), "no room");
        assert!(r.alloc(0).is_none());
        assert!(r.alloc(usize::MAX).is_none(), "overflowing size");
        assert!(r.alloc(1).is_some());
    }

    #[test]
    fn only_the_latest_allocation_is_given_back() {
        let (r, _) = region(4);
        let (p1, _) = r.alloc(1).unwrap();
        let (p2, _) = r.alloc(1).unwrap();
        assert!(!r.dealloc(p1, 1));
        assert!(!r.dealloc(p2, 2), "wrong size");
        assert!(r.dealloc(p2, 1));
        assert_eq!(r.remaining(), 3 * PAGE_SIZE);
        assert!(r.dealloc(p1, 1));
        assert_eq!(r.remaining(), 4 * PAGE_SIZE);
    }

    #[test]
    fn paddr_of_only_inside_the_region() {
        let (r, v) = region(2);
        let base = v.as_ptr();
        assert_eq!(r.paddr_of(base, 2 * PAGE_SIZE), Some(PADDR));
        // SAFETY: pointer arithmetic only, inside or one past the block.
        let (mid, end) = unsafe { (base.add(100), base.add(2 * PAGE_SIZE)) };
        assert_eq!(r.paddr_of(mid, 10), Some(PADDR + 100));
        assert_eq!(r.paddr_of(mid, 2 * PAGE_SIZE), None, "runs past the end");
        assert_eq!(r.paddr_of(end, 1), None);
        assert_eq!(
            r.paddr_of(base.wrapping_sub(1), 1),
            None,
            "before the start"
        );
        assert_eq!(r.paddr_of(mid, usize::MAX), None, "overflowing length");
    }

    #[test]
    fn init_refuses_unaligned_or_empty_regions() {
        let r = DmaRegion::new();
        let v = block(1);
        // SAFETY: refused before anything is touched.
        unsafe {
            assert_eq!(
                r.init(v, PADDR + 1, PAGE_SIZE),
                Err(RegionError::Misaligned)
            );
            assert_eq!(r.init(v, PADDR, 100), Err(RegionError::Misaligned));
            assert_eq!(r.init(v, PADDR, 0), Err(RegionError::Misaligned));
            let odd = NonNull::new(v.as_ptr().add(8)).unwrap();
            assert_eq!(r.init(odd, PADDR, PAGE_SIZE), Err(RegionError::Misaligned));
            assert_eq!(
                r.init(v, u64::MAX - 0xfff, PAGE_SIZE),
                Err(RegionError::Overflow)
            );
        }
        assert!(r.alloc(1).is_none(), "an uninitialised region has nothing");
    }

    static BOUNCE_REGION: DmaRegion = DmaRegion::new();
    struct BounceRegion;
    impl StaticDmaRegion for BounceRegion {
        fn region() -> &'static DmaRegion {
            &BOUNCE_REGION
        }
    }
    type BounceHal = RegionHal<BounceRegion>;

    #[test]
    fn with_a_bounce_pool_outside_buffers_go_through_the_region_and_back() {
        let v = block(2);
        // SAFETY: a leaked block of 2 pages, used only by this region.
        unsafe { BOUNCE_REGION.init(v, PADDR, 2 * PAGE_SIZE) }.unwrap();
        assert!(BOUNCE_REGION.reserve_bounce_pool());
        let header = [7u8; 16];
        let mut status = [0xffu8; 1];
        // SAFETY: valid stack buffers, bounced.
        let (ph, ps) = unsafe {
            (
                BounceHal::share(NonNull::from(&header[..]), BufferDirection::DriverToDevice),
                BounceHal::share(
                    NonNull::from(&mut status[..]),
                    BufferDirection::DeviceToDriver,
                ),
            )
        };
        let pool = PADDR..PADDR + PAGE_SIZE as u64;
        assert!(
            pool.contains(&ph) && pool.contains(&ps),
            "the device sees the region only"
        );
        assert_ne!(ph, ps);
        // The device reads the header and writes the status, in the region.
        // SAFETY: inside the pool page.
        unsafe {
            let h = v.as_ptr().add((ph - PADDR) as usize);
            assert_eq!(core::slice::from_raw_parts(h, 16), &header);
            *v.as_ptr().add((ps - PADDR) as usize) = 0;
            BounceHal::unshare(
                ph,
                NonNull::from(&header[..]),
                BufferDirection::DriverToDevice,
            );
            BounceHal::unshare(
                ps,
                NonNull::from(&mut status[..]),
                BufferDirection::DeviceToDriver,
            );
        }
        assert_eq!(status, [0], "copied back");
        // Freed: the whole pool is available again.
        let big = [1u8; PAGE_SIZE];
        // SAFETY: a valid buffer.
        let p =
            unsafe { BounceHal::share(NonNull::from(&big[..]), BufferDirection::DriverToDevice) };
        assert_eq!(p, PADDR);
        // SAFETY: the buffer `share` bounced.
        unsafe { BounceHal::unshare(p, NonNull::from(&big[..]), BufferDirection::DriverToDevice) };
        // Too big for the pool: refused.
        let huge = std::vec![0u8; PAGE_SIZE + 1];
        let r = std::panic::catch_unwind(|| {
            // SAFETY: a valid buffer; refused.
            unsafe { BounceHal::share(NonNull::from(&huge[..]), BufferDirection::DriverToDevice) }
        });
        assert!(r.is_err());
        // SAFETY: a buffer never bounced: refused.
        let r = std::panic::catch_unwind(|| unsafe {
            BounceHal::unshare(
                PADDR + 64,
                NonNull::from(&header[..]),
                BufferDirection::DriverToDevice,
            )
        });
        assert!(r.is_err());
    }

    static HAL_REGION: DmaRegion = DmaRegion::new();
    struct HalRegion;
    impl StaticDmaRegion for HalRegion {
        fn region() -> &'static DmaRegion {
            &HAL_REGION
        }
    }
    type TestHal = RegionHal<HalRegion>;

    #[test]
    fn the_hal_allocates_shares_and_refuses_foreign_buffers() {
        let v = block(3);
        // SAFETY: a leaked block of 3 pages, used only by this region.
        unsafe { HAL_REGION.init(v, PADDR, 3 * PAGE_SIZE) }.unwrap();
        let mmio = block(1);
        // SAFETY: a leaked block standing in for a device page.
        unsafe { HAL_REGION.set_mmio(mmio, 0x0a00_3000, PAGE_SIZE) };
        let (p, va) = TestHal::dma_alloc(2, BufferDirection::Both);
        assert_eq!((p, va), (PADDR, v));
        let (none, _) = TestHal::dma_alloc(2, BufferDirection::Both);
        assert_eq!(
            none, 0,
            "exhausted: paddr 0, which virtio-drivers reports as DmaError"
        );
        // SAFETY: a buffer inside the region.
        let shared = unsafe {
            TestHal::share(
                NonNull::slice_from_raw_parts(va.add(PAGE_SIZE + 16), 512),
                BufferDirection::DriverToDevice,
            )
        };
        assert_eq!(shared, PADDR + PAGE_SIZE as u64 + 16);
        // SAFETY: the latest allocation, with its values.
        assert_eq!(unsafe { TestHal::dma_dealloc(p, va, 2) }, 0);
        assert_eq!(HAL_REGION.remaining(), 3 * PAGE_SIZE);
        // SAFETY: inside the registered window.
        let m = unsafe { TestHal::mmio_phys_to_virt(0x0a00_3e00, 0x200) };
        assert_eq!(m.as_ptr() as usize, mmio.as_ptr() as usize + 0xe00);

        let mut foreign = [0u8; 64];
        let r = std::panic::catch_unwind(move || {
            // SAFETY: a valid buffer; the HAL must refuse it, it is not in the region.
            unsafe {
                TestHal::share(
                    NonNull::from(&mut foreign[..]),
                    BufferDirection::DeviceToDriver,
                )
            }
        });
        assert!(r.is_err(), "a buffer outside the region is refused");
        let r = std::panic::catch_unwind(|| {
            // SAFETY: refused: outside the window.
            unsafe { TestHal::mmio_phys_to_virt(0x0a00_3f00, 0x200) }
        });
        assert!(r.is_err(), "MMIO outside the window is refused");
    }

    static CLIENT_REGION: DmaRegion = DmaRegion::new();
    struct ClientRegion;
    impl StaticDmaRegion for ClientRegion {
        fn region() -> &'static DmaRegion {
            &CLIENT_REGION
        }
    }
    type ClientHal = RegionHal<ClientRegion>;

    #[test]
    fn a_client_window_is_shared_in_place_and_nothing_past_it() {
        const CLIENT_PADDR: u64 = 0x6000_0000;
        let v = block(1);
        // SAFETY: a leaked block, used only by this region.
        unsafe { CLIENT_REGION.init(v, PADDR, PAGE_SIZE) }.unwrap();
        let w = block(2);
        // SAFETY: a leaked block of 2 pages standing in for the client's data region.
        unsafe { CLIENT_REGION.set_client_window(w, CLIENT_PADDR, 2 * PAGE_SIZE) }.unwrap();
        // SAFETY: inside the window: given to the device as it is, no bounce.
        let p = unsafe {
            ClientHal::share(
                NonNull::slice_from_raw_parts(w.add(PAGE_SIZE), PAGE_SIZE),
                BufferDirection::DeviceToDriver,
            )
        };
        assert_eq!(p, CLIENT_PADDR + PAGE_SIZE as u64);
        // SAFETY: the buffer just shared; nothing to copy back.
        unsafe {
            ClientHal::unshare(
                p,
                NonNull::slice_from_raw_parts(w.add(PAGE_SIZE), PAGE_SIZE),
                BufferDirection::DeviceToDriver,
            )
        };
        // One byte past the window's end: refused (no bounce pool here).
        let r = std::panic::catch_unwind(|| {
            // SAFETY: the HAL must refuse it before the device sees an address.
            unsafe {
                ClientHal::share(
                    NonNull::slice_from_raw_parts(w.add(PAGE_SIZE + 1), PAGE_SIZE),
                    BufferDirection::DeviceToDriver,
                )
            }
        });
        assert!(r.is_err(), "a buffer running past the window is refused");
        assert_eq!(
            // SAFETY: refused before anything is registered.
            unsafe { CLIENT_REGION.set_client_window(w, CLIENT_PADDR + 1, PAGE_SIZE) },
            Err(RegionError::Misaligned)
        );
        // A re-init forgets the window (a restarted driver registers it again).
        // SAFETY: as above.
        unsafe { CLIENT_REGION.init(v, PADDR, PAGE_SIZE) }.unwrap();
        assert_eq!(CLIENT_REGION.client_paddr_of(w.as_ptr(), 16), None);
    }
}

#[cfg(test)]
mod sealed_words {
    extern crate std;

    use super::*;
    use std::boxed::Box;

    fn window() -> (&'static DmaRegion, NonNull<u8>, NonNull<u8>) {
        let r: &'static DmaRegion = Box::leak(Box::new(DmaRegion::new()));
        let v = super::tests::block(1);
        let w = super::tests::block(4);
        // SAFETY: leaked blocks used only by this region.
        unsafe { r.init(v, 0x4800_0000, PAGE_SIZE) }.unwrap();
        // SAFETY: as above, standing in for a client's data region.
        unsafe { r.set_client_window(w, 0x8000_0000, 4 * PAGE_SIZE) }.unwrap();
        (r, v, w)
    }

    /// The blk campaign's id 253: bit 4 of the client window's paddr byte 3 flipped in the
    /// driver's memory. Every translation after it must refuse, never answer an address
    /// 256 MiB off.
    #[test]
    fn a_flipped_client_window_address_is_never_given_to_the_device() {
        let (r, _, w) = window();
        assert_eq!(r.client_paddr_of(w.as_ptr(), 16), Some(0x8000_0000));
        r.client_paddr.value.fetch_xor(1 << 28, Ordering::Relaxed);
        let got = std::panic::catch_unwind(|| r.client_paddr_of(w.as_ptr(), 16));
        assert!(got.is_err(), "answered {got:?} after the flip");
    }

    #[test]
    fn a_flip_in_any_bounding_word_is_caught_at_the_next_translation() {
        type Pick = fn(&DmaRegion) -> &Sealed;
        let fields: [(&str, Pick); 6] = [
            ("vaddr", |r| &r.vaddr),
            ("paddr", |r| &r.paddr),
            ("len", |r| &r.len),
            ("client_vaddr", |r| &r.client_vaddr),
            ("client_paddr", |r| &r.client_paddr),
            ("client_len", |r| &r.client_len),
        ];
        for (name, pick) in fields {
            for (bit, inverse) in [(3, false), (40, true)] {
                let (r, v, w) = window();
                let word = pick(r);
                let cell = if inverse { &word.inverse } else { &word.value };
                cell.fetch_xor(1 << bit, Ordering::Relaxed);
                let got = std::panic::catch_unwind(|| {
                    (r.paddr_of(v.as_ptr(), 8), r.client_paddr_of(w.as_ptr(), 8))
                });
                assert!(
                    got.is_err(),
                    "{name} bit {bit} (inverse {inverse}): {got:?}"
                );
            }
        }
    }
}
