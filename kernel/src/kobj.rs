//! The kernel's side of object creation and destruction, called by `axolotl-kernel-core`.

use axolotl_abi::ObjectType;
use axolotl_kernel_core::Cap;
use axolotl_kernel_core::delete::{Finalise, Finalised};
use axolotl_kernel_core::untyped::ObjectInit;

use crate::ipc;
use crate::state::Kernel;
use crate::thread::{Tcb, TcbRef, slot};

pub struct Kobj<'a>(pub &'a mut Kernel);

/// Kernel-core hands us memory of an untyped that no live object uses.
fn zero(addr: u64, len: u64) {
    crate::arch::cpu::zero(addr, len);
}

impl ObjectInit for Kobj<'_> {
    fn reset_untyped(&mut self, base: u64, used: u64, is_device: bool) {
        if !is_device {
            zero(base, used);
        }
    }

    fn init_object(&mut self, ty: ObjectType, addr: u64, size_bits: u32, is_device: bool) {
        if is_device {
            return;
        }
        // An untyped child is not cleared (seL4 neither): every object made from it is
        // cleared when it is made, and the root task carves RAM at fixed addresses by
        // retyping the gap below them into untypeds of up to a GiB, which are left unused.
        if ty != ObjectType::CNode && ty != ObjectType::Untyped {
            zero(addr, 1 << size_bits);
        }
        if ty == ObjectType::Vcpu {
            // SAFETY: a zeroed VCPU object.
            unsafe { crate::vcpu::Vcpu::init_object(addr) };
        }
        if ty == ObjectType::Tcb {
            self.0.next_thread_id += 1;
            // SAFETY: a zeroed TCB object.
            unsafe { Tcb::init_object(addr, self.0.next_thread_id) };
        }
    }
}

impl Finalise for Kobj<'_> {
    fn finalise(&mut self, cap: &Cap, is_final: bool) -> Finalised {
        let k = &mut *self.0;
        match *cap {
            Cap::Endpoint { ptr, .. } if is_final => ipc::cancel_all_endpoint(k, ptr),
            Cap::Notification { ptr, .. } if is_final => ipc::cancel_all_notification(k, ptr),
            Cap::Tcb { ptr } if is_final => {
                // Live until its slots are emptied.
                let mut t = TcbRef::of_cap(ptr);
                crate::invoke::tcb::suspend(k, t);
                if !t.vcpu.is_null() {
                    crate::vcpu::dissociate(k, t.vcpu);
                }
                if t.bound_ntfn != 0 {
                    // SAFETY: a bound notification is live while bound.
                    unsafe { crate::notification::Notification::at(t.bound_ntfn) }
                        .set_bound(core::ptr::null_mut());
                    t.bound_ntfn = 0;
                }
                if k.fpu_owner == t.ptr() {
                    k.fpu_owner = core::ptr::null_mut();
                }
                if k.sched.current == t.ptr() {
                    k.sched.current = core::ptr::null_mut();
                }
                return Finalised::Slots { count: slot::COUNT };
            }
            Cap::Vcpu { ptr } if is_final => {
                // SAFETY: a live VCPU object being finalised.
                crate::vcpu::dissociate(k, unsafe { crate::vcpu::Vcpu::at(ptr) });
            }
            Cap::Reply { tcb, .. } => {
                let mut caller = TcbRef::of_reply_cap(tcb);
                if !caller.reply_holder.is_null() {
                    caller.reply_holder = core::ptr::null_mut();
                }
            }
            // A frame's mapping belongs to each cap; a table's to all its copies (seL4).
            Cap::Frame { .. } => crate::vspace::unmap(k, *cap),
            Cap::PageTable { ptr, mapped } if is_final => {
                crate::vspace::unmap(k, *cap);
                // Its memory is free once this returns; no entry of it stays reachable
                // even if it could not be unlinked (its VSpace already gone).
                if mapped.is_some() {
                    crate::vspace::clear_table(ptr);
                }
            }
            // A freed VMID leaves no TLB entry behind and is not taken for installed, so
            // whichever VSpace gets it next starts clean (seL4 invalidates by VMID;
            // TLBI ALLE1IS is all VMIDs at once, the kernel has no cheaper per-VMID form
            // without loading that VMID first).
            Cap::VSpace {
                ptr,
                asid: Some(asid),
            } if is_final && k.asids.free_asid(asid, ptr) => {
                k.vspace.forget(asid);
                crate::vspace::flush_tlb();
            }
            Cap::AsidPool { base } if is_final => {
                let loaded = &mut k.vspace;
                k.asids.free_pool(base, |a, _| loaded.forget(a));
                crate::vspace::flush_tlb();
            }
            Cap::IrqHandler { irq } if is_final => {
                if irq == axolotl_abi::TIMEOUT_IRQ {
                    // The kernel's own timer carries it: nothing to disable, the deadline goes.
                    k.timeout = None;
                } else if let Some(g) = k.gic.as_mut() {
                    g.disable(irq);
                }
                // seL4 `deletingIRQHandler`: the binding goes with the handler, so it no
                // longer keeps the notification alive.
                clear_irq_binding(k, irq);
                k.irq_claimed[irq as usize % crate::state::MAX_IRQS] = false;
            }
            _ => {}
        }
        Finalised::Done
    }

    /// seL4's preemption point: a pending interrupt stops a long delete or revoke, which the
    /// caller's restarted call continues (`invoke/cnode.rs`, `invoke/tcb.rs`).
    fn should_preempt(&mut self) -> bool {
        crate::arch::cpu::irq_pending()
    }
}

/// Deletes the notification cap in interrupt `irq`'s IRQ-node slot (seL4 `cteDeleteOne`):
/// a notification cap finalises at once (no zombie), so the loop ends in one step.
pub fn clear_irq_binding(k: &mut Kernel, irq: u32) {
    let s = crate::state::IRQ_NODE.slot(irq);
    while axolotl_kernel_core::delete(s, &mut Kobj(k)).is_err() {}
}
