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

#[cfg(test)]
mod tests {
    use std::format;

    use super::super::testing::*;
    use super::super::{maps, regions};
    use super::*;
    use crate::BuildError;

    fn system() -> axolotl_sdf::SystemDescription {
        sd(&format!(
            "{}{}<memory_region name=\"ram\" size=\"0x200000\" page_size=\"0x200000\" />",
            pd("a", ""),
            pd(
                "vmm",
                "<virtual_machine name=\"linux\" priority=\"90\"><vcpu id=\"0\" /><vcpu id=\"1\" />\
                 <map mr=\"ram\" vaddr=\"0x40000000\" perms=\"rwx\" /></virtual_machine>"
            )
        ))
    }

    #[test]
    fn a_vm_s_vcpus_caps_and_objects() {
        let mut sd = system();
        // The board has one core (`check` refuses more); the plan still carries the field.
        sd.protection_domains[1]
            .virtual_machine
            .as_mut()
            .unwrap()
            .vcpus[1]
            .cpu = 1;
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        regions::regions(&mut cx);
        maps::maps(&mut cx);
        vms(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(cx.work[0].vm, None);
        assert_eq!(cx.work[1].vm, Some(0));
        let vm = &cx.plan.vms[0];
        assert_eq!((vm.name.as_str(), vm.priority), ("linux", 90));
        assert_eq!(vm.mappings, cx.work[1].vm_maps);
        assert_eq!(vm.vcpus, m::Span { start: 0, len: 2 });
        assert_eq!(cx.plan.vcpus[1].cpu, 1);
        assert_eq!(cx.caps[1][&vm_tcb_slot(1)].0, Cap::VmTcb { vcpu: 1 });
        assert_eq!(cx.caps[1][&vcpu_slot(0)].0, Cap::Vcpu { vcpu: 0 });
        let t = cx.work[1].totals;
        assert_eq!((t.vspaces, t.tcbs, t.vcpus), (1, 2, 2));
        assert_eq!(t.page_tables, cx.work[1].vm_page_tables);
    }

    #[test]
    fn a_vcpu_slot_taken_twice_is_refused() {
        let mut sd = system();
        let vm = sd.protection_domains[1].virtual_machine.as_mut().unwrap();
        vm.vcpus[1].id = 0;
        let elfs = images_of(&sd);
        let mut cx = cx(&sd, &elfs);
        vms(&mut cx);
        let twice = |slot, what: &str| BuildError::SlotCollision {
            pd: "vmm".into(),
            slot,
            what: what.into(),
        };
        assert_eq!(
            cx.errs,
            [
                twice(vm_tcb_slot(0), "vCPU 0 TCB and vCPU 0 TCB"),
                twice(vcpu_slot(0), "vCPU 0 and vCPU 0")
            ]
        );
    }
}
