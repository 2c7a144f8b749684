//! linux-vm's console serial driver with fault injection
//! (tests/systems/linux-vm-console-crash-gicv3.system): in generation 0 it writes to an
//! unmapped address on the first notification after it completed a receive buffer. The
//! restarted driver (generation 1) is the plain one; the VMM must resynchronise.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::pd::ConsoleDriver;

    axolotl_pd::protection_domain!(ConsoleDriver::for_vmm_crashing_after_rx(1));
}

#[cfg(not(target_os = "none"))]
fn main() {}
