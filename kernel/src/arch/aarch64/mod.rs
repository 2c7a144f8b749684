//! AArch64 at EL2.

pub mod context;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod gic;
pub mod lrs;
#[cfg(target_os = "none")]
pub mod mmu;
pub mod ram_map;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod vcpu;

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("entry.S"));

#[cfg(target_os = "none")]
unsafe extern "C" {
    /// Loads the user context and returns to EL0 (entry.S).
    pub fn restore_user_context(ctx: *const context::UserContext) -> !;
    pub fn fp_save(area: *mut context::FpState);
    pub fn fp_restore(area: *const context::FpState);
}
