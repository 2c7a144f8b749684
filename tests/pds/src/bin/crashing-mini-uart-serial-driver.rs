//! resilient-echo's mini UART driver (the Raspberry Pi's) with fault injection
//! (tests/systems/resilient-echo-rpi4b.system): in generation 0 it writes to an unmapped
//! address once it has completed 30 messages, before telling the clients. The restarted
//! driver (generation 1) is the plain one.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_driver_pd::mini::MiniDriver;

    axolotl_pd::protection_domain!(MiniDriver::crashing_after(30));
}

#[cfg(not(target_os = "none"))]
fn main() {}
