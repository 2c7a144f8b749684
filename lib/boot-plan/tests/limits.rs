//! Issue #20, finding 6: what `check` accepts builds, and what the plan, the root task or the
//! board cannot hold is refused by `check` with its position.

mod common;

use std::fmt::Write;

use axolotl_boot_plan::{ElfInfo, build_for_board, limits};
use axolotl_kernel_config::BOARDS;
use common::{RW, RX, elf};

fn image(path: &str) -> ElfInfo {
    let bytes = elf(
        0x1000,
        &[(0x1000, 0x800, RX), (0x2000, 0x1000, RW)],
        &[("__sel4_ipc_buffer_obj", 0x2000, 0x1000)],
    );
    ElfInfo::from_bytes(path, &bytes).unwrap()
}

/// `cargo xtask check`, then (if it accepts) what `cargo xtask build` runs: `Ok`, or the
/// check's diagnostics rendered. The builder must accept what the check accepts.
fn check_and_build(text: &str) -> Result<(), String> {
    let board = &BOARDS[1];
    let c = limits::check_text("t.system", text, board).map_err(|d| d.to_string())?;
    let plan = build_for_board(
        &c.system,
        &[image("a.elf")],
        &image("monitor-pd.elf"),
        board,
        0x10_0000,
    )
    .unwrap_or_else(|e| panic!("check accepted what the builder refuses: {e:?}"));
    // What `cargo xtask build` prints.
    let _ = plan.summary();
    Ok(())
}

fn pds(n: usize, extra: &str) -> String {
    let mut t = String::from("<system>\n");
    for i in 0..n {
        writeln!(
            t,
            "  <protection_domain name=\"p{i}\" priority=\"{}\" restart=\"on-failure\"><program_image path=\"a.elf\" /></protection_domain>",
            100 + i % 100
        )
        .unwrap();
    }
    t.push_str(extra);
    t.push_str("</system>\n");
    t
}

#[test]
fn sixty_three_pds_build() {
    check_and_build(&pds(63, "")).unwrap();
}

#[test]
fn region_near_u64_max_is_refused_at_the_region() {
    let text = pds(
        1,
        "  <memory_region name=\"huge\" size=\"0xfffffffffffff000\" />\n",
    );
    let err = check_and_build(&text).unwrap_err();
    assert!(
        err.contains("t.system:3:3: error: with memory region `huge`"),
        "{err}"
    );
    assert!(err.contains("[memory]"), "{err}");
}

#[test]
fn region_larger_than_ram_is_refused_at_the_region() {
    let text = pds(
        1,
        "  <memory_region name=\"big\" size=\"0x80000000\" page_size=\"0x200000\" />\n",
    );
    let err = check_and_build(&text).unwrap_err();
    assert!(
        err.contains("t.system:3:3: error: with memory region `big`"),
        "{err}"
    );
    assert!(err.contains("[memory]"), "{err}");
}

#[test]
fn many_dependants_are_refused_at_the_pd() {
    // 62 PDs each depending on, and with a channel to, both p0 and p1: 120 links, more than
    // the monitor has slots to tell them (118).
    let mut chans = String::new();
    for i in 2..62 {
        for d in 0..2 {
            writeln!(
                chans,
                "  <channel><end pd=\"p{i}\" id=\"{d}\" /><end pd=\"p{d}\" id=\"{}\" /></channel>",
                i - 2
            )
            .unwrap();
        }
    }
    let mut text = pds(62, &chans);
    for i in 2..62 {
        text = text.replacen(
            &format!("name=\"p{i}\" "),
            &format!("name=\"p{i}\" depends_on=\"p0,p1\" "),
            1,
        );
    }
    let err = check_and_build(&text).unwrap_err();
    assert!(err.contains("t.system:63:3: error: "), "{err}");
    assert!(err.contains("[plan-capacity]"), "{err}");
}

/// The root task places regions at fixed addresses only in the device untypeds the kernel
/// hands out: not in RAM (it allocates RAM itself), not on the kernel's console UART.
#[test]
fn fixed_regions_outside_device_memory_are_refused_at_the_region() {
    for (pa, what) in [("0x48000000", "RAM"), ("0x9000000", "console")] {
        let text = pds(
            1,
            &format!("  <memory_region name=\"dev\" size=\"0x1000\" phys_addr=\"{pa}\" />\n"),
        );
        let err = check_and_build(&text).unwrap_err();
        assert!(err.contains("t.system:3:3: error: "), "{what}: {err}");
        assert!(err.contains("[phys-device]"), "{what}: {err}");
    }
    // Device memory the kernel hands out is accepted.
    let text = pds(
        1,
        "  <memory_region name=\"dev\" size=\"0x1000\" phys_addr=\"0x9040000\" />\n",
    );
    check_and_build(&text).unwrap();
}

/// Priority 254 (Microkit's highest, below its monitor) passes `check` and `build`, as it
/// would under Microkit: the monitor is at 255 (issue #19).
#[test]
fn priority_254_is_checked_and_built() {
    let text = pds(1, "").replace("priority=\"100\"", "priority=\"254\"");
    check_and_build(&text).unwrap();
}
