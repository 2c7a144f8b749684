//! After start-up the root task serves two kinds of message on its endpoint: the monitor's
//! restart requests (it holds every original capability and the pristine images, the monitor
//! holds only the right to ask) and faults of the monitor itself, which it restarts. Without
//! a monitor it reports parentless PDs' faults and leaves them stopped.

use axolotl_abi::{BADGE_FAULT, MessageInfo};
use axolotl_boot_plan::root_service;
use axolotl_monitor_core::{Cause, Decision, Tracker, log};
use axolotl_sys::ipc::get_mr;
use axolotl_sys::println;

use super::System;
use super::build::ROOT_SERVICE_BADGE;

fn fault_words(m: &axolotl_sys::Msg, out: &mut [u64; 16]) -> usize {
    let n = (m.info.length() as usize).min(out.len());
    for (i, w) in out.iter_mut().enumerate().take(n) {
        *w = if i < 4 { m.mrs[i] } else { get_mr(i) };
    }
    n
}

pub fn serve(sys: &mut System) -> ! {
    // The monitor's own policy: always restarted, but a monitor that keeps failing (a bad
    // image, a plan it cannot read) is held after 5 restarts within 10 s, not looped.
    let policy = axolotl_boot_plan::Resilience {
        restart: axolotl_boot_plan::RestartPolicy::Always,
        restart_limit: 5,
        restart_window_ms: 10_000,
        ..Default::default()
    };
    let mut monitor = Tracker::new(&policy, now_us() / 1000);
    let mut reply: Option<(MessageInfo, [u64; 4])> = None;
    loop {
        let m = match reply.take() {
            Some((info, mrs)) => axolotl_sys::reply_recv(sys.service.0, info, mrs),
            None => axolotl_sys::recv(sys.service.0),
        };
        if m.badge == ROOT_SERVICE_BADGE {
            reply = Some(request(sys, &m));
            continue;
        }
        let pd = (m.badge & !BADGE_FAULT) as usize;
        let name = match sys.plan.pds.get(pd) {
            Some(p) if m.badge & BADGE_FAULT != 0 => p.name.as_str(),
            _ => {
                println!("root-task: unexpected message (badge {:#x})", m.badge);
                continue;
            }
        };
        let mut words = [0; 16];
        let n = fault_words(&m, &mut words);
        let cause = Cause::from_fault(m.label(), &words[..n]);
        if sys.plan.monitor == Some(pd as u8) {
            // The monitor's state is rebuilt from the plan when it starts again; the faults
            // that reached its endpoint meanwhile wait there for it.
            let start = now_us();
            match monitor.on_failure(start / 1000, cause) {
                Decision::RestartAt { generation, .. } => {
                    match sys.restart(pd, generation as u64) {
                        Ok(g) => {
                            monitor.on_restarted(now_us() / 1000);
                            println!(
                                "root-task: {}",
                                log::restarted(name, &cause, g as u32, now_us() - start)
                            );
                        }
                        Err(e) => println!("root-task: restarting the monitor failed: {e}"),
                    }
                }
                Decision::Hold { reason } => {
                    println!("root-task: {}", log::holding(name, &reason))
                }
            }
        } else {
            println!("root-task: PD {name} faulted ({cause}); left stopped");
        }
    }
}

/// A request of the monitor.
fn request(sys: &mut System, m: &axolotl_sys::Msg) -> (MessageInfo, [u64; 4]) {
    let ok = MessageInfo::new(0, 0, 0, 1);
    let refuse = |why: u64| {
        (
            MessageInfo::new(root_service::REFUSED, 0, 0, 1),
            [why, 0, 0, 0],
        )
    };
    match m.label() {
        root_service::RESTART => {
            let (pd, generation) = (m.mrs[0] as usize, m.mrs[1]);
            if pd >= sys.plan.pds.len() || sys.plan.monitor == Some(pd as u8) {
                return refuse(root_service::BAD_PD);
            }
            match sys.restart(pd, generation) {
                Ok(g) => (ok, [g, 0, 0, 0]),
                Err(e) => {
                    println!("root-task: restart of PD {pd} failed: {e}");
                    refuse(root_service::FAILED)
                }
            }
        }
        _ => refuse(root_service::UNKNOWN),
    }
}

/// Microseconds of the virtual counter (EL0 may read it).
pub fn now_us() -> u64 {
    axolotl_sys::time::now_ns() / 1000
}
