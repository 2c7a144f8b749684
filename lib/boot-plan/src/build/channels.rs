//! Pass: the channels, and for each end that may notify or call its peer the cap to do so
//! and the badge it arrives with (the id at the receiver), checked against the receiver's
//! other badges.

use std::format;
use std::string::String;

use axolotl_sdf as sdf;

use crate::BuildError;
use crate::cspace::{endpoint_slot, notification_badge, notification_slot, ppc_badge};
use crate::model::{self as m, Cap};

use super::{Cx, push};

/// Which of a receiver's badge spaces an id is taken in.
#[derive(Clone, Copy)]
pub(super) enum Badges {
    /// Notification bits (channels and IRQs signal the same notification).
    Notify,
    /// PPC ids on the input endpoint.
    Ppc,
}

impl Cx<'_> {
    /// Takes id `id` of `pd`'s `kind` badges for `what`; refuses an id in the flag bits or one
    /// already taken.
    pub(super) fn badge(&mut self, kind: Badges, pd: u8, id: u8, what: String) {
        let name = self.all[pd as usize].name.clone();
        let (table, ppc) = match kind {
            Badges::Notify => (&mut self.notify_bits, false),
            Badges::Ppc => (&mut self.ppc_ids, true),
        };
        if id as u64 > sdf::MAX_ID {
            let b = if ppc {
                ppc_badge(id)
            } else {
                1u64.checked_shl(id as u32).unwrap_or(0)
            };
            self.errs.push(BuildError::BadgeCollision {
                pd: name,
                badge: b,
                what: format!(
                    "{what} uses an id above {}, reserved for the PPC/fault flags",
                    sdf::MAX_ID
                ),
            });
        } else if let Some(prev) = table[pd as usize].insert(id, what.clone()) {
            let b = if ppc {
                ppc_badge(id)
            } else {
                notification_badge(id)
            };
            self.errs.push(BuildError::BadgeCollision {
                pd: name,
                badge: b,
                what: format!("{prev} and {what}"),
            });
        }
    }
}

pub(super) fn channels(cx: &mut Cx) {
    for (c, ch) in cx.sd.channels.iter().enumerate() {
        let mut ends = [m::ChannelEnd {
            pd: 0,
            id: 0,
            pp: false,
            notify: false,
        }; 2];
        let mut ok = true;
        for (k, e) in ch.ends.iter().enumerate() {
            match cx.index.get(e.pd.as_str()) {
                Some(&pd) => {
                    ends[k] = m::ChannelEnd {
                        pd,
                        id: e.id,
                        pp: e.pp,
                        notify: e.notify,
                    }
                }
                None => {
                    cx.errs.push(BuildError::Unknown {
                        what: "protection domain",
                        name: e.pd.clone(),
                    });
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        for k in 0..2 {
            let (me, peer) = (ends[k], ends[1 - k]);
            let what = format!(
                "channel {c} ({}:{} -> {}:{})",
                cx.all[me.pd as usize].name, me.id, cx.all[peer.pd as usize].name, peer.id
            );
            if me.notify {
                cx.badge(Badges::Notify, peer.pd, peer.id, what.clone());
                let cap = Cap::Notification {
                    pd: peer.pd,
                    badge: notification_badge(peer.id),
                };
                cx.put(me.pd as usize, notification_slot(me.id), cap, what.clone());
            }
            if me.pp {
                cx.badge(Badges::Ppc, peer.pd, peer.id, what.clone());
                let cap = Cap::PpcEndpoint {
                    pd: peer.pd,
                    badge: ppc_badge(peer.id),
                };
                cx.put(me.pd as usize, endpoint_slot(me.id), cap, what);
            }
        }
        push(
            &mut cx.plan.channels,
            m::Channel { ends },
            "channels",
            &mut cx.errs,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::format;

    use super::super::testing::*;
    use super::*;

    fn two(channels: &str) -> axolotl_sdf::SystemDescription {
        sd(&format!("{}{}{channels}", pd("a", ""), pd("b", "")))
    }

    #[test]
    fn each_end_gets_the_caps_its_flags_allow_badged_with_the_peer_s_id() {
        // b above a: a calls b.
        let sd = sd(&format!(
            "{}{}<channel><end pd=\"a\" id=\"3\" pp=\"true\" /><end pd=\"b\" id=\"5\" notify=\"false\" /></channel>",
            pd("a", ""),
            pd("b", "").replace("priority=\"100\"", "priority=\"101\"")
        ));
        let images = images_of(&sd);
        let mut cx = cx(&sd, &images);
        channels(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(cx.plan.channels.len(), 1);
        assert_eq!(
            cx.caps[0][&notification_slot(3)].0,
            Cap::Notification {
                pd: 1,
                badge: notification_badge(5)
            }
        );
        assert_eq!(
            cx.caps[0][&endpoint_slot(3)].0,
            Cap::PpcEndpoint {
                pd: 1,
                badge: ppc_badge(5)
            }
        );
        // b may not notify, nor call.
        assert!(cx.caps[1].is_empty());
        assert!(cx.notify_bits[0].is_empty());
        assert!(cx.notify_bits[1].contains_key(&5) && cx.ppc_ids[1].contains_key(&5));
    }

    #[test]
    fn a_receiver_s_bit_taken_twice_is_refused_naming_both_channels() {
        // a:0 -> b:1 and c:0 -> b:1 both arrive at b as bit 1.
        let sd = sd(&format!(
            "{}{}{}\
             <channel><end pd=\"a\" id=\"0\" /><end pd=\"b\" id=\"1\" /></channel>\
             <channel><end pd=\"c\" id=\"0\" /><end pd=\"b\" id=\"2\" /></channel>",
            pd("a", ""),
            pd("b", ""),
            pd("c", "")
        ));
        let mut sd = sd;
        sd.channels[1].ends[1].id = 1;
        let images = images_of(&sd);
        let mut cx = cx(&sd, &images);
        channels(&mut cx);
        assert_eq!(
            cx.errs,
            [
                BuildError::BadgeCollision {
                    pd: "b".into(),
                    badge: 1 << 1,
                    what: "channel 0 (a:0 -> b:1) and channel 1 (c:0 -> b:1)".into()
                },
                // b's end of channel 1 takes slot 11 again, for c's notification.
                BuildError::SlotCollision {
                    pd: "b".into(),
                    slot: notification_slot(1),
                    what: "channel 0 (b:1 -> a:0) and channel 1 (b:1 -> c:0)".into()
                },
            ]
        );
    }

    #[test]
    fn an_id_in_the_flag_bits_is_refused() {
        let mut sd = two("<channel><end pd=\"a\" id=\"0\" /><end pd=\"b\" id=\"1\" /></channel>");
        sd.channels[0].ends[1].id = 62;
        let images = images_of(&sd);
        let mut cx = cx(&sd, &images);
        channels(&mut cx);
        assert_eq!(
            cx.errs,
            [BuildError::BadgeCollision {
                pd: "b".into(),
                badge: 1 << 62,
                what:
                    "channel 0 (a:0 -> b:62) uses an id above 61, reserved for the PPC/fault flags"
                        .into()
            }]
        );
    }

    #[test]
    fn a_channel_to_an_unknown_pd_is_refused_and_left_out() {
        let mut sd = two("<channel><end pd=\"a\" id=\"0\" /><end pd=\"b\" id=\"1\" /></channel>");
        sd.channels[0].ends[0].pd = "nobody".into();
        let images = images_of(&sd);
        let mut cx = cx(&sd, &images);
        channels(&mut cx);
        assert_eq!(
            cx.errs,
            [BuildError::Unknown {
                what: "protection domain",
                name: "nobody".into()
            }]
        );
        assert!(cx.plan.channels.is_empty());
        assert!(cx.caps.iter().all(|c| c.is_empty()));
    }
}
