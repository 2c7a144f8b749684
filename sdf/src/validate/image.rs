//! Maps versus the loaded ELF, checked once the image builder has read the program images.

use crate::layout::PD_STACK_TOP;
use crate::{Diagnostic, SystemDescription};

/// Diagnostics for maps of PD `pd` that overlap any ELF `segments` (`(vaddr, memsz)`), and for
/// segments reaching into the stack; positioned at the offending map (or the PD).
pub fn check_image_overlaps(
    sd: &SystemDescription,
    pd: &str,
    segments: &[(u64, u64)],
) -> Vec<Diagnostic> {
    let Some(pd) = sd.pd(pd) else {
        let msg = format!("no protection domain named `{pd}`");
        return vec![Diagnostic::error(&sd.file, sd.span, "unknown-pd", msg)];
    };
    let seg_end = |&(v, len): &(u64, u64)| v.saturating_add(len);
    let mut out = Vec::new();
    for map in &pd.maps {
        let Some(mr) = sd.memory_region(&map.mr) else {
            continue;
        };
        let end = map.vaddr.saturating_add(mr.size);
        for seg in segments.iter().filter(|s| s.1 > 0) {
            if map.vaddr < seg_end(seg) && seg.0 < end {
                let msg = format!(
                    "map of `{}` at [{:#x}, {end:#x}) overlaps the program image segment [{:#x}, {:#x}) of `{}`",
                    mr.name,
                    map.vaddr,
                    seg.0,
                    seg_end(seg),
                    pd.name
                );
                out.push(Diagnostic::error(&sd.file, map.span, "image-overlap", msg));
                break;
            }
        }
    }
    for seg in segments.iter().filter(|s| s.1 > 0) {
        if seg_end(seg) > pd.stack_bottom() {
            let msg = format!(
                "program image segment [{:#x}, {:#x}) of `{}` is not below its stack at [{:#x}, {PD_STACK_TOP:#x})",
                seg.0,
                seg_end(seg),
                pd.name,
                pd.stack_bottom()
            );
            out.push(Diagnostic::error(
                &sd.file,
                pd.program_image.span,
                "image-stack",
                msg,
            ));
        }
    }
    out
}
