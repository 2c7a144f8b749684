//! Interrupt invocations (seL4 `decodeIRQControlInvocation`, `decodeIRQHandlerInvocation`):
//! IrqControl issues a handler cap per interrupt; a handler binds a notification, acks and
//! clears. What the kernel remembers per interrupt is in `state.rs` (the IRQ node).

use axolotl_abi::{Invocation, Rights, TIMEOUT_IRQ};
use axolotl_kernel_core::cspace::lookup_slot_for_cnode_op;
use axolotl_kernel_core::derive::derive_cap;
use axolotl_kernel_core::{Cap, SlotRef, SyscallError};

use super::{Decoded, Done, Msg, refuse};
use crate::kobj::clear_irq_binding;
use axolotl_kernel_config::IrqRefusal;

use crate::state::{IRQ_NODE, Kernel, MAX_IRQS};

pub enum IrqOp {
    /// A handler cap for `irq` into the empty `dest`, a child of IRQ control in `control`.
    Get {
        irq: u32,
        edge: bool,
        control: SlotRef,
        dest: SlotRef,
    },
    /// `derived` (from the notification cap in `src`) becomes `irq`'s binding.
    SetNotification {
        irq: u32,
        src: SlotRef,
        derived: Cap,
    },
    Ack(u32),
    Clear(u32),
    /// The kernel timeout's deadline (0: none).
    SetDeadline(u64),
}

/// The kernel timeout is no GIC line: the EL2 timer that carries it is the kernel's tick,
/// which no handler may mask, unmask or disable.
const _: () = assert!(crate::BOARD.hyp_timer_irq == TIMEOUT_IRQ);

fn is_gic_line(irq: u32) -> bool {
    irq != TIMEOUT_IRQ
}

pub fn decode(k: &Kernel, m: &Msg, l: Invocation, cap: Cap, cap_slot: SlotRef) -> Decoded<IrqOp> {
    let mr = |i| m.mr(i);
    Ok(match (l, cap) {
        (Invocation::IrqControlGet, Cap::IrqControl) => {
            m.need(4)?;
            let irq = mr(0);
            let range = SyscallError::RangeError {
                min: 32,
                max: MAX_IRQS as u64 - 1,
            };
            // One rule with `check` (kernel-config's `Board::user_irq_refusal`): SPIs and the
            // EL1 physical timer, never the kernel's own. The console's interrupt is an SPI
            // the kernel keeps, as seL4 reserves its timer's: no handler, whoever asks.
            // ... and the kernel timeout, served by the kernel's timer beside its tick.
            let refusal = u32::try_from(irq).ok().map(|n| {
                (n != TIMEOUT_IRQ)
                    .then(|| crate::BOARD.user_irq_refusal(n))
                    .flatten()
            });
            match refusal {
                None | Some(Some(IrqRefusal::NotSpi(..) | IrqRefusal::Beyond(_))) => {
                    return Err(refuse!(range, "not an SPI nor the EL1 physical timer"));
                }
                Some(Some(IrqRefusal::KernelOwned(n, _))) if n < 32 => {
                    return Err(refuse!(range, "not an SPI nor the EL1 physical timer"));
                }
                Some(Some(IrqRefusal::KernelOwned(..))) => {
                    return Err(refuse!(
                        SyscallError::RevokeFirst,
                        "the interrupt is the kernel's"
                    ));
                }
                Some(None) => {}
            }
            if k.irq_claimed[irq as usize] {
                return Err(refuse!(
                    SyscallError::RevokeFirst,
                    "the interrupt has a handler already"
                ));
            }
            let (root, _) = m.extra_cap(0)?;
            let dest = lookup_slot_for_cnode_op(false, root, mr(2), mr(3))?;
            if !dest.cap().is_null() {
                return Err(refuse!(
                    SyscallError::DeleteFirst,
                    "the destination slot is occupied"
                ));
            }
            IrqOp::Get {
                irq: irq as u32,
                edge: mr(1) == 1,
                control: cap_slot,
                dest,
            }
        }
        (Invocation::IrqHandlerSetNotification, Cap::IrqHandler { irq }) => {
            let (n, src) = m.extra_cap(0)?;
            let Cap::Notification { rights, .. } = n else {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "not a notification"
                ));
            };
            if !rights.contains(Rights::WRITE) {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "the notification cap cannot signal"
                ));
            }
            IrqOp::SetNotification {
                irq,
                src,
                derived: derive_cap(src, n)?,
            }
        }
        (Invocation::IrqHandlerSetDeadline, Cap::IrqHandler { irq }) => {
            if irq != TIMEOUT_IRQ {
                return Err(refuse!(
                    SyscallError::IllegalOperation,
                    "a deadline is set on the kernel timeout's handler only"
                ));
            }
            m.need(1)?;
            IrqOp::SetDeadline(mr(0))
        }
        (Invocation::IrqHandlerAck, Cap::IrqHandler { irq }) => IrqOp::Ack(irq),
        (Invocation::IrqHandlerClear, Cap::IrqHandler { irq }) => IrqOp::Clear(irq),
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "not an invocation of this interrupt cap"
            ));
        }
    })
}

pub fn perform(k: &mut Kernel, op: IrqOp) -> Done {
    match op {
        IrqOp::Get {
            irq,
            edge,
            control,
            dest,
        } => {
            // SAFETY: an IRQ handler cap derives from IRQ control.
            unsafe {
                axolotl_kernel_core::mdb::insert_copy(control, dest, Cap::IrqHandler { irq })
            };
            k.irq_claimed[irq as usize] = true;
            k.irq_edge[irq as usize] = edge;
        }
        IrqOp::SetNotification { irq, src, derived } => {
            // seL4 `invokeIRQHandler_SetIRQHandler`: replace the IRQ node's cap by a copy
            // of this one, an MDB child/sibling of it (docs/security.md).
            clear_irq_binding(k, irq);
            // SAFETY: `derived` comes from the cap in `src`; the slot was just emptied.
            unsafe { axolotl_kernel_core::mdb::insert_copy(src, IRQ_NODE.slot(irq), derived) };
            let edge = k.irq_edge[irq as usize];
            if let Some(g) = k.gic.as_mut().filter(|_| is_gic_line(irq)) {
                g.enable(irq, !edge);
            }
        }
        IrqOp::Ack(irq) => {
            if let Some(g) = k.gic.as_mut().filter(|_| is_gic_line(irq)) {
                g.unmask(irq);
            }
        }
        IrqOp::Clear(irq) => {
            clear_irq_binding(k, irq);
            if irq == TIMEOUT_IRQ {
                k.timeout = None;
            }
            if let Some(g) = k.gic.as_mut().filter(|_| is_gic_line(irq)) {
                g.disable(irq);
            }
        }
        IrqOp::SetDeadline(at) => {
            k.timeout = (at != 0).then_some(at);
            crate::vcpu::arm_timer(k);
        }
    }
    Done::Reply(0)
}
