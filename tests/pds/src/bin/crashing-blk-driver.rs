//! The virtio-blk driver with fault injection (tests/systems/blk-crash.system): in each of
//! its first four incarnations it writes to an unmapped address once the device completed
//! 1600 KiB (100 of the pattern client's 16 KiB requests), with requests in the device and
//! completions not yet answered. The fifth (generation 4) is the plain driver.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::blk::BlkDriver;

    axolotl_pd::protection_domain!(BlkDriver::crashing_after(1600 << 10, 4));
}

#[cfg(not(target_os = "none"))]
fn main() {}
