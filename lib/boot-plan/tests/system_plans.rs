//! The encoded plan of every system in `systems/` and `tests/systems/`, on both boards, with
//! synthetic program images, pinned by a fingerprint in `system_plans.golden`.
//!
//! Why: the builder was split into passes (issue #14) with no behaviour change allowed; this
//! is what says the bytes the root task and the monitor decode did not move. A change of the
//! plan that is meant (a new field, a new system) is re-pinned with
//! `AXOLOTL_BLESS=1 cargo test -p axolotl-boot-plan --test system_plans`, and the diff of the
//! golden file shows which systems it touched.
//!
//! The images vary by path (image size, IPC buffer in the image or not, `__axolotl_pd_index`
//! or not) so that both branches of each image-dependent rule reach the plan.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use axolotl_boot_plan::{
    ElfInfo, IPC_BUFFER_SYMBOL, MONITOR_NAME, PLAN_SIZE_LIMIT, build_with_monitor, encode,
    generations::PD_INDEX_SYMBOL, limits,
};
use axolotl_kernel_config::BOARDS;
use axolotl_sdf::SystemDescription;
use common::{RW, RX, elf};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/system_plans.golden");

/// FNV-1a, 64 bits: a fingerprint, not a defence (no crate needed).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every `.system` file, by its path from the workspace root.
fn systems() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<(String, PathBuf)> = ["systems", "tests/systems"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .unwrap()
                .map(move |e| (d, e.unwrap().path()))
        })
        .filter(|(_, p)| p.extension().is_some_and(|x| x == "system"))
        .map(|(d, p)| {
            (
                format!("{d}/{}", p.file_name().unwrap().to_string_lossy()),
                p,
            )
        })
        .collect();
    files.sort();
    files
}

/// An image for `path` holding every setvar symbol the PDs running it name.
fn image(sd: &SystemDescription, path: &str) -> ElfInfo {
    let symbols: BTreeSet<&str> = sd
        .all_pds()
        .into_iter()
        .filter(|pd| pd.program_image.path == path)
        .flat_map(|pd| sd.patches(pd).into_iter().map(|(s, _, _)| s))
        .collect();
    let h = fnv(path.as_bytes());
    let (code, data) = (0x20_0000, 0x30_0000);
    let mut syms: Vec<(&str, u64, u64)> = symbols
        .iter()
        .enumerate()
        .map(|(k, s)| (*s, data + 8 * k as u64, 8))
        .collect();
    if h.is_multiple_of(2) {
        syms.push((IPC_BUFFER_SYMBOL, data + 0x1000, 0x1000));
    }
    if !h.is_multiple_of(3) {
        syms.push((PD_INDEX_SYMBOL, data + 0xff8, 8));
    }
    let code_len = 0x1800 + (h >> 8) % 4 * 0x1000;
    let bytes = elf(code, &[(code, code_len, RX), (data, 0x2000, RW)], &syms);
    ElfInfo::from_bytes(path, &bytes).unwrap()
}

/// One line per system and board: the plan's length and fingerprint, or why it was refused.
fn fingerprints() -> String {
    let mut out = String::new();
    for (name, file) in systems() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, board) in BOARDS.iter().enumerate() {
            // A board that is an earlier one but for its name (`rpi4b_1gb` is `rpi4b`) has
            // that one's plans.
            let renamed = |b: &axolotl_kernel_config::Board| {
                axolotl_kernel_config::Board {
                    name: board.name,
                    ..*b
                } == *board
            };
            if BOARDS[..i].iter().any(renamed) {
                continue;
            }
            let gic = board.gic.version().number();
            // QEMU virt's lines name the GIC alone (as pinned before other boards came).
            if board.name == "qemu-virt-aarch64" {
                write!(out, "{name} gicv{gic}: ").unwrap();
            } else {
                write!(out, "{name} {} gicv{gic}: ", board.name).unwrap();
            }
            // The real path: prefill files are found next to the SDF.
            let sd = match limits::check_text(&file.display().to_string(), &text, board) {
                Ok(c) => c.system,
                Err(_) => {
                    writeln!(out, "refused by check").unwrap();
                    continue;
                }
            };
            let mut paths: Vec<&str> = sd
                .all_pds()
                .into_iter()
                .map(|pd| pd.program_image.path.as_str())
                .collect();
            paths.sort();
            paths.dedup();
            let images: Vec<ElfInfo> = paths.iter().map(|p| image(&sd, p)).collect();
            let monitor = image(&sd, &format!("{MONITOR_NAME}-pd.elf"));
            match build_with_monitor(&sd, &images, &monitor) {
                Ok(plan) => {
                    let mut buf = vec![0u8; PLAN_SIZE_LIMIT];
                    let bytes = encode(&plan, &mut buf).unwrap();
                    writeln!(out, "{} bytes, fnv {:016x}", bytes.len(), fnv(bytes)).unwrap();
                }
                Err(errs) => writeln!(out, "refused: {errs:?}").unwrap(),
            }
        }
    }
    out
}

#[test]
fn every_system_s_plan_is_pinned() {
    let now = fingerprints();
    if std::env::var_os("AXOLOTL_BLESS").is_some() {
        std::fs::write(GOLDEN, &now).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    let changed: Vec<String> = now
        .lines()
        .filter(|l| !golden.lines().any(|g| g == *l))
        .map(|l| format!("  now:    {l}"))
        .chain(
            golden
                .lines()
                .filter(|g| !now.lines().any(|l| l == *g))
                .map(|g| format!("  pinned: {g}")),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "plans differ from {GOLDEN} (if meant: AXOLOTL_BLESS=1 cargo test -p axolotl-boot-plan \
         --test system_plans):\n{}",
        changed.join("\n")
    );
}

#[test]
fn the_fingerprint_sees_a_one_bit_change() {
    let mut b = *b"a plan";
    let before = fnv(&b);
    b[5] ^= 1;
    assert_ne!(fnv(&b), before);
}
