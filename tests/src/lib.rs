//! Shared helpers of the QEMU integration tests (tests/tests/*.rs). The images are built by
//! `cargo xtask test`, which passes their directory in `AXOLOTL_IMAGES`.

use std::path::PathBuf;

pub mod http;

use axolotl_kernel_config::{GicVersion, board_by_name};
use axolotl_qemu::{Boot, Failure, Machine};

pub use axolotl_qemu::DEFAULT_TIMEOUT;

/// Boots the image `<board>-gic<N>[-selftest-<name>]` on `cpu`.
pub fn boot(gic: u8, cpu: &'static str, selftest: Option<&str>) -> Result<Boot, Failure> {
    boot_named(
        gic,
        cpu,
        selftest
            .map(|s| format!("-selftest-{s}"))
            .as_deref()
            .unwrap_or(""),
    )
}

/// Boots the image `<board>-gic<N><suffix>` on `cpu`, UART1 on the harness's own socket (its
/// lines merged into the console; `Boot::send_uart1` types into it).
pub fn boot_named(gic: u8, cpu: &'static str, suffix: &str) -> Result<Boot, Failure> {
    boot_with_uart1(gic, cpu, suffix, None)
}

/// As [`boot_named`], with UART1 (`0x0904_0000`) on the QEMU chardev backend `uart1`
/// (`-chardev <uart1>,id=uart1`, e.g. `pipe,path=DIR/u` for the FIFOs `DIR/u.in`, `DIR/u.out`);
/// `None`: the harness's socket. A test that names a backend reads what it needs of UART1's
/// output itself (a FIFO left unread fills and stalls the line).
pub fn boot_with_uart1(
    gic: u8,
    cpu: &'static str,
    suffix: &str,
    uart1: Option<&str>,
) -> Result<Boot, Failure> {
    let dir = std::env::var_os("AXOLOTL_IMAGES")
        .map(PathBuf::from)
        .ok_or_else(|| Failure {
            what: "AXOLOTL_IMAGES is not set: run the integration tests through `cargo xtask test`"
                .into(),
            console: String::new(),
        })?;
    let version = if gic == 2 {
        GicVersion::V2
    } else {
        GicVersion::V3
    };
    let board = board_by_name("qemu-virt-aarch64", Some(version)).expect("known board");
    let name = format!("{}-gic{gic}{suffix}", board.name);
    let mut m = Machine::new(console_board(board, &dir, &name));
    m.cpu = cpu;
    m.uart1 = uart1.map(str::to_string);
    start_image(&m, &dir.join(format!("{name}.elf")))
}

/// `board` with the kernel's console where image `name` has it: the file xtask writes beside
/// an image whose system takes the board's console UART (`<name>.console`: `UART1 0x9040000`)
/// names the UART, and the harness then captures that one as the system log and the other as
/// "UART1" (the system's line: [`Boot::uart1_bytes`], [`Boot::send_uart1`]).
pub fn console_board(
    board: axolotl_kernel_config::Board,
    dir: &std::path::Path,
    name: &str,
) -> axolotl_kernel_config::Board {
    let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.console"))) else {
        return board;
    };
    let base = text
        .split_whitespace()
        .nth(1)
        .and_then(|b| u64::from_str_radix(b.trim_start_matches("0x"), 16).ok());
    let uart = board
        .console_candidates()
        .iter()
        .find(|u| Some(u.base) == base)
        .unwrap_or_else(|| panic!("{name}.console names no console UART of the board: {text:?}"));
    board.with_console(*uart)
}

/// As [`boot_named`], with a virtio-mmio disk backed by the raw image `disk`
/// (`axolotl_qemu::Machine::disk`: transport 31, `0x0a00_3e00`, INTID 79).
pub fn boot_with_disk(
    gic: u8,
    cpu: &'static str,
    suffix: &str,
    disk: &std::path::Path,
) -> Result<Boot, Failure> {
    let dir = std::env::var_os("AXOLOTL_IMAGES")
        .map(PathBuf::from)
        .ok_or_else(|| Failure {
            what: "AXOLOTL_IMAGES is not set: run the integration tests through `cargo xtask test`"
                .into(),
            console: String::new(),
        })?;
    let version = if gic == 2 {
        GicVersion::V2
    } else {
        GicVersion::V3
    };
    let board = board_by_name("qemu-virt-aarch64", Some(version)).expect("known board");
    let name = format!("{}-gic{gic}{suffix}", board.name);
    let mut m = Machine::new(console_board(board, &dir, &name));
    m.cpu = cpu;
    m.disk = Some(disk.to_path_buf());
    start_image(&m, &dir.join(format!("{name}.elf")))
}

/// Boots the image `rpi4b-gic2<suffix>` on QEMU `raspi4b`: its flat binary as the Pi
/// firmware loads it, or with `elf` the ELF, which QEMU enters at EL3 on every core.
pub fn boot_rpi4b(suffix: &str, elf: bool) -> Result<Boot, Failure> {
    boot_pi("rpi4b", suffix, elf)
}

/// [`boot_rpi4b`] of the image built for the Pi 4 board `board` (`rpi4b_2gb`: QEMU's
/// `raspi4b` has 2 GiB), `<board>-gic2<suffix>`.
pub fn boot_pi(board: &str, suffix: &str, elf: bool) -> Result<Boot, Failure> {
    let dir = std::env::var_os("AXOLOTL_IMAGES")
        .map(PathBuf::from)
        .ok_or_else(|| Failure {
            what: "AXOLOTL_IMAGES is not set: run the integration tests through `cargo xtask test`"
                .into(),
            console: String::new(),
        })?;
    let board = board_by_name(board, None).expect("known board");
    let mut m = Machine::new(board);
    m.boot_elf = elf;
    // The harness is given the ELF (the image list names it); the machine boots the flat
    // binary beside it unless told otherwise.
    start_image(&m, &dir.join(format!("{}-gic2{suffix}.elf", board.name)))
}

/// Starts `image` on `m` and checks the kernel names the image asked for (its file name
/// without `.elf`): a test boots what it asked for, not another variant's image written to
/// the same file meanwhile (issue #19). Every boot of the integration tests goes through here.
pub fn start_image(m: &Machine, image: &std::path::Path) -> Result<Boot, Failure> {
    let mut b = Boot::start(m, image)?;
    let name = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    b.verify_image(&name, DEFAULT_TIMEOUT)?;
    Ok(b)
}

/// Unwraps a harness result, failing the test with the captured console.
pub fn check<T>(r: Result<T, Failure>) -> T {
    r.unwrap_or_else(|f| panic!("{f}"))
}

/// Fails the test (with the console) if any of `needles` appears in the console so far.
pub fn refute_each(b: &mut Boot, needles: &[&str]) {
    for n in needles {
        check(b.refute(n));
    }
}

/// Fails the test unless the serial driver's `first receive interrupt (status S)` line is in
/// the console with one of the `cause` bits (serial-core's PL011 encoding: RX 0x10, RX timeout
/// 0x40): the idle driver was woken by its UART's receive interrupt, not by a poll.
pub fn expect_woken_by_receive_interrupt(b: &mut Boot, cause: u32) {
    let console = b.console();
    let status = console
        .lines()
        .find_map(|l| {
            l.split("serial_driver: first receive interrupt (status ")
                .nth(1)
        })
        .and_then(|rest| rest.trim_end().strip_suffix(')'))
        .and_then(|hex| u32::from_str_radix(hex.trim_start_matches("0x"), 16).ok());
    if status.is_none_or(|s| s & cause == 0) {
        check::<()>(Err(b.failure(format!(
            "no receive interrupt woke the driver (first receive interrupt status: {status:x?})"
        ))));
    }
}

/// A fresh directory holding the FIFOs `u.in` and `u.out` for QEMU's `pipe` chardev (UART1,
/// `boot_with_uart1`); `tag` tells apart the tests running at once.
pub fn uart1_pipes(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("axolotl-uart1-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the UART1 pipe directory");
    for f in ["u.in", "u.out"] {
        let ok = std::process::Command::new("mkfifo")
            .arg(dir.join(f))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfifo {}", dir.join(f).display());
    }
    dir
}
