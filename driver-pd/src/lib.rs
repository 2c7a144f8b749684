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
//! Issue #15's network (docs/network.md), in [`net`] (target only) over `axolotl_net`:
//! `net-driver` (virtio-net through `virtio-drivers`, DMA from [`dma`]), `net-virt` (the
//! network virtualiser) and `net-echo-a` / `net-echo-b` (native clients answering ARP and UDP
//! echo as [`NET_CLIENTS`]).
//!
//! The PD code (mapping, IRQ, notifications) is in [`pd`], target only; the SDF contract
//! (channel ids, setvar symbols) is below and in `systems/resilient-echo.system`.
//!
//! * `blk-driver`: the virtio-blk driver PD (QEMU `virt`'s disk on virtio-mmio transport
//!   31), serving one `axolotl_blk` client connection (issue #15, `docs/storage.md`).
//!
//! * `virtio-console-driver`: control-pd's transport over a virtio-console (QEMU's
//!   `virtio-serial-device` on virtio-mmio transport 29) instead of UART1 ([`vcons`]).
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

pub mod dma;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod net;
pub mod nic;

/// Issue #15's network (docs/network.md): one native client of the virtualiser, its
/// identity on QEMU's user network (10.0.2.0/24, gateway 10.0.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetIdentity {
    pub name: &'static str,
    pub mac: [u8; 6],
    pub ip: [u8; 4],
}

/// The virtualiser's clients, by index: client `i` is on the virtualiser's channel
/// `VIRT_CLIENT_CHANNEL_BASE + i`. The SDF has no value setvars (Microkit's `setvar` carries
/// addresses only), so the MACs are this contract's, shared by the virtualiser and the
/// clients' images (`net-echo-a`, `net-echo-b`). Locally administered unicast MACs.
pub const NET_CLIENTS: [NetIdentity; 2] = [
    NetIdentity {
        name: "echo_a",
        mac: [0x02, 0x00, 0x00, 0x0a, 0x00, 0x0f],
        ip: [10, 0, 2, 15],
    },
    NetIdentity {
        name: "echo_b",
        mac: [0x02, 0x00, 0x00, 0x0a, 0x00, 0x10],
        ip: [10, 0, 2, 16],
    },
];
/// The UDP port the native clients echo on (RFC 862).
pub const ECHO_PORT: u16 = 7;
/// The net driver's channel of its device interrupt (`<irq irq="78" id="0" />`).
pub const NET_DRIVER_IRQ_CHANNEL: u8 = 0;
/// The net driver's channel of the virtualiser.
pub const NET_DRIVER_VIRT_CHANNEL: u8 = 1;
/// The virtualiser's channel of the driver.
pub const VIRT_DRIVER_CHANNEL: u8 = 0;
/// The virtualiser's channel of client `i` is this plus `i`.
pub const VIRT_CLIENT_CHANNEL_BASE: u8 = 1;
/// A native client's channel of the virtualiser.
pub const NET_CLIENT_VIRT_CHANNEL: u8 = 0;
/// QEMU virt's virtio-mmio transport 30, where `axolotl_qemu::Net` puts the NIC: its offset
/// in the page the SDF maps (`0x0a00_3000`), and its size.
pub const NET_MMIO_OFFSET: usize = 0xc00;
pub const NET_MMIO_SIZE: usize = 0x200;
/// The net driver's DMA region (SDF `net_dma`): two virtqueues and 2 × 64 buffers of 2 KiB.
pub const NET_DMA_BYTES: usize = 0x8_0000;

// Issue #15's storage PDs (`docs/storage.md`): `blk-driver` and the test client.

/// The virtio-blk driver's channel id of its device IRQ (`<irq irq="79" id="0" />`).
pub const BLK_IRQ_CHANNEL: u8 = 0;
/// The virtio-blk driver's channel id of its client.
pub const BLK_CLIENT_CHANNEL: u8 = 1;
/// A storage client's channel id of the driver.
pub const BLK_DRIVER_CHANNEL: u8 = 0;
/// The page of QEMU `virt`'s virtio-mmio transports 24..31, which the SDF maps (uncached).
pub const VIRTIO_BLK_PAGE: u64 = 0x0a00_3000;
/// Transport 31 (where `axolotl_qemu::Machine::disk` puts the disk), in that page.
pub const VIRTIO_BLK_OFFSET: usize = 0xe00;
/// Bytes of one virtio-mmio transport.
pub const VIRTIO_MMIO_SIZE: usize = 0x200;
/// The storage test's pattern seed (`tests/tests/blk.rs` compares the image against it).
pub const BLK_TEST_SEED: u64 = 0x0a01_071e_0015_b10c;
/// Sectors the storage test writes and reads back: 4 MiB.
pub const BLK_TEST_SECTORS: u64 = 8192;
/// The pattern client's request size: 16 KiB (32 sectors), many requests for the 4 MiB
/// workload, so that the restart test's crashes fall among requests in flight (and the
/// campaign's blk workload counts as many).
pub const BLK_PATTERN_SECTORS: u32 = 32;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod blk;

/// The control plane's virtio-console driver (`virtio-console-driver`, docs/control.md).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod vcons;

/// The serial driver over the Raspberry Pi's mini UART (docs/boards.md).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod mini;

/// The serial driver over an ODROID's UART_A, a meson UART (docs/boards.md).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod meson;

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
