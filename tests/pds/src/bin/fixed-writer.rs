//! Writes a pattern into the regions at fixed RAM addresses of tests/systems/fixed-ram.system
//! and tells the reader; prints the physical addresses the builder patched in, as Microkit's
//! `setvar` example does.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, SetVar, println};

    // Microkit's `setvar` example's symbols.
    #[unsafe(no_mangle)]
    static mr_with_paddr_vaddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static mr_with_paddr_paddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static small_mr_no_paddr_paddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static large_mr_no_paddr_paddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static pl011_paddr: SetVar = SetVar::new();
    // A region of 2 MiB pages deep inside a RAM untyped, and one of more small pages than
    // one retype creates.
    #[unsafe(no_mangle)]
    static deep_vaddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static deep_paddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static wide_vaddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static wide_paddr: SetVar = SetVar::new();

    const READER: Channel = Channel::new(0);

    /// The word at index `i` of the region at physical address `paddr`: differs per region
    /// and per word, so a region read at another's frames, or not at all, shows.
    fn word(paddr: u64, i: usize) -> u64 {
        paddr ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn fill(name: &str, vaddr: u64, paddr: u64, bytes: u64) {
        let words = (bytes / 8) as usize;
        // SAFETY: the SDF maps `bytes` at `vaddr` read-write for this PD (the builder patched
        // both from the same map); the reader only reads once notified.
        let r = unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u64, words) };
        for (i, w) in r.iter_mut().enumerate() {
            // SAFETY: a word of the mapped region.
            unsafe { core::ptr::write_volatile(w, word(paddr, i)) };
        }
        println!("fixed-writer: {name} at paddr {paddr:#x}: {words} words written");
    }

    struct Writer;

    impl Handler for Writer {
        fn init(&mut self) {
            println!(
                "fixed-writer: mr_with_paddr vaddr {:#x} paddr {:#x}",
                mr_with_paddr_vaddr.get(),
                mr_with_paddr_paddr.get()
            );
            println!("fixed-writer: pl011 paddr {:#x}", pl011_paddr.get());
            for (name, pa, align) in [
                ("small_mr_no_paddr", small_mr_no_paddr_paddr.get(), 0x1000),
                (
                    "large_mr_no_paddr",
                    large_mr_no_paddr_paddr.get(),
                    0x20_0000,
                ),
            ] {
                let ok = pa != 0 && pa % align == 0;
                println!("fixed-writer: {name} paddr allocated and aligned: {ok}");
            }
            fill(
                "mr_with_paddr",
                mr_with_paddr_vaddr.get(),
                mr_with_paddr_paddr.get(),
                0x1000,
            );
            fill("deep", deep_vaddr.get(), deep_paddr.get(), 0x20_0000);
            fill("wide", wide_vaddr.get(), wide_paddr.get(), 0x10_1000);
            READER.notify();
        }

        fn notified(&mut self, _: Channel) {}
    }

    axolotl_pd::protection_domain!(Writer);
}

#[cfg(not(target_os = "none"))]
fn main() {}
