//! Issue #20: the whole path from SDF text to plan, on random systems. Generated SDFs lean on
//! the edges (PD and table counts around their limits, regions near `u64::MAX` and larger than
//! RAM, maps at the ends of the address space, many `depends_on`); for each:
//!
//! - checking never panics, and every error it reports has a position;
//! - a system `check` accepts is built (with the monitor) without a panic and without an
//!   error, except the three resource rules whose need grows with the program images, which
//!   `check` cannot see;
//! - a system `check` refuses only for what the plan, the root task or the board cannot hold
//!   is refused by the builder too;
//! - the builder never panics on a checked system mutated past the checks.
//!
//! Stable Rust: proptest (`PROPTEST_CASES=100000` for a longer run); the libFuzzer target in
//! `fuzz/` covers the parser alone.

mod common;

use std::fmt::Write;

use axolotl_boot_plan::{BuildError, ElfInfo, build, build_for_board, build_with_monitor, limits};
use axolotl_kernel_config::BOARDS;
use common::{RW, RX, elf};
use proptest::prelude::*;

/// What the images and the plan take in the kernel image, in the test.
const PACK_BYTES: u64 = 0x10_0000;
/// Rules whose need the program images (or the pack, for `phys-kernel`) add to.
const IMAGE_DEPENDENT: [&str; 4] = ["memory", "root-slots", "pd-pages", "phys-kernel"];
/// Rules of [`limits`]: the builder must refuse what they refuse.
const LIMIT_RULES: [&str; 9] = [
    "phys-device",
    "phys-kernel",
    "memory",
    "root-slots",
    "pd-pages",
    "asids",
    "plan-capacity",
    "name-length",
    "reserved-name",
];

fn image(path: &str) -> ElfInfo {
    // Below every generated map; the IPC buffer inside the image, as Microkit links it.
    let bytes = elf(
        0x1000,
        &[(0x1000, 0x800, RX), (0x2000, 0x1000, RW)],
        &[("__sel4_ipc_buffer_obj", 0x2000, 0x1000)],
    );
    ElfInfo::from_bytes(path, &bytes).unwrap()
}

#[derive(Clone, Debug)]
struct Region {
    size: u64,
    large: bool,
    phys: Option<u64>,
}

#[derive(Clone, Debug)]
struct Pd {
    name_len: usize,
    stack_pages: u64,
    restart: u8,
    standby: bool,
    heartbeat: bool,
    image: u8,
    maps: Vec<(usize, Option<u64>)>,
    depends: Vec<usize>,
    irq: Option<u32>,
    child: bool,
}

#[derive(Clone, Debug)]
struct Sys {
    regions: Vec<Region>,
    pds: Vec<Pd>,
    channels: Vec<(usize, usize, bool)>,
}

fn size() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        16 => (1u64..64).prop_map(|p| p << 12),
        8 => (1u64..8).prop_map(|p| p << 21),
        1 => Just(1 << 30),
        1 => Just(2 << 30),
        1 => Just(!0x1f_ffffu64),
        1 => Just((u64::MAX >> 1) & !0xfff),
        2 => (1u64..1 << 20).prop_map(|p| p << 12),
    ]
}

/// A map's address: `None` puts it where it fits (each map of a PD in 256 MiB of its own,
/// below the stack); otherwise at one of the edges.
fn vaddr() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(
        0.15,
        prop_oneof![
            Just(0xe000_0000),
            Just(0xffff_0000),
            Just((1u64 << 39) - 0x20_0000),
            Just(1u64 << 39),
            Just(!0x1f_ffffu64),
            (0u64..1 << 27).prop_map(|p| p << 12),
        ],
    )
}

fn pd() -> impl Strategy<Value = Pd> {
    (
        prop_oneof![12 => 1usize..12, 1 => 60usize..70],
        prop_oneof![Just(1u64), Just(2), Just(256), Just(4096), 1u64..64],
        0u8..3,
        any::<bool>(),
        prop::bool::weighted(0.1),
        0u8..4,
        prop::collection::vec((0usize..8, vaddr()), 0..3),
        prop::collection::vec(0usize..80, 0..4),
        prop::option::weighted(0.1, 32u32..200),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(
                name_len,
                stack_pages,
                restart,
                standby,
                heartbeat,
                image,
                maps,
                depends,
                irq,
                child,
            )| Pd {
                name_len,
                stack_pages,
                restart,
                standby,
                heartbeat,
                image,
                maps,
                depends,
                irq,
                child,
            },
        )
}

fn system() -> impl Strategy<Value = Sys> {
    // Fixed addresses across the board's RAM and past it, and just past the RAM the kernel
    // holds without the pack (which `build` adds).
    let region = (
        size(),
        any::<bool>(),
        prop::option::weighted(0.05, 0u64..10),
    )
        .prop_map(|(size, large, phys)| {
            let page = if large { 0x20_0000 } else { 0x1000 };
            Region {
                size: size.next_multiple_of(page).max(page),
                large,
                phys: phys.map(|k| match k {
                    9 => 0x4100_0000,
                    k => 0x4000_0000 + (k << 28),
                }),
            }
        });
    (
        prop_oneof![
            4 => prop::collection::vec(region.clone(), 0..6),
            1 => prop::collection::vec(region, 120..135),
        ],
        prop_oneof![
            4 => prop::collection::vec(pd(), 1..20),
            1 => prop::collection::vec(pd(), 60..66),
        ],
        prop::collection::vec((0usize..80, 0usize..80, any::<bool>()), 0..40),
    )
        .prop_map(|(regions, pds, channels)| Sys {
            regions,
            pds,
            channels,
        })
}

fn name(i: usize, len: usize) -> String {
    let mut s = format!("pd{i}_");
    while s.len() < len {
        s.push('x');
    }
    s
}

/// The SDF text of `sys` (ids and names made consistent enough to get past the format
/// rules most of the time).
fn sdf(sys: &Sys) -> String {
    let mut t = String::from("<?xml version=\"1.0\"?>\n<system>\n");
    for (i, r) in sys.regions.iter().enumerate() {
        write!(
            t,
            "  <memory_region name=\"mr{i}\" size=\"{:#x}\" page_size=\"{:#x}\"",
            r.size,
            if r.large { 0x20_0000 } else { 0x1000 }
        )
        .unwrap();
        if let Some(p) = r.phys {
            write!(t, " phys_addr=\"{p:#x}\"").unwrap();
        }
        t.push_str(" />\n");
    }
    let n = sys.pds.len();
    let names: Vec<String> = sys
        .pds
        .iter()
        .enumerate()
        .map(|(i, p)| name(i, p.name_len))
        .collect();
    // Channel ids per PD, so no id repeats at one PD.
    let mut next_id = vec![0u8; n];
    let mut channels = String::new();
    for &(a, b, pp) in &sys.channels {
        let (a, b) = (a % n, b % n);
        if a == b || next_id[a] > 50 || next_id[b] > 50 || sys.pds[a].child || sys.pds[b].child {
            continue;
        }
        let (ia, ib) = (next_id[a], next_id[b]);
        next_id[a] += 1;
        next_id[b] += 1;
        // pp from the lower priority (the higher index) to the higher.
        let pp_a = pp && a > b;
        let pp_b = pp && b > a;
        writeln!(
            channels,
            "  <channel><end pd=\"{}\" id=\"{ia}\" pp=\"{pp_a}\" /><end pd=\"{}\" id=\"{ib}\" pp=\"{pp_b}\" /></channel>",
            names[a], names[b]
        )
        .unwrap();
    }
    let mut irqs_used = std::collections::BTreeSet::new();
    let mut open_parent: Option<usize> = None;
    for (i, p) in sys.pds.iter().enumerate() {
        let restart = ["never", "on-failure", "always"][p.restart as usize];
        let deps: Vec<&str> = p
            .depends
            .iter()
            .map(|&d| d % n)
            .filter(|&d| d < i)
            .map(|d| names[d].as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let nested = p.child && open_parent.is_some();
        if !nested && let Some(_) = open_parent.take() {
            t.push_str("  </protection_domain>\n");
        }
        write!(
            t,
            "  <protection_domain name=\"{}\" priority=\"{}\" stack_size=\"{:#x}\" restart=\"{restart}\" restart_standby=\"{}\"",
            names[i],
            253 - (i % 250),
            p.stack_pages << 12,
            p.standby
        )
        .unwrap();
        if nested {
            write!(t, " id=\"{}\"", 60 - (i % 50)).unwrap();
        }
        if p.heartbeat {
            t.push_str(" heartbeat_ms=\"100\"");
        }
        if !deps.is_empty() && !nested {
            write!(t, " depends_on=\"{}\"", deps.join(",")).unwrap();
        }
        t.push_str(">\n");
        writeln!(
            t,
            "    <program_image path=\"img{}.elf\" />",
            if p.image == 3 { i as u8 } else { p.image }
        )
        .unwrap();
        if !sys.regions.is_empty() {
            for (k, &(r, v)) in p.maps.iter().enumerate() {
                let v = v.unwrap_or(0x1000_0000 + ((k as u64) << 28));
                writeln!(
                    t,
                    "    <map mr=\"mr{}\" vaddr=\"{v:#x}\" perms=\"r\" />",
                    r % sys.regions.len()
                )
                .unwrap();
            }
        }
        if let Some(irq) = p.irq
            && irqs_used.insert(irq)
            && next_id[i] < 60
        {
            writeln!(t, "    <irq irq=\"{irq}\" id=\"{}\" />", next_id[i]).unwrap();
            next_id[i] += 1;
        }
        if nested {
            t.push_str("  </protection_domain>\n");
        } else {
            open_parent = Some(i);
        }
    }
    if open_parent.is_some() {
        t.push_str("  </protection_domain>\n");
    }
    t.push_str(&channels);
    t.push_str("</system>\n");
    t
}

fn images(sys: &Sys) -> Vec<ElfInfo> {
    let mut paths: Vec<String> = (0..3).map(|k| format!("img{k}.elf")).collect();
    paths.extend((0..sys.pds.len()).map(|i| format!("img{i}.elf")));
    paths.sort();
    paths.dedup();
    paths.iter().map(|p| image(p)).collect()
}

fn check_then_build(sys: &Sys) -> Result<(), TestCaseError> {
    let text = sdf(sys);
    let board = &BOARDS[1];
    let checked = limits::check_text("fuzz.system", &text, board);
    let monitor = image("monitor-pd.elf");
    let imgs = images(sys);
    match checked {
        Ok(c) => {
            let built = build_for_board(&c.system, &imgs, &monitor, board, PACK_BYTES);
            if let Ok(plan) = &built {
                let _ = plan.summary();
            }
            if let Err(errs) = built {
                let allowed = errs
                    .iter()
                    .all(|e| matches!(e, BuildError::Sdf(d) if IMAGE_DEPENDENT.contains(&d.rule)));
                prop_assert!(allowed, "check accepted, build refused: {errs:?}\n{text}");
            }
        }
        Err(diags) => {
            for d in diags.iter() {
                prop_assert!(d.line >= 1 && d.col >= 1, "no position: {d}");
            }
            // Refused only for what `limits` checks: the system parsed and validated, and
            // the builder must refuse it too.
            let errors: Vec<_> = diags
                .iter()
                .filter(|d| d.severity == axolotl_sdf::Severity::Error)
                .collect();
            if errors.iter().all(|d| LIMIT_RULES.contains(&d.rule)) {
                let sd = axolotl_sdf::parse("fuzz.system", &text, board)
                    .expect("only limit rules refused it");
                prop_assert!(
                    build_for_board(&sd, &imgs, &monitor, board, PACK_BYTES).is_err(),
                    "check refused ({diags}), build accepted\n{text}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn check_accepts_exactly_what_builds(sys in system()) {
        check_then_build(&sys)?;
    }

    /// A checked system with a region's size or a map's address pushed anywhere: the builder
    /// reports or builds, it never panics.
    #[test]
    fn builder_never_panics_past_the_checks(
        sys in system(),
        size in any::<u64>(),
        vaddr in any::<u64>(),
        stack in any::<u64>(),
    ) {
        let text = sdf(&sys);
        let board = &BOARDS[1];
        if let Ok(c) = limits::check_text("fuzz.system", &text, board) {
            let mut sd = c.system;
            if let Some(r) = sd.memory_regions.first_mut() {
                r.size = size;
            }
            if let Some(m) = sd.protection_domains[0].maps.first_mut() {
                m.vaddr = vaddr;
            }
            sd.protection_domains[0].stack_size = stack;
            let imgs = images(&sys);
            let _ = build(&sd, &imgs).map(|p| p.summary());
            let _ = build_with_monitor(&sd, &imgs, &image("monitor-pd.elf")).map(|p| p.summary());
            let _ = limits::check(&sd, board);
        }
    }
}
