//! A thread's registers as TcbReadRegisters/TcbWriteRegisters carry them.

use axolotl_abi::USER_CONTEXT_WORDS;

/// seL4's `seL4_UserContext` on AArch64: pc, sp, spsr, x0..=x30, tpidr_el0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    pub pc: u64,
    pub sp: u64,
    pub spsr: u64,
    pub x: [u64; 31],
    pub tpidr_el0: u64,
}

impl UserContext {
    pub fn to_words(&self) -> [u64; USER_CONTEXT_WORDS] {
        let mut w = [0; USER_CONTEXT_WORDS];
        self.write_words(&mut w);
        w
    }

    /// The words of [`UserContext::to_words`] into `out[..USER_CONTEXT_WORDS]`, without a
    /// copy in between.
    #[inline]
    pub fn write_words(&self, out: &mut [u64]) {
        let w = &mut out[..USER_CONTEXT_WORDS];
        w[0] = self.pc;
        w[1] = self.sp;
        w[2] = self.spsr;
        w[3..34].copy_from_slice(&self.x);
        w[34] = self.tpidr_el0;
    }

    /// Missing words stay 0 (a ReadRegisters of fewer than all registers).
    pub fn from_words(words: &[u64]) -> Self {
        let mut w = [0; USER_CONTEXT_WORDS];
        let n = words.len().min(USER_CONTEXT_WORDS);
        w[..n].copy_from_slice(&words[..n]);
        let mut c = UserContext {
            pc: w[0],
            sp: w[1],
            spsr: w[2],
            tpidr_el0: w[34],
            ..Default::default()
        };
        c.x.copy_from_slice(&w[3..34]);
        c
    }
}
