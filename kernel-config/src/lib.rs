//! Per-board and per-build configuration of the kernel.
//!
//! Boards are plain data so that the host tools (image builder, SDF validation, QEMU runner)
//! and the kernel read the same facts. The kernel selects its board at build time through the
//! `AXOLOTL_BOARD` / `AXOLOTL_GIC` environment (see `kernel/build.rs`).

#![no_std]

mod board;
mod build;
pub mod limits;

pub use board::{
    BOARDS, Board, BootFormat, ConsoleKind, ConsoleSetup, ConsoleUart, DeviceRanges,
    GICV2_GICC_BYTES, GICV2_GICD_BYTES, GICV2_GICH_BYTES, GICV2_GICV_BYTES, GICV3_GICD_BYTES,
    GICV3_GICR_BYTES_PER_CORE, GicLayout, GicVersion, IrqRefusal, MAX_DEVICE_RANGES, MAX_INTIDS,
    MAX_RAM_RANGES, ODROID_C2, ODROID_C4, PHYS_ADDR_BITS, RPI4B, RPI4B_1GB, RPI4B_2GB, RPI4B_4GB,
    RPI4B_8GB, board_by_name,
};
pub use build::BuildConfig;
