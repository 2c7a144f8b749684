//! Saved user register state, laid out as entry.S stores it.

/// General registers of a thread at EL0, saved on kernel entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserContext {
    pub x: [u64; 31],
    pub sp: u64,
    pub elr: u64,
    pub spsr: u64,
    pub tpidr: u64,
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<UserContext>() == 288);
const _: () = assert!(core::mem::offset_of!(UserContext, sp) == 248);
const _: () = assert!(core::mem::offset_of!(UserContext, elr) == 256);
const _: () = assert!(core::mem::offset_of!(UserContext, spsr) == 264);
const _: () = assert!(core::mem::offset_of!(UserContext, tpidr) == 272);

/// SPSR for EL0t (AArch64, SP_EL0) with all interrupts unmasked.
pub const SPSR_EL0T: u64 = 0;

impl UserContext {
    pub fn new_el0(entry: u64, sp: u64, arg0: u64) -> Self {
        let mut c = UserContext {
            elr: entry,
            sp,
            spsr: SPSR_EL0T,
            ..Default::default()
        };
        c.x[0] = arg0;
        c
    }
}

/// FP/SIMD registers q0..q31, FPSR and FPCR.
#[repr(C, align(16))]
#[derive(Clone, Copy, Default)]
pub struct FpState {
    pub q: [u128; 32],
    pub fpsr: u64,
    pub fpcr: u64,
}

const _: () = assert!(core::mem::offset_of!(FpState, fpsr) == 512);
