//! The console report of a user fault that no handler takes: a thread without a fault
//! endpoint is stopped (`trap::stop_thread`) after this report says what happened, and the
//! kernel goes on. A thread with one sends the fault there instead (`ipc::send_fault`).

use crate::arch::context::UserContext;
use crate::arch::cpu;
use crate::kprintln;
use crate::thread::Tcb;
use axolotl_abi::syndrome::{Esr, ec, fault_ipa};

/// Prints the decoded fault: class, syndrome, addresses, registers.
pub fn report(t: &Tcb, esr: Esr, what: &str) {
    let c = &t.ctx;
    kprintln!(
        "kernel: FAULT in thread '{}' (id {}): {}",
        t.name(),
        t.id,
        what
    );
    kprintln!("kernel:   ESR {:#010x}: {}", esr.0, esr);
    if esr.is_abort() {
        let far = cpu::read_far();
        let ipa = fault_ipa(cpu::read_hpfar(), far);
        kprintln!("kernel:   FAR {:#x} (IPA {:#x})", far, ipa);
    }
    kprintln!(
        "kernel:   ELR (pc) {:#x}  SP {:#x}  SPSR {:#x}",
        c.elr,
        c.sp,
        c.spsr
    );
    dump_registers(c);
}

pub fn dump_registers(c: &UserContext) {
    for row in 0..8 {
        let mut line = [0u64; 4];
        let n = if row == 7 { 3 } else { 4 };
        line[..n].copy_from_slice(&c.x[row * 4..row * 4 + n]);
        match n {
            4 => kprintln!(
                "kernel:   x{:<2} {:#018x}  x{:<2} {:#018x}  x{:<2} {:#018x}  x{:<2} {:#018x}",
                row * 4,
                line[0],
                row * 4 + 1,
                line[1],
                row * 4 + 2,
                line[2],
                row * 4 + 3,
                line[3]
            ),
            _ => kprintln!(
                "kernel:   x{:<2} {:#018x}  x{:<2} {:#018x}  x{:<2} {:#018x}",
                row * 4,
                line[0],
                row * 4 + 1,
                line[1],
                row * 4 + 2,
                line[2]
            ),
        }
    }
}

/// A short name for the fault kind, as the report's last line gives it.
pub fn kind(esr: Esr) -> &'static str {
    match esr.ec() {
        ec::DABT_LOWER | ec::IABT_LOWER => "VM fault",
        ec::SVC64 => "unknown syscall",
        _ => "user exception",
    }
}
