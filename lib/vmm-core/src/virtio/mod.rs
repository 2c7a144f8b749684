//! Virtio devices for the guest: the virtio-mmio transport (version 2, virtio 1.2
//! §4.2.2), split virtqueues on the device side, virtio-net and virtio-blk.
//!
//! Everything the guest writes (registers, rings, descriptors, request headers) and
//! everything a backend reports (completion ids and statuses) is checked; every
//! answer is one the spec gives (an error status, DEVICE_NEEDS_RESET with a
//! configuration-change interrupt, or ignored and counted), never a panic. The
//! devices touch guest RAM only through [`GuestMemory`], which bounds-checks every
//! access, and never keep a pointer into it.
//!
//! Register accesses only record what the guest asked for (a queue notification is
//! a bit); the work happens in the device's `process`, which the VMM calls after the
//! access with guest memory and the backend at hand. Afterwards the VMM passes
//! `irq_level()` to the vGIC, as for the PL011. See docs/vmm.md, "Virtio devices".

pub mod blk;
pub mod mem;
pub mod mmio;
pub mod net;
pub mod net_offload;
pub mod queue;
pub mod ring_blk;
pub mod ring_net;
pub mod state;

#[cfg(test)]
#[path = "proptests.rs"]
mod proptests;
#[cfg(test)]
pub(crate) mod testutil;

pub use blk::{
    BlkBackend, BlkConfig, BlkData, BlkOp, BlkRequest, BlkState, Completion, Submit, VirtioBlk,
};
pub use mem::{GuestMemory, GuestRam, MemError};
pub use mmio::{Counters, Transport};
pub use net::{NetBackend, NetConfig, RxFrame, RxOutcome, TxDest, TxOutcome, VirtioNet};
pub use queue::{Chain, Cursor, Queue, QueueError};
pub use ring_blk::BlkRing;
pub use ring_net::NetRing;
pub use state::{QueueState, TransportState, VirtioStateError};

/// `VIRTIO_F_INDIRECT_DESC`: a descriptor may point to a table of descriptors.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_F_EVENT_IDX`: `used_event`/`avail_event` suppress notifications.
pub const F_EVENT_IDX: u64 = 1 << 29;
/// `VIRTIO_F_VERSION_1`: a modern (non-legacy) device; mandatory for mmio v2.
pub const F_VERSION_1: u64 = 1 << 32;

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// InterruptStatus bits (§4.2.2).
pub mod isr {
    /// The device used a buffer in at least one virtqueue.
    pub const USED_BUFFER: u32 = 1;
    /// The configuration (or DEVICE_NEEDS_RESET) changed.
    pub const CONFIG_CHANGE: u32 = 2;
}

/// Size of one transport window (QEMU virt spaces them 0x200 apart).
pub const MMIO_WINDOW: u64 = 0x200;

/// A device with an interrupt line (virtio-mmio's: `InterruptStatus != 0`).
pub trait IrqLine {
    fn irq_level(&self) -> bool;
}

impl IrqLine for VirtioNet {
    fn irq_level(&self) -> bool {
        VirtioNet::irq_level(self)
    }
}

impl IrqLine for VirtioBlk {
    fn irq_level(&self) -> bool {
        VirtioBlk::irq_level(self)
    }
}

/// Runs `work` (the backend's poll: the device's queues against its driver connection) on
/// `dev` with its interrupt line passed to `set_line` (e.g. [`crate::vm::Vm::set_spi_level`])
/// both before and after. Call it after every register access of the guest and on every
/// notification of the backend's peer.
///
/// Why before as well: the guest's virtio SPI is edge-triggered (QEMU virt's device tree
/// says so, and Linux configures it so). When the access was an InterruptACK (the line
/// falls) and `work` completes a buffer in the same exit (the line rises again), a line
/// sampled only afterwards stays high throughout: no edge, no interrupt, and with
/// EVENT_IDX the guest never asks for one again, so its queue stalls. Passing the level
/// after the access first lets the line fall, and what `work` raises is a new edge.
pub fn service<D: IrqLine + ?Sized, R>(
    dev: &mut D,
    mut set_line: impl FnMut(bool),
    work: impl FnOnce(&mut D) -> R,
) -> R {
    set_line(dev.irq_level());
    let r = work(dev);
    set_line(dev.irq_level());
    r
}
