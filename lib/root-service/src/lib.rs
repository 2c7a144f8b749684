//! The root service: the monitor's requests to the root task (a Call on
//! `cspace::ROOT_SERVICE_CAP`) and the root task's replies. This module is the one definition
//! of the protocol, with one encoding and one checked decoding that both sides use (as
//! Hubris's Idol stubs give client and server one definition).
//!
//! The root task holds every original capability and the pristine images; the monitor holds
//! only the right to ask. A request is hostile input to the root task (a monitor gone wrong
//! sends what it likes): [`Request::decode`] checks the label, the length, every PD index and
//! every record length, and answers a [`Malformed`], never a panic. Whether a well-formed
//! request names a PD the monitor may act on is the root task's policy (it knows the plan),
//! not the encoding's. A reply is checked as strictly by the monitor.
//!
//! # Cost
//! A restart request is on the path from a PD's fault to its running again, so nothing here
//! builds a message value: [`Request::decode`] reads the words where the kernel left them (the
//! [`Received`] registers and the receiver's IPC buffer) and hands out a record as a borrowed
//! slice of that buffer; `encode` writes the words straight into the sender's IPC buffer and
//! returns the few that travel in registers ([`Sent`]). The enums are a few words: a record
//! is never moved by value, and a [`RecordSource`] (the monitor's tracker) encodes itself
//! directly into the buffer.
//!
//! # Wire format
//! Words are message registers: MR0..MR3 travel in CPU registers, the rest in the IPC buffer
//! (`MSG_REGISTERS_IN_CPU`). A record travels as its byte count in MR2 ([`RECORD_LEN_MR`])
//! and its bytes from MR4 on ([`RECORD_MR`]), the buffer's bytes in memory order: it lies
//! wholly in the IPC buffer, one run of bytes, so neither side gathers or packs it (MR3 is a
//! restart's `fresh` flag, 0 or 1; a record's is sent as 0 and ignored). A message with a record of `n` bytes has `4 + ceil(n / 8)` words.
//!
//! | request | label | words |
//! | --- | --- | --- |
//! | [`Request::Restart`] | 1 | pd, generation, record (MR3: fresh) |
//! | [`Request::SetTimer`] | 2 | counter value |
//! | [`Request::Record`] | 3 | pd, 0, record |
//! | [`Request::Recall`] | 4 | pd |
//! | [`Request::Stop`] | 5 | pd |
//! | [`Request::Crash`] | 6 | pd |
//! | [`Request::FlipBit`] | 7 | pd, register (`USER_CONTEXT_WORDS` order), bit |
//! | [`Request::StopVm`] | 8 | pd |
//! | [`Request::WildWrite`] | 9 | pd, seed |
//! | [`Request::CorruptRing`] | 10 | pd, region, offset |
//! | [`Request::Scrub`] | 11 | pd |
//! | [`Request::FlipCode`] | 12 | pd, seed |
//! | [`Request::CpuTime`] | 13 | pd |
//!
//! | reply | label | words |
//! | --- | --- | --- |
//! | [`Reply::Done`] | 0 | 0 |
//! | [`Reply::Restarted`] | 0 | generation, how (1: standby, 0: in place) |
//! | [`Reply::Recalled`] | 0 | generation, 0, record |
//! | [`Reply::Wrote`] | 0 | where, old, new |
//! | [`Reply::Scrubbed`] | 0 | the first code page that differs (0: none) |
//! | [`Reply::CpuTime`] | 0 | the PD's cycles, its VM's vCPUs' cycles, the count now |
//! | [`Reply::Refused`] | 1 | reason (1: bad PD, 2: failed, 3: unknown request) |

#![no_std]

use core::fmt;

use axolotl_abi::{MSG_MAX_LENGTH, MSG_REGISTERS_IN_CPU, MessageInfo};
use axolotl_boot_plan::MAX_PDS;
use zerocopy::IntoBytes;

pub mod journal;

/// The message words of an IPC buffer (`IpcBuffer::msg`); those from `MSG_REGISTERS_IN_CPU`
/// on are the ones the buffer carries.
pub type Words = [u64; MSG_MAX_LENGTH];

/// The word that holds a record's byte count.
pub const RECORD_LEN_MR: usize = 2;
/// The first word of a record's bytes: the first one the IPC buffer carries.
pub const RECORD_MR: usize = MSG_REGISTERS_IN_CPU;
/// The most bytes a record carries (every word from [`RECORD_MR`] on).
pub const RECORD_BYTES: usize = 8 * (MSG_MAX_LENGTH - RECORD_MR);

/// Reply labels.
const OK: u64 = 0;
const REFUSED: u64 = 1;

/// Message words a message with a record of `len` bytes has.
pub const fn words_for(len: usize) -> usize {
    RECORD_MR + len.div_ceil(8)
}

/// The request labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Op {
    Restart = 1,
    SetTimer = 2,
    Record = 3,
    Recall = 4,
    Stop = 5,
    Crash = 6,
    FlipBit = 7,
    StopVm = 8,
    WildWrite = 9,
    CorruptRing = 10,
    Scrub = 11,
    FlipCode = 12,
    CpuTime = 13,
}

impl Op {
    pub const ALL: [Op; 13] = [
        Op::Restart,
        Op::SetTimer,
        Op::Record,
        Op::Recall,
        Op::Stop,
        Op::Crash,
        Op::FlipBit,
        Op::StopVm,
        Op::WildWrite,
        Op::CorruptRing,
        Op::Scrub,
        Op::FlipCode,
        Op::CpuTime,
    ];

    pub fn from_label(label: u64) -> Option<Op> {
        Some(match label {
            1 => Op::Restart,
            2 => Op::SetTimer,
            3 => Op::Record,
            4 => Op::Recall,
            5 => Op::Stop,
            6 => Op::Crash,
            7 => Op::FlipBit,
            8 => Op::StopVm,
            9 => Op::WildWrite,
            10 => Op::CorruptRing,
            11 => Op::Scrub,
            12 => Op::FlipCode,
            13 => Op::CpuTime,
            _ => return None,
        })
    }
}

/// What the monitor asks of the root task. `R` is a record: a [`RecordSource`] to encode, a
/// `&[u8]` view of the IPC buffer once decoded, or whatever the receiver made of it
/// ([`Request::map_record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<R> {
    /// Restart `pd` from its pristine image with a generation of at least `generation`, and
    /// once it runs again journal `record` (as [`Request::Record`]; none if empty). Replied
    /// [`Reply::Restarted`]: the PD runs again. `fresh`: started with
    /// `axolotl_abi::START_FRESH` in `x1`, to begin as at boot (a VM start or reboot).
    Restart {
        pd: u8,
        generation: u64,
        fresh: bool,
        record: R,
    },
    /// Signal the monitor's timer channel (`MONITOR_TIMER_ID`) once the physical counter
    /// reaches `at` (at once if it has); 0: never. Replaces any earlier request.
    SetTimer { at: u64 },
    /// Journal `pd`'s restart bookkeeping, which the root task keeps, opaque, for a
    /// restarted monitor.
    Record { pd: u8, record: R },
    /// What a restarted monitor re-learns about `pd`: [`Reply::Recalled`].
    Recall { pd: u8 },
    /// Stop (suspend) `pd`: one the monitor holds although no fault stopped it (hung, or a
    /// reporter found lying).
    Stop { pd: u8 },
    /// Make `pd` fault (fault injection, issue #17): it is made to run from an address no PD
    /// maps, so it takes a real fault that reaches the monitor like any other. Asked only
    /// for a control PD whose SDF grant includes `inject` (docs/control.md).
    Crash { pd: u8 },
    /// Flip bit `bit` of `pd`'s saved register `register` (fault injection, issue #17; the
    /// campaign's single-bit register flip, from inside the system): the PD is stopped for
    /// the read-modify-write of its registers and goes on with the flipped bit, which may
    /// fault, hang, corrupt or do nothing — as a real upset would. `register` counts in
    /// TcbReadRegisters' order ([`register_name`]). Asked only for a control PD whose SDF
    /// grant includes `inject`.
    FlipBit { pd: u8, register: u8, bit: u8 },
    /// Stop (suspend) `pd`, a VMM, and every vCPU of its virtual machine: the guest stops
    /// where it is (`vm stop`). Started again by a fresh restart of the VMM, which boots the
    /// guest anew. Refused for a PD without a VM.
    StopVm { pd: u8 },
    /// Overwrite one 8-byte word of `pd`'s own writable memory (data, bss or stack, not its
    /// IPC buffer) with a value from `seed`, both picked by the root task from `seed`
    /// ([`wild_write_target`], [`scramble`]) among the pages of the PD's *running*
    /// incarnation (fault injection, issue #17: a wild write of the PD's own). Replied
    /// [`Reply::Wrote`] with the PD's virtual address. Asked only for a control PD whose
    /// SDF grant includes `inject`.
    WildWrite { pd: u8, seed: u64 },
    /// Scribble over the 32-bit ring index at byte `offset` of region `region` (plan index),
    /// which `pd` maps read-write (fault injection, issue #17): it is XORed with
    /// [`RING_SCRIBBLE`], which puts it out of every queue's range. Replied
    /// [`Reply::Wrote`] with `offset`. Refused unless `pd` maps the region writable, the
    /// region is not device memory and the word lies in it, 4-aligned.
    CorruptRing { pd: u8, region: u16, offset: u32 },
    /// Compare the code pages of `pd`'s *running* incarnation with its pristine image (code
    /// scrubbing): replied [`Reply::Scrubbed`]. Code is mapped read-only in the PD, so a
    /// difference is corruption from below the PD (a bit upset in memory, a stray DMA): no
    /// check of the PD's own sees it, and it lasts until the PD is restarted from its image.
    Scrub { pd: u8 },
    /// Flip one bit of one word of `pd`'s code in its running incarnation, both picked from
    /// `seed` (fault injection, issue #17: the campaign's `code` kind from inside the
    /// system). Replied [`Reply::Wrote`] with the PD's virtual address. Asked only for a
    /// control PD whose SDF grant includes `inject`.
    FlipCode { pd: u8, seed: u64 },
    /// The CPU time of `pd`'s thread and of its virtual machine's vCPUs (a VMM's guest), as
    /// the kernel counts it (`TcbGetCpuTime`, a kernel built with `cpu-time`; refused,
    /// `Reason::Failed`, by one without): replied [`Reply::CpuTime`]. For `ctl status`.
    CpuTime { pd: u8 },
}

/// What [`Request::CorruptRing`] XORs into a ring index: half the index space away, so that
/// the index is beyond any queue's capacity from wherever its peer reads it.
pub const RING_SCRIBBLE: u32 = 0x8000_0000;

/// A well-mixed value from `seed` (splitmix64's finaliser): neighbouring seeds give
/// unrelated values.
pub const fn scramble(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a wild write of `seed` lands among `pages` (`(vaddr, size)` of the writable pages
/// of the PD's running incarnation, in any order): uniformly over their 8-byte words, as
/// `(index into pages, byte offset in that page)`; `None` without a page.
pub fn wild_write_target<I>(pages: I, seed: u64) -> Option<(usize, u64)>
where
    I: IntoIterator<Item = (u64, u64)>,
    I::IntoIter: Clone,
{
    let pages = pages.into_iter();
    let words: u64 = pages.clone().map(|(_, size)| size / 8).sum();
    if words == 0 {
        return None;
    }
    let mut k = scramble(seed) % words;
    for (i, (_, size)) in pages.enumerate() {
        if k < size / 8 {
            return Some((i, k * 8));
        }
        k -= size / 8;
    }
    None
}

/// The name of register `word` in TcbReadRegisters' order (seL4's `seL4_UserContext`):
/// pc, sp, spsr, x0..=x30, tpidr_el0; `None` past them.
pub fn register_name(word: u8) -> Option<&'static str> {
    axolotl_abi::USER_CONTEXT_NAMES.get(word as usize).copied()
}

/// How the root task restarted a PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Switched to its standby incarnation, restored ahead of time.
    Standby,
    /// Its memory and CSpace restored while it waited.
    InPlace,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Standby => "standby",
            How::InPlace => "in place",
        })
    }
}

/// Why the root task refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Reason {
    /// The request names a PD the monitor may not act on (none, a child, the monitor).
    BadPd = 1,
    /// The request was malformed, or doing it failed.
    Failed = 2,
    /// No such request.
    Unknown = 3,
}

impl Reason {
    fn from_word(w: u64) -> Option<Reason> {
        Some(match w {
            1 => Reason::BadPd,
            2 => Reason::Failed,
            3 => Reason::Unknown,
            _ => return None,
        })
    }
}

/// The root task's answer. `R` as for [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<R> {
    /// [`Request::SetTimer`], [`Request::Record`], [`Request::Stop`], [`Request::Crash`] or
    /// [`Request::FlipBit`] or [`Request::StopVm`] done.
    Done,
    /// [`Request::Restart`] done: the PD runs with `generation` (the root task's count is the
    /// authority).
    Restarted {
        generation: u64,
        how: How,
    },
    /// [`Request::Recall`]: the root task's generation of the PD and the journaled record
    /// (empty: nothing journaled).
    Recalled {
        generation: u64,
        record: R,
    },
    /// [`Request::WildWrite`], [`Request::FlipCode`] or [`Request::CorruptRing`] done: the word at `at` (the PD's
    /// virtual address; the region offset) held `old` and now holds `new`.
    Wrote {
        at: u64,
        old: u64,
        new: u64,
    },
    /// [`Request::Scrub`] done: the virtual address of the first code page of the PD that
    /// differs from its image, 0 if none does.
    Scrubbed {
        corrupt_at: u64,
    },
    /// [`Request::CpuTime`]: counter cycles the PD's thread ran, its VM's vCPUs ran (0 for a
    /// PD without one), and the physical count when they were read.
    CpuTime {
        pd_cycles: u64,
        guest_cycles: u64,
        now: u64,
    },
    Refused(Reason),
}

/// A message that is not one of the protocol's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    UnknownLabel(u64),
    /// Fewer words than the label needs.
    Short {
        label: u64,
        len: usize,
    },
    /// A PD index no plan has.
    BadPd(u64),
    /// A record length over [`RECORD_BYTES`], or more than the message carries.
    BadRecord {
        len: u64,
    },
    /// A refusal with a reason the protocol does not have.
    BadReason(u64),
    /// A restart reply whose "how" is neither standby nor in place.
    BadHow(u64),
    /// A bit flip of a register or bit that does not exist.
    BadBit {
        register: u64,
        bit: u64,
    },
    /// A restart's `fresh` word neither 0 nor 1.
    BadFresh(u64),
    /// A ring corruption's region or offset out of any range.
    BadRing {
        region: u64,
        offset: u64,
    },
}

impl Malformed {
    /// What the root task answers a malformed request.
    pub fn reason(self) -> Reason {
        match self {
            Malformed::UnknownLabel(_) => Reason::Unknown,
            Malformed::BadPd(_) => Reason::BadPd,
            Malformed::Short { .. }
            | Malformed::BadRecord { .. }
            | Malformed::BadReason(_)
            | Malformed::BadHow(_)
            | Malformed::BadBit { .. }
            | Malformed::BadFresh(_)
            | Malformed::BadRing { .. } => Reason::Failed,
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::UnknownLabel(l) => write!(f, "unknown label {l}"),
            Malformed::Short { label, len } => {
                write!(f, "label {label} with too few words ({len})")
            }
            Malformed::BadPd(pd) => write!(f, "PD index {pd} out of range"),
            Malformed::BadRecord { len } => write!(f, "impossible record length {len}"),
            Malformed::BadReason(r) => write!(f, "unknown reason {r}"),
            Malformed::BadHow(h) => write!(f, "unknown restart kind {h}"),
            Malformed::BadBit { register, bit } => {
                write!(f, "no bit {bit} of register {register} to flip")
            }
            Malformed::BadFresh(w) => write!(f, "restart flag {w} is neither 0 nor 1"),
            Malformed::BadRing { region, offset } => {
                write!(f, "no ring word at region {region} offset {offset}")
            }
        }
    }
}

/// A record that does not fit [`RECORD_BYTES`]: nothing was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong;

/// Something that writes a record's bytes, straight into the sender's IPC buffer.
pub trait RecordSource {
    /// Writes the record at the start of `out` ([`RECORD_BYTES`] long) and says how many
    /// bytes it wrote; `None` if it does not fit.
    fn write_into(self, out: &mut [u8]) -> Option<usize>;
}

impl RecordSource for &[u8] {
    fn write_into(self, out: &mut [u8]) -> Option<usize> {
        out.get_mut(..self.len())?.copy_from_slice(self);
        Some(self.len())
    }
}

/// A message as the receiver has it, borrowed in place: its info, the words that came in
/// registers (`Msg::mrs`) and the receiver's IPC buffer words, valid until its next system
/// call (which may overwrite them).
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    pub info: MessageInfo,
    pub regs: [u64; MSG_REGISTERS_IN_CPU],
    pub ipc: &'a Words,
}

impl<'a> Received<'a> {
    /// Its length: the kernel never delivers more than `MSG_MAX_LENGTH` words, but the info
    /// word is the sender's to fill.
    fn len(&self) -> usize {
        (self.info.length() as usize).min(MSG_MAX_LENGTH)
    }

    /// Word `i`, if the message has it.
    fn word(&self, i: usize) -> Option<u64> {
        if i >= self.len() {
            None
        } else if i < MSG_REGISTERS_IN_CPU {
            Some(self.regs[i])
        } else {
            Some(self.ipc[i])
        }
    }

    /// Word `i`, or the message is too short for its label.
    fn need(&self, i: usize) -> Result<u64, Malformed> {
        self.word(i).ok_or(Malformed::Short {
            label: self.info.label(),
            len: self.len(),
        })
    }

    fn pd(&self) -> Result<u8, Malformed> {
        let w = self.need(0)?;
        match u8::try_from(w) {
            Ok(pd) if (pd as usize) < MAX_PDS => Ok(pd),
            _ => Err(Malformed::BadPd(w)),
        }
    }

    /// The record the message carries: a view of the IPC buffer.
    fn record(&self) -> Result<&'a [u8], Malformed> {
        let len = self.need(RECORD_LEN_MR)?;
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= RECORD_BYTES && words_for(n) <= self.len())
            .ok_or(Malformed::BadRecord { len })?;
        let ipc: &'a Words = self.ipc;
        Ok(&ipc[RECORD_MR..].as_bytes()[..n])
    }
}

/// The words of an encoded message that travel in registers, with its info; the rest are
/// already in the sender's IPC buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub info: MessageInfo,
    pub regs: [u64; MSG_REGISTERS_IN_CPU],
}

impl Sent {
    /// [`Reply::Refused`], which needs no buffer and cannot fail to encode.
    pub fn refused(why: Reason) -> Sent {
        Sent::of(REFUSED, [why as u64])
    }

    /// A message of the `N` words `head`, all in registers.
    fn of<const N: usize>(label: u64, head: [u64; N]) -> Sent {
        const { assert!(N <= MSG_REGISTERS_IN_CPU) };
        let mut regs = [0; MSG_REGISTERS_IN_CPU];
        regs[..N].copy_from_slice(&head);
        Sent {
            info: MessageInfo::new(label, 0, 0, N as u64),
            regs,
        }
    }

    /// `head` in MR0, MR1 and MR3, then the record `src` writes into `ipc`.
    fn with_record(
        label: u64,
        head: [u64; 3],
        src: impl RecordSource,
        ipc: &mut Words,
    ) -> Result<Sent, TooLong> {
        let out = ipc[RECORD_MR..].as_mut_bytes();
        let n = src
            .write_into(out)
            .filter(|&n| n <= RECORD_BYTES)
            .ok_or(TooLong)?;
        // The last word's padding: whatever an earlier message left in the buffer is not the
        // receiver's to see.
        out[n..n.next_multiple_of(8)].fill(0);
        Ok(Sent {
            info: MessageInfo::new(label, 0, 0, words_for(n) as u64),
            regs: [head[0], head[1], n as u64, head[2]],
        })
    }
}

impl<R> Request<R> {
    pub fn op(&self) -> Op {
        match self {
            Request::Restart { .. } => Op::Restart,
            Request::SetTimer { .. } => Op::SetTimer,
            Request::Record { .. } => Op::Record,
            Request::Recall { .. } => Op::Recall,
            Request::Stop { .. } => Op::Stop,
            Request::Crash { .. } => Op::Crash,
            Request::FlipBit { .. } => Op::FlipBit,
            Request::StopVm { .. } => Op::StopVm,
            Request::WildWrite { .. } => Op::WildWrite,
            Request::CorruptRing { .. } => Op::CorruptRing,
            Request::Scrub { .. } => Op::Scrub,
            Request::FlipCode { .. } => Op::FlipCode,
            Request::CpuTime { .. } => Op::CpuTime,
        }
    }

    /// The same request with its record turned into `f`'s result: how a receiver takes the
    /// record out of its IPC buffer before the system calls that serve the request.
    pub fn map_record<S>(self, f: impl FnOnce(R) -> S) -> Request<S> {
        match self {
            Request::Restart {
                pd,
                generation,
                fresh,
                record,
            } => Request::Restart {
                pd,
                generation,
                fresh,
                record: f(record),
            },
            Request::SetTimer { at } => Request::SetTimer { at },
            Request::Record { pd, record } => Request::Record {
                pd,
                record: f(record),
            },
            Request::Recall { pd } => Request::Recall { pd },
            Request::Stop { pd } => Request::Stop { pd },
            Request::Crash { pd } => Request::Crash { pd },
            Request::FlipBit { pd, register, bit } => Request::FlipBit { pd, register, bit },
            Request::StopVm { pd } => Request::StopVm { pd },
            Request::WildWrite { pd, seed } => Request::WildWrite { pd, seed },
            Request::CorruptRing { pd, region, offset } => {
                Request::CorruptRing { pd, region, offset }
            }
            Request::Scrub { pd } => Request::Scrub { pd },
            Request::FlipCode { pd, seed } => Request::FlipCode { pd, seed },
            Request::CpuTime { pd } => Request::CpuTime { pd },
        }
    }
}

impl<R: RecordSource> Request<R> {
    /// Encodes into the sender's IPC buffer words `ipc`; what goes in registers.
    pub fn encode(self, ipc: &mut Words) -> Result<Sent, TooLong> {
        let label = self.op() as u64;
        match self {
            Request::Restart {
                pd,
                generation,
                fresh,
                record,
            } => Sent::with_record(label, [pd as u64, generation, fresh as u64], record, ipc),
            Request::SetTimer { at } => Ok(Sent::of(label, [at])),
            Request::Record { pd, record } => {
                Sent::with_record(label, [pd as u64, 0, 0], record, ipc)
            }
            Request::Recall { pd }
            | Request::Stop { pd }
            | Request::Crash { pd }
            | Request::StopVm { pd }
            | Request::Scrub { pd }
            | Request::CpuTime { pd } => Ok(Sent::of(label, [pd as u64])),
            Request::FlipBit { pd, register, bit } => {
                Ok(Sent::of(label, [pd as u64, register as u64, bit as u64]))
            }
            Request::WildWrite { pd, seed } | Request::FlipCode { pd, seed } => {
                Ok(Sent::of(label, [pd as u64, seed]))
            }
            Request::CorruptRing { pd, region, offset } => {
                Ok(Sent::of(label, [pd as u64, region as u64, offset as u64]))
            }
        }
    }
}

impl<'a> Request<&'a [u8]> {
    /// The request `m` carries, checked; a record is a view of the IPC buffer.
    pub fn decode(m: Received<'a>) -> Result<Self, Malformed> {
        let label = m.info.label();
        let op = Op::from_label(label).ok_or(Malformed::UnknownLabel(label))?;
        Ok(match op {
            Op::Restart => Request::Restart {
                pd: m.pd()?,
                generation: m.need(1)?,
                record: m.record()?,
                fresh: match m.need(3)? {
                    0 => false,
                    1 => true,
                    w => return Err(Malformed::BadFresh(w)),
                },
            },
            Op::SetTimer => Request::SetTimer { at: m.need(0)? },
            Op::Record => Request::Record {
                pd: m.pd()?,
                record: m.record()?,
            },
            Op::Recall => Request::Recall { pd: m.pd()? },
            Op::Stop => Request::Stop { pd: m.pd()? },
            Op::Crash => Request::Crash { pd: m.pd()? },
            Op::StopVm => Request::StopVm { pd: m.pd()? },
            Op::FlipBit => {
                let pd = m.pd()?;
                let (register, bit) = (m.need(1)?, m.need(2)?);
                match (u8::try_from(register), u8::try_from(bit)) {
                    (Ok(r), Ok(b)) if register_name(r).is_some() && b < 64 => Request::FlipBit {
                        pd,
                        register: r,
                        bit: b,
                    },
                    _ => return Err(Malformed::BadBit { register, bit }),
                }
            }
            Op::WildWrite => Request::WildWrite {
                pd: m.pd()?,
                seed: m.need(1)?,
            },
            Op::Scrub => Request::Scrub { pd: m.pd()? },
            Op::CpuTime => Request::CpuTime { pd: m.pd()? },
            Op::FlipCode => Request::FlipCode {
                pd: m.pd()?,
                seed: m.need(1)?,
            },
            Op::CorruptRing => {
                let pd = m.pd()?;
                let (region, offset) = (m.need(1)?, m.need(2)?);
                match (u16::try_from(region), u32::try_from(offset)) {
                    (Ok(r), Ok(o)) if (r as usize) < axolotl_boot_plan::MAX_REGIONS => {
                        Request::CorruptRing {
                            pd,
                            region: r,
                            offset: o,
                        }
                    }
                    _ => return Err(Malformed::BadRing { region, offset }),
                }
            }
        })
    }
}

impl<R> Reply<R> {
    /// The same reply with its record turned into `f`'s result (see [`Request::map_record`]).
    pub fn map_record<S>(self, f: impl FnOnce(R) -> S) -> Reply<S> {
        match self {
            Reply::Done => Reply::Done,
            Reply::Restarted { generation, how } => Reply::Restarted { generation, how },
            Reply::Recalled { generation, record } => Reply::Recalled {
                generation,
                record: f(record),
            },
            Reply::Wrote { at, old, new } => Reply::Wrote { at, old, new },
            Reply::Scrubbed { corrupt_at } => Reply::Scrubbed { corrupt_at },
            Reply::CpuTime {
                pd_cycles,
                guest_cycles,
                now,
            } => Reply::CpuTime {
                pd_cycles,
                guest_cycles,
                now,
            },
            Reply::Refused(why) => Reply::Refused(why),
        }
    }
}

impl<R: RecordSource> Reply<R> {
    /// Encodes into the sender's IPC buffer words `ipc`; what goes in registers.
    pub fn encode(self, ipc: &mut Words) -> Result<Sent, TooLong> {
        match self {
            Reply::Done => Ok(Sent::of(OK, [0])),
            Reply::Restarted { generation, how } => {
                Ok(Sent::of(OK, [generation, (how == How::Standby) as u64]))
            }
            Reply::Recalled { generation, record } => {
                Sent::with_record(OK, [generation, 0, 0], record, ipc)
            }
            Reply::Wrote { at, old, new } => Ok(Sent::of(OK, [at, old, new])),
            Reply::Scrubbed { corrupt_at } => Ok(Sent::of(OK, [corrupt_at])),
            Reply::CpuTime {
                pd_cycles,
                guest_cycles,
                now,
            } => Ok(Sent::of(OK, [pd_cycles, guest_cycles, now])),
            Reply::Refused(why) => Ok(Sent::refused(why)),
        }
    }
}

impl<'a> Reply<&'a [u8]> {
    /// The reply `m` carries to a request of `op`, checked; a record is a view of the IPC
    /// buffer.
    pub fn decode(op: Op, m: Received<'a>) -> Result<Self, Malformed> {
        match m.info.label() {
            OK => {}
            REFUSED => {
                let w = m.need(0)?;
                return Reason::from_word(w)
                    .map(Reply::Refused)
                    .ok_or(Malformed::BadReason(w));
            }
            label => return Err(Malformed::UnknownLabel(label)),
        }
        Ok(match op {
            Op::Restart => Reply::Restarted {
                generation: m.need(0)?,
                how: match m.need(1)? {
                    1 => How::Standby,
                    0 => How::InPlace,
                    h => return Err(Malformed::BadHow(h)),
                },
            },
            Op::Recall => Reply::Recalled {
                generation: m.need(0)?,
                record: m.record()?,
            },
            Op::Scrub => Reply::Scrubbed {
                corrupt_at: m.need(0)?,
            },
            Op::CpuTime => Reply::CpuTime {
                pd_cycles: m.need(0)?,
                guest_cycles: m.need(1)?,
                now: m.need(2)?,
            },
            Op::WildWrite | Op::CorruptRing | Op::FlipCode => Reply::Wrote {
                at: m.need(0)?,
                old: m.need(1)?,
                new: m.need(2)?,
            },
            Op::SetTimer | Op::Record | Op::Stop | Op::Crash | Op::FlipBit | Op::StopVm => {
                Reply::Done
            }
        })
    }
}

#[cfg(test)]
mod tests;
