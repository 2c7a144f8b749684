//! Checks Microkit's region prefill (tests/systems/prefill.system): the bytes of each file at
//! the start of its region, zero after them, and the sizes and ids the builder patched in.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, SetVar, println};

    #[unsafe(no_mangle)]
    static greeting: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static greeting_size: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static greeting_len: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static pages: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static pages_size: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static pages_len: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static pages_uncached: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static witness_channel: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static code: SetVar = SetVar::new();

    /// The region at `vaddr`, `size` bytes, as the SDF maps it.
    fn region(vaddr: u64, size: u64) -> &'static [u8] {
        // SAFETY: the SDF maps `size` bytes at `vaddr` read-only for this PD's whole life
        // (the builder patched both from the same map), and nothing here writes them.
        unsafe { core::slice::from_raw_parts(vaddr as *const u8, size as usize) }
    }

    /// The first index from `len` on that is not zero, if any.
    fn nonzero_after(r: &[u8], len: usize) -> Option<usize> {
        r.iter().skip(len).position(|&b| b != 0).map(|i| i + len)
    }

    /// Where `r` differs from `tests/systems/prefill/pages.bin` (byte i is (7i + 3) mod 251).
    fn pattern_mismatch(r: &[u8], len: usize) -> Option<usize> {
        (0..len).find(|&i| r[i] != ((i * 7 + 3) % 251) as u8)
    }

    struct Checker;

    impl Handler for Checker {
        fn init(&mut self) {
            let (g, gs, gl) = (greeting.get(), greeting_size.get(), greeting_len.get());
            let r = region(g, gs);
            let text = core::str::from_utf8(&r[..gl as usize]).unwrap_or("<not utf-8>");
            println!(
                "prefill-checker: greeting at {g:#x}, size {gs:#x}, len {gl}: {}",
                text.trim_end()
            );
            match nonzero_after(r, gl as usize) {
                None => println!("prefill-checker: greeting zero after its file"),
                Some(i) => println!("prefill-checker: greeting byte {i:#x} is not zero"),
            }
            let (ps, pl) = (pages_size.get(), pages_len.get());
            println!("prefill-checker: pages size {ps:#x}, len {pl}");
            for (how, vaddr) in [("cached", pages.get()), ("uncached", pages_uncached.get())] {
                let r = region(vaddr, ps);
                match (
                    pattern_mismatch(r, pl as usize),
                    nonzero_after(r, pl as usize),
                ) {
                    (None, None) => println!("prefill-checker: pages {how}: file, then zero"),
                    (Some(i), _) => println!("prefill-checker: pages {how}: byte {i:#x} differs"),
                    (_, Some(i)) => println!("prefill-checker: pages {how}: byte {i:#x} not zero"),
                }
            }
            println!(
                "prefill-checker: witness channel id {}",
                witness_channel.get()
            );
            // SAFETY: the SDF maps `code` rwx at this address, prefilled with `mov x0, #42;
            // ret` (tests/systems/prefill/code.bin): a function of the C ABI taking nothing.
            let f: extern "C" fn() -> u64 =
                unsafe { core::mem::transmute(code.get() as *const ()) };
            let r = f();
            let at = (code.get() + 0x800) as *mut u8;
            // SAFETY: `at` is in the same page of `code`, writable, and nothing else uses it.
            let back = unsafe {
                core::ptr::write_volatile(at, 0xa5);
                core::ptr::read_volatile(at)
            };
            println!("prefill-checker: rwx code returned {r}, wrote {back:#x}");
        }

        fn notified(&mut self, _ch: Channel) {}
    }

    axolotl_pd::protection_domain!(Checker);
}

#[cfg(not(target_os = "none"))]
fn main() {}
