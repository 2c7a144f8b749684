//! Selects the board and embeds the root-task ELF. Both come from the environment that
//! `cargo xtask build` sets, so one kernel source serves every board and system.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=AXOLOTL_BOARD");
    println!("cargo:rerun-if-env-changed=AXOLOTL_GIC");
    println!("cargo:rerun-if-env-changed=AXOLOTL_ROOT_TASK_ELF");
    println!("cargo:rerun-if-env-changed=AXOLOTL_CONSOLE");
    println!("cargo:rerun-if-env-changed=AXOLOTL_IMAGE");
    println!("cargo:rerun-if-changed=link.ld");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let board = env::var("AXOLOTL_BOARD").unwrap_or_else(|_| "qemu-virt-aarch64".into());
    let gic = match env::var("AXOLOTL_GIC").ok().as_deref() {
        None | Some("") => None,
        Some("2") => Some(axolotl_kernel_config::GicVersion::V2),
        Some("3") => Some(axolotl_kernel_config::GicVersion::V3),
        Some(other) => panic!("AXOLOTL_GIC must be 2 or 3, not {other:?}"),
    };
    let Some(index) = axolotl_kernel_config::BOARDS
        .iter()
        .position(|b| b.name == board && gic.is_none_or(|g| b.gic.version() == g))
    else {
        panic!("unknown board {board:?} with GIC {gic:?}");
    };
    let b = &axolotl_kernel_config::BOARDS[index];
    // The UART the kernel's console is on, when the system gives the board's own to user
    // level (`axolotl_sdf::console`): its base, one of the board's candidates.
    let console = match env::var("AXOLOTL_CONSOLE").ok().as_deref() {
        None | Some("") => None,
        Some(v) => {
            let base = u64::from_str_radix(v.trim_start_matches("0x"), 16)
                .unwrap_or_else(|_| panic!("AXOLOTL_CONSOLE must be a hex address, not {v:?}"));
            let Some(u) = b.console_candidates().iter().find(|u| u.base == base) else {
                panic!("{base:#x} is not a console UART of {}", b.name);
            };
            Some(*u)
        }
    };
    let console = match console {
        Some(u) => format!(
            "Some(axolotl_kernel_config::ConsoleUart {{ base: {:#x}, irq: {}, name: {:?} }})",
            u.base, u.irq, u.name
        ),
        None => "None".into(),
    };
    // The image's name (`cargo xtask build` gives it: `<board>-gic<N>[-<system>]`), which
    // the kernel says at boot so a test can tell it booted the image it asked for.
    let image = env::var("AXOLOTL_IMAGE").unwrap_or_default();
    fs::write(
        out.join("board.rs"),
        format!(
            "pub const BOARD_INDEX: usize = {index};\n\
             pub const CONSOLE: Option<axolotl_kernel_config::ConsoleUart> = {console};\n\
             pub const IMAGE: &str = {image:?};\n"
        ),
    )
    .unwrap();
    // What entry.S needs before any Rust runs: where to link, and what to program if the
    // boot chain leaves the core at EL3 (the counter's frequency, the GIC to hand to the
    // non-secure side).
    let gicd = match b.gic {
        axolotl_kernel_config::GicLayout::V2 { gicd, .. } => gicd,
        axolotl_kernel_config::GicLayout::V3 { gicd, .. } => gicd,
    };
    fs::write(
        out.join("board.ld"),
        format!(
            "KERNEL_BASE = {:#x};\nBOARD_TIMER_HZ = {:#x};\nBOARD_GICD = {gicd:#x};\nBOARD_GIC_VERSION = {};\n",
            b.kernel_load,
            b.timer_hz,
            b.gic.version().number()
        ),
    )
    .unwrap();

    // The root task travels inside the kernel image (as seL4's elfloader carries it).
    let root_task = out.join("root-task.elf");
    match env::var("AXOLOTL_ROOT_TASK_ELF") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            fs::copy(&path, &root_task).unwrap_or_else(|e| panic!("copying root task {path}: {e}"));
        }
        _ => fs::write(&root_task, b"").unwrap(),
    }

    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
        println!("cargo:rustc-link-arg-bins=-L{}", out.display());
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    }
}
