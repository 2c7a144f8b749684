//! Owns the EL1 physical timer (its SDF `irq` 30, as sDDF's timer driver has it): sleeps on
//! it five times, 20 ms each, and says how late each interrupt came. The root task's own
//! clock is the kernel timeout, so this PD and the monitor's heartbeats and back-offs run
//! side by side (tests/systems/ptimer.system).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, println};
    use axolotl_sys::time::{counter, frequency, set_phys_timer};

    const SLEEPS: u32 = 5;
    const SLEEP_MS: u64 = 20;

    struct Sleeper {
        deadline: u64,
        done: u32,
    }

    impl Sleeper {
        fn sleep(&mut self) {
            self.deadline = counter() + frequency() * SLEEP_MS / 1000;
            set_phys_timer(Some(self.deadline));
        }
    }

    impl Handler for Sleeper {
        fn init(&mut self) {
            println!("ptimer: sleeping {SLEEPS} times on the EL1 physical timer");
            self.sleep();
        }

        fn notified(&mut self, ch: Channel) {
            if ch.id() != 0 {
                return;
            }
            let now = counter();
            // The interrupt is level: off first, then acked, so it does not come again.
            set_phys_timer(None);
            if let Err(e) = ch.irq_ack() {
                println!("ptimer: ERROR: IRQ ack failed: {e:?}");
            }
            if now < self.deadline {
                println!("ptimer: ERROR: woken {} counts early", self.deadline - now);
                return;
            }
            self.done += 1;
            println!(
                "ptimer: sleep {} ended {} us after its deadline",
                self.done,
                (now - self.deadline) * 1_000_000 / frequency()
            );
            if self.done < SLEEPS {
                self.sleep();
            } else {
                println!("ptimer: done");
            }
        }
    }

    axolotl_pd::protection_domain!(Sleeper {
        deadline: 0,
        done: 0
    });
}

#[cfg(not(target_os = "none"))]
fn main() {}
