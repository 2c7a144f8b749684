//! The storage test's client PD (tests/systems/blk*.system): writes a seeded pattern over
//! 4 MiB of the disk through the virtio-blk driver, flushes, reads it back, compares, and
//! prints `blk_client: verdict: PASS: …` or `FAIL`.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::blk::BlkPatternClient;

    axolotl_pd::protection_domain!(BlkPatternClient::new());
}

#[cfg(not(target_os = "none"))]
fn main() {}
