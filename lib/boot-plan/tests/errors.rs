mod common;

use axolotl_boot_plan::{BuildError, ElfInfo, build};
use axolotl_sdf::{Channel, Irq, Trigger};
use common::*;

fn errors(sd: &axolotl_sdf::SystemDescription, images: &[ElfInfo]) -> Vec<BuildError> {
    build(sd, images).unwrap_err()
}

#[test]
fn missing_image() {
    let images = &hello_images()[1..];
    let errs = errors(&hello(), images);
    assert_eq!(
        errs,
        [BuildError::MissingImage {
            pd: "hello_server".into(),
            path: "hello-server.elf".into()
        }]
    );
}

#[test]
fn missing_setvar_symbol() {
    let mut images = hello_images();
    images[1].symbols.clear();
    let errs = errors(&hello(), &images);
    assert_eq!(
        errs,
        [BuildError::MissingSymbol {
            pd: "hello_client".into(),
            symbol: "log_ring".into()
        }]
    );
}

#[test]
fn setvar_symbol_must_be_8_bytes() {
    let mut images = hello_images();
    images[2].symbols.insert("log_ring".into(), (0x20_2010, 4));
    let errs = errors(&hello(), &images);
    assert_eq!(
        errs,
        [BuildError::SymbolSize {
            pd: "hello_logger".into(),
            symbol: "log_ring".into(),
            size: 4
        }]
    );
}

#[test]
fn map_over_the_image() {
    let mut images = hello_images();
    let bytes = elf(
        0x200_0000,
        &[(0x200_0000, 0x1000, RX)],
        &[("log_ring", 0x200_0008, 8)],
    );
    images[2] = ElfInfo::from_bytes("hello-logger.elf", &bytes).unwrap();
    let errs = errors(&hello(), &images);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        matches!(&errs[0], BuildError::Sdf(d) if d.rule == "image-overlap"),
        "{errs:?}"
    );
}

#[test]
fn ipc_buffer_overlap() {
    let mut sd = hello();
    sd.protection_domains[2].maps[0].vaddr = 0xe000_1000;
    let errs = errors(&sd, &hello_images());
    assert_eq!(
        errs,
        [BuildError::IpcBufferOverlap {
            pd: "hello_logger".into(),
            vaddr: 0xe000_1000
        }]
    );
}

#[test]
fn generation_table_overlap() {
    let mut sd = hello();
    // log_ring's 16 KiB end at 0xe000_1000: over the table's page, not the IPC buffer's.
    sd.protection_domains[2].maps[0].vaddr = 0xdfff_d000;
    let errs = errors(&sd, &hello_images());
    assert_eq!(
        errs,
        [BuildError::GenerationTableOverlap {
            pd: "hello_logger".into(),
            vaddr: 0xe000_0000
        }]
    );
}

#[test]
fn pd_index_symbol_must_be_8_bytes() {
    let mut images = hello_images();
    images[0]
        .symbols
        .insert("__axolotl_pd_index".into(), (0x20_2000, 4));
    let errs = errors(&hello(), &images);
    assert_eq!(
        errs,
        [BuildError::SymbolSize {
            pd: "hello_server".into(),
            symbol: "__axolotl_pd_index".into(),
            size: 4
        }]
    );
}

#[test]
fn notification_badge_collision() {
    // An IRQ on logger's id 0 would share bit 0 with client's notifications.
    let mut sd = hello();
    let span = sd.span;
    sd.protection_domains[2].irqs.push(Irq {
        irq: 40,
        id: 0,
        trigger: Trigger::Level,
        setvar_id: None,
        span,
    });
    let errs = errors(&sd, &hello_images());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        matches!(&errs[0], BuildError::BadgeCollision { pd, badge: 1, .. } if pd == "hello_logger"),
        "{errs:?}"
    );
}

#[test]
fn slot_and_ppc_badge_collisions() {
    // A second pp channel from client id 0 to server id 0: same slot 74 and same PPC badge.
    let mut sd = hello();
    let mut dup: Channel = sd.channels[0].clone();
    dup.ends[0].notify = false;
    dup.ends[1].notify = false;
    sd.channels.push(dup);
    let errs = errors(&sd, &hello_images());
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().any(
            |e| matches!(e, BuildError::SlotCollision { pd, slot: 74, .. } if pd == "hello_client")
        ),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| matches!(e, BuildError::BadgeCollision { pd, badge, .. } if pd == "hello_server" && *badge == 1 << 63)), "{errs:?}");
}

#[test]
fn unknown_dependency() {
    let mut sd = hello();
    sd.protection_domains[1]
        .resilience
        .depends_on
        .push("nobody".into());
    let errs = errors(&sd, &hello_images());
    assert_eq!(
        errs,
        [BuildError::Unknown {
            what: "protection domain",
            name: "nobody".into()
        }]
    );
}

#[test]
fn name_over_capacity() {
    let mut sd = hello();
    sd.memory_regions[0].name = "r".repeat(100);
    for pd in &mut sd.protection_domains {
        for m in &mut pd.maps {
            m.mr = "r".repeat(100);
        }
    }
    let errs = errors(&sd, &hello_images());
    assert!(
        errs.contains(&BuildError::Capacity {
            what: "name bytes",
            limit: 64
        }),
        "{errs:?}"
    );
}
