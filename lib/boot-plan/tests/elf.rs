mod common;

use axolotl_boot_plan::{BuildError, ElfInfo, Perms};
use common::*;

#[test]
fn reads_entry_segments_and_symbols() {
    let bytes = elf(
        0x20_0040,
        &[(0x20_0000, 0x1800, RX), (0x20_2000, 0x100, RW)],
        &[("x", 0x20_2008, 8)],
    );
    let e = ElfInfo::from_bytes("a.elf", &bytes).unwrap();
    assert_eq!(e.entry, 0x20_0040);
    assert_eq!(e.segments.len(), 2);
    assert_eq!(
        (e.segments[0].vaddr, e.segments[0].memsz),
        (0x20_0000, 0x1800)
    );
    assert_eq!(
        e.segments[0].perms,
        Perms {
            read: true,
            write: false,
            execute: true
        }
    );
    assert_eq!(
        e.segments[1].perms,
        Perms {
            read: true,
            write: true,
            execute: false
        }
    );
    assert_eq!(e.symbol("x"), Some((0x20_2008, 8)));
    assert_eq!(e.symbol("y"), None);
}

#[test]
fn garbage_is_an_elf_error() {
    let err = ElfInfo::from_bytes("junk.elf", b"not an elf at all").unwrap_err();
    assert!(
        matches!(err, BuildError::Elf { ref path, .. } if path == "junk.elf"),
        "{err:?}"
    );
}
