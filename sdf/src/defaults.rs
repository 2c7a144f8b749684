//! Values of optional attributes when they are absent.

/// Microkit's defaults.
pub const PRIORITY: u8 = 0;
pub const BUDGET_US: u64 = 1000;
pub const STACK_SIZE: u64 = 0x2000;
pub const PAGE_SIZE: u64 = crate::layout::PAGE_SIZE_SMALL;

/// axolotl resilience defaults: up to 5 restarts in 10 s, backing off from 10 ms to 1 s.
pub const RESTART_LIMIT: u32 = 5;
pub const RESTART_WINDOW_MS: u64 = 10_000;
pub const RESTART_BACKOFF_MS: u64 = 10;
pub const RESTART_BACKOFF_MAX_MS: u64 = 1_000;
