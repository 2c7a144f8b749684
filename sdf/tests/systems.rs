//! Every system shipped in the repository's `systems/` validates cleanly.

use std::path::Path;

use axolotl_kernel_config::{BOARDS, GicVersion};
use axolotl_sdf::*;

#[test]
fn every_shipped_system_validates_on_every_board() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systems");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "system") {
            continue;
        }
        // `*-gicv2.system` maps the board's GICV frame for a guest: GICv2 boards only, and
        // a GICv3 board has no such frame to give.
        let v2_only = path.to_string_lossy().ends_with("-gicv2.system");
        for board in BOARDS {
            let v3 = board.gic.version() == GicVersion::V3;
            match check_file(&path, board) {
                Ok(_) if v2_only && v3 => {
                    panic!("{} validates on a GICv3 board", path.display())
                }
                // A GICv3 guest's file on a GICv2 board: warned that it maps no GICV.
                Ok(c) if !v3 => assert!(
                    c.warnings.iter().all(|w| w.rule == "vm-gic"),
                    "{}",
                    c.warnings
                ),
                Ok(c) => assert!(c.warnings.is_empty(), "{}", c.warnings),
                Err(d) if v2_only && v3 => {
                    assert!(d.to_string().contains("[phys-range]"), "{d}")
                }
                // The ODROIDs share no address with QEMU virt, whose devices (a second PL011,
                // virtio-mmio) most systems name: refused there for that alone. The hello
                // system, which names none, must validate (checked below).
                Err(d) if board.name.starts_with("odroid-") => assert!(
                    d.errors().all(|e| e.rule == "phys-range"),
                    "{} on {}:\n{d}",
                    path.display(),
                    board.name
                ),
                Err(d) => panic!("{} on {}:\n{d}", path.display(), board.name),
            }
        }
        checked += 1;
    }
    assert!(checked >= 1, "no systems found in {}", dir.display());
    for board in BOARDS {
        let hello = dir.join("hello.system");
        if let Err(d) = check_file(&hello, board) {
            panic!("hello.system on {}:\n{d}", board.name);
        }
    }
}

#[test]
fn hello_is_three_pds_with_a_call_notifications_and_a_shared_region() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systems/hello.system");
    let sd = check_file(&path, &BOARDS[0]).unwrap().system;
    let images: Vec<&str> = sd
        .all_pds()
        .iter()
        .map(|pd| pd.program_image.path.as_str())
        .collect();
    assert_eq!(
        images,
        ["hello-server.elf", "hello-client.elf", "hello-logger.elf"]
    );
    assert_eq!(
        sd.channels
            .iter()
            .filter(|c| c.ends.iter().any(|e| e.pp))
            .count(),
        1
    );
    assert!(
        sd.channels
            .iter()
            .filter(|c| c.ends.iter().all(|e| e.notify))
            .count()
            >= 2
    );
    let sharers = sd
        .all_pds()
        .iter()
        .filter(|pd| pd.maps.iter().any(|m| m.mr == "log_ring"))
        .count();
    assert_eq!(sharers, 2);
}
