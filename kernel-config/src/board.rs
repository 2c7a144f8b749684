/// Interrupt controller generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

impl GicVersion {
    pub const fn number(self) -> u8 {
        match self {
            GicVersion::V2 => 2,
            GicVersion::V3 => 3,
        }
    }
}

/// Physical addresses of the GIC's register frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicLayout {
    V2 {
        gicd: u64,
        gicc: u64,
        gich: u64,
        gicv: u64,
    },
    V3 {
        gicd: u64,
        gicr: u64,
    },
}

impl GicLayout {
    pub const fn version(&self) -> GicVersion {
        match self {
            GicLayout::V2 { .. } => GicVersion::V2,
            GicLayout::V3 { .. } => GicVersion::V3,
        }
    }
}

/// A board the kernel can be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// The name used on the command line (`--board`).
    pub name: &'static str,
    /// What the board is, whatever its RAM: boards that differ in RAM alone (the Pi 4's
    /// `rpi4b_1gb` to `rpi4b_8gb`) share it, and with it QEMU's machine, the SD card's
    /// layout and everything else that is not RAM.
    pub family: &'static str,
    /// RAM, `[start, end)` ranges: sorted, disjoint, in whole 2 MiB blocks, at most
    /// [`MAX_RAM_RANGES`] (host-tested for every board). The kernel is loaded in one
    /// ([`Board::kernel_ram`]) and allocates the root task's objects there; what it leaves of
    /// that range and every other range become the root task's untyped memory.
    pub ram: &'static [(u64, u64)],
    /// The kernel console's UART: its registers start here (not always page aligned: the
    /// ODROID-C2's is at 0xc810_04c0), in the page [`Board::uart_page`].
    pub uart_base: u64,
    /// What kind of UART the console is.
    pub console: ConsoleKind,
    /// GIC interrupt id (INTID) of the console UART.
    pub uart_irq: u32,
    pub gic: GicLayout,
    /// Generic timer frequency in Hz (CNTFRQ_EL0 is read at boot and checked against this).
    pub timer_hz: u64,
    /// PPI of the EL2 physical timer, which the kernel keeps for itself.
    pub hyp_timer_irq: u32,
    /// PPI of the EL1 virtual timer (delivered to guests).
    pub virt_timer_irq: u32,
    /// PPI of the EL1 physical timer: user level's time source, through an IRQ handler cap
    /// and `TcbSetTimerAccess` (`docs/abi.md`).
    pub phys_timer_irq: u32,
    /// PPI of the virtual GIC's maintenance interrupt.
    pub vgic_maintenance_irq: u32,
    /// The SoC's devices, [start, end): handed to user level as device untypeds, but for
    /// what the kernel keeps inside it (the console's page, the GIC's frames other than
    /// GICV: [`Board::user_device_ranges`]).
    pub device_window: (u64, u64),
    /// Physical address the kernel is linked at and loaded to (`kernel/link.ld`).
    pub kernel_load: u64,
    /// What the board's boot chain loads.
    pub boot_format: BootFormat,
    /// What the kernel sets up before its first console line.
    pub console_setup: ConsoleSetup,
}

/// The console UART's register interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleKind {
    /// ARM PL011 (QEMU virt, the Pi's UART0).
    Pl011,
    /// Amlogic's own UART (`amlogic,meson-gx-uart`: the ODROID-C2's and C4's UART_AO), which
    /// has nothing in common with a PL011 (lib/meson-uart).
    MesonGx,
}

/// How the console UART comes to work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleSetup {
    /// The boot chain leaves it enabled at 115200 8N1 (QEMU virt; U-Boot on the ODROIDs,
    /// whose console it is).
    AsLeft,
    /// BCM2711: GPIO 14/15 to function ALT0 (PL011 UART0's TXD0/RXD0; the firmware gives them
    /// to the mini UART and UART0 to Bluetooth), then the PL011 at 115200 8N1 from its
    /// `uart_clock_hz` reference clock.
    Bcm2711Gpio14 { gpio_base: u64, uart_clock_hz: u32 },
}

/// The form of the kernel image the board's boot chain loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFormat {
    /// QEMU `-kernel` with the ELF: loaded at its segments' addresses, entered at its entry.
    Elf,
    /// A flat binary of the image from [`Board::kernel_load`] on (the Raspberry Pi firmware's
    /// `kernel8.img`, QEMU `raspi4b`'s `-kernel`, U-Boot's `bootm` of it on the ODROIDs):
    /// entered at its first byte.
    Raw,
}

const QEMU_VIRT_COMMON: Board = Board {
    name: "qemu-virt-aarch64",
    family: "qemu-virt-aarch64",
    // The runner starts QEMU with exactly this much RAM (`-m`): 2 GiB, as Microkit's
    // `qemu_virt_aarch64`, whose users' files put regions at 0x8000_0000.
    ram: &[(0x4000_0000, 0xc000_0000)],
    uart_base: 0x0900_0000,
    console: ConsoleKind::Pl011,
    uart_irq: 33,
    gic: GicLayout::V2 {
        gicd: 0x0800_0000,
        gicc: 0x0801_0000,
        gich: 0x0803_0000,
        gicv: 0x0804_0000,
    },
    timer_hz: 62_500_000,
    hyp_timer_irq: 26,
    virt_timer_irq: 27,
    phys_timer_irq: 30,
    vgic_maintenance_irq: 25,
    device_window: (0x0900_0000, 0x0c00_0000),
    // QEMU puts its device tree at the start of RAM: the kernel starts 2 MiB in.
    kernel_load: 0x4020_0000,
    boot_format: BootFormat::Elf,
    console_setup: ConsoleSetup::AsLeft,
};

/// QEMU `virt` with `gic-version=2`.
pub const QEMU_VIRT_GICV2: Board = QEMU_VIRT_COMMON;

/// QEMU `virt` with `gic-version=3`.
pub const QEMU_VIRT_GICV3: Board = Board {
    gic: GicLayout::V3 {
        gicd: 0x0800_0000,
        gicr: 0x080A_0000,
    },
    ..QEMU_VIRT_COMMON
};

/// The Pi 4's RAM, per model. The firmware writes the memory node at boot (Debian's
/// `bcm2711-rpi-4-b.dtb` has `reg = <0 0 0>`), so these are seL4's figures, which Microkit's
/// `rpi4b_1gb` to `rpi4b_8gb` use (its `build_sdk.py` sets `RPI4_MEMORY` to 1024 to 8192,
/// which picks seL4's `src/plat/bcm2711/overlay-rpi4-{1,2,4,8}gb.dts`; the ranges are those
/// the firmware gives Raspberry Pi OS, seen in its `/proc/iomem`):
///
/// - every model: `0..0x3b40_0000`, the first GiB up to the VideoCore's share (76 MiB with
///   the default `gpu_mem`, which the SD card's `config.txt` keeps);
/// - 2 GiB: `0x4000_0000..0x8000_0000` besides (QEMU `raspi4b`'s RAM is `0..0x8000_0000`);
/// - 4 GiB: `0x4000_0000..0xfc00_0000`, up to the peripherals: in "low peripheral" mode the
///   RAM under `0xfc00_0000..0x1_0000_0000` is hidden (the DT's lowest bus window, `/scb`'s,
///   starts at 0xfc00_0000: `tests/upstream_dtbs.rs` checks the range ends there);
/// - 8 GiB: that and `0x1_0000_0000..0x2_0000_0000` (seL4 lists it as two 2 GiB ranges).
///
/// The SoC's older DMA masters (`/soc` `dma-ranges`) reach the first GiB only, and the root
/// task puts a region without `phys_addr` wherever it finds room, above 1 GiB too: a DMA
/// buffer for one of them needs a `phys_addr` below 0x3b40_0000.
const RPI4B_RAM_1GB: &[(u64, u64)] = &[(0, 0x3b40_0000)];
const RPI4B_RAM_2GB: &[(u64, u64)] = &[(0, 0x3b40_0000), (0x4000_0000, 0x8000_0000)];
const RPI4B_RAM_4GB: &[(u64, u64)] = &[(0, 0x3b40_0000), (0x4000_0000, 0xfc00_0000)];
const RPI4B_RAM_8GB: &[(u64, u64)] = &[
    (0, 0x3b40_0000),
    (0x4000_0000, 0xfc00_0000),
    (0x1_0000_0000, 0x2_0000_0000),
];

/// Raspberry Pi 4 Model B (BCM2711) as the Pi firmware leaves it: booted at EL2 on
/// `kernel8.img`, secondary cores parked on the spin table. The addresses are the ARM's
/// physical view ("low peripheral" mode); the device tree speaks of bus addresses (0x7e.. for
/// 0xfe..) and `kernel-config/tests/upstream_dtbs.rs` translates and checks every one against
/// Debian's `bcm2711-rpi-4-b.dtb`.
///
/// `rpi4b` is the 1 GiB board's RAM, which every Pi 4 has (the tests, the docs' examples and
/// the SD card commands use it); [`RPI4B_1GB`] to [`RPI4B_8GB`] are the same board with each
/// model's RAM, named as Microkit names them.
pub const RPI4B: Board = Board {
    name: "rpi4b",
    family: "rpi4b",
    ram: RPI4B_RAM_1GB,
    // PL011 UART0 (the DT's serial0, bus 0x7e20_1000), on GPIO 14/15 once the kernel has
    // set their function (docs/boards.md); SPI 121.
    uart_base: 0xfe20_1000,
    console: ConsoleKind::Pl011,
    uart_irq: 32 + 121,
    // GIC-400 in the ARM local peripherals (bus 0x4004_1000 in the DT).
    gic: GicLayout::V2 {
        gicd: 0xff84_1000,
        gicc: 0xff84_2000,
        gich: 0xff84_4000,
        gicv: 0xff84_6000,
    },
    // The crystal (the DT's clk-osc) drives the generic timer; the firmware's armstub sets
    // CNTFRQ to it.
    timer_hz: 54_000_000,
    hyp_timer_irq: 26,
    virt_timer_irq: 27,
    phys_timer_irq: 30,
    vgic_maintenance_irq: 25,
    // The SoC's peripherals (the DT's /soc ranges at 0xfc00_0000 and 0xfe00_0000), below the
    // ARM local block that holds the GIC.
    device_window: (0xfc00_0000, 0xff80_0000),
    // Where the firmware loads a 64-bit kernel with `kernel_address=0x80000` (and where QEMU
    // `raspi4b` loads `-kernel`); below it, page 0 holds the spin table the secondary cores
    // wait on.
    kernel_load: 0x8_0000,
    boot_format: BootFormat::Raw,
    // The GPIO block (bus 0x7e20_0000); UART0's clock is the firmware's `init_uart_clock`,
    // 48 MHz unless config.txt says otherwise (the SD image's does not).
    console_setup: ConsoleSetup::Bcm2711Gpio14 {
        gpio_base: 0xfe20_0000,
        uart_clock_hz: 48_000_000,
    },
};

/// The 1 GiB Pi 4: [`RPI4B`] under Microkit's name.
pub const RPI4B_1GB: Board = Board {
    name: "rpi4b_1gb",
    ..RPI4B
};

/// The 2 GiB Pi 4 (and QEMU `raspi4b`, which has 2 GiB).
pub const RPI4B_2GB: Board = Board {
    name: "rpi4b_2gb",
    ram: RPI4B_RAM_2GB,
    ..RPI4B
};

/// The 4 GiB Pi 4.
pub const RPI4B_4GB: Board = Board {
    name: "rpi4b_4gb",
    ram: RPI4B_RAM_4GB,
    ..RPI4B
};

/// The 8 GiB Pi 4.
pub const RPI4B_8GB: Board = Board {
    name: "rpi4b_8gb",
    ram: RPI4B_RAM_8GB,
    ..RPI4B
};

/// ODROID-C4 (Amlogic S905X3, "SM1"), as U-Boot leaves it: the boot script
/// (lib/board-image/src/amlogic.rs) `bootm`s the flat image wrapped as a legacy U-Boot image,
/// which copies it to [`Board::kernel_load`], turns the MMU and caches off and enters it at
/// EL2 on the boot core; the other cores are off (PSCI, which the kernel never calls). Every
/// constant is checked against Debian's `meson-sm1-odroid-c4.dtb` by
/// `kernel-config/tests/upstream_dtbs.rs`. No emulator boots it: never run (docs/boards.md).
pub const ODROID_C4: Board = Board {
    name: "odroid-c4",
    family: "odroid-c4",
    // Above the secure monitor's reserved ranges (0x0500_0000..0x0730_0000, `no-map` in the
    // DT: touching them, even by a speculative fetch through a cacheable mapping, faults on
    // the bus), up to the 1 GiB the DT's memory node has before U-Boot fills in the board's
    // 4 GiB. The rest of the 4 GiB is not used yet: nothing checkable says where it lies.
    ram: &[(0x0740_0000, 0x4000_0000)],
    // UART_AO (serial0, 115200 8N1, the header's UART pins), SPI 193.
    uart_base: 0xff80_3000,
    console: ConsoleKind::MesonGx,
    uart_irq: 32 + 193,
    gic: GicLayout::V2 {
        gicd: 0xffc0_1000,
        gicc: 0xffc0_2000,
        gich: 0xffc0_4000,
        gicv: 0xffc0_6000,
    },
    // The 24 MHz crystal (the DT's `xtal`); the secure firmware sets CNTFRQ to it.
    timer_hz: 24_000_000,
    hyp_timer_irq: 26,
    virt_timer_irq: 27,
    phys_timer_irq: 30,
    vgic_maintenance_irq: 25,
    // Every device of the SoC, from PCIe (0xfc00_0000) to the GPU (ending 0xffe8_0000): the
    // PCIe, Ethernet, the 0xff60_0000 and always-on 0xff80_0000 buses and the VPU below the
    // GIC, the 0xffd0_0000 bus (UART A-C, I2C, PWM: UART_A is the serial driver's), the SD
    // and eMMC controllers, USB and the GPU above it. The GIC at 0xffc0_1000 sits inside:
    // the kernel keeps its frames ([`Board::user_device_ranges`]).
    device_window: (0xfc00_0000, 0xffe8_0000),
    // Where Microkit's ODROID loader is loaded by U-Boot too: well above U-Boot's own load
    // address (0x0100_0000) and below where it relocates itself (the top of RAM).
    kernel_load: 0x2000_0000,
    boot_format: BootFormat::Raw,
    console_setup: ConsoleSetup::AsLeft,
};

/// ODROID-C2 (Amlogic S905, "GXBB"), booted as the C4 is (U-Boot's `bootm`, EL2). Checked
/// against Debian's `meson-gxbb-odroidc2.dtb`.
pub const ODROID_C2: Board = Board {
    name: "odroid-c2",
    family: "odroid-c2",
    // Above every `no-map` range of the DT (the boot ROM's first 16 MiB, the secure
    // monitor's at 0x0500_0000 and 0x1000_0000..0x1020_0000), to the end of the DT's 2 GiB
    // memory node (every C2 has 2 GiB).
    ram: &[(0x1020_0000, 0x8000_0000)],
    // UART_AO (serial0) in the always-on bus at 0xc810_0000; not page aligned. SPI 193.
    uart_base: 0xc810_04c0,
    console: ConsoleKind::MesonGx,
    uart_irq: 32 + 193,
    gic: GicLayout::V2 {
        gicd: 0xc430_1000,
        gicc: 0xc430_2000,
        gich: 0xc430_4000,
        gicv: 0xc430_6000,
    },
    timer_hz: 24_000_000,
    hyp_timer_irq: 26,
    virt_timer_irq: 27,
    phys_timer_irq: 30,
    vgic_maintenance_irq: 25,
    // Every device of the SoC, from the USB PHYs (0xc000_0000) to the 0xd000_0000 APB (SD
    // and eMMC controllers) and the VPU: the 0xc110_0000 bus (UART A-C, I2C, PWM: UART_A is
    // the serial driver's) below the GIC at 0xc430_1000, the SRAM, the always-on bus, HDMI,
    // Ethernet and USB above it. The kernel keeps the GIC's frames.
    device_window: (0xc000_0000, 0xd020_0000),
    kernel_load: 0x2000_0000,
    boot_format: BootFormat::Raw,
    console_setup: ConsoleSetup::AsLeft,
};

/// Most RAM ranges a board has ([`Board::ram`]; the 8 GiB Pi 4 has three).
pub const MAX_RAM_RANGES: usize = 4;

/// Physical address bits of the kernel's translation regimes: TCR_EL2.PS and VTCR_EL2.PS
/// are both 40 bits (`kernel/src/arch/aarch64`), so RAM and devices must lie below 1 TiB.
pub const PHYS_ADDR_BITS: u32 = 40;

/// INTIDs the kernel keeps a claim for (SGIs and PPIs included): user level can be given SPIs
/// 32..MAX_INTIDS and the EL1 physical timer's PPI, no others.
pub const MAX_INTIDS: u32 = 256;

/// Why the kernel refuses an interrupt to user level ([`Board::user_irq_refusal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqRefusal {
    /// The kernel's own: what it is.
    KernelOwned(u32, &'static str),
    /// An SGI or a PPI other than the EL1 physical timer.
    NotSpi(u32, u32),
    /// Beyond [`MAX_INTIDS`].
    Beyond(u32),
}

impl core::fmt::Display for IrqRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            IrqRefusal::KernelOwned(irq, what) => {
                write!(f, "irq {irq} is {what}, which the kernel keeps")
            }
            IrqRefusal::NotSpi(irq, timer) => write!(
                f,
                "irq {irq} is an SGI or a PPI: only SPIs (32 to {}) and the EL1 physical timer \
                 ({timer}) can be handed to a protection domain",
                MAX_INTIDS - 1
            ),
            IrqRefusal::Beyond(irq) => write!(
                f,
                "irq {irq} is beyond the interrupts the kernel manages (32 to {})",
                MAX_INTIDS - 1
            ),
        }
    }
}

/// A UART the kernel's console can be on ([`Board::console_candidates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleUart {
    /// Its registers' base.
    pub base: u64,
    /// Its interrupt (INTID), which the kernel keeps while its console is there.
    pub irq: u32,
    /// For messages: "UART0".
    pub name: &'static str,
}

impl ConsoleUart {
    pub const fn page(&self) -> u64 {
        self.base & !0xfff
    }
}

/// QEMU virt's two PL011s: UART0 (`-serial` 1), UART1 (`-serial` 2). Both have the same
/// reference clock and are left as QEMU resets them, so the kernel writes to either alike.
const QEMU_VIRT_UARTS: &[ConsoleUart] = &[
    ConsoleUart {
        base: 0x0900_0000,
        irq: 33,
        name: "UART0",
    },
    ConsoleUart {
        base: 0x0904_0000,
        irq: 40,
        name: "UART1",
    },
];

/// Bytes of the GICv2 frames (the GIC-400's: the architecture's register maps, rounded to
/// pages): the distributor, the CPU interface (GICC_DIR at 0x1000), the hypervisor control
/// interface with its per-CPU aliases, the virtual CPU interface.
pub const GICV2_GICD_BYTES: u64 = 0x1000;
pub const GICV2_GICC_BYTES: u64 = 0x2000;
pub const GICV2_GICH_BYTES: u64 = 0x2000;
pub const GICV2_GICV_BYTES: u64 = 0x2000;
/// Bytes of a GICv3's distributor and of one core's redistributor (its RD and SGI frames).
pub const GICV3_GICD_BYTES: u64 = 0x1_0000;
pub const GICV3_GICR_BYTES_PER_CORE: u64 = 0x2_0000;

/// Most ranges [`Board::user_device_ranges`] can come to: the window cut by the console's
/// page and three GIC frames, GICV, and the board's other device memory (up to five).
pub const MAX_DEVICE_RANGES: usize = 12;

/// Physical ranges, sorted and disjoint, each `[start, end)` page aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRanges {
    ranges: [(u64, u64); MAX_DEVICE_RANGES],
    len: usize,
}

impl DeviceRanges {
    const fn of(r: (u64, u64)) -> Self {
        let mut d = DeviceRanges {
            ranges: [(0, 0); MAX_DEVICE_RANGES],
            len: 0,
        };
        if r.0 < r.1 {
            d.ranges[0] = r;
            d.len = 1;
        }
        d
    }

    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.ranges[..self.len]
    }

    /// Whether `[lo, hi)` lies inside one of the ranges.
    pub fn contains(&self, lo: u64, hi: u64) -> bool {
        self.as_slice().iter().any(|&(a, b)| a <= lo && hi <= b)
    }

    /// Whether `[lo, hi)` meets any of the ranges.
    pub fn meets(&self, lo: u64, hi: u64) -> bool {
        self.as_slice().iter().any(|&(a, b)| lo < b && a < hi)
    }

    /// Adds `[lo, hi)` as a range of its own, kept sorted, unless it lies inside one already
    /// (the overlap, if any, taken out first); nothing if there is no room, which a host test
    /// rules out for every board.
    fn insert(&mut self, lo: u64, hi: u64) {
        if lo >= hi || self.contains(lo, hi) {
            return;
        }
        self.remove(lo, hi);
        if self.len == MAX_DEVICE_RANGES {
            return;
        }
        let at = self
            .as_slice()
            .iter()
            .position(|&(a, _)| a > lo)
            .unwrap_or(self.len);
        let mut k = self.len;
        while k > at {
            self.ranges[k] = self.ranges[k - 1];
            k -= 1;
        }
        self.ranges[at] = (lo, hi);
        self.len += 1;
    }

    /// Takes the pages of `[lo, hi)` out.
    fn remove(&mut self, lo: u64, hi: u64) {
        let (lo, hi) = (lo & !0xfff, hi.next_multiple_of(0x1000));
        let mut out = [(0, 0); MAX_DEVICE_RANGES];
        let mut n = 0;
        for &(a, b) in self.as_slice() {
            for piece in [(a, b.min(lo)), (a.max(hi), b)] {
                // A range cut in two takes one more slot; the callers' cuts never exceed
                // MAX_DEVICE_RANGES (a host test checks every board).
                if piece.0 < piece.1 && n < MAX_DEVICE_RANGES {
                    out[n] = piece;
                    n += 1;
                }
            }
        }
        self.ranges = out;
        self.len = n;
    }
}

/// QEMU virt's PCIe host bridge windows below RAM (hw/arm/virt.c's memory map), contiguous:
/// MMIO `0x1000_0000..0x3eff_0000`, I/O `0x3eff_0000..0x3f00_0000`, and the ECAM used when
/// `highmem-ecam` is off, `0x3f00_0000..0x4000_0000`.
const QEMU_VIRT_PCIE: (u64, u64) = (0x1000_0000, 0x4000_0000);
/// Its windows above RAM, where QEMU puts them for the runner's 2 GiB (from 256 GiB on, each
/// aligned to its size): the ECAM it uses by default (`highmem-ecam`), 256 MiB, and the 64-bit
/// MMIO window, 512 GiB up to the kernel's 40-bit physical address space's end.
const QEMU_VIRT_HIGH_PCIE_ECAM: (u64, u64) = (0x40_1000_0000, 0x40_2000_0000);
const QEMU_VIRT_HIGH_PCIE_MMIO: (u64, u64) = (0x80_0000_0000, 0x100_0000_0000);
/// QEMU virt's GICv2m MSI frame (with `gic-version=2`): a write to its `MSI_SETSPI` raises one
/// of its 64 SPIs (INTIDs 80 to 143).
const QEMU_VIRT_GICV2M: (u64, u64) = (0x0802_0000, 0x0802_1000);

impl Board {
    /// The RAM range the kernel is loaded in (`(0, 0)` if none, which a host test rules
    /// out): the kernel allocates the root task's objects from its image's end up in it.
    pub const fn kernel_ram(&self) -> (u64, u64) {
        let mut i = 0;
        while i < self.ram.len() {
            let (lo, hi) = self.ram[i];
            if lo <= self.kernel_load && self.kernel_load < hi {
                return (lo, hi);
            }
            i += 1;
        }
        (0, 0)
    }

    /// Bytes of RAM, all ranges together.
    pub const fn ram_bytes(&self) -> u64 {
        let mut n = 0u64;
        let mut i = 0;
        while i < self.ram.len() {
            n = n.saturating_add(self.ram[i].1.saturating_sub(self.ram[i].0));
            i += 1;
        }
        n
    }

    /// Whether `[lo, hi)` lies inside one RAM range: nothing physically contiguous
    /// straddles the gap between two.
    pub const fn ram_contains(&self, lo: u64, hi: u64) -> bool {
        let mut i = 0;
        while i < self.ram.len() {
            if self.ram[i].0 <= lo && hi <= self.ram[i].1 && lo <= hi {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Whether `[lo, hi)` meets RAM.
    pub fn ram_meets(&self, lo: u64, hi: u64) -> bool {
        self.ram.iter().any(|&(a, b)| lo < b && a < hi)
    }

    /// Device memory handed to user level besides [`Board::device_window`], as device
    /// untypeds, in address order: on QEMU virt its PCIe windows below and above RAM and, with
    /// a GICv2, its GICv2m frame, as Microkit's `qemu_virt_aarch64` has them. Not GICv3's ITS,
    /// which writes its tables to RAM (a DMA master), nor its redistributors above RAM.
    pub fn more_devices(&self) -> &'static [(u64, u64)] {
        match (self.family, self.gic) {
            ("qemu-virt-aarch64", GicLayout::V2 { .. }) => &[
                QEMU_VIRT_GICV2M,
                QEMU_VIRT_PCIE,
                QEMU_VIRT_HIGH_PCIE_ECAM,
                QEMU_VIRT_HIGH_PCIE_MMIO,
            ],
            ("qemu-virt-aarch64", GicLayout::V3 { .. }) => &[
                QEMU_VIRT_PCIE,
                QEMU_VIRT_HIGH_PCIE_ECAM,
                QEMU_VIRT_HIGH_PCIE_MMIO,
            ],
            _ => &[],
        }
    }

    /// The page holding the console UART's registers: the kernel's, never user level's.
    pub const fn uart_page(&self) -> u64 {
        self.uart_base & !0xfff
    }

    /// The GIC frames the kernel keeps for itself wherever they lie, `[start, end)`: all of
    /// the GIC but a GICv2's virtual CPU interface (GICV), which a VMM maps for its guest.
    /// Empty entries are `(0, 0)`.
    pub fn kernel_gic_frames(&self) -> [(u64, u64); 3] {
        match self.gic {
            GicLayout::V2 {
                gicd, gicc, gich, ..
            } => [
                (gicd, gicd + GICV2_GICD_BYTES),
                (gicc, gicc + GICV2_GICC_BYTES),
                (gich, gich + GICV2_GICH_BYTES),
            ],
            GicLayout::V3 { gicd, gicr } => [
                (gicd, gicd + GICV3_GICD_BYTES),
                (
                    gicr,
                    gicr + GICV3_GICR_BYTES_PER_CORE * self.sdf_cores() as u64,
                ),
                (0, 0),
            ],
        }
    }

    /// What the kernel hands to user level as device untypeds: the device window without the
    /// console's page and the GIC's frames ([`Board::kernel_gic_frames`]), and a GICv2's
    /// GICV wherever it lies (a VMM maps it for its guest).
    pub fn user_device_ranges(&self) -> DeviceRanges {
        let mut d = DeviceRanges::of(self.device_window);
        d.remove(self.uart_page(), self.uart_page() + 0x1000);
        for (lo, hi) in self.kernel_gic_frames() {
            if lo < hi {
                d.remove(lo, hi);
            }
        }
        if let GicLayout::V2 { gicv, .. } = self.gic {
            // Outside the window (QEMU virt, the Pi): a range of its own.
            d.insert(gicv, gicv + GICV2_GICV_BYTES);
        }
        // Beyond the window: QEMU virt's PCIe windows and GICv2m frame.
        for &(lo, hi) in self.more_devices() {
            d.insert(lo, hi);
        }
        d
    }

    /// The UARTs the kernel's console may be put on, the board's default first: a system that
    /// gives the default one to user level gets its kernel log on the next one it leaves
    /// free (the build picks it: `axolotl_sdf::console_board`). Empty where the board has
    /// one console only (the Pi and the ODROIDs: no other UART of theirs is modelled).
    pub fn console_candidates(&self) -> &'static [ConsoleUart] {
        match self.family {
            "qemu-virt-aarch64" => QEMU_VIRT_UARTS,
            _ => &[],
        }
    }

    /// The console UART this board's kernel writes to, as a candidate (`None` on a board
    /// with no choice).
    pub fn console_uart(&self) -> Option<ConsoleUart> {
        self.console_candidates()
            .iter()
            .find(|u| u.base == self.uart_base)
            .copied()
    }

    /// This board with the kernel's console on `uart` (one of [`Board::console_candidates`],
    /// all of the same kind and set-up as the default).
    pub const fn with_console(self, uart: ConsoleUart) -> Board {
        Board {
            uart_base: uart.base,
            uart_irq: uart.irq,
            ..self
        }
    }

    /// Cores an SDF may name in `cpu` (Microkit's board model: QEMU virt has 4, as
    /// Microkit's `qemu_virt_aarch64`). The kernel runs every PD on the boot core
    /// ([`Board::cores`]): `cpu` 1 to 3 is accepted with a warning (docs/sdf.md).
    pub fn sdf_cores(&self) -> u32 {
        match self.family {
            "qemu-virt-aarch64" => 4,
            _ => self.cores(),
        }
    }

    /// Why the kernel would refuse `irq` to user level on this board (IrqControlGet), if it
    /// would: `check` reports the same with the SDF position rather than letting the boot fail.
    pub fn user_irq_refusal(&self, irq: u32) -> Option<IrqRefusal> {
        let own = [
            (self.uart_irq, "the kernel console's UART interrupt"),
            (
                self.hyp_timer_irq,
                "the kernel's own timer (EL2 physical timer PPI)",
            ),
            (self.virt_timer_irq, "the guests' virtual timer PPI"),
            (
                self.vgic_maintenance_irq,
                "the virtual GIC's maintenance PPI",
            ),
        ];
        if let Some(&(_, what)) = own.iter().find(|(n, _)| *n == irq) {
            return Some(IrqRefusal::KernelOwned(irq, what));
        }
        if irq == self.phys_timer_irq {
            None
        } else if irq < 32 {
            Some(IrqRefusal::NotSpi(irq, self.phys_timer_irq))
        } else if irq >= MAX_INTIDS {
            Some(IrqRefusal::Beyond(irq))
        } else {
            None
        }
    }

    /// Cores PDs can run on: the kernel runs on the boot core only (the runner starts QEMU
    /// with `-smp 1`).
    pub const fn cores(&self) -> u32 {
        1
    }
}

/// Every board the kernel knows, each GIC variant listed once.
pub const BOARDS: &[Board] = &[
    QEMU_VIRT_GICV2,
    QEMU_VIRT_GICV3,
    RPI4B,
    RPI4B_1GB,
    RPI4B_2GB,
    RPI4B_4GB,
    RPI4B_8GB,
    ODROID_C4,
    ODROID_C2,
];

/// Looks a board up by name and GIC version (`None` takes the board's first listed variant).
/// `-` and `_` are the same: Microkit's spelling of a board name (`qemu_virt_aarch64`,
/// `rpi4b_2gb`) is understood, and so is `rpi4b-2gb`.
pub fn board_by_name(name: &str, gic: Option<GicVersion>) -> Option<Board> {
    let dash = |c: u8| if c == b'_' { b'-' } else { c };
    let same = |b: &Board| {
        b.name.len() == name.len()
            && b.name
                .bytes()
                .zip(name.bytes())
                .all(|(x, y)| dash(x) == dash(y))
    };
    BOARDS
        .iter()
        .filter(|b| same(b))
        .find(|b| gic.is_none_or(|g| b.gic.version() == g))
        .copied()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;

    #[test]
    fn user_irqs_are_spis_and_the_physical_timer() {
        let b = QEMU_VIRT_GICV3;
        for ok in [30, 32, 40, 78, 79, 255] {
            assert_eq!(b.user_irq_refusal(ok), None, "{ok}");
        }
        for bad in [0, 15, 25, 26, 27, 29, 31, 33, 256, 1020] {
            assert!(b.user_irq_refusal(bad).is_some(), "{bad}");
        }
    }

    /// QEMU virt's console can move to UART1; the kernel then keeps IRQ 40 and hands out 33.
    #[test]
    fn qemu_virt_console_candidates_are_its_two_pl011s() {
        for b in [QEMU_VIRT_GICV2, QEMU_VIRT_GICV3] {
            let c = b.console_candidates();
            assert_eq!(c.len(), 2);
            assert_eq!(b.console_uart(), Some(c[0]));
            let (lo, hi) = b.device_window;
            for u in c {
                assert!(u.page() >= lo && u.page() + 0x1000 <= hi, "{u:?}");
            }
            let moved = b.with_console(c[1]);
            assert_eq!((moved.uart_base, moved.uart_irq), (0x0904_0000, 40));
            assert_eq!(moved.console_uart(), Some(c[1]));
            assert_eq!(moved.user_irq_refusal(33), None);
            assert!(moved.user_irq_refusal(40).is_some());
            assert!(b.user_irq_refusal(33).is_some());
            assert_eq!((b.sdf_cores(), b.cores()), (4, 1));
        }
        for b in [RPI4B, ODROID_C4, ODROID_C2] {
            assert!(b.console_candidates().is_empty() && b.console_uart().is_none());
            assert_eq!(b.sdf_cores(), 1);
        }
    }

    /// The device memory beyond the window is the board's, clear of RAM, of the window and
    /// of every GIC frame the kernel keeps.
    #[test]
    fn more_devices_are_clear_of_ram_the_window_and_the_gic() {
        for b in BOARDS {
            let gic: &[u64] = match b.gic {
                GicLayout::V2 {
                    gicd, gicc, gich, ..
                } => &[gicd, gicc, gich],
                GicLayout::V3 { gicd, gicr } => &[gicd, gicr],
            };
            // kernel/src/boot.rs has room for five; the kernel's stage 2 reaches 40 bits.
            assert!(b.more_devices().len() <= 5, "{}", b.name);
            for &(lo, hi) in b.more_devices() {
                assert!(hi <= 1 << PHYS_ADDR_BITS, "{}: {hi:#x}", b.name);
                assert!(lo < hi && lo.is_multiple_of(0x1000) && hi.is_multiple_of(0x1000));
                assert!(!b.ram_meets(lo, hi), "{}: {lo:#x}..{hi:#x}", b.name);
                let (olo, ohi) = b.device_window;
                assert!(hi <= olo || lo >= ohi, "{}: {lo:#x}..{hi:#x}", b.name);
                for &g in gic {
                    assert!(g + 0x1_0000 <= lo || g >= hi, "{}: GIC {g:#x}", b.name);
                }
            }
        }
        let pcie = [
            (0x1000_0000, 0x4000_0000),
            (0x40_1000_0000, 0x40_2000_0000),
            (0x80_0000_0000, 1 << 40),
        ];
        assert_eq!(
            QEMU_VIRT_GICV2.more_devices()[0],
            (0x0802_0000, 0x0802_1000)
        );
        assert_eq!(QEMU_VIRT_GICV2.more_devices()[1..], pcie);
        assert_eq!(QEMU_VIRT_GICV3.more_devices(), pcie);
        assert!(RPI4B.more_devices().is_empty());
    }

    #[test]
    fn rpi4b_is_one_gicv2_board() {
        assert_eq!(board_by_name("rpi4b", None), Some(RPI4B));
        assert_eq!(board_by_name("rpi4b", Some(GicVersion::V2)), Some(RPI4B));
        assert_eq!(board_by_name("rpi4b", Some(GicVersion::V3)), None);
        // The console's page and the GIC are the kernel's, outside what user level gets.
        let (lo, hi) = RPI4B.device_window;
        assert!(RPI4B.uart_base >= lo && RPI4B.uart_base < hi);
        let GicLayout::V2 { gicd, gicv, .. } = RPI4B.gic else {
            panic!("GIC-400")
        };
        assert!(gicd >= hi && gicv >= hi);
    }

    /// Microkit's four Pi 4 boards: the same board but for RAM, whose ranges are seL4's
    /// (`overlay-rpi4-{1,2,4,8}gb.dts`); `rpi4b` stays the 1 GiB one.
    #[test]
    fn rpi4b_comes_in_microkit_s_four_ram_sizes() {
        const MIB: u64 = 1 << 20;
        for (name, b, ram, mib) in [
            ("rpi4b_1gb", RPI4B_1GB, &[(0, 0x3b40_0000)][..], 948),
            (
                "rpi4b_2gb",
                RPI4B_2GB,
                &[(0, 0x3b40_0000), (0x4000_0000, 0x8000_0000)][..],
                948 + 1024,
            ),
            (
                "rpi4b_4gb",
                RPI4B_4GB,
                &[(0, 0x3b40_0000), (0x4000_0000, 0xfc00_0000)][..],
                948 + 3008,
            ),
            (
                "rpi4b_8gb",
                RPI4B_8GB,
                &[
                    (0, 0x3b40_0000),
                    (0x4000_0000, 0xfc00_0000),
                    (0x1_0000_0000, 0x2_0000_0000),
                ][..],
                948 + 3008 + 4096,
            ),
        ] {
            assert_eq!(b.name, name);
            assert_eq!(board_by_name(name, None), Some(b));
            assert_eq!(board_by_name(&name.replace('_', "-"), None), Some(b));
            assert_eq!(board_by_name(name, Some(GicVersion::V3)), None);
            assert_eq!(b.ram, ram, "{name}");
            assert_eq!(b.ram_bytes(), mib * MIB, "{name}");
            // Nothing but the name and RAM differs from `rpi4b`.
            assert_eq!(
                Board {
                    name: RPI4B.name,
                    ram: RPI4B.ram,
                    ..b
                },
                RPI4B
            );
            // The kernel and the root task's objects stay in the first range, which every
            // model has.
            assert_eq!(b.kernel_ram(), (0, 0x3b40_0000), "{name}");
        }
        assert_eq!(RPI4B.ram, RPI4B_1GB.ram);
        assert!(RPI4B_2GB.ram_contains(0x4000_0000, 0x8000_0000));
        assert!(
            !RPI4B_2GB.ram_contains(0x3b40_0000, 0x3b40_1000),
            "the VideoCore's"
        );
        assert!(
            !RPI4B_2GB.ram_contains(0x3b3f_f000, 0x4000_1000),
            "straddles the gap"
        );
        assert!(
            !RPI4B_4GB.ram_meets(0xfc00_0000, 0x1_0000_0000),
            "the peripherals'"
        );
        assert!(RPI4B_8GB.ram_contains(0x1_ffff_f000, 0x2_0000_0000));
        assert!(!RPI4B_8GB.ram_meets(0x2_0000_0000, 0x2_0000_1000));
    }

    /// Every board's RAM: a few sorted, disjoint ranges of whole 2 MiB blocks (the kernel
    /// maps RAM by 2 MiB blocks) within the kernel's physical address size, holding the
    /// kernel, clear of every device the kernel or user level maps.
    #[test]
    fn every_board_s_ram_is_ranges_clear_of_its_devices() {
        for b in BOARDS {
            let r = b.ram;
            assert!(!r.is_empty() && r.len() <= MAX_RAM_RANGES, "{}", b.name);
            for &(lo, hi) in r {
                assert!(lo < hi, "{}", b.name);
                assert!(
                    lo % (2 << 20) == 0 && hi % (2 << 20) == 0,
                    "{}: 2 MiB",
                    b.name
                );
                assert!(hi <= 1 << PHYS_ADDR_BITS, "{}", b.name);
            }
            for w in r.windows(2) {
                assert!(
                    w[0].1 < w[1].0,
                    "{}: sorted, disjoint, apart: {r:x?}",
                    b.name
                );
            }
            let (klo, khi) = b.kernel_ram();
            assert!(klo <= b.kernel_load && b.kernel_load < khi, "{}", b.name);
            assert_eq!(b.kernel_load % 4096, 0, "{}", b.name);
            let (dlo, dhi) = b.device_window;
            assert!(!b.ram_meets(dlo, dhi), "{}: devices outside RAM", b.name);
            for (lo, hi) in b.kernel_gic_frames() {
                assert!(!b.ram_meets(lo, hi), "{}: GIC {lo:#x}", b.name);
            }
            for &(lo, hi) in b.user_device_ranges().as_slice() {
                assert!(!b.ram_meets(lo, hi), "{}: {lo:#x}..{hi:#x}", b.name);
            }
            assert!(!b.ram_meets(b.uart_page(), b.uart_page() + 0x1000));
            let bytes: u64 = r.iter().map(|&(lo, hi)| hi - lo).sum();
            assert_eq!(b.ram_bytes(), bytes, "{}", b.name);
        }
    }

    #[test]
    fn odroids_are_gicv2_boards_whose_gic_the_kernel_keeps_out_of_the_device_untypeds() {
        for b in [ODROID_C4, ODROID_C2] {
            assert_eq!(board_by_name(b.name, None), Some(b));
            assert_eq!(board_by_name(b.name, Some(GicVersion::V3)), None);
            assert_eq!(b.console, ConsoleKind::MesonGx);
            let (lo, hi) = b.device_window;
            let page = b.uart_page();
            assert!(page >= lo && page + 0x1000 <= hi, "{}", b.name);
            // The GIC lies among the SoC's devices, inside the window: what user level gets
            // has a hole for it, but for GICV.
            let GicLayout::V2 { gicd, gicv, .. } = b.gic else {
                panic!("GIC-400")
            };
            assert!(lo < gicd && gicv + GICV2_GICV_BYTES < hi, "{}", b.name);
            let user = b.user_device_ranges();
            assert!(!user.meets(gicd, gicv), "{}: {user:x?}", b.name);
            assert!(user.contains(gicv, gicv + GICV2_GICV_BYTES), "{}", b.name);
            assert!(!user.meets(page, page + 0x1000), "{}", b.name);
        }
        // The C2's UART is not page aligned: its page is the kernel's.
        assert_eq!(ODROID_C2.uart_page(), 0xc810_0000);
        assert_eq!(ODROID_C4.uart_page(), ODROID_C4.uart_base);
        // UART_A, the serial driver's (lib/meson-uart's board constants, checked against the
        // DTBs in tests/upstream_dtbs.rs), is user level's on both.
        assert!(
            ODROID_C4
                .user_device_ranges()
                .contains(0xffd2_4000, 0xffd2_5000)
        );
        assert!(
            ODROID_C2
                .user_device_ranges()
                .contains(0xc110_8000, 0xc110_9000)
        );
        assert_eq!(
            ODROID_C4.user_device_ranges().as_slice(),
            [
                (0xfc00_0000, 0xff80_3000),
                (0xff80_4000, 0xffc0_1000),
                (0xffc0_6000, 0xffe8_0000)
            ]
        );
    }

    /// The kernel's boot (kernel/src/boot_alloc.rs `blocks`): naturally aligned power-of-two
    /// blocks, the largest that fit.
    fn untyped_blocks(mut lo: u64, hi: u64) -> usize {
        let mut n = 0;
        while lo < hi {
            let align = if lo == 0 { 63 } else { lo.trailing_zeros() };
            let bits = align.min(63 - (hi - lo).leading_zeros()).min(47);
            n += (bits >= 4) as usize;
            lo += 1 << bits;
        }
        n
    }

    #[test]
    fn user_device_ranges_leave_the_kernel_its_frames_and_fit_the_boot_info() {
        for b in BOARDS {
            let user = b.user_device_ranges();
            let r = user.as_slice();
            assert!(!r.is_empty(), "{}", b.name);
            for w in r.windows(2) {
                assert!(
                    w[0].1 < w[1].0,
                    "{}: sorted, disjoint, not adjacent: {r:x?}",
                    b.name
                );
            }
            for &(lo, hi) in r {
                assert!(
                    lo < hi && lo % 0x1000 == 0 && hi % 0x1000 == 0,
                    "{}",
                    b.name
                );
            }
            for (lo, hi) in b.kernel_gic_frames() {
                assert!(lo == hi || !user.meets(lo, hi), "{}: GIC {lo:#x}", b.name);
            }
            assert!(!user.meets(b.uart_page(), b.uart_page() + 0x1000));
            let gicv = match b.gic {
                GicLayout::V2 { gicv, .. } => Some((gicv, gicv + GICV2_GICV_BYTES)),
                GicLayout::V3 { .. } => None,
            };
            if let Some((lo, hi)) = gicv {
                assert!(user.contains(lo, hi), "{}: GICV", b.name);
            }
            // Nothing beyond the window but GICV and the board's other device memory.
            let (wlo, whi) = b.device_window;
            for &(lo, hi) in r {
                assert!(
                    (wlo <= lo && hi <= whi)
                        || Some((lo, hi)) == gicv
                        || b.more_devices().contains(&(lo, hi)),
                    "{}",
                    b.name
                );
            }
            for &(lo, hi) in b.more_devices() {
                assert!(user.contains(lo, hi), "{}: {lo:#x}", b.name);
            }
            // The device untypeds and RAM's, within the boot info's 128 (`MAX_UNTYPED`).
            let n: usize = r.iter().map(|&(lo, hi)| untyped_blocks(lo, hi)).sum();
            assert!(n <= 64, "{}: {n} device untypeds", b.name);
            let ram: usize = b.ram.iter().map(|&(lo, hi)| untyped_blocks(lo, hi)).sum();
            assert!(ram <= 48, "{}: {ram} RAM untypeds", b.name);
        }
        // As before the GIC came inside a window: QEMU virt and the Pi.
        for b in [QEMU_VIRT_GICV2, RPI4B] {
            let (lo, hi) = b.device_window;
            let page = b.uart_page();
            let GicLayout::V2 { gicv, .. } = b.gic else {
                unreachable!()
            };
            let mut want = vec![(lo, page), (page + 0x1000, hi), (gicv, gicv + 0x2000)];
            want.extend(b.more_devices());
            want.retain(|r| r.0 < r.1);
            want.sort();
            assert_eq!(b.user_device_ranges().as_slice(), want, "{}", b.name);
        }
        let moved = QEMU_VIRT_GICV3.with_console(QEMU_VIRT_GICV3.console_candidates()[1]);
        assert_eq!(
            moved.user_device_ranges().as_slice(),
            [
                (0x0900_0000, 0x0904_0000),
                (0x0904_1000, 0x0c00_0000),
                (0x1000_0000, 0x4000_0000),
                (0x40_1000_0000, 0x40_2000_0000),
                (0x80_0000_0000, 0x100_0000_0000)
            ]
        );
    }

    #[test]
    fn qemu_virt_has_both_gics_and_sane_memory() {
        let v2 = board_by_name("qemu-virt-aarch64", Some(GicVersion::V2)).unwrap();
        let v3 = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
        assert_eq!(v2.gic.version(), GicVersion::V2);
        assert_eq!(v3.gic.version(), GicVersion::V3);
        assert_eq!(board_by_name("qemu-virt-aarch64", None), Some(v2));
        assert!(board_by_name("no-such-board", None).is_none());
        assert_eq!(
            board_by_name("qemu_virt_aarch64", Some(GicVersion::V3)),
            Some(v3)
        );
        for b in BOARDS {
            assert!(b.device_window.0 < b.device_window.1);
        }
        assert_eq!(v3.ram, [(0x4000_0000, 0xc000_0000)]);
    }
}
