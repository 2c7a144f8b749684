//! VCPU invocations (seL4 `decodeARMVCPUInvocation`, `invokeVCPU*`): binding a thread,
//! list registers, EL1 registers, the virtual timer's acknowledgement.

use axolotl_abi::Invocation;
use axolotl_abi::vcpu::reg;
use axolotl_kernel_core::{Cap, SyscallError};

use super::{Decoded, Done, Msg, refuse};
use crate::arch::vcpu::{MAX_LRS, Vgic};
use crate::state::Kernel;
use crate::thread::TcbRef;
use crate::vcpu::{VMPIDR_RES1, Vcpu, sync, vgic};

/// The VMPIDR_EL2 fields a guest may be shown: Aff3, U, MT, Aff2..Aff0.
const VMPIDR_KEPT: u64 = 0xff_4100_0000 | 0xff_ffff;

pub enum VcpuOp {
    SetTcb(TcbRef),
    /// A list register's new value.
    InjectIrq {
        index: usize,
        lr: u64,
    },
    ReadReg(u64),
    WriteReg {
        index: u64,
        value: u64,
    },
    ReadExit,
    ReadLr(usize),
    ClearLr(usize),
    AckVppi,
}

/// A list register index (`reg::LR0 + n`) below the hardware's count, or None if `index`
/// names no list register.
fn check_lr(k: &Kernel, index: u64) -> Option<Decoded<usize>> {
    let n = index.checked_sub(reg::LR0)?;
    Some(if n < k.nr_lrs.min(MAX_LRS) as u64 {
        Ok(n as usize)
    } else {
        Err(refuse!(
            SyscallError::InvalidArgument { arg: 0 },
            "no such list register"
        ))
    })
}

/// A register index: one of `axolotl_abi::vcpu::reg`. TPIDR_EL0 lives in the bound thread's
/// context, so it needs one.
fn check_reg(v: *mut Vcpu, index: u64) -> Decoded<u64> {
    if index >= reg::COUNT {
        return Err(refuse!(
            SyscallError::InvalidArgument { arg: 0 },
            "no such VCPU register"
        ));
    }
    // SAFETY: v is live.
    if index == reg::TPIDR_EL0 && unsafe { (*v).tcb }.is_null() {
        return Err(refuse!(
            SyscallError::IllegalOperation,
            "TPIDR_EL0 of a VCPU without a thread"
        ));
    }
    Ok(index)
}

pub fn decode(k: &mut Kernel, m: &Msg, l: Invocation, v: *mut Vcpu) -> Decoded<VcpuOp> {
    let mr = |i| m.mr(i);
    Ok(match l {
        Invocation::VcpuSetTcb => {
            let (tcb, _) = m.extra_cap(0)?;
            let Cap::Tcb { ptr } = tcb else {
                return Err(refuse!(
                    SyscallError::InvalidCapability { arg: 1 },
                    "not a TCB"
                ));
            };
            VcpuOp::SetTcb(TcbRef::of_cap(ptr))
        }
        Invocation::VcpuInjectIrq => {
            m.need(4)?;
            decode_inject(k, v, mr(0), mr(1), mr(2), mr(3))?
        }
        Invocation::VcpuReadReg => {
            m.need(1)?;
            match check_lr(k, mr(0)) {
                Some(n) => VcpuOp::ReadLr(n?),
                None if mr(0) == reg::EXIT => VcpuOp::ReadExit,
                None => VcpuOp::ReadReg(check_reg(v, mr(0))?),
            }
        }
        Invocation::VcpuWriteReg => {
            m.need(2)?;
            if let Some(n) = check_lr(k, mr(0)) {
                let n = n?;
                // Only emptied: a value of the VMM's making could list a hardware interrupt
                // (HW=1) the guest would then deactivate at the physical GIC.
                if mr(1) != 0 {
                    return Err(refuse!(
                        SyscallError::InvalidArgument { arg: 1 },
                        "a list register is only written with 0"
                    ));
                }
                return Ok(VcpuOp::ClearLr(n));
            }
            VcpuOp::WriteReg {
                index: check_reg(v, mr(0))?,
                value: mr(1),
            }
        }
        Invocation::VcpuAckVppi => {
            m.need(1)?;
            if mr(0) != crate::BOARD.virt_timer_irq as u64 {
                return Err(refuse!(
                    SyscallError::InvalidArgument { arg: 0 },
                    "not the virtual timer's interrupt"
                ));
            }
            VcpuOp::AckVppi
        }
        _ => {
            return Err(refuse!(
                SyscallError::IllegalOperation,
                "not a VCPU invocation"
            ));
        }
    })
}

/// VcpuInjectIrq: virtual interrupt `virq` at `priority` in `group`, into list register
/// `index`, which must be free; the interrupt must be in no other list register.
fn decode_inject(
    k: &mut Kernel,
    v: *mut Vcpu,
    virq: u64,
    priority: u64,
    group: u64,
    index: u64,
) -> Decoded<VcpuOp> {
    if virq > 1019 {
        return Err(refuse!(
            SyscallError::RangeError { min: 0, max: 1019 },
            "interrupt id"
        ));
    }
    if priority > 255 {
        return Err(refuse!(
            SyscallError::RangeError { min: 0, max: 255 },
            "priority"
        ));
    }
    if group > 1 {
        return Err(refuse!(
            SyscallError::RangeError { min: 0, max: 1 },
            "group"
        ));
    }
    if index >= k.nr_lrs as u64 {
        return Err(refuse!(
            SyscallError::RangeError {
                min: 0,
                max: k.nr_lrs as u64 - 1,
            },
            "list register index"
        ));
    }
    // The list registers are read in memory, not in the CPU.
    sync(k, v);
    let g = vgic();
    // SAFETY: v is live.
    let lrs = unsafe { &(*v).vgic.lr };
    if g.lr_in_use(lrs[index as usize]) {
        return Err(refuse!(
            SyscallError::DeleteFirst,
            "the list register is in use"
        ));
    }
    // One interrupt in two list registers is UNPREDICTABLE in the GIC architecture.
    let vintid_mask = match g {
        Vgic::V2 { .. } => 0x3ff,
        Vgic::V3 => 0xffff_ffff,
    };
    if lrs[..k.nr_lrs.min(MAX_LRS)]
        .iter()
        .any(|&lr| g.lr_in_use(lr) && lr & vintid_mask == virq)
    {
        return Err(refuse!(
            SyscallError::IllegalOperation,
            "the interrupt is in another list register"
        ));
    }
    Ok(VcpuOp::InjectIrq {
        index: index as usize,
        lr: g.pending_lr(virq, priority, group == 1),
    })
}

pub fn perform(k: &mut Kernel, m: &Msg, v: *mut Vcpu, op: VcpuOp) -> Done {
    if let VcpuOp::SetTcb(t) = op {
        crate::vcpu::bind(k, v, t);
        return Done::Reply(0);
    }
    sync(k, v);
    let vp = v;
    // SAFETY: v is live, and no longer in the CPU; a bound thread is live.
    let v = unsafe { &mut *v };
    match op {
        VcpuOp::SetTcb(_) => {}
        VcpuOp::InjectIrq { index, lr } => {
            v.vgic.lr[index] = lr;
            // A pending interrupt: due for a guest that waits for one.
            crate::vcpu::end_wait(k, vp);
        }
        VcpuOp::ReadReg(index) => {
            let value = if index == reg::TPIDR_EL0 {
                // SAFETY: checked to be bound (check_reg); a bound thread is live.
                unsafe { TcbRef::new(v.tcb) }.ctx.tpidr
            } else {
                v.regs[index as usize]
            };
            m.mrs.set(0, value);
            return Done::Reply(1);
        }
        VcpuOp::WriteReg { index, value } => {
            if index == reg::TPIDR_EL0 {
                // SAFETY: as for ReadReg.
                unsafe { TcbRef::new(v.tcb) }.ctx.tpidr = value;
            } else if index == reg::VMPIDR_EL2 {
                // The registers act on the guest alone, so any value is accepted; VMPIDR_EL2
                // keeps its architectural fields.
                v.regs[index as usize] = value & VMPIDR_KEPT | VMPIDR_RES1;
            } else {
                v.regs[index as usize] = value;
            }
        }
        VcpuOp::ReadExit => {
            // SAFETY: a bound thread is live.
            let waiting = !v.tcb.is_null() && unsafe { (*v.tcb).fault.is_some() };
            m.mrs
                .set(0, v.exits | if waiting { reg::EXIT_PENDING } else { 0 });
            return Done::Reply(1);
        }
        VcpuOp::ReadLr(n) => {
            m.mrs.set(0, v.vgic.lr[n]);
            return Done::Reply(1);
        }
        VcpuOp::ClearLr(n) => v.vgic.lr[n] = 0,
        VcpuOp::AckVppi => {
            v.vppi_masked = false;
            // Its timer may be asserted still (then it fires once loaded) or armed anew: the
            // deadline the wait was computed without.
            crate::vcpu::end_wait(k, vp);
        }
    }
    Done::Reply(0)
}
