//! Reads what fixed-writer wrote into the regions at fixed RAM addresses of
//! tests/systems/fixed-ram.system, through its own maps of them.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, SetVar, println};

    #[unsafe(no_mangle)]
    static mr_vaddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static mr_paddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static deep_vaddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static deep_paddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static wide_vaddr: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    static wide_paddr: SetVar = SetVar::new();

    /// fixed-writer's pattern.
    fn word(paddr: u64, i: usize) -> u64 {
        paddr ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn check(name: &str, vaddr: u64, paddr: u64, bytes: u64) {
        let words = (bytes / 8) as usize;
        // SAFETY: the SDF maps `bytes` at `vaddr` read-only for this PD; the writer is done.
        let r = unsafe { core::slice::from_raw_parts(vaddr as *const u64, words) };
        let bad = (0..words).find(|&i| {
            // SAFETY: a word of the mapped region.
            unsafe { core::ptr::read_volatile(&r[i]) != word(paddr, i) }
        });
        match bad {
            None => println!("fixed-reader: {name} at paddr {paddr:#x}: {words} words as written"),
            Some(i) => println!("fixed-reader: {name} at paddr {paddr:#x}: word {i} differs"),
        }
    }

    struct Reader;

    impl Handler for Reader {
        fn notified(&mut self, _: Channel) {
            check("mr_with_paddr", mr_vaddr.get(), mr_paddr.get(), 0x1000);
            check("deep", deep_vaddr.get(), deep_paddr.get(), 0x20_0000);
            check("wide", wide_vaddr.get(), wide_paddr.get(), 0x10_1000);
        }
    }

    axolotl_pd::protection_domain!(Reader);
}

#[cfg(not(target_os = "none"))]
fn main() {}
