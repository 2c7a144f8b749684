//! The serial driver PD over an ODROID's UART_A (`axolotl_meson_uart`, the meson UART)
//! instead of QEMU virt's second PL011: the same SDF contract (`uart_base` maps the device's
//! page, its IRQ on channel 0), the same clients, restarts and fault injection
//! (docs/serial.md, docs/boards.md). UART_A, not the console's UART_AO, which the kernel
//! keeps.
//!
//! One image for both boards: the SDF says which UART it mapped by patching the page's
//! physical address into `uart_paddr` (`<setvar symbol="uart_paddr" region_paddr="uart_a"/>`),
//! which gives the registers' offset in the page (0x4c0 on the C2), the FIFO depth and the
//! crystal (`axolotl_meson_uart::driver_uart_at`).

use axolotl_meson_uart::{BAUD, InitError, MesonSerial, Mmio, driver_uart_at};

use crate::CLIENTS;
use crate::pd::{Line, SerialDriver, uart_base_vaddr, uart_paddr_given};

/// The meson UART in the page the SDF maps at `uart_base`.
pub type Meson = MesonSerial<Mmio>;

impl Line for Meson {
    const NAME: &'static str = "UART_A";

    fn open() -> Result<Self, &'static str> {
        let base = uart_base_vaddr().ok_or("uart_base not set")?;
        let paddr = uart_paddr_given().ok_or(
            "uart_paddr not set: the SDF must say which meson UART it maps \
             (<setvar symbol=\"uart_paddr\" region_paddr=\"...\"/>)",
        )?;
        let u = driver_uart_at(paddr).ok_or(
            "uart_paddr is no ODROID's UART_A (page 0xffd24000 on the C4, 0xc1108000 on the C2)",
        )?;
        // SAFETY: the SDF maps that UART's page uncached at `base` for this PD only; its
        // registers are at `offset` in it.
        let mut uart = MesonSerial::new(unsafe { Mmio::new(base + u.offset()) }, u.fifo);
        uart.init(BAUD, u.xtal_hz).map_err(|e| match e {
            InitError::BadBaudRate => "bad baud rate",
            InitError::BadFifo => "bad FIFO depth",
            InitError::NotThere => {
                "UART_A does not answer (its enables or divisor did not stick: is its clock gated?)"
            }
        })?;
        Ok(uart)
    }
}

/// resilient-echo's driver on the ODROIDs: two transmit clients, echo_rx receiving.
pub type MesonDriver = SerialDriver<CLIENTS, Meson>;

/// A Linux guest's driver on the ODROIDs: the guest's serial line both ways, for the VMM
/// (no system uses it yet: the VMM has not been tried with these boards' GIC layouts).
pub type MesonConsoleDriver = SerialDriver<1, Meson>;
