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
