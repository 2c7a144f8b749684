//! Issue #5's `resilient-echo` demo (docs/serial.md): the PL011 driver PD and its clients.
//!
//! * `serial-driver`: owns QEMU `virt`'s second PL011 (UART1, `0x0904_0000`, INTID 40,
//!   level) and serves [`CLIENTS`] transmit connections with `axolotl_serial_core::Server`.
//!   Started and restarted the same way: a new `Server` over the same shared regions with
//!   the PD generation the root task started it with (`x0`), each client's claimed
//!   generation checked against the root task's generation table.
//! * `echo-client-a` / `echo-client-b`: `axolotl_serial_core::SeqClient`s named
//!   `client_a` / `client_b`, sending [`MESSAGES`] numbered messages each and checking
//!   every completion (exactly once, in order) across driver restarts.
//! * `echo-rx`: `axolotl_serial_core::RxClient` on the driver's receive connection (if the
//!   SDF gives one), printing each line UART1 receives.
//!
//! The PD code (mapping, IRQ, notifications) is in [`pd`], target only; the SDF contract
//! (channel ids, setvar symbols) is below and in `systems/resilient-echo.system`.
//!
//! Fault injection for tests: [`pd::Driver::crashing_after`] builds a driver that, in
//! generation 0 only, writes to an unmapped address once it has completed a given number of
//! messages (likewise `hanging_after`, `scribbling_after`, `deleting_caps_after`,
//! `lying_after`); only the test PDs in tests/pds use them.

#![no_std]

/// Transmit connections the driver serves.
pub const CLIENTS: usize = 2;
/// The driver's channel id of its UART IRQ (`<irq irq="40" id="0" />`).
pub const DRIVER_IRQ_CHANNEL: u8 = 0;
/// The driver's channel id of client `i` is `DRIVER_CLIENT_CHANNEL_BASE + i`.
pub const DRIVER_CLIENT_CHANNEL_BASE: u8 = 1;
/// The driver's channel id of `echo_rx`, the client of its receive connection (optional).
pub const DRIVER_RX_CHANNEL: u8 = 3;
/// A client's channel id of the driver.
pub const CLIENT_DRIVER_CHANNEL: u8 = 0;
/// Messages each client sends.
pub const MESSAGES: u32 = 100;
/// Messages in flight per client.
pub const WINDOW: usize = 8;
/// A client prints a progress line every this many completions.
pub const PROGRESS_EVERY: u32 = 20;

/// Whether completing `from..to` crossed a multiple of `every` (a progress line is due).
pub fn progress_due(from: u32, to: u32, every: u32) -> Option<u32> {
    if every == 0 || to <= from {
        return None;
    }
    let mark = to / every * every;
    (mark > from).then_some(mark)
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod pd;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_at_each_multiple_crossed() {
        assert_eq!(progress_due(0, 19, 20), None);
        assert_eq!(progress_due(0, 20, 20), Some(20));
        assert_eq!(progress_due(19, 27, 20), Some(20));
        assert_eq!(progress_due(20, 39, 20), None);
        assert_eq!(progress_due(35, 61, 20), Some(60), "the last mark crossed");
        assert_eq!(progress_due(5, 5, 20), None);
        assert_eq!(progress_due(0, 5, 0), None);
    }
}
