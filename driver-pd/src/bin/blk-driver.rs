//! The virtio-blk driver PD (issue #15, docs/storage.md).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::blk::BlkDriver;

    axolotl_pd::protection_domain!(BlkDriver::new());
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system tests/systems/blk.system`"
    );
}
