//! Pass: the caps every PD holds besides its channels' and its VM's (own objects, fault
//! endpoint, IRQ handlers with the `irqs` table, child TCBs), and [`emit`], which writes every
//! PD's caps into the plan once all passes have given out slots.

use std::format;
use std::string::String;

use axolotl_sdf as sdf;

use crate::BuildError;
use crate::cspace::*;
use crate::model::{self as m, Cap, CapSlot};

use super::channels::Badges;
use super::{Cx, push, span};

impl Cx<'_> {
    /// Puts `cap` in `pd`'s `slot` for `what`; refuses a slot taken twice, naming both.
    pub(super) fn put(&mut self, pd: usize, slot: u64, cap: Cap, what: String) {
        if let Some((_, prev)) = self.caps[pd].insert(slot, (cap, what.clone())) {
            self.errs.push(BuildError::SlotCollision {
                pd: self.all[pd].name.clone(),
                slot,
                what: format!("{prev} and {what}"),
            });
        }
    }
}

pub(super) fn caps(cx: &mut Cx) {
    for i in 0..cx.all.len() {
        let pd = cx.all[i];
        cx.put(i, INPUT_CAP, Cap::InputEndpoint, "input endpoint".into());
        cx.put(i, REPLY_CAP, Cap::Reply, "reply".into());
        cx.put(i, VSPACE_CAP, Cap::OwnVSpace, "own VSpace".into());
        if pd.cnode_cap {
            cx.put(i, OWN_CNODE_CAP, Cap::OwnCNode, "own CNode".into());
        }
        // A child's faults go to its parent, badged with its id; any other PD's to the monitor.
        let fault = match (cx.parent[i], pd.id) {
            (Some(p), Some(id)) => Cap::FaultEndpoint {
                parent: Some(p),
                badge: child_fault_badge(id),
            },
            _ => Cap::FaultEndpoint {
                parent: None,
                badge: monitor_fault_badge(i as u8),
            },
        };
        cx.put(i, MONITOR_EP, fault, "fault endpoint".into());

        let start = cx.plan.irqs.len() as u16;
        for irq in &pd.irqs {
            let trigger = match irq.trigger {
                sdf::Trigger::Level => m::Trigger::Level,
                sdf::Trigger::Edge => m::Trigger::Edge,
            };
            let k = push(
                &mut cx.plan.irqs,
                m::Irq {
                    irq: irq.irq,
                    trigger,
                    id: irq.id,
                },
                "IRQs",
                &mut cx.errs,
            );
            let what = format!("IRQ {}", irq.irq);
            cx.badge(Badges::Notify, i as u8, irq.id, what.clone());
            cx.put(i, irq_slot(irq.id), Cap::IrqHandler { irq: k }, what);
        }
        cx.work[i].irqs = span(start, cx.plan.irqs.len() as u16);

        for child in &pd.children {
            let c = cx.index[child.name.as_str()];
            match child.id {
                Some(id) => cx.put(
                    i,
                    child_tcb_slot(id),
                    Cap::ChildTcb { pd: c },
                    format!("child `{}`", child.name),
                ),
                None => cx.errs.push(BuildError::Unknown {
                    what: "child id",
                    name: child.name.clone(),
                }),
            }
        }
    }
}

/// The `caps` table: each PD's caps by increasing slot, and its span.
pub(super) fn emit(cx: &mut Cx) {
    for (i, caps) in cx.caps.iter().enumerate() {
        let start = cx.plan.caps.len() as u16;
        for (&slot, &(cap, _)) in caps {
            push(
                &mut cx.plan.caps,
                CapSlot {
                    slot: slot as u16,
                    cap,
                },
                "capabilities",
                &mut cx.errs,
            );
        }
        if let Some(pd) = cx.plan.pds.get_mut(i) {
            pd.caps = span(start, cx.plan.caps.len() as u16);
        }
    }
}
