//! `tests/systems/prefill.system`: Microkit's memory-region prefill reaches the region at
//! boot (cached and uncached, over more than one page, zero after the file), and the sizes
//! and ids the SDF asks for are patched in; the region mapped above 4 GiB is usable, and an
//! `rwx` map is both executable and writable.

use axolotl_tests::{DEFAULT_TIMEOUT, boot_named, check, refute_each};

fn prefill(gic: u8) {
    let mut b = check(boot_named(gic, "cortex-a72", "-prefill"));
    check(b.expect_chain(
        &[
            // tests/systems/prefill/greeting.txt: 16 bytes, the region one page.
            "prefill-checker: greeting at 0x200000000, size 0x1000, len 16: axolotl prefill",
            "prefill-checker: greeting zero after its file",
            // tests/systems/prefill/pages.bin: 5000 bytes in a region of 3 pages.
            "prefill-checker: pages size 0x3000, len 5000",
            "prefill-checker: pages cached: file, then zero",
            "prefill-checker: pages uncached: file, then zero",
            "prefill-checker: witness channel id 5",
            // The rwx map (a warning, not an error) executes and takes writes.
            "prefill-checker: rwx code returned 42, wrote 0xa5",
        ],
        DEFAULT_TIMEOUT,
    ));
    refute_each(
        &mut b,
        &[
            "KERNEL PANIC",
            "kernel: FAULT",
            "failed",
            "differs",
            "not zero",
        ],
    );
}

#[test]
fn prefilled_regions_and_patched_sizes_gicv3() {
    prefill(3);
}

#[test]
fn prefilled_regions_and_patched_sizes_gicv2() {
    prefill(2);
}
