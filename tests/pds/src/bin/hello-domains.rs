//! Microkit's `hello_domains` example PD, in Rust: its `init` never returns, it spins and
//! now and then says hello with its name (and the tick, so a test can see the domains
//! take turns). tests/systems/hello-domains.system runs three, each in its own domain.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, println};
    use axolotl_sys::debug_ticks;

    struct Hello;

    impl Handler for Hello {
        fn init(&mut self) {
            let mut next = 0;
            loop {
                let now = debug_ticks();
                if now >= next {
                    println!("hello, world from {} at tick {now}", axolotl_pd::name());
                    // 25 ticks (50 ms): a few lines per domain slot, not a flood.
                    next = now + 25;
                }
                core::hint::spin_loop();
            }
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Hello);
}

#[cfg(not(target_os = "none"))]
fn main() {}
