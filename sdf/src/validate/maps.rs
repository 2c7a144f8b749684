//! Mappings within one address space (a PD's, or a virtual machine's guest-physical one):
//! aligned to the region's page size, disjoint, and for PDs below the stack and 2^39 and W^X.

use super::{Cx, overlaps, range};
use crate::layout::{PD_STACK_TOP, USER_ADDR_LIMIT};
use crate::{Map, MemoryRegion, ProtectionDomain};

pub(super) fn check(cx: &mut Cx) {
    for pd in cx.sd.all_pds() {
        address_space(
            cx,
            &pd.maps,
            &format!("protection domain `{}`", pd.name),
            Some(pd),
        );
        if let Some(vm) = &pd.virtual_machine {
            address_space(
                cx,
                &vm.maps,
                &format!("virtual machine `{}`", vm.name),
                None,
            );
        }
    }
}

/// The region a map refers to, if both are known and usable.
fn region<'a>(cx: &Cx<'a>, map: &Map) -> Option<&'a MemoryRegion> {
    let mr = cx.sd.memory_region(&map.mr)?;
    let unknown = cx.taint.is(map.span, "vaddr")
        || cx.taint.is(mr.span, "size")
        || cx.taint.is(mr.span, "page_size");
    (!unknown).then_some(mr)
}

/// `pd` is `None` for a virtual machine, which has no stack and a guest-physical space.
fn address_space(cx: &mut Cx, maps: &[Map], space: &str, pd: Option<&ProtectionDomain>) {
    let mut placed = Vec::new();
    for map in maps {
        let Some(mr) = region(cx, map) else { continue };
        if !map.vaddr.is_multiple_of(mr.page_size) {
            let msg = format!(
                "vaddr {:#x} of the map of `{}` is not aligned to its page size {:#x}",
                map.vaddr, mr.name, mr.page_size
            );
            cx.error(map.span, "map-align", msg);
        }
        let Some(r) = range(map.vaddr, mr.size) else {
            let msg = format!(
                "map of `{}` at {:#x} wraps around the address space",
                mr.name, map.vaddr
            );
            cx.error(map.span, "user-address", msg);
            continue;
        };
        if let Some(pd) = pd {
            if map.perms.write && map.perms.execute {
                // PDs run at EL0 with stage 1 off: the stage-2 entry alone decides, and it
                // can be writable and executable (SCTLR_EL2.WXN covers only the kernel's
                // own EL2 regime). Microkit allows it; it costs the PD its W^X.
                let msg = format!(
                    "map of `{}` in `{}` is writable and executable: valid (Microkit allows \
                     it), but code injected into it can run; use `rw` and `rx` maps if you can",
                    mr.name, pd.name
                );
                cx.warning(map.span, "map-wx", msg);
            }
            if r.1 > USER_ADDR_LIMIT {
                let msg = format!(
                    "map of `{}` at [{:#x}, {:#x}) extends past the user address limit \
                     {USER_ADDR_LIMIT:#x} (a PD's address space is the kernel's 39-bit stage 2)",
                    mr.name, r.0, r.1
                );
                cx.error(map.span, "user-address", msg);
            } else if r.1 > pd.stack_bottom()
                && r.0 < PD_STACK_TOP
                && !cx.taint.is(pd.span, "stack_size")
            {
                // Unlike Microkit, whose stack ends the address space, axolotl's ends at
                // 4 GiB: maps may lie below or above it, never across.
                let msg = format!(
                    "map of `{}` at [{:#x}, {:#x}) overlaps the stack of `{}` at [{:#x}, \
                     {PD_STACK_TOP:#x}); place it below or above the stack",
                    mr.name,
                    r.0,
                    r.1,
                    pd.name,
                    pd.stack_bottom()
                );
                cx.error(map.span, "map-stack", msg);
            }
        }
        placed.push((r, (r, map)));
    }
    for (a, b) in overlaps(placed) {
        let ((lr, later), (er, earlier)) = if a.1.span > b.1.span { (a, b) } else { (b, a) };
        let msg = format!(
            "map of `{}` at [{:#x}, {:#x}) overlaps the map of `{}` at [{:#x}, {:#x}) (line {}) in {space}",
            later.mr, lr.0, lr.1, earlier.mr, er.0, er.1, earlier.span.line
        );
        cx.error(later.span, "map-overlap", msg);
    }
}
