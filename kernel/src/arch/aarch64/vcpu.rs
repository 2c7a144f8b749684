//! The hardware side of VCPUs: EL1 system registers, HCR_EL2 modes and the virtual CPU
//! interface of the GIC (GICv3 ICH_* system registers, GICv2 GICH MMIO).

use core::arch::asm;

use axolotl_abi::vcpu::reg;

use super::cpu::HCR_NATIVE;

/// HCR_EL2 while a guest runs (seL4's `HCR_VCPU`): stage 2 on, EL1 is AArch64, physical
/// interrupts and SErrors to EL2 (and so virtual ones to the guest), WFI/WFE, SMC and
/// ACTLR_EL1 (not switched) trapped. No TGE and no DC: the guest owns its stage 1.
pub const HCR_GUEST: u64 = (1 << 0) // VM
    | (1 << 1)  // SWIO
    | (1 << 3)  // FMO
    | (1 << 4)  // IMO
    | (1 << 5)  // AMO
    | (1 << 13) // TWI
    | (1 << 14) // TWE
    | (1 << 19) // TSC
    | (1 << 21) // TACR
    | (1 << 31); // RW

/// SCTLR_EL1 for a new VCPU and for native threads: RES1 bits, MMU and caches off.
pub const SCTLR_EL1_DEFAULT: u64 = axolotl_abi::syndrome::sctlr::EL1_RESET;
/// CPACR_EL1 with FP/SIMD allowed at EL0 and EL1.
pub const CPACR_FP: u64 = 3 << 20;
pub use super::cpu::CNTKCTL_NATIVE;

pub use super::lrs::MAX_LRS;

macro_rules! rd {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an EL1/EL0 or virtualization system register at EL2.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

macro_rules! wr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the register belongs to the guest being switched, or to the virtual CPU
        // interface the kernel manages; EL2's own state is not touched.
        unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nomem, nostack)) };
    }};
}

/// Saves the guest's EL1 registers and stops its virtual timer, so that it cannot fire
/// while the guest is not in the CPU (it fires again when restored, being level-triggered).
pub fn save_el1(r: &mut [u64; reg::COUNT as usize]) {
    r[reg::CNTV_CTL_EL0 as usize] = rd!("cntv_ctl_el0");
    wr!("cntv_ctl_el0", 0);
    r[reg::CNTV_CVAL_EL0 as usize] = rd!("cntv_cval_el0");
    r[reg::CNTVOFF_EL2 as usize] = rd!("cntvoff_el2");
    r[reg::SCTLR_EL1 as usize] = rd!("sctlr_el1");
    r[reg::TTBR0_EL1 as usize] = rd!("ttbr0_el1");
    r[reg::TTBR1_EL1 as usize] = rd!("ttbr1_el1");
    r[reg::TCR_EL1 as usize] = rd!("tcr_el1");
    r[reg::MAIR_EL1 as usize] = rd!("mair_el1");
    r[reg::AMAIR_EL1 as usize] = rd!("amair_el1");
    r[reg::CONTEXTIDR_EL1 as usize] = rd!("contextidr_el1");
    r[reg::VBAR_EL1 as usize] = rd!("vbar_el1");
    r[reg::ELR_EL1 as usize] = rd!("elr_el1");
    r[reg::SPSR_EL1 as usize] = rd!("spsr_el1");
    r[reg::SP_EL1 as usize] = rd!("sp_el1");
    r[reg::ESR_EL1 as usize] = rd!("esr_el1");
    r[reg::FAR_EL1 as usize] = rd!("far_el1");
    r[reg::AFSR0_EL1 as usize] = rd!("afsr0_el1");
    r[reg::AFSR1_EL1 as usize] = rd!("afsr1_el1");
    r[reg::PAR_EL1 as usize] = rd!("par_el1");
    r[reg::CPACR_EL1 as usize] = rd!("cpacr_el1");
    r[reg::TPIDR_EL1 as usize] = rd!("tpidr_el1");
    r[reg::TPIDRRO_EL0 as usize] = rd!("tpidrro_el0");
    r[reg::CNTKCTL_EL1 as usize] = rd!("cntkctl_el1");
}

/// Loads a guest's EL1 registers and puts the CPU in guest mode; the timer control last,
/// once its compare value and offset are in place.
pub fn restore_el1(r: &[u64; reg::COUNT as usize]) {
    wr!("sctlr_el1", r[reg::SCTLR_EL1 as usize]);
    wr!("ttbr0_el1", r[reg::TTBR0_EL1 as usize]);
    wr!("ttbr1_el1", r[reg::TTBR1_EL1 as usize]);
    wr!("tcr_el1", r[reg::TCR_EL1 as usize]);
    wr!("mair_el1", r[reg::MAIR_EL1 as usize]);
    wr!("amair_el1", r[reg::AMAIR_EL1 as usize]);
    wr!("contextidr_el1", r[reg::CONTEXTIDR_EL1 as usize]);
    wr!("vbar_el1", r[reg::VBAR_EL1 as usize]);
    wr!("elr_el1", r[reg::ELR_EL1 as usize]);
    wr!("spsr_el1", r[reg::SPSR_EL1 as usize]);
    wr!("sp_el1", r[reg::SP_EL1 as usize]);
    wr!("esr_el1", r[reg::ESR_EL1 as usize]);
    wr!("far_el1", r[reg::FAR_EL1 as usize]);
    wr!("afsr0_el1", r[reg::AFSR0_EL1 as usize]);
    wr!("afsr1_el1", r[reg::AFSR1_EL1 as usize]);
    wr!("par_el1", r[reg::PAR_EL1 as usize]);
    wr!("cpacr_el1", r[reg::CPACR_EL1 as usize]);
    wr!("tpidr_el1", r[reg::TPIDR_EL1 as usize]);
    wr!("tpidrro_el0", r[reg::TPIDRRO_EL0 as usize]);
    wr!("cntkctl_el1", r[reg::CNTKCTL_EL1 as usize]);
    wr!("cntvoff_el2", r[reg::CNTVOFF_EL2 as usize]);
    wr!("vmpidr_el2", r[reg::VMPIDR_EL2 as usize]);
    wr!("cntv_cval_el0", r[reg::CNTV_CVAL_EL0 as usize]);
    wr!("cntv_ctl_el0", r[reg::CNTV_CTL_EL0 as usize]);
    wr!("hcr_el2", HCR_GUEST);
    // SAFETY: synchronises the context changes before the eret.
    unsafe { asm!("isb", options(nomem, nostack)) };
}

/// Back to native threads after a guest was saved: the EL1 registers that still act on EL0
/// under TGE (or that EL0 can read) get the native values, so no guest state leaks or
/// constrains a native thread.
pub fn set_native() {
    wr!("hcr_el2", HCR_NATIVE);
    wr!("sctlr_el1", SCTLR_EL1_DEFAULT);
    wr!("cpacr_el1", CPACR_FP);
    wr!("cntkctl_el1", CNTKCTL_NATIVE);
    wr!("cntvoff_el2", 0);
    wr!("tpidrro_el0", 0);
    // SAFETY: as above.
    unsafe { asm!("isb", options(nomem, nostack)) };
}

/// MDCR_EL2: guest accesses to debug and performance-monitor registers trap (they are not
/// switched), keeping HPMN as reset left it.
pub fn init_mdcr() {
    let m = rd!("mdcr_el2");
    // TPMCR (5), TPM (6), TDA (9), TDOSA (10), TDRA (11).
    wr!(
        "mdcr_el2",
        m | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11)
    );
}

/// The virtual CPU interface's per-guest state.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VgicState {
    pub vmcr: u64,
    pub apr0: u64,
    pub apr1: u64,
    /// List registers in the GIC's own format (ICH_LR<n>_EL2, or GICH_LR<n> zero-extended).
    pub lr: [u64; MAX_LRS],
}

/// Which virtual interface the board has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Vgic {
    V2 { gich: u64 },
    V3,
}

const GICH_HCR: u64 = 0x0;
const GICH_VTR: u64 = 0x4;
const GICH_VMCR: u64 = 0x8;
const GICH_EISR0: u64 = 0x20;
const GICH_APR: u64 = 0xf0;
const GICH_LR0: u64 = 0x100;

fn gich_read(gich: u64, off: u64) -> u64 {
    // SAFETY: GICH is identity-mapped device memory only the kernel can reach.
    unsafe { ((gich + off) as *const u32).read_volatile() as u64 }
}

fn gich_write(gich: u64, off: u64, v: u64) {
    // SAFETY: as in `gich_read`.
    unsafe { ((gich + off) as *mut u32).write_volatile(v as u32) }
}

macro_rules! lr_op {
    ($n:expr, $body:ident) => {
        match $n {
            0 => $body!("ich_lr0_el2"),
            1 => $body!("ich_lr1_el2"),
            2 => $body!("ich_lr2_el2"),
            3 => $body!("ich_lr3_el2"),
            4 => $body!("ich_lr4_el2"),
            5 => $body!("ich_lr5_el2"),
            6 => $body!("ich_lr6_el2"),
            7 => $body!("ich_lr7_el2"),
            8 => $body!("ich_lr8_el2"),
            9 => $body!("ich_lr9_el2"),
            10 => $body!("ich_lr10_el2"),
            11 => $body!("ich_lr11_el2"),
            12 => $body!("ich_lr12_el2"),
            13 => $body!("ich_lr13_el2"),
            14 => $body!("ich_lr14_el2"),
            _ => $body!("ich_lr15_el2"),
        }
    };
}

impl Vgic {
    /// Number of list registers (at most `MAX_LRS`).
    pub fn nr_lrs(self) -> usize {
        match self {
            Vgic::V2 { gich } => super::lrs::list_regs(gich_read(gich, GICH_VTR), false),
            Vgic::V3 => super::lrs::list_regs(rd!("ich_vtr_el2"), true),
        }
    }

    pub fn read_lr(self, n: usize) -> u64 {
        match self {
            Vgic::V2 { gich } => gich_read(gich, GICH_LR0 + 4 * n as u64),
            Vgic::V3 => {
                macro_rules! r {
                    ($name:literal) => {
                        rd!($name)
                    };
                }
                lr_op!(n, r)
            }
        }
    }

    pub fn write_lr(self, n: usize, v: u64) {
        match self {
            Vgic::V2 { gich } => gich_write(gich, GICH_LR0 + 4 * n as u64, v),
            Vgic::V3 => {
                macro_rules! w {
                    ($name:literal) => {
                        wr!($name, v)
                    };
                }
                lr_op!(n, w)
            }
        }
    }

    /// The list registers whose interrupt the guest completed (EOI maintenance).
    pub fn eoi_status(self) -> u64 {
        match self {
            Vgic::V2 { gich } => gich_read(gich, GICH_EISR0),
            Vgic::V3 => rd!("ich_eisr_el2"),
        }
    }

    /// Saves a guest's interface and disables it (no virtual interrupts, no maintenance).
    pub fn save(self, s: &mut VgicState, nr_lrs: usize) {
        match self {
            Vgic::V2 { gich } => {
                gich_write(gich, GICH_HCR, 0);
                s.vmcr = gich_read(gich, GICH_VMCR);
                s.apr0 = gich_read(gich, GICH_APR);
            }
            Vgic::V3 => {
                wr!("ich_hcr_el2", 0);
                s.vmcr = rd!("ich_vmcr_el2");
                s.apr0 = rd!("ich_ap0r0_el2");
                s.apr1 = rd!("ich_ap1r0_el2");
            }
        }
        for i in 0..nr_lrs {
            s.lr[i] = self.read_lr(i);
        }
    }

    /// Loads a guest's interface and enables it.
    pub fn restore(self, s: &VgicState, nr_lrs: usize) {
        for i in 0..nr_lrs {
            self.write_lr(i, s.lr[i]);
        }
        match self {
            Vgic::V2 { gich } => {
                gich_write(gich, GICH_VMCR, s.vmcr);
                gich_write(gich, GICH_APR, s.apr0);
                gich_write(gich, GICH_HCR, 1);
            }
            Vgic::V3 => {
                wr!("ich_vmcr_el2", s.vmcr);
                wr!("ich_ap0r0_el2", s.apr0);
                wr!("ich_ap1r0_el2", s.apr1);
                wr!("ich_hcr_el2", 1);
            }
        }
    }

    /// A pending list register entry for `virq` that asks for EOI maintenance; `priority` is
    /// 8-bit (the low bits the interface does not implement are dropped).
    pub fn pending_lr(self, virq: u64, priority: u64, group1: bool) -> u64 {
        match self {
            // State pending (28), priority [27:23], EOI maintenance (19), group (30).
            Vgic::V2 { .. } => {
                (1 << 28) | ((priority >> 3) << 23) | (1 << 19) | ((group1 as u64) << 30) | virq
            }
            // State pending (62), group (60), priority [55:48], EOI maintenance (41).
            Vgic::V3 => {
                (1 << 62) | ((group1 as u64) << 60) | ((priority & 0xff) << 48) | (1 << 41) | virq
            }
        }
    }

    /// Whether an entry holds a pending interrupt (pending, or pending and active).
    pub fn lr_pending(self, lr: u64) -> bool {
        match self {
            Vgic::V2 { .. } => (lr >> 28) & 1 != 0,
            Vgic::V3 => (lr >> 62) & 1 != 0,
        }
    }

    /// Whether an entry still holds an interrupt (pending and/or active).
    pub fn lr_in_use(self, lr: u64) -> bool {
        match self {
            Vgic::V2 { .. } => (lr >> 28) & 3 != 0,
            Vgic::V3 => (lr >> 62) & 3 != 0,
        }
    }
}
