use super::*;
use crate::pl011::{IMSC, INT_RX};
use axolotl_fdt::Region;

extern crate std;
use std::vec::Vec;

const EC_WFX: u64 = ec::WFX as u64;
const EC_HVC64: u64 = ec::HVC64 as u64;
const EC_SYSREG: u64 = ec::SYSREG as u64;

const UART: u64 = 0x0900_0000;
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;

/// Data-abort syndrome: ISV, `size` bytes, register `srt`, Xn (SF), stage-2 fault L3.
fn dabt(size: u8, srt: u64, write: bool) -> u64 {
    let sas = size.trailing_zeros() as u64;
    0x9300_0007 | (sas << 22) | (srt << 16) | (1 << 15) | if write { 1 << 6 } else { 0 }
}

fn hvc() -> u64 {
    (EC_HVC64 << 26) | (1 << 25)
}

fn vm(v3: bool) -> Vm<Vec<u8>> {
    let gic = if v3 {
        Gic::V3 {
            distributor: Region::new(GICD, 0x1_0000),
            redistributor: Region::new(GICR, 0x2_0000),
        }
    } else {
        Gic::qemu_virt_v2()
    };
    let layout = Layout {
        gic,
        uart: Pl011Node::qemu_virt(),
        ram_base: 0x4000_0000,
        ram_size: 0x1000_0000,
    };
    Vm::new(layout, 1, 4, Vec::new()).unwrap()
}

#[test]
fn uart_store_reaches_the_sink_and_loads_complete_with_the_register() {
    let mut m = vm(true);
    let (r, e) = m.vm_fault(0, UART, false, dabt(4, 2, true), u64::from(b'A'));
    assert_eq!((r, e), (Reply::ADVANCE, None));
    assert_eq!(m.uart.sink().as_slice(), b"A");
    // PeriphID0 of a PL011 is 0x11.
    let (r, _) = m.vm_fault(0, UART + 0xFE0, false, dabt(4, 7, false), 0);
    assert_eq!(
        r,
        Reply::Resume {
            advance: true,
            write: Some((7, 0x11)),
            wait: false
        }
    );
}

#[test]
fn load_into_xzr_writes_nothing() {
    let mut m = vm(true);
    let (r, _) = m.vm_fault(0, UART + 0x18, false, dabt(4, 31, false), 0);
    assert_eq!(r, Reply::ADVANCE);
}

#[test]
fn unclaimed_addresses_and_fetches_abort_and_are_reported() {
    let mut m = vm(false);
    let (r, e) = m.vm_fault(0, 0x0A00_0000, false, dabt(4, 1, true), 5);
    assert_eq!(r, Reply::InjectAbort);
    assert_eq!(
        e,
        Some(Event::BadAccess {
            ipa: 0x0A00_0000,
            write: true
        })
    );
    // The GICv3 redistributor does not exist on a GICv2 guest.
    let (r, _) = m.vm_fault(0, GICR, false, dabt(4, 1, false), 0);
    assert_eq!(r, Reply::InjectAbort);
    // An access running past the end of the UART window.
    let (r, _) = m.vm_fault(0, UART + 0xFFC, false, dabt(8, 1, false), 0);
    assert_eq!(r, Reply::InjectAbort);
    let (r, e) = m.vm_fault(0, UART, true, 0x8200_0007, 0);
    assert_eq!(
        (r, e),
        (Reply::InjectAbort, Some(Event::BadFetch { ipa: UART }))
    );
    // No syndrome (a load pair): abort, reported.
    let (r, e) = m.vm_fault(0, UART, false, 0x9200_0007, 0);
    assert_eq!(r, Reply::InjectAbort);
    assert!(matches!(e, Some(Event::Undecodable { .. })));
}

#[test]
fn psci_calls_write_x0_and_power_events_stop_the_vcpu() {
    let mut m = vm(true);
    let (r, e) = m.vcpu_fault(0, hvc(), 0x4000_0000, [0x8400_0000, 0, 0, 0], 0);
    assert_eq!(r, Reply::write(0, 0x1_0000));
    assert_eq!(e, None);
    // An unknown function: NOT_SUPPORTED, the guest goes on.
    let (r, _) = m.vcpu_fault(0, hvc(), 0, [0xC400_1234, 0, 0, 0], 0);
    assert_eq!(r, Reply::write(0, -1i64 as u64));
    let (r, e) = m.vcpu_fault(0, hvc(), 0, [0x8400_0008, 0, 0, 0], 0);
    assert_eq!((r, e), (Reply::Stop, Some(Event::SystemOff)));
    let (r, e) = m.vcpu_fault(0, hvc(), 0, [0x8400_0009, 0, 0, 0], 0);
    assert_eq!((r, e), (Reply::Stop, Some(Event::SystemReset)));
}

#[test]
fn wfi_waits_wfe_resumes_past_it_and_unknown_exits_stop_the_vcpu() {
    let mut m = vm(true);
    let (r, e) = m.vcpu_fault(0, (EC_WFX << 26) | (1 << 25), 0, [0; 4], 0);
    assert_eq!((r, e), (Reply::WAIT, Some(Event::Idle)));
    assert_eq!(
        r.to_resume(),
        Some(Resume::Guest {
            advance: true,
            write: None,
            wait: true
        })
    );
    // WFE (TI = 1) is a yield: it never waits.
    let (r, e) = m.vcpu_fault(0, (EC_WFX << 26) | (1 << 25) | 1, 0, [0; 4], 0);
    assert_eq!((r, e), (Reply::ADVANCE, Some(Event::Idle)));
    let esr = 0x07 << 26; // FP trap: the kernel handles those; any such exit is unknown here
    let (r, e) = m.vcpu_fault(0, esr, 0x1234, [0; 4], 0);
    assert_eq!(
        (r, e),
        (Reply::Stop, Some(Event::UnknownExit { esr, ip: 0x1234 }))
    );
}

/// ESR of an MSR/MRS trap: op0 3, `op1`, CRn, CRm, `op2`, `rt`.
fn sysreg(op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> u64 {
    (EC_SYSREG << 26)
        | (1 << 25)
        | (3 << 20)
        | (op2 << 17)
        | (op1 << 14)
        | (crn << 10)
        | (rt << 5)
        | (crm << 1)
        | u64::from(read)
}

#[test]
fn trapped_system_registers_read_as_zero_and_sgi1r_sends_sgis() {
    let mut m = vm(true);
    // ACTLR_EL1 read (op1 0, c1, c0, 1) into x4.
    let (r, _) = m.vcpu_fault(0, sysreg(0, 1, 0, 1, 4, true), 0, [0; 4], 0);
    assert_eq!(r, Reply::write(4, 0));
    // ICC_SGI1R_EL1 write: SGI 3 to vCPU 0 (TargetList bit 0).
    let (r, _) = m.vcpu_fault(0, sysreg(0, 12, 11, 5, 2, false), 0, [0; 4], (3 << 24) | 1);
    assert_eq!(r, Reply::ADVANCE);
    assert!(m.vgic.irq(0, 3).unwrap().pending());
}

/// Enables the distributor's groups and `intid` through guest MMIO, as Linux would.
fn enable(m: &mut Vm<Vec<u8>>, intid: u32) {
    let word = (intid / 32) as u64 * 4;
    let bit = 1u64 << (intid % 32);
    match m.layout.gic {
        Gic::V3 { .. } => {
            m.vm_fault(0, GICD, false, dabt(4, 1, true), 0b11);
            let base = if intid < 32 { GICR + 0x1_0000 } else { GICD };
            m.vm_fault(0, base + 0x100 + word, false, dabt(4, 1, true), bit);
        }
        Gic::V2 { .. } => {
            m.vm_fault(0, GICD, false, dabt(4, 1, true), 0b11);
            m.vm_fault(0, GICD + 0x100 + word, false, dabt(4, 1, true), bit);
        }
    }
}

#[test]
fn virtual_timer_is_injected_once_and_acknowledged_on_completion() {
    for v3 in [false, true] {
        let mut m = vm(v3);
        enable(&mut m, VTIMER_INTID);
        assert_eq!(m.injections(0).count(), 0);
        m.vppi(0, VTIMER_INTID);
        let got: Vec<_> = m.injections(0).collect();
        assert_eq!(got.len(), 1, "v3 {v3}");
        assert_eq!(got[0].1.intid, VTIMER_INTID);
        let lr = got[0].0;
        // Listed: not injected twice, even if the timer fires again meanwhile.
        m.vppi(0, VTIMER_INTID);
        assert_eq!(m.injections(0).count(), 0);
        assert_eq!(m.maintenance(0, lr), Some(VTIMER_INTID));
        // The line was lowered for the kernel to re-sample it: nothing is pending.
        assert_eq!(m.injections(0).count(), 0);
        // A completion for an empty or unknown list register is ignored.
        assert_eq!(m.maintenance(0, lr), None);
        assert_eq!(m.maintenance(0, 99), None);
        assert_eq!(m.maintenance(9, 0), None);
    }
}

/// `nothing_to_inject` (the exit path's shortcut past `injections`) is never true while an
/// interrupt waits: not after its line rose, not while the list registers were full.
#[test]
fn nothing_to_inject_only_when_a_scan_would_find_nothing() {
    let mut m = vm(true);
    enable(&mut m, VTIMER_INTID);
    assert_eq!(m.injections(0).count(), 0);
    assert!(m.nothing_to_inject());
    m.vppi(0, VTIMER_INTID);
    assert!(!m.nothing_to_inject());
    let got: Vec<_> = m.injections(0).collect();
    assert_eq!(got.len(), 1);
    // SGIs beyond the list registers: the ones left wait, and the shortcut says so.
    for sgi in 0..8 {
        m.vgic.send_sgi(0, 1, sgi);
        m.vm_fault(0, GICR + 0x1_0100, false, dabt(4, 1, true), 1 << sgi);
    }
    assert!(!m.nothing_to_inject());
    assert_eq!(m.injections(0).count(), 3);
    assert_eq!(m.injections(0).count(), 0);
    m.maintenance(0, got[0].0);
    assert!(!m.nothing_to_inject());
    assert_eq!(m.injections(0).count(), 1);
}

#[test]
fn uart_interrupt_follows_input_and_is_reinjected_while_the_line_stays_high() {
    let mut m = vm(true);
    let intid = 33;
    enable(&mut m, intid);
    m.vm_fault(0, UART + IMSC, false, dabt(4, 1, true), u64::from(INT_RX));
    assert!(m.console_input(b'x'));
    let got: Vec<_> = m.injections(0).collect();
    assert_eq!(got.iter().map(|g| g.1.intid).collect::<Vec<_>>(), [intid]);
    // Completed without reading the byte: a level interrupt comes back.
    assert_eq!(m.maintenance(0, got[0].0), None);
    let again: Vec<_> = m.injections(0).collect();
    assert_eq!(again.len(), 1);
    // Reading the data register lowers the line; completion then leaves nothing.
    let (r, _) = m.vm_fault(0, UART, false, dabt(4, 3, false), 0);
    assert_eq!(r, Reply::write(3, u64::from(b'x')));
    m.maintenance(0, again[0].0);
    assert_eq!(m.injections(0).count(), 0);
}

#[test]
fn injections_never_exceed_the_list_registers_and_a_refused_one_comes_back() {
    let mut m = vm(true);
    for sgi in 0..8 {
        m.vgic.send_sgi(0, 1, sgi);
        let base = GICR + 0x1_0000;
        m.vm_fault(0, base + 0x100, false, dabt(4, 1, true), 1 << sgi);
    }
    m.vm_fault(0, GICD, false, dabt(4, 1, true), 0b11);
    let got: Vec<_> = m.injections(0).collect();
    assert_eq!(got.len(), 4);
    let lrs: Vec<_> = got.iter().map(|g| g.0).collect();
    assert_eq!(lrs, [0, 1, 2, 3]);
    let refused = got[2].1.intid;
    m.injection_failed(0, 2);
    let retry: Vec<_> = m.injections(0).collect();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].0, 2);
    // The refused SGI itself is delivered again, not just the next one in line.
    assert_eq!(retry[0].1.intid, refused);
}

#[test]
fn a_refused_gicv2_sgi_comes_back_with_its_source() {
    let mut m = vm(false);
    m.vm_fault(0, GICD, false, dabt(4, 1, true), 0b11);
    m.vm_fault(0, GICD + 0x100, false, dabt(4, 1, true), 0xffff);
    // vCPU 0 sends SGI 5 to itself (TargetListFilter 2: "to the requesting CPU").
    m.vm_fault(0, GICD + 0xF00, false, dabt(4, 1, true), (2 << 24) | 5);
    let got: Vec<_> = m.injections(0).collect();
    assert_eq!(got.iter().map(|g| g.1.intid).collect::<Vec<_>>(), [5]);
    m.injection_failed(0, got[0].0);
    let again: Vec<_> = m.injections(0).collect();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].1.intid, again[0].1.source), (5, got[0].1.source));
    // Completed, it stays done.
    m.maintenance(0, again[0].0);
    assert_eq!(m.injections(0).count(), 0);
}

#[test]
fn replies_become_the_kernels_resume_messages() {
    use axolotl_abi::Resume;
    assert_eq!(
        Reply::write(3, 7).to_resume(),
        Some(Resume::Guest {
            advance: true,
            write: Some((3, 7)),
            wait: false
        })
    );
    assert_eq!(
        Reply::write(XZR, 7).to_resume(),
        Some(Resume::advance_and_write(XZR, 7))
    );
    assert_eq!(Reply::InjectAbort.to_resume(), Some(Resume::InjectAbort));
    assert_eq!(Reply::Stop.to_resume(), None);
}

/// A device of the VMM's own that records what reached it.
struct Probe(Vec<(u64, Option<u64>)>);

impl MmioDevice for Probe {
    fn read(&mut self, a: crate::bus::Access) -> Result<u64, crate::bus::DeviceError> {
        self.0.push((a.offset, None));
        Ok(0x7472_6976)
    }
    fn write(&mut self, a: crate::bus::Access, v: u64) -> Result<(), crate::bus::DeviceError> {
        self.0.push((a.offset, Some(v)));
        Ok(())
    }
}

#[test]
fn extra_devices_get_their_windows_and_nothing_else() {
    let mut m = vm(true);
    let t30 = crate::guest::virtio_transport(30).regs;
    let mut p = Probe(Vec::new());
    let (r, e) = m.vm_fault_with(
        0,
        t30.base,
        false,
        dabt(4, 3, false),
        0,
        &mut [(t30, &mut p)],
    );
    assert_eq!(e, None);
    assert_eq!(
        r,
        Reply::Resume {
            advance: true,
            write: Some((3, 0x7472_6976)),
            wait: false
        }
    );
    let (r, _) = m.vm_fault_with(
        0,
        t30.base + 0x50,
        false,
        dabt(4, 1, true),
        1,
        &mut [(t30, &mut p)],
    );
    assert_eq!(r, Reply::ADVANCE);
    assert_eq!(p.0, [(0, None), (0x50, Some(1))]);
    // Next to the window: nobody's.
    let (r, _) = m.vm_fault_with(
        0,
        t30.base + 0x200,
        false,
        dabt(4, 1, true),
        1,
        &mut [(t30, &mut p)],
    );
    assert_eq!(r, Reply::InjectAbort);
    // A window over the UART's cannot take its accesses: the UART keeps them.
    let over = Region::new(UART, 0x1000);
    let (_, e) = m.vm_fault_with(
        0,
        UART,
        false,
        dabt(4, 2, true),
        u64::from(b'B'),
        &mut [(over, &mut p)],
    );
    assert_eq!(e, None);
    assert_eq!(m.uart.sink().as_slice(), b"B");
    assert_eq!(p.0.len(), 2);
}

/// The machine's own windows are found once, not mapped per exit; an extra window that
/// overlaps one of them is still never mapped: even its accesses outside the overlap abort.
#[test]
fn an_extra_window_over_the_uarts_gets_nothing() {
    let mut m = vm(true);
    let over = Region::new(UART + 0x800, 0x1000);
    let mut p = Probe(Vec::new());
    let (r, e) = m.vm_fault_with(
        0,
        UART + 0x1000,
        false,
        dabt(4, 1, true),
        1,
        &mut [(over, &mut p)],
    );
    assert_eq!(r, Reply::InjectAbort);
    assert!(matches!(e, Some(Event::BadAccess { .. })), "{e:?}");
    // An empty window and one that wraps around the address space: nobody's either.
    for w in [
        Region::new(UART + 0x4000, 0),
        Region::new(u64::MAX - 0xFFF, 0x2000),
    ] {
        let ipa = w.base;
        let (r, _) = m.vm_fault_with(0, ipa, false, dabt(4, 1, true), 1, &mut [(w, &mut p)]);
        assert_eq!(r, Reply::InjectAbort);
    }
    assert!(p.0.is_empty(), "{:?}", p.0);
    // The UART's own accesses still reach it.
    let (r, _) = m.vm_fault_with(
        0,
        UART,
        false,
        dabt(4, 2, true),
        u64::from(b'C'),
        &mut [(over, &mut p)],
    );
    assert_eq!(r, Reply::ADVANCE);
    assert_eq!(m.uart.sink().as_slice(), b"C");
}

#[test]
fn a_devices_spi_reaches_the_vgic_but_not_the_uarts() {
    let mut m = vm(true);
    m.set_spi_level(46, true);
    assert_eq!(m.vgic.irq(0, 32 + 46).map(|i| i.line_level), Some(true));
    m.set_spi_level(46, false);
    assert_eq!(m.vgic.irq(0, 32 + 46).map(|i| i.line_level), Some(false));
    // The UART's line follows its registers alone.
    let uart = m.layout.uart.spi;
    m.set_spi_level(uart, true);
    assert_eq!(m.vgic.irq(0, 32 + uart).map(|i| i.line_level), Some(false));
    // Beyond the vGIC's SPIs: ignored.
    m.set_spi_level(1000, true);
}

/// A WFI waits only when the vGIC holds nothing back for the vCPU: what it listed the kernel
/// sees in the list registers, what it could not list (all taken) only the vGIC knows.
#[test]
fn wfi_does_not_wait_while_an_interrupt_is_pending_unlisted() {
    for v3 in [false, true] {
        let mut m = vm(v3);
        let wfi = (EC_WFX << 26) | (1 << 25);
        enable(&mut m, VTIMER_INTID);
        m.vppi(0, VTIMER_INTID);
        // Raised, not yet listed: the exit's injections will list it, but the decision is
        // the vGIC's own, made before them.
        let (r, _) = m.vcpu_fault(0, wfi, 0, [0; 4], 0);
        assert_eq!(r, Reply::ADVANCE, "v3 {v3}");
        let got: Vec<_> = m.injections(0).collect();
        assert_eq!(got.len(), 1);
        // Listed: the kernel sees it pending in its list register; the vGIC has nothing else.
        let (r, _) = m.vcpu_fault(0, wfi, 0, [0; 4], 0);
        assert_eq!(r, Reply::WAIT, "v3 {v3}");
        // Another vCPU's interrupts are no reason for this one to stay awake.
        assert_eq!(m.maintenance(0, got[0].0), Some(VTIMER_INTID));
        let (r, _) = m.vcpu_fault(0, wfi, 0, [0; 4], 0);
        assert_eq!(r, Reply::WAIT, "v3 {v3}");
    }
}

/// More interrupts than list registers: a WFI with the rest held back does not wait (the
/// kernel, seeing only listed ones, could wait with an interrupt due).
#[test]
fn wfi_does_not_wait_with_interrupts_held_back() {
    let mut m = vm(true);
    m.vm_fault(0, GICD, false, dabt(4, 1, true), 0b11);
    for sgi in 0..8 {
        m.vgic.send_sgi(0, 1, sgi);
        m.vm_fault(0, GICR + 0x1_0100, false, dabt(4, 1, true), 1 << sgi);
    }
    assert_eq!(m.injections(0).count(), 4);
    let (r, _) = m.vcpu_fault(0, (EC_WFX << 26) | (1 << 25), 0, [0; 4], 0);
    assert_eq!(r, Reply::ADVANCE);
}

/// PSCI CPU_SUSPEND is a WFI (as KVM emulates it) returning SUCCESS: it waits too.
#[test]
fn cpu_suspend_waits_for_an_interrupt() {
    let mut m = vm(true);
    let hvc = (0x16u64 << 26) | (1 << 25);
    let (r, e) = m.vcpu_fault(0, hvc, 0, [0xC400_0001, 0, 0, 0], 0);
    assert_eq!(e, Some(Event::Idle));
    assert_eq!(
        r,
        Reply::Resume {
            advance: true,
            write: Some((0, 0)),
            wait: true
        }
    );
}
