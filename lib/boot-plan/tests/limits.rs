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
    // The board the check chose (the kernel's console where the system leaves it), as
    // `cargo xtask build` builds for it.
    let plan = build_for_board(
        &c.system,
        &[image("a.elf")],
        &image("monitor-pd.elf"),
        &c.board,
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

/// A region at a fixed RAM address is carved out by the root task, so it must not lie in
/// the RAM the kernel and the root task hold: the bottom `RESERVED_RAM` and the pack
/// (`kernel_held_ram`). Mapped, the kernel's console UART is refused; unmapped it only names
/// an address (Microkit's `setvar` example).
#[test]
fn fixed_regions_in_held_ram_or_on_a_mapped_console_are_refused_at_the_region() {
    let region = |pa: &str| {
        format!("  <memory_region name=\"fixed\" size=\"0x1000\" phys_addr=\"{pa}\" />\n")
    };
    for pa in ["0x40000000", "0x40200000", "0x40fff000"] {
        let err = check_and_build(&pds(1, &region(pa))).unwrap_err();
        assert!(err.contains("t.system:3:3: error: "), "{pa}: {err}");
        assert!(err.contains("[phys-kernel]"), "{pa}: {err}");
        assert!(
            err.contains("place it at 0x41000000 or above"),
            "{pa}: {err}"
        );
    }
    // Above it, RAM anywhere up to the board's 2 GiB end is accepted, as Microkit's
    // `qemu_virt_aarch64` accepts 0x8000_0000; device memory the kernel hands out too.
    for pa in ["0x48000000", "0x80000000", "0xbffff000", "0x9040000"] {
        check_and_build(&pds(1, &region(pa))).unwrap_or_else(|e| panic!("{pa}: {e}"));
    }
    // `check` counts the pack as empty: `build` refuses the pack's RAM, at the region.
    let text = pds(1, &region("0x41000000"));
    let c = limits::check_text("t.system", &text, &BOARDS[1]).unwrap();
    let errs = build_for_board(
        &c.system,
        &[image("a.elf")],
        &image("monitor-pd.elf"),
        &BOARDS[1],
        0x10_0000,
    )
    .unwrap_err();
    let msg = format!("{errs:?}");
    assert!(msg.contains("phys-kernel"), "{msg}");
    assert!(msg.contains("0x41100000 or above"), "{msg}");

    // The console UART: a PD that maps UART0 gets it, and the kernel's console moves to
    // UART1; a region there that no PD maps is a name for an address and moves nothing.
    let mapped = pds(1, &region("0x9000000")).replace(
        "<program_image path=\"a.elf\" />",
        "<program_image path=\"a.elf\" /><map mr=\"fixed\" vaddr=\"0x2000000\" />",
    );
    check_and_build(&mapped).unwrap();
    let c = limits::check_text("t.system", &mapped, &BOARDS[1]).unwrap();
    assert_eq!((c.board.uart_base, c.board.uart_irq), (0x0904_0000, 40));
    let c = limits::check_text("t.system", &pds(1, &region("0x9000000")), &BOARDS[1]).unwrap();
    assert_eq!(c.board, BOARDS[1]);
    // Both UARTs mapped: the console has nowhere to go, and UART0 stays the kernel's.
    let both = mapped
        .replace(
            "<map mr=\"fixed\" vaddr=\"0x2000000\" />",
            "<map mr=\"fixed\" vaddr=\"0x2000000\" /><map mr=\"u1\" vaddr=\"0x2001000\" />",
        )
        .replace(
            "<system>\n",
            "<system>\n  <memory_region name=\"u1\" size=\"0x1000\" phys_addr=\"0x9040000\" />\n",
        );
    let err = check_and_build(&both).unwrap_err();
    assert!(
        err.contains("t.system:3:98: error: UART0 (0x9000000, irq 33) is taken here")
            && err.contains("[console]"),
        "{err}"
    );
}

/// On the ODROIDs the GIC lies among the SoC's devices, inside the device window: a mapped
/// region on its distributor, CPU interface or hypervisor interface is refused at the region
/// (the kernel keeps them: no device untyped covers them), GICV is the VMM's to map, and
/// UART_A (the serial driver's) is a device like any other.
#[test]
fn the_gic_inside_an_odroid_s_device_window_stays_the_kernel_s() {
    use axolotl_kernel_config::{ODROID_C2, ODROID_C4};
    let region = |pa: u64, size: u64| {
        pds(
            1,
            &format!(
                "  <memory_region name=\"fixed\" size=\"{size:#x}\" phys_addr=\"{pa:#x}\" />\n"
            ),
        )
        .replace(
            "<program_image path=\"a.elf\" />",
            "<program_image path=\"a.elf\" /><map mr=\"fixed\" vaddr=\"0x2000000\" />",
        )
    };
    for (board, gic, uart_a) in [
        (ODROID_C4, 0xffc0_0000u64, 0xffd2_4000u64),
        (ODROID_C2, 0xc430_0000, 0xc110_8000),
    ] {
        let check = |text: &str| limits::check_text("t.system", text, &board);
        for (off, size) in [
            (0x1000, 0x1000),
            (0x2000, 0x2000),
            (0x5000, 0x1000),
            (0, 0x8000),
        ] {
            let err = check(&region(gic + off, size)).unwrap_err().to_string();
            assert!(
                err.contains("[phys-device]") && err.contains("covers the GIC's frame"),
                "{} {:#x}: {err}",
                board.name,
                gic + off
            );
        }
        // Unmapped, it only names the address.
        check(&pds(
            1,
            &format!(
                "  <memory_region name=\"fixed\" size=\"0x1000\" phys_addr=\"{:#x}\" />\n",
                gic + 0x1000
            ),
        ))
        .unwrap();
        for pa in [gic + 0x6000, uart_a] {
            let c = check(&region(pa, 0x1000)).unwrap_or_else(|d| panic!("{pa:#x}: {d}"));
            build_for_board(
                &c.system,
                &[image("a.elf")],
                &image("monitor-pd.elf"),
                &c.board,
                0x10_0000,
            )
            .unwrap_or_else(|e| panic!("{pa:#x}: {e:?}"));
        }
    }
}

/// A region at a fixed RAM address takes RAM the others would get: `memory` counts it.
#[test]
fn fixed_ram_regions_count_against_the_board_s_ram() {
    let text = pds(
        1,
        "  <memory_region name=\"a\" size=\"0x60000000\" page_size=\"0x200000\" />\n  \
         <memory_region name=\"b\" size=\"0x20000000\" page_size=\"0x200000\" \
         phys_addr=\"0x80000000\" />\n",
    );
    let err = check_and_build(&text).unwrap_err();
    assert!(
        err.contains("t.system:4:3: error: with memory region `b`"),
        "{err}"
    );
    assert!(err.contains("[memory]"), "{err}");
}

/// Issue #18: the RAM a system may take is every range's: 1.5 GiB of regions fit the 2 GiB
/// Pi 4 (948 MiB below 1 GiB, 1 GiB above), not the 1 GiB one; a fixed region above 1 GiB
/// counts against it as one below does.
#[test]
fn every_ram_range_counts_toward_the_board_s_ram() {
    use axolotl_kernel_config::{RPI4B, RPI4B_2GB};
    let text = pds(
        1,
        "  <memory_region name=\"a\" size=\"0x50000000\" page_size=\"0x200000\" />\n  \
         <memory_region name=\"b\" size=\"0x10000000\" page_size=\"0x200000\" \
         phys_addr=\"0x60000000\" />\n",
    );
    let c = limits::check_text("t.system", &text, &RPI4B_2GB).unwrap_or_else(|d| panic!("{d}"));
    build_for_board(
        &c.system,
        &[image("a.elf")],
        &image("monitor-pd.elf"),
        &c.board,
        0x10_0000,
    )
    .unwrap();
    let small = text.replace("0x50000000\"", "0x20000000\"");
    let err = limits::check_text("t.system", &small, &RPI4B)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[phys-range]"), "{err}");
    let big = text.replace("0x50000000\"", "0x70000000\"");
    let err = limits::check_text("t.system", &big, &RPI4B_2GB)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("with memory region `b`") && err.contains("[memory]"),
        "{err}"
    );
}

/// Priority 254 (Microkit's highest, below its monitor) passes `check` and `build`, as it
/// would under Microkit: the monitor is at 255 (issue #19).
#[test]
fn priority_254_is_checked_and_built() {
    let text = pds(1, "").replace("priority=\"100\"", "priority=\"254\"");
    check_and_build(&text).unwrap();
}

/// Microkit's QEMU virt AArch64 examples that `cargo xtask check` accepts unchanged
/// (`sdf/tests/microkit/examples/`, those without files of their own beside the SDF):
/// `setvar` puts a region at 0x8000_0000, RAM on Microkit's 2 GiB `qemu_virt_aarch64` and on
/// this board, and names the console UART only for its address.
#[test]
fn microkit_examples_pass_check_unchanged() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdf/tests/microkit/examples");
    for board in BOARDS.iter().filter(|b| b.name == "qemu-virt-aarch64") {
        for name in [
            "hello.system",
            "setvar.system",
            "hierarchy.system",
            "passive_server.system",
            "mr_prefill.system",
            "hello_domains.system",
            "domains.system",
        ] {
            let c = limits::check_file(&dir.join(name), board)
                .unwrap_or_else(|d| panic!("{name}, GICv{}:\n{d}", board.gic.version().number()));
            assert!(c.warnings.is_empty(), "{name}:\n{}", c.warnings);
        }
        // Microkit's cap sharing example (2.3's `cspace`): refused, and only as cap sharing,
        // each `cap_*` saying why it cannot be honoured.
        let d = limits::check_file(&dir.join("cap_sharing.system"), board).unwrap_err();
        let rules: Vec<_> = d.errors().map(|e| (e.line, e.rule)).collect();
        assert_eq!(
            rules,
            [
                (13, "cspace"),
                (14, "cspace"),
                (17, "cspace"),
                (18, "cspace")
            ],
            "{d}"
        );
        assert!(
            d.errors().all(|e| e.message.contains("is not supported: ")
                && e.file.ends_with("cap_sharing.system")),
            "{d}"
        );
    }
}

/// libvmm's `simple` and sDDF's `serial` and `timer` for QEMU virt AArch64, unchanged
/// (`sdf/tests/examples/`): the first two give UART0 and its IRQ 33 to user level, and the
/// kernel's console moves to UART1; `timer` is refused as Microkit 2.3 refuses it (its PD-level
/// `pp`, and that alone), and passes with `pp` moved to the client's channel end, its driver
/// owning IRQ 30, the EL1 physical timer.
#[test]
fn libvmm_and_sddf_examples_check_as_microkit_would() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdf/tests/examples");
    let uart1 = (0x0904_0000, 40);
    // libvmm's board is Microkit's: GICv2, its GICV at 0x0804_0000, which the guest maps.
    let gicv2 = BOARDS
        .iter()
        .find(|b| b.name == "qemu-virt-aarch64" && b.gic.version().number() == 2)
        .unwrap();
    let c = limits::check_file(&dir.join("libvmm/simple.system"), gicv2)
        .unwrap_or_else(|d| panic!("libvmm simple:\n{d}"));
    assert_eq!((c.board.uart_base, c.board.uart_irq), uart1);
    let rules: Vec<&str> = c.warnings.iter().map(|d| d.rule).collect();
    assert_eq!(rules, ["cpu-shared"; 3], "{}", c.warnings);
    // On GICv3 (xtask's default) its GICV region is not there: the message says `--gic 2`.
    let gicv3 = BOARDS
        .iter()
        .find(|b| b.name == "qemu-virt-aarch64" && b.gic.version().number() == 3)
        .unwrap();
    let d = limits::check_file(&dir.join("libvmm/simple.system"), gicv3).unwrap_err();
    let errs: Vec<String> = d.errors().map(|d| d.to_string()).collect();
    assert!(
        errs.len() == 1 && errs[0].contains("check and build with `--gic 2`"),
        "{d}"
    );
    for board in BOARDS.iter().filter(|b| b.name == "qemu-virt-aarch64") {
        let c = limits::check_file(&dir.join("sddf/serial.system"), board)
            .unwrap_or_else(|d| panic!("sDDF serial:\n{d}"));
        assert_eq!((c.board.uart_base, c.board.uart_irq), uart1);
        assert!(c.warnings.is_empty(), "{}", c.warnings);
        let d = limits::check_file(&dir.join("sddf/timer.system"), board).unwrap_err();
        let got: Vec<(u32, &str)> = d.iter().map(|d| (d.line, d.rule)).collect();
        assert_eq!(got, [(10, "unknown-attribute")], "{d}");
        // Microkit 2.x's spelling: `pp` on the calling end.
        let text = std::fs::read_to_string(dir.join("sddf/timer.system")).unwrap();
        let fixed = text
            .replace(r#" pp="true" passive"#, r#" passive"#)
            .replace(
                r#"<end pd="client" id="1" />"#,
                r#"<end pd="client" id="1" pp="true" />"#,
            );
        assert_ne!(fixed, text);
        limits::check_text("timer.system", &fixed, board)
            .unwrap_or_else(|d| panic!("sDDF timer with `pp` on the client's end:\n{d}"));
    }
}

/// `check_text` then `build_for_board` of one restartable PD (with a standby, the default)
/// whose image has a 1.25 GiB segment with `flags` beside its code and data.
fn standby_with_big_segment(flags: u32) -> Result<(), String> {
    let board = &BOARDS[1];
    let bytes = elf(
        0x1000,
        &[
            (0x1000, 0x800, RX),
            (0x2000, 0x1000, RW),
            (0x20_0000, 0x5000_0000, flags),
        ],
        &[("__sel4_ipc_buffer_obj", 0x2000, 0x1000)],
    );
    let big = ElfInfo::from_bytes("a.elf", &bytes).unwrap();
    let c = limits::check_text("t.system", &pds(1, ""), board).map_err(|d| d.to_string())?;
    build_for_board(
        &c.system,
        &[big],
        &image("monitor-pd.elf"),
        board,
        0x10_0000,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

/// Issue #16: read-only, non-executable pages (a VMM's embedded guest) are one set of frames
/// for both incarnations of a PD with a standby, so they count once against the board's
/// 2 GiB; writable ones are per incarnation and count twice.
#[test]
fn a_standby_shares_read_only_data_but_not_writable_data() {
    const R: u32 = 4;
    standby_with_big_segment(R).unwrap();
    let err = standby_with_big_segment(RW).unwrap_err();
    assert!(err.contains("memory"), "{err}");
}

#[test]
fn only_read_only_data_is_shared_by_incarnations() {
    use axolotl_boot_plan::Perms;
    let p = |read, write, execute| Perms {
        read,
        write,
        execute,
    };
    assert!(p(true, false, false).shared_by_incarnations());
    assert!(!p(true, true, false).shared_by_incarnations());
    assert!(!p(true, false, true).shared_by_incarnations());
    assert!(!p(true, true, true).shared_by_incarnations());
    // The IPC buffer's page is never shared, whatever its segment's permissions.
    let ro = p(true, false, false);
    assert!(ro.shares_page(0x40_0000, 0x20_0000, 0x3f_f000));
    assert!(ro.shares_page(0x40_0000, 0x20_0000, 0x60_0000));
    assert!(!ro.shares_page(0x40_0000, 0x20_0000, 0x40_0000));
    assert!(!ro.shares_page(0x40_0000, 0x20_0000, 0x5f_f000));
    assert!(!ro.shares_page(0x40_0000, 0x1000, 0x40_0000));
    assert!(ro.shares_page(0x40_0000, 0x1000, 0x40_1000));
    assert!(!p(true, true, false).shares_page(0x40_0000, 0x1000, 0x40_1000));
}
