//! The VMM's device state in a region a restart keeps (issue #16; design and call sequence
//! in docs/vmm.md, "Restart: the device state region").
//!
//! The live models stay as they are; after each exit the VMM calls [`Vm::commit_exit`],
//! which encodes what the exit may have touched (the models mark it as they change) and
//! writes the words that changed through a redo journal ([`region`]). A VMM that dies at any instruction leaves the region as it was
//! before the commit or as it is after it; [`Vm::recover`] checks everything (header,
//! checksums, every field's range, the cross-links between the vGIC and the list-register
//! bookkeeping) and refuses anything else.

mod codec;
pub mod region;
mod virtio;

pub use region::{REGION_BYTES, REGION_WORDS, StateRegion, Words};
pub use virtio::VirtioWords;

use crate::pl011::TxSink;
use crate::vgic::Injection;
use crate::vm::{ConfigError, Event, Layout, Reply, Vm};
use crate::{MAX_VCPUS, vgic};

/// The set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let b = mask.trailing_zeros() as usize;
        mask &= mask.checked_sub(1)?;
        Some(b)
    })
}

/// Why a state region was refused. Any of these is a failed recovery: the guest is
/// rebooted, never run on this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// The memory is smaller than [`REGION_WORDS`].
    TooSmall,
    /// No formatting ever completed.
    Unformatted,
    HeaderChecksum,
    /// Written by a VMM with another layout version.
    Version(u64),
    /// The header's size is not this build's layout size.
    Layout,
    /// The region describes another guest (GIC, vCPUs, list registers, RAM, UART).
    ConfigMismatch,
    /// A sealed journal that does not check out.
    Journal,
    /// Chunk `n`'s checksum does not match its payload.
    Checksum(u8),
    /// Chunk `n` checks out but holds a value the models cannot reach.
    Invalid(u8),
    /// The guest's configuration was refused before the region was read.
    Config(ConfigError),
}

/// Chunks: the unit of dirty tracking and of the journal. Fixed ids and sizes (words).
pub(crate) mod chunk {
    use crate::MAX_VCPUS;

    /// vGIC distributor control, redistributor sleep, PSCI, PL011.
    pub const GLOBAL: usize = 0;
    /// vCPU `v`'s SGIs and PPIs (32 interrupts, two words each).
    pub const PRIVATE: usize = 1;
    /// SPIs `32k..32k+32`.
    pub const SPI: usize = PRIVATE + MAX_VCPUS;
    pub const SPI_GROUPS: usize = crate::vgic::MAX_SPIS / 32;
    /// vCPU `v`'s list registers as the VMM filled them.
    pub const LRS: usize = SPI + SPI_GROUPS;
    /// vCPU `v`'s last committed exit.
    pub const RECORD: usize = LRS + MAX_VCPUS;
    /// The virtio-net transport (vmm-pd's device; [`super::Devices`]).
    pub const NET: usize = RECORD + MAX_VCPUS;
    /// The virtio-blk transport, its next request sequence number and request count.
    pub const BLK: usize = NET + 1;
    /// The heads of virtio-blk's requests in flight, oldest first, four to a word.
    pub const BLK_HEADS: usize = BLK + 1;
    /// The PL011's receive line: console input the VMM took from its driver that the
    /// FIFO had no room for yet.
    pub const CONSOLE: usize = BLK_HEADS + 1;
    pub const COUNT: usize = CONSOLE + 1;
    pub const RECORDS: u64 = ((1 << MAX_VCPUS) - 1) << RECORD;
    pub const LRS_ALL: u64 = ((1 << MAX_VCPUS) - 1) << LRS;
    pub const DEVICES: u64 = 0b111 << NET;
    pub const MAX_LEN: usize = 64;
    /// Every chunk but the interrupts' and the request heads.
    pub const SMALL_LEN: usize = 16;

    pub const fn len(id: usize) -> usize {
        if id == GLOBAL {
            16
        } else if id < LRS {
            64
        } else if id < RECORD {
            16
        } else if id < NET {
            8
        } else if id < BLK_HEADS {
            16
        } else if id == BLK_HEADS {
            64
        } else {
            super::codec::LINE_WORDS
        }
    }

    #[inline]
    pub const fn global() -> u64 {
        1 << GLOBAL
    }

    #[inline]
    pub const fn lrs(vcpu: usize) -> u64 {
        if vcpu < MAX_VCPUS {
            1 << (LRS + vcpu)
        } else {
            0
        }
    }

    #[inline]
    pub const fn record(vcpu: usize) -> u64 {
        if vcpu < MAX_VCPUS {
            1 << (RECORD + vcpu)
        } else {
            0
        }
    }

    /// The chunks a guest with this many vCPUs and SPIs and these virtio devices uses.
    pub const fn used(nr_vcpus: usize, nr_spis: usize, devices: super::Devices) -> u64 {
        let cpus = (1u64 << nr_vcpus) - 1;
        let spis = (1u64 << (nr_spis / 32)) - 1;
        let net = if devices.net { 1 << NET } else { 0 };
        let blk = if devices.blk {
            1 << BLK | 1 << BLK_HEADS
        } else {
            0
        };
        1 << GLOBAL
            | cpus << PRIVATE
            | spis << SPI
            | cpus << LRS
            | cpus << RECORD
            | net
            | blk
            | 1 << CONSOLE
    }
}

/// The virtio devices whose state the region keeps next to the `Vm`'s (`vmm-pd` owns the
/// devices; it hands them to [`Vm::keep_virtio`] before each commit and restores them from
/// [`Vm::kept_net`]/[`Vm::kept_blk`] after [`Vm::recover_with`]). Part of the region's
/// configuration: a region written with other devices is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Devices {
    pub net: bool,
    pub blk: bool,
}

/// Words of an encoded [`ExitRecord`]: its chunk's length.
pub(crate) const RECORD_WORDS: usize = chunk::len(chunk::RECORD);

impl Devices {
    fn bits(self) -> u64 {
        u64::from(self.net) | u64::from(self.blk) << 1
    }
}

/// The outcome of one exit, committed with the state it produced, so that the exit the
/// kernel re-delivers after a restart is answered, not handled twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// The kernel's per-vCPU number of this exit (the same number when it re-delivers it).
    pub seq: u64,
    /// The reply to send (for a maintenance or VPPI exit, whatever the VMM sends there).
    pub reply: Reply,
    pub event: Option<Event>,
    /// `VcpuAckVppi` to (re)issue before the reply.
    pub ack_vppi: Option<u32>,
}

impl<S: TxSink> Vm<S> {
    /// The configuration words a region must carry to be this guest's.
    fn config_words(&self) -> [u64; region::H_CONFIG_WORDS] {
        let c = self.vgic.config();
        let version = match c.version {
            crate::GicVersion::V2 => 2u64,
            crate::GicVersion::V3 => 3,
        };
        let (dist, redist) = match self.layout.gic {
            axolotl_fdt::Gic::V2 { distributor, .. } => (distributor.base, 0),
            axolotl_fdt::Gic::V3 {
                distributor,
                redistributor,
            } => (distributor.base, redistributor.base),
        };
        [
            version
                | (c.nr_vcpus as u64) << 8
                | (c.nr_lrs as u64) << 16
                | self.devices.bits() << 24
                | (c.nr_spis as u64) << 32,
            self.layout.ram_base,
            self.layout.ram_size,
            self.layout.uart.regs.base,
            u64::from(self.layout.uart.spi),
            dist,
            redist,
        ]
    }

    fn used_chunks(&self) -> u64 {
        let c = self.vgic.config();
        chunk::used(c.nr_vcpus, c.nr_spis, self.devices)
    }

    /// First start: writes this (fresh) VM's whole state into `region`.
    pub fn persist_format<W: Words + ?Sized>(&mut self, region: &mut StateRegion<'_, W>) {
        let config = self.config_words();
        let used = self.used_chunks();
        region.format(&config, |id, out| {
            if used & (1 << id) != 0 {
                self.encode_chunk(id, out);
            }
        });
        self.vgic.dirty = 0;
        self.vgic.dirty_irqs = [0; vgic::DIRTY_WORDS];
        self.dirty_lrs = [0; MAX_VCPUS];
        self.dirty = 0;
        self.uart.dirty = false;
        self.uart.line_dirty = false;
        self.psci.dirty = false;
    }

    /// Makes what the handling since the last commit changed durable, all or nothing.
    /// Call at the end of every exit's handling (after [`Vm::record_exit`] and
    /// [`Vm::injections`]) and after console input, before any kernel call that acts on
    /// the result. Returns the number of words written (0 when nothing changed: no store).
    pub fn commit<W: Words + ?Sized>(&mut self, region: &mut StateRegion<'_, W>) -> usize {
        let global = self.uart.dirty || self.psci.dirty || self.vgic.dirty & chunk::global() != 0;
        let line = self.uart.line_dirty;
        let irqs = self.vgic.dirty & vgic::DIRTY_IRQS != 0;
        let lrs = self.dirty & chunk::LRS_ALL;
        let devices = self.dirty & chunk::DEVICES;
        let records = self.dirty & chunk::RECORDS;
        let mut n = 0;
        if global || line || irqs || lrs != 0 || devices != 0 {
            let used = self.used_chunks();
            let mut t = region.begin();
            if global {
                self.put_chunk(&mut t, chunk::GLOBAL);
            }
            if line {
                self.put_chunk(&mut t, chunk::CONSOLE);
            }
            if irqs {
                self.put_irqs(&mut t, used);
            }
            for id in bits(devices & used) {
                self.put_chunk(&mut t, id);
            }
            for id in bits(lrs & used) {
                let v = id - chunk::LRS;
                for lr in bits(u64::from(core::mem::take(&mut self.dirty_lrs[v]))) {
                    t.put(id, lr, codec::encode_injection(&self.lrs[v][lr]));
                }
            }
            // An exit that changed nothing and touched no list register needs no record:
            // handled again after a restart, it meets the same state and does the same.
            // One that refilled a list register with what it held (a level interrupt
            // completed and delivered again) changed no word but made a kernel call that a
            // second handling would repeat against an occupied list register.
            if !t.is_empty() || lrs != 0 {
                for id in bits(records & used) {
                    let v = id - chunk::RECORD;
                    self.records[v] = self.pending[v];
                    t.put_words(id, &self.records[v]);
                }
            }
            n = t.finish();
        }
        // A record not written is dropped: `records` stays as the region has it.
        self.vgic.dirty = 0;
        self.dirty = 0;
        self.uart.dirty = false;
        self.uart.line_dirty = false;
        self.psci.dirty = false;
        n
    }

    /// A chunk whole (global, the devices').
    fn put_chunk<W: Words + ?Sized>(&self, t: &mut region::Txn<'_, '_, W>, id: usize) {
        let len = chunk::len(id);
        // Not a buffer of the largest chunk for every one: zeroing it was a tenth of a
        // commit's instructions (encode_chunk writes every word of its slice anyway).
        if len <= chunk::SMALL_LEN {
            let mut buf = [0u64; chunk::SMALL_LEN];
            self.encode_chunk(id, &mut buf[..len]);
            t.put_words(id, &buf[..len]);
        } else {
            let mut buf = [0u64; chunk::MAX_LEN];
            self.encode_chunk(id, &mut buf[..len]);
            t.put_words(id, &buf[..len]);
        }
    }

    /// The interrupts marked dirty, in chunk order.
    fn put_irqs<W: Words + ?Sized>(&mut self, t: &mut region::Txn<'_, '_, W>, used: u64) {
        for wi in 0..vgic::DIRTY_WORDS {
            let word = core::mem::take(&mut self.vgic.dirty_irqs[wi]);
            for b in bits(word) {
                let n = wi * 64 + b;
                let (id, i, q) = if n < 32 * MAX_VCPUS {
                    (
                        chunk::PRIVATE + n / 32,
                        n % 32,
                        &self.vgic.private[n / 32][n % 32],
                    )
                } else {
                    let s = n - 32 * MAX_VCPUS;
                    (chunk::SPI + s / 32, s % 32, &self.vgic.spis[s])
                };
                if used & (1 << id) != 0 {
                    let [w0, w1] = codec::encode_irq(q);
                    t.put(id, 2 * i, w0);
                    t.put(id, 2 * i + 1, w1);
                }
            }
        }
    }

    /// Rebuilds the VM a dead VMM committed. `layout`, `nr_vcpus`, `nr_lrs` must be what
    /// the first VMM was started with (checked against the region), `sink` the console.
    pub fn recover<W: Words + ?Sized>(
        region: &mut StateRegion<'_, W>,
        layout: Layout,
        nr_vcpus: usize,
        nr_lrs: usize,
        sink: S,
    ) -> Result<Self, StateError> {
        Self::recover_with(region, layout, nr_vcpus, nr_lrs, Devices::default(), sink)
    }

    /// [`Vm::recover`] for a VMM with virtio `devices` (as the first VMM declared them
    /// with [`Vm::keep_virtio`]'s [`Vm::set_devices`]): their words are checked as well and
    /// kept for [`Vm::kept_net`]/[`Vm::kept_blk`].
    pub fn recover_with<W: Words + ?Sized>(
        region: &mut StateRegion<'_, W>,
        layout: Layout,
        nr_vcpus: usize,
        nr_lrs: usize,
        devices: Devices,
        sink: S,
    ) -> Result<Self, StateError> {
        let mut vm = Vm::new(layout, nr_vcpus, nr_lrs, sink).map_err(StateError::Config)?;
        vm.devices = devices;
        region.open(&vm.config_words())?;
        let used = vm.used_chunks();
        for id in 0..chunk::COUNT {
            if used & (1 << id) == 0 {
                continue;
            }
            let mut buf = [0u64; chunk::MAX_LEN];
            let payload = &mut buf[..chunk::len(id)];
            region.read(id, payload)?;
            vm.decode_chunk(id, payload)?;
            // Strict: a field the encoding would not produce is damage, not a value.
            let mut again = [0u64; chunk::MAX_LEN];
            vm.encode_chunk(id, &mut again[..chunk::len(id)]);
            if again[..chunk::len(id)] != *payload {
                return Err(StateError::Invalid(id as u8));
            }
        }
        vm.check_listing()?;
        vm.vgic.dirty = 0;
        vm.vgic.dirty_irqs = [0; vgic::DIRTY_WORDS];
        vm.dirty_lrs = [0; MAX_VCPUS];
        vm.dirty = 0;
        vm.uart.dirty = false;
        vm.uart.line_dirty = false;
        vm.psci.dirty = false;
        Ok(vm)
    }

    /// The exit `seq` of `vcpu`, if its handling was committed: answer it from this record
    /// (re-issue `ack_vppi`, act on `event` as docs/vmm.md says, send `reply`) instead of
    /// handling it again.
    pub fn committed_exit(&self, vcpu: usize, seq: u64) -> Option<ExitRecord> {
        // Asked on every exit: the sequence number is compared in the words, and a record
        // decoded only for the one exit a restart re-delivers.
        let w = self.records.get(vcpu)?;
        if !codec::record_is(w, seq) {
            return None;
        }
        codec::decode_record(w, self.vgic.config().nr_vcpus)
            .ok()
            .flatten()
    }

    /// [`Vm::record_exit`] then [`Vm::commit`], in one call that costs next to nothing
    /// when the exit changed no state (most exits: a console byte, a polled register, an
    /// idle vCPU): then neither the record nor anything else is written.
    #[inline]
    pub fn commit_exit<W: Words + ?Sized>(
        &mut self,
        region: &mut StateRegion<'_, W>,
        vcpu: usize,
        record: &ExitRecord,
    ) -> usize {
        self.commit_exit_with(region, vcpu, || *record)
    }

    /// [`Vm::commit_exit`] with the record made by `record` only when it is written: the
    /// VMM's exit path, where a record made on every exit took byte-wise copies. Inlined
    /// down to the test for a change, which is all most exits pay.
    #[inline(always)]
    pub fn commit_exit_with<W: Words + ?Sized>(
        &mut self,
        region: &mut StateRegion<'_, W>,
        vcpu: usize,
        record: impl FnOnce() -> ExitRecord,
    ) -> usize {
        // `commit`'s own test, with any record noted since the last commit counted too.
        if !(self.uart.dirty
            || self.uart.line_dirty
            || self.psci.dirty
            || self.vgic.dirty != 0
            || self.dirty != 0)
        {
            return 0;
        }
        self.record_and_commit(region, vcpu, record)
    }

    #[inline(never)]
    fn record_and_commit<W: Words + ?Sized>(
        &mut self,
        region: &mut StateRegion<'_, W>,
        vcpu: usize,
        record: impl FnOnce() -> ExitRecord,
    ) -> usize {
        self.record_exit(vcpu, record());
        self.commit(region)
    }

    /// Notes how the current exit of `vcpu` ends, for the next [`Vm::commit`].
    #[inline]
    pub fn record_exit(&mut self, vcpu: usize, record: ExitRecord) {
        if let Some(r) = self.pending.get_mut(vcpu) {
            *r = codec::encode_record(&record);
            self.dirty |= chunk::record(vcpu);
        }
    }

    /// What the committed state says `vcpu`'s list registers hold. After a restart the
    /// kernel's list registers may lag behind (the VMM died between the commit and its
    /// `VcpuInjectIrq`): the VMM writes each of these again (docs/vmm.md, "Recovery").
    pub fn listed(&self, vcpu: usize) -> impl Iterator<Item = (usize, Injection)> + '_ {
        let nr = if vcpu < MAX_VCPUS { self.nr_lrs } else { 0 };
        (0..nr).filter_map(move |lr| Some((lr, self.lrs[vcpu][lr]?)))
    }

    /// After [`Vm::recover`]: what to write again into `vcpu`'s list registers
    /// (`VcpuInjectIrq`; `Ok` and `DeleteFirst` are both right). `maintenance`: the exit
    /// `vcpu` is blocked in, if it is a VGICMaintenance, as `(seq, lr)`. If that exit was
    /// not committed, the guest has completed `lr` and the model does not know yet: `lr` is
    /// left alone (empty in the kernel) and the re-delivered exit completes it. If it was
    /// committed, the model already holds the completion and whatever refilled `lr`, which
    /// the dead VMM may not have written.
    pub fn to_relist(
        &self,
        vcpu: usize,
        maintenance: Option<(u64, usize)>,
    ) -> impl Iterator<Item = (usize, Injection)> + '_ {
        let skip = maintenance
            .filter(|&(seq, _)| self.committed_exit(vcpu, seq).is_none())
            .map(|(_, lr)| lr);
        self.listed(vcpu).filter(move |&(lr, _)| Some(lr) != skip)
    }

    /// Every list register the model thinks holds an interrupt holds it in the vGIC, and
    /// the reverse: an interrupt is listed on one vCPU, in one list register.
    fn check_listing(&self) -> Result<(), StateError> {
        let cfg = *self.vgic.config();
        for v in 0..cfg.nr_vcpus {
            let bad = StateError::Invalid((chunk::LRS + v) as u8);
            let mut count = 0;
            for (lr, inj) in self.listed(v) {
                let irq = self.vgic.irq(v, inj.intid).ok_or(bad)?;
                if irq.listed_on != Some(v as u8)
                    || self.lrs[v][..lr]
                        .iter()
                        .flatten()
                        .any(|o| o.intid == inj.intid)
                {
                    return Err(bad);
                }
                count += 1;
            }
            let listed_here = (0..self.vgic.nr_irqs())
                .filter(|&i| {
                    self.vgic
                        .irq(v, i)
                        .is_some_and(|q| q.listed_on == Some(v as u8))
                })
                .count();
            if listed_here != count {
                return Err(bad);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
