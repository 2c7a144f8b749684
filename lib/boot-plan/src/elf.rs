//! What the builder needs from a program image, read with `object`.

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use object::{Object, ObjectSegment, ObjectSymbol, SegmentFlags};

use crate::{BuildError, Perms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// Matched against `program_image path` in the SDF.
    pub path: String,
    pub entry: u64,
    /// Loadable segments.
    pub segments: Vec<ElfSegment>,
    /// Symbol name -> (address, size).
    pub symbols: BTreeMap<String, (u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    pub offset: u64,
    pub perms: Perms,
}

impl ElfInfo {
    pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<ElfInfo, BuildError> {
        let err = |msg: String| BuildError::Elf {
            path: path.to_string(),
            msg,
        };
        let file = object::File::parse(bytes).map_err(|e| err(e.to_string()))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(err("not an ELF file".to_string()));
        }
        let mut segments = Vec::new();
        for seg in file.segments() {
            let (offset, filesz) = seg.file_range();
            let p_flags = match seg.flags() {
                SegmentFlags::Elf { p_flags, .. } => p_flags,
                _ => object::elf::ProgramFlags(0),
            };
            segments.push(ElfSegment {
                vaddr: seg.address(),
                memsz: seg.size(),
                filesz,
                offset,
                perms: Perms {
                    read: p_flags.contains(object::elf::PF_R),
                    write: p_flags.contains(object::elf::PF_W),
                    execute: p_flags.contains(object::elf::PF_X),
                },
            });
        }
        let mut symbols = BTreeMap::new();
        for sym in file.symbols() {
            if let Ok(name) = sym.name()
                && !name.is_empty()
            {
                symbols.insert(name.to_string(), (sym.address(), sym.size()));
            }
        }
        Ok(ElfInfo {
            path: path.to_string(),
            entry: file.entry(),
            segments,
            symbols,
        })
    }

    pub fn symbol(&self, name: &str) -> Option<(u64, u64)> {
        self.symbols.get(name).copied()
    }
}
