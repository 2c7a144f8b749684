//! The monitor: a PD every system gets without naming it in the SDF (as Microkit's monitor),
//! the fault handler of every parentless PD. The builder adds it last, so user PDs keep their
//! plan indices; the root task is the monitor's own fault handler and restart service.

use std::string::ToString;
use std::vec::Vec;

use axolotl_sdf as sdf;
use axolotl_sdf::SystemDescription;

use crate::cspace::{
    MAX_DEPENDANT_LINKS, ROOT_SERVICE_CAP, dependant_signal_slot, heartbeat_ping_slot,
};
use crate::model::{BootPlan, Cap, CapSlot};
use crate::{BuildError, ElfInfo};

/// Reserved PD name.
pub const MONITOR_NAME: &str = "monitor";
/// Microkit's monitor's place: 255, above every PD and VM the SDF may give (0..=254, so a
/// Microkit system at 254 keeps it), and a fault is handled before the faulting PD's peers
/// run again. It shares the level with the root task's main thread, which runs only to serve
/// the monitor's requests and its own timer interrupt (its standby refresher runs low), so
/// neither waits out the other's timeslice.
pub const MONITOR_PRIORITY: u8 = 255;
const _: () = assert!(MONITOR_PRIORITY as u64 > axolotl_sdf::MAX_PRIORITY);
/// The monitor decodes the plan (up to `PLAN_SIZE_LIMIT`, moved a few times) on its stack.
pub const MONITOR_STACK: u64 = 0x10_0000;
/// [`crate::build`] with the monitor added, running `monitor`'s image.
pub fn build_with_monitor(
    sd: &SystemDescription,
    images: &[ElfInfo],
    monitor: &ElfInfo,
) -> Result<BootPlan, Vec<BuildError>> {
    if let Some(pd) = sd.all_pds().iter().find(|p| p.name == MONITOR_NAME) {
        return Err(std::vec![BuildError::Sdf(sdf::Diagnostic::error(
            &sd.file,
            pd.span,
            "reserved-name",
            "`monitor` is the name of the PD axolotl adds to every system",
        ))]);
    }
    let mut sd = sd.clone();
    sd.protection_domains.push(sdf::ProtectionDomain {
        name: MONITOR_NAME.to_string(),
        priority: MONITOR_PRIORITY,
        budget: sdf::defaults::BUDGET_US,
        period: sdf::defaults::BUDGET_US,
        passive: false,
        stack_size: MONITOR_STACK,
        cpu: 0,
        smc: false,
        fpu: true,
        cnode_cap: false,
        control: Default::default(),
        id: None,
        setvar_id: None,
        // Domain 0, with the root task (docs/ARCHITECTURE.md, "Scheduling domains").
        domain: None,
        program_image: sdf::ProgramImage {
            path: monitor.path.clone(),
            path_for_symbols: None,
            span: Default::default(),
        },
        maps: Vec::new(),
        // Its timer is the root task's (channel `MONITOR_TIMER_ID`, signalled by the root
        // task): the one thread that could watch a wedged monitor must own the clock.
        irqs: Vec::new(),
        setvars: Vec::new(),
        children: Vec::new(),
        virtual_machine: None,
        resilience: Default::default(),
        span: Default::default(),
    });
    let mut all = images.to_vec();
    all.push(monitor.clone());
    let mut plan = crate::build(&sd, &all)?;
    let m = plan.pds.len() - 1;
    plan.monitor = Some(m as u8);
    // The monitor has no channels: its caps are the last in the table. Besides those of
    // every PD (input, reply, fault endpoint): the root service, a heartbeat ping cap per
    // watched PD and a signal cap per dependant link, all kept in slot order.
    let full = || {
        std::vec![BuildError::Capacity {
            what: "capabilities",
            limit: crate::MAX_CAPS
        }]
    };
    let start = plan.pds[m].caps.start as usize;
    let mut caps: Vec<CapSlot> = plan.caps[start..].to_vec();
    caps.push(CapSlot {
        slot: ROOT_SERVICE_CAP as u16,
        cap: Cap::RootService,
    });
    for pd in (0..m).filter(|&pd| plan.watched(pd)) {
        caps.push(CapSlot {
            slot: heartbeat_ping_slot(pd as u8) as u16,
            cap: Cap::Notification {
                pd: pd as u8,
                badge: axolotl_abi::HEARTBEAT_PING,
            },
        });
    }
    // A signal cap per dependant link, to tell a PD that one it depends on restarted.
    let links: Vec<_> = plan.dependant_links().collect();
    if links.len() > MAX_DEPENDANT_LINKS {
        return Err(std::vec![BuildError::Capacity {
            what: "depends_on links with a channel (the monitor's caps to tell them)",
            limit: MAX_DEPENDANT_LINKS,
        }]);
    }
    for l in links {
        caps.push(CapSlot {
            slot: dependant_signal_slot(l.k) as u16,
            cap: Cap::Notification {
                pd: l.dependant,
                badge: crate::cspace::notification_badge(l.id),
            },
        });
    }
    caps.sort_by_key(|c| c.slot);
    plan.caps.truncate(start);
    for c in &caps {
        plan.caps.push(*c).map_err(|_| full())?;
    }
    plan.pds[m].caps.len = caps.len() as u16;
    Ok(plan)
}
