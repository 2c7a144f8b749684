//! The management plane's wire protocol (issue #17): what the host CLI (`cargo xtask ctl`)
//! and control-pd say to each other over a byte stream (a virtio-console port that QEMU
//! exposes as a unix socket). One definition, used by both ends, as the root service
//! (`lib/root-service`) is for the monitor and the root task.
//!
//! Everything that arrives is hostile: the host end may be any program that opened the
//! socket, and the system end may be a control-pd gone wrong. [`decode`] checks every frame
//! and turns each way it can be wrong into an [`Error`], never a panic; [`serve`] answers such
//! a frame with an error reply, so a client always learns what happened to its request.
//!
//! # Wire format
//! A frame is the COBS encoding of a payload, followed by one 0 byte (the delimiter; COBS
//! leaves no other 0 in the frame, so a reader resynchronises at the next 0 whatever came
//! before, and a lone 0 is an empty frame, ignored). The payload:
//!
//! | bytes | what |
//! | --- | --- |
//! | 1 | protocol version ([`VERSION`]) |
//! | 2 | request id, little-endian: the client's, echoed in the reply, so a retried request's late reply is recognised |
//! | n | the body: a [`Request`] or a [`Reply`], postcard |
//! | 4 | CRC-32 (IEEE) of all the bytes before it, little-endian |
//!
//! The envelope (COBS, version byte first, id, CRC last) is the same in every version; a
//! new version changes only the body, so a peer of another version is told
//! [`Error::Version`] rather than misread. A frame is at most [`MAX_FRAME`] bytes before
//! its delimiter. The largest reply fits (a test pins it).
//!
//! Status and the log are read one row or entry per request ([`Request::Status`] with an
//! index, [`Request::Log`] with a sequence number), so every message has a small fixed
//! bound, whatever the number of PDs or log entries, and a PD needs no buffer beyond one
//! frame.

#![no_std]

#[cfg(test)]
extern crate std;

use core::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "std")]
pub mod client;
pub mod ipc;

/// The protocol version this crate speaks.
/// 3: `Request::Inject` names a bit flip's target (`at`), `Reply::Injected` says what an
/// injection did, `Error::BadTarget` and `Error::NoRing`. 4: `Request::Restart` may name the
/// generation it restarts (`if_generation`), `Injected::CodeFlip` and `FaultKind::CodeFlip`.
/// 5: `PdStatus` carries CPU time (`cpu_us`, `guest_cpu_us`).
pub const VERSION: u8 = 5;
/// The most bytes a frame has, its delimiter excluded.
pub const MAX_FRAME: usize = 512;
/// The most bytes a payload has: COBS adds at least one byte per frame.
pub const MAX_PAYLOAD: usize = MAX_FRAME - 1;
/// Version and request id.
const HEADER: usize = 3;
/// The CRC's bytes.
const CRC: usize = 4;
/// A buffer that holds any encoded frame with its delimiter.
pub const FRAME_BUFFER: usize = MAX_FRAME + 1;

/// The longest PD or VM name (the boot plan's `MAX_NAME`).
pub const NAME_LEN: usize = 64;
/// The longest free text (a cause, a hold reason, a refusal).
pub const TEXT_LEN: usize = 96;
/// A PD or VM name.
pub type Name = heapless::String<NAME_LEN>;
/// A line of text, cut at [`TEXT_LEN`] bytes.
pub type Text = heapless::String<TEXT_LEN>;

/// `s` as a [`Name`], if it is not too long.
pub fn name(s: &str) -> Option<Name> {
    Name::try_from(s).ok()
}

/// `s` as a [`Text`], cut at a character boundary if longer.
pub fn text(s: &str) -> Text {
    let mut end = s.len().min(TEXT_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Text::try_from(&s[..end]).unwrap_or_default()
}

/// What the host asks.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The status of the PD with this plan index ([`Reply::Pd`]), or [`Error::NoSuchIndex`]
    /// past the last.
    Status { index: u8 },
    /// The first recovery-log entry with a sequence number at least `seq` ([`Reply::Log`]).
    Log { seq: u32 },
    /// Restart the PD from its pristine image now, whatever its policy says. With
    /// `if_generation`, only the incarnation of that generation: a PD already past it (restarted
    /// since, by this very request before a monitor restart cut its answer off, or for a
    /// failure), or with a restart pending, is answered [`Reply::Done`] and not restarted
    /// again, so a client that retries a request it got no answer to restarts the PD once.
    Restart {
        pd: Name,
        if_generation: Option<u32>,
    },
    /// Stop the PD and keep it stopped (its policy no longer restarts it).
    Hold { pd: Name },
    /// Restart a held PD from its pristine image and apply its policy again.
    Release { pd: Name },
    /// Start, stop or reboot a virtual machine.
    Vm { name: Name, op: VmOp },
    /// Inject a fault into the PD (only where the system grants it). `at`: where a bit
    /// flip lands (replaying a campaign case); `None` for the system's random pick, and for
    /// every other kind. Answered [`Reply::Injected`].
    Inject {
        pd: Name,
        kind: FaultKind,
        at: Option<BitTarget>,
    },
}

/// One bit of one saved register: `register` in TcbReadRegisters' order (0 pc, 1 sp, 2 spsr,
/// 3..=33 x0..=x30, 34 tpidr_el0; [`REGISTERS`]), `bit` 0..=63.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitTarget {
    pub register: u8,
    pub bit: u8,
}

/// The registers a bit flip may land in, by number ([`BitTarget::register`]).
pub const REGISTERS: [&str; axolotl_abi::USER_CONTEXT_WORDS] = axolotl_abi::USER_CONTEXT_NAMES;

impl BitTarget {
    /// The target, if that register and bit exist.
    pub fn new(register: u8, bit: u8) -> Option<BitTarget> {
        ((register as usize) < REGISTERS.len() && bit < 64).then_some(BitTarget { register, bit })
    }

    /// The register's name.
    pub fn register_name(self) -> &'static str {
        REGISTERS
            .get(self.register as usize)
            .copied()
            .unwrap_or("?")
    }

    /// The register the CLI names `s`: a name (`x7`, `pc`) or a number.
    pub fn parse_register(s: &str) -> Option<u8> {
        let n = match REGISTERS.iter().position(|r| *r == s) {
            Some(n) => n,
            None => s.parse::<usize>().ok()?,
        };
        (n < REGISTERS.len()).then_some(n as u8)
    }
}

/// What an injection did: where it landed, so that a run can be told apart and replayed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// A crash or a hang: the PD was made to fault, or stopped.
    Done,
    /// This bit of this register was flipped.
    BitFlip(BitTarget),
    /// The 8-byte word at `vaddr` of the PD's own memory (data, bss or stack) was
    /// overwritten: it held `old`, it holds `new`.
    WildWrite { vaddr: u64, old: u64, new: u64 },
    /// The 32-bit ring index at `offset` of region `region`, which the PD maps, was
    /// scribbled over: `old` became `new`. `word` names it (`request tail`, `request head`).
    RingCorruption {
        region: Name,
        offset: u32,
        word: RingWord,
        old: u32,
        new: u32,
    },
    /// One bit of the 8-byte word at `vaddr` of the PD's code flipped (below the PD, which
    /// maps its code read-only): it held `old`, it holds `new`.
    CodeFlip { vaddr: u64, old: u64, new: u64 },
}

/// Which index of a connection's request queue (lib/ring's layout).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingWord {
    /// Written by the client (the producer of requests).
    RequestTail,
    /// Written by the server (their consumer).
    RequestHead,
}

impl RingWord {
    pub const fn as_str(self) -> &'static str {
        match self {
            RingWord::RequestTail => "request tail",
            RingWord::RequestHead => "request head",
        }
    }
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injected::Done => Ok(()),
            Injected::BitFlip(t) => write!(f, " ({} bit {})", t.register_name(), t.bit),
            Injected::WildWrite { vaddr, old, new } | Injected::CodeFlip { vaddr, old, new } => {
                write!(f, " ({vaddr:#x}: {old:#x} -> {new:#x})")
            }
            Injected::RingCorruption {
                region,
                offset,
                word,
                old,
                new,
            } => write!(
                f,
                " ({region}+{offset:#x}, {}: {old:#x} -> {new:#x})",
                word.as_str()
            ),
        }
    }
}

/// What a VM request does.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmOp {
    Start,
    Stop,
    Reboot,
}

impl VmOp {
    /// The CLI's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            VmOp::Start => "start",
            VmOp::Stop => "stop",
            VmOp::Reboot => "reboot",
        }
    }
}

/// A fault to inject.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A wild access that faults: the PD stops with a VM fault.
    Crash,
    /// The PD stops answering (its heartbeat): the watchdog's case.
    Hang,
    /// A write to a random address of the PD's own memory.
    WildWrite,
    /// A corrupted index in one of the PD's rings.
    RingCorruption,
    /// One bit of one saved register flipped.
    BitFlip,
    /// One bit of the PD's code flipped, as a memory upset would: found by code scrubbing.
    CodeFlip,
}

impl FaultKind {
    /// Every kind, in the CLI's order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::WildWrite,
        FaultKind::RingCorruption,
        FaultKind::BitFlip,
        FaultKind::CodeFlip,
    ];

    /// The CLI's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Hang => "hang",
            FaultKind::WildWrite => "wild-write",
            FaultKind::RingCorruption => "ring-corruption",
            FaultKind::BitFlip => "bit-flip",
            FaultKind::CodeFlip => "code-flip",
        }
    }

    /// The kind the CLI spells `s`.
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What the system answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "PDs have no allocator to box a status row in; one reply at a time is built"
)]
pub enum Reply {
    /// One PD's status, and how many PDs there are.
    Pd { total: u8, status: PdStatus },
    /// The first log entry at or after the sequence number asked for, if there is one yet.
    /// An entry with a higher number than asked means the ones between were dropped (the
    /// log keeps the most recent entries).
    Log(Option<LogEntry>),
    /// Done as asked.
    Done,
    /// The fault was injected, there.
    Injected(Injected),
    /// Not done, and why.
    Error(Error),
}

/// One PD as the monitor knows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PdStatus {
    /// Its index in the boot plan.
    pub index: u8,
    pub name: Name,
    pub state: PdState,
    /// 0 at boot, one more per restart.
    pub generation: u32,
    /// Restarts since boot.
    pub restarts: u32,
    /// Restarts within its restart window, as its limit counts them.
    pub restarts_in_window: u32,
    /// Its restart limit per window (0: unlimited).
    pub restart_limit: u32,
    /// Why it last failed.
    pub last_cause: Option<Text>,
    /// How long its last restart took, in microseconds.
    pub last_recovery_us: Option<u64>,
    /// Its heartbeat period, if it is watched.
    pub heartbeat_ms: Option<u64>,
    /// How long ago it last answered a ping.
    pub heartbeat_age_ms: Option<u64>,
    /// The memory its image and regions take, in bytes.
    pub memory_bytes: u64,
    /// The CPU time its thread ran since it was made, in microseconds (a kernel built
    /// with `cpu-time`; `None` otherwise).
    #[serde(default)]
    pub cpu_us: Option<u64>,
    /// For a VMM: the CPU time its guest's vCPUs ran, in microseconds.
    #[serde(default)]
    pub guest_cpu_us: Option<u64>,
    /// Whether the monitor manages it (not a child, not the monitor itself).
    pub managed: bool,
    /// The virtual machine it runs (a VMM), which `vm start|stop|reboot` names.
    pub vm: Option<Name>,
}

/// Whether a PD runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PdState {
    Running,
    /// A restart is due in this many milliseconds (its backoff).
    Restarting {
        in_ms: u64,
    },
    /// Stopped for good until released, and why.
    Held {
        reason: Text,
    },
}

/// One entry of the recovery log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Numbered from 0 at boot, one per entry.
    pub seq: u32,
    /// When, in milliseconds of the system's counter.
    pub at_ms: u64,
    pub pd: Name,
    pub event: Event,
    /// The PD's generation after the event.
    pub generation: u32,
    /// The cause of a restart or hold, or who asked.
    pub cause: Text,
    /// How long a restart took.
    pub latency_us: Option<u64>,
}

/// What a log entry records.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Restarted,
    Held,
    Released,
    Injected,
}

/// Why a request was not done. The first group is about the frame, the second about the
/// request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a COBS frame, or too short to hold a header and a CRC.
    BadFrame,
    /// Longer than [`MAX_FRAME`].
    Oversize,
    /// The CRC does not match.
    BadCrc,
    /// A version this end does not speak.
    Version { got: u8, supported: u8 },
    /// The body is no request of this version (unknown variant, truncated, trailing bytes).
    Malformed,
    /// No PD or VM of that name.
    UnknownName,
    /// A status index past the last PD.
    NoSuchIndex,
    /// The system does not grant control-pd this request.
    NotGranted,
    /// The PD is not one the monitor manages (a child, the monitor itself).
    NotManaged,
    /// The request cannot be done in the PD's state (e.g. release of a PD not held).
    BadState,
    /// The system does not implement this request yet.
    Unsupported,
    /// A bit flip's target that does not exist, or a target for another kind than a bit
    /// flip.
    BadTarget,
    /// A ring corruption of a PD that maps no ring region read-write.
    NoRing,
    /// The request was refused further down (the root task), and why.
    Refused(Text),
    /// control-pd got no usable answer from the monitor.
    Unavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadFrame => f.write_str("malformed frame"),
            Error::Oversize => write!(f, "frame longer than {MAX_FRAME} bytes"),
            Error::BadCrc => f.write_str("frame CRC mismatch"),
            Error::Version { got, supported } => {
                write!(f, "protocol version {got} (this end speaks {supported})")
            }
            Error::Malformed => f.write_str("malformed request"),
            Error::UnknownName => f.write_str("no PD or VM of that name"),
            Error::NoSuchIndex => f.write_str("no PD with that index"),
            Error::NotGranted => f.write_str("not granted to control-pd by the system"),
            Error::NotManaged => f.write_str("not managed by the monitor"),
            Error::BadState => f.write_str("not possible in the PD's state"),
            Error::Unsupported => f.write_str("not supported by this system yet"),
            Error::BadTarget => {
                f.write_str("no such register or bit, or a target for another kind")
            }
            Error::NoRing => f.write_str("the PD maps no ring region read-write"),
            Error::Refused(why) => write!(f, "refused: {why}"),
            Error::Unavailable => f.write_str("the monitor did not answer"),
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// Encodes `msg` with request id `id` as a frame into `out`, delimiter included: the bytes
/// written. `out` of [`FRAME_BUFFER`] bytes holds any frame.
pub fn encode<T: Serialize>(id: u16, msg: &T, out: &mut [u8]) -> Result<usize, TooLarge> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let n = seal(id, msg, &mut payload)?;
    frame_payload(&payload[..n], out)
}

/// Encodes `msg` with request id `id` as a payload (version, id, body, CRC: the frame before
/// COBS) into `out`: its length. The monitor seals its replies so, and control-pd frames them
/// as they are ([`frame_payload`]): the CRC the host checks is the monitor's, over the
/// bytes the monitor wrote, so a fault in the relay cannot hand the host a wrong answer that
/// checks out (the control campaign's SDC: a code flip in control's decoding and encoding
/// of a status row). `out` of [`MAX_PAYLOAD`] bytes holds any payload.
pub fn seal<T: Serialize>(id: u16, msg: &T, out: &mut [u8]) -> Result<usize, TooLarge> {
    if out.len() < HEADER + CRC {
        return Err(TooLarge);
    }
    out[0] = VERSION;
    out[1..HEADER].copy_from_slice(&id.to_le_bytes());
    let room = out.len().min(MAX_PAYLOAD) - CRC;
    let body = postcard::to_slice(msg, &mut out[HEADER..room])
        .map_err(|_| TooLarge)?
        .len();
    let end = HEADER + body;
    let crc = crc32fast::hash(&out[..end]);
    out[end..end + CRC].copy_from_slice(&crc.to_le_bytes());
    Ok(end + CRC)
}

/// Frames a payload as it is ([`seal`]'s, or one a peer sealed): COBS and the delimiter,
/// into `out` of [`FRAME_BUFFER`] bytes. Nothing of the payload is checked or changed.
pub fn frame_payload(payload: &[u8], out: &mut [u8]) -> Result<usize, TooLarge> {
    let n = cobs::try_encode(payload, out).map_err(|_| TooLarge)?;
    if n > MAX_FRAME {
        return Err(TooLarge);
    }
    *out.get_mut(n).ok_or(TooLarge)? = 0;
    Ok(n + 1)
}

/// Decodes a frame (its bytes up to, not including, the delimiter) in place: the request id
/// and the message. On error, the id to answer with (0 when the frame's id cannot be trusted,
/// i.e. before its CRC checked out) and why.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a mut [u8]) -> Result<(u16, T), (u16, Error)> {
    let payload = unframe(frame)?;
    open(payload)
}

/// A frame's payload, decoded from COBS in place, its length and CRC checked: the bytes
/// control-pd relays to the monitor as they came ([`open`] decodes them there).
pub fn unframe(frame: &mut [u8]) -> Result<&[u8], (u16, Error)> {
    if frame.len() > MAX_FRAME {
        return Err((0, Error::Oversize));
    }
    if frame.contains(&0) {
        return Err((0, Error::BadFrame));
    }
    let n = cobs::decode_in_place(frame).map_err(|_| (0, Error::BadFrame))?;
    if n < HEADER + CRC || n > frame.len() {
        return Err((0, Error::BadFrame));
    }
    let payload = &frame[..n];
    crc_holds(payload).ok_or((0, Error::BadCrc))?;
    Ok(payload)
}

/// The payload's bytes before its CRC, if the CRC holds and they hold a header.
fn crc_holds(payload: &[u8]) -> Option<&[u8]> {
    let n = payload.len();
    if n < HEADER + CRC {
        return None;
    }
    let (data, crc) = payload.split_at(n - CRC);
    let mut want = [0u8; CRC];
    want.copy_from_slice(crc);
    (crc32fast::hash(data) == u32::from_le_bytes(want)).then_some(data)
}

/// The request id of a payload whose CRC holds ([`unframe`]'s, [`seal`]'s), else `None`.
pub fn payload_id(payload: &[u8]) -> Option<u16> {
    crc_holds(payload).map(|d| u16::from_le_bytes([d[1], d[2]]))
}

/// Decodes a payload (a frame's after [`unframe`], or one relayed as it came): its CRC,
/// version and body checked, as [`decode`] does a frame's.
pub fn open<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<(u16, T), (u16, Error)> {
    let data = crc_holds(payload).ok_or((0, Error::BadCrc))?;
    let id = u16::from_le_bytes([data[1], data[2]]);
    if data[0] != VERSION {
        return Err((
            id,
            Error::Version {
                got: data[0],
                supported: VERSION,
            },
        ));
    }
    match postcard::take_from_bytes::<T>(&data[HEADER..]) {
        Ok((msg, [])) => Ok((id, msg)),
        _ => Err((id, Error::Malformed)),
    }
}

/// Answers one frame from a client: decodes the request, has `answer` answer it, and encodes
/// the reply (or, for a frame that is no request, the error) into `out`: the bytes to send.
/// `out` must hold [`FRAME_BUFFER`] bytes.
pub fn serve(frame: &mut [u8], answer: impl FnOnce(Request) -> Reply, out: &mut [u8]) -> usize {
    let (id, reply) = match decode::<Request>(frame) {
        Ok((id, req)) => (id, answer(req)),
        Err((id, e)) => (id, Reply::Error(e)),
    };
    // Every reply fits a frame (a test pins the largest); should one not, the client still
    // learns that its request was answered.
    encode(id, &reply, out)
        .or_else(|_| encode(id, &Reply::Error(Error::Unavailable), out))
        .unwrap_or(0)
}

/// What a [`Deframer`] yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame, delimiter stripped, for [`decode`].
    Complete(&'a mut [u8]),
    /// A frame longer than the buffer ended; its bytes were dropped.
    Oversize,
}

/// Cuts a byte stream into frames at each 0. A frame longer than `N` is dropped and reported
/// once, at its delimiter; empty frames (idle delimiters) are skipped.
pub struct Deframer<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// Drops a partial frame (the peer went away mid-frame).
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    /// Takes one byte of the stream: a frame, if the byte ended one.
    pub fn push(&mut self, byte: u8) -> Option<Frame<'_>> {
        if byte != 0 {
            if self.len < N {
                self.buf[self.len] = byte;
                self.len += 1;
            } else {
                self.overflow = true;
            }
            return None;
        }
        let n = core::mem::take(&mut self.len);
        if core::mem::take(&mut self.overflow) {
            return Some(Frame::Oversize);
        }
        (n > 0).then(|| Frame::Complete(&mut self.buf[..n]))
    }
}

#[cfg(test)]
mod tests;
