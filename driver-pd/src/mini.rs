//! The serial driver PD over the Raspberry Pi's mini UART (`axolotl_mini_uart`) instead of
//! QEMU virt's second PL011: the same SDF contract (`uart_base` maps the device's page, here
//! the aux page 0xfe21_5000 whose mini UART registers are at +0x40; its IRQ on channel 0:
//! INTID 125, level), the same clients, restarts and fault injection (docs/serial.md,
//! docs/boards.md).

use axolotl_mini_uart::{InitError, MiniUart, Mmio, rpi4b};

use crate::CLIENTS;
use crate::pd::{Line, SerialDriver, uart_base_vaddr};

/// The mini UART behind the aux page the SDF maps at `uart_base`.
pub type Mini = MiniUart<Mmio>;

impl Line for Mini {
    const NAME: &'static str = "the mini UART";

    fn open() -> Result<Self, &'static str> {
        let base = uart_base_vaddr().ok_or("uart_base not set")?;
        // SAFETY: the SDF maps the aux page uncached at `base` for this PD only.
        let mut uart = MiniUart::new(unsafe { Mmio::new(base) });
        uart.init(115_200, rpi4b::CORE_CLOCK_HZ).map_err(|e| match e {
            InitError::BadBaudRate => "bad baud rate",
            InitError::NotThere => {
                "no mini UART at uart_base (is the aux page 0xfe215000 mapped, and QEMU's second -serial there?)"
            }
        })?;
        Ok(uart)
    }
}

/// resilient-echo's driver on the Pi: two transmit clients, echo_rx receiving.
pub type MiniDriver = SerialDriver<CLIENTS, Mini>;

/// linux-vm's driver on the Pi: the guest's serial line both ways, for the VMM.
pub type MiniConsoleDriver = SerialDriver<1, Mini>;
