//! Architecture support. Only AArch64 (EL2) today; `x86_64` (VT-x) is planned.

pub mod aarch64;
pub use aarch64::*;
