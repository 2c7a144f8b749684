//! Chunk encodings. Decoding checks what the encoding cannot express (ranges, links between
//! fields); the caller then re-encodes and compares, which refuses every stray bit.

use super::chunk::{self, GLOBAL, LRS, PRIVATE, RECORD, SPI};
use super::{ExitRecord, RECORD_WORDS, StateError};
use crate::pl011::{FIFO_DEPTH, LINE_BYTES, Pl011State, TxSink};
use crate::vgic::{GicVersion, Injection, Irq, PRIORITY_MASK, SPI_BASE, v3};
use crate::vm::{Event, Reply, Vm};

const NONE8: u64 = 0xFF;
const NONE16: u64 = 0xFFFF;
const PRESENT: u64 = 1 << 63;

pub(super) fn encode_irq(q: &Irq) -> [u64; 2] {
    let flags = u64::from(q.enabled)
        | u64::from(q.pending_latch) << 1
        | u64::from(q.line_level) << 2
        | u64::from(q.active) << 3
        | u64::from(q.edge) << 4
        | u64::from(q.group1) << 5;
    let w0 = flags
        | u64::from(q.priority) << 8
        | u64::from(q.targets) << 16
        | u64::from(q.sgi_sources) << 24
        | u64::from(q.active_source) << 32
        | q.listed_on.map_or(NONE8, u64::from) << 40
        | q.hw_intid.map_or(NONE16, u64::from) << 48;
    [w0, q.route]
}

fn decode_irq(w: &[u64]) -> Irq {
    let b = |n: u32| w[0] & (1 << n) != 0;
    let byte = |s: u32| (w[0] >> s) as u8;
    let listed = byte(40);
    let hw = (w[0] >> 48) as u16;
    Irq {
        enabled: b(0),
        pending_latch: b(1),
        line_level: b(2),
        active: b(3),
        edge: b(4),
        group1: b(5),
        priority: byte(8),
        targets: byte(16),
        sgi_sources: byte(24),
        active_source: byte(32),
        listed_on: (u64::from(listed) != NONE8).then_some(listed),
        hw_intid: (u64::from(hw) != NONE16).then_some(hw),
        route: w[1],
    }
}

/// What the vGIC's interface can produce for `intid` of `vcpu` (private) or an SPI.
fn irq_valid(q: &Irq, intid: u32, vcpu: usize, nr_vcpus: usize, version: GicVersion) -> bool {
    let cpus = ((1u32 << nr_vcpus) - 1) as u8;
    let v2_sgi = version == GicVersion::V2 && intid < 16;
    let private = intid < SPI_BASE;
    q.priority & !PRIORITY_MASK == 0
        && (if private {
            q.targets == 0
        } else {
            q.targets & !cpus == 0
        })
        && (if private {
            q.route == 0
        } else {
            q.route & !v3::IROUTER_MASK == 0
        })
        && (intid >= 16 || q.edge)
        && (if v2_sgi {
            q.sgi_sources & !cpus == 0
                && usize::from(q.active_source) < nr_vcpus
                && q.pending_latch == (q.sgi_sources != 0)
        } else {
            q.sgi_sources == 0 && q.active_source == 0
        })
        && match q.listed_on {
            None => true,
            Some(l) if private => usize::from(l) == vcpu,
            Some(l) => usize::from(l) < nr_vcpus,
        }
        && q.hw_intid.is_none_or(|p| (16..1020).contains(&p))
}

pub(super) fn encode_injection(i: &Option<Injection>) -> u64 {
    i.map_or(0, |i| {
        PRESENT
            | u64::from(i.intid)
            | u64::from(i.priority) << 16
            | u64::from(i.group1) << 24
            | u64::from(i.source) << 32
    })
}

fn decode_injection(w: u64) -> Option<Injection> {
    (w & PRESENT != 0).then_some(Injection {
        intid: (w & 0xFFFF) as u32,
        priority: (w >> 16) as u8,
        group1: w & (1 << 24) != 0,
        source: (w >> 32) as u8,
    })
}

pub(super) fn encode_event(e: &Option<Event>) -> [u64; 4] {
    match *e {
        None => [0; 4],
        Some(Event::PowerOn {
            vcpu,
            entry,
            context_id,
        }) => [1, vcpu as u64, entry, context_id],
        Some(Event::CpuOff) => [2, 0, 0, 0],
        Some(Event::SystemOff) => [3, 0, 0, 0],
        Some(Event::SystemReset) => [4, 0, 0, 0],
        Some(Event::Idle) => [5, 0, 0, 0],
        Some(Event::BadAccess { ipa, write }) => [6, ipa, u64::from(write), 0],
        Some(Event::BadFetch { ipa }) => [7, ipa, 0, 0],
        Some(Event::Undecodable { ipa, esr }) => [8, ipa, esr, 0],
        Some(Event::UnknownExit { esr, ip }) => [9, esr, ip, 0],
    }
}

/// `Err(())` for a tag no event has; fields out of range are caught by re-encoding.
#[allow(clippy::result_unit_err)]
fn decode_event(w: &[u64], nr_vcpus: usize) -> Result<Option<Event>, ()> {
    Ok(Some(match w[0] {
        0 => return Ok(None),
        1 if (w[1] as usize) < nr_vcpus => Event::PowerOn {
            vcpu: w[1] as usize,
            entry: w[2],
            context_id: w[3],
        },
        2 => Event::CpuOff,
        3 => Event::SystemOff,
        4 => Event::SystemReset,
        5 => Event::Idle,
        6 if w[2] <= 1 => Event::BadAccess {
            ipa: w[1],
            write: w[2] == 1,
        },
        7 => Event::BadFetch { ipa: w[1] },
        8 => Event::Undecodable {
            ipa: w[1],
            esr: w[2],
        },
        9 => Event::UnknownExit {
            esr: w[1],
            ip: w[2],
        },
        _ => return Err(()),
    }))
}

pub(super) fn encode_reply(r: &Reply) -> [u64; 2] {
    match *r {
        Reply::Resume {
            advance,
            write,
            wait,
        } => {
            let (w, reg, v) = write.map_or((0, 0, 0), |(reg, v)| (1, u64::from(reg), v));
            [
                u64::from(advance) << 8 | w << 9 | u64::from(wait) << 10 | reg << 16,
                v,
            ]
        }
        Reply::InjectAbort => [1, 0],
        Reply::Stop => [2, 0],
    }
}

fn decode_reply(w: &[u64]) -> Option<Reply> {
    match w[0] & 0xFF {
        0 => Some(Reply::Resume {
            advance: w[0] & (1 << 8) != 0,
            write: (w[0] & (1 << 9) != 0).then_some(((w[0] >> 16) as u8, w[1])),
            wait: w[0] & (1 << 10) != 0,
        }),
        1 => Some(Reply::InjectAbort),
        2 => Some(Reply::Stop),
        _ => None,
    }
}

/// A record as its chunk's words, built in registers: the VMM keeps records in this form
/// (`Vm::records`) because storing the enum-laden `ExitRecord` on every exit took four
/// byte-wise `memcpy`s on a strict-alignment target (docs/benchmarks.md).
#[inline]
pub(crate) fn encode_record(r: &ExitRecord) -> [u64; RECORD_WORDS] {
    let [r0, r1] = encode_reply(&r.reply);
    let [e0, e1, e2, e3] = encode_event(&r.event);
    [
        PRESENT | r.ack_vppi.map_or(0, |i| 1 << 32 | u64::from(i)),
        r.seq,
        r0,
        r1,
        e0,
        e1,
        e2,
        e3,
    ]
}

/// Whether `w` (a record's words as [`encode_record`] wrote them) is exit `seq`'s.
#[inline]
pub(crate) fn record_is(w: &[u64; RECORD_WORDS], seq: u64) -> bool {
    w[0] & PRESENT != 0 && w[1] == seq
}

pub(crate) fn decode_record(w: &[u64], nr_vcpus: usize) -> Result<Option<ExitRecord>, ()> {
    if w[0] & PRESENT == 0 {
        return Ok(None);
    }
    let reply = decode_reply(&w[2..4]).ok_or(())?;
    if let Reply::Resume {
        write: Some((reg, _)),
        ..
    } = reply
        && reg >= 31
    {
        return Err(());
    }
    Ok(Some(ExitRecord {
        seq: w[1],
        reply,
        event: decode_event(&w[4..8], nr_vcpus)?,
        ack_vppi: (w[0] & (1 << 32) != 0).then_some(w[0] as u32),
    }))
}

fn pack(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

fn encode_uart(u: &Pl011State, out: &mut [u64]) {
    let mut rx = [0u8; 8];
    rx.copy_from_slice(&u.rx[..8]);
    out[0] = u64::from_le_bytes(rx);
    rx.copy_from_slice(&u.rx[8..]);
    out[1] = u64::from_le_bytes(rx);
    out[2] = pack(u.rx_head as u32, u.rx_len as u32);
    out[3] = pack(u.ilpr, u.ibrd);
    out[4] = pack(u.fbrd, u.lcr_h);
    out[5] = pack(u.cr, u.ifls);
    out[6] = pack(u.imsc, u.dmacr);
    out[7] = u64::from(u.ris_latched);
}

fn decode_uart(w: &[u64]) -> Pl011State {
    let mut rx = [0u8; FIFO_DEPTH];
    rx[..8].copy_from_slice(&w[0].to_le_bytes());
    rx[8..].copy_from_slice(&w[1].to_le_bytes());
    let lo = |x: u64| x as u32;
    let hi = |x: u64| (x >> 32) as u32;
    Pl011State {
        rx,
        rx_head: lo(w[2]) as usize,
        rx_len: hi(w[2]) as usize,
        ilpr: lo(w[3]),
        ibrd: hi(w[3]),
        fbrd: lo(w[4]),
        lcr_h: hi(w[4]),
        cr: lo(w[5]),
        ifls: hi(w[5]),
        imsc: lo(w[6]),
        dmacr: hi(w[6]),
        ris_latched: w[7] as u32,
        // The line is its own chunk's (`decode_line`).
        line: [0; LINE_BYTES],
        line_head: 0,
        line_len: 0,
    }
}

/// The receive line (chunk [`chunk::CONSOLE`]): where its bytes start and how many, then
/// its bytes, eight to a word.
fn encode_line(u: &Pl011State, out: &mut [u64]) {
    out[0] = pack(u.line_head as u32, u.line_len as u32);
    for (o, b) in out[1..].iter_mut().zip(u.line.chunks_exact(8)) {
        *o = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    }
}

fn decode_line(w: &[u64], u: &mut Pl011State) {
    u.line_head = w[0] as u32 as usize;
    u.line_len = (w[0] >> 32) as usize;
    for (b, word) in u.line.chunks_exact_mut(8).zip(&w[1..]) {
        b.copy_from_slice(&word.to_le_bytes());
    }
}

/// Words of the line's chunk.
pub(crate) const LINE_WORDS: usize = 1 + LINE_BYTES / 8;

impl<S: TxSink> Vm<S> {
    /// Chunk `id`'s payload (`out` is its length, zeroed by the caller or not: every word
    /// is written).
    pub(crate) fn encode_chunk(&self, id: usize, out: &mut [u64]) {
        out.fill(0);
        let nr_vcpus = self.vgic.config().nr_vcpus;
        match id {
            GLOBAL => {
                out[0] = u64::from(self.vgic.ctlr);
                let sleep = (0..nr_vcpus).fold(0u64, |m, i| m | u64::from(self.vgic.sleep[i]) << i);
                out[1] = sleep | u64::from(self.psci.on_mask()) << 8;
                encode_uart(&self.uart.save(), &mut out[2..10]);
            }
            _ if id < chunk::SPI => {
                for (i, q) in self.vgic.private[id - PRIVATE].iter().enumerate() {
                    out[2 * i..2 * i + 2].copy_from_slice(&encode_irq(q));
                }
            }
            _ if id < LRS => {
                let first = (id - SPI) * 32;
                for (i, q) in self.vgic.spis[first..first + 32].iter().enumerate() {
                    out[2 * i..2 * i + 2].copy_from_slice(&encode_irq(q));
                }
            }
            _ if id < RECORD => {
                for (o, i) in out.iter_mut().zip(&self.lrs[id - LRS]) {
                    *o = encode_injection(i);
                }
            }
            chunk::CONSOLE => encode_line(&self.uart.save(), out),
            _ if id >= chunk::NET => self.encode_device(id, out),
            _ => out.copy_from_slice(&self.records[id - RECORD]),
        }
    }

    /// Loads chunk `id` into the models, refusing values they could not have produced.
    pub(crate) fn decode_chunk(&mut self, id: usize, w: &[u64]) -> Result<(), StateError> {
        let bad = StateError::Invalid(id as u8);
        let cfg = *self.vgic.config();
        match id {
            GLOBAL => {
                let ctlr = w[0];
                let sleep = w[1] & 0xFF;
                if ctlr > 3 || sleep >> cfg.nr_vcpus != 0 {
                    return Err(bad);
                }
                self.vgic.ctlr = ctlr as u32;
                for (i, s) in self.vgic.sleep.iter_mut().enumerate().take(cfg.nr_vcpus) {
                    *s = sleep & (1 << i) != 0;
                }
                self.psci = self.psci.with_on_mask((w[1] >> 8) as u8).ok_or(bad)?;
                let mut uart = decode_uart(&w[2..10]);
                // The line is its own chunk's, decoded after this one (and checked with
                // the FIFO this one sets).
                let kept = self.uart.save();
                (uart.line, uart.line_head, uart.line_len) =
                    (kept.line, kept.line_head, kept.line_len);
                if !uart.is_valid() {
                    return Err(bad);
                }
                self.uart.load(&uart);
            }
            _ if id < chunk::SPI => {
                let v = id - PRIVATE;
                for (i, q) in self.vgic.private[v].iter_mut().enumerate() {
                    *q = decode_irq(&w[2 * i..2 * i + 2]);
                    if !irq_valid(q, i as u32, v, cfg.nr_vcpus, cfg.version) {
                        return Err(bad);
                    }
                }
            }
            _ if id < LRS => {
                let first = (id - SPI) * 32;
                for (i, q) in self.vgic.spis[first..first + 32].iter_mut().enumerate() {
                    *q = decode_irq(&w[2 * i..2 * i + 2]);
                    let intid = SPI_BASE + (first + i) as u32;
                    if !irq_valid(q, intid, 0, cfg.nr_vcpus, cfg.version) {
                        return Err(bad);
                    }
                }
            }
            _ if id < RECORD => {
                let v = id - LRS;
                for (lr, (slot, word)) in self.lrs[v].iter_mut().zip(w).enumerate() {
                    *slot = decode_injection(*word);
                    if let Some(i) = slot {
                        let v2_sgi = cfg.version == GicVersion::V2 && i.intid < 16;
                        if lr >= cfg.nr_lrs
                            || i.priority & !PRIORITY_MASK != 0
                            || (!v2_sgi && i.source != 0)
                            || usize::from(i.source) >= cfg.nr_vcpus
                        {
                            return Err(bad);
                        }
                    }
                }
            }
            chunk::CONSOLE => {
                let mut uart = self.uart.save();
                decode_line(w, &mut uart);
                if !uart.is_valid() {
                    return Err(bad);
                }
                self.uart.load(&uart);
            }
            _ if id >= chunk::NET => self.decode_device(id, w)?,
            _ => {
                // Kept re-encoded, not as read: the caller's comparison with `w` is what
                // refuses a stray bit.
                let r = decode_record(w, cfg.nr_vcpus).map_err(|()| bad)?;
                self.records[id - RECORD] = r.map_or([0; RECORD_WORDS], |r| encode_record(&r));
            }
        }
        Ok(())
    }
}
