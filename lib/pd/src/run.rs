//! The receive loop and panic reporting (target only).
//!
//! As in Microkit, handlers read and write message registers in the IPC buffer
//! (`axolotl_sys::ipc::{get_mr, set_mr}`); the loop moves MR0..3 between the buffer and the
//! registers the syscall carries them in.

use axolotl_abi::MessageInfo;
use axolotl_boot_plan::cspace::{INPUT_CAP, MONITOR_EP};
use axolotl_sys::ipc::{get_mr, set_mr};

use crate::{Event, Handler};

/// Runs a PD: `init`, then events forever. A PPC or fault reply goes out together with the
/// next receive (ReplyRecv). The monitor's heartbeat ping is answered before anything else
/// (a `HEARTBEAT` Send on the fault endpoint) and never reaches the handler.
pub fn run<H: Handler>(mut h: H) -> ! {
    h.init();
    let mut reply: Option<MessageInfo> = None;
    loop {
        let m = match reply.take() {
            Some(info) => axolotl_sys::reply_recv(INPUT_CAP, info, core::array::from_fn(get_mr)),
            None => axolotl_sys::recv(INPUT_CAP),
        };
        for (i, v) in m.mrs.iter().enumerate() {
            set_mr(i, *v);
        }
        let (ping, badge) = Event::split_ping(m.badge);
        if ping {
            // The monitor's heartbeat: answering proves this loop still turns.
            axolotl_sys::send(
                MONITOR_EP,
                MessageInfo::new(axolotl_abi::HEARTBEAT, 0, 0, 0),
                [0; 4],
            );
        }
        reply = match Event::decode(badge, m.info) {
            Event::Notified { channels } => {
                Event::channels(channels).for_each(|ch| h.notified(ch));
                None
            }
            Event::Protected { ch, msg } => Some(h.protected(ch, msg)),
            Event::Fault { child, msg } => h.fault(child, msg),
        };
        // After the events that came with the ping, and only when no reply waits in the IPC
        // buffer's message registers (the hook may make calls that use them): a ping that
        // came with a PPC or a fault leaves the check to the next one.
        if ping && reply.is_none() {
            h.heartbeat();
        }
    }
}

/// Prints a PD's panic and raises a user exception, so its fault handler (the monitor)
/// learns of it: a panic is never silent. For the PD's `#[panic_handler]`.
pub fn report_panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(at) => axolotl_sys::println!(
            "PD PANIC in {}: {} at {}:{}",
            crate::name(),
            info.message(),
            at.file(),
            at.line()
        ),
        None => axolotl_sys::println!("PD PANIC in {}: {}", crate::name(), info.message()),
    }
    // SAFETY: a permanently undefined instruction: the kernel turns it into a fault message.
    unsafe { core::arch::asm!("udf #0x50d", options(noreturn)) }
}
