//! Protected procedure calls: a PD may only call a strictly higher-priority PD (the callee runs
//! on the caller's budget at its own priority, and the priority order rules out call cycles).

use super::Cx;

pub(super) fn check(cx: &mut Cx) {
    let sd = cx.sd;
    for ch in &sd.channels {
        let [a, b] = &ch.ends;
        if a.pp && b.pp {
            let msg = format!(
                "both ends of the channel between `{}` and `{}` are `pp`",
                a.pd, b.pd
            );
            cx.error(ch.span, "pp-both", msg);
            continue;
        }
        for (caller, callee) in [(a, b), (b, a)] {
            if !caller.pp {
                continue;
            }
            let (Some(from), Some(to)) = (sd.pd(&caller.pd), sd.pd(&callee.pd)) else {
                continue;
            };
            if cx.taint.is(from.span, "priority") || cx.taint.is(to.span, "priority") {
                continue;
            }
            if from.priority >= to.priority {
                let msg = format!(
                    "`{}` (priority {}) makes protected calls to `{}` (priority {}), whose priority \
                     must be strictly higher",
                    from.name, from.priority, to.name, to.priority
                );
                cx.error(caller.span, "pp-priority", msg);
            }
        }
    }
}
