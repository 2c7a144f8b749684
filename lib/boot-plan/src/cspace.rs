//! Microkit's CSpace layout of a PD, so that Microkit programs find their caps where they expect.
//!
//! Every PD has a single-level CNode of [`CNODE_SIZE_BITS`] slots; a capability address is a slot
//! number.

use axolotl_abi::BADGE_PPC;

/// Endpoint the PD receives on: protected calls arrive with their PPC badge, notifications
/// (delivered to the notification bound to its TCB) with their bitmask badge.
pub const INPUT_CAP: u64 = 1;
/// The PD's own VSpace, for cache maintenance by its own addresses (a VMM cleans the guest
/// image it wrote before the guest, MMU off, reads it). Slot 3 is free in Microkit's layout.
pub const VSPACE_CAP: u64 = 3;
/// Reply cap slot (where a protected call's reply capability is saved).
pub const REPLY_CAP: u64 = 4;
/// Fault endpoint: the monitor's, or the parent's for a child PD.
pub const MONITOR_EP: u64 = 5;
/// The PD's own CNode, for PDs with `cnode_cap="true"` (axolotl's): slot numbers at depth
/// `CNODE_SIZE_BITS`.
pub const OWN_CNODE_CAP: u64 = 8;
/// The monitor's endpoint to the root task (axolotl's; Microkit leaves 6..=9 free of PD caps).
pub const ROOT_SERVICE_CAP: u64 = 9;
/// `BASE_OUTPUT_NOTIFICATION_CAP + id`: notification of the peer of channel `id`.
pub const BASE_OUTPUT_NOTIFICATION_CAP: u64 = 10;
/// The monitor's (it has no channels) `BASE_OUTPUT_NOTIFICATION_CAP + pd`: the heartbeat
/// ping cap to the notification of PD `pd` (plan index), badge `axolotl_abi::HEARTBEAT_PING`.
pub const fn heartbeat_ping_slot(pd: u8) -> u64 {
    BASE_OUTPUT_NOTIFICATION_CAP + pd as u64
}
/// The monitor's `BASE_DEPENDANT_CAP + k`: its cap to signal the dependant of link `k`
/// (`BootPlan::dependant_links`) on its channel to the restarted PD. After the vCPU range.
pub const BASE_DEPENDANT_CAP: u64 = 394;
/// Links the monitor can hold caps for (the rest of its CNode).
pub const MAX_DEPENDANT_LINKS: usize = (1 << CNODE_SIZE_BITS) - BASE_DEPENDANT_CAP as usize;
pub const fn dependant_signal_slot(k: usize) -> u64 {
    BASE_DEPENDANT_CAP + k as u64
}
/// `BASE_ENDPOINT_CAP + id`: the callee's input endpoint for a pp channel `id`.
pub const BASE_ENDPOINT_CAP: u64 = 74;
/// `BASE_IRQ_CAP + id`: IRQ handler of the IRQ delivered as channel `id`.
pub const BASE_IRQ_CAP: u64 = 138;
/// `BASE_TCB_CAP + id`: TCB of the child PD with `id`.
pub const BASE_TCB_CAP: u64 = 202;
/// `BASE_VM_TCB_CAP + id`: TCB of the virtual machine's vCPU `id`.
pub const BASE_VM_TCB_CAP: u64 = 266;
/// `BASE_VCPU_CAP + id`: vCPU object `id`.
pub const BASE_VCPU_CAP: u64 = 330;

/// Ids per range: 64 slots apart, ids 0..=61 (`axolotl_sdf::MAX_ID`).
pub const IDS_PER_RANGE: u64 = 64;
/// 512 slots cover every range above (the last one ends at 394).
pub const CNODE_SIZE_BITS: u32 = 9;

pub const fn notification_slot(id: u8) -> u64 {
    BASE_OUTPUT_NOTIFICATION_CAP + id as u64
}
pub const fn endpoint_slot(id: u8) -> u64 {
    BASE_ENDPOINT_CAP + id as u64
}
pub const fn irq_slot(id: u8) -> u64 {
    BASE_IRQ_CAP + id as u64
}
pub const fn child_tcb_slot(id: u8) -> u64 {
    BASE_TCB_CAP + id as u64
}
pub const fn vm_tcb_slot(id: u8) -> u64 {
    BASE_VM_TCB_CAP + id as u64
}
pub const fn vcpu_slot(id: u8) -> u64 {
    BASE_VCPU_CAP + id as u64
}

/// Badge of a notification cap for channel `id_at_receiver`: one bit per channel, so a single
/// wait returns every pending channel.
pub const fn notification_badge(id_at_receiver: u8) -> u64 {
    1 << id_at_receiver
}
/// Badge of a pp endpoint cap: the PPC flag and the channel id at the callee.
pub const fn ppc_badge(id_at_callee: u8) -> u64 {
    BADGE_PPC | id_at_callee as u64
}

const _: () = assert!(vcpu_slot(61) < 1 << CNODE_SIZE_BITS);

/// Badge of the fault endpoint cap a child's faults arrive with at its parent.
pub const fn child_fault_badge(child_id: u8) -> u64 {
    axolotl_abi::BADGE_FAULT | child_id as u64
}
/// Badge of the monitor endpoint cap of the PD at plan index `pd`: the monitor tells PDs apart
/// by it.
pub const fn monitor_fault_badge(pd: u8) -> u64 {
    axolotl_abi::BADGE_FAULT | pd as u64
}
