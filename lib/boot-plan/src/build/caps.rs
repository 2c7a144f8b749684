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

#[cfg(test)]
mod tests {
    use std::format;
    use std::vec::Vec;

    use super::super::testing::*;
    use super::*;

    fn parent_and_child() -> axolotl_sdf::SystemDescription {
        let child = pd("c", "").replace("priority", "id=\"7\" priority");
        sd(&pd(
            "p",
            &format!("<irq irq=\"40\" id=\"2\" trigger=\"edge\" />{child}"),
        )
        .replacen("priority", "cnode_cap=\"true\" priority", 1))
    }

    fn slots(cx: &Cx, pd: usize) -> Vec<(u64, Cap)> {
        cx.caps[pd].iter().map(|(&s, &(c, _))| (s, c)).collect()
    }

    #[test]
    fn own_fault_irq_and_child_caps() {
        let sd = parent_and_child();
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        caps(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(
            slots(&cx, 0),
            [
                (INPUT_CAP, Cap::InputEndpoint),
                (VSPACE_CAP, Cap::OwnVSpace),
                (REPLY_CAP, Cap::Reply),
                (
                    MONITOR_EP,
                    Cap::FaultEndpoint {
                        parent: None,
                        badge: monitor_fault_badge(0)
                    }
                ),
                (OWN_CNODE_CAP, Cap::OwnCNode),
                (irq_slot(2), Cap::IrqHandler { irq: 0 }),
                (child_tcb_slot(7), Cap::ChildTcb { pd: 1 }),
            ]
        );
        // The child's faults go to its parent, badged with its id.
        assert_eq!(
            cx.caps[1][&MONITOR_EP].0,
            Cap::FaultEndpoint {
                parent: Some(0),
                badge: child_fault_badge(7)
            }
        );
        assert_eq!(cx.plan.irqs[0].trigger, m::Trigger::Edge);
        assert_eq!(cx.work[0].irqs, m::Span { start: 0, len: 1 });
        assert!(cx.notify_bits[0].contains_key(&2));
    }

    #[test]
    fn an_irq_on_a_channel_s_bit_and_slot_is_refused() {
        let mut sd = parent_and_child();
        sd.protection_domains[0].irqs[0].id = 0;
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        // As `channels` would for a channel delivering bit 0 to p.
        cx.badge(Badges::Notify, 0, 0, "channel 0".into());
        cx.put(0, irq_slot(0), Cap::Reply, "something".into());
        caps(&mut cx);
        assert_eq!(
            cx.errs,
            [
                BuildError::BadgeCollision {
                    pd: "p".into(),
                    badge: 1,
                    what: "channel 0 and IRQ 40".into()
                },
                BuildError::SlotCollision {
                    pd: "p".into(),
                    slot: irq_slot(0),
                    what: "something and IRQ 40".into()
                }
            ]
        );
    }

    #[test]
    fn a_child_without_an_id_is_refused() {
        let mut sd = parent_and_child();
        sd.protection_domains[0].children[0].id = None;
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        caps(&mut cx);
        assert_eq!(
            cx.errs,
            [BuildError::Unknown {
                what: "child id",
                name: "c".into()
            }]
        );
    }

    #[test]
    fn emit_writes_each_pd_s_caps_by_slot() {
        let sd = parent_and_child();
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        caps(&mut cx);
        super::super::pds::layout(&mut cx);
        super::super::pds::pds(&mut cx);
        emit(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(cx.plan.pds[0].caps, m::Span { start: 0, len: 7 });
        assert_eq!(cx.plan.pds[1].caps, m::Span { start: 7, len: 4 });
        let p: Vec<u16> = cx.plan.caps[..7].iter().map(|c| c.slot).collect();
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(p, sorted);
    }
}
