//! Reads QEMU virt's device memory beyond its device window, mapped from regions at fixed
//! physical addresses (tests/systems/qemu-devices-gicv2.system): the PCIe host bridge's
//! configuration header through the ECAM window, and the GICv2m frame's MSI_TYPER. Their
//! values are QEMU's, so a region placed anywhere else reads otherwise.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, SetVar, println};

    #[unsafe(no_mangle)]
    static ecam: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static gicv2m: SetVar = SetVar::new();

    /// GICv2m's MSI_TYPER: the first SPI it raises (bits 16..26) and how many (bits 0..10).
    const MSI_TYPER: u64 = 0x8;

    fn read32(vaddr: u64) -> u32 {
        // SAFETY: the SDF maps these device pages for this PD, uncached, read-only; 32-bit
        // reads are what both devices take.
        unsafe { core::ptr::read_volatile(vaddr as *const u32) }
    }

    struct Probe;

    impl Handler for Probe {
        fn init(&mut self) {
            // Bus 0, device 0, function 0 at the start of ECAM: vendor and device ID.
            let id = read32(ecam.get());
            println!(
                "device-probe: ECAM 00:00.0 vendor {:#06x} device {:#06x}",
                id & 0xffff,
                id >> 16
            );
            let typer = read32(gicv2m.get() + MSI_TYPER);
            println!(
                "device-probe: GICv2m SPIs from {} count {}",
                (typer >> 16) & 0x3ff,
                typer & 0x3ff
            );
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Probe);
}

#[cfg(not(target_os = "none"))]
fn main() {}
