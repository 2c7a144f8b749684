//! Issue #15's storage path: the virtio-blk driver PD (QEMU's virtio-mmio disk, transport
//! 31) serving a native client over lib/ring and lib/blk. The client writes a seeded
//! pseudo-random pattern over 4 MiB of a fresh disk image, flushes, reads it back and
//! compares (`blk_client: verdict: …`); in `blk-crash` the driver crashes after 1600 KiB
//! of device completions (100 requests) in each of its first four incarnations, with requests in the device, so
//! during writes and during reads. Zero failed requests, nothing read back different, and
//! afterwards the image file on the host holds exactly the pattern.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axolotl_blk::SECTOR_SIZE;
use axolotl_blk::pattern::pattern_sector;
use axolotl_driver_pd::{BLK_TEST_SECTORS, BLK_TEST_SEED};
use axolotl_tests::{DEFAULT_TIMEOUT, boot_with_disk, check, refute_each};

/// The disk: 8 MiB, of which the client writes the first half.
const IMAGE_BYTES: u64 = 8 << 20;
/// The whole workload under TCG on a loaded machine, crashes and restarts included.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(600);

fn fresh_image(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axolotl-blk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the disk image's directory");
    let img = dir.join("disk.img");
    let f = std::fs::File::create(&img).expect("create the disk image");
    f.set_len(IMAGE_BYTES).expect("size the disk image");
    img
}

/// The image holds the pattern over the written sectors and zeros after them.
fn check_image(img: &Path) {
    let bytes = std::fs::read(img).expect("read the disk image");
    assert_eq!(bytes.len() as u64, IMAGE_BYTES);
    let mut want = [0u8; SECTOR_SIZE];
    let mut bad = Vec::new();
    for sector in 0..BLK_TEST_SECTORS {
        pattern_sector(BLK_TEST_SEED, sector, &mut want);
        let at = sector as usize * SECTOR_SIZE;
        if bytes[at..at + SECTOR_SIZE] != want {
            bad.push(sector);
        }
    }
    assert!(
        bad.is_empty(),
        "{} sectors of the image differ from the pattern, the first: {:?}",
        bad.len(),
        &bad[..bad.len().min(16)]
    );
    let rest = BLK_TEST_SECTORS as usize * SECTOR_SIZE;
    assert!(
        bytes[rest..].iter().all(|&b| b == 0),
        "bytes past the written sectors changed"
    );
}

fn field(line: &str, name: &str) -> u64 {
    line.split(&format!("{name} "))
        .nth(1)
        .and_then(|r| r.split([',', ')']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name} N` in {line:?}"))
}

fn run(gic: u8, system: &str, crashes: u32) {
    let img = fresh_image(&format!("{system}-gic{gic}"));
    let mut b = check(boot_with_disk(
        gic,
        "cortex-a72",
        &format!("-{system}"),
        &img,
    ));
    check(b.expect_all(
        &[
            "root-task: system up: 2 protection domains and the monitor started",
            "blk_driver: generation 0: virtio-blk at 0xa003e00, 16384 sectors, serving blk_client (ring generation 1)",
            "blk_client: generation 0: writing the pattern",
        ],
        DEFAULT_TIMEOUT,
    ));
    for g in 1..=crashes {
        check(b.expect_chain(
            &[
                "blk_driver: fault injection: wild write after",
                "monitor: restarted blk_driver (cause: vm-fault write at 0x700000000 ip 0x",
                &format!("blk_driver: generation {g}: virtio-blk at 0xa003e00"),
            ],
            WORKLOAD_TIMEOUT,
        ));
    }
    let verdict = check(b.expect("blk_client: verdict: ", WORKLOAD_TIMEOUT));
    let console = b.console();
    assert!(
        verdict.contains("blk_client: verdict: PASS: 4096 KiB written, flushed and read back"),
        "{verdict}\n{console}"
    );
    assert_eq!(field(&verdict, "failed"), 0, "{verdict}");
    assert_eq!(field(&verdict, "mismatched sectors"), 0, "{verdict}");
    assert_eq!(field(&verdict, "errors"), 0, "{verdict}");
    assert_eq!(
        field(&verdict, "writes"),
        BLK_TEST_SECTORS / 32,
        "{verdict}"
    );
    assert_eq!(field(&verdict, "reads"), BLK_TEST_SECTORS / 32, "{verdict}");
    assert_eq!(field(&verdict, "flushes"), 1, "{verdict}");
    if crashes > 0 {
        assert!(
            field(&verdict, "driver restarts") >= 3,
            "the client saw fewer than 3 driver restarts: {verdict}"
        );
        assert!(
            field(&verdict, "reissued") > 0,
            "nothing was re-issued: {verdict}"
        );
        for phase in ["Writing", "Reading"] {
            assert!(
                console.contains(&format!("in phase {phase} at sector")),
                "no driver restart during {phase}:\n{console}"
            );
        }
        assert!(
            !console.contains(&format!("blk_driver: generation {}: ", crashes + 1)),
            "more restarts than injected crashes:\n{console}"
        );
    }
    refute_each(
        &mut b,
        &[
            "ERROR",
            "cannot start",
            "corrupt",
            "panicked",
            "IRQ ack failed",
            "KERNEL PANIC",
            "kernel: FAULT",
            "holding blk_driver",
        ],
    );
    // QEMU gone, everything it wrote is in the file.
    drop(b);
    check_image(&img);
    let _ = std::fs::remove_dir_all(img.parent().unwrap());
}

#[test]
fn blk_pattern_written_and_read_back_gicv3() {
    run(3, "blk", 0);
}

#[test]
fn blk_pattern_survives_four_driver_crashes_gicv2() {
    run(2, "blk-crash", 4);
}

#[test]
fn blk_pattern_survives_four_driver_crashes_gicv3() {
    run(3, "blk-crash", 4);
}
