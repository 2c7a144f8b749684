//! Regions at fixed physical addresses: within the board's RAM or device window, disjoint.

use super::{Cx, overlaps, range};
use crate::MemoryRegion;

type Placed<'a> = ((u64, u64), &'a MemoryRegion);

pub(super) fn check(cx: &mut Cx) {
    let sd = cx.sd;
    let board = cx.board;
    let ram = (
        board.ram_base,
        board.ram_base.saturating_add(board.ram_size),
    );
    let dev = board.device_window;
    let mut placed = Vec::new();
    for mr in &sd.memory_regions {
        let Some(pa) = mr.phys_addr else { continue };
        if ["size", "phys_addr", "page_size"]
            .iter()
            .any(|a| cx.taint.is(mr.span, a))
        {
            continue;
        }
        let Some(r) = range(pa, mr.size) else {
            let msg = format!(
                "physical range of `{}` at {pa:#x} + {:#x} wraps around",
                mr.name, mr.size
            );
            cx.error(mr.span, "phys-range", msg);
            continue;
        };
        let inside = |w: (u64, u64)| w.0 <= r.0 && r.1 <= w.1;
        if !inside(ram) && !inside(dev) {
            let msg = format!(
                "physical range [{:#x}, {:#x}) of `{}` is neither inside RAM [{:#x}, {:#x}) nor \
                 inside the device window [{:#x}, {:#x}) of board `{}`",
                r.0, r.1, mr.name, ram.0, ram.1, dev.0, dev.1, board.name
            );
            cx.error(mr.span, "phys-range", msg);
        }
        placed.push((r, (r, mr)));
    }
    for (a, b) in overlaps(placed) {
        // Report at whichever region comes later in the file.
        let ((lr, later), (er, earlier)): (Placed, Placed) =
            if a.1.span > b.1.span { (a, b) } else { (b, a) };
        let msg = format!(
            "physical range [{:#x}, {:#x}) of `{}` overlaps [{:#x}, {:#x}) of `{}` (line {})",
            lr.0, lr.1, later.name, er.0, er.1, earlier.name, earlier.span.line
        );
        cx.error(later.span, "phys-overlap", msg);
    }
}
