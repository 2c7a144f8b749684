//! One invalid file per rule: each test asserts every diagnostic (position, rule, message),
//! so an extra or missing report fails as well as a wrong one.

use std::path::{Path, PathBuf};

use axolotl_kernel_config::{BOARDS, Board};
use axolotl_sdf::*;

// qemu-virt-aarch64: RAM [0x4000_0000, 0xc000_0000), devices [0x0900_0000, 0x0c00_0000).
const BOARD: Board = BOARDS[0];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad")
        .join(format!("{name}.system"))
}

fn diagnostics(name: &str) -> Diagnostics {
    match check_file(&fixture(name), &BOARD) {
        Ok(c) => panic!(
            "{name}.system should not validate (warnings: {})",
            c.warnings
        ),
        Err(d) => d,
    }
}

/// Asserts the exact diagnostics of fixture `name`; only `unused-region` and `map-wx` are
/// warnings.
fn expect(name: &str, want: &[(u32, u32, &str, &str)]) {
    // The fixtures' VMs are about other rules; the GICV warning is tested in good.rs.
    let diags = Diagnostics(
        diagnostics(name)
            .iter()
            .filter(|d| d.rule != "vm-gic")
            .cloned()
            .collect(),
    );
    for d in &diags {
        assert_eq!(
            d.severity == Severity::Warning,
            ["unused-region", "map-wx", "cpu-shared"].contains(&d.rule),
            "{d}"
        );
    }
    let got: Vec<(u32, u32, &str, &str)> = diags
        .iter()
        .map(|d| (d.line, d.col, d.rule, d.message.as_str()))
        .collect();
    assert_eq!(got, want, "{name}.system");
}

#[test]
fn diagnostics_render_as_file_line_col_severity_message_rule() {
    let path = fixture("unknown_attribute");
    let text = diagnostics("unknown_attribute").to_string();
    let lines: Vec<&str> = text.lines().collect();
    let file = path.display();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with(&format!(
        "{file}:2:33: error: unknown attribute `colour` on `protection_domain` ("
    )));
    assert!(lines[0].ends_with(") [unknown-attribute]"));
    assert_eq!(
        lines[1],
        format!("{file}:5:5: warning: memory region `r` is never mapped [unused-region]")
    );
}

#[test]
fn unreadable_file_is_a_diagnostic() {
    let path = fixture("does_not_exist");
    let d = check_file(&path, &BOARD).unwrap_err();
    assert_eq!(d.len(), 1);
    let d = &d.0[0];
    // No invented position: the whole file is the problem.
    assert_eq!((d.line, d.col, d.rule), (0, 0, "read-file"));
    assert!(d.message.starts_with("cannot read: "), "{}", d.message);
    let shown = d.to_string();
    assert!(
        shown.starts_with(&format!("{}: error: cannot read: ", path.display())),
        "{shown}"
    );
}

#[test]
fn bad_number() {
    expect(
        "bad_number",
        &[
            (
                2,
                33,
                "bad-number",
                "`budget`: `1e3` is not a number (decimal or 0x hex, `_` allowed)",
            ),
            (
                4,
                21,
                "bad-number",
                "`vaddr`: `0x10_000_0g` is not a number (decimal or 0x hex, `_` allowed)",
            ),
            (
                6,
                29,
                "bad-number",
                "`size`: `4 KiB` is not a number (decimal or 0x hex, `_` allowed)",
            ),
        ],
    );
}

#[test]
fn bad_value() {
    expect(
        "bad_value",
        &[
            (
                2,
                33,
                "bad-value",
                "`passive` must be `true` or `false`, not `yes`",
            ),
            (
                4,
                39,
                "bad-value",
                "`perms` must combine r, w and x (each at most once), not `rwz`",
            ),
            (
                4,
                51,
                "bad-value",
                "`cached` must be `true` or `false`, not `no`",
            ),
            (
                5,
                30,
                "bad-value",
                "`trigger` must be `level` or `edge`, not `rising`",
            ),
        ],
    );
}

#[test]
fn budget_period() {
    expect(
        "budget_period",
        &[
            (
                2,
                33,
                "budget-period",
                "budget 2000 us exceeds period 1000 us",
            ),
            (5, 33, "budget-period", "budget must be at least 1 us"),
        ],
    );
}

#[test]
fn channel_ends() {
    expect(
        "channel_ends",
        &[
            (
                8,
                5,
                "channel-ends",
                "channel has 1 `end` elements; a channel has exactly 2",
            ),
            (
                11,
                5,
                "channel-ends",
                "channel has 3 `end` elements; a channel has exactly 2",
            ),
        ],
    );
}

#[test]
fn child_id() {
    expect(
        "child_id",
        &[
            (
                7,
                9,
                "child-id",
                "id 3 of `parent` is already used by child `c1` (line 4)",
            ),
            (
                10,
                38,
                "child-id",
                "protection_domain id 64 is out of range 0..=61",
            ),
            (
                14,
                13,
                "child-id",
                "id 3 of `parent` is already used by child `c1` (line 4)",
            ),
        ],
    );
}

#[test]
fn depends_on() {
    expect(
        "depends_on",
        &[
            (
                2,
                5,
                "depends-on",
                "protection domain `a` depends on itself",
            ),
            (
                5,
                5,
                "depends-on",
                "`b` depends on unknown protection domain `ghost`",
            ),
            (
                8,
                33,
                "bad-value",
                "`depends_on` must be a comma-separated list of PD names, not `a,,b`",
            ),
        ],
    );
}

#[test]
fn depends_on_cycle() {
    expect(
        "depends_on_cycle",
        &[
            (
                2,
                5,
                "depends-on-cycle",
                "dependency cycle: a -> b -> c -> a",
            ),
            (
                5,
                5,
                "depends-on-cycle",
                "dependency cycle: b -> c -> a -> b",
            ),
            (
                8,
                5,
                "depends-on-cycle",
                "dependency cycle: c -> a -> b -> c",
            ),
        ],
    );
}

#[test]
fn heartbeat_passive() {
    expect(
        "heartbeat_passive",
        &[(
            2,
            5,
            "heartbeat-passive",
            "passive protection domain `a` cannot send heartbeats: it only runs when called",
        )],
    );
}

#[test]
fn id_range() {
    expect(
        "id_range",
        &[
            (4, 23, "id-range", "irq id 62 is out of range 0..=61"),
            (11, 21, "id-range", "end id 100 is out of range 0..=61"),
        ],
    );
}

#[test]
fn id_unique() {
    expect(
        "id_unique",
        &[
            (
                10,
                9,
                "id-unique",
                "id 1 of `a` is already used by irq 40 (line 4)",
            ),
            (
                14,
                9,
                "id-unique",
                "id 1 of `b` is already used by the channel to `a` (line 11)",
            ),
        ],
    );
}

#[test]
fn irq_unique() {
    expect(
        "irq_unique",
        &[(
            8,
            9,
            "irq-unique",
            "irq 40 of `b` is already claimed by `a` at line 4",
        )],
    );
}

#[test]
fn map_align() {
    expect(
        "map_align",
        &[
            (
                4,
                9,
                "map-align",
                "vaddr 0x1000800 of the map of `small` is not aligned to its page size 0x1000",
            ),
            (
                5,
                9,
                "map-align",
                "vaddr 0x2001000 of the map of `large` is not aligned to its page size 0x200000",
            ),
        ],
    );
}

#[test]
fn map_overlap() {
    expect(
        "map_overlap",
        &[(
            5,
            9,
            "map-overlap",
            "map of `two` at [0x1001000, 0x1002000) overlaps the map of `one` at [0x1000000, 0x1002000) (line 4) in protection domain `a`",
        )],
    );
}

#[test]
fn map_perms() {
    expect(
        "map_perms",
        &[
            (
                4,
                39,
                "map-perms",
                "perms `w` grants write without read, which aarch64 cannot map; add `r`",
            ),
            (
                5,
                9,
                "map-wx",
                "map of `r` in `a` is writable and executable: valid (Microkit allows it), but code injected into it can run; use `rw` and `rx` maps if you can",
            ),
            (
                5,
                39,
                "map-perms",
                "perms `wx` grants write without read, which aarch64 cannot map; add `r`",
            ),
        ],
    );
}

#[test]
fn map_stack() {
    expect(
        "map_stack",
        &[
            (
                5,
                9,
                "map-stack",
                "map of `r` at [0xfffff000, 0x100001000) overlaps the stack of `a` at [0xffffe000, 0x100000000); place it below or above the stack",
            ),
            // Line 6, above the stack, is valid: the address space goes on to 2^39.
            (
                10,
                9,
                "map-stack",
                "map of `r` at [0xfffef000, 0xffff1000) overlaps the stack of `b` at [0xffff0000, 0x100000000); place it below or above the stack",
            ),
        ],
    );
}

#[test]
fn missing_attribute() {
    expect(
        "missing_attribute",
        &[
            (
                2,
                5,
                "missing-attribute",
                "`protection_domain` is missing required attribute `name`",
            ),
            (
                5,
                5,
                "missing-attribute",
                "`memory_region` is missing required attribute `size` (required unless `prefill_path` gives it)",
            ),
            (5, 5, "unused-region", "memory region `r` is never mapped"),
        ],
    );
}

#[test]
fn page_size() {
    expect(
        "page_size",
        &[(
            6,
            44,
            "page-size",
            "page_size 0x10000 is not 0x1000 or 0x200000",
        )],
    );
}

#[test]
fn pd_count() {
    expect(
        "pd_count",
        &[(
            65,
            5,
            "pd-count",
            "more than 63 protection domains (`pd63` is number 64)",
        )],
    );
}

#[test]
fn phys_align() {
    expect(
        "phys_align",
        &[
            (
                7,
                43,
                "phys-align",
                "phys_addr 0x9000800 is not aligned to the page size 0x1000",
            ),
            (
                8,
                66,
                "phys-align",
                "phys_addr 0x40100000 is not aligned to the page size 0x200000",
            ),
        ],
    );
}

#[test]
fn phys_overlap() {
    expect(
        "phys_overlap",
        &[(
            8,
            5,
            "phys-overlap",
            "physical range [0x9001000, 0x9002000) of `y` overlaps [0x9000000, 0x9002000) of `x` (line 7)",
        )],
    );
}

#[test]
fn phys_range() {
    expect(
        "phys_range",
        &[
            (
                8,
                5,
                "phys-range",
                "physical range [0xd0000000, 0xd0001000) of `high` is neither inside RAM [0x40000000, 0xc0000000) nor inside the device memory [0x9000000, 0xc000000), [0x8020000, 0x8021000), [0x10000000, 0x40000000), [0x4010000000, 0x4020000000), [0x8000000000, 0x10000000000) nor the GIC virtual CPU interface [0x8040000, 0x8042000) of board `qemu-virt-aarch64`",
            ),
            (
                9,
                5,
                "phys-range",
                "physical range [0xbffff000, 0xc0001000) of `straddle` is neither inside RAM [0x40000000, 0xc0000000) nor inside the device memory [0x9000000, 0xc000000), [0x8020000, 0x8021000), [0x10000000, 0x40000000), [0x4010000000, 0x4020000000), [0x8000000000, 0x10000000000) nor the GIC virtual CPU interface [0x8040000, 0x8042000) of board `qemu-virt-aarch64`",
            ),
            (
                10,
                5,
                "phys-range",
                "physical range [0x1000, 0x2000) of `low` is neither inside RAM [0x40000000, 0xc0000000) nor inside the device memory [0x9000000, 0xc000000), [0x8020000, 0x8021000), [0x10000000, 0x40000000), [0x4010000000, 0x4020000000), [0x8000000000, 0x10000000000) nor the GIC virtual CPU interface [0x8040000, 0x8042000) of board `qemu-virt-aarch64`",
            ),
        ],
    );
}

/// Issue #18: a region at a fixed RAM address lies inside one of the board's RAM ranges. The
/// 2 GiB Pi 4's second range takes one the 1 GiB board refuses; none straddles the gap
/// between them (the VideoCore's share), and the message lists every range.
#[test]
fn phys_range_on_a_board_with_several_ram_ranges() {
    use axolotl_kernel_config::{RPI4B, RPI4B_2GB};
    let sdf = |pa: u64, size: u64| {
        format!(
            "<system><memory_region name=\"r\" size=\"{size:#x}\" phys_addr=\"{pa:#x}\" />\
             <protection_domain name=\"p\"><program_image path=\"p.elf\" />\
             <map mr=\"r\" vaddr=\"0x2000000\" /></protection_domain></system>"
        )
    };
    let above_1g = sdf(0x7000_0000, 0x1000);
    assert!(check("a.system", &above_1g, &RPI4B_2GB).is_ok());
    let e = check("a.system", &above_1g, &RPI4B)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is neither inside RAM [0x0, 0x3b400000) nor") && e.contains("[phys-range]"),
        "{e}"
    );
    let across = sdf(0x3b3f_f000, 0x4c0_2000);
    let e = check("a.system", &across, &RPI4B_2GB)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "[0x3b3ff000, 0x40001000) of `r` is neither inside RAM [0x0, 0x3b400000), \
                    [0x40000000, 0x80000000) nor"
        ),
        "{e}"
    );
}

#[test]
fn pp_both() {
    expect(
        "pp_both",
        &[(
            8,
            5,
            "pp-both",
            "both ends of the channel between `a` and `b` are `pp`",
        )],
    );
}

#[test]
fn pp_priority() {
    expect(
        "pp_priority",
        &[
            (
                12,
                9,
                "pp-priority",
                "`a` (priority 10) makes protected calls to `b` (priority 10), whose priority must be strictly higher",
            ),
            (
                17,
                9,
                "pp-priority",
                "`a` (priority 10) makes protected calls to `c` (priority 5), whose priority must be strictly higher",
            ),
        ],
    );
}

#[test]
fn priority_range() {
    expect(
        "priority_range",
        &[
            (
                2,
                33,
                "priority-range",
                "priority 255 is out of range 0..=254",
            ),
            (
                5,
                33,
                "priority-range",
                "priority 1000 is out of range 0..=254",
            ),
        ],
    );
}

#[test]
fn program_image() {
    expect(
        "program_image",
        &[
            (
                2,
                5,
                "program-image",
                "protection domain `none` has no `program_image`",
            ),
            (
                6,
                9,
                "program-image",
                "protection domain `two` has more than one `program_image`",
            ),
        ],
    );
}

#[test]
fn region_size() {
    expect(
        "region_size",
        &[
            (
                8,
                31,
                "region-size",
                "size 0x1800 is not a multiple of the page size 0x1000",
            ),
            (
                9,
                31,
                "region-size",
                "size 0x201000 is not a multiple of the page size 0x200000",
            ),
            (10, 33, "region-size", "memory region size must not be 0"),
        ],
    );
}

#[test]
fn restart_backoff() {
    expect(
        "restart_backoff",
        &[(
            2,
            79,
            "restart-backoff",
            "restart_backoff_max_ms 50 is below restart_backoff_ms 100",
        )],
    );
}

#[test]
fn restart_limit() {
    expect(
        "restart_limit",
        &[
            (
                2,
                50,
                "restart-limit",
                "restart_limit 0 never allows a restart; use restart=\"never\" instead of \"always\"",
            ),
            (
                5,
                54,
                "restart-limit",
                "restart_window_ms must be at least 1",
            ),
        ],
    );
}

#[test]
fn restart_policy() {
    expect(
        "restart_policy",
        &[(
            2,
            33,
            "restart-policy",
            "unknown restart policy `sometimes` (expected never, always or on-failure)",
        )],
    );
}

/// `several.system` holds eight unrelated mistakes; all of them are reported, in file order.
#[test]
fn several() {
    expect(
        "several",
        &[
            (
                2,
                31,
                "region-size",
                "size 0x1800 is not a multiple of the page size 0x1000",
            ),
            (
                3,
                38,
                "priority-range",
                "priority 300 is out of range 0..=254",
            ),
            (
                5,
                38,
                "map-perms",
                "perms `w` grants write without read, which aarch64 cannot map; add `r`",
            ),
            (
                7,
                5,
                "unique-pd-name",
                "duplicate protection domain name `client` (first used at line 3)",
            ),
            (9, 23, "id-range", "irq id 70 is out of range 0..=61"),
            (
                12,
                33,
                "bad-value",
                "`pp` must be `true` or `false`, not `maybe`",
            ),
            (
                13,
                9,
                "unknown-pd",
                "channel end names unknown protection domain `server`",
            ),
            (
                15,
                5,
                "unknown-element",
                "unknown element `wibble` in `system` (expected one of: protection_domain, memory_region, channel, domains, domain_schedule)",
            ),
        ],
    );
}

#[test]
fn stack_size() {
    expect(
        "stack_size",
        &[
            (
                2,
                33,
                "stack-size",
                "stack_size 0x1800 must be a multiple of 0x1000 between 0x1000 and 0x1000000",
            ),
            (
                5,
                33,
                "stack-size",
                "stack_size 0x2000000 must be a multiple of 0x1000 between 0x1000 and 0x1000000",
            ),
            (
                8,
                33,
                "stack-size",
                "stack_size 0x800 must be a multiple of 0x1000 between 0x1000 and 0x1000000",
            ),
        ],
    );
}

#[test]
fn unexpected_text() {
    expect(
        "unexpected_text",
        &[(
            4,
            9,
            "unexpected-text",
            "unexpected text in `protection_domain`",
        )],
    );
}

#[test]
fn unique_pd_name() {
    expect(
        "unique_pd_name",
        &[(
            8,
            5,
            "unique-pd-name",
            "duplicate protection domain name `a` (first used at line 2)",
        )],
    );
}

#[test]
fn unique_region_name() {
    expect(
        "unique_region_name",
        &[(
            7,
            5,
            "unique-region-name",
            "duplicate memory region name `r` (first defined at line 6)",
        )],
    );
}

#[test]
fn unknown_attribute() {
    expect(
        "unknown_attribute",
        &[
            (
                2,
                33,
                "unknown-attribute",
                "unknown attribute `colour` on `protection_domain` (expected one of: name, priority, budget, period, passive, stack_size, cpu, smc, fpu, domain, cnode_cap, control, restart, restart_limit, restart_window_ms, restart_backoff_ms, restart_backoff_max_ms, heartbeat_ms, depends_on, restart_standby)",
            ),
            (5, 5, "unused-region", "memory region `r` is never mapped"),
            (
                5,
                43,
                "unknown-attribute",
                "unknown attribute `paddr` on `memory_region` (expected one of: name, size, page_size, phys_addr, prefill_path)",
            ),
        ],
    );
}

#[test]
fn unknown_element() {
    expect(
        "unknown_element",
        &[
            (
                4,
                9,
                "unknown-element",
                "unknown element `mapping` in `protection_domain` (expected one of: program_image, map, irq, setvar, protection_domain, virtual_machine, cspace)",
            ),
            (
                6,
                5,
                "unknown-element",
                "unknown element `iommu` in `system` (expected one of: protection_domain, memory_region, channel, domains, domain_schedule)",
            ),
        ],
    );
}

#[test]
fn unknown_pd() {
    expect(
        "unknown_pd",
        &[(
            7,
            9,
            "unknown-pd",
            "channel end names unknown protection domain `ghost`",
        )],
    );
}

#[test]
fn unknown_region() {
    expect(
        "unknown_region",
        &[
            (
                4,
                9,
                "unknown-region",
                "map names unknown memory region `nowhere`",
            ),
            (
                5,
                9,
                "unknown-region",
                "setvar names unknown memory region `elsewhere`",
            ),
        ],
    );
}

#[test]
fn user_address() {
    expect(
        "user_address",
        &[
            (
                4,
                9,
                "user-address",
                "map of `r` at [0x7fffffe000, 0x8000002000) extends past the user address limit 0x8000000000 (a PD's address space is the kernel's 39-bit stage 2)",
            ),
            (
                5,
                9,
                "user-address",
                "map of `r` at 0xfffffffffffff000 wraps around the address space",
            ),
        ],
    );
}

#[test]
fn vcpu() {
    expect(
        "vcpu",
        &[
            (5, 19, "vcpu", "vcpu id 62 is out of range 0..=61"),
            (10, 9, "vcpu", "virtual machine `g2` has no `vcpu`"),
        ],
    );
}

#[test]
fn virtual_machine_count() {
    expect(
        "virtual_machine_count",
        &[(
            7,
            9,
            "virtual-machine-count",
            "protection domain `host` has more than one `virtual_machine`",
        )],
    );
}

#[test]
fn vm_map_overlap() {
    expect(
        "vm_map_overlap",
        &[(
            8,
            13,
            "map-overlap",
            "map of `dev` at [0x40001000, 0x40002000) overlaps the map of `ram` at [0x40000000, 0x40010000) (line 7) in virtual machine `guest`",
        )],
    );
}

#[test]
fn xml() {
    expect("xml", &[(5, 1, "xml", "expected '>' not '<'")]);
}

#[test]
fn not_xml() {
    expect(
        "not_xml",
        &[(
            1,
            1,
            "xml",
            "not an XML file: an SDF starts with `<?xml ...?>` or `<system>`",
        )],
    );
}

#[test]
fn cut_off() {
    // Where the text ends, and what is left open (roxmltree says 1:1, "never closed").
    expect(
        "cut_off",
        &[(
            4,
            1,
            "xml",
            "the file ends inside `<protection_domain>` (opened at line 2): the file is cut off or a closing tag is missing",
        )],
    );
}

#[test]
fn no_pds() {
    expect(
        "no_pds",
        &[
            (
                1,
                1,
                "no-pds",
                "the system has no protection domain (Microkit refuses this too): add at least one",
            ),
            (2, 5, "unused-region", "memory region `r` is never mapped"),
        ],
    );
}

#[test]
fn setvar_unique() {
    expect(
        "setvar_unique",
        &[
            (
                6,
                9,
                "setvar-unique",
                "symbol `buf` of `a` is already patched at line 5",
            ),
            // A child's `setvar_id` and a channel end's patch the parent, the end's PD.
            (
                8,
                9,
                "setvar-unique",
                "symbol `len` of `a` is already patched at line 7",
            ),
            (
                13,
                9,
                "setvar-unique",
                "symbol `buf` of `a` is already patched at line 5",
            ),
        ],
    );
}

#[test]
fn irq_reserved() {
    expect(
        "irq_reserved",
        &[
            (
                4,
                9,
                "irq-reserved",
                "irq 26 is the kernel's own timer (EL2 physical timer PPI), which the kernel keeps (protection domain `a`)",
            ),
            (
                5,
                9,
                "irq-reserved",
                "irq 27 is the guests' virtual timer PPI, which the kernel keeps (protection domain `a`)",
            ),
            (
                6,
                9,
                "irq-reserved",
                "irq 16 is an SGI or a PPI: only SPIs (32 to 255) and the EL1 physical timer (30) can be handed to a protection domain (protection domain `a`)",
            ),
            (
                7,
                9,
                "irq-reserved",
                "irq 256 is beyond the interrupts the kernel manages (32 to 255) (protection domain `a`)",
            ),
        ],
    );
}

#[test]
fn cpu_range() {
    expect(
        "cpu_range",
        &[
            (
                2,
                5,
                "cpu-range",
                "protection domain `a` is placed on cpu 4, but qemu-virt-aarch64 has 4 cores (0 to 3)",
            ),
            (
                5,
                5,
                "cpu-shared",
                "protection domain `b` is placed on cpu 3: the kernel runs on 1 core of qemu-virt-aarch64, so it runs on core 0 with every other protection domain (priorities hold, parallelism does not)",
            ),
            (
                8,
                13,
                "cpu-shared",
                "vcpu 0 of `g` is placed on cpu 1: the kernel runs on 1 core of qemu-virt-aarch64, so it runs on core 0 with every other protection domain (priorities hold, parallelism does not)",
            ),
            (
                9,
                13,
                "cpu-range",
                "vcpu 1 of `g` is placed on cpu 7, but qemu-virt-aarch64 has 4 cores (0 to 3)",
            ),
        ],
    );
}

/// A system that takes both of QEMU virt's UARTs leaves the kernel's console nowhere: each
/// taker is refused (`console`), and UART0 stays the kernel's (its IRQ `irq-reserved`).
#[test]
fn console() {
    expect(
        "console",
        &[
            (
                5,
                9,
                "console",
                "UART1 (0x9040000, irq 40) is taken here (protection domain `a` maps `uart1`), and so is every other UART the kernel's console can use on qemu-virt-aarch64: UART0 (0x9000000, irq 33) by protection domain `a` claims irq 33 at line 6; leave one of them to the kernel",
            ),
            (
                6,
                9,
                "irq-reserved",
                "irq 33 is the kernel console's UART interrupt, which the kernel keeps (protection domain `a`)",
            ),
            (
                6,
                9,
                "console",
                "UART0 (0x9000000, irq 33) is taken here (protection domain `a` claims irq 33), and so is every other UART the kernel's console can use on qemu-virt-aarch64: UART1 (0x9040000, irq 40) by protection domain `a` maps `uart1` at line 5; leave one of them to the kernel",
            ),
        ],
    );
}

#[test]
fn pd_pp() {
    expect(
        "pd_pp",
        &[(
            2,
            33,
            "unknown-attribute",
            "unknown attribute `pp` on `protection_domain` (Microkit 1.x's form, which Microkit 2.x refuses too: `pp=\"true\"` now goes on the channel `<end>` of the PD that calls this one, the other end of its channel)",
        )],
    );
}

#[test]
fn prefill() {
    // Relative prefill paths are found next to the SDF, and the message says where.
    let dir = fixture("prefill").parent().unwrap().display().to_string();
    let missing = format!(
        "prefill file `../prefill/no-such-file` ({dir}/../prefill/no-such-file) cannot be read: \
         No such file or directory (os error 2); a relative path is found next to the SDF"
    );
    let empty = format!(
        "prefill file `../prefill/empty.bin` ({dir}/../prefill/empty.bin) is empty; a relative \
         path is found next to the SDF"
    );
    expect(
        "prefill",
        &[
            (
                8,
                9,
                "prefill",
                "`setvar_prefill_size` on a map of `plain`, which has no `prefill_path`",
            ),
            // No size follows from a file that cannot be read: no second report.
            (11, 35, "prefill", &missing),
            (12, 33, "prefill", &empty),
            (
                13,
                33,
                "prefill",
                "prefill file `../prefill/big.bin` (0x1388 bytes) is larger than the region's size 0x1000",
            ),
            (
                14,
                70,
                "prefill",
                "a region with `phys_addr` cannot be prefilled: the root task does not write memory at fixed addresses, which may be device registers",
            ),
            (
                16,
                5,
                "missing-attribute",
                "`memory_region` is missing required attribute `size` (required unless `prefill_path` gives it)",
            ),
        ],
    );
}

/// `smc="true"` (Microkit's SMC forwarding) was accepted and did nothing: the PD would fault
/// at its first SMC. `smc="false"` is Microkit's default and stays valid.
#[test]
fn smc() {
    expect(
        "smc",
        &[(
            2,
            46,
            "smc",
            "`smc=\"true\"` is not supported: the kernel forwards no SMC calls (no `seL4_ARM_SMC` capability; on QEMU virt there is no secure firmware to call), as a Microkit kernel built without SMC forwarding; remove it",
        )],
    );
}

#[test]
fn cspace() {
    expect(
        "cspace",
        &[
            (
                5,
                13,
                "cspace",
                "`<cap_tcb>` (Microkit 2.3 cap sharing) is not supported: the monitor alone may stop, resume and rebuild a PD's TCB (a parent holds its children's through `id`); another PD holding it could undo a restart; remove the `cspace` element",
            ),
            (
                6,
                13,
                "cspace",
                "`<cap_sc>` (Microkit 2.3 cap sharing) is not supported: the kernel has no scheduling contexts (MCS): `budget` and `period` are not enforced, so there is no SC to share; remove the `cspace` element",
            ),
            (
                7,
                13,
                "cspace",
                "`<cap_vspace>` (Microkit 2.3 cap sharing) is not supported: a restart moves a PD to a fresh VSpace (its standby incarnation), so a shared VSpace cap would name a dead address space; remove the `cspace` element",
            ),
            (
                8,
                13,
                "cspace",
                "`<cap_smc>` (Microkit cap sharing) is not supported: the kernel forwards no SMC calls (QEMU virt has no secure firmware: SMC is disabled in SCR_EL3), so there is no SMC capability to badge with a function id; remove the `cspace` element",
            ),
            (
                9,
                13,
                "cspace",
                "`<cap_cspace>` (Microkit cap sharing) is not supported: a restart rebuilds a PD's CSpace from its plan, so a CNode cap another PD holds would name a dead CSpace, and there are no shared `cnode`s; remove the `cspace` element",
            ),
        ],
    );
}

#[test]
fn x86() {
    expect(
        "x86",
        &[
            (
                2,
                46,
                "x86",
                "`prefill_bootinfo` (Microkit's x86 boot information prefill) is not available on an AArch64 board: give the bytes as a `prefill_path` file",
            ),
            (
                3,
                5,
                "x86",
                "`<io_address_space>` (Microkit's IOMMU address space for a PCI device, x86 only: Microkit refuses it on AArch64 too) is not supported on an AArch64 board; remove it",
            ),
            (
                9,
                9,
                "x86",
                "`irq` names an x86 I/O APIC interrupt (`ioapic`, `pin`, `vector`), which an AArch64 board does not have (Microkit refuses it on ARM too): name a GIC interrupt with `irq=\"<INTID>\"`",
            ),
            (
                10,
                9,
                "x86",
                "`irq` names an x86 MSI (`pcidev`, `handle`, `vector`), which an AArch64 board does not have (Microkit refuses it on ARM too): name a GIC interrupt with `irq=\"<INTID>\"`",
            ),
            (
                11,
                9,
                "x86",
                "`<ioport>` (x86 I/O port range) does not exist on an AArch64 board: its devices are memory-mapped; map their registers from a `memory_region` with `phys_addr`",
            ),
        ],
    );
}

#[test]
fn domains() {
    expect(
        "domains",
        &[
            (
                2,
                5,
                "domains",
                "start index 3 is past the schedule's 2 entries",
            ),
            (
                2,
                5,
                "domains",
                "the schedule gives domain 0 no time: domain 0 holds the monitor and the root task (as Microkit's monitor), which must run to start PDs and handle their faults",
            ),
            (4, 9, "domains", "domain `d1` is declared twice"),
            (5, 27, "domains", "domain id 16 is out of range 0..16"),
            (
                7,
                41,
                "domains",
                "`duration`: `10 parsecs` is not a number with a unit (`ns`, `us`, `ms`, `s` or `ticks`)",
            ),
            (
                8,
                13,
                "domains",
                "schedule entry names unknown domain `nope`",
            ),
            (
                11,
                5,
                "domains",
                "protection domain `a` is in unknown domain `d9`",
            ),
            (
                11,
                5,
                "domains",
                "`heartbeat_ms` on `a`: the watchdog expects the monitor (domain 0) and the PD to run within 50 ms of each other, and a schedule of several domains stops either for up to a round of 1001 us; restart on faults still works",
            ),
            (
                14,
                5,
                "domains",
                "protection domain `b` has no `domain`: with a domain schedule every protection domain names its domain (as in Microkit)",
            ),
        ],
    );
}

/// Every fixture is exercised by a test above.
const FIXTURES: &[&str] = &[
    "bad_number",
    "bad_value",
    "budget_period",
    "channel_ends",
    "child_id",
    "console",
    "cpu_range",
    "cspace",
    "cut_off",
    "depends_on",
    "depends_on_cycle",
    "domains",
    "heartbeat_passive",
    "id_range",
    "id_unique",
    "irq_reserved",
    "irq_unique",
    "map_align",
    "map_overlap",
    "map_perms",
    "map_stack",
    "missing_attribute",
    "no_pds",
    "not_xml",
    "page_size",
    "pd_count",
    "pd_pp",
    "phys_align",
    "phys_overlap",
    "phys_range",
    "pp_both",
    "pp_priority",
    "prefill",
    "priority_range",
    "program_image",
    "region_size",
    "restart_backoff",
    "restart_limit",
    "restart_policy",
    "setvar_unique",
    "several",
    "smc",
    "stack_size",
    "unexpected_text",
    "unique_pd_name",
    "unique_region_name",
    "unknown_attribute",
    "unknown_element",
    "unknown_pd",
    "unknown_region",
    "user_address",
    "vcpu",
    "virtual_machine_count",
    "vm_map_overlap",
    "x86",
    "xml",
];

#[test]
fn every_bad_fixture_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture("x").parent().unwrap())
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, FIXTURES);
}
