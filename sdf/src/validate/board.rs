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
        if !cx.taint.is(pd.span, "cpu") {
            let what = format!("protection domain `{}`", pd.name);
            cpu(cx, pd.span, &what, pd.cpu);
        }
        if let Some(vm) = &pd.virtual_machine {
            vm_gic(cx, vm);
            for v in &vm.vcpus {
                if !cx.taint.is(v.span, "cpu") {
                    let what = format!("vcpu {} of `{}`", v.id, vm.name);
                    cpu(cx, v.span, &what, v.cpu);
                }
            }
        }
    }
    console(cx);
}

/// A `cpu` the board does not have is refused, as Microkit does. The kernel runs on the boot
/// core only (no SMP): a `cpu` the board has but the kernel does not run PDs on is accepted,
/// and the PD or vCPU runs on core 0 with the rest, so the file's priorities hold but its
/// parallelism does not (a warning says so).
fn cpu(cx: &mut Cx, at: crate::Span, what: &str, cpu: u32) {
    let board = cx.board;
    let (named, run) = (board.sdf_cores(), board.cores());
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    if cpu >= named {
        cx.error(
            at,
            "cpu-range",
            format!(
                "{what} is placed on cpu {cpu}, but {} has {named} core{} (0 to {})",
                board.name,
                plural(named),
                named - 1
            ),
        );
    } else if cpu >= run {
        cx.warning(
            at,
            "cpu-shared",
            format!(
                "{what} is placed on cpu {cpu}: the kernel runs on {run} core{} of {}, so it \
                 runs on core 0 with every other protection domain (priorities hold, \
                 parallelism does not)",
                plural(run),
                board.name
            ),
        );
    }
}

/// Every UART the kernel's console can use on this board is taken by the system (the build
/// moves the console off one that is taken: `crate::console`): refused at the first element
/// taking each, naming the others, so the user knows which one to leave to the kernel.
fn console(cx: &mut Cx) {
    let cands = cx.board.console_candidates();
    if cands.len() < 2 {
        return;
    }
    let taken: Vec<_> = cands
        .iter()
        .map(|u| (u, crate::console::takers(cx.sd, u)))
        .collect();
    if taken.iter().any(|(_, t)| t.is_empty()) {
        return;
    }
    for (i, (u, t)) in taken.iter().enumerate() {
        let others: Vec<String> = taken
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (o, ot))| {
                format!(
                    "{} ({:#x}, irq {}) by {} at line {}",
                    o.name, o.base, o.irq, ot[0].1, ot[0].0.line
                )
            })
            .collect();
        cx.error(
            t[0].0,
            "console",
            format!(
                "{} ({:#x}, irq {}) is taken here ({}), and so is every other UART the kernel's \
                 console can use on {}: {}; leave one of them to the kernel",
                u.name,
                u.base,
                u.irq,
                t[0].1,
                cx.board.name,
                others.join(", ")
            ),
        );
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
