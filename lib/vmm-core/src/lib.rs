//! Hardware-independent VMM logic, host-tested; `vmm-pd` is a thin shell around
//! it. See docs/vmm.md for the exit flow and the bad-input policy.
#![no_std]

pub mod bus;
pub mod guest;
pub mod mmio;
pub mod persist;
pub mod pl011;
pub mod psci;
pub mod vgic;
pub mod virtio;
pub mod vm;

#[cfg(test)]
mod proptests;

pub use bus::{Access, Bus, DeviceError, DeviceId, MapError, MmioDevice, MmioOutcome};
pub use guest::{GuestPlan, GuestSpec, PlanError, plan, plan_with_virtio, virtio_transport};
pub use mmio::{DecodeAction, DecodeError, MmioAccess, decode, fault_ipa};
pub use persist::{ExitRecord, StateError, StateRegion};
pub use pl011::{Pl011, TxSink};
pub use psci::{Conduit, Psci, PsciAction, PsciReply};
pub use vgic::{GicVersion, Vgic, VgicConfig};
pub use vm::{Event, Layout, Reply, Vm};

/// vCPUs per guest: GICv2's limit, and a fixed bound keeps state allocation-free.
pub const MAX_VCPUS: usize = 8;
