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
    pub ram_base: u64,
    pub ram_size: u64,
    /// PL011-compatible UART used as the kernel console.
    pub uart_base: u64,
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
    /// Device memory window handed to user level as device untypeds: [start, end).
    pub device_window: (u64, u64),
}

const QEMU_VIRT_COMMON: Board = Board {
    name: "qemu-virt-aarch64",
    ram_base: 0x4000_0000,
    // The runner starts QEMU with exactly this much RAM (`-m`).
    ram_size: 1 << 30,
    uart_base: 0x0900_0000,
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

/// Every board the kernel knows, each GIC variant listed once.
pub const BOARDS: &[Board] = &[QEMU_VIRT_GICV2, QEMU_VIRT_GICV3];

/// Looks a board up by name and GIC version (`None` takes the board's first listed variant).
pub fn board_by_name(name: &str, gic: Option<GicVersion>) -> Option<Board> {
    BOARDS
        .iter()
        .filter(|b| b.name == name)
        .find(|b| gic.is_none_or(|g| b.gic.version() == g))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_virt_has_both_gics_and_sane_memory() {
        let v2 = board_by_name("qemu-virt-aarch64", Some(GicVersion::V2)).unwrap();
        let v3 = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
        assert_eq!(v2.gic.version(), GicVersion::V2);
        assert_eq!(v3.gic.version(), GicVersion::V3);
        assert_eq!(board_by_name("qemu-virt-aarch64", None), Some(v2));
        assert!(board_by_name("no-such-board", None).is_none());
        for b in BOARDS {
            assert_eq!(
                b.ram_base % (2 << 20),
                0,
                "{}: RAM must be 2 MiB aligned",
                b.name
            );
            assert!(b.device_window.0 < b.device_window.1);
            assert!(
                b.device_window.1 <= b.ram_base,
                "{}: devices below RAM",
                b.name
            );
        }
    }
}
