//! The runtime every protection domain is written against: seL4 Microkit's model in Rust.
//!
//! A PD is a single-threaded event handler whose entry points never nest: [`Handler::init`]
//! once, then [`Handler::notified`] for each notification channel that fired,
//! [`Handler::protected`] for a protected procedure call (PPC) from a lower-priority PD, and
//! [`Handler::fault`] when a child PD faults. Capabilities sit in the slots the boot plan
//! gives every PD (`axolotl_boot_plan::cspace`, Microkit's numbering), so PD code names
//! channels by id, never by capability address.
//!
//! Event decoding ([`Event::decode`]) is pure and host-tested; the receive loop ([`run`])
//! and the channel operations exist only on the target.

#![no_std]

mod channel;
mod event;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod run;

pub use channel::{Channel, Child};
pub use event::Event;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use run::{report_panic, run};

pub use axolotl_abi::MessageInfo;

/// A protection domain's code.
pub trait Handler {
    /// Called once before any event.
    fn init(&mut self) {}

    /// A notification arrived on `ch` (one call per channel, lowest id first).
    fn notified(&mut self, ch: Channel);

    /// A protected procedure call on `ch`; the returned message is the reply. PDs that
    /// serve no PPC keep the default, which answers with an error label.
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        let _ = (ch, msg);
        MessageInfo::new(axolotl_abi::Error::IllegalOperation as u64, 0, 0, 0)
    }

    /// Child `child` faulted with message `msg` (a fault label and its words). Returning a
    /// message replies to the fault and resumes the child; `None` leaves it stopped.
    fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        let _ = (child, msg);
        None
    }
}
