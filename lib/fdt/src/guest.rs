//! The device tree a Linux guest on our VMM needs: memory, CPUs with PSCI, a GIC,
//! the architected timer, a PL011 console, optional virtio-mmio transports and
//! `/chosen`. The root uses 2 address / 2 size cells throughout.

use crate::{FdtWriter, Result, hex_u64};

/// Phandle of the interrupt controller (the root's `interrupt-parent`).
pub const PHANDLE_GIC: u32 = 1;
/// Phandle of the fixed clock feeding the PL011.
pub const PHANDLE_APB_CLOCK: u32 = 2;

/// GIC interrupt specifier types (first cell).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Trigger flags (third cell), as in the Linux dt-bindings.
pub const IRQ_TYPE_EDGE_RISING: u32 = 1;
pub const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// A `(base, size)` physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }
}

/// Interrupt controller model and register frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gic {
    /// `arm,cortex-a15-gic`: distributor + CPU interface.
    V2 {
        distributor: Region,
        cpu_interface: Region,
    },
    /// `arm,gic-v3`: distributor + one redistributor region (0x20000 per CPU).
    V3 {
        distributor: Region,
        redistributor: Region,
    },
}

impl Gic {
    /// QEMU virt, `gic-version=2`.
    pub const fn qemu_virt_v2() -> Self {
        Gic::V2 {
            distributor: Region::new(0x0800_0000, 0x1_0000),
            cpu_interface: Region::new(0x0801_0000, 0x1_0000),
        }
    }

    /// QEMU virt, `gic-version=3`, redistributors for `num_cpus` CPUs.
    pub const fn qemu_virt_v3(num_cpus: u32) -> Self {
        Gic::V3 {
            distributor: Region::new(0x0800_0000, 0x1_0000),
            redistributor: Region::new(0x080a_0000, 0x2_0000 * num_cpus as u64),
        }
    }
}

/// Timer PPIs, as PPI numbers (INTID - 16), in the binding's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerPpis {
    pub secure_phys: u32,
    pub nonsecure_phys: u32,
    pub virt: u32,
    pub hyp: u32,
}

impl Default for TimerPpis {
    /// The architecture's recommended INTIDs 29, 30, 27, 26.
    fn default() -> Self {
        Self {
            secure_phys: 13,
            nonsecure_phys: 14,
            virt: 11,
            hyp: 10,
        }
    }
}

/// PL011 UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pl011 {
    pub regs: Region,
    /// SPI number (INTID - 32).
    pub spi: u32,
    /// Frequency of the fixed `uartclk`/`apb_pclk` clock node.
    pub clock_hz: u32,
}

impl Pl011 {
    /// QEMU virt's UART0.
    pub const fn qemu_virt() -> Self {
        Self {
            regs: Region::new(0x0900_0000, 0x1000),
            spi: 1,
            clock_hz: 24_000_000,
        }
    }
}

/// One virtio-mmio transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmio {
    pub regs: Region,
    /// SPI number (INTID - 32).
    pub spi: u32,
}

/// Everything needed for a guest tree.
#[derive(Debug, Clone, Copy)]
pub struct GuestFdt<'a> {
    /// Root `compatible`; Linux only needs it to be present.
    pub compatible: &'a str,
    pub memory: &'a [Region],
    /// Memory reservation map entries.
    pub reservations: &'a [Region],
    pub num_cpus: u32,
    pub cpu_compatible: &'a str,
    pub gic: Gic,
    pub timer: TimerPpis,
    /// Also becomes `/chosen/stdout-path` when present.
    pub console: Option<Pl011>,
    pub virtio_mmio: &'a [VirtioMmio],
    pub bootargs: Option<&'a str>,
    /// `(start, end)` guest-physical, end exclusive.
    pub initrd: Option<(u64, u64)>,
}

impl<'a> GuestFdt<'a> {
    /// A QEMU-virt-shaped guest (GICv3, PL011 at 0x0900_0000) for `memory`.
    pub fn qemu_virt(memory: &'a [Region], num_cpus: u32) -> Self {
        Self {
            compatible: "linux,dummy-virt",
            memory,
            reservations: &[],
            num_cpus,
            cpu_compatible: "arm,cortex-a72",
            gic: Gic::qemu_virt_v3(num_cpus),
            timer: TimerPpis::default(),
            console: Some(Pl011::qemu_virt()),
            virtio_mmio: &[],
            bootargs: None,
            initrd: None,
        }
    }

    /// Writes the whole tree into `buf`; returns its size.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = FdtWriter::new(buf)?;
        for r in self.reservations {
            w.add_reservation(r.base, r.size)?;
        }
        w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.property_string("compatible", self.compatible)?;
        w.property_u32("interrupt-parent", PHANDLE_GIC)?;
        for m in self.memory {
            write_memory(&mut w, *m)?;
        }
        write_cpus(&mut w, self.num_cpus, self.cpu_compatible)?;
        write_psci(&mut w)?;
        write_gic(&mut w, &self.gic)?;
        write_timer(&mut w, &self.gic, self.num_cpus, &self.timer)?;
        if let Some(uart) = &self.console {
            write_pl011(&mut w, uart)?;
        }
        for v in self.virtio_mmio {
            write_virtio_mmio(&mut w, v)?;
        }
        write_chosen(&mut w, self.bootargs, self.initrd, self.console.as_ref())?;
        w.end_node()?;
        w.finish()
    }
}

/// `/memory@<base>`.
pub fn write_memory(w: &mut FdtWriter<'_>, r: Region) -> Result<()> {
    w.begin_node_at("memory", r.base)?;
    w.property_string("device_type", "memory")?;
    w.property_u64s("reg", &[r.base, r.size])?;
    w.end_node()
}

/// `/cpus` with `n` CPUs started through PSCI; `reg` is the MPIDR affinity, which
/// is simply the index for our VMM's vCPUs (< 256).
pub fn write_cpus(w: &mut FdtWriter<'_>, n: u32, compatible: &str) -> Result<()> {
    w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for i in 0..n {
        w.begin_node_at("cpu", i.into())?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", compatible)?;
        w.property_u32("reg", i)?;
        w.property_string("enable-method", "psci")?;
        w.end_node()?;
    }
    w.end_node()
}

/// `/psci`, calls through HVC into the VMM.
pub fn write_psci(w: &mut FdtWriter<'_>) -> Result<()> {
    w.begin_node("psci")?;
    w.property_string_list("compatible", &["arm,psci-1.0", "arm,psci-0.2"])?;
    w.property_string("method", "hvc")?;
    w.end_node()
}

/// The interrupt controller node (phandle [`PHANDLE_GIC`]).
pub fn write_gic(w: &mut FdtWriter<'_>, gic: &Gic) -> Result<()> {
    let (compat, a, b) = match *gic {
        Gic::V2 {
            distributor,
            cpu_interface,
        } => ("arm,cortex-a15-gic", distributor, cpu_interface),
        Gic::V3 {
            distributor,
            redistributor,
        } => ("arm,gic-v3", distributor, redistributor),
    };
    w.begin_node_at("intc", a.base)?;
    w.property_string("compatible", compat)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_empty("interrupt-controller")?;
    // No children and no interrupt-map users: dtc wants this spelled out.
    w.property_u32("#address-cells", 0)?;
    w.property_u64s("reg", &[a.base, a.size, b.base, b.size])?;
    if matches!(gic, Gic::V3 { .. }) {
        w.property_u32("#redistributor-regions", 1)?;
    }
    w.property_u32("phandle", PHANDLE_GIC)?;
    w.end_node()
}

/// PPI flags: GICv2 also carries a CPU target mask in bits 8..15.
fn ppi_flags(gic: &Gic, num_cpus: u32) -> u32 {
    match gic {
        Gic::V2 { .. } => {
            let mask = (1u32 << num_cpus.clamp(1, 8)) - 1;
            (mask << 8) | IRQ_TYPE_LEVEL_HIGH
        }
        Gic::V3 { .. } => IRQ_TYPE_LEVEL_HIGH,
    }
}

/// `/timer`, `arm,armv8-timer` with its four PPIs.
pub fn write_timer(w: &mut FdtWriter<'_>, gic: &Gic, num_cpus: u32, t: &TimerPpis) -> Result<()> {
    let f = ppi_flags(gic, num_cpus);
    w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    w.property_cells(
        "interrupts",
        &[
            GIC_PPI,
            t.secure_phys,
            f,
            GIC_PPI,
            t.nonsecure_phys,
            f,
            GIC_PPI,
            t.virt,
            f,
            GIC_PPI,
            t.hyp,
            f,
        ],
    )?;
    w.property_empty("always-on")?;
    w.end_node()
}

/// Fixed clock `/apb-pclk` plus `/pl011@<base>`.
pub fn write_pl011(w: &mut FdtWriter<'_>, u: &Pl011) -> Result<()> {
    w.begin_node("apb-pclk")?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", u.clock_hz)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_u32("phandle", PHANDLE_APB_CLOCK)?;
    w.end_node()?;

    w.begin_node_at("pl011", u.regs.base)?;
    w.property_string_list("compatible", &["arm,pl011", "arm,primecell"])?;
    w.property_u64s("reg", &[u.regs.base, u.regs.size])?;
    w.property_cells("interrupts", &[GIC_SPI, u.spi, IRQ_TYPE_LEVEL_HIGH])?;
    w.property_cells("clocks", &[PHANDLE_APB_CLOCK, PHANDLE_APB_CLOCK])?;
    w.property_string_list("clock-names", &["uartclk", "apb_pclk"])?;
    w.end_node()
}

/// `/virtio_mmio@<base>`.
pub fn write_virtio_mmio(w: &mut FdtWriter<'_>, v: &VirtioMmio) -> Result<()> {
    w.begin_node_at("virtio_mmio", v.regs.base)?;
    w.property_string("compatible", "virtio,mmio")?;
    w.property_u64s("reg", &[v.regs.base, v.regs.size])?;
    w.property_cells("interrupts", &[GIC_SPI, v.spi, IRQ_TYPE_EDGE_RISING])?;
    w.property_empty("dma-coherent")?;
    w.end_node()
}

/// `/chosen`: bootargs, initrd range and stdout-path (`/pl011@<base>`).
pub fn write_chosen(
    w: &mut FdtWriter<'_>,
    bootargs: Option<&str>,
    initrd: Option<(u64, u64)>,
    console: Option<&Pl011>,
) -> Result<()> {
    w.begin_node("chosen")?;
    if let Some(args) = bootargs {
        w.property_string("bootargs", args)?;
    }
    if let Some((start, end)) = initrd {
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    if let Some(u) = console {
        let mut hex = [0u8; 17];
        let h = hex_u64(u.regs.base, &mut hex);
        const PREFIX: &[u8] = b"/pl011@";
        w.property_with("stdout-path", PREFIX.len() + h.len() + 1, |d| {
            d[..PREFIX.len()].copy_from_slice(PREFIX);
            d[PREFIX.len()..PREFIX.len() + h.len()].copy_from_slice(h);
        })?;
    }
    w.end_node()
}
