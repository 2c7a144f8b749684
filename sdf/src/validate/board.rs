//! What the board and its kernel can give: the interrupts user level may own and the cores a
//! PD may run on. The kernel refuses the same at boot; here it is refused with a position.

use super::Cx;

pub(super) fn check(cx: &mut Cx) {
    let sd = cx.sd;
    let board = cx.board;
    for pd in sd.all_pds() {
        for irq in &pd.irqs {
            if cx.taint.is(irq.span, "irq") {
                continue;
            }
            if let Some(why) = board.user_irq_refusal(irq.irq) {
                cx.error(
                    irq.span,
                    "irq-reserved",
                    format!("{why} (protection domain `{}`)", pd.name),
                );
            }
        }
        let cores = board.cores();
        if !cx.taint.is(pd.span, "cpu") && pd.cpu >= cores {
            cx.error(
                pd.span,
                "cpu-range",
                format!(
                    "protection domain `{}` is placed on cpu {}, but {} has {cores} core{} \
                     for protection domains (0 to {})",
                    pd.name,
                    pd.cpu,
                    board.name,
                    if cores == 1 { "" } else { "s" },
                    cores - 1
                ),
            );
        }
        if let Some(vm) = &pd.virtual_machine {
            vm_gic(cx, vm);
            for v in &vm.vcpus {
                if !cx.taint.is(v.span, "cpu") && v.cpu >= cores {
                    cx.error(
                        v.span,
                        "cpu-range",
                        format!(
                            "vcpu {} of `{}` is placed on cpu {}, but {} has {cores} core{} \
                             (0 to {})",
                            v.id,
                            vm.name,
                            v.cpu,
                            board.name,
                            if cores == 1 { "" } else { "s" },
                            cores - 1
                        ),
                    );
                }
            }
        }
    }
}

/// A guest on a GICv2 board reaches its GIC CPU interface through the hardware's virtual CPU
/// interface (GICV), which its VM must map where the guest's device tree puts GICC; without
/// it the system builds, boots, and the guest kernel panics probing its GIC. (GICv3 guests use
/// system registers: nothing to map.) A warning, not an error: a guest that never touches its
/// GIC (tests/systems/vm-exits.system) needs no GICV, and only the VMM program knows.
fn vm_gic(cx: &mut Cx, vm: &crate::VirtualMachine) {
    let axolotl_kernel_config::GicLayout::V2 { gicv, .. } = cx.board.gic else {
        return;
    };
    let maps_gicv = vm.maps.iter().any(|m| {
        cx.sd
            .memory_regions
            .iter()
            .any(|mr| mr.name == m.mr && mr.phys_addr == Some(gicv))
    });
    if !maps_gicv {
        cx.warning(
            vm.span,
            "vm-gic",
            format!(
                "virtual machine `{}` runs on a GICv2 board but maps no region at the virtual \
                 CPU interface {gicv:#x}: map one (phys_addr=\"{gicv:#x}\", size 0x2000) where \
                 the guest expects GICC, as systems/linux-vm-gicv2.system does, or build for \
                 --gic 3",
                vm.name
            ),
        );
    }
}
