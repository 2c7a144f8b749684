//! Hardware-independent logic of the serial driver PD and its clients
//! (issue #5's `resilient-echo` demo); `docs/serial.md` is the overview.
//!
//! * [`Uart`]: what the driver needs from a UART; [`Pl011`] implements it
//!   over `arm-pl011-uart`, [`FakeUart`] in software for tests.
//! * [`Server`]: the driver over `N` lib/ring connections (client messages
//!   to the wire) and an optional receive connection (wire to one client),
//!   interrupt-driven, restartable from a clean image.
//! * [`SeqClient`]: a client sending numbered messages and checking that
//!   each completes exactly once and in order, across driver restarts.
//!
//! * [`RxClient`]: the client of the receive connection.
//! * [`VirtioConsole`]: a [`Uart`] over a virtio-console device's port 0 (its two
//!   virtqueues through `virtio-drivers`), for the control plane's transport.
//!
//! Restarts: a restarted driver is a new [`Server`] over the same regions
//! with the monitor's generation; lib/ring's resync hands the surviving
//! clients back what it had not completed. Transmit completions stay
//! exactly-once and in order while the wire is at-least-once (a message cut
//! short by the crash is sent again); receive is at-most-once.
//!
//! The PD binaries map the regions, take the IRQ and call in here; nothing
//! here allocates, and nothing read from shared memory is trusted: lib/ring
//! checks indices and descriptors, and data bytes are read through
//! bounds-checked relaxed atomics (lib/ring's [`axolotl_ring::DataRegion`]).
#![no_std]

mod client;
mod fake;
pub mod layout;
mod pl011;
mod queue;
mod rx;
mod server;
mod stream;
mod uart;
mod virtio;

pub use client::{
    ClientActivity, MAX_NAME, MSG_SLOT, SeqClient, SeqClientError, SeqConfigError, SeqError,
    SeqStats, format_message,
};
pub use fake::{FAKE_FIFO_MAX, FakeUart};
pub use pl011::{InitError, Pl011, QEMU_VIRT_UART1_BASE, QEMU_VIRT_UART1_INTID, QEMU_VIRT_UARTCLK};
pub use rx::{RxActivity, RxClient, RxStats, WholeSink};
pub use server::{
    Activity, ConfigError, ConnId, ConnSet, Connection, MAX_TX_CONNECTIONS, RX_CARRY, Server,
    ServerStats,
};
pub use stream::{TxActivity, TxStream, TxStreamError};
pub use uart::{Irqs, RxError, Uart};
pub use virtio::{
    CONSOLE_BUF, CONSOLE_DMA_PAGES, CONSOLE_QUEUE, ConsoleError, ConsoleStats, DeviceFault,
    VirtioConsole,
};
