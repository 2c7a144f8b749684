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

/// Label of a PD's own message on its fault endpoint (a Call; MR0 = its channel id): the
/// shared state of that channel is corrupt, so the monitor should restart the peer. Outside
/// the fault labels' range.
pub const REPORT_CORRUPTION: u64 = 0x100;

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

/// Register order of TCB ReadRegisters/WriteRegisters (seL4's `seL4_UserContext` on AArch64):
/// pc, sp, spsr, x0..=x30, tpidr_el0.
pub const USER_CONTEXT_WORDS: usize = 35;
