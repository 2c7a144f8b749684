//! One guest's emulated machine as the kernel's exit messages drive it (docs/abi.md, "Exits"):
//! every VM fault and VCPU fault becomes a [`Reply`] for the kernel plus, at most, an
//! [`Event`] for the VMM to act on or log. Interrupts reach the guest through the kernel's
//! one-list-register-at-a-time interface ([`Vm::injections`], [`Vm::maintenance`]).
//!
//! Nothing here trusts the guest: every exit it can cause ends in a reply (an architectural
//! abort, RAZ/WI, or a stopped vCPU), never a panic.

use axolotl_abi::Resume;
use axolotl_abi::syndrome::{Esr, SysregAccess, ec};

use crate::bus::{self, MmioDevice, MmioOutcome};
use crate::mmio::{DecodeAction, XZR, decode};
use crate::pl011::{Pl011, TxSink};
use crate::psci::{Psci, PsciAction};
use crate::vgic::{
    GicVersion, Injection, MAX_LRS, REGION_GICD, REGION_GICR, VTIMER_INTID, Vgic, VgicConfig,
};
use crate::{MAX_VCPUS, vgic};
use axolotl_fdt::{Gic, Pl011 as Pl011Node, Region};

/// How the kernel resumes (or not) the vCPU that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Skip the instruction (`advance`) and write `x[reg] = value` first; with `wait`, the
    /// kernel runs the vCPU again only once an interrupt is due for it (`resume::WAIT`).
    Resume {
        advance: bool,
        write: Option<(u8, u64)>,
        wait: bool,
    },
    /// The access fails in the guest: a synchronous external abort (VM faults only).
    InjectAbort,
    /// Do not reply: the vCPU stays stopped.
    Stop,
}

impl Reply {
    const ADVANCE: Reply = Reply::Resume {
        advance: true,
        write: None,
        wait: false,
    };

    /// Past a WFI, until an interrupt is due.
    pub const WAIT: Reply = Reply::Resume {
        advance: true,
        write: None,
        wait: true,
    };

    fn write(reg: u8, value: u64) -> Reply {
        Reply::Resume {
            advance: true,
            write: (reg != XZR).then_some((reg, value)),
            wait: false,
        }
    }

    /// The kernel's reply message (`None`: no reply, the vCPU stays stopped).
    #[inline]
    pub const fn to_resume(self) -> Option<Resume> {
        match self {
            Reply::Resume {
                advance,
                write,
                wait,
            } => Some(Resume::Guest {
                advance,
                write,
                wait,
            }),
            Reply::InjectAbort => Some(Resume::InjectAbort),
            Reply::Stop => None,
        }
    }
}

/// Something the VMM does or reports besides replying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// PSCI CPU_ON: start `vcpu` at `entry` (EL1h, DAIF masked, MMU off), x0 = `context_id`.
    PowerOn {
        vcpu: usize,
        entry: u64,
        context_id: u64,
    },
    CpuOff,
    SystemOff,
    SystemReset,
    /// The guest idles (WFI/WFE, CPU_SUSPEND): a good moment to flush console output.
    Idle,
    /// The guest touched guest-physical space no device claims, or misused a device: it got
    /// an abort. Logged, never fatal to the VMM.
    BadAccess {
        ipa: u64,
        write: bool,
    },
    /// An instruction fetch from outside RAM: the guest got an abort.
    BadFetch {
        ipa: u64,
    },
    /// A data abort that cannot be emulated (no syndrome, page-table walk in MMIO).
    Undecodable {
        ipa: u64,
        esr: u64,
    },
    /// An exit no model handles: the vCPU is stopped.
    UnknownExit {
        esr: u64,
        ip: u64,
    },
}

/// The guest's devices and where they are (guest-physical, as the device tree says).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub gic: Gic,
    pub uart: Pl011Node,
    pub ram_base: u64,
    pub ram_size: u64,
}

/// Which of the machine's own devices a window of [`Vm::windows`] reaches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Own {
    /// The vGIC's window `REGION_GICD` or `REGION_GICR`.
    Gic(u8),
    Uart,
}

pub struct Vm<S> {
    pub vgic: Vgic,
    pub uart: Pl011<S>,
    pub psci: Psci,
    pub(crate) layout: Layout,
    /// The vGIC's and the UART's windows as a bus would map them, in this order (one that
    /// is empty, overflows or overlaps an earlier one is left out): fixed by the layout, so
    /// found once here instead of a bus built on every exit (docs/benchmarks.md).
    pub(crate) windows: [Option<(Region, Own)>; 3],
    /// What each list register holds, as far as the VMM injected it.
    pub(crate) lrs: [[Option<Injection>; MAX_LRS]; MAX_VCPUS],
    pub(crate) nr_lrs: usize,
    /// The last exit of each vCPU whose handling was committed (docs/vmm.md, "Restart").
    /// As the state region has them: kept encoded (`persist::codec`), all zero for none.
    pub(crate) records: [[u64; crate::persist::RECORD_WORDS]; MAX_VCPUS],
    /// Per vCPU, the record of the exit being handled ([`Vm::record_exit`]), which becomes
    /// its entry of `records` only if the commit writes it: most exits change nothing and
    /// are not recorded, so nothing is copied back. Written on every exit, as words: the
    /// enum-laden `ExitRecord` stored as such took byte-wise copies.
    pub(crate) pending: [[u64; crate::persist::RECORD_WORDS]; MAX_VCPUS],
    /// State-region chunks of `lrs` and `records` changed since the last commit.
    pub(crate) dirty: u64,
    /// Per vCPU, the list registers changed since the last commit (bit n = LR n).
    pub(crate) dirty_lrs: [u16; MAX_VCPUS],
    /// The virtio devices the state region keeps, and their words (`persist::virtio`).
    pub(crate) devices: crate::persist::Devices,
    pub(crate) virtio: crate::persist::VirtioWords,
}

/// `Vgic::new` refused the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError(pub vgic::ConfigError);

impl<S: TxSink> Vm<S> {
    /// `nr_lrs`: the hardware's list registers (the kernel refuses indexes beyond them).
    pub fn new(
        layout: Layout,
        nr_vcpus: usize,
        nr_lrs: usize,
        sink: S,
    ) -> Result<Self, ConfigError> {
        let version = match layout.gic {
            Gic::V2 { .. } => GicVersion::V2,
            Gic::V3 { .. } => GicVersion::V3,
        };
        let vgic = Vgic::new(VgicConfig {
            version,
            nr_vcpus,
            // Enough for QEMU virt's SPIs (UART, RTC, virtio-mmio at 16..47).
            nr_spis: 64,
            nr_lrs,
        })
        .map_err(ConfigError)?;
        Ok(Vm {
            vgic,
            uart: Pl011::new(sink),
            psci: Psci::new(nr_vcpus, layout.ram_base, layout.ram_size),
            windows: own_windows(&layout),
            layout,
            lrs: [[None; MAX_LRS]; MAX_VCPUS],
            nr_lrs,
            records: [[0; crate::persist::RECORD_WORDS]; MAX_VCPUS],
            pending: [[0; crate::persist::RECORD_WORDS]; MAX_VCPUS],
            dirty: 0,
            dirty_lrs: [0; MAX_VCPUS],
            devices: crate::persist::Devices::default(),
            virtio: crate::persist::VirtioWords::ZERO,
        })
    }

    fn uart_intid(&self) -> u32 {
        vgic::SPI_BASE + self.layout.uart.spi
    }

    /// A stage-2 fault: `ipa` missed the guest's RAM. `value` is the stored register for a
    /// store with a valid syndrome (the kernel reads it).
    pub fn vm_fault(
        &mut self,
        vcpu: usize,
        ipa: u64,
        prefetch: bool,
        esr: u64,
        value: u64,
    ) -> (Reply, Option<Event>) {
        self.vm_fault_with(vcpu, ipa, prefetch, esr, value, &mut [])
    }

    /// [`Vm::vm_fault`] for a guest with more devices than the vGIC and the UART: `extra`
    /// are the VMM's own (its virtio transports), each at the window its device tree names
    /// (a window overlapping the vGIC's or the UART's is not mapped: they keep their
    /// accesses).
    /// The VMM does the device's work and sets its line
    /// ([`Vm::set_spi_level`]) after the access: the devices borrow guest memory and their
    /// backends, which the machine does not hold.
    pub fn vm_fault_with(
        &mut self,
        vcpu: usize,
        ipa: u64,
        prefetch: bool,
        esr: u64,
        value: u64,
        extra: &mut [(Region, &mut dyn MmioDevice)],
    ) -> (Reply, Option<Event>) {
        if prefetch {
            return (Reply::InjectAbort, Some(Event::BadFetch { ipa }));
        }
        let acc = match decode(esr, ipa) {
            Ok(a) => a,
            Err(e) => {
                return match e.action() {
                    DecodeAction::Skip => (Reply::ADVANCE, None),
                    DecodeAction::ReportAndAbort => {
                        (Reply::InjectAbort, Some(Event::Undecodable { ipa, esr }))
                    }
                };
            }
        };
        let outcome = self.dispatch(vcpu, &acc, value, extra);
        match outcome {
            MmioOutcome::Load { reg, value } => (Reply::write(reg, value), None),
            MmioOutcome::Done => (Reply::ADVANCE, None),
            MmioOutcome::ExternalAbort => (
                Reply::InjectAbort,
                Some(Event::BadAccess {
                    ipa,
                    write: acc.write,
                }),
            ),
        }
    }

    /// Routes `acc` as a bus holding the vGIC's and the UART's windows and then, if it
    /// holds the address, the first of `extra` would: an extra window can never shadow the
    /// vGIC or the UART (one overlapping them is not mapped, and its accesses abort).
    fn dispatch(
        &mut self,
        vcpu: usize,
        acc: &crate::MmioAccess,
        value: u64,
        extra: &mut [(Region, &mut dyn MmioDevice)],
    ) -> MmioOutcome {
        let ipa = acc.ipa;
        let hit = |r: &Region| ipa >= r.base && ipa - r.base < r.size;
        if let Some((r, own)) = self.windows.iter().flatten().find(|(r, _)| hit(r)) {
            let (r, own) = (*r, *own);
            return match own {
                Own::Gic(region) => {
                    bus::perform(&mut self.vgic, vcpu, region, r.base, r.size, acc, value)
                }
                Own::Uart => {
                    let o = bus::perform(&mut self.uart, vcpu, 0, r.base, r.size, acc, value);
                    // The UART's interrupt line follows its registers (and its input, which
                    // `console_input` sets), so only an access to them can move it.
                    let level = self.uart.irq_level();
                    let _ = self.vgic.set_level(0, self.uart_intid(), level);
                    o
                }
            };
        }
        let own = self.windows.iter().flatten().map(|(r, _)| (r.base, r.size));
        match extra.iter_mut().find(|(r, _)| hit(r)) {
            Some((r, dev)) if bus::admissible(own, r.base, r.size) => {
                bus::perform(&mut **dev, vcpu, 0, r.base, r.size, acc, value)
            }
            _ => MmioOutcome::ExternalAbort,
        }
    }

    /// A VCPU fault: `x` is x0..x3, `rt_value` the register a trapped system-register write
    /// names.
    pub fn vcpu_fault(
        &mut self,
        vcpu: usize,
        esr: u64,
        ip: u64,
        x: [u64; 4],
        rt_value: u64,
    ) -> (Reply, Option<Event>) {
        let syndrome = Esr(esr);
        match syndrome.ec() {
            // WFI waits in the kernel until an interrupt is due (WFE, TI = 1, stays a yield).
            ec::WFX if esr & 1 == 0 && self.may_wait(vcpu) => (Reply::WAIT, Some(Event::Idle)),
            ec::WFX => (Reply::ADVANCE, Some(Event::Idle)),
            // The kernel reports HVC and SMC at the instruction itself: always advance.
            ec::HVC64 | ec::SMC64 => self.smccc(vcpu, syndrome.imm16(), x),
            ec::SYSREG => match syndrome.sysreg() {
                Some(s) => (self.sysreg(vcpu, s, rt_value), None),
                None => (Reply::Stop, Some(Event::UnknownExit { esr, ip })),
            },
            _ => (Reply::Stop, Some(Event::UnknownExit { esr, ip })),
        }
    }

    fn smccc(&mut self, vcpu: usize, imm: u16, x: [u64; 4]) -> (Reply, Option<Event>) {
        let r = self.psci.handle(vcpu, imm, x);
        let event = match r.action {
            PsciAction::None => None,
            PsciAction::PowerOn {
                vcpu,
                entry,
                context_id,
            } => Some(Event::PowerOn {
                vcpu,
                entry,
                context_id,
            }),
            PsciAction::WaitForInterrupt => Some(Event::Idle),
            PsciAction::CpuOff { .. } => Some(Event::CpuOff),
            PsciAction::SystemOff => Some(Event::SystemOff),
            PsciAction::Reset => Some(Event::SystemReset),
        };
        match r.x0 {
            // CPU_SUSPEND, emulated as WFI: its success is returned when it wakes.
            Some(v) if event == Some(Event::Idle) && self.may_wait(vcpu) => (
                Reply::Resume {
                    advance: true,
                    write: Some((0, v)),
                    wait: true,
                },
                event,
            ),
            Some(v) => (Reply::write(0, v), event),
            None => (Reply::Stop, event),
        }
    }

    /// Whether `vcpu` may wait for an interrupt: none is pending for it that the vGIC has
    /// not listed yet. What is listed the kernel sees in the list registers (the VMM writes
    /// them before it replies) and does not wait then; an interrupt the vGIC holds back
    /// (every list register taken) only the vGIC knows of. Without a scan when its last one
    /// found nothing and nothing changed since.
    fn may_wait(&self, vcpu: usize) -> bool {
        self.vgic.known_idle(vcpu) || self.vgic.next_pending(vcpu).is_none()
    }

    /// Trapped system registers (ESR ISS for EC 0x18): the GICv3 SGI registers are emulated,
    /// everything else the kernel traps (ACTLR, debug, PMU) reads as zero and ignores writes.
    fn sysreg(&mut self, vcpu: usize, s: SysregAccess, rt_value: u64) -> Reply {
        let SysregAccess {
            read,
            rt,
            op0,
            op1,
            crn,
            crm,
            op2,
        } = s;
        let sgi =
            op0 == 3 && crn == 12 && crm == 11 && matches!((op1, op2), (0, 5) | (1, 6) | (2, 7));
        if read {
            return Reply::write(rt, 0);
        }
        if sgi {
            let value = if rt == XZR { 0 } else { rt_value };
            self.vgic.write_sgi1r(vcpu, value);
        }
        Reply::ADVANCE
    }

    /// The guest's virtual timer fired (the kernel masked it until [`Vm::maintenance`] says
    /// to acknowledge it).
    pub fn vppi(&mut self, vcpu: usize, irq: u32) {
        if irq == VTIMER_INTID {
            let _ = self.vgic.set_level(vcpu, VTIMER_INTID, true);
        }
    }

    /// The guest completed the interrupt in list register `lr`. Returns the virtual PPI to
    /// acknowledge (`VcpuAckVppi`) when it was the timer.
    pub fn maintenance(&mut self, vcpu: usize, lr: usize) -> Option<u32> {
        let intid = self.lrs.get_mut(vcpu)?.get_mut(lr)?.take()?.intid;
        self.lr_changed(vcpu, lr);
        if intid == VTIMER_INTID {
            // The physical line is sampled again once unmasked: it fires anew if still high.
            let _ = self.vgic.set_level(vcpu, VTIMER_INTID, false);
        }
        self.vgic.complete_injection(vcpu, intid);
        (intid == VTIMER_INTID).then_some(intid)
    }

    /// For the state region: list register `lr` of `vcpu` changed.
    fn lr_changed(&mut self, vcpu: usize, lr: usize) {
        self.dirty |= crate::persist::chunk::lrs(vcpu);
        self.dirty_lrs[vcpu] |= 1 << lr;
    }

    /// Interrupts to write now, each into a free list register: `(lr, injection)`. Call
    /// before resuming `vcpu`, and after anything that may raise a line.
    pub fn injections(&mut self, vcpu: usize) -> impl Iterator<Item = (usize, Injection)> + '_ {
        let nr = if vcpu < MAX_VCPUS { self.nr_lrs } else { 0 };
        let mut lr = 0;
        // Stops at the first free list register nothing is left for: one scan of the
        // distributor per exit when nothing is pending (the common case).
        core::iter::from_fn(move || {
            while lr < nr && self.lrs[vcpu][lr].is_some() {
                lr += 1;
            }
            if lr == nr {
                return None;
            }
            let inj = self.vgic.take_injection(vcpu)?;
            self.lrs[vcpu][lr] = Some(inj);
            self.lr_changed(vcpu, lr);
            Some((lr, inj))
        })
    }

    /// True when [`Vm::injections`] would give nothing for any vCPU, known without a scan:
    /// each one's last scan found nothing and nothing changed since. The exit path's
    /// common case; false says only that a scan is needed.
    #[inline]
    pub fn nothing_to_inject(&self) -> bool {
        (0..self.vgic.config().nr_vcpus).all(|v| self.vgic.known_idle(v))
    }

    /// The kernel refused an injection from [`Vm::injections`]: the interrupt is pending
    /// again and the list register free.
    pub fn injection_failed(&mut self, vcpu: usize, lr: usize) {
        if let Some(inj) = self.lrs.get_mut(vcpu).and_then(|l| l.get_mut(lr)?.take()) {
            self.lr_changed(vcpu, lr);
            self.vgic.refuse_injection(vcpu, &inj);
        }
    }

    /// Sets the level of SPI `spi` (as the device tree numbers it: INTID 32 + `spi`), the
    /// line of one of the VMM's own devices. An SPI the vGIC does not implement is ignored.
    pub fn set_spi_level(&mut self, spi: u32, level: bool) {
        if spi != self.layout.uart.spi {
            let _ = self.vgic.set_level(0, vgic::SPI_BASE + spi, level);
        }
    }

    /// The console's sink may have room again (its driver completed bytes): the UART's TX
    /// interrupt rises if it has ([`Pl011::tx_room`]) and its line follows.
    pub fn console_tx_room(&mut self) {
        if self.uart.tx_room() {
            let level = self.uart.irq_level();
            let _ = self.vgic.set_level(0, self.uart_intid(), level);
        }
    }

    /// Queues a byte typed on the console; false when the UART's FIFO and the line behind
    /// it ([`Pl011::push_rx`]) are full.
    pub fn console_input(&mut self, byte: u8) -> bool {
        let taken = self.uart.push_rx(byte);
        let level = self.uart.irq_level();
        let _ = self.vgic.set_level(0, self.uart_intid(), level);
        taken
    }

    /// How many bytes of console input [`Vm::console_input`] takes now.
    pub fn console_room(&self) -> usize {
        self.uart.rx_room()
    }
}

/// [`Vm::windows`] for `layout`: the vGIC's windows, then the UART's, each mapped unless
/// [`bus::admissible`] refuses it beside those before it.
fn own_windows(layout: &Layout) -> [Option<(Region, Own)>; 3] {
    let (gicd, gicr) = match layout.gic {
        Gic::V2 { distributor, .. } => (distributor, None),
        Gic::V3 {
            distributor,
            redistributor,
        } => (distributor, Some(redistributor)),
    };
    let wanted = [
        Some((gicd, Own::Gic(REGION_GICD))),
        gicr.map(|r| (r, Own::Gic(REGION_GICR))),
        Some((layout.uart.regs, Own::Uart)),
    ];
    let mut out = [None; 3];
    let mut n = 0;
    for (r, own) in wanted.into_iter().flatten() {
        let mapped = out[..n]
            .iter()
            .flatten()
            .map(|(w, _): &(Region, Own)| (w.base, w.size));
        if bus::admissible(mapped, r.base, r.size) {
            out[n] = Some((r, own));
            n += 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "vm_tests.rs"]
mod tests;
