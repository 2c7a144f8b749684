//! Generation 0 dirties its data and bss, tells the witness, then writes where nothing is
//! mapped. A restarted generation must find pristine data, zeroed bss and its channel cap.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use core::sync::atomic::{AtomicU64, Ordering};

    use axolotl_pd::{Channel, Handler, generation, println};

    const WITNESS: Channel = Channel::new(0);
    static DATA: AtomicU64 = AtomicU64::new(7);
    static BSS: AtomicU64 = AtomicU64::new(0);

    struct Crasher;

    impl Handler for Crasher {
        fn init(&mut self) {
            let g = generation();
            println!(
                "crasher: generation {g}: data {}, bss {}",
                DATA.load(Ordering::Relaxed),
                BSS.load(Ordering::Relaxed)
            );
            WITNESS.notify();
            if g == 0 {
                DATA.store(99, Ordering::Relaxed);
                BSS.store(1234, Ordering::Relaxed);
                println!("crasher: writing to an unmapped address");
                // SAFETY: deliberately invalid: the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
            }
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Crasher);
}

#[cfg(not(target_os = "none"))]
fn main() {}
