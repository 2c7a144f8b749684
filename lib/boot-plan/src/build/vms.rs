//! Pass: each PD's virtual machine: its vCPUs (and their TCB and vCPU caps in the PD), the
//! objects they take, and its `vms` entry with the guest-physical maps `maps` laid out.

use std::format;

use crate::model as m;

use super::{Cx, push, span, string};
use crate::cspace::{vcpu_slot, vm_tcb_slot};
use crate::model::Cap;

pub(super) fn vms(cx: &mut Cx) {
    for i in 0..cx.all.len() {
        let pd = cx.all[i];
        let Some(vm) = &pd.virtual_machine else {
            continue;
        };
        let start = cx.plan.vcpus.len() as u16;
        for v in &vm.vcpus {
            let k = push(
                &mut cx.plan.vcpus,
                m::Vcpu {
                    id: v.id,
                    cpu: v.cpu,
                },
                "vCPUs",
                &mut cx.errs,
            ) as u8;
            cx.put(
                i,
                vm_tcb_slot(v.id),
                Cap::VmTcb { vcpu: k },
                format!("vCPU {} TCB", v.id),
            );
            cx.put(
                i,
                vcpu_slot(v.id),
                Cap::Vcpu { vcpu: k },
                format!("vCPU {}", v.id),
            );
        }
        let w = &mut cx.work[i];
        w.totals.vspaces += 1;
        w.totals.tcbs += vm.vcpus.len() as u64;
        w.totals.vcpus += vm.vcpus.len() as u64;
        w.totals.page_tables += w.vm_page_tables;
        let v = m::Vm {
            name: string(&vm.name, "name bytes", &mut cx.errs),
            priority: vm.priority,
            budget_us: vm.budget,
            period_us: vm.period,
            mappings: w.vm_maps,
            vcpus: span(start, cx.plan.vcpus.len() as u16),
        };
        w.vm = Some(push(&mut cx.plan.vms, v, "virtual machines", &mut cx.errs) as u8);
    }
}
