mod common;

use axolotl_abi::BADGE_PPC;
use axolotl_boot_plan::cspace::*;
use axolotl_boot_plan::{Cap, DependantLink, RestartPolicy, SetvarValue, build, decode, encode};
use common::*;

#[test]
fn hello_slots_and_badges_follow_microkit() {
    let plan = build(&hello(), &hello_images()).unwrap();
    let (s, server) = plan.pd_by_name("hello_server").unwrap();
    let (c, client) = plan.pd_by_name("hello_client").unwrap();
    let (l, logger) = plan.pd_by_name("hello_logger").unwrap();
    assert_eq!((s, c, l), (0, 1, 2));
    for pd in [server, client, logger] {
        assert_eq!(plan.cap_at(pd, 1), Some(Cap::InputEndpoint));
        assert_eq!(plan.cap_at(pd, 4), Some(Cap::Reply));
    }
    assert_eq!(
        plan.cap_at(client, 5),
        Some(Cap::FaultEndpoint {
            parent: None,
            badge: (1 << 62) | 1
        })
    );
    // client:0 pp -> server:0; both ends notify by default.
    assert_eq!(
        plan.cap_at(client, 74),
        Some(Cap::PpcEndpoint {
            pd: 0,
            badge: BADGE_PPC
        })
    );
    assert_eq!(
        plan.cap_at(client, 10),
        Some(Cap::Notification { pd: 0, badge: 1 })
    );
    assert_eq!(
        plan.cap_at(server, 10),
        Some(Cap::Notification { pd: 1, badge: 1 })
    );
    assert_eq!(plan.cap_at(server, 74), None);
    // client:1 <-> logger:0, server:1 <-> logger:1: badge bit = id at the receiver.
    assert_eq!(
        plan.cap_at(client, 11),
        Some(Cap::Notification {
            pd: 2,
            badge: 1 << 0
        })
    );
    assert_eq!(
        plan.cap_at(server, 11),
        Some(Cap::Notification {
            pd: 2,
            badge: 1 << 1
        })
    );
    assert_eq!(
        plan.cap_at(logger, 10),
        Some(Cap::Notification {
            pd: 1,
            badge: 1 << 1
        })
    );
    assert_eq!(
        plan.cap_at(logger, 11),
        Some(Cap::Notification {
            pd: 0,
            badge: 1 << 1
        })
    );
    assert_eq!(plan.caps_of(client).len(), 7);
    assert_eq!(plan.caps_of(server).len(), 6);
    assert_eq!(plan.caps_of(logger).len(), 6);
    let slots: Vec<u16> = plan.caps_of(client).iter().map(|c| c.slot).collect();
    assert_eq!(slots, [1, 3, 4, 5, 10, 11, 74]);
    // Every PD holds its own VSpace (cache maintenance by its own addresses).
    for pd in [client, server, logger] {
        assert_eq!(plan.cap_at(pd, VSPACE_CAP), Some(Cap::OwnVSpace));
    }
}

#[test]
fn hello_pds_carry_the_sdf_and_image_facts() {
    let plan = build(&hello(), &hello_images()).unwrap();
    let (_, client) = plan.pd_by_name("hello_client").unwrap();
    assert_eq!(client.priority, 100);
    assert_eq!(client.entry, 0x20_0010);
    assert_eq!(plan.images[client.image as usize].name, "hello-client.elf");
    assert_eq!(plan.mappings_of(client).len(), 1);
    assert_eq!(plan.mappings_of(client)[0].vaddr, 0x200_0000);
    assert_eq!(
        plan.regions[plan.mappings_of(client)[0].region as usize].name,
        "log_ring"
    );
    let sv = plan.setvars_of(client);
    assert_eq!(sv.len(), 1);
    assert_eq!(
        (sv[0].vaddr, sv[0].value),
        (0x20_2008, SetvarValue::Value(0x200_0000))
    );
    assert_eq!(client.resilience.restart, RestartPolicy::OnFailure);
    assert_eq!(plan.depends_of(client), [0, 2]);
    let (_, server) = plan.pd_by_name("hello_server").unwrap();
    assert!(server.passive);
    assert_eq!(server.resilience.restart_limit, 3);
    let (_, logger) = plan.pd_by_name("hello_logger").unwrap();
    assert_eq!(logger.resilience.heartbeat_ms, Some(200));
    assert_eq!(plan.channels.len(), 3);
    assert!(plan.channels[0].ends[0].pp);
}

#[test]
fn the_pd_index_symbol_is_patched_with_the_index_plus_one() {
    let mut images = hello_images();
    for img in &mut images {
        img.symbols
            .insert("__axolotl_pd_index".into(), (0x20_2020, 8));
    }
    let plan = build(&hello(), &images).unwrap();
    for (i, pd) in plan.pds.iter().enumerate() {
        let sv = plan.setvars_of(pd);
        assert!(
            sv.contains(&axolotl_boot_plan::Setvar {
                vaddr: 0x20_2020,
                value: SetvarValue::Value(i as u64 + 1)
            }),
            "{}: {sv:?}",
            pd.name
        );
    }
    // Without the symbol (a PD not on lib/pd's runtime), nothing is patched.
    let plan = build(&hello(), &hello_images()).unwrap();
    let (_, server) = plan.pd_by_name("hello_server").unwrap();
    assert!(plan.setvars_of(server).is_empty());
}

#[test]
fn totals_count_frames_tables_and_objects() {
    let plan = build(&hello(), &hello_images()).unwrap();
    let (_, logger) = plan.pd_by_name("hello_logger").unwrap();
    // image: 3 pages (0x20_0000..0x20_3000), stack 2, IPC buffer 1.
    assert_eq!(logger.totals.small_frames, 6);
    // L2s: GiB 0 (image, log_ring) and GiB 3 (stack below 4 GiB, IPC buffer at 0xe000_1000);
    // L3s: the 2 MiB blocks at 0x20_0000, 0x200_0000, 0xe000_0000 and 0xffe0_0000.
    assert_eq!(logger.totals.page_tables, 2 + 4);
    assert_eq!(plan.totals.tcbs, 3);
    assert_eq!(plan.totals.cnodes, 3);
    // 3 PDs x 6 frames + log_ring's 4 + the generation table's 1.
    assert_eq!(plan.totals.small_frames, 3 * 6 + 4 + 1);
    assert!(plan.totals.bytes() >= plan.totals.small_frames * 4096 + 3 * (1 << 14));
}

#[test]
fn postcard_round_trip() {
    let plan = build(&hello(), &hello_images()).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let used = encode(&plan, &mut buf).unwrap().len();
    assert!(used < 4096, "{used} bytes");
    let back = decode(&buf[..used]).unwrap();
    assert_eq!(back, plan);
    assert!(decode(&buf[..used / 2]).is_err());
}

#[test]
fn summary_lists_pds_regions_and_channels() {
    let plan = build(&hello(), &hello_images()).unwrap();
    let s = plan.summary();
    for needle in [
        "hello_server",
        "hello_client",
        "hello_logger",
        "log_ring",
        "hello_client:0 --pp--> hello_server:0",
        "on-failure",
        "untyped needed",
    ] {
        assert!(s.contains(needle), "{needle} missing from\n{s}");
    }
}

#[test]
fn constants_are_microkit_s() {
    assert_eq!((INPUT_CAP, REPLY_CAP, MONITOR_EP), (1, 4, 5));
    assert_eq!(notification_slot(3), 13);
    assert_eq!(endpoint_slot(3), 77);
    assert_eq!(irq_slot(3), 141);
    assert_eq!(child_tcb_slot(3), 205);
    assert_eq!(vm_tcb_slot(3), 269);
    assert_eq!(vcpu_slot(3), 333);
    assert_eq!(ppc_badge(5), (1 << 63) | 5);
    assert_eq!(notification_badge(5), 32);
}

/// `text` built with the monitor, each PD's image a one-page program at the given path.
fn with_monitor(
    text: &str,
    images: &[&str],
) -> Result<axolotl_boot_plan::BootPlan, Vec<axolotl_boot_plan::BuildError>> {
    let board = &axolotl_kernel_config::BOARDS[0];
    let sd = axolotl_sdf::parse("t.system", text, board).unwrap();
    let img = |path: &str| {
        let bytes = elf(0x20_0000, &[(0x20_0000, 0x1000, RX)], &[]);
        axolotl_boot_plan::ElfInfo::from_bytes(path, &bytes).unwrap()
    };
    let images: Vec<_> = images.iter().map(|p| img(p)).collect();
    axolotl_boot_plan::build_with_monitor(&sd, &images, &img("mon.elf"))
}

#[test]
fn cnode_cap_gives_a_pd_its_own_cnode_and_the_monitor_comes_last() {
    let text = r#"<system>
        <protection_domain name="manager" priority="10" cnode_cap="true">
            <program_image path="m.elf" />
        </protection_domain>
        <protection_domain name="plain" priority="10" heartbeat_ms="50">
            <program_image path="p.elf" />
        </protection_domain>
    </system>"#;
    let plan = with_monitor(text, &["m.elf", "p.elf"]).unwrap();
    let (_, m) = plan.pd_by_name("manager").unwrap();
    let (_, p) = plan.pd_by_name("plain").unwrap();
    assert_eq!(plan.cap_at(m, OWN_CNODE_CAP), Some(Cap::OwnCNode));
    assert_eq!(plan.cap_at(p, OWN_CNODE_CAP), None);
    // The monitor: last, the fault handler of both, with the root service cap.
    assert_eq!(plan.monitor, Some(2));
    let mon = &plan.pds[2];
    assert_eq!(plan.cap_at(mon, ROOT_SERVICE_CAP), Some(Cap::RootService));
    // No IRQ: its timer channel is signalled by the root task, which owns the timer.
    assert!(mon.irqs.of(&plan.irqs).is_empty());
    assert_eq!(
        plan.cap_at(mon, axolotl_boot_plan::cspace::irq_slot(0)),
        None
    );
    // A heartbeat ping cap to the watched PD only, and its caps in slot order.
    assert!(plan.watched(1) && !plan.watched(0) && !plan.watched(2));
    assert_eq!(
        plan.cap_at(mon, axolotl_boot_plan::cspace::heartbeat_ping_slot(1)),
        Some(Cap::Notification {
            pd: 1,
            badge: axolotl_abi::HEARTBEAT_PING
        })
    );
    assert_eq!(
        plan.cap_at(mon, axolotl_boot_plan::cspace::heartbeat_ping_slot(0)),
        None
    );
    let slots: Vec<u16> = plan.caps_of(mon).iter().map(|c| c.slot).collect();
    assert!(slots.is_sorted(), "{slots:?}");
    assert_eq!(
        plan.cap_at(p, MONITOR_EP),
        Some(Cap::FaultEndpoint {
            parent: None,
            badge: monitor_fault_badge(1)
        })
    );
    // A user PD may not take the monitor's name.
    let clash = text.replace("\"plain\"", "\"monitor\"");
    let errs = with_monitor(&clash, &["m.elf", "p.elf"]).unwrap_err();
    assert!(
        errs.iter().any(|e| e.to_string().contains("reserved-name")),
        "{errs:?}"
    );
}

#[test]
fn dependants_with_a_channel_are_told_and_start_after_their_dependencies() {
    let text = r#"<system>
        <protection_domain name="client" priority="10" depends_on="driver, logger">
            <program_image path="c.elf" />
        </protection_domain>
        <protection_domain name="logger" priority="10" depends_on="driver">
            <program_image path="l.elf" />
        </protection_domain>
        <protection_domain name="driver" priority="10" restart="always">
            <program_image path="d.elf" />
        </protection_domain>
        <channel><end pd="driver" id="3" /><end pd="client" id="5" /></channel>
        <channel><end pd="logger" id="2" /><end pd="driver" id="4" /></channel>
    </system>"#;
    let plan = with_monitor(text, &["c.elf", "l.elf", "d.elf"]).unwrap();
    // client depends on driver (channel: its id 5) and logger (no channel: nothing to
    // signal); logger on driver (its id 2).
    let links: Vec<_> = plan.dependant_links().collect();
    let link = |k, dependant, dependency, id| DependantLink {
        k,
        dependant,
        dependency,
        id,
    };
    assert_eq!(links, [link(0, 0, 2, 5), link(1, 1, 2, 2)]);
    let mon = &plan.pds[plan.monitor.unwrap() as usize];
    assert_eq!(
        plan.cap_at(mon, dependant_signal_slot(0)),
        Some(Cap::Notification {
            pd: 0,
            badge: notification_badge(5)
        })
    );
    assert_eq!(
        plan.cap_at(mon, dependant_signal_slot(1)),
        Some(Cap::Notification {
            pd: 1,
            badge: notification_badge(2)
        })
    );
    assert_eq!(plan.cap_at(mon, dependant_signal_slot(2)), None);
    let slots: Vec<u16> = plan.caps_of(mon).iter().map(|c| c.slot).collect();
    assert!(slots.is_sorted(), "{slots:?}");
    // driver first, then logger, then client; the monitor (no dependencies) by index.
    assert_eq!(plan.start_order().as_slice(), [2, 1, 0, 3]);
}

/// Issue #20, then #19: a PD (or a VM's vCPUs) at the monitor's priority would share its
/// round-robin queue, so a fault or report would wait for that PD's timeslice. The monitor
/// now sits above every priority the SDF allows, where Microkit's does, so a Microkit file
/// at 254 (its `hello` example) builds and still runs below the monitor.
#[test]
fn the_monitor_is_above_every_pd_even_at_254() {
    let text = r#"<system>
        <protection_domain name="high" priority="254">
            <program_image path="h.elf" />
            <virtual_machine name="vm" priority="254">
                <vcpu id="0" />
            </virtual_machine>
        </protection_domain>
    </system>"#;
    let plan = with_monitor(text, &["h.elf"]).expect("a PD at 254 builds");
    let mon = plan.monitor.expect("a monitor") as usize;
    assert_eq!(plan.pds[mon].priority, 255);
    assert!(
        plan.pds
            .iter()
            .enumerate()
            .all(|(i, p)| i == mon || p.priority < 255)
    );
    assert!(plan.vms.iter().all(|v| v.priority < plan.pds[mon].priority));
}

/// Issue #20: no cap a PD gets carries Grant (a PD could push caps into the monitor's or a
/// peer's CSpace), and none to another's endpoint or notification carries Read (it could take
/// the calls, faults or signals meant for the owner). Checked on every cap of the plan with
/// the monitor, which holds the root service and ping caps.
#[test]
fn no_pd_cap_grants_or_reads_what_it_only_calls() {
    use axolotl_abi::Rights;
    let images = hello_images();
    let monitor = images[0].clone();
    let mut monitor = monitor;
    monitor.path = "monitor-pd.elf".into();
    let mut sd = hello();
    sd.protection_domains[0].resilience.heartbeat_ms = Some(100);
    let plan = axolotl_boot_plan::build_with_monitor(&sd, &images, &monitor).unwrap();
    let mut seen = 0;
    for pd in &plan.pds {
        for cs in plan.caps_of(pd) {
            let r = cs.cap.rights();
            let ipc = matches!(
                cs.cap,
                Cap::InputEndpoint
                    | Cap::FaultEndpoint { .. }
                    | Cap::PpcEndpoint { .. }
                    | Cap::RootService
                    | Cap::Notification { .. }
            );
            if ipc {
                seen += 1;
                assert!(!r.contains(Rights::GRANT), "{cs:?} of {}", pd.name);
            }
            if ipc && cs.cap != Cap::InputEndpoint {
                assert!(!r.contains(Rights::READ), "{cs:?} of {}", pd.name);
                assert!(r.contains(Rights::WRITE), "{cs:?} of {}", pd.name);
            }
        }
    }
    assert!(seen >= 12, "only {seen} endpoint and notification caps");
    assert_eq!(Cap::InputEndpoint.rights(), Rights::READ);
    let call = Rights::WRITE.union(Rights::GRANT_REPLY);
    assert_eq!(Cap::PpcEndpoint { pd: 0, badge: 0 }.rights(), call);
    assert_eq!(Cap::RootService.rights(), call);
}
