//! Client: calls the server three times, writing each answer as a line into the shared
//! `log_ring` and notifying the logger.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_example_hello::LogRing;
    use axolotl_pd::{Channel, Handler, MessageInfo, SetVar, println};

    const SERVER: Channel = Channel::new(0);
    const LOGGER: Channel = Channel::new(1);

    /// The vaddr of `log_ring`, patched by the system builder (`setvar_vaddr`).
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static log_ring: SetVar = SetVar::new();

    struct Client;

    impl Handler for Client {
        fn init(&mut self) {
            println!("hello_client: log_ring at {:#x}", log_ring.get());
            // SAFETY: the SDF maps the region read-write at this address for our lifetime.
            let ring = unsafe { LogRing::new(log_ring.get() as *mut u8) };
            for n in 1..=3u64 {
                let (info, mrs) = SERVER.pp_call(MessageInfo::new(0, 0, 0, 1), [n, 0, 0, 0]);
                if info.label() != 0 {
                    println!("hello_client: call {n} failed (label {})", info.label());
                    continue;
                }
                println!("hello_client: server says {n}^2 = {}", mrs[0]);
                let mut line = [0u8; 32];
                let len = fmt_line(&mut line, n, mrs[0]);
                ring.push(&line[..len]);
                LOGGER.notify();
            }
            println!("hello_client: done");
        }

        fn notified(&mut self, ch: Channel) {
            println!("hello_client: notified on channel {}", ch.id());
        }
    }

    /// `"<n> squared is <sq>"` without an allocator.
    fn fmt_line(buf: &mut [u8; 32], n: u64, sq: u64) -> usize {
        struct W<'a>(&'a mut [u8; 32], usize);
        impl core::fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = (self.1 + s.len()).min(self.0.len());
                self.0[self.1..end].copy_from_slice(&s.as_bytes()[..end - self.1]);
                self.1 = end;
                Ok(())
            }
        }
        let mut w = W(buf, 0);
        let _ = core::fmt::write(&mut w, format_args!("{n} squared is {sq}"));
        w.1
    }

    axolotl_pd::protection_domain!(Client);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/hello.system`"
    );
}
