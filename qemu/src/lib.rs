//! QEMU machine definitions and the serial-console harness used by `cargo xtask run` and
//! the integration tests.

mod harness;
pub mod http;
mod machine;

pub use harness::{Boot, DEFAULT_TIMEOUT, Failure, LIST_IMAGES_ENV};
pub use machine::{MIN_QEMU_MAJOR, Machine, Net, QEMU_AARCH64, emulated, qemu_version};
