use axolotl_abi::{BADGE_FAULT, BADGE_PPC, HEARTBEAT_PING, MessageInfo};

use crate::channel::{Channel, Child};

/// What a receive on a PD's input endpoint delivered, told apart by the badge as Microkit
/// does: bit 63 a protected call, bit 62 a fault of a child, otherwise a bit mask of the
/// notification channels that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Protected { ch: Channel, msg: MessageInfo },
    Fault { child: Child, msg: MessageInfo },
    Notified { channels: u64 },
}

/// Channel ids are 0..=61: bits 62 and 63 of a badge are the event kind.
const ID_MASK: u64 = (1 << 62) - 1;

impl Event {
    pub fn decode(badge: u64, msg: MessageInfo) -> Event {
        if badge & BADGE_PPC != 0 {
            Event::Protected {
                ch: Channel::new((badge & 0x3f) as u8),
                msg,
            }
        } else if badge & BADGE_FAULT != 0 {
            Event::Fault {
                child: Child::new((badge & 0x3f) as u8),
                msg,
            }
        } else {
            Event::Notified {
                channels: badge & ID_MASK,
            }
        }
    }

    /// Splits the monitor's heartbeat ping off a received badge: whether it was pinged, and
    /// the badge without it (only a notification word carries both kind bits).
    pub fn split_ping(badge: u64) -> (bool, u64) {
        if badge & HEARTBEAT_PING == HEARTBEAT_PING {
            (true, badge & !HEARTBEAT_PING)
        } else {
            (false, badge)
        }
    }

    /// The channels of a notification event, lowest id first.
    pub fn channels(mask: u64) -> impl Iterator<Item = Channel> {
        (0..62u8)
            .filter(move |i| mask & (1 << i) != 0)
            .map(Channel::new)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use axolotl_boot_plan::cspace::{child_fault_badge, notification_badge, ppc_badge};
    use std::vec::Vec;

    #[test]
    fn badges_from_the_boot_plan_decode_to_their_events() {
        let m = MessageInfo::new(3, 0, 0, 1);
        assert_eq!(
            Event::decode(ppc_badge(7), m),
            Event::Protected {
                ch: Channel::new(7),
                msg: m
            }
        );
        assert_eq!(
            Event::decode(child_fault_badge(2), m),
            Event::Fault {
                child: Child::new(2),
                msg: m
            }
        );
        let mask = notification_badge(0) | notification_badge(5) | notification_badge(61);
        assert_eq!(Event::decode(mask, m), Event::Notified { channels: mask });
        let ids: Vec<u8> = Event::channels(mask).map(|c| c.id()).collect();
        assert_eq!(ids, [0, 5, 61]);
    }

    #[test]
    fn a_ping_is_split_off_and_leaves_the_channels() {
        let m = MessageInfo::default();
        let (ping, rest) = Event::split_ping(HEARTBEAT_PING | notification_badge(3));
        assert!(ping);
        assert_eq!(
            Event::decode(rest, m),
            Event::Notified {
                channels: notification_badge(3)
            }
        );
        assert_eq!(Event::split_ping(HEARTBEAT_PING), (true, 0));
        // Endpoint badges carry one kind bit: never a ping.
        assert_eq!(Event::split_ping(ppc_badge(61)), (false, ppc_badge(61)));
        assert_eq!(
            Event::split_ping(child_fault_badge(61)),
            (false, child_fault_badge(61))
        );
        assert_eq!(Event::split_ping(0x3f), (false, 0x3f));
    }

    #[test]
    fn kind_bits_never_leak_into_channel_sets() {
        let Event::Notified { channels } =
            Event::decode(!BADGE_PPC & !BADGE_FAULT, MessageInfo::default())
        else {
            panic!("not a notification")
        };
        assert_eq!(Event::channels(channels).count(), 62);
        assert_eq!(Event::channels(0).count(), 0);
    }
}
