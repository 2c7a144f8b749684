//! Small systems and images for the passes' unit tests.

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use axolotl_sdf::SystemDescription;

use super::Cx;
use crate::{ElfInfo, ElfSegment, Perms};

/// `body` (PDs, regions, channels) as a checked system; panics on a diagnostic.
pub fn sd(body: &str) -> SystemDescription {
    let text = format!("<system>\n{body}\n</system>\n");
    let board = &axolotl_kernel_config::BOARDS[1];
    axolotl_sdf::parse("t.system", &text, board).unwrap_or_else(|d| panic!("{d}\n{text}"))
}

/// A PD `a` running `a.elf`.
pub fn one_pd() -> String {
    pd("a", "")
}

/// PD `name` running `<name>.elf`, with `inner` (maps, irqs, ...) inside.
pub fn pd(name: &str, inner: &str) -> String {
    format!(
        "<protection_domain name=\"{name}\" priority=\"100\">\
         <program_image path=\"{name}.elf\" />{inner}</protection_domain>\n"
    )
}

/// An image at 0x20_0000 (code) and 0x30_0000 (data, 8 KiB), with `symbols` (name, vaddr,
/// size) and no IPC buffer symbol.
pub fn image_with(path: &str, symbols: &[(&str, u64, u64)]) -> ElfInfo {
    let seg = |vaddr, memsz, write, execute| ElfSegment {
        vaddr,
        memsz,
        filesz: 0,
        offset: 0,
        perms: Perms {
            read: true,
            write,
            execute,
        },
    };
    ElfInfo {
        path: path.to_string(),
        entry: 0x20_0000,
        segments: vec![
            seg(0x20_0000, 0x1800, false, true),
            seg(0x30_0000, 0x2000, true, false),
        ],
        symbols: symbols
            .iter()
            .map(|&(n, v, s)| (n.to_string(), (v, s)))
            .collect::<BTreeMap<_, _>>(),
    }
}

pub fn image(path: &str) -> ElfInfo {
    image_with(path, &[])
}

pub fn cx<'a>(sd: &'a SystemDescription, images: &'a [ElfInfo]) -> Cx<'a> {
    Cx::new(sd, images).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The images of every PD of `sd`, without symbols.
pub fn images_of(sd: &SystemDescription) -> Vec<ElfInfo> {
    sd.all_pds()
        .iter()
        .map(|pd| image(&pd.program_image.path))
        .collect()
}
