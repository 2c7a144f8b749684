//! Regions at fixed physical addresses: within the board's RAM, its device window or its other
//! device memory (`Board::more_devices`: QEMU virt's PCIe windows and GICv2m frame), or its
//! GICv2 virtual CPU interface (for a guest); disjoint.

use super::{Cx, overlaps, range};
use crate::MemoryRegion;

/// GICV: GICC_CTLR to GICC_DIR (docs/abi.md, `GICV_SIZE`).
const GICV_SIZE: u64 = 0x2000;

type Placed<'a> = ((u64, u64), &'a MemoryRegion);

pub(super) fn check(cx: &mut Cx) {
    let sd = cx.sd;
    let board = cx.board;
    let dev = board.device_window;
    // A GICv2 board's virtual CPU interface: the one kernel-side frame a VMM maps for its guest.
    let gicv = match board.gic {
        axolotl_kernel_config::GicLayout::V2 { gicv, .. } => Some((gicv, gicv + GICV_SIZE)),
        axolotl_kernel_config::GicLayout::V3 { .. } => None,
    };
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
        let more = board.more_devices();
        if !board.ram_contains(r.0, r.1)
            && !inside(dev)
            && !more.iter().any(|&w| inside(w))
            && !gicv.is_some_and(inside)
        {
            // On a GICv3 board, the GICv2 variant's GICV (a Microkit `qemu_virt_aarch64` file,
            // libvmm's `simple`): say which `--gic` takes it.
            let v2_gicv = axolotl_kernel_config::board_by_name(
                board.name,
                Some(axolotl_kernel_config::GicVersion::V2),
            )
            .and_then(|b| match b.gic {
                axolotl_kernel_config::GicLayout::V2 { gicv, .. } => Some((gicv, gicv + GICV_SIZE)),
                _ => None,
            });
            let gicv_note = match (gicv, v2_gicv) {
                (Some(g), _) => format!(
                    " nor the GIC virtual CPU interface [{:#x}, {:#x})",
                    g.0, g.1
                ),
                (None, Some(g)) if inside(g) => format!(
                    " (it is the GICv2 virtual CPU interface [{:#x}, {:#x}) of the board's \
                     GICv2 variant: check and build with `--gic 2`)",
                    g.0, g.1
                ),
                _ => String::new(),
            };
            let more_note: String = more
                .iter()
                .map(|w| format!(", [{:#x}, {:#x})", w.0, w.1))
                .collect();
            // A region is physically contiguous: inside one of the board's RAM ranges.
            let ram: Vec<String> = board
                .ram
                .iter()
                .map(|w| format!("[{:#x}, {:#x})", w.0, w.1))
                .collect();
            let msg = format!(
                "physical range [{:#x}, {:#x}) of `{}` is neither inside RAM {} nor inside the \
                 device memory [{:#x}, {:#x}){more_note}{gicv_note} of board `{}`",
                r.0,
                r.1,
                mr.name,
                ram.join(", "),
                dev.0,
                dev.1,
                board.name
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
