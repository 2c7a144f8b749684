use axolotl_abi::{BADGE_FAULT, BADGE_PPC, MessageInfo};

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
