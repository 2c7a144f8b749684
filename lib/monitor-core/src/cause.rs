//! Why a PD stopped: decoded from the kernel's fault message, or raised by the monitor itself
//! (watchdog, a peer's corruption report, a clean exit).

use core::fmt;

use axolotl_abi::syndrome::Esr;
use axolotl_abi::{Fault, MessageInfo};

/// The access that took a VM fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Access {
    Read,
    Write,
    /// Instruction fetch (prefetch abort).
    Execute,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "exec",
        })
    }
}

/// Why a PD stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cause {
    /// A translation or permission fault (`FaultLabel::VmFault`).
    VmFault {
        ip: u64,
        addr: u64,
        access: Access,
        /// The full syndrome (ESR) the kernel sent.
        esr: u64,
    },
    /// A user exception of class 0 ("unknown reason"): what `udf`, and so the PD runtime's
    /// panic path (`axolotl_pd::report_panic`, `udf #0x50d`), raises. AArch64 does not put
    /// the `udf` immediate in the syndrome (EC 0 has ISS 0), so a genuine undefined
    /// instruction is reported the same way: both are a PD that cannot go on.
    Panic { ip: u64 },
    /// Any other user exception (`FaultLabel::UserException`, class `ec` != 0): alignment,
    /// illegal state, a trapped system register, `brk`, an FP exception, ...
    UserException { ip: u64, ec: u64, iss: u64 },
    /// A syscall number the kernel does not know (`FaultLabel::UnknownSyscall`).
    UnknownSyscall { ip: u64, number: u64 },
    /// A capability lookup failed on a send, call or receive (`FaultLabel::CapFault`).
    CapFault { ip: u64, cptr: u64 },
    /// A vCPU fault (`FaultLabel::VcpuFault`) reached the monitor: `hsr` is its first word.
    VcpuFault { hsr: u64 },
    /// A fault message with a label this crate does not know, or fewer words than its label
    /// requires.
    Malformed { label: u64, len: usize },
    /// The watchdog: no heartbeat within `heartbeat_ms`.
    Hang { heartbeat_ms: u64 },
    /// PD `reporter` found the shared state of a connection with this PD corrupt
    /// (`axolotl_ring::Corruption`) and asked for it to be restarted.
    Corruption { reporter: u8 },
    /// The PD reported `peer` corrupt again although the monitor had just restarted `peer`
    /// from its pristine image on this PD's word (`report`): the reporter is the suspect.
    FalseReport { peer: u8 },
    /// The PD reported `peer` corrupt, and `peer` cannot be restarted: this PD is restarted
    /// instead, to reset their connection (`report`).
    ConnectionReset { peer: u8 },
    /// Code scrubbing found the PD's code page at `at` (its virtual address) no longer as
    /// its image has it (`scrub`): changed below the PD, which maps it read-only.
    CodeCorrupt { at: u64 },
    /// The PD stopped on its own, without a fault. Not a failure: only `restart="always"`
    /// restarts it.
    Exited,
}

impl Cause {
    /// Decodes a fault message, its tag and `mr(i)` reading its word `i`, through the one
    /// fault layout ([`Fault::from_message`]). Never fails: an unknown label or a short
    /// message is [`Cause::Malformed`].
    pub fn from_message(info: MessageInfo, mr: impl FnMut(usize) -> u64) -> Cause {
        match Fault::from_message(info, mr) {
            Some(f) => Cause::from(f),
            None => Cause::Malformed {
                label: info.label(),
                len: info.length() as usize,
            },
        }
    }
}

impl From<Fault> for Cause {
    /// What a fault the kernel sent says happened.
    fn from(fault: Fault) -> Cause {
        match fault {
            Fault::VmFault {
                ip,
                addr,
                prefetch,
                fsr,
                ..
            } => {
                let access = if prefetch {
                    Access::Execute
                } else if Esr(fsr).wnr() {
                    Access::Write
                } else {
                    Access::Read
                };
                Cause::VmFault {
                    ip,
                    addr,
                    access,
                    esr: fsr,
                }
            }
            Fault::UserException { ip, ec: 0, .. } => Cause::Panic { ip },
            Fault::UserException { ip, ec, iss, .. } => Cause::UserException { ip, ec, iss },
            Fault::UnknownSyscall { ip, syscall, .. } => Cause::UnknownSyscall {
                ip,
                number: syscall,
            },
            Fault::CapFault { ip, cptr, .. } => Cause::CapFault { ip, cptr },
            // Guest events belong to a VMM; reaching the monitor, they are reported as vCPU
            // faults with their first word.
            Fault::VcpuFault { esr: hsr, .. }
            | Fault::VgicMaintenance { lr: hsr }
            | Fault::VppiEvent { irq: hsr } => Cause::VcpuFault { hsr },
        }
    }
}

impl Cause {
    /// Everything but [`Cause::Exited`]: what `restart="on-failure"` restarts after.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Cause::Exited)
    }

    /// Whether the PD may still be running: the monitor concluded this itself (watchdog, a
    /// report), no fault stopped the PD. Holding such a PD means stopping it.
    pub fn leaves_running(&self) -> bool {
        matches!(
            self,
            Cause::Hang { .. }
                | Cause::Corruption { .. }
                | Cause::FalseReport { .. }
                | Cause::ConnectionReset { .. }
                | Cause::CodeCorrupt { .. }
        )
    }
}

/// One short line, no trailing newline: `vm-fault write at 0x1000 ip 0x200040`.
impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cause::VmFault {
                ip, addr, access, ..
            } => write!(f, "vm-fault {access} at {addr:#x} ip {ip:#x}"),
            Cause::Panic { ip } => write!(f, "panic ip {ip:#x}"),
            Cause::UserException { ip, ec, iss } => {
                write!(f, "user-exception ec {ec:#x} iss {iss:#x} ip {ip:#x}")
            }
            Cause::UnknownSyscall { ip, number } => {
                // seL4 syscall numbers are negative.
                write!(f, "unknown-syscall {} ip {ip:#x}", number as i64)
            }
            Cause::CapFault { ip, cptr } => write!(f, "cap-fault cptr {cptr:#x} ip {ip:#x}"),
            Cause::VcpuFault { hsr } => write!(f, "vcpu-fault hsr {hsr:#x}"),
            Cause::Malformed { label, len } => {
                write!(f, "malformed fault label {label} ({len} words)")
            }
            Cause::Hang { heartbeat_ms } => write!(f, "hang (no heartbeat in {heartbeat_ms} ms)"),
            Cause::Corruption { reporter } => write!(f, "corruption reported by pd {reporter}"),
            Cause::FalseReport { peer } => {
                write!(f, "false corruption report against pd {peer}")
            }
            Cause::ConnectionReset { peer } => write!(
                f,
                "reset of its connection with pd {peer}, which cannot be restarted"
            ),
            Cause::CodeCorrupt { at } => write!(f, "code corrupt in page {at:#x}"),
            Cause::Exited => f.write_str("exited"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;
    use axolotl_abi::FaultLabel;

    /// ESR bit 6, WnR: the data abort was a write.
    const ESR_WNR: u64 = 1 << 6;
    const VM: u64 = FaultLabel::VmFault as u64;
    const UE: u64 = FaultLabel::UserException as u64;

    /// The cause a fault message of `label` and words `w` gives.
    fn cause(label: u64, w: &[u64]) -> Cause {
        Cause::from_message(MessageInfo::new(label, 0, 0, w.len() as u64), |i| w[i])
    }

    #[test]
    fn vm_fault_read_write_exec() {
        // DABT_LOWER (0x24), WnR set.
        let esr_w = (0x24 << 26) | ESR_WNR | 0x7;
        let c = cause(VM, &[0x20_0040, 0x1000, 0, esr_w]);
        assert_eq!(
            c,
            Cause::VmFault {
                ip: 0x20_0040,
                addr: 0x1000,
                access: Access::Write,
                esr: esr_w
            }
        );
        assert_eq!(c.to_string(), "vm-fault write at 0x1000 ip 0x200040");
        let r = cause(VM, &[1, 2, 0, 0x24 << 26]);
        assert_eq!(r.to_string(), "vm-fault read at 0x2 ip 0x1");
        // An instruction abort is an exec fault whatever bit 6 says.
        let x = cause(VM, &[0x40, 0x40, 1, (0x20 << 26) | ESR_WNR]);
        assert_eq!(x.to_string(), "vm-fault exec at 0x40 ip 0x40");
    }

    #[test]
    fn udf_is_panic_other_classes_are_user_exceptions() {
        let p = cause(UE, &[0x20_1000, 0xffff_f000, 0, 0, 0]);
        assert_eq!(p, Cause::Panic { ip: 0x20_1000 });
        assert_eq!(p.to_string(), "panic ip 0x201000");
        let brk = cause(UE, &[0x10, 0x20, 0, 0x3c, 0x50d]);
        assert_eq!(
            brk,
            Cause::UserException {
                ip: 0x10,
                ec: 0x3c,
                iss: 0x50d
            }
        );
        assert_eq!(brk.to_string(), "user-exception ec 0x3c iss 0x50d ip 0x10");
    }

    #[test]
    fn unknown_syscall_and_cap_fault() {
        let mut w = [0u64; 13];
        w[8] = 0x4000;
        w[12] = (-20i64) as u64;
        let s = cause(FaultLabel::UnknownSyscall as u64, &w);
        assert_eq!(
            s,
            Cause::UnknownSyscall {
                ip: 0x4000,
                number: (-20i64) as u64
            }
        );
        assert_eq!(s.to_string(), "unknown-syscall -20 ip 0x4000");
        let c = cause(FaultLabel::CapFault as u64, &[0x88, 77, 0, 1]);
        assert_eq!(c, Cause::CapFault { ip: 0x88, cptr: 77 });
        assert_eq!(c.to_string(), "cap-fault cptr 0x4d ip 0x88");
        let v = cause(FaultLabel::VcpuFault as u64, &[0x5a, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(v.to_string(), "vcpu-fault hsr 0x5a");
        // A vCPU fault is eight words (the kernel never sends fewer): a shorter one is forged.
        assert_eq!(
            cause(FaultLabel::VcpuFault as u64, &[0x5a]),
            Cause::Malformed {
                label: FaultLabel::VcpuFault as u64,
                len: 1
            }
        );
        let p = cause(FaultLabel::VppiEvent as u64, &[27]);
        assert_eq!(p.to_string(), "vcpu-fault hsr 0x1b");
    }

    #[test]
    fn unknown_labels_and_short_messages_are_malformed() {
        assert_eq!(
            cause(4, &[1, 2, 3, 4]),
            Cause::Malformed { label: 4, len: 4 }
        );
        assert_eq!(
            cause(VM, &[1, 2, 3]),
            Cause::Malformed { label: VM, len: 3 }
        );
        assert_eq!(
            cause(UE, &[]).to_string(),
            "malformed fault label 3 (0 words)"
        );
        // Extra words are ignored.
        assert_eq!(cause(UE, &[1, 2, 3, 0, 0, 9]), Cause::Panic { ip: 1 });
    }

    #[test]
    fn monitor_causes() {
        assert_eq!(
            Cause::Hang { heartbeat_ms: 100 }.to_string(),
            "hang (no heartbeat in 100 ms)"
        );
        assert_eq!(
            Cause::Corruption { reporter: 3 }.to_string(),
            "corruption reported by pd 3"
        );
        assert_eq!(Cause::Exited.to_string(), "exited");
        assert!(!Cause::Exited.is_failure());
        assert!(Cause::Hang { heartbeat_ms: 1 }.is_failure());
        assert!(Cause::Panic { ip: 0 }.is_failure());
    }
}
