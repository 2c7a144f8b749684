//! Where a Linux guest's pieces go in its RAM, and its device tree describing
//! exactly the devices this crate emulates (QEMU virt addresses, so the same
//! guest kernel config works on both).

use axolotl_fdt::{Gic, GuestFdt, Pl011, Region, VirtioMmio};
use axolotl_linux_boot::{
    BootLayout, DTB_MAX_SIZE, EntryState, HeaderError, ImageHeader, LayoutError, Range,
    entry_state, parse_image_header, plan_layout,
};

use crate::vgic::{GICR_STRIDE, GicVersion};

/// What the guest should look like.
#[derive(Debug, Clone, Copy)]
pub struct GuestSpec<'a> {
    pub ram_base: u64,
    pub ram_size: u64,
    /// The raw arm64 `Image` file.
    pub image: &'a [u8],
    pub initrd_size: Option<u64>,
    pub cmdline: &'a str,
    pub nr_vcpus: u32,
    pub gic: GicVersion,
}

/// Everything the VMM copies into guest RAM and loads into vCPU 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPlan {
    pub header: ImageHeader,
    /// Copy `image[..header.file_len]` to `layout.kernel.addr`, the DTB buffer's
    /// first `layout.dtb.size` bytes to `layout.dtb.addr`, the initrd to
    /// `layout.initrd`.
    pub layout: BootLayout,
    pub entry: EntryState,
    /// Device windows to map on the bus (guest-physical, as in the DTB).
    pub gic: Gic,
    pub uart: Pl011,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    Header(HeaderError),
    Layout(LayoutError),
    Fdt(axolotl_fdt::Error),
    /// 0 or more vCPUs than the GIC model supports.
    BadVcpuCount,
    /// RAM overlaps the device windows below 0x4000_0000.
    RamOverlapsDevices,
    /// A virtio-mmio transport overlaps another device or lies past the device space,
    /// its SPI is the console's, beyond the vGIC's or shared, or there are more than
    /// [`MAX_VIRTIO`].
    BadVirtio,
}

/// Virtio-mmio transports a guest may have.
pub const MAX_VIRTIO: usize = 32;
/// SPIs the VMM's vGIC implements (`Vm` configures 64).
const NR_SPIS: u32 = 64;

/// Transport `i` where QEMU virt puts its virtio-mmio transports (0x0a00_0000, 0x200
/// apart, SPI 16 on), so a guest kernel finds its devices where it would under QEMU.
pub const fn virtio_transport(i: u32) -> VirtioMmio {
    VirtioMmio {
        regs: Region::new(0x0a00_0000 + 0x200 * i as u64, crate::virtio::MMIO_WINDOW),
        spi: 16 + i,
    }
}

/// The device windows sit below QEMU virt's RAM base.
const DEVICE_SPACE_END: u64 = 0x4000_0000;

/// Plans the layout and writes the DTB into `dtb_buf` (up to 2 MiB is used).
pub fn plan(spec: &GuestSpec<'_>, dtb_buf: &mut [u8]) -> Result<GuestPlan, PlanError> {
    plan_with_virtio(spec, &[], dtb_buf)
}

/// [`plan`] for a guest that also has `virtio` transports (`virtio,mmio` nodes,
/// edge-triggered SPIs and `dma-coherent`, as QEMU virt describes them). Without
/// any, the DTB is the one [`plan`] writes.
pub fn plan_with_virtio(
    spec: &GuestSpec<'_>,
    virtio: &[VirtioMmio],
    dtb_buf: &mut [u8],
) -> Result<GuestPlan, PlanError> {
    if spec.nr_vcpus == 0 || spec.nr_vcpus as usize > crate::MAX_VCPUS {
        return Err(PlanError::BadVcpuCount);
    }
    if spec.ram_base < DEVICE_SPACE_END {
        return Err(PlanError::RamOverlapsDevices);
    }
    let header = parse_image_header(spec.image).map_err(PlanError::Header)?;
    let ram = Range {
        addr: spec.ram_base,
        size: spec.ram_size,
    };
    // The initrd's place does not depend on the DTB size (the DTB gets its own
    // 2 MiB block), so plan with the maximum, then record the real size.
    let mut layout =
        plan_layout(ram, &header, DTB_MAX_SIZE, spec.initrd_size).map_err(PlanError::Layout)?;
    let gic = match spec.gic {
        GicVersion::V2 => Gic::qemu_virt_v2(),
        GicVersion::V3 => Gic::V3 {
            distributor: Region::new(0x0800_0000, 0x1_0000),
            redistributor: Region::new(0x080A_0000, GICR_STRIDE * u64::from(spec.nr_vcpus)),
        },
    };
    let uart = Pl011::qemu_virt();
    check_virtio(virtio, &gic, &uart)?;
    let memory = [Region::new(spec.ram_base, spec.ram_size)];
    let mut fdt = GuestFdt::qemu_virt(&memory, spec.nr_vcpus);
    fdt.gic = gic;
    fdt.console = Some(uart);
    fdt.virtio_mmio = virtio;
    fdt.bootargs = Some(spec.cmdline);
    fdt.initrd = layout.initrd.map(|r| (r.addr, r.end()));
    let max = dtb_buf.len().min(DTB_MAX_SIZE as usize);
    let len = fdt.write(&mut dtb_buf[..max]).map_err(PlanError::Fdt)?;
    layout.dtb.size = len as u64;
    Ok(GuestPlan {
        header,
        layout,
        entry: entry_state(&layout),
        gic,
        uart,
    })
}

fn overlaps(a: Region, b: Region) -> bool {
    a.base < b.base.saturating_add(b.size) && b.base < a.base.saturating_add(a.size)
}

/// Each transport in the device space, clear of the GIC, the console and the others,
/// on an SPI of its own that the vGIC implements.
fn check_virtio(virtio: &[VirtioMmio], gic: &Gic, uart: &Pl011) -> Result<(), PlanError> {
    let (a, b) = match *gic {
        Gic::V2 {
            distributor,
            cpu_interface,
        } => (distributor, cpu_interface),
        Gic::V3 {
            distributor,
            redistributor,
        } => (distributor, redistributor),
    };
    if virtio.len() > MAX_VIRTIO {
        return Err(PlanError::BadVirtio);
    }
    for (i, v) in virtio.iter().enumerate() {
        let fits = v.regs.size >= crate::virtio::MMIO_WINDOW
            && v.regs
                .base
                .checked_add(v.regs.size)
                .is_some_and(|e| e <= DEVICE_SPACE_END);
        let clash = [a, b, uart.regs].iter().any(|r| overlaps(v.regs, *r))
            || virtio[..i]
                .iter()
                .any(|w| overlaps(v.regs, w.regs) || w.spi == v.spi);
        if !fits || clash || v.spi == uart.spi || v.spi >= NR_SPIS {
            return Err(PlanError::BadVirtio);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "guest_tests.rs"]
mod tests;
