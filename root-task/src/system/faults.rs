//! Until monitor-pd exists (issue #5) the root task is the fault handler of every parentless
//! PD: it reports each fault with the PD's name and leaves the PD stopped (no reply).

use axolotl_abi::{BADGE_FAULT, FaultLabel};
use axolotl_sys::ipc::get_mr;
use axolotl_sys::println;

use super::System;

pub fn serve(sys: &mut System) -> ! {
    loop {
        let m = axolotl_sys::recv(sys.fault_ep.0);
        let pd = (m.badge & !BADGE_FAULT) as usize;
        let name = match sys.plan.pds.get(pd) {
            Some(p) if m.badge & BADGE_FAULT != 0 => p.name.as_str(),
            _ => "?",
        };
        let w = |i: usize| if i < 4 { m.mrs[i] } else { get_mr(i) };
        match FaultLabel::from_label(m.label()) {
            Some(FaultLabel::VmFault) => println!(
                "root-task: PD {name} faulted: VM fault at {:#x}, ip {:#x}, fsr {:#x}; left stopped",
                w(1),
                w(0),
                w(3)
            ),
            Some(FaultLabel::UserException) => println!(
                "root-task: PD {name} faulted: user exception (EC {:#x}) at ip {:#x}; left stopped",
                w(3),
                w(0)
            ),
            Some(l) => println!("root-task: PD {name} faulted: {l:?}; left stopped"),
            None => println!(
                "root-task: unexpected message (label {}) on the fault endpoint",
                m.label()
            ),
        }
    }
}
