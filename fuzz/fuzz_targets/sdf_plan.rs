//! `cargo +nightly fuzz run sdf_plan`: the whole path `cargo xtask check` and `build` take
//! (issue #20). Checking and building never panic, and what the check accepts builds, unless
//! only the program images tip a resource over (the check cannot see them). The stable
//! counterpart, with generated systems, is `lib/boot-plan/tests/check_plan.rs`.
#![no_main]

use std::collections::BTreeMap;

use axolotl_boot_plan::{BuildError, ElfInfo, ElfSegment, Perms, build_for_board, limits};
use axolotl_kernel_config::BOARDS;
use libfuzzer_sys::fuzz_target;

fn image(path: &str) -> ElfInfo {
    let seg = |vaddr, memsz, write| ElfSegment {
        vaddr,
        memsz,
        filesz: 0,
        offset: 0,
        perms: Perms {
            read: true,
            write,
            execute: !write,
        },
    };
    ElfInfo {
        path: path.to_string(),
        entry: 0x1000,
        segments: vec![seg(0x1000, 0x800, false), seg(0x2000, 0x1000, true)],
        symbols: BTreeMap::from([("__sel4_ipc_buffer_obj".to_string(), (0x2000, 0x1000))]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for board in BOARDS {
        let Ok(c) = limits::check_text("fuzz.system", text, board) else {
            continue;
        };
        let images: Vec<ElfInfo> = c
            .system
            .all_pds()
            .iter()
            .map(|pd| image(&pd.program_image.path))
            .collect();
        if let Err(errs) = build_for_board(&c.system, &images, &image("monitor-pd.elf"), board, 0)
        {
            assert!(
                errs.iter().all(|e| matches!(e, BuildError::Sdf(d)
                    if ["memory", "root-slots", "pd-pages"].contains(&d.rule))),
                "check accepted, build refused: {errs:?}"
            );
        }
    }
});
