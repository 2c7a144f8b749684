//! Shared by the restart-benchmark PDs: a PD whose image carries `pad` bytes of data fails
//! in each of its first `ROUNDS` generations, when the kicker notifies it, and each next
//! generation reports the time from the fault to its own start; generation 0 first measures
//! the copy floor (copying as many bytes as the image holds).

#![no_std]

/// Restarts measured per PD.
pub const ROUNDS: u64 = 5;

/// Nanoseconds of the virtual counter (one instruction per ns under `-icount shift=0`).
#[cfg(target_os = "none")]
pub use axolotl_sys::time::now_ns;

/// Copies the first half of `buf` over the second and back: `buf.len()` bytes moved with the
/// copy routine a restart uses, the floor of restoring an image of that size.
pub fn copy_floor(buf: &mut [u8]) {
    let (a, b) = buf.split_at_mut(buf.len() / 2);
    let n = a.len().min(b.len());
    axolotl_sys::mem::copy(&mut b[..n], &a[..n]);
    axolotl_sys::mem::copy(&mut a[..n], &b[..n]);
    core::hint::black_box(&buf[..]);
}

/// The benchmark PD: its body for every generation.
#[macro_export]
macro_rules! restart_bench {
    ($name:literal, $pad:literal) => {
        #[cfg(target_os = "none")]
        mod pd {
            use axolotl_pd::{Channel, Handler, SetVar, generation, println};

            static mut PAD: [u8; $pad] = [0x5a; $pad];

            /// A page of its own the restart leaves alone: when the last fault happened.
            #[unsafe(no_mangle)]
            #[allow(non_upper_case_globals)]
            static bench_clock: SetVar = SetVar::new();

            struct Bench;

            impl Handler for Bench {
                fn init(&mut self) {
                    let g = generation();
                    let clock = bench_clock.get() as *mut u64;
                    if g > 0 {
                        // SAFETY: the SDF maps this page read-write for us.
                        let fault = unsafe { clock.read_volatile() };
                        println!(
                            concat!("bench: restart ", $name, " generation={} ns={}"),
                            g,
                            $crate::now_ns() - fault
                        );
                    }
                    if g == 0 {
                        // SAFETY: the only reference to PAD, in this single-threaded PD.
                        let pad = unsafe { &mut *&raw mut PAD };
                        let t = $crate::now_ns();
                        $crate::copy_floor(pad);
                        let ns = $crate::now_ns() - t;
                        println!(
                            concat!("bench: copy_floor ", $name, " bytes={} ns={}"),
                            $pad, ns
                        );
                    }
                    if g >= $crate::ROUNDS {
                        println!(concat!("bench: restarts ", $name, " done"));
                    }
                }

                /// The kicker (tests/systems/bench-restart.system), which runs only when
                /// nothing else does: the failure comes once the system is idle, as a
                /// failure after a quiet spell does.
                fn notified(&mut self, _: Channel) {
                    if generation() < $crate::ROUNDS {
                        let clock = bench_clock.get() as *mut u64;
                        // SAFETY: our clock page; then deliberately invalid: each fault is
                        // one measured restart, from this instant to the next generation's
                        // start.
                        unsafe {
                            clock.write_volatile($crate::now_ns());
                            core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1);
                        }
                    }
                }
            }

            axolotl_pd::protection_domain!(Bench);
        }

        #[cfg(not(target_os = "none"))]
        fn main() {}
    };
}

/// A PD that dirties its data and bss, tells the witness (channel 0), then writes where
/// nothing is mapped, in each of its first `$crashes` generations. A restarted generation
/// must find pristine data, zeroed bss and its channel cap.
#[macro_export]
macro_rules! crasher {
    ($crashes:literal) => {
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
                    if g < $crashes {
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
    };
}
