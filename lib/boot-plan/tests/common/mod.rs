//! Tiny hand-built ELF images and the hello system, shared by the tests.
#![allow(dead_code)]

use axolotl_boot_plan::ElfInfo;
use axolotl_sdf::SystemDescription;

/// A loadable segment: (vaddr, memsz, p_flags).
pub type Seg = (u64, u64, u32);

/// An ELF64 aarch64 executable with `segs` (no file bytes) and symbols `(name, value, size)`.
pub fn elf(entry: u64, segs: &[Seg], syms: &[(&str, u64, u64)]) -> Vec<u8> {
    let phoff = 64u64;
    let symoff = phoff + 56 * segs.len() as u64;
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for (name, value, size) in syms {
        let st_name = strtab.len() as u32;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        symtab.extend_from_slice(&st_name.to_le_bytes());
        symtab.push(0x11); // STB_GLOBAL, STT_OBJECT
        symtab.push(0);
        symtab.extend_from_slice(&0xfff1u16.to_le_bytes()); // SHN_ABS
        symtab.extend_from_slice(&value.to_le_bytes());
        symtab.extend_from_slice(&size.to_le_bytes());
    }
    let stroff = symoff + symtab.len() as u64;
    let shoff = (stroff + strtab.len() as u64).next_multiple_of(8);

    let mut b = Vec::new();
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&entry.to_le_bytes());
    b.extend_from_slice(&phoff.to_le_bytes());
    b.extend_from_slice(&shoff.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // e_shstrndx: the strtab doubles as section-name table.
    for h in [64u16, 56, segs.len() as u16, 64, 3, 2] {
        b.extend_from_slice(&h.to_le_bytes());
    }
    for &(vaddr, memsz, flags) in segs {
        b.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        b.extend_from_slice(&flags.to_le_bytes());
        for w in [0u64, vaddr, vaddr, 0, memsz, 0x1000] {
            b.extend_from_slice(&w.to_le_bytes());
        }
    }
    b.extend_from_slice(&symtab);
    b.extend_from_slice(&strtab);
    b.resize(shoff as usize, 0);
    b.extend_from_slice(&[0; 64]);
    section(&mut b, 2, symoff, symtab.len() as u64, 2, 1, 24); // SHT_SYMTAB -> strtab
    section(&mut b, 3, stroff, strtab.len() as u64, 0, 0, 0); // SHT_STRTAB
    b
}

fn section(b: &mut Vec<u8>, ty: u32, off: u64, size: u64, link: u32, info: u32, entsize: u64) {
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    for w in [0u64, 0, off, size] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(&link.to_le_bytes());
    b.extend_from_slice(&info.to_le_bytes());
    b.extend_from_slice(&8u64.to_le_bytes());
    b.extend_from_slice(&entsize.to_le_bytes());
}

pub const RX: u32 = 5;
pub const RW: u32 = 6;

pub fn hello() -> SystemDescription {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../systems/hello.system");
    let text = std::fs::read_to_string(path).unwrap();
    let board = &axolotl_kernel_config::BOARDS[0];
    axolotl_sdf::parse("hello.system", &text, board).unwrap()
}

/// Images for hello: code at 0x20_0000, data page after it, `log_ring` where a PD has it.
pub fn hello_images() -> Vec<ElfInfo> {
    let img = |path: &str, entry: u64, syms: &[(&str, u64, u64)]| {
        let bytes = elf(
            entry,
            &[(0x20_0000, 0x1800, RX), (0x20_2000, 0x100, RW)],
            syms,
        );
        ElfInfo::from_bytes(path, &bytes).unwrap()
    };
    vec![
        img("hello-server.elf", 0x20_0000, &[]),
        img("hello-client.elf", 0x20_0010, &[("log_ring", 0x20_2008, 8)]),
        img("hello-logger.elf", 0x20_0020, &[("log_ring", 0x20_2010, 8)]),
    ]
}
