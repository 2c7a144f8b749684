//! `cargo +nightly fuzz run sdf_parse`: the SDF checker must never panic, and a failure
//! must always carry at least one error pointing into the text.
#![no_main]

use axolotl_kernel_config::BOARDS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.split('\n').count() as u32;
    for board in BOARDS {
        match axolotl_sdf::check("fuzz.system", text, board) {
            Ok(c) => assert!(!c.warnings.has_errors()),
            Err(d) => {
                assert!(d.has_errors());
                assert!(d.iter().all(|d| d.line >= 1 && d.line <= lines && d.col >= 1));
            }
        }
    }
});
