//! The physical interrupt controller, GICv2 or GICv3 by board, driven through `arm-gic`.
//! The kernel owns the distributor; user level reaches interrupts only through IRQ
//! handler capabilities (issue #3).

use core::ptr::NonNull;

use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3};
use arm_gic::{IntId, InterruptGroup, Trigger};
use axolotl_kernel_config::GicLayout;
use safe_mmio::UniqueMmioPointer;

pub enum Gic {
    /// With the distributor's address, for the registers `arm-gic` does not cover.
    V2(GicV2<'static>, u64),
    V3(GicV3<'static>),
}

/// Priority of every interrupt the kernel enables; all equal, as the kernel never nests.
const PRIORITY: u8 = 0x80;

fn intid(raw: u32) -> IntId {
    match raw {
        0..16 => IntId::sgi(raw),
        16..32 => IntId::ppi(raw - 16),
        _ => IntId::spi(raw - 32),
    }
}

impl Gic {
    /// # Safety
    /// The layout must be this board's GIC, identity mapped as device memory, used by
    /// nothing else.
    pub unsafe fn init(layout: GicLayout) -> Gic {
        match layout {
            GicLayout::V2 { gicd, gicc, .. } => {
                // SAFETY: forwarded to the caller.
                let mut g = unsafe { GicV2::new(gicd as *mut _, gicc as *mut _) };
                g.setup();
                g.set_priority_mask(0xff);
                Gic::V2(g, gicd)
            }
            GicLayout::V3 { gicd, gicr } => {
                GicCpuInterface::enable_system_register_el2(true);
                // SAFETY: forwarded to the caller.
                let mut g = unsafe {
                    GicV3::new(
                        UniqueMmioPointer::new(NonNull::new(gicd as *mut _).unwrap()),
                        NonNull::new(gicr as *mut _).unwrap(),
                        1,
                    )
                }
                .expect("GICv3 redistributor not found");
                g.setup(0);
                GicCpuInterface::set_priority_mask(0xff);
                Gic::V3(g)
            }
        }
    }

    pub fn enable(&mut self, irq: u32, level: bool) {
        let id = intid(irq);
        let trigger = if level { Trigger::Level } else { Trigger::Edge };
        match self {
            Gic::V2(g, gicd) => {
                g.set_interrupt_priority(id, PRIORITY);
                if !id.is_private() {
                    // GICD_ITARGETSR: a GICv2 SPI reaches no CPU until it names one; CPU 0.
                    // SAFETY: the byte for this SPI in the distributor the kernel owns.
                    unsafe { ((*gicd + 0x800 + irq as u64) as *mut u8).write_volatile(1) };
                }
                if !id.is_private() {
                    g.set_trigger(id, trigger);
                }
                let _ = g.enable_interrupt(id, true);
            }
            Gic::V3(g) => {
                let cpu = id.is_private().then_some(0);
                let _ = g.set_interrupt_priority(id, cpu, PRIORITY);
                if !id.is_private() {
                    let _ = g.set_trigger(id, cpu, trigger);
                }
                let _ = g.enable_interrupt(id, cpu, true);
            }
        }
    }

    /// Stops an interrupt from being signalled (until `unmask`), keeping its configuration.
    pub fn mask(&mut self, irq: u32) {
        self.set_enabled(irq, false);
    }

    pub fn unmask(&mut self, irq: u32) {
        self.set_enabled(irq, true);
    }

    pub fn disable(&mut self, irq: u32) {
        self.set_enabled(irq, false);
    }

    fn set_enabled(&mut self, irq: u32, on: bool) {
        let id = intid(irq);
        match self {
            Gic::V2(g, _) => {
                let _ = g.enable_interrupt(id, on);
            }
            Gic::V3(g) => {
                let _ = g.enable_interrupt(id, id.is_private().then_some(0), on);
            }
        }
    }

    /// Acknowledges the highest-priority pending interrupt.
    pub fn ack(&mut self) -> Option<u32> {
        match self {
            Gic::V2(g, _) => g.get_and_acknowledge_interrupt(InterruptGroup::Group0),
            Gic::V3(_) => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1),
        }
        .map(IntId::raw_value)
    }

    pub fn eoi(&mut self, irq: u32) {
        let id = intid(irq);
        match self {
            Gic::V2(g, _) => g.end_interrupt(id, InterruptGroup::Group0),
            Gic::V3(_) => GicCpuInterface::end_interrupt(id, InterruptGroup::Group1),
        }
    }
}
