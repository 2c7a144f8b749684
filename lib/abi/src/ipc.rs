/// The IPC buffer: one per thread, in a frame mapped into its VSpace (seL4's
/// `seL4_IPCBuffer` layout). Message registers beyond the first four live in `msg`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IpcBuffer {
    pub tag: u64,
    pub msg: [u64; crate::MSG_MAX_LENGTH],
    pub user_data: u64,
    /// Sent: capability addresses of extra caps. Received: badges of unwrapped caps.
    pub caps_or_badges: [u64; crate::MSG_MAX_EXTRA_CAPS],
    /// Where a received capability goes: CNode (in the receiver's CSpace), index, depth.
    pub receive_cnode: u64,
    pub receive_index: u64,
    pub receive_depth: u64,
}

const _: () = assert!(core::mem::size_of::<IpcBuffer>() <= 4096);

impl IpcBuffer {
    pub const fn zeroed() -> Self {
        IpcBuffer {
            tag: 0,
            msg: [0; crate::MSG_MAX_LENGTH],
            user_data: 0,
            caps_or_badges: [0; crate::MSG_MAX_EXTRA_CAPS],
            receive_cnode: 0,
            receive_index: 0,
            receive_depth: 0,
        }
    }
}

/// Badge bits the receive loop of a PD uses to tell events apart (Microkit's convention):
/// a protected procedure call carries bit 63, a fault bit 62, a notification neither.
pub const BADGE_PPC: u64 = 1 << 63;
pub const BADGE_FAULT: u64 = 1 << 62;

/// Label of the empty reply a caller gets when the thread holding its reply cap is suspended
/// (stopped or restarted) or deleted before answering: a peer's restart is an error result,
/// never a hang (Hubris's rule; seL4 leaves the caller blocked). The top label value, so it
/// cannot collide with an invocation error code.
pub const CALL_ABORTED: u64 = (1 << crate::MessageInfo::LABEL_BITS) - 1;

/// Label of a PD's own message on its fault endpoint (a Call, words as
/// [`CorruptionReport`]): the shared state of one of its channels is corrupt, so the monitor
/// should restart the peer. Outside the fault labels' range.
pub const REPORT_CORRUPTION: u64 = 0x100;

/// A PD's corruption report (`REPORT_CORRUPTION`): the one definition of its words, for the
/// PD runtime that sends it and the monitor that judges it. MR0 is the channel, MR1 the
/// peer's PD generation the corruption was found against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptionReport {
    /// The reporter's channel id whose shared state is corrupt.
    pub channel: u64,
    /// The peer's generation as the reporter knew it; `None` when the message does not say
    /// (the monitor declines such a report). A word beyond `u32` reads as `u32::MAX`, a
    /// generation no PD ever has.
    pub accused: Option<u32>,
}

impl CorruptionReport {
    /// The message: its tag and its words (all in registers).
    pub fn to_message(&self) -> (crate::MessageInfo, [u64; crate::MSG_REGISTERS_IN_CPU]) {
        let (len, g) = match self.accused {
            Some(g) => (2, u64::from(g)),
            None => (1, 0),
        };
        (
            crate::MessageInfo::new(REPORT_CORRUPTION, 0, 0, len),
            [self.channel, g, 0, 0],
        )
    }

    /// Reads a report as its receiver holds it: its tag and `mr(i)` reading word `i`. `None`
    /// if the label is not `REPORT_CORRUPTION`. Reads no word beyond the message's length:
    /// an empty report names channel `u64::MAX`, which no PD has.
    pub fn from_message(
        info: crate::MessageInfo,
        mut mr: impl FnMut(usize) -> u64,
    ) -> Option<CorruptionReport> {
        if info.label() != REPORT_CORRUPTION {
            return None;
        }
        let len = info.length();
        Some(CorruptionReport {
            channel: if len >= 1 { mr(0) } else { u64::MAX },
            accused: (len >= 2).then(|| u32::try_from(mr(1)).unwrap_or(u32::MAX)),
        })
    }
}

/// `x1` at a PD's entry: bit 0 set when the monitor asked for this incarnation to start
/// afresh (a VM's start or reboot from the control plane): it must not take up state a
/// restart keeps (a VMM's device state region) but begin as at boot. 0 at boot and after a
/// failure's restart.
pub const START_FRESH: u64 = 1;

/// Label of a PD's own message on its fault endpoint (a Call, no words): it found the state
/// it keeps across its restarts invalid and started afresh instead (a VMM whose device state
/// region failed validation rebooted its guest). A claim about itself, which the monitor
/// counts and logs; it changes nothing else. Answered with label 0.
pub const REPORT_RECOVERY_FAILED: u64 = 0x103;

/// Label of a PD's answer to the monitor's heartbeat ping: a `Send` (no reply) on its fault
/// endpoint, which the monitor receives with the PD's fault badge.
pub const HEARTBEAT: u64 = 0x101;

/// Label of a control PD's request to the monitor (a Call on its fault endpoint; the bytes
/// as `axolotl_monitor_core::control::ipc` lays them out). Answered only if the SDF grants
/// the PD the request (`control`, docs/control.md).
pub const CONTROL: u64 = 0x102;

/// Badge of the monitor's notification caps to watched PDs: the heartbeat ping. Both event
/// kind bits together never come from an endpoint cap (PPC badges set only bit 63, fault
/// badges only bit 62), so the PD runtime reads a notification word with both set as a ping
/// (plus whatever channel bits arrived with it).
pub const HEARTBEAT_PING: u64 = BADGE_PPC | BADGE_FAULT;

/// The EL1 physical timer's interrupt (PPI 30, the architecture's recommended number, QEMU
/// virt's): user level's time source, claimed with `IrqControlGet` and granted to a thread
/// with `TcbSetTimerAccess` (`docs/abi.md`, "Timer").
pub const PHYS_TIMER_PPI: u32 = 30;

/// The kernel timeout's interrupt number: `IrqControlGet` of it gives a handler whose
/// notification the kernel signals when the deadline set with `IrqHandlerSetDeadline` comes.
/// The kernel's own timer (the EL2 physical timer, PPI 26 on every board) serves it beside the
/// tick, so a thread that needs wake-ups (the root task, for the monitor's clock) leaves the
/// EL1 physical timer free for a protection domain (`docs/abi.md`, "Timer").
pub const TIMEOUT_IRQ: u32 = 26;

/// Register order of TCB ReadRegisters/WriteRegisters (seL4's `seL4_UserContext` on AArch64):
/// pc, sp, spsr, x0..=x30, tpidr_el0.
pub const USER_CONTEXT_WORDS: usize = 35;

/// The names of a saved context's words, in TcbReadRegisters' order (seL4's
/// `seL4_UserContext`): the one table the root service, the control protocol and the CLI use.
pub const USER_CONTEXT_NAMES: [&str; USER_CONTEXT_WORDS] = [
    "pc",
    "sp",
    "spsr",
    "x0",
    "x1",
    "x2",
    "x3",
    "x4",
    "x5",
    "x6",
    "x7",
    "x8",
    "x9",
    "x10",
    "x11",
    "x12",
    "x13",
    "x14",
    "x15",
    "x16",
    "x17",
    "x18",
    "x19",
    "x20",
    "x21",
    "x22",
    "x23",
    "x24",
    "x25",
    "x26",
    "x27",
    "x28",
    "x29",
    "x30",
    "tpidr_el0",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageInfo;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn corruption_reports_round_trip(channel: u64, accused: Option<u32>) {
            let r = CorruptionReport { channel, accused };
            let (info, w) = r.to_message();
            prop_assert_eq!(CorruptionReport::from_message(info, |i| w[i]), Some(r));
        }

        /// Whatever a PD sends under the label decodes, and no word past its length is read.
        #[test]
        fn any_report_decodes_within_its_length(len in 0u64..8, w: [u64; 2], label in 0xffu64..0x102) {
            let info = MessageInfo::new(label, 0, 0, len);
            let mut read = 0;
            let r = CorruptionReport::from_message(info, |i| {
                read = read.max(i as u64 + 1);
                w[i]
            });
            prop_assert!(read <= len);
            prop_assert_eq!(r.is_some(), label == REPORT_CORRUPTION);
            if let Some(r) = r {
                prop_assert_eq!(r.channel, if len == 0 { u64::MAX } else { w[0] });
                let g = u32::try_from(w[1]).unwrap_or(u32::MAX);
                prop_assert_eq!(r.accused, (len >= 2).then_some(g));
            }
        }
    }
}
