//! Fault messages and the replies that resume a faulted thread: the one definition of their
//! wire layout (seL4's `setMRs_fault` and `seL4_getFault`, AArch64 numbering).
//!
//! A faulting thread with a fault endpoint blocks as in a Call; its handler receives a message
//! whose label is a [`FaultLabel`] and whose words are [`Fault::to_words`]. The handler's
//! reply (label 0) is a [`Resume`]; a reply of length 0, or with a non-zero label, resumes the
//! thread as it stands (it retries the faulting instruction).
//!
//! Message words, by label:
//!
//! | label | words |
//! |---|---|
//! | CapFault (1) | ip, cptr, in_receive_phase, lookup failure type, its details (seL4: bits_left; depth mismatch: bits_found; guard mismatch: guard_found, guard_size) |
//! | UnknownSyscall (2) | x0..=x7, ip, sp, lr (x30), spsr, syscall number |
//! | UserException (3) | ip, sp, spsr, exception class, ISS |
//! | VmFault (5) | ip, address, prefetch (1 = instruction fetch), fsr (ESR); a guest's: + the stored value |
//! | VgicMaintenance (6) | list register index |
//! | VcpuFault (7) | ESR, ip, spsr, x0, x1, x2, x3, `x[Rt]` of a trapped system register access (else 0) |
//! | VPPIEvent (8) | irq |
//!
//! For unknown-syscall and cap faults `ip` is the `svc` itself; for a guest's exits it is
//! the instruction that exited (for HVC too, whose hardware return address is past it). A
//! guest's VM fault address is the IPA (HPFAR page, FAR offset); its fifth word is the value
//! a store with a valid syndrome would have written (`x[SRT]`, else 0), so a VMM emulates an
//! MMIO write without reading registers.
//!
//! Reply words, by the fault they answer:
//!
//! | fault | reply words |
//! |---|---|
//! | a guest's VmFault or VcpuFault | flags ([`vcpu::resume`](crate::vcpu::resume)), register n (31: none), value |
//! | UserException | ip, sp, spsr (the first `length` of them are written) |
//! | UnknownSyscall | x0..=x7, ip, sp, lr, spsr (the first `length` of them are written) |
//! | anything else | ignored: the thread retries |
//!
//! A written spsr is sanitised ([`pstate::sanitise_spsr`](crate::syndrome::pstate::sanitise_spsr)).

use crate::vcpu::resume::{ADVANCE, INJECT_ABORT, WAIT, WRITE_REG};

/// Labels of fault messages sent to a thread's fault endpoint (seL4 AArch64 numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum FaultLabel {
    CapFault = 1,
    UnknownSyscall = 2,
    UserException = 3,
    VmFault = 5,
    VgicMaintenance = 6,
    VcpuFault = 7,
    VppiEvent = 8,
}

impl FaultLabel {
    #[inline]
    pub fn from_label(l: u64) -> Option<Self> {
        Some(match l {
            1 => FaultLabel::CapFault,
            2 => FaultLabel::UnknownSyscall,
            3 => FaultLabel::UserException,
            5 => FaultLabel::VmFault,
            6 => FaultLabel::VgicMaintenance,
            7 => FaultLabel::VcpuFault,
            8 => FaultLabel::VppiEvent,
            _ => return None,
        })
    }
}

// Message lengths (the table above), for handlers and tests that check a length.

/// A native thread's VM fault.
pub const VM_FAULT_LENGTH: u64 = 4;
/// A guest's VM fault (with the stored value).
pub const GUEST_VM_FAULT_LENGTH: u64 = 5;
pub const VCPU_FAULT_LENGTH: u64 = 8;
pub const VGIC_MAINTENANCE_LENGTH: u64 = 1;
pub const VPPI_EVENT_LENGTH: u64 = 1;
pub const USER_EXCEPTION_LENGTH: u64 = 5;
pub const UNKNOWN_SYSCALL_LENGTH: u64 = 13;
/// The shortest cap fault (an invalid root: the lookup failure type alone).
pub const CAP_FAULT_LENGTH: u64 = 4;

/// The longest fault message, in words (an unknown syscall's).
pub const FAULT_MAX_WORDS: usize = 13;
/// The longest reply to a fault that the kernel reads, in words (an unknown syscall's).
pub const RESUME_MAX_WORDS: usize = 12;

/// Why a capability lookup failed (seL4's `seL4_LookupFailureType` and its words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFailure {
    InvalidRoot,
    MissingCapability {
        bits_left: u64,
    },
    DepthMismatch {
        bits_left: u64,
        bits_found: u64,
    },
    GuardMismatch {
        bits_left: u64,
        guard_found: u64,
        guard_size: u64,
    },
}

impl LookupFailure {
    /// The longest encoding, in words.
    pub const MAX_WORDS: usize = 4;

    /// Writes `[type, details..]`; returns how many words.
    #[inline]
    pub fn to_words(&self, out: &mut [u64]) -> usize {
        match *self {
            LookupFailure::InvalidRoot => {
                out[0] = 1;
                1
            }
            LookupFailure::MissingCapability { bits_left } => {
                out[..2].copy_from_slice(&[2, bits_left]);
                2
            }
            LookupFailure::DepthMismatch {
                bits_left,
                bits_found,
            } => {
                out[..3].copy_from_slice(&[3, bits_left, bits_found]);
                3
            }
            LookupFailure::GuardMismatch {
                bits_left,
                guard_found,
                guard_size,
            } => {
                out[..4].copy_from_slice(&[4, bits_left, guard_found, guard_size]);
                4
            }
        }
    }

    /// Reads `[type, details..]`; `None` for an unknown type or missing details. Extra words
    /// are ignored.
    #[inline]
    pub fn from_words(w: &[u64]) -> Option<LookupFailure> {
        Some(match *w.first()? {
            1 => LookupFailure::InvalidRoot,
            2 => LookupFailure::MissingCapability {
                bits_left: *w.get(1)?,
            },
            3 => LookupFailure::DepthMismatch {
                bits_left: *w.get(1)?,
                bits_found: *w.get(2)?,
            },
            4 => LookupFailure::GuardMismatch {
                bits_left: *w.get(1)?,
                guard_found: *w.get(2)?,
                guard_size: *w.get(3)?,
            },
            _ => return None,
        })
    }
}

/// A fault message: what the kernel tells a thread's fault handler.
///
/// Tagged with its label, so no tag is 0 and an `Option<Fault>` is `None` by a zero tag:
/// the kernel keeps one per thread and tests it on every reply, which a zero test does in
/// one instruction less than a compare with the default niche (docs/benchmarks.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// A capability lookup failed on a send, call or receive.
    CapFault {
        ip: u64,
        cptr: u64,
        in_receive_phase: bool,
        lookup: LookupFailure,
    } = FaultLabel::CapFault as u8,
    /// A syscall number the kernel does not know.
    UnknownSyscall {
        x: [u64; 8],
        ip: u64,
        sp: u64,
        lr: u64,
        spsr: u64,
        syscall: u64,
    } = FaultLabel::UnknownSyscall as u8,
    /// Any other synchronous exception of a native thread: undefined instruction,
    /// alignment, a trapped system register, `brk`, ...
    UserException {
        ip: u64,
        sp: u64,
        spsr: u64,
        /// ESR.EC.
        ec: u64,
        /// ESR.ISS.
        iss: u64,
    } = FaultLabel::UserException as u8,
    /// A translation or permission fault; for a guest, a stage-2 abort.
    VmFault {
        ip: u64,
        /// The faulting address: a native thread's virtual address, a guest's IPA.
        addr: u64,
        /// An instruction fetch.
        prefetch: bool,
        /// The syndrome (ESR).
        fsr: u64,
        /// Guests only: the value a store with a valid syndrome would have written, else 0.
        stored: Option<u64>,
    } = FaultLabel::VmFault as u8,
    /// A guest completed (EOI) the interrupt in this list register (the kernel emptied it).
    VgicMaintenance { lr: u64 } = FaultLabel::VgicMaintenance as u8,
    /// Every other exit of a guest: HVC, SMC, WFI/WFE, a trapped system register, SError...
    VcpuFault {
        esr: u64,
        ip: u64,
        spsr: u64,
        /// x0..=x3.
        x: [u64; 4],
        /// `x[Rt]` of a trapped system register access (ESR EC 0x18), else 0.
        rt_value: u64,
    } = FaultLabel::VcpuFault as u8,
    /// A private interrupt the guest owns (its virtual timer) fired; it stays masked until
    /// `VcpuAckVppi`.
    VppiEvent { irq: u64 } = FaultLabel::VppiEvent as u8,
}

impl Fault {
    #[inline]
    pub const fn label(&self) -> FaultLabel {
        match self {
            Fault::CapFault { .. } => FaultLabel::CapFault,
            Fault::UnknownSyscall { .. } => FaultLabel::UnknownSyscall,
            Fault::UserException { .. } => FaultLabel::UserException,
            Fault::VmFault { .. } => FaultLabel::VmFault,
            Fault::VgicMaintenance { .. } => FaultLabel::VgicMaintenance,
            Fault::VcpuFault { .. } => FaultLabel::VcpuFault,
            Fault::VppiEvent { .. } => FaultLabel::VppiEvent,
        }
    }

    /// The faulting instruction, for the faults that have one.
    #[inline]
    pub const fn ip(&self) -> Option<u64> {
        match *self {
            Fault::CapFault { ip, .. }
            | Fault::UnknownSyscall { ip, .. }
            | Fault::UserException { ip, .. }
            | Fault::VmFault { ip, .. }
            | Fault::VcpuFault { ip, .. } => Some(ip),
            Fault::VgicMaintenance { .. } | Fault::VppiEvent { .. } => None,
        }
    }

    /// The message words (the label is [`Fault::label`]); returns how many.
    #[inline]
    pub fn to_words(&self, out: &mut [u64; FAULT_MAX_WORDS]) -> usize {
        match *self {
            Fault::CapFault {
                ip,
                cptr,
                in_receive_phase,
                lookup,
            } => {
                out[..3].copy_from_slice(&[ip, cptr, in_receive_phase as u64]);
                3 + lookup.to_words(&mut out[3..])
            }
            Fault::UnknownSyscall {
                x,
                ip,
                sp,
                lr,
                spsr,
                syscall,
            } => {
                out[..8].copy_from_slice(&x);
                out[8..].copy_from_slice(&[ip, sp, lr, spsr, syscall]);
                13
            }
            Fault::UserException {
                ip,
                sp,
                spsr,
                ec,
                iss,
            } => {
                out[..5].copy_from_slice(&[ip, sp, spsr, ec, iss]);
                5
            }
            Fault::VmFault {
                ip,
                addr,
                prefetch,
                fsr,
                stored,
            } => {
                out[..4].copy_from_slice(&[ip, addr, prefetch as u64, fsr]);
                match stored {
                    Some(v) => {
                        out[4] = v;
                        5
                    }
                    None => 4,
                }
            }
            Fault::VgicMaintenance { lr } => {
                out[0] = lr;
                1
            }
            Fault::VcpuFault {
                esr,
                ip,
                spsr,
                x,
                rt_value,
            } => {
                out[..3].copy_from_slice(&[esr, ip, spsr]);
                out[3..7].copy_from_slice(&x);
                out[7] = rt_value;
                8
            }
            Fault::VppiEvent { irq } => {
                out[0] = irq;
                1
            }
        }
    }

    /// Decodes a fault message as its receiver holds it: its tag, and `mr(i)` reading its
    /// word `i` (from the registers or the IPC buffer, wherever the receiver's library keeps
    /// them). Reads no word beyond the message's length nor beyond [`FAULT_MAX_WORDS`]
    /// (longer messages decode as [`Fault::from_words`] would: extra words are ignored).
    /// The one gathering of a fault message's words, for every handler.
    #[inline]
    pub fn from_message(
        info: crate::MessageInfo,
        mut mr: impl FnMut(usize) -> u64,
    ) -> Option<Fault> {
        let mut words = [0; FAULT_MAX_WORDS];
        let n = (info.length() as usize).min(FAULT_MAX_WORDS);
        for (i, w) in words[..n].iter_mut().enumerate() {
            *w = mr(i);
        }
        Fault::from_words(info.label(), &words[..n])
    }

    /// Decodes a fault message: `None` for a label that is not a fault's, or fewer words
    /// than its layout (a cap fault's lookup failure type unknown, or its details missing).
    /// Words beyond the layout are ignored, except that a VM fault with a fifth word is a
    /// guest's (it carries the stored value).
    #[inline]
    pub fn from_words(label: u64, w: &[u64]) -> Option<Fault> {
        Some(match FaultLabel::from_label(label)? {
            FaultLabel::CapFault => {
                let &[ip, cptr, in_receive_phase, ..] = w else {
                    return None;
                };
                Fault::CapFault {
                    ip,
                    cptr,
                    in_receive_phase: in_receive_phase != 0,
                    lookup: LookupFailure::from_words(&w[3..])?,
                }
            }
            FaultLabel::UnknownSyscall => {
                let &[
                    x0,
                    x1,
                    x2,
                    x3,
                    x4,
                    x5,
                    x6,
                    x7,
                    ip,
                    sp,
                    lr,
                    spsr,
                    syscall,
                    ..,
                ] = w
                else {
                    return None;
                };
                Fault::UnknownSyscall {
                    x: [x0, x1, x2, x3, x4, x5, x6, x7],
                    ip,
                    sp,
                    lr,
                    spsr,
                    syscall,
                }
            }
            FaultLabel::UserException => {
                let &[ip, sp, spsr, ec, iss, ..] = w else {
                    return None;
                };
                Fault::UserException {
                    ip,
                    sp,
                    spsr,
                    ec,
                    iss,
                }
            }
            FaultLabel::VmFault => {
                let &[ip, addr, prefetch, fsr, ..] = w else {
                    return None;
                };
                Fault::VmFault {
                    ip,
                    addr,
                    prefetch: prefetch != 0,
                    fsr,
                    stored: w.get(4).copied(),
                }
            }
            FaultLabel::VgicMaintenance => Fault::VgicMaintenance { lr: *w.first()? },
            FaultLabel::VcpuFault => {
                let &[esr, ip, spsr, x0, x1, x2, x3, rt_value, ..] = w else {
                    return None;
                };
                Fault::VcpuFault {
                    esr,
                    ip,
                    spsr,
                    x: [x0, x1, x2, x3],
                    rt_value,
                }
            }
            FaultLabel::VppiEvent => Fault::VppiEvent { irq: *w.first()? },
        })
    }
}

/// How a faulted thread goes on: the reply (label 0) to its fault message. What the words
/// mean depends on the fault answered and on whether the thread is a guest
/// ([`Resume::from_words`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Resume as the thread stands, retrying the faulting instruction (after mapping memory,
    /// say): a reply of length 0.
    Retry,
    /// A guest's VM fault or VCPU fault: skip the instruction that exited (by ESR.IL: 4
    /// bytes, or 2) and/or write `x[n] = value` first (n < 31); with `wait`, the vCPU then
    /// waits for an interrupt ([`WAIT`](crate::vcpu::resume::WAIT)).
    Guest {
        advance: bool,
        write: Option<(u8, u64)>,
        wait: bool,
    },
    /// A guest's VM fault: the access fails in the guest, whose EL1 takes a synchronous
    /// external abort (docs/abi.md, "Resuming").
    InjectAbort,
    /// A user exception or an unknown syscall: new values of the first `len` registers of
    /// the reply layout (user exception: ip, sp, spsr; unknown syscall: x0..=x7, ip, sp, lr,
    /// spsr).
    Registers {
        len: u8,
        regs: [u64; RESUME_MAX_WORDS],
    },
}

impl Resume {
    /// A guest's resumption: skip the instruction, and write `x[reg] = value` unless `reg` is
    /// 31 (XZR: a load into it writes nothing).
    #[inline]
    pub const fn advance_and_write(reg: u8, value: u64) -> Resume {
        Resume::Guest {
            advance: true,
            write: if reg < 31 { Some((reg, value)) } else { None },
            wait: false,
        }
    }

    /// The reply words; returns how many (the reply's length).
    #[inline]
    pub fn to_words(&self, out: &mut [u64; RESUME_MAX_WORDS]) -> usize {
        match *self {
            Resume::Retry => 0,
            Resume::Guest {
                advance,
                write,
                wait,
            } => {
                let flags = if advance { ADVANCE } else { 0 } | if wait { WAIT } else { 0 };
                let (flags, reg, value) = match write {
                    Some((r, v)) => (flags | WRITE_REG, r as u64, v),
                    None => (flags, 31, 0),
                };
                out[..3].copy_from_slice(&[flags, reg, value]);
                3
            }
            Resume::InjectAbort => {
                out[..3].copy_from_slice(&[INJECT_ABORT, 31, 0]);
                3
            }
            Resume::Registers { len, regs } => {
                let n = (len as usize).min(RESUME_MAX_WORDS);
                out[..n].copy_from_slice(&regs[..n]);
                n
            }
        }
    }

    /// How many reply words the kernel reads for a fault with `label` of a thread that is a
    /// guest (bound to a VCPU) or not: longer replies are cut to it.
    #[inline]
    pub const fn max_words(label: FaultLabel, guest: bool) -> usize {
        match (label, guest) {
            (FaultLabel::VmFault | FaultLabel::VcpuFault, true) => 3,
            (FaultLabel::UserException, false) => 3,
            (FaultLabel::UnknownSyscall, false) => RESUME_MAX_WORDS,
            _ => 0,
        }
    }

    /// Decodes the reply words (label 0) to a fault with `label` of a thread that is a guest
    /// or not. Never fails: what a reply cannot mean is ignored (a write without its register
    /// and value, a register beyond x30, an abort injected into a VCPU fault, words beyond
    /// [`Resume::max_words`]).
    #[inline]
    pub fn from_words(label: FaultLabel, guest: bool, w: &[u64]) -> Resume {
        let w = &w[..w.len().min(Resume::max_words(label, guest))];
        let Some(&flags) = w.first() else {
            return Resume::Retry;
        };
        if guest {
            if flags & INJECT_ABORT != 0 && label == FaultLabel::VmFault {
                return Resume::InjectAbort;
            }
            let write = match *w {
                [_, r, v, ..] if flags & WRITE_REG != 0 && r < 31 => Some((r as u8, v)),
                _ => None,
            };
            return Resume::Guest {
                advance: flags & ADVANCE != 0,
                write,
                wait: flags & WAIT != 0,
            };
        }
        let mut regs = [0; RESUME_MAX_WORDS];
        regs[..w.len()].copy_from_slice(w);
        Resume::Registers {
            len: w.len() as u8,
            regs,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_fault_is_a_zero_tag() {
        // The kernel's reply path tests `Option<Fault>` on every reply: a zero tag is one
        // instruction (`cbz`) after the load, any other niche a compare more.
        let none: Option<Fault> = None;
        // SAFETY: the tag is the first byte of a `#[repr(u8)]` enum, and `None` is a value
        // of its niche, so that byte is initialised.
        let tag = unsafe { *(&raw const none).cast::<u8>() };
        assert_eq!(tag, 0);
        assert_eq!(size_of::<Option<Fault>>(), size_of::<Fault>());
        let f = Fault::VppiEvent { irq: 27 };
        // SAFETY: as above, a value's tag byte.
        let tag = unsafe { *(&raw const f).cast::<u8>() };
        assert_eq!(tag as u64, f.label() as u64);
    }

    #[test]
    fn fault_labels_are_sel4s_aarch64_numbers() {
        use FaultLabel::*;
        for (l, f) in [
            (1, CapFault),
            (2, UnknownSyscall),
            (3, UserException),
            (5, VmFault),
            (6, VgicMaintenance),
            (7, VcpuFault),
            (8, VppiEvent),
        ] {
            assert_eq!(FaultLabel::from_label(l), Some(f));
            assert_eq!(f as u64, l);
        }
        assert_eq!(FaultLabel::from_label(4), None);
        assert_eq!(FaultLabel::from_label(9), None);
    }

    fn words(f: &Fault) -> std::vec::Vec<u64> {
        let mut w = [0; FAULT_MAX_WORDS];
        let n = f.to_words(&mut w);
        w[..n].to_vec()
    }

    /// The wire layout, word by word, as docs/abi.md and every handler know it.
    #[test]
    fn layouts_are_sel4s() {
        let us = Fault::UnknownSyscall {
            x: [0, 1, 2, 3, 4, 5, 6, 7],
            ip: 8,
            sp: 9,
            lr: 10,
            spsr: 11,
            syscall: 12,
        };
        assert_eq!(words(&us), (0..13).collect::<std::vec::Vec<u64>>());
        let ue = Fault::UserException {
            ip: 1,
            sp: 2,
            spsr: 3,
            ec: 4,
            iss: 5,
        };
        assert_eq!(words(&ue), [1, 2, 3, 4, 5]);
        let vm = Fault::VmFault {
            ip: 1,
            addr: 2,
            prefetch: true,
            fsr: 4,
            stored: None,
        };
        assert_eq!(words(&vm), [1, 2, 1, 4]);
        let gvm = Fault::VmFault {
            ip: 1,
            addr: 2,
            prefetch: false,
            fsr: 4,
            stored: Some(5),
        };
        assert_eq!(words(&gvm), [1, 2, 0, 4, 5]);
        let cap = Fault::CapFault {
            ip: 1,
            cptr: 2,
            in_receive_phase: true,
            lookup: LookupFailure::GuardMismatch {
                bits_left: 5,
                guard_found: 6,
                guard_size: 7,
            },
        };
        assert_eq!(words(&cap), [1, 2, 1, 4, 5, 6, 7]);
        let cap = Fault::CapFault {
            ip: 1,
            cptr: 2,
            in_receive_phase: false,
            lookup: LookupFailure::DepthMismatch {
                bits_left: 5,
                bits_found: 6,
            },
        };
        assert_eq!(words(&cap), [1, 2, 0, 3, 5, 6]);
        let root = Fault::CapFault {
            ip: 1,
            cptr: 2,
            in_receive_phase: false,
            lookup: LookupFailure::InvalidRoot,
        };
        assert_eq!(words(&root).len() as u64, CAP_FAULT_LENGTH);
        let vcpu = Fault::VcpuFault {
            esr: 1,
            ip: 2,
            spsr: 3,
            x: [4, 5, 6, 7],
            rt_value: 8,
        };
        assert_eq!(words(&vcpu), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(words(&Fault::VgicMaintenance { lr: 3 }), [3]);
        assert_eq!(words(&Fault::VppiEvent { irq: 27 }), [27]);
        assert_eq!(vcpu.label() as u64, 7);
        for (f, len) in [
            (us, UNKNOWN_SYSCALL_LENGTH),
            (ue, USER_EXCEPTION_LENGTH),
            (vm, VM_FAULT_LENGTH),
            (gvm, GUEST_VM_FAULT_LENGTH),
            (vcpu, VCPU_FAULT_LENGTH),
            (Fault::VgicMaintenance { lr: 0 }, VGIC_MAINTENANCE_LENGTH),
            (Fault::VppiEvent { irq: 0 }, VPPI_EVENT_LENGTH),
        ] {
            assert_eq!(words(&f).len() as u64, len, "{f:?}");
        }
        assert_eq!(us.ip(), Some(8));
        assert_eq!(Fault::VppiEvent { irq: 27 }.ip(), None);
    }

    #[test]
    fn short_messages_and_unknown_labels_do_not_decode() {
        assert_eq!(Fault::from_words(4, &[0; 13]), None);
        assert_eq!(
            Fault::from_words(FaultLabel::VmFault as u64, &[1, 2, 3]),
            None
        );
        assert_eq!(
            Fault::from_words(FaultLabel::UnknownSyscall as u64, &[0; 12]),
            None
        );
        assert_eq!(
            Fault::from_words(FaultLabel::VcpuFault as u64, &[0; 7]),
            None
        );
        assert_eq!(Fault::from_words(FaultLabel::VppiEvent as u64, &[]), None);
        // A cap fault needs a known lookup failure type with all its details.
        let cap = FaultLabel::CapFault as u64;
        assert_eq!(Fault::from_words(cap, &[1, 2, 0]), None);
        assert_eq!(Fault::from_words(cap, &[1, 2, 0, 5]), None);
        assert_eq!(Fault::from_words(cap, &[1, 2, 0, 4, 1, 2]), None);
        assert!(Fault::from_words(cap, &[1, 2, 0, 1]).is_some());
        // Extra words are ignored.
        assert_eq!(
            Fault::from_words(FaultLabel::UserException as u64, &[1, 2, 3, 0, 0, 9]),
            Some(Fault::UserException {
                ip: 1,
                sp: 2,
                spsr: 3,
                ec: 0,
                iss: 0
            })
        );
    }

    #[test]
    fn resume_replies() {
        use FaultLabel::*;
        let mut w = [0; RESUME_MAX_WORDS];
        let n = Resume::advance_and_write(5, 0x5a).to_words(&mut w);
        assert_eq!(w[..n], [ADVANCE | WRITE_REG, 5, 0x5a]);
        // XZR: nothing to write.
        let n = Resume::advance_and_write(31, 9).to_words(&mut w);
        assert_eq!(w[..n], [ADVANCE, 31, 0]);
        let n = Resume::InjectAbort.to_words(&mut w);
        assert_eq!(w[..n], [INJECT_ABORT, 31, 0]);
        assert_eq!(Resume::Retry.to_words(&mut w), 0);
        // What the kernel makes of replies.
        assert_eq!(Resume::from_words(VmFault, true, &[]), Resume::Retry);
        assert_eq!(
            Resume::from_words(VcpuFault, true, &[INJECT_ABORT | ADVANCE]),
            Resume::Guest {
                advance: true,
                write: None,
                wait: false
            }
        );
        assert_eq!(
            Resume::from_words(VmFault, true, &[INJECT_ABORT | ADVANCE]),
            Resume::InjectAbort
        );
        // A write needs its register and value, and a register below 31.
        assert_eq!(
            Resume::from_words(VcpuFault, true, &[WRITE_REG, 3]),
            Resume::Guest {
                advance: false,
                write: None,
                wait: false
            }
        );
        assert_eq!(
            Resume::from_words(VcpuFault, true, &[WRITE_REG, 31, 1]),
            Resume::Guest {
                advance: false,
                write: None,
                wait: false
            }
        );
        // Native VM faults and cap faults only retry; guests' events too.
        assert_eq!(
            Resume::from_words(VmFault, false, &[1, 2, 3]),
            Resume::Retry
        );
        assert_eq!(Resume::from_words(CapFault, false, &[1]), Resume::Retry);
        assert_eq!(
            Resume::from_words(VppiEvent, true, &[1, 2, 3]),
            Resume::Retry
        );
        assert_eq!(Resume::from_words(UserException, true, &[1]), Resume::Retry);
        // Registers: at most the layout's.
        let r = Resume::from_words(UserException, false, &[1, 2, 3, 4]);
        let mut regs = [0; RESUME_MAX_WORDS];
        regs[..3].copy_from_slice(&[1, 2, 3]);
        assert_eq!(r, Resume::Registers { len: 3, regs });
        let long = [7; 13];
        let Resume::Registers { len, .. } = Resume::from_words(UnknownSyscall, false, &long) else {
            panic!("registers")
        };
        assert_eq!(len, 12);
    }

    fn lookup() -> impl Strategy<Value = LookupFailure> {
        prop_oneof![
            Just(LookupFailure::InvalidRoot),
            any::<u64>().prop_map(|bits_left| LookupFailure::MissingCapability { bits_left }),
            any::<(u64, u64)>().prop_map(|(bits_left, bits_found)| {
                LookupFailure::DepthMismatch {
                    bits_left,
                    bits_found,
                }
            }),
            any::<(u64, u64, u64)>().prop_map(|(bits_left, guard_found, guard_size)| {
                LookupFailure::GuardMismatch {
                    bits_left,
                    guard_found,
                    guard_size,
                }
            }),
        ]
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            (any::<(u64, u64, bool)>(), lookup()).prop_map(|((ip, cptr, r), lookup)| {
                Fault::CapFault {
                    ip,
                    cptr,
                    in_receive_phase: r,
                    lookup,
                }
            }),
            (any::<[u64; 8]>(), any::<(u64, u64, u64, u64, u64)>()).prop_map(
                |(x, (ip, sp, lr, spsr, syscall))| Fault::UnknownSyscall {
                    x,
                    ip,
                    sp,
                    lr,
                    spsr,
                    syscall
                }
            ),
            any::<(u64, u64, u64, u64, u64)>().prop_map(|(ip, sp, spsr, ec, iss)| {
                Fault::UserException {
                    ip,
                    sp,
                    spsr,
                    ec,
                    iss,
                }
            }),
            any::<(u64, u64, bool, u64, Option<u64>)>().prop_map(
                |(ip, addr, prefetch, fsr, stored)| Fault::VmFault {
                    ip,
                    addr,
                    prefetch,
                    fsr,
                    stored
                }
            ),
            any::<u64>().prop_map(|lr| Fault::VgicMaintenance { lr }),
            (any::<(u64, u64, u64, u64)>(), any::<[u64; 4]>()).prop_map(
                |((esr, ip, spsr, rt_value), x)| Fault::VcpuFault {
                    esr,
                    ip,
                    spsr,
                    x,
                    rt_value
                }
            ),
            any::<u64>().prop_map(|irq| Fault::VppiEvent { irq }),
        ]
    }

    proptest! {
        #[test]
        fn faults_round_trip(f in fault()) {
            let mut w = [0; FAULT_MAX_WORDS];
            let n = f.to_words(&mut w);
            prop_assert_eq!(Fault::from_words(f.label() as u64, &w[..n]), Some(f));
        }

        /// A message is read through `from_message` as through `from_words`, whatever its
        /// stated length (a forged one may claim more words than the buffer holds), and no
        /// word past its length or the longest layout is read.
        #[test]
        fn messages_decode_as_their_words(f in fault(), extra in 0u64..100, cut: bool) {
            let mut w = [0; FAULT_MAX_WORDS];
            let n = f.to_words(&mut w) as u64;
            let len = if cut { n.saturating_sub(extra.min(n)) } else { n + extra };
            let info = crate::MessageInfo::new(f.label() as u64, 0, 0, len);
            let mut read = 0;
            let got = Fault::from_message(info, |i| {
                read = read.max(i + 1);
                w.get(i).copied().unwrap_or(0)
            });
            prop_assert!(read as u64 <= len.min(FAULT_MAX_WORDS as u64));
            let len = (len as usize).min(FAULT_MAX_WORDS);
            prop_assert_eq!(got, Fault::from_words(f.label() as u64, &w[..len]));
            if extra == 0 {
                prop_assert_eq!(got, Some(f));
            }
        }

        /// Whatever arrives (a forged fault message reaches a monitor), decoding never panics
        /// and what decodes encodes back to the words it came from, up to booleans.
        #[test]
        fn any_words_decode_or_not(label in 0u64..10, w in proptest::collection::vec(any::<u64>(), 0..16)) {
            if let Some(f) = Fault::from_words(label, &w) {
                let mut out = [0; FAULT_MAX_WORDS];
                let n = f.to_words(&mut out);
                prop_assert!(n <= w.len());
                prop_assert_eq!(Fault::from_words(label, &out[..n]), Some(f));
            }
        }

        #[test]
        fn guest_resumes_round_trip(advance: bool, write in proptest::option::of((0u8..31, any::<u64>())), wait: bool, abort: bool) {
            let r = if abort { Resume::InjectAbort } else { Resume::Guest { advance, write, wait } };
            let mut w = [0; RESUME_MAX_WORDS];
            let n = r.to_words(&mut w);
            prop_assert_eq!(Resume::from_words(FaultLabel::VmFault, true, &w[..n]), r);
            if !abort {
                prop_assert_eq!(Resume::from_words(FaultLabel::VcpuFault, true, &w[..n]), r);
            }
        }

        #[test]
        fn register_resumes_round_trip(regs: [u64; RESUME_MAX_WORDS], len in 0usize..=12, syscall: bool) {
            let (label, len) = if syscall {
                (FaultLabel::UnknownSyscall, len)
            } else {
                (FaultLabel::UserException, len.min(3))
            };
            let mut kept = [0; RESUME_MAX_WORDS];
            kept[..len].copy_from_slice(&regs[..len]);
            let r = if len == 0 { Resume::Retry } else { Resume::Registers { len: len as u8, regs: kept } };
            let mut w = [0; RESUME_MAX_WORDS];
            let n = r.to_words(&mut w);
            prop_assert_eq!(n, len);
            prop_assert_eq!(Resume::from_words(label, false, &w[..n]), r);
        }
    }
}
