//! Valid systems parse without errors, with the values (and defaults) the file says.

use std::path::{Path, PathBuf};

use axolotl_kernel_config::{BOARDS, Board};

// qemu-virt-aarch64: RAM [0x4000_0000, 0xc000_0000), devices [0x0900_0000, 0x0c00_0000).
const BOARD: Board = BOARDS[0];
use axolotl_sdf::*;

fn good(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/good")
        .join(name)
}

fn load(name: &str) -> Checked {
    check_file(&good(name), &BOARD).unwrap_or_else(|d| panic!("{name} should be valid:\n{d}"))
}

#[test]
fn every_good_file_is_valid_without_warnings() {
    let mut n = 0;
    for entry in std::fs::read_dir(good("")).unwrap() {
        let path = entry.unwrap().path();
        let checked =
            check_file(&path, &BOARD).unwrap_or_else(|d| panic!("{}:\n{d}", path.display()));
        assert!(
            checked.warnings.is_empty(),
            "{}:\n{}",
            path.display(),
            checked.warnings
        );
        n += 1;
    }
    assert!(n >= 3, "good fixtures missing");
}

#[test]
fn microkit_file_keeps_its_meaning() {
    let sd = load("microkit.system").system;
    assert_eq!(sd.protection_domains.len(), 3);
    assert_eq!(sd.all_pds().len(), 4);

    let serial = sd.pd("serial").unwrap();
    assert_eq!(serial.span, Span::new(12, 5));
    assert_eq!(
        (serial.priority, serial.passive, serial.stack_size),
        (254, true, 0x4000)
    );
    assert_eq!(serial.program_image.path, "serial.elf");
    assert_eq!(
        serial.program_image.path_for_symbols.as_deref(),
        Some("serial.dbg")
    );
    let uart = &serial.maps[0];
    assert_eq!(
        (uart.mr.as_str(), uart.vaddr, uart.cached),
        ("uart", 0x500_0000, false)
    );
    assert_eq!(uart.perms, Perms::RW);
    assert_eq!(uart.setvar_vaddr.as_deref(), Some("uart_base"));
    assert_eq!(
        serial.maps[1].perms,
        Perms {
            read: true,
            write: false,
            execute: false
        }
    );
    assert_eq!(serial.irqs[0].irq, 33);
    assert_eq!(
        (serial.irqs[0].id, serial.irqs[0].trigger),
        (1, Trigger::Level)
    );
    assert_eq!(serial.setvars[0].symbol, "dma_paddr");
    assert_eq!(serial.setvars[0].region_paddr, "dma");
    // Microkit-only files get the resilience defaults: Microkit's behaviour (no restarts).
    assert_eq!(serial.resilience, Resilience::default());
    assert_eq!(serial.resilience.restart, RestartPolicy::Never);

    let client = sd.pd("client").unwrap();
    assert_eq!((client.budget, client.period, client.cpu), (500, 2000, 0));
    assert!(!client.smc && client.fpu && !client.passive);

    let parent = sd.pd("parent").unwrap();
    // Microkit defaults.
    assert_eq!(
        (parent.budget, parent.period, parent.stack_size),
        (1000, 1000, 0x2000)
    );
    assert_eq!(parent.id, None);
    assert_eq!(parent.children[0].name, "child");
    assert_eq!(parent.children[0].id, Some(0));
    let vm = parent.virtual_machine.as_ref().unwrap();
    assert_eq!((vm.name.as_str(), vm.priority), ("linux", 120));
    assert_eq!(
        vm.vcpus.iter().map(|v| (v.id, v.cpu)).collect::<Vec<_>>(),
        [(1, 0)]
    );
    assert_eq!(
        vm.maps[0].perms,
        Perms {
            read: true,
            write: true,
            execute: true
        }
    );

    let uart = sd.memory_region("uart").unwrap();
    assert_eq!(
        (uart.size, uart.page_size, uart.phys_addr),
        (0x1000, 0x1000, Some(0x900_0000))
    );
    let buf = sd.memory_region("shared_buffer").unwrap();
    assert_eq!(
        (buf.size, buf.page_size, buf.phys_addr),
        (0x20_0000, 0x20_0000, None)
    );

    let [a, b] = &sd.channels[0].ends;
    assert_eq!(
        (a.pd.as_str(), a.id, a.pp, a.notify),
        ("client", 0, true, true)
    );
    assert_eq!(
        (b.pd.as_str(), b.id, b.pp, b.notify),
        ("serial", 0, false, true)
    );
    assert!(!sd.channels[1].ends[0].notify);
}

#[test]
fn resilience_extensions_are_read() {
    let sd = load("resilience.system").system;
    let drv = &sd.pd("uart_driver").unwrap().resilience;
    assert_eq!(
        *drv,
        Resilience {
            restart: RestartPolicy::OnFailure,
            restart_limit: 3,
            restart_window_ms: 5000,
            restart_backoff_ms: 20,
            restart_backoff_max_ms: 640,
            heartbeat_ms: Some(100),
            depends_on: vec![],
            standby: true,
        }
    );
    assert_eq!(
        [0, 1, 4, 5, 6, 40].map(|n| drv.backoff_ms(n)),
        [20, 40, 320, 640, 640, 640]
    );

    let console = &sd.pd("console").unwrap().resilience;
    assert_eq!(console.restart, RestartPolicy::Always);
    assert_eq!(
        (console.restart_limit, console.restart_window_ms),
        (5, 10_000)
    );
    assert_eq!(console.depends_on, ["uart_driver"]);
    assert_eq!(console.heartbeat_ms, None);
    assert!(!console.standby, "restart_standby=\"false\"");
    assert_eq!(
        sd.pd("logger").unwrap().resilience.depends_on,
        ["console", "uart_driver"]
    );
}

#[test]
fn backoff_cap_defaults_to_at_least_the_initial_delay() {
    let text = r#"<system><protection_domain name="a" restart="always" restart_backoff_ms="5000">
        <program_image path="a.elf"/></protection_domain></system>"#;
    let sd = parse("t.system", text, &BOARD).unwrap();
    let r = &sd.protection_domains[0].resilience;
    assert_eq!(
        (r.restart_backoff_ms, r.restart_backoff_max_ms),
        (5000, 5000)
    );
}

#[test]
fn unused_region_warns_but_parses() {
    let text = "<system>\n  <memory_region name=\"spare\" size=\"0x1000\"/>\n  \
                <protection_domain name=\"a\"><program_image path=\"a.elf\"/></protection_domain>\n</system>";
    let checked = check("w.system", text, &BOARD).unwrap();
    let w: Vec<String> = checked.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        ["w.system:2:3: warning: memory region `spare` is never mapped [unused-region]"]
    );
    assert!(parse("w.system", text, &BOARD).is_ok());
}

#[test]
fn image_overlap_is_reported_at_the_map() {
    let sd = load("microkit.system").system;
    // client maps `dma` at [0x3000000, 0x3010000) and `shared_buffer` at [0x4000000, 0x4200000).
    let d = check_image_overlaps(&sd, "client", &[(0x20_0000, 0x1000), (0x300_f000, 0x2000)]);
    assert_eq!(
        d.iter().map(|d| d.rule).collect::<Vec<_>>(),
        ["image-overlap"]
    );
    let d: Vec<String> = d.iter().map(ToString::to_string).collect();
    let file = good("microkit.system").display().to_string();
    assert_eq!(
        d,
        [format!(
            "{file}:23:9: error: map of `dma` at [0x3000000, 0x3010000) overlaps the program image \
             segment [0x300f000, 0x3011000) of `client` [image-overlap]"
        )]
    );
    assert!(
        check_image_overlaps(
            &sd,
            "client",
            &[(0x20_0000, 0x10_0000), (0x3010000, 0x1000)]
        )
        .is_empty()
    );
    let stack = check_image_overlaps(&sd, "client", &[(0xffff_f000, 0x1000)]);
    assert_eq!(stack.len(), 1);
    assert_eq!(
        (stack[0].rule, stack[0].line, stack[0].col),
        ("image-stack", 21, 9)
    );
    let unknown = check_image_overlaps(&sd, "nobody", &[]);
    assert_eq!(unknown[0].rule, "unknown-pd");
}

#[test]
fn a_gicv2_guest_without_the_virtual_cpu_interface_is_warned_about() {
    let text = |gicv_map: &str| {
        format!(
            "<system>\
             <memory_region name=\"ram\" size=\"0x200000\" page_size=\"0x200000\" />\
             <memory_region name=\"gicv\" size=\"0x2000\" phys_addr=\"0x8040000\" />\
             <protection_domain name=\"vmm\"><program_image path=\"vmm.elf\" />\
             <virtual_machine name=\"guest\"><vcpu id=\"0\" />\
             <map mr=\"ram\" vaddr=\"0x40000000\" perms=\"rwx\" />{gicv_map}\
             </virtual_machine></protection_domain></system>"
        )
    };
    let gicv2 = axolotl_kernel_config::board_by_name(
        "qemu-virt-aarch64",
        Some(axolotl_kernel_config::GicVersion::V2),
    )
    .unwrap();
    let with = text("<map mr=\"gicv\" vaddr=\"0x8010000\" perms=\"rw\" cached=\"false\" />");
    assert!(
        check("v.system", &with, &gicv2)
            .unwrap()
            .warnings
            .is_empty()
    );
    let without = check("v.system", &text(""), &gicv2).unwrap();
    let rules: Vec<_> = without.warnings.iter().map(|d| d.rule).collect();
    // `gicv` is also left unmapped.
    assert_eq!(rules, ["unused-region", "vm-gic"], "{}", without.warnings);
}

#[test]
fn microkit_2_3_prefill_and_setvars_keep_their_meaning() {
    let sd = load("microkit-2.3.system").system;
    // `size` defaults to the file's length rounded up to the page size (Microkit 2.2).
    let greeting = sd.memory_region("greeting").unwrap();
    let p = greeting.prefill.as_ref().unwrap();
    assert_eq!((greeting.size, p.len), (0x1000, 16));
    assert!(
        p.file.ends_with("tests/good/../prefill/hello.txt"),
        "{}",
        p.file
    );
    let big = sd.memory_region("big").unwrap();
    assert_eq!(
        (big.size, big.prefill.as_ref().unwrap().len),
        (0x2000, 5000)
    );

    let parent = sd.pd("parent").unwrap();
    let patches: Vec<(&str, Patch)> = sd
        .patches(parent)
        .into_iter()
        .map(|(s, p, _)| (s, p))
        .collect();
    assert_eq!(
        patches,
        [
            ("greeting", Patch::Vaddr(0x200_0000)),
            ("greeting_size", Patch::RegionSize("greeting")),
            ("greeting_len", Patch::PrefillSize("greeting")),
            ("big_len", Patch::PrefillSize("big")),
            ("uart_irq", Patch::Id(3)),
            ("child_id", Patch::Id(5)),
            ("guest_vcpu", Patch::Id(0)),
            ("to_child", Patch::Id(7)),
        ]
    );
    // A channel end's `setvar_id` patches its own PD, with its own id.
    let child = sd.pd("child").unwrap();
    let patches: Vec<(&str, Patch)> = sd
        .patches(child)
        .into_iter()
        .map(|(s, p, _)| (s, p))
        .collect();
    assert_eq!(patches, [("to_parent", Patch::Id(1))]);
}

#[test]
fn an_rwx_map_of_a_pd_is_valid_with_a_warning() {
    let text = "<system><protection_domain name=\"a\"><program_image path=\"a.elf\" />\
                <map mr=\"r\" vaddr=\"0x1000000\" perms=\"rwx\" /></protection_domain>\
                <memory_region name=\"r\" size=\"0x1000\" /></system>";
    let checked = check("rwx.system", text, &BOARD).unwrap();
    let w: Vec<_> = checked
        .warnings
        .iter()
        .map(|d| (d.line, d.col, d.rule, d.message.as_str()))
        .collect();
    assert_eq!(
        w,
        [(
            1,
            67,
            "map-wx",
            "map of `r` in `a` is writable and executable: valid (Microkit allows it), but code injected into it can run; use `rw` and `rx` maps if you can"
        )]
    );
    assert!(checked.system.protection_domains[0].maps[0].perms.execute);
}

/// Issue #17: `control` grants a PD the monitor's control requests, any subset; nothing
/// without it.
#[test]
fn control_grants_are_read() {
    let sdf = |attr: &str| {
        format!(
            r#"<system><protection_domain name="ctl" {attr}><program_image path="c.elf" /></protection_domain></system>"#
        )
    };
    let grant = |attr: &str| {
        let sd = parse("t.system", &sdf(attr), &BOARD).unwrap_or_else(|d| panic!("{attr}: {d}"));
        sd.pd("ctl").unwrap().control
    };
    assert_eq!(grant(""), ControlGrant::default());
    assert_eq!(
        grant(r#"control="status  manage vm""#),
        ControlGrant {
            status: true,
            manage: true,
            vm: true,
            inject: false
        }
    );
    assert_eq!(
        grant(r#"control="inject""#),
        ControlGrant {
            inject: true,
            ..Default::default()
        }
    );
    for bad in [r#"control="status melt""#, r#"control=" ""#] {
        let d = parse("t.system", &sdf(bad), &BOARD).unwrap_err();
        assert!(d.to_string().contains("`control`"), "{bad}: {d}");
    }
}

/// Microkit's two spellings of the domain schedule mean the same model: domain ids (given,
/// first-free, or by order of appearance), lengths in microseconds, each PD's domain.
#[test]
fn domain_schedules_keep_their_meaning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/microkit/examples");
    let board = &axolotl_kernel_config::BOARDS[0];
    let c = check_file(&dir.join("domains.system"), board).unwrap();
    let d = c.system.domains.as_ref().unwrap();
    let ids: Vec<(&str, u64)> = d.domains.iter().map(|x| (x.name.as_str(), x.id)).collect();
    assert_eq!(ids, [("monitor", 0), ("emitter", 1), ("collector", 2)]);
    let sched: Vec<(&str, u64)> = d
        .schedule
        .iter()
        .map(|e| (e.domain.as_str(), e.length_us))
        .collect();
    assert_eq!(
        sched,
        [("monitor", 6000), ("emitter", 8000), ("collector", 2000)]
    );
    let s = &c.system;
    assert_eq!(s.domain_of(s.pd("collector").unwrap()), 2);

    let c = check_file(&dir.join("hello_domains.system"), board).unwrap();
    let d = c.system.domains.as_ref().unwrap();
    assert_eq!(d.period_us(), 4_000_000);
    let s = &c.system;
    let of: Vec<u8> = ["hello", "hello_2", "hello_3"]
        .iter()
        .map(|n| s.domain_of(s.pd(n).unwrap()))
        .collect();
    assert_eq!(of, [0, 1, 2]);
}

/// Microkit's other unit of `duration`, `ticks`: seL4 MCS's, the board's generic-timer
/// counter (62.5 MHz on QEMU virt), which Microkit passes to the kernel as they are. A file
/// using it was refused as an unknown unit.
#[test]
fn domain_durations_in_ticks_are_the_board_s_timer_ticks() {
    let text = |d: &str| {
        format!(
            "<system><domains><domain name=\"d0\" />\
             <domain_schedule><schedule_entry domain=\"d0\" duration=\"{d}\" />\
             </domain_schedule></domains>\
             <protection_domain name=\"a\" domain=\"d0\"><program_image path=\"a.elf\" />\
             </protection_domain></system>"
        )
    };
    let length = |d: &str| {
        let sd = parse("t.system", &text(d), &BOARD).unwrap_or_else(|e| panic!("{d}: {e}"));
        sd.domains.unwrap().schedule[0].length_us
    };
    assert_eq!(BOARD.timer_hz, 62_500_000);
    assert_eq!(length("62500 ticks"), 1000);
    // Rounded up to whole microseconds.
    assert_eq!(length("1 ticks"), 1);
    assert_eq!(length("62501 ticks"), 1001);
    assert_eq!(length("1000 us"), 1000);
    assert!(parse("t.system", &text("0 ticks"), &BOARD).is_err());
}

/// Issue #19: QEMU virt's other device memory, as Microkit's `qemu_virt_aarch64` has it, was
/// refused: the PCIe host bridge's ECAM, MMIO and I/O windows, and with a GICv2 its GICv2m
/// frame (GICv3 has an ITS there instead, which is not handed out).
#[test]
fn qemu_virt_s_pcie_windows_and_gicv2m_are_device_memory() {
    use axolotl_kernel_config::{GicVersion, board_by_name};
    let text = |pa: &str| {
        format!(
            "<system><memory_region name=\"d\" size=\"0x1000\" phys_addr=\"{pa}\" />\
             <protection_domain name=\"a\"><program_image path=\"a.elf\" />\
             <map mr=\"d\" vaddr=\"0x2000000\" perms=\"rw\" cached=\"false\" />\
             </protection_domain></system>"
        )
    };
    let v2 = board_by_name("qemu-virt-aarch64", Some(GicVersion::V2)).unwrap();
    let v3 = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
    // Low ECAM, the first and last pages of the low MMIO window, the I/O window; the high
    // ECAM (QEMU's default) and the high MMIO window's ends.
    for pa in [
        "0x3f000000",
        "0x10000000",
        "0x3efef000",
        "0x3eff0000",
        "0x3ffff000",
        "0x40_1000_0000",
        "0x80_0000_0000",
        "0xff_ffff_f000",
    ] {
        for b in [&v2, &v3] {
            check("d.system", &text(pa), b).unwrap_or_else(|d| panic!("{pa}: {d}"));
        }
    }
    check("d.system", &text("0x8020000"), &v2).unwrap();
    let d = check("d.system", &text("0x8020000"), &v3).unwrap_err();
    assert!(d.errors().all(|e| e.rule == "phys-range"), "{d}");
    // The GIC's own frames stay the kernel's; nothing past the 40-bit physical space or
    // between the windows above RAM.
    for pa in [
        "0x8000000",
        "0x8010000",
        "0x8030000",
        "0x100_0000_0000",
        "0x40_0000_0000",
    ] {
        assert!(check("d.system", &text(pa), &v2).is_err(), "{pa}");
    }
}
