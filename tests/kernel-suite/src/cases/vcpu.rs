//! VCPUs: a tiny bare-metal guest (below) runs at EL1 in its own VSpace while the case is
//! its VMM, answering its exits through the fault endpoint.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, ROOT_TCB, expect_err};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::vcpu::{reg, resume};
use axolotl_abi::{
    Error, FaultLabel, GUEST_VM_FAULT_LENGTH, MessageInfo, ObjectType as T, Rights,
    VCPU_FAULT_LENGTH,
};
use axolotl_sys::encode::vcpu_resume;
use axolotl_sys::{
    AsidPool, Endpoint, Frame, Msg, PageTable, Tcb, Untyped, UserContext, VSpace, Vcpu, syscall,
    vm_attr,
};

// The guest. Entered at EL1h with x0 = what to do, x1 = the GICC address (GICv2) it maps
// its virtual CPU interface at; it ends with `hvc #1`, x0 = 0 when all its checks passed or
// the number of the check that failed. Vectors come first (VBAR_EL1 wants 2 KiB alignment),
// the entry point follows at +0x800. Its MMU is off, so every access is Device memory:
// aligned accesses only.
core::arch::global_asm!(
    r#"
    .section .text.guest, "ax"
    .balign 4096
    .global axolotl_guest_start
axolotl_guest_start:
    // Vectors: anything but an IRQ at EL1h is unexpected and reported as check 0xe0 + slot.
    .irp slot, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    .if \slot == 5
    b guest_irq
    .else
    mrs x1, esr_el1
    mov x0, #(0xe0 + \slot)
    hvc #1
    b .
    .endif
    .endr

    .balign 0x800
guest_entry:
    mov x9, x1
    adr x2, axolotl_guest_start
    msr vbar_el1, x2
    isb
    cmp x0, #1
    b.eq guest_mmio
    cmp x0, #2
    b.eq guest_traps
    cmp x0, #3
    b.eq guest_refused
    cmp x0, #4
    b.eq guest_timer_v2
    cmp x0, #5
    b.eq guest_timer_v3
    cmp x0, #6
    b.eq guest_hostile
    cmp x0, #7
    b.eq guest_switch
    cmp x0, #8
    b.eq guest_spin
    // 9, 10: the timer, further ahead; 11, 12: no timer (an injection ends the wait).
    cmp x0, #9
    b.eq guest_timer_v2
    cmp x0, #10
    b.eq guest_timer_v3
    cmp x0, #11
    b.eq guest_timer_v2
    cmp x0, #12
    b.eq guest_timer_v3
    mov x0, #0xff
    hvc #1
    b .

guest_fail:
    hvc #1
    b .

guest_mmio:
    movz x9, #0x1000, lsl #16
    mov w2, #0x11
    strb w2, [x9]
    mov w2, #0x2222
    strh w2, [x9, #2]
    movz w2, #0x3333
    movk w2, #0x3333, lsl #16
    str w2, [x9, #4]
    movz x2, #0x4444
    movk x2, #0x4444, lsl #16
    movk x2, #0x4444, lsl #32
    movk x2, #0x4444, lsl #48
    str x2, [x9, #8]
    mov x0, #1
    ldrb w3, [x9, #0x10]
    cmp x3, #0x81
    b.ne guest_fail
    mov x0, #2
    ldrh w4, [x9, #0x12]
    mov x5, #0x8282
    cmp x4, x5
    b.ne guest_fail
    mov x0, #3
    ldr w6, [x9, #0x14]
    movz w7, #0x8383
    movk w7, #0x8383, lsl #16
    cmp x6, x7
    b.ne guest_fail
    mov x0, #4
    ldr x10, [x9, #0x18]
    movz x11, #0x8484
    movk x11, #0x8484, lsl #16
    movk x11, #0x8484, lsl #32
    movk x11, #0x8484, lsl #48
    cmp x10, x11
    b.ne guest_fail
    mov x0, #0
    hvc #1
    b .

guest_traps:
    // An EL1 register the VMM set before the start, and one set here that must survive
    // every exit below (the VMM reads it back afterwards).
    mrs x12, tpidr_el1
    mov x0, #1
    movz x13, #0x7e57
    cmp x12, x13
    b.ne guest_fail
    movz x13, #0xc0de
    msr contextidr_el1, x13
    // PSCI_VERSION through HVC: the VMM answers in x0.
    movz x0, #0x8400, lsl #16
    hvc #0
    movz x1, #1
    movk x1, #1, lsl #16
    cmp x0, x1
    mov x0, #2
    b.ne guest_fail
    // An SMC: answered NOT_SUPPORTED (-1).
    movz x0, #0x8400, lsl #16
    smc #0
    cmn x0, #1
    mov x0, #3
    b.ne guest_fail
    wfi
    // A trapped system register read (the EL1 physical timer belongs to the host) ...
    mov x5, #0
    mrs x5, cntp_ctl_el0
    cmp x5, #0x5a
    mov x0, #4
    b.ne guest_fail
    // ... and write: the VMM checks the value.
    movz x6, #0x1234
    msr cntp_cval_el0, x6
    mrs x13, contextidr_el1
    movz x14, #0xc0de
    cmp x13, x14
    mov x0, #5
    b.ne guest_fail
    mov x0, #0
    hvc #1
    b .

guest_refused:
    movz x9, #0x2000, lsl #16
    ldr x0, [x9]
    mov x0, #1
    hvc #1
    b .

guest_hostile:
    // Registers the host keeps for itself or does not switch: every access is an exit.
    msr actlr_el1, x0
    mrs x0, pmcr_el0
    mrs x0, mdscr_el1
    hvc #0x77
    mov x0, #0
    hvc #1
    b .

// Spinning without exits (only the kernel's tick takes the CPU away), counting in x3.
guest_spin:
    mov x2, #0x99
    msr tpidrro_el0, x2
    mov x3, #0
1:  add x3, x3, #1
    b 1b

// Switching: EL1 registers set to x1 (16-aligned) must hold their values across an exit
// while another guest ran in between.
guest_switch:
    msr tpidr_el1, x1
    msr contextidr_el1, x1
    msr tpidrro_el0, x1
    msr mair_el1, x1
    msr far_el1, x1
    msr elr_el1, x1
    msr tcr_el1, x1
    msr cntv_cval_el0, x1
    mov sp, x1
    isb
    hvc #2
    mov x0, #1
    mrs x2, tpidr_el1
    cmp x2, x1
    b.ne guest_fail
    mov x0, #2
    mrs x2, contextidr_el1
    cmp x2, x1
    b.ne guest_fail
    mov x0, #3
    mrs x2, tpidrro_el0
    cmp x2, x1
    b.ne guest_fail
    mov x0, #4
    mrs x2, mair_el1
    cmp x2, x1
    b.ne guest_fail
    mov x0, #5
    mrs x2, far_el1
    cmp x2, x1
    b.ne guest_fail
    mov x0, #6
    mrs x2, elr_el1
    cmp x2, x1
    b.ne guest_fail
    mov x0, #7
    mrs x2, tcr_el1
    cmp x2, x1
    b.ne guest_fail
    mov x0, #8
    mrs x2, cntv_cval_el0
    cmp x2, x1
    b.ne guest_fail
    mov x0, #9
    mov x2, sp
    cmp x2, x1
    b.ne guest_fail
    // MPIDR_EL1 reads the VMPIDR_EL2 the VMM gave this vCPU: Aff0 = bits [11:4] of x1.
    mov x0, #10
    mrs x2, mpidr_el1
    and x2, x2, #0xff
    ubfx x3, x1, #4, #8
    cmp x2, x3
    b.ne guest_fail
    mov x0, #0
    hvc #1
    b .

// Timer: arm the virtual timer a little ahead, unmask IRQs, wait; the handler checks it
// got interrupt 27 through the virtual CPU interface, silences the timer and ends it.
guest_timer_v2:
    mov w1, #1
    str w1, [x9]          // GICC_CTLR: group 0 on
    mov w1, #0xff
    str w1, [x9, #4]      // GICC_PMR
    b guest_timer
guest_timer_v3:
    mov x1, #0xff
    msr icc_pmr_el1, x1
    mov x1, #1
    msr icc_igrpen1_el1, x1
    isb
guest_timer:
    mov x20, #0
    mov x21, #0x10
    cmp x0, #11
    b.ge 2f
    mov x1, #0x2000
    cmp x0, #9
    b.lt 3f
    movz x1, #0x40, lsl #16
3:  mrs x2, cntvct_el0
    add x1, x2, x1
    msr cntv_cval_el0, x1
    mov x1, #1
    msr cntv_ctl_el0, x1
    isb
2:  msr daifclr, #2
1:  wfi
    cbz x20, 1b
    mov x0, x21
    hvc #1
    b .

guest_irq:
    msr cntv_ctl_el0, xzr
    cbz x9, 2f
    ldr w1, [x9, #0xc]    // GICC_IAR
    and w2, w1, #0x3ff
    cmp w2, #27
    cset x21, ne
    str w1, [x9, #0x10]   // GICC_EOIR
    b 3f
2:  mrs x1, icc_iar1_el1
    cmp x1, #27
    cset x21, ne
    msr icc_eoir1_el1, x1
3:  mov x20, #1
    eret

    .global axolotl_guest_end
axolotl_guest_end:
    .text
"#
);

unsafe extern "C" {
    static axolotl_guest_start: u8;
    static axolotl_guest_end: u8;
}

const GUEST_RAM: u64 = 0x4000_0000;
const GUEST_ENTRY: u64 = GUEST_RAM + 0x800;
const GUEST_STACK_TOP: u64 = GUEST_RAM + 0x2000;
const GICC_IPA: u64 = 0x0801_0000;
const MMIO_IPA: u64 = 0x1000_0000;
/// EL1h with D, A, I, F masked.
const SPSR_EL1H: u64 = 0x3c5;

const EC_WFX: u64 = 0x01;
const EC_HVC: u64 = 0x16;
const EC_SMC: u64 = 0x17;
const EC_SYSREG: u64 = 0x18;
const EC_DABT_LOWER: u64 = 0x24;

struct Guest {
    tcb: Tcb,
    vcpu: Vcpu,
    vspace: VSpace,
    ep: Endpoint,
}

/// Maps `frame` at `ipa` in `vs`, making page tables as needed.
fn map_in(
    env: &mut Env,
    vs: VSpace,
    frame: Frame,
    ipa: u64,
    r: Rights,
    attrs: u64,
) -> Result<(), Fail> {
    for _ in 0..4 {
        match frame.map(vs, ipa, r, attrs) {
            Ok(()) => return Ok(()),
            Err(e) if e.error == Error::FailedLookup => {
                let pt = PageTable(env.alloc(T::PageTable, 0)?);
                pt.map(vs, ipa, 0).ctx("guest page table")?;
            }
            Err(e) => return Err(fail!("guest map at {ipa:#x}: {e:?}")),
        }
    }
    Err(fail!("guest map at {ipa:#x}: still no page table"))
}

/// A guest with the test program at GUEST_RAM, set up to run `mode` but not resumed.
fn guest(env: &mut Env, mode: u64, x1: u64) -> Result<Guest, Fail> {
    let vspace = VSpace(env.alloc(T::VSpace, 0)?);
    AsidPool(init_cap::ASID_POOL)
        .assign(vspace)
        .ctx("ASID for the guest")?;
    // The program, copied through a mapping in our own VSpace.
    let (code, v) = env.mapped_frame()?;
    // SAFETY: the guest blob is in our text; the frame is mapped read-write at v.
    unsafe {
        let start = &raw const axolotl_guest_start as usize;
        let len = &raw const axolotl_guest_end as usize - start;
        ensure!(len <= 4096, "guest program is {len} bytes");
        core::ptr::copy_nonoverlapping(start as *const u8, v as *mut u8, len);
    }
    let code2 = Frame(env.slot()?);
    ROOT_CNODE
        .copy(code2.0, D, ROOT_CNODE, code.0, D, Rights::ALL)
        .ctx("copy code frame cap")?;
    map_in(
        env,
        vspace,
        code2,
        GUEST_RAM,
        Rights::READ,
        vm_attr::CACHEABLE | vm_attr::EXECUTABLE,
    )?;
    let stack = env.frame()?;
    map_in(
        env,
        vspace,
        stack,
        GUEST_RAM + 0x1000,
        Rights::RW,
        vm_attr::CACHEABLE,
    )?;

    let ep = env.endpoint()?;
    let fep = env.mint(ep.0, Rights::ALL, 0x9e)?;
    let tcb = Tcb(env.alloc(T::Tcb, 0)?);
    tcb.set_space(fep, ROOT_CNODE, 0, vspace, 0)
        .ctx("TcbSetSpace")?;
    tcb.set_priority(ROOT_TCB, 100).ctx("priority")?;
    let vcpu = Vcpu(env.alloc(T::Vcpu, 0)?);
    vcpu.set_tcb(tcb).ctx("VcpuSetTcb")?;
    let mut regs = UserContext {
        pc: GUEST_ENTRY,
        sp: GUEST_STACK_TOP,
        spsr: SPSR_EL1H,
        ..Default::default()
    };
    regs.x[0] = mode;
    regs.x[1] = x1;
    tcb.write_registers(false, 0, axolotl_abi::USER_CONTEXT_WORDS, &regs)
        .ctx("guest registers")?;
    Ok(Guest {
        tcb,
        vcpu,
        vspace,
        ep,
    })
}

fn ec(esr: u64) -> u64 {
    esr >> 26
}

/// Receives the next exit, checking the badge.
fn next_exit(g: &Guest) -> Result<Msg, Fail> {
    let m = g.ep.recv();
    ensure_eq!(m.badge, 0x9e, "fault badge");
    Ok(m)
}

fn reply(flags: u64, reg: u64, value: u64) {
    let (info, mrs) = vcpu_resume(flags, reg, value);
    syscall::reply(info, mrs);
}

/// Expects the guest's final `hvc #1`; returns its x0.
fn expect_end(m: &Msg) -> Result<u64, Fail> {
    ensure_eq!(m.label(), FaultLabel::VcpuFault as u64, "exit label");
    let esr = m.mrs[0];
    ensure!(
        ec(esr) == EC_HVC && esr & 0xffff == 1,
        "expected the guest's final hvc #1, got ESR {esr:#x} (x0 {:#x}, x1 {:#x})",
        m.mrs[3],
        axolotl_sys::ipc::get_mr(4)
    );
    Ok(m.mrs[3])
}

pub fn mmio(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 1, 0)?;
    g.tcb.resume().ctx("resume")?;
    // Stores of widths 1, 2, 4, 8, then loads of the same widths.
    let stores: [(u64, u64, u64); 4] = [
        (0, 0, 0x11),
        (2, 1, 0x2222),
        (4, 2, 0x3333_3333),
        (8, 3, 0x4444_4444_4444_4444),
    ];
    for (off, sas, val) in stores {
        let m = next_exit(&g)?;
        ensure_eq!(
            (m.label(), m.info.length()),
            (FaultLabel::VmFault as u64, GUEST_VM_FAULT_LENGTH),
            "store exit label, length"
        );
        let esr = m.mrs[3];
        ensure_eq!(
            (m.mrs[1], m.mrs[2]),
            (MMIO_IPA + off, 0),
            "store IPA, prefetch"
        );
        ensure_eq!(ec(esr), EC_DABT_LOWER, "store ESR class");
        ensure!(
            esr & (1 << 24) != 0 && esr & (1 << 6) != 0,
            "store ISV/WnR in {esr:#x}"
        );
        ensure_eq!((esr >> 22) & 3, sas, "store access size");
        ensure_eq!(axolotl_sys::ipc::get_mr(4), val, "stored value");
        let pc = g.tcb.read_registers(false, 0, 1).ctx("read pc")?.pc;
        ensure_eq!(m.mrs[0], pc, "store ip (the guest's pc)");
        reply(resume::ADVANCE, 0, 0);
    }
    for (off, sas) in [(0x10u64, 0u64), (0x12, 1), (0x14, 2), (0x18, 3)] {
        let m = next_exit(&g)?;
        ensure_eq!(m.label(), FaultLabel::VmFault as u64, "load exit label");
        let esr = m.mrs[3];
        ensure_eq!(m.mrs[1], MMIO_IPA + off, "load IPA");
        ensure!(
            esr & (1 << 24) != 0 && esr & (1 << 6) == 0,
            "load ISV/WnR in {esr:#x}"
        );
        ensure_eq!((esr >> 22) & 3, sas, "load access size");
        let width = 8u32 << sas;
        let pattern = 0x8080_8080_8080_8080u64 | (0x0101_0101_0101_0101 * (sas + 1));
        let value = if width == 64 {
            pattern
        } else {
            pattern & ((1 << width) - 1)
        };
        reply(
            resume::ADVANCE | resume::WRITE_REG,
            (esr >> 16) & 0x1f,
            value,
        );
    }
    let m = next_exit(&g)?;
    ensure_eq!(expect_end(&m)?, 0, "guest's failed check (0 = none)");
    g.tcb.suspend().ctx("suspend")?;
    Ok(())
}

pub fn traps(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 2, 0)?;
    g.vcpu
        .write_reg(reg::TPIDR_EL1, 0x7e57)
        .ctx("VcpuWriteReg TPIDR_EL1")?;
    g.tcb.resume().ctx("resume")?;

    // HVC PSCI_VERSION: the reported ip is the hvc itself; ADVANCE skips it.
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.info.length()),
        (FaultLabel::VcpuFault as u64, VCPU_FAULT_LENGTH),
        "hvc exit label, length"
    );
    ensure_eq!(
        (ec(m.mrs[0]), m.mrs[0] & 0xffff),
        (EC_HVC, 0),
        "hvc #0 syndrome"
    );
    ensure_eq!(m.mrs[3], 0x8400_0000, "PSCI function id in x0");
    ensure_eq!(
        insn_at(&g, m.mrs[1])?,
        0xd400_0002,
        "instruction at the hvc exit ip"
    );
    ensure_eq!(m.mrs[2] & 0x1f, 5, "spsr mode EL1h");
    reply(resume::ADVANCE | resume::WRITE_REG, 0, 0x1_0001);

    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), ec(m.mrs[0])),
        (FaultLabel::VcpuFault as u64, EC_SMC),
        "smc exit"
    );
    ensure_eq!(
        insn_at(&g, m.mrs[1])?,
        0xd400_0003,
        "instruction at the smc exit ip"
    );
    reply(resume::ADVANCE | resume::WRITE_REG, 0, u64::MAX);

    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), ec(m.mrs[0])),
        (FaultLabel::VcpuFault as u64, EC_WFX),
        "wfi exit"
    );
    ensure_eq!(m.mrs[0] & 1, 0, "WFI, not WFE");
    reply(resume::ADVANCE, 0, 0);

    let m = next_exit(&g)?;
    let esr = m.mrs[0];
    ensure_eq!(
        (m.label(), ec(esr)),
        (FaultLabel::VcpuFault as u64, EC_SYSREG),
        "mrs exit"
    );
    ensure_eq!((esr & 1, (esr >> 5) & 0x1f), (1, 5), "read direction, Rt");
    reply(resume::ADVANCE | resume::WRITE_REG, 5, 0x5a);

    let m = next_exit(&g)?;
    let esr = m.mrs[0];
    ensure_eq!(
        (m.label(), ec(esr)),
        (FaultLabel::VcpuFault as u64, EC_SYSREG),
        "msr exit"
    );
    ensure_eq!((esr & 1, (esr >> 5) & 0x1f), (0, 6), "write direction, Rt");
    ensure_eq!(axolotl_sys::ipc::get_mr(7), 0x1234, "value written (x[Rt])");
    reply(resume::ADVANCE, 0, 0);

    let m = next_exit(&g)?;
    ensure_eq!(expect_end(&m)?, 0, "guest's failed check (0 = none)");
    ensure_eq!(
        g.vcpu.read_reg(reg::CONTEXTIDR_EL1).ctx("VcpuReadReg")?,
        0xc0de,
        "CONTEXTIDR_EL1 the guest set"
    );
    expect_err(
        g.vcpu.read_reg(reg::COUNT),
        Error::InvalidArgument,
        "register index out of range",
    )?;
    g.tcb.suspend().ctx("suspend")?;
    Ok(())
}

/// The guest's instruction at `ip`, read through our own mapping of its code frame.
fn insn_at(_g: &Guest, ip: u64) -> Result<u32, Fail> {
    let off = ip.checked_sub(GUEST_RAM).filter(|o| *o < 4096);
    let Some(off) = off else {
        return Err(fail!("ip {ip:#x} outside the guest's code"));
    };
    // SAFETY: the blob is in our text; same offsets as in the guest.
    Ok(unsafe {
        core::ptr::read_volatile((&raw const axolotl_guest_start).add(off as usize) as *const u32)
    })
}

pub fn refused(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 3, 0)?;
    g.tcb.resume().ctx("resume")?;
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.mrs[1], m.mrs[2]),
        (FaultLabel::VmFault as u64, 0x2000_0000, 0),
        "abort label, IPA, prefetch"
    );
    let ip = m.mrs[0];
    // A reply without words retries the access: the same exit again.
    syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.mrs[0], m.mrs[1]),
        (FaultLabel::VmFault as u64, ip, 0x2000_0000),
        "retried abort"
    );
    // Refused: the VMM stops the guest instead of answering.
    g.tcb.suspend().ctx("suspend")?;
    let c = g.tcb.read_registers(false, 0, 3).ctx("read registers")?;
    ensure_eq!(
        (c.pc, c.spsr & 0x1f),
        (ip, 5),
        "stopped at the access, in EL1h"
    );
    Ok(())
}

pub fn hostile(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 6, 0)?;
    // An EL2 PSTATE from the VMM would let `eret` run guest code at EL2: it becomes EL1h.
    let mut c = g.tcb.read_registers(false, 0, 3).ctx("read registers")?;
    c.spsr = 0x3c9;
    g.tcb
        .write_registers(false, 0, 3, &c)
        .ctx("write registers")?;
    let c = g.tcb.read_registers(false, 0, 3).ctx("read registers")?;
    ensure_eq!(c.spsr, SPSR_EL1H, "sanitised spsr");
    g.tcb.resume().ctx("resume")?;
    // ACTLR_EL1 (TACR), PMCR_EL0 (TPMCR), MDSCR_EL1 (TDA): each a delivered exit.
    for what in ["actlr write", "pmcr read", "mdscr read"] {
        let m = next_exit(&g)?;
        ensure!(
            m.label() == FaultLabel::VcpuFault as u64 && ec(m.mrs[0]) == EC_SYSREG,
            "{what}: label {} ESR {:#x}",
            m.label(),
            m.mrs[0]
        );
        reply(resume::ADVANCE, 0, 0);
    }
    let m = next_exit(&g)?;
    ensure_eq!(
        (ec(m.mrs[0]), m.mrs[0] & 0xffff),
        (EC_HVC, 0x77),
        "hvc #0x77"
    );
    reply(resume::ADVANCE, 0, 0);
    let m = next_exit(&g)?;
    ensure_eq!(expect_end(&m)?, 0, "guest's failed check (0 = none)");
    g.tcb.suspend().ctx("suspend")?;
    Ok(())
}

/// A device untyped that starts at `paddr`.
fn device_untyped(env: &Env, paddr: u64) -> Option<Untyped> {
    env.bi
        .untyped
        .iter()
        .take(env.bi.num_untyped as usize)
        .position(|u| u.is_device != 0 && u.paddr == paddr)
        .map(|i| Untyped(init_cap::FIRST_UNTYPED + i as u64))
}

pub fn virtual_timer(env: &mut Env) -> Result<(), Fail> {
    let (g, dev) = interrupt_guest(env, 4)?;
    g.tcb.resume().ctx("resume")?;
    let (r, wfis) = timer_exits(&g, env.bi.gic_version, resume::ADVANCE)?;
    let _ = wfis;
    g.tcb.suspend().ctx("suspend")?;
    if let Some(ut) = dev {
        ROOT_CNODE.revoke(ut.0, D).ctx("revoke the GICV untyped")?;
    }
    ensure_eq!(r, 0, "guest saw interrupt 27 (0) or another (1)");
    Ok(())
}

/// A guest that takes interrupts (`mode` 4, 9 or 11 on GICv2, the next mode on GICv3: its
/// virtual CPU interface mapped at GICC_IPA on GICv2), and the device untyped to revoke.
fn interrupt_guest(env: &mut Env, mode: u64) -> Result<(Guest, Option<Untyped>), Fail> {
    let v2 = env.bi.gic_version == 2;
    Ok(if v2 {
        let g = guest(env, mode, GICC_IPA)?;
        let ut = device_untyped(env, env.bi.gicv_paddr)
            .ok_or_else(|| fail!("no device untyped at GICV {:#x}", env.bi.gicv_paddr))?;
        for page in 0..2 {
            let f = Frame(env.slot()?);
            ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f.0, 1)
                .ctx("GICV frame")?;
            map_in(env, g.vspace, f, GICC_IPA + page * 4096, Rights::RW, 0)?;
        }
        (g, Some(ut))
    } else {
        (guest(env, mode + 1, 0)?, None)
    })
}

/// A timer guest's exits up to its end, each WFI answered with `wfi_flags`: the guest's
/// result and how many WFI exits it made.
fn timer_exits(g: &Guest, gic_version: u64, wfi_flags: u64) -> Result<(u64, u64), Fail> {
    let group = if gic_version == 2 { 0 } else { 1 };
    let (mut vppi, mut maint, mut wfis) = (0, 0, 0);
    let r = loop {
        let m = next_exit(g)?;
        match FaultLabel::from_label(m.label()) {
            Some(FaultLabel::VcpuFault) if ec(m.mrs[0]) == EC_WFX => {
                wfis += 1;
                // The timer is due within 70 ms; this many waits means it never came.
                ensure!(wfis < 200_000, "no timer interrupt after {wfis} WFI exits");
                reply(wfi_flags, 0, 0);
            }
            Some(FaultLabel::VppiEvent) => {
                ensure_eq!(m.mrs[0], 27, "VPPI irq");
                vppi += 1;
                g.vcpu.inject_irq(27, 0xa0, group, 0).ctx("VcpuInjectIrq")?;
                expect_err(
                    g.vcpu.inject_irq(27, 0xa0, group, 0),
                    Error::DeleteFirst,
                    "inject into a busy list register",
                )?;
                syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
            }
            Some(FaultLabel::VgicMaintenance) => {
                ensure_eq!(m.mrs[0], 0, "maintenance list register");
                maint += 1;
                g.vcpu.ack_vppi(27).ctx("VcpuAckVppi")?;
                syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
            }
            _ => break expect_end(&m)?,
        }
    };
    ensure_eq!((vppi, maint), (1, 1), "VPPI events, maintenance interrupts");
    Ok((r, wfis))
}

// A native thread below the guests' priority: it runs only while the case (the VMM) and
// its guest both wait, and says so on the guest's fault endpoint with its own badge.
const SH_LOW_NTFN: usize = 10;
const SH_LOW_EP: usize = 11;
const LOW_BADGE: u64 = 0x51;
const LOW_PRIORITY: u64 = 50;

fn low_sender(_: u64) {
    loop {
        syscall::wait(crate::harness::shared(SH_LOW_NTFN));
        syscall::send(
            crate::harness::shared(SH_LOW_EP),
            MessageInfo::new(0x10, 0, 0, 0),
            [0; 4],
        );
    }
}

/// The low thread, started for guest `g`; signal what this returns to ask it for a message.
fn low_thread(env: &mut Env, g: &Guest) -> Result<axolotl_sys::Notification, Fail> {
    let n = env.notification()?;
    crate::harness::set_shared(SH_LOW_NTFN, n.0);
    crate::harness::set_shared(SH_LOW_EP, env.mint(g.ep.0, Rights::ALL, LOW_BADGE)?);
    env.spawn(low_sender, 0, LOW_PRIORITY, 0)?;
    // Badged: a signal before the thread waits must leave a bit set (badge 0 sets none).
    Ok(axolotl_sys::Notification(env.mint(n.0, Rights::ALL, 1)?))
}

/// The guest waits (it does not run: it would exit first, outranking the low thread).
fn expect_waiting(g: &Guest, low: axolotl_sys::Notification, what: &str) -> Result<(), Fail> {
    low.signal();
    let m = g.ep.recv();
    ensure!(
        m.badge == LOW_BADGE,
        "{what}: the guest ran instead of waiting (exit label {}, ESR {:#x})",
        m.label(),
        m.mrs[0]
    );
    Ok(())
}

/// WFI answered with WAIT: the guest does not run until its virtual timer's deadline (the
/// kernel's timer wakes it; the timer fires once it is loaded again), so it makes one or
/// two WFI exits, not one per round trip, and a lower-priority thread gets the CPU meanwhile.
pub fn wfi_waits_for_the_timer(env: &mut Env) -> Result<(), Fail> {
    let (g, dev) = interrupt_guest(env, 9)?;
    crate::harness::set_shared(12, 0);
    env.spawn(
        |_| loop {
            let n = crate::harness::shared(12);
            crate::harness::set_shared(12, n + 1);
            syscall::yield_now();
        },
        0,
        LOW_PRIORITY,
        0,
    )?;
    g.tcb.resume().ctx("resume")?;
    let (r, wfis) = timer_exits(&g, env.bi.gic_version, resume::ADVANCE | resume::WAIT)?;
    g.tcb.suspend().ctx("suspend")?;
    if let Some(ut) = dev {
        ROOT_CNODE.revoke(ut.0, D).ctx("revoke the GICV untyped")?;
    }
    ensure_eq!(r, 0, "guest saw interrupt 27 (0) or another (1)");
    // One WFI before the deadline; perhaps a second if the guest reaches its WFI again before
    // the kernel takes the timer's interrupt.
    ensure!(
        wfis <= 3,
        "{wfis} WFI exits for one timer interrupt: the guest did not wait"
    );
    ensure!(
        crate::harness::shared(12) > 0,
        "the lower-priority thread never ran while the guest waited"
    );
    Ok(())
}

/// WFI answered with WAIT and no timer armed: the guest waits until the VMM injects an
/// interrupt (VcpuInjectIrq wakes it). Suspending a waiting guest ends its wait (resumed, it
/// runs on past its WFI, which the architecture allows), and deleting a waiting guest leaves
/// the kernel's list of waiting guests sound: another guest waits and wakes on its timer.
pub fn wfi_waits_for_an_injection(env: &mut Env) -> Result<(), Fail> {
    let (g, dev) = interrupt_guest(env, 11)?;
    let low = low_thread(env, &g)?;
    let group = if env.bi.gic_version == 2 { 0 } else { 1 };
    g.tcb.resume().ctx("resume")?;
    let wfi = |what: &str| -> Result<(), Fail> {
        let m = next_exit(&g)?;
        ensure!(
            m.label() == FaultLabel::VcpuFault as u64 && ec(m.mrs[0]) == EC_WFX,
            "{what}: expected a WFI exit, got label {} ESR {:#x}",
            m.label(),
            m.mrs[0]
        );
        reply(resume::ADVANCE | resume::WAIT, 0, 0);
        Ok(())
    };
    wfi("first")?;
    expect_waiting(&g, low, "after the first WFI")?;
    // A second look: still waiting (nothing woke it meanwhile).
    expect_waiting(&g, low, "still")?;
    g.tcb.suspend().ctx("suspend a waiting guest")?;
    g.tcb.resume().ctx("resume it")?;
    wfi("after suspend and resume")?;
    expect_waiting(&g, low, "after the second WFI")?;
    g.vcpu.inject_irq(27, 0xa0, group, 0).ctx("VcpuInjectIrq")?;
    let m = next_exit(&g)?;
    ensure_eq!(
        m.label(),
        FaultLabel::VgicMaintenance as u64,
        "the injection woke the guest, which completed it"
    );
    syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
    let r = expect_end(&next_exit(&g)?)?;
    ensure_eq!(r, 0, "guest saw interrupt 27 (0) or another (1)");
    g.tcb.suspend().ctx("suspend")?;
    // The GICV frames come from one device untyped: emptied before the next guest's.
    let revoke = |dev: Option<Untyped>| -> Result<(), Fail> {
        if let Some(ut) = dev {
            ROOT_CNODE.revoke(ut.0, D).ctx("revoke the GICV untyped")?;
        }
        Ok(())
    };
    revoke(dev)?;

    // Deleted while it waits.
    let (g2, dev2) = interrupt_guest(env, 11)?;
    g2.tcb.resume().ctx("resume")?;
    let m = next_exit(&g2)?;
    ensure!(
        ec(m.mrs[0]) == EC_WFX,
        "expected a WFI exit, ESR {:#x}",
        m.mrs[0]
    );
    reply(resume::ADVANCE | resume::WAIT, 0, 0);
    ROOT_CNODE
        .delete(g2.tcb.0, D)
        .ctx("delete the waiting guest")?;
    revoke(dev2)?;
    let (g3, dev3) = interrupt_guest(env, 9)?;
    g3.tcb.resume().ctx("resume")?;
    let (r, wfis) = timer_exits(&g3, env.bi.gic_version, resume::ADVANCE | resume::WAIT)?;
    ensure_eq!(r, 0, "the next guest saw interrupt 27");
    ensure!(wfis <= 3, "{wfis} WFI exits for one timer interrupt");
    g3.tcb.suspend().ctx("suspend")?;
    revoke(dev3)
}

/// Binding rules and argument checks that need no guest running.
pub fn invocations(env: &mut Env) -> Result<(), Fail> {
    let v = Vcpu(env.alloc(T::Vcpu, 0)?);
    let t = Tcb(env.alloc(T::Tcb, 0)?);
    expect_err(
        v.read_reg(reg::TPIDR_EL0),
        Error::IllegalOperation,
        "TPIDR_EL0 unbound",
    )?;
    v.write_reg(reg::VBAR_EL1, 0x800).ctx("write VBAR")?;
    ensure_eq!(
        v.read_reg(reg::VBAR_EL1).ctx("read VBAR")?,
        0x800,
        "VBAR_EL1"
    );
    ensure_eq!(
        v.read_reg(reg::SCTLR_EL1).ctx("read SCTLR")? & 1,
        0,
        "a new VCPU's MMU is off"
    );
    expect_err(v.inject_irq(1020, 0, 0, 0), Error::RangeError, "virq 1020")?;
    expect_err(v.inject_irq(27, 0, 2, 0), Error::RangeError, "group 2")?;
    expect_err(
        v.inject_irq(27, 0, 0, 64),
        Error::RangeError,
        "list register 64",
    )?;
    v.inject_irq(40, 0, 0, 0).ctx("inject 40 into LR 0")?;
    expect_err(
        v.inject_irq(40, 0, 0, 1),
        Error::IllegalOperation,
        "same virq twice",
    )?;
    expect_err(
        v.ack_vppi(26),
        Error::InvalidArgument,
        "ack of a PPI not the guest's",
    )?;
    v.ack_vppi(27).ctx("ack 27")?;
    v.set_tcb(t).ctx("bind")?;
    v.write_reg(reg::TPIDR_EL0, 0x55).ctx("TPIDR_EL0 bound")?;
    let c = t.read_registers(false, 0, 35).ctx("read")?;
    ensure_eq!(c.tpidr_el0, 0x55, "TPIDR_EL0 is the thread's");
    // A bound guest's sp in EL1h is SP_EL1.
    let mut c = UserContext {
        spsr: SPSR_EL1H,
        sp: 0x9000,
        ..Default::default()
    };
    t.write_registers(false, 0, 3, &c).ctx("write")?;
    ensure_eq!(
        v.read_reg(reg::SP_EL1).ctx("SP_EL1")?,
        0x9000,
        "sp went to SP_EL1"
    );
    c.spsr = 0;
    c.sp = 0x7000;
    t.write_registers(false, 0, 3, &c).ctx("write EL0t")?;
    ensure_eq!(
        v.read_reg(reg::SP_EL1).ctx("SP_EL1")?,
        0x9000,
        "SP_EL1 kept"
    );
    ensure_eq!(
        t.read_registers(false, 0, 2).ctx("read")?.sp,
        0x7000,
        "EL0t sp is SP_EL0"
    );
    // Deleting the VCPU unbinds: the thread is native again (TPIDR_EL0 goes back to needing
    // a bound thread for a new VCPU; the thread's spsr is sanitised the native way).
    ROOT_CNODE.delete(v.0, D).ctx("delete VCPU")?;
    t.write_registers(
        false,
        0,
        3,
        &UserContext {
            spsr: SPSR_EL1H,
            ..Default::default()
        },
    )
    .ctx("write")?;
    ensure_eq!(
        t.read_registers(false, 0, 3).ctx("read")?.spsr,
        0,
        "native spsr after unbind"
    );
    let v2 = Vcpu(env.alloc(T::Vcpu, 0)?);
    v2.set_tcb(t).ctx("bind again")?;
    ROOT_CNODE.delete(t.0, D).ctx("delete TCB")?;
    expect_err(
        v2.read_reg(reg::TPIDR_EL0),
        Error::IllegalOperation,
        "TPIDR_EL0 after TCB delete",
    )?;
    Ok(())
}

fn tpidrro_el0() -> u64 {
    let v: u64;
    // SAFETY: reading an EL0-readable register.
    unsafe { core::arch::asm!("mrs {}, tpidrro_el0", out(reg) v) };
    v
}

/// Two guests, each stopped at an exit while the other runs: every register each set must
/// come back, and none of it may show in a native thread.
pub fn two_guests(env: &mut Env) -> Result<(), Fail> {
    let values = [0x1110u64, 0x2220];
    let a = guest(env, 7, values[0])?;
    let b = guest(env, 7, values[1])?;
    for (g, v) in [(&a, values[0]), (&b, values[1])] {
        ensure_eq!(
            g.vcpu.read_reg(reg::VMPIDR_EL2).ctx("read VMPIDR")?,
            0x8000_0000,
            "a new VCPU's VMPIDR_EL2"
        );
        // Affinity 0 from the guest's value; bits outside MPIDR's fields are dropped.
        let mpidr = (v >> 4) & 0xff | 0x00ff_0000_0000_0000;
        g.vcpu
            .write_reg(reg::VMPIDR_EL2, mpidr)
            .ctx("write VMPIDR")?;
        ensure_eq!(
            g.vcpu.read_reg(reg::VMPIDR_EL2).ctx("read VMPIDR")?,
            0x8000_0000 | (v >> 4) & 0xff,
            "VMPIDR_EL2 keeps MPIDR's fields, bit 31 set"
        );
    }
    for g in [&a, &b] {
        g.tcb.resume().ctx("resume")?;
        let m = next_exit(g)?;
        ensure_eq!(
            (m.label(), ec(m.mrs[0]), m.mrs[0] & 0xffff),
            (FaultLabel::VcpuFault as u64, EC_HVC, 2),
            "guest's hvc #2"
        );
        ensure_eq!(
            tpidrro_el0(),
            0,
            "TPIDRRO_EL0 in a native thread after a guest set it"
        );
        g.tcb.suspend().ctx("suspend at the exit")?;
    }
    for (g, v) in [(&a, values[0]), (&b, values[1])] {
        ensure_eq!(
            g.vcpu.read_reg(reg::TPIDR_EL1).ctx("read")?,
            v,
            "saved TPIDR_EL1"
        );
        ensure_eq!(g.vcpu.read_reg(reg::SP_EL1).ctx("read")?, v, "saved SP_EL1");
        let mut c = g.tcb.read_registers(false, 0, 1).ctx("read pc")?;
        c.pc += 4;
        g.tcb.write_registers(false, 0, 1, &c).ctx("skip the hvc")?;
        g.tcb.resume().ctx("resume")?;
        let m = next_exit(g)?;
        ensure_eq!(expect_end(&m)?, 0, "guest's failed check (0 = none)");
        g.tcb.suspend().ctx("suspend")?;
    }
    Ok(())
}

/// The VMM deletes the VCPU while its guest waits on an exit, then replies: the thread is
/// native again and retries the access at EL0, a plain VM fault (never a return to EL1).
pub fn delete_while_waiting(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 3, 0)?;
    g.tcb.resume().ctx("resume")?;
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.info.length()),
        (FaultLabel::VmFault as u64, GUEST_VM_FAULT_LENGTH),
        "guest abort"
    );
    let ip = m.mrs[0];
    ROOT_CNODE.delete(g.vcpu.0, D).ctx("delete the VCPU")?;
    syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.info.length(), m.mrs[0]),
        (FaultLabel::VmFault as u64, axolotl_abi::VM_FAULT_LENGTH, ip),
        "native VM fault at the same ip"
    );
    let c = g.tcb.read_registers(true, 0, 3).ctx("read registers")?;
    ensure_eq!(c.spsr & 0x1f, 0, "EL0t");
    Ok(())
}

/// QEMU virt's GIC frames (GICD, GICC, GICH, GICV, GICv2m; GICv3's ITS and redistributors)
/// lie in [0x0800_0000, 0x0900_0000): only GICV and the GICv2m MSI frame, on GICv2, may be
/// given out (the kernel uses neither; kernel-config's `Board::more_devices`).
pub fn gic_pages_kernel_only(env: &mut Env) -> Result<(), Fail> {
    const GIC_LO: u64 = 0x0800_0000;
    const GIC_HI: u64 = 0x0900_0000;
    const GICV2M: (u64, u64) = (0x0802_0000, 0x0802_1000);
    let bi = env.bi;
    let gicv = bi.gicv_paddr;
    match bi.gic_version {
        2 => ensure_eq!(gicv, 0x0804_0000, "GICV address"),
        3 => ensure_eq!(gicv, 0, "GICV address on GICv3"),
        v => return Err(fail!("GIC version {v}")),
    }
    let (mut gicv_untyped, mut v2m_untyped) = (0, 0);
    for u in bi.untyped.iter().take(bi.num_untyped as usize) {
        let (lo, hi) = (u.paddr, u.paddr + (1u64 << u.size_bits));
        if hi <= GIC_LO || lo >= GIC_HI {
            continue;
        }
        if gicv != 0 && u.is_device != 0 && (lo, hi) == GICV2M {
            v2m_untyped += 1;
            continue;
        }
        ensure!(
            u.is_device != 0
                && gicv != 0
                && lo == gicv
                && hi == gicv + axolotl_abi::bootinfo::GICV_SIZE,
            "untyped {lo:#x}..{hi:#x} covers kernel GIC registers"
        );
        gicv_untyped += 1;
    }
    ensure_eq!(gicv_untyped, (gicv != 0) as u32, "device untypeds of GICV");
    ensure_eq!(v2m_untyped, (gicv != 0) as u32, "device untypeds of GICv2m");
    Ok(())
}

/// The VMM refuses an access by failing it in the guest: the guest's own EL1 handler takes a
/// synchronous external abort (its vector reports 0xe4 with ESR_EL1).
pub fn abort_injected(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 3, 0)?;
    g.tcb.resume().ctx("resume")?;
    let m = next_exit(&g)?;
    ensure_eq!(m.label(), FaultLabel::VmFault as u64, "guest abort");
    let (ip, exit_esr) = (m.mrs[0], m.mrs[3]);
    reply(resume::INJECT_ABORT | resume::ADVANCE, 0, 0);
    let m = next_exit(&g)?;
    ensure_eq!(
        expect_end(&m)?,
        0xe4,
        "guest vector (0xe4: synchronous, EL1h)"
    );
    let esr = axolotl_sys::ipc::get_mr(4);
    ensure_eq!(esr >> 26, 0x25, "ESR_EL1 class: data abort, same EL");
    ensure_eq!(
        esr & 0x3f,
        0x10,
        "ESR_EL1 status: synchronous external abort"
    );
    ensure_eq!(esr & (1 << 6), exit_esr & (1 << 6), "ESR_EL1 WnR");
    ensure_eq!(
        g.vcpu.read_reg(reg::FAR_EL1).ctx("FAR_EL1")?,
        0x2000_0000,
        "FAR_EL1"
    );
    ensure_eq!(
        g.vcpu.read_reg(reg::ELR_EL1).ctx("ELR_EL1")?,
        ip,
        "ELR_EL1 (ADVANCE ignored)"
    );
    ensure_eq!(
        g.vcpu.read_reg(reg::SPSR_EL1).ctx("SPSR_EL1")? & 0x1f,
        5,
        "SPSR_EL1: was EL1h"
    );
    g.tcb.suspend().ctx("suspend")?;
    Ok(())
}

fn native_peer(_: u64) {
    crate::harness::set_shared(0, tpidrro_el0() + 1);
    syscall::signal(crate::harness::shared(1));
}

/// A guest that never exits is preempted by the kernel tick like any thread: a native
/// thread of its priority gets the CPU (seeing none of the guest's registers), and the guest
/// kept counting.
pub fn preempted(env: &mut Env) -> Result<(), Fail> {
    let g = guest(env, 8, 0)?;
    let done = env.notification()?;
    crate::harness::set_shared(1, env.mint(done.0, Rights::ALL, 1)?);
    g.tcb.resume().ctx("resume")?;
    env.spawn(native_peer, 0, 100, 0)?;
    done.wait();
    g.tcb.suspend().ctx("suspend")?;
    ensure_eq!(
        crate::harness::shared(0),
        1,
        "native thread's TPIDRRO_EL0 (+1)"
    );
    let c = g.tcb.read_registers(false, 0, 35).ctx("read registers")?;
    ensure!(c.x[3] > 1000, "guest counted only to {}", c.x[3]);
    ensure_eq!(
        g.vcpu.read_reg(reg::TPIDRRO_EL0).ctx("TPIDRRO_EL0")?,
        0x99,
        "guest's TPIDRRO_EL0"
    );
    Ok(())
}

// A VMM that dies in the middle of an exit (issue #16): a thread of its own answers the
// guest's exits until the one it is told to abandon, then holds it (its reply cap taken,
// never used) until the case suspends it, as a VMM PD's restart does. Whoever receives on
// the fault endpoint next must get that exit again, the guest as it was.
const SH_EP: usize = 2;
const SH_DONE: usize = 3;
const SH_HOLD: usize = 4;
const SH_VCPU: usize = 5;
const SH_GROUP: usize = 6;
const SH_LABEL: usize = 7;
const SH_WORD0: usize = 8;
const SH_WORD1: usize = 9;

/// `arg`: the label of the exit to die in (a VcpuFault other than WFI/WFE, or an event).
fn dying_vmm(arg: u64) {
    use crate::harness::{set_shared, shared};
    let ep = Endpoint(shared(SH_EP));
    let vcpu = Vcpu(shared(SH_VCPU));
    loop {
        let m = ep.recv();
        let label = m.label();
        let wfx = label == FaultLabel::VcpuFault as u64 && ec(m.mrs[0]) == EC_WFX;
        if label == arg && !wfx {
            set_shared(SH_LABEL, label);
            set_shared(SH_WORD0, m.mrs[0]);
            set_shared(SH_WORD1, m.mrs[1]);
            syscall::signal(shared(SH_DONE));
            // Dead in the middle of the exit: the reply is never sent.
            loop {
                syscall::wait(shared(SH_HOLD));
            }
        }
        match FaultLabel::from_label(label) {
            Some(FaultLabel::VppiEvent) => {
                let _ = vcpu.inject_irq(27, 0xa0, shared(SH_GROUP), 0);
                syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
            }
            Some(FaultLabel::VgicMaintenance) => {
                let _ = vcpu.ack_vppi(27);
                syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
            }
            _ if wfx => reply(resume::ADVANCE, 0, 0),
            // Anything else is not this test's guest: leave it unanswered, the case sees
            // the wrong exit.
            _ => {
                set_shared(SH_LABEL, label | 0x100);
                syscall::signal(shared(SH_DONE));
                loop {
                    syscall::wait(shared(SH_HOLD));
                }
            }
        }
    }
}

/// Starts guest `g` under a `dying_vmm` that abandons exit `label`; returns once it has,
/// with the VMM thread (to suspend) and the abandoned exit's first two words.
fn die_in_exit(
    env: &mut Env,
    g: &Guest,
    label: FaultLabel,
    group: u64,
) -> Result<(Tcb, [u64; 2]), Fail> {
    use crate::harness::{set_shared, shared};
    let done = env.notification()?;
    let hold = env.notification()?;
    set_shared(SH_EP, g.ep.0);
    set_shared(SH_DONE, env.mint(done.0, Rights::ALL, 1)?);
    set_shared(SH_HOLD, hold.0);
    set_shared(SH_VCPU, g.vcpu.0);
    set_shared(SH_GROUP, group);
    let vmm = env.spawn(dying_vmm, label as u64, 150, 0)?;
    g.tcb.resume().ctx("resume")?;
    done.wait();
    ensure_eq!(shared(SH_LABEL), label as u64, "the exit the VMM died in");
    Ok((vmm.tcb, [shared(SH_WORD0), shared(SH_WORD1)]))
}

/// Synchronous exits: a stage-2 abort and an HVC. The guest's PC was never advanced, so it
/// takes the same exit again into the endpoint, at the same instruction, its EL1 state and
/// virtual counter offset untouched.
pub fn exit_redelivered_after_vmm_dies(env: &mut Env) -> Result<(), Fail> {
    // The access to unmapped 0x2000_0000.
    let g = guest(env, 3, 0)?;
    g.vcpu
        .write_reg(reg::CNTVOFF_EL2, 0x1234_5678)
        .ctx("CNTVOFF_EL2")?;
    let (vmm, [ip, ipa]) = die_in_exit(env, &g, FaultLabel::VmFault, 0)?;
    ensure_eq!(ipa, 0x2000_0000, "abandoned abort's IPA");
    let exit = |what| g.vcpu.read_reg(reg::EXIT).ctx(what);
    ensure_eq!(
        exit("EXIT")?,
        1 | reg::EXIT_PENDING,
        "exit 1, waiting in it"
    );
    expect_err(
        g.vcpu.write_reg(reg::EXIT, 0),
        Error::InvalidArgument,
        "EXIT written",
    )?;
    vmm.suspend().ctx("suspend the VMM")?;
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.info.length(), m.mrs[0], m.mrs[1]),
        (FaultLabel::VmFault as u64, GUEST_VM_FAULT_LENGTH, ip, ipa),
        "the abort again, at the same instruction"
    );
    ensure_eq!(
        exit("EXIT")?,
        1 | reg::EXIT_PENDING,
        "the same exit, its number kept"
    );
    ensure_eq!(
        g.vcpu.read_reg(reg::CNTVOFF_EL2).ctx("CNTVOFF_EL2")?,
        0x1234_5678,
        "virtual counter offset"
    );
    // The new VMM answers it: the load completes and the guest goes on to its end.
    reply(resume::ADVANCE | resume::WRITE_REG, 0, 7);
    let m = next_exit(&g)?;
    ensure_eq!(expect_end(&m)?, 1, "the guest went on past the access");
    ensure_eq!(
        exit("EXIT")?,
        2 | reg::EXIT_PENDING,
        "the next exit, numbered on"
    );
    g.tcb.suspend().ctx("suspend")?;
    ensure_eq!(exit("EXIT")?, 2, "a stopped guest waits in no exit");

    // An HVC (the unknown mode's `hvc #1` with x0 = 0xff).
    let g = guest(env, 0x99, 0)?;
    let (vmm, [esr, ip]) = die_in_exit(env, &g, FaultLabel::VcpuFault, 0)?;
    ensure!(ec(esr) == EC_HVC, "abandoned exit's ESR {esr:#x}");
    vmm.suspend().ctx("suspend the VMM")?;
    let m = next_exit(&g)?;
    ensure_eq!(
        (m.label(), m.info.length(), m.mrs[0], m.mrs[1]),
        (FaultLabel::VcpuFault as u64, VCPU_FAULT_LENGTH, esr, ip),
        "the HVC again, at the same instruction"
    );
    ensure_eq!(expect_end(&m)?, 0xff, "x0 of the HVC");
    reply(resume::ADVANCE, 0, 0);
    g.tcb.suspend().ctx("suspend")?;
    let c = g.tcb.read_registers(false, 0, 1).ctx("read registers")?;
    ensure_eq!(c.pc, ip + 4, "one HVC executed, skipped once");
    Ok(())
}

/// Asynchronous exits: the virtual timer's event and the VGIC maintenance. No instruction
/// raises them again (the timer's PPI stays masked until the VMM acks it; the kernel already
/// emptied the completed list register), so the kernel sends the abandoned one again itself;
/// the new VMM finishes the interrupt and the guest sees it exactly once.
pub fn event_redelivered_after_vmm_dies(env: &mut Env) -> Result<(), Fail> {
    for label in [FaultLabel::VppiEvent, FaultLabel::VgicMaintenance] {
        let v2 = env.bi.gic_version == 2;
        let (g, dev) = if v2 {
            let g = guest(env, 4, GICC_IPA)?;
            let ut = device_untyped(env, env.bi.gicv_paddr)
                .ok_or_else(|| fail!("no device untyped at GICV {:#x}", env.bi.gicv_paddr))?;
            for page in 0..2 {
                let f = Frame(env.slot()?);
                ut.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, f.0, 1)
                    .ctx("GICV frame")?;
                map_in(env, g.vspace, f, GICC_IPA + page * 4096, Rights::RW, 0)?;
            }
            (g, Some(ut))
        } else {
            (guest(env, 5, 0)?, None)
        };
        let group = if v2 { 0 } else { 1 };
        let (vmm, [word, _]) = die_in_exit(env, &g, label, group)?;
        let off = g.vcpu.read_reg(reg::CNTVOFF_EL2).ctx("CNTVOFF_EL2")?;
        vmm.suspend().ctx("suspend the VMM")?;
        let m = next_exit(&g)?;
        ensure_eq!(
            (m.label(), m.mrs[0]),
            (label as u64, word),
            "the abandoned event again, first"
        );
        ensure_eq!(
            g.vcpu.read_reg(reg::CNTVOFF_EL2).ctx("CNTVOFF_EL2")?,
            off,
            "virtual counter offset"
        );
        // The new VMM goes on from there, answering as `virtual_timer` does.
        let (mut vppi, mut maint, mut wfis) = (0, 0, 0);
        let mut next = Some(m);
        let r = loop {
            let m = match next.take() {
                Some(m) => m,
                None => next_exit(&g)?,
            };
            match FaultLabel::from_label(m.label()) {
                Some(FaultLabel::VcpuFault) if ec(m.mrs[0]) == EC_WFX => {
                    wfis += 1;
                    ensure!(wfis < 200_000, "no timer interrupt after {wfis} WFI exits");
                    reply(resume::ADVANCE, 0, 0);
                }
                Some(FaultLabel::VppiEvent) => {
                    vppi += 1;
                    g.vcpu.inject_irq(27, 0xa0, group, 0).ctx("VcpuInjectIrq")?;
                    syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
                }
                Some(FaultLabel::VgicMaintenance) => {
                    ensure_eq!(m.mrs[0], 0, "maintenance list register");
                    maint += 1;
                    g.vcpu.ack_vppi(27).ctx("VcpuAckVppi")?;
                    syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
                }
                _ => break expect_end(&m)?,
            }
        };
        g.tcb.suspend().ctx("suspend")?;
        if let Some(ut) = dev {
            ROOT_CNODE.revoke(ut.0, D).ctx("revoke the GICV untyped")?;
        }
        // Seen by the new VMM: a redelivered VPPI and its maintenance, or the redelivered
        // maintenance alone.
        let want = if label == FaultLabel::VppiEvent {
            (1, 1)
        } else {
            (0, 1)
        };
        ensure_eq!(
            (vppi, maint),
            want,
            "VPPI events, maintenance interrupts after the death"
        );
        ensure_eq!(r, 0, "guest saw interrupt 27 (0) or another (1)");
    }
    Ok(())
}

/// A VMM taking up a guest it did not start (a restarted one, issue #16) reads what each list
/// register holds from the VCPU, and may empty one; it never writes a value of its own there.
pub fn list_registers_read_and_cleared(env: &mut Env) -> Result<(), Fail> {
    let v2 = env.bi.gic_version == 2;
    let group = if v2 { 0 } else { 1 };
    let g = guest(env, 0x99, 0)?;
    let v = g.vcpu;
    ensure_eq!(
        v.read_reg(reg::LR0).ctx("read LR 0")?,
        0,
        "a new VCPU's LR 0"
    );
    v.inject_irq(33, 0xa0, group, 0).ctx("VcpuInjectIrq")?;
    let lr = v.read_reg(reg::LR0).ctx("read LR 0")?;
    let (state, vintid) = if v2 {
        ((lr >> 28) & 3, lr & 0x3ff)
    } else {
        ((lr >> 62) & 3, lr & 0xffff_ffff)
    };
    ensure_eq!((state, vintid), (1, 33), "LR 0 lists 33 pending ({lr:#x})");
    ensure_eq!(v.read_reg(reg::LR0 + 1).ctx("read LR 1")?, 0, "LR 1 empty");
    expect_err(
        v.write_reg(reg::LR0, lr),
        Error::InvalidArgument,
        "a list register written with a value",
    )?;
    expect_err(
        v.read_reg(reg::LR0 + 16),
        Error::InvalidArgument,
        "a list register past the hardware's",
    )?;
    expect_err(
        v.read_reg(reg::LR0 - 1),
        Error::InvalidArgument,
        "an index between the registers and the list registers",
    )?;
    ensure_eq!(
        v.read_reg(reg::LR0).ctx("read LR 0")?,
        lr,
        "LR 0 unchanged by refusals"
    );
    v.write_reg(reg::LR0, 0).ctx("empty LR 0")?;
    ensure_eq!(v.read_reg(reg::LR0).ctx("read LR 0")?, 0, "LR 0 emptied");
    v.inject_irq(33, 0xa0, group, 0)
        .ctx("VcpuInjectIrq into the emptied LR")?;
    Ok(())
}
