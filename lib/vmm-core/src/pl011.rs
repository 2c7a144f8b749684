//! PL011 UART (r1p5 register map, ARM DDI 0183) as Linux's `amba-pl011` and
//! `earlycon=pl011` use it. The TX FIFO is the sink's: while the sink has room the
//! FIFO reads empty (FR.TXFE=1, BUSY=0) and every write raises TXRIS; a sink that
//! says it is full ([`TxSink::full`]) makes the FIFO read full (TXFF=1, TXFE=0,
//! BUSY=1), a DR write then is dropped as the hardware drops it, and TXRIS stays
//! clear until the VMM reports room again ([`Pl011::tx_room`]): back-pressure, so no
//! accepted byte is ever lost between the guest and the wire.
//!
//! Bad input: offsets without a register read as zero and ignore writes (QEMU
//! does the same); 64-bit or misaligned accesses get a bus error, which is what
//! an APB slave behind the AXI bridge returns for a transfer it cannot take.
//! 8/16/32-bit accesses all work because Linux uses `readw`/`writeb` for
//! `arm,pl011` and `readl`/`writel` for `mmio32` earlycon.

use crate::bus::{Access, DeviceError, MmioDevice};

pub const DR: u64 = 0x000;
pub const RSR: u64 = 0x004;
pub const FR: u64 = 0x018;
pub const ILPR: u64 = 0x020;
pub const IBRD: u64 = 0x024;
pub const FBRD: u64 = 0x028;
pub const LCR_H: u64 = 0x02C;
pub const CR: u64 = 0x030;
pub const IFLS: u64 = 0x034;
pub const IMSC: u64 = 0x038;
pub const RIS: u64 = 0x03C;
pub const MIS: u64 = 0x040;
pub const ICR: u64 = 0x044;
pub const DMACR: u64 = 0x048;
/// UARTPeriphID0..3 then UARTPCellID0..3, one byte per word.
pub const ID_BASE: u64 = 0xFE0;
/// Part 0x011, designer 0x41 (ARM), revision 1; CellID 0xB105F00D.
pub const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

pub const FR_BUSY: u32 = 1 << 3;
pub const FR_RXFE: u32 = 1 << 4;
pub const FR_TXFF: u32 = 1 << 5;
pub const FR_RXFF: u32 = 1 << 6;
pub const FR_TXFE: u32 = 1 << 7;

pub const LCR_H_FEN: u32 = 1 << 4;

pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
/// RIMIS..OEIS.
pub const INT_ALL: u32 = 0x7FF;

/// FIFO depth of a revision-1 PL011 (Linux derives 16 from PeriphID).
pub const FIFO_DEPTH: usize = 16;

/// Bytes the receive line holds behind a full FIFO ([`Pl011::push_rx`]): one serial
/// buffer's worth (lib/serial-core's layout: a 4 KiB data region cut in 16), so that the
/// VMM can take a completed buffer whole into the state a restart keeps.
pub const LINE_BYTES: usize = 256;

const CR_RESET: u32 = 0x300; // TXE | RXE
const IFLS_RESET: u32 = 0x12; // both trigger levels 1/2

/// Where transmitted bytes go.
pub trait TxSink {
    /// Takes a byte the guest wrote while [`TxSink::full`] said no.
    fn put(&mut self, byte: u8);

    /// Whether the sink can take no byte now. Asked whenever the guest reads FR (a guest
    /// polling TXFF waits in this question), so a sink may use the call to make progress
    /// (the VMM collects its driver's completions).
    fn full(&mut self) -> bool {
        false
    }
}

impl<F: FnMut(u8)> TxSink for F {
    fn put(&mut self, byte: u8) {
        self(byte)
    }
}

pub struct Pl011<S> {
    sink: S,
    rx: [u8; FIFO_DEPTH],
    rx_head: usize,
    rx_len: usize,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// Latched raw status for TX and the error/modem bits; RX and RT are
    /// computed from the FIFO level.
    ris_latched: u32,
    /// Received bytes waiting for room in the FIFO, oldest at `line_head`: input in flight
    /// on the line, invisible to the guest. Part of the device state, so that input the VMM
    /// took from its driver survives the VMM's restart (nothing else holds it then).
    line: [u8; LINE_BYTES],
    line_head: usize,
    line_len: usize,
    /// Registers or FIFO may have changed since the last commit to the state region
    /// (`persist`): most UART exits (a console byte out, FR polled) change nothing.
    pub(crate) dirty: bool,
    /// The line may have changed since the last commit (its own chunk).
    pub(crate) line_dirty: bool,
}

impl<S: TxSink> Pl011<S> {
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            rx: [0; FIFO_DEPTH],
            rx_head: 0,
            rx_len: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            ris_latched: 0,
            line: [0; LINE_BYTES],
            line_head: 0,
            line_len: 0,
            dirty: false,
            line_dirty: false,
        }
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// With FEN=0 the FIFO degenerates to a one-character holding register.
    fn rx_capacity(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// Queues a received byte: into the FIFO, or behind it on the line while the FIFO is
    /// full. Returns false (byte not taken) when both are, so the host side keeps it:
    /// back-pressure instead of a guest-visible overrun.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.line_len == 0 && self.rx_len < self.rx_capacity() {
            self.rx[(self.rx_head + self.rx_len) % FIFO_DEPTH] = byte;
            self.rx_len += 1;
            self.dirty = true;
            return true;
        }
        if self.line_len == LINE_BYTES {
            return false;
        }
        self.line[(self.line_head + self.line_len) % LINE_BYTES] = byte;
        self.line_len += 1;
        self.line_dirty = true;
        true
    }

    /// How many received bytes [`Pl011::push_rx`] takes now.
    pub fn rx_room(&self) -> usize {
        let fifo = if self.line_len == 0 {
            self.rx_capacity().saturating_sub(self.rx_len)
        } else {
            0
        };
        fifo + (LINE_BYTES - self.line_len)
    }

    pub fn rx_len(&self) -> usize {
        self.rx_len
    }

    /// Bytes waiting on the line behind the FIFO.
    pub fn line_len(&self) -> usize {
        self.line_len
    }

    /// Moves bytes from the line into the FIFO as far as it has room (the line only holds
    /// bytes while the FIFO is full).
    fn refill(&mut self) {
        while self.line_len > 0 && self.rx_len < self.rx_capacity() {
            self.rx[(self.rx_head + self.rx_len) % FIFO_DEPTH] = self.line[self.line_head];
            self.rx_len += 1;
            self.line_head = (self.line_head + 1) % LINE_BYTES;
            self.line_len -= 1;
            self.dirty = true;
            self.line_dirty = true;
        }
    }

    /// The sink may have room again (the VMM calls it after its driver completed bytes):
    /// if it has, the TX FIFO is at its trigger level and TXRIS rises, as when the
    /// hardware's FIFO drains. Returns whether it did; the caller re-evaluates the line.
    pub fn tx_room(&mut self) -> bool {
        if self.ris_latched & INT_TX != 0 || self.sink.full() {
            return false;
        }
        self.ris_latched |= INT_TX;
        self.dirty = true;
        true
    }

    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN == 0 {
            return 1;
        }
        // IFLS.RXIFLSEL: 1/8, 1/4, 1/2, 3/4, 7/8 full; reserved values act as 1/2.
        match (self.ifls >> 3) & 7 {
            0 => 2,
            1 => 4,
            3 => 12,
            4 => 14,
            _ => 8,
        }
    }

    /// RXRIS at or above the trigger level; RTRIS below it but non-empty. There
    /// is no time in this model, and "data waiting while the guest is not
    /// receiving more" is exactly when the receive timeout would have fired.
    pub fn raw_status(&self) -> u32 {
        let mut ris = self.ris_latched;
        if self.rx_len >= self.rx_trigger() {
            ris |= INT_RX;
        } else if self.rx_len > 0 {
            ris |= INT_RT;
        }
        ris
    }

    pub fn masked_status(&self) -> u32 {
        self.raw_status() & self.imsc
    }

    /// Level of UARTINTR, the combined interrupt line (SPI 1 on QEMU virt).
    pub fn irq_level(&self) -> bool {
        self.masked_status() != 0
    }

    fn flags(&mut self) -> u32 {
        let mut fr = if self.sink.full() {
            FR_TXFF | FR_BUSY
        } else {
            FR_TXFE
        };
        if self.rx_len == 0 {
            fr |= FR_RXFE;
        }
        if self.rx_len >= self.rx_capacity() {
            fr |= FR_RXFF;
        }
        fr
    }

    fn pop_rx(&mut self) -> u32 {
        if self.rx_len == 0 {
            return 0;
        }
        self.dirty = true;
        let b = self.rx[self.rx_head];
        self.rx_head = (self.rx_head + 1) % FIFO_DEPTH;
        self.rx_len -= 1;
        self.refill();
        b.into()
    }

    fn read_reg(&mut self, word: u64) -> u32 {
        match word {
            DR => self.pop_rx(),
            FR => self.flags(),
            ILPR => self.ilpr,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.raw_status(),
            MIS => self.masked_status(),
            DMACR => self.dmacr,
            ID_BASE..=0xFFC => ID_BYTES[((word - ID_BASE) / 4) as usize].into(),
            // RSR (no errors are ever flagged), ICR (write-only), reserved.
            _ => 0,
        }
    }

    fn write_reg(&mut self, word: u64, v: u32) {
        match word {
            DR => {
                // A write to a full FIFO is lost on the hardware too; a guest that
                // checks TXFF first (Linux, earlycon) never does it.
                if self.sink.full() {
                    return;
                }
                // Sent regardless of CR.UARTEN/TXE: earlycon writes to a UART
                // it assumes firmware enabled, and a lost console is worse.
                self.sink.put(v as u8);
                // Filling the FIFO clears TXRIS (Linux's handler never writes ICR.TXIC:
                // it waits for room with TXIM set), room raises it.
                let ris = if self.sink.full() {
                    self.ris_latched & !INT_TX
                } else {
                    self.ris_latched | INT_TX
                };
                self.dirty |= ris != self.ris_latched;
                self.ris_latched = ris;
                return;
            }
            ILPR => self.ilpr = v & 0xFF,
            IBRD => self.ibrd = v & 0xFFFF,
            FBRD => self.fbrd = v & 0x3F,
            LCR_H => {
                self.lcr_h = v & 0xFF;
                // Shrinking to the holding register keeps the oldest byte (the rest of
                // the FIFO is lost, as on the hardware; the line's bytes wait); growing to
                // the FIFO takes the line's.
                self.rx_len = self.rx_len.min(self.rx_capacity());
                self.refill();
            }
            CR => self.cr = v & 0xFF87,
            IFLS => self.ifls = v & 0x3F,
            IMSC => self.imsc = v & INT_ALL,
            ICR => self.ris_latched &= !v,
            DMACR => self.dmacr = v & 0x7,
            // RSR/ECR clears errors we never raise; FR, RIS, MIS, IDs are RO.
            _ => return,
        }
        self.dirty = true;
    }
}

/// Everything a [`Pl011`] holds besides its sink, for the state region (`persist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pl011State {
    pub rx: [u8; FIFO_DEPTH],
    pub rx_head: usize,
    pub rx_len: usize,
    pub ilpr: u32,
    pub ibrd: u32,
    pub fbrd: u32,
    pub lcr_h: u32,
    pub cr: u32,
    pub ifls: u32,
    pub imsc: u32,
    pub dmacr: u32,
    pub ris_latched: u32,
    pub line: [u8; LINE_BYTES],
    pub line_head: usize,
    pub line_len: usize,
}

impl Pl011State {
    /// Whether registers could have been reached through [`Pl011`]'s interface: every
    /// register within its write mask, the FIFO within its capacity.
    pub(crate) fn is_valid(&self) -> bool {
        let cap = if self.lcr_h & LCR_H_FEN != 0 {
            FIFO_DEPTH
        } else {
            1
        };
        self.rx_head < FIFO_DEPTH
            && self.rx_len <= cap
            && self.ilpr <= 0xFF
            && self.ibrd <= 0xFFFF
            && self.fbrd <= 0x3F
            && self.lcr_h <= 0xFF
            && self.cr & !0xFF87 == 0
            && self.ifls <= 0x3F
            && self.imsc & !INT_ALL == 0
            && self.dmacr <= 0x7
            && self.ris_latched & !INT_ALL == 0
            && self.line_head < LINE_BYTES
            && self.line_len <= LINE_BYTES
            // The line holds bytes only behind a full FIFO.
            && (self.line_len == 0 || self.rx_len == cap)
    }
}

impl<S> Pl011<S> {
    pub(crate) fn save(&self) -> Pl011State {
        Pl011State {
            rx: self.rx,
            rx_head: self.rx_head,
            rx_len: self.rx_len,
            ilpr: self.ilpr,
            ibrd: self.ibrd,
            fbrd: self.fbrd,
            lcr_h: self.lcr_h,
            cr: self.cr,
            ifls: self.ifls,
            imsc: self.imsc,
            dmacr: self.dmacr,
            ris_latched: self.ris_latched,
            line: self.line,
            line_head: self.line_head,
            line_len: self.line_len,
        }
    }

    /// Takes on state `st` (checked by the caller with [`Pl011State::is_valid`]), keeping
    /// its sink.
    pub(crate) fn load(&mut self, st: &Pl011State) {
        let Pl011State {
            rx,
            rx_head,
            rx_len,
            ilpr,
            ibrd,
            fbrd,
            lcr_h,
            cr,
            ifls,
            imsc,
            dmacr,
            ris_latched,
            line,
            line_head,
            line_len,
        } = *st;
        self.rx = rx;
        self.rx_head = rx_head;
        self.rx_len = rx_len;
        self.ilpr = ilpr;
        self.ibrd = ibrd;
        self.fbrd = fbrd;
        self.lcr_h = lcr_h;
        self.cr = cr;
        self.ifls = ifls;
        self.imsc = imsc;
        self.dmacr = dmacr;
        self.ris_latched = ris_latched;
        self.line = line;
        self.line_head = line_head;
        self.line_len = line_len;
    }
}

fn check(a: &Access) -> Result<u64, DeviceError> {
    if a.size > 4 || !a.offset.is_multiple_of(a.size.into()) || a.offset >= 0x1000 {
        return Err(DeviceError::Abort);
    }
    Ok(a.offset & !3)
}

impl<S: TxSink> MmioDevice for Pl011<S> {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError> {
        let word = check(&a)?;
        let lane = (a.offset & 3) * 8;
        // A sub-word read of DR at a non-zero lane must not consume a byte.
        if word == DR && lane != 0 {
            return Ok(0);
        }
        Ok(u64::from(self.read_reg(word) >> lane) & crate::mmio::size_mask(a.size))
    }

    fn write(&mut self, a: Access, value: u64) -> Result<(), DeviceError> {
        let word = check(&a)?;
        // APB has no byte strobes; a write to an upper lane has no sane meaning.
        if a.offset & 3 == 0 {
            self.write_reg(word, value as u32);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "pl011_tests.rs"]
mod tests;
