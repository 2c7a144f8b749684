//! Logger: prints the lines the client leaves in the shared `log_ring` (read-only here) and
//! counts the calls the server reports.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_example_hello::{LINE, LogRing, new_lines};
    use axolotl_pd::{Channel, Handler, SetVar, println};

    const CLIENT: Channel = Channel::new(0);
    const SERVER: Channel = Channel::new(1);

    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static log_ring: SetVar = SetVar::new();

    struct Logger {
        seen: u32,
        calls: u64,
    }

    impl Handler for Logger {
        fn init(&mut self) {
            println!("hello_logger: watching log_ring at {:#x}", log_ring.get());
        }

        fn notified(&mut self, ch: Channel) {
            if ch == SERVER {
                self.calls += 1;
                // Notifications coalesce: one wake-up may stand for several calls.
                println!("hello_logger: server notified (wake-up {})", self.calls);
            } else if ch == CLIENT {
                // SAFETY: the SDF maps the region read-only at this address for our lifetime.
                let ring = unsafe { LogRing::new(log_ring.get() as *mut u8) };
                let written = ring.written();
                let Some(n) = new_lines(self.seen, written) else {
                    println!(
                        "hello_logger: log_ring count {written} is impossible; skipping ahead"
                    );
                    self.seen = written;
                    return;
                };
                for k in 0..n {
                    let mut line = [0u8; LINE];
                    match ring.read(self.seen.wrapping_add(k), &mut line) {
                        Some(len) => println!(
                            "hello_logger: client wrote \"{}\"",
                            core::str::from_utf8(&line[..len]).unwrap_or("<not UTF-8>")
                        ),
                        None => println!("hello_logger: unterminated line skipped"),
                    }
                }
                self.seen = written;
            }
        }
    }

    axolotl_pd::protection_domain!(Logger { seen: 0, calls: 0 });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/hello.system`"
    );
}
