//! The control plane's virtio-console driver (issue #17, docs/control.md): the serial
//! driver PD of `pd` over a virtio-console's port 0 (`axolotl_serial_core::VirtioConsole`)
//! instead of UART1, so that a system whose UART1 is a guest's console (the gateway) can
//! have the control plane too. The same SDF contract as `control-serial-driver`: control-pd's
//! transmit connection mapped as `client_a`'s, its receive connection as `rx`, the device's
//! IRQ on channel 0.
//!
//! The device: QEMU's `virtio-serial-device` on virtio-mmio transport [`VCONS_TRANSPORT`]
//! (`axolotl_qemu::Machine::control_console`), a `virtconsole` as its port 0 on a unix-socket
//! chardev. Its queues and buffers come from the PD's DMA region (`vcons_dma`, physical
//! address in `vcons_dma_paddr`).

use core::ptr::NonNull;

use axolotl_pd::SetVar;
use axolotl_serial_core::{CONSOLE_DMA_PAGES, VirtioConsole};
use axolotl_virtio_hal::{DmaRegion, RegionHal, StaticDmaRegion};
use virtio_drivers::PAGE_SIZE;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

use crate::pd::{Line, SerialDriver};

/// QEMU virt's virtio-mmio transport 29 (`0x0a00_3a00`, INTID 77), where
/// `axolotl_qemu::Machine` puts the console: below the disk (31) and the NIC (30), in the
/// same page (`0x0a00_3000`), which the SDF maps.
pub const VCONS_TRANSPORT: usize = 29;
/// The transport's offset in that page.
pub const VCONS_MMIO_OFFSET: usize = 0xa00;

#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static vcons_mmio: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static vcons_dma: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static vcons_dma_paddr: SetVar = SetVar::new();

static DMA: DmaRegion = DmaRegion::new();

pub struct ConsoleDma;

impl StaticDmaRegion for ConsoleDma {
    fn region() -> &'static DmaRegion {
        &DMA
    }
}

pub type Console = VirtioConsole<RegionHal<ConsoleDma>, MmioTransport<'static>>;

impl Line for Console {
    const NAME: &'static str = "virtio-console";

    fn open() -> Result<Self, &'static str> {
        let (base, vaddr, paddr) = (vcons_mmio.get(), vcons_dma.get(), vcons_dma_paddr.get());
        if base == 0 || vaddr == 0 || paddr == 0 {
            return Err("vcons_mmio, vcons_dma or vcons_dma_paddr not set");
        }
        let dma = NonNull::new(vaddr as *mut u8).ok_or("null")?;
        // SAFETY: the SDF maps at least CONSOLE_DMA_PAGES of physically contiguous memory at
        // `vaddr` (physical `paddr`) for this PD alone. A restarted driver is a fresh image
        // whose region starts empty; the device is reset before it is given any of it.
        unsafe { DMA.init(dma, paddr, CONSOLE_DMA_PAGES * PAGE_SIZE) }
            .map_err(|_| "vcons_dma unaligned")?;
        let header =
            NonNull::new((base as usize + VCONS_MMIO_OFFSET) as *mut VirtIOHeader).ok_or("null")?;
        // SAFETY: the SDF maps the virtio-mmio page uncached for this PD, for its life; this
        // driver touches only transport 29 in it.
        let transport = unsafe { MmioTransport::new(header, crate::VIRTIO_MMIO_SIZE) }.map_err(
            |_| "no virtio device at transport 29 (is QEMU's virtio-serial-device missing?)",
        )?;
        VirtioConsole::new(transport).map_err(|e| match e {
            axolotl_serial_core::ConsoleError::NotAConsole => {
                "the device at transport 29 is not a virtio-console"
            }
            axolotl_serial_core::ConsoleError::NotVirtio1 => {
                "the console is a legacy virtio device (force-legacy?)"
            }
            axolotl_serial_core::ConsoleError::Queue(_) => "cannot set up the console's queues",
            axolotl_serial_core::ConsoleError::NoMemory => "vcons_dma too small",
        })
    }

    fn given_up(&self) -> Option<&'static str> {
        self.failed().map(|_| "a used buffer it was never given")
    }

    fn reopen(&mut self) -> Result<(), &'static str> {
        // Status 0 first: from here the device writes nothing into the DMA region, which
        // the fresh console takes from its start.
        self.reset();
        let fresh = Self::open()?;
        // Forgotten, not dropped: its queues' pages are the fresh console's now, and
        // dropping them would hand them back to the region's allocator.
        core::mem::forget(core::mem::replace(self, fresh));
        Ok(())
    }
}

/// control-pd's driver over the virtio-console: one transmit client and the receive
/// connection, both control-pd's.
pub type VconsControlDriver = SerialDriver<1, Console>;

impl VconsControlDriver {
    pub const fn for_control() -> Self {
        Self::receiving_for("control")
    }
}
