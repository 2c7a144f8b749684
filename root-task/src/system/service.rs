//! After start-up the root task serves its endpoint: the monitor's requests (restarts — it
//! holds every original capability and the pristine images, the monitor only the right to
//! ask —, its timer, its journal), the monitor's faults and heartbeats, and the timer, with
//! which it restarts a monitor that failed or hung. Without a monitor it reports parentless
//! PDs' faults and leaves them stopped.

use axolotl_abi::{BADGE_FAULT, HEARTBEAT, MessageInfo};
use axolotl_boot_plan::root_service;
use axolotl_monitor_core::{Cause, Decision, Tracker, log};
use axolotl_sys::ipc::{get_mr, set_mr};
use axolotl_sys::println;

use super::System;
use super::build::{REFRESHER_FAULT_BADGE, ROOT_SERVICE_BADGE};
use super::clock::ROOT_TIMER_BADGE;

/// What a fault message says happened.
fn cause_of(m: &axolotl_sys::Msg) -> Cause {
    let mut words = [0; 16];
    let n = (m.info.length() as usize).min(words.len());
    for (i, w) in words.iter_mut().enumerate().take(n) {
        *w = if i < 4 { m.mrs[i] } else { get_mr(i) };
    }
    Cause::from_fault(m.label(), &words[..n])
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
    if let Some(c) = &sys.clock {
        c.rearm();
        let _ = c.irq.ack();
    }
    loop {
        let m = match reply.take() {
            Some((info, mrs)) => axolotl_sys::reply_recv(sys.service.0, info, mrs),
            None => axolotl_sys::recv(sys.service.0),
        };
        if m.badge == ROOT_TIMER_BADGE {
            on_timer(sys, &mut monitor);
            continue;
        }
        if m.badge == ROOT_SERVICE_BADGE {
            reply = Some(request(sys, &m));
            continue;
        }
        if m.badge == REFRESHER_FAULT_BADGE {
            // Left stopped: the standby it held stays `Refreshing`, so that PD restarts in
            // place from now on.
            let cause = cause_of(&m);
            println!("root-task: the standby refresher failed ({cause}); restarts go in place");
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
        if sys.plan.monitor == Some(pd as u8) {
            if m.label() == HEARTBEAT {
                // A Send: nothing to reply to.
                if let Some(c) = sys.clock.as_mut() {
                    c.answered(now_us() / 1000);
                    c.rearm();
                }
                continue;
            }
            recover_monitor(sys, &mut monitor, pd, cause_of(&m));
        } else {
            let cause = cause_of(&m);
            println!("root-task: PD {name} faulted ({cause}); left stopped");
        }
    }
}

/// The timer fired: the monitor's wake-up, its pings, and restarting it if it hung.
fn on_timer(sys: &mut System, monitor: &mut Tracker) {
    let Some(c) = sys.clock.as_mut() else {
        return;
    };
    let hung = c.fired(now_us() / 1000, axolotl_sys::time::counter());
    let pd = c.monitor as usize;
    if let Some(heartbeat_ms) = hung {
        recover_monitor(sys, monitor, pd, Cause::Hang { heartbeat_ms });
    }
    if let Some(c) = &sys.clock {
        c.rearm();
        if let Err(e) = c.irq.ack() {
            println!("root-task: timer IRQ ack failed: {e:?}");
        }
    }
}

/// Restarts the monitor (PD `pd`) after `cause`, or holds it past its limit. Its state is
/// rebuilt from the plan and its journal when it starts again; faults that reach its
/// endpoint meanwhile wait there for it.
fn recover_monitor(sys: &mut System, monitor: &mut Tracker, pd: usize, cause: Cause) {
    let name = sys.plan.pds[pd].name.as_str();
    let start = now_us();
    if let Some(c) = sys.clock.as_mut() {
        c.pause();
    }
    match monitor.on_failure(start / 1000, cause) {
        Decision::RestartAt { generation, .. } => match sys.restart(pd, generation as u64) {
            Ok((g, _)) => {
                let done = now_us();
                monitor.on_restarted(done / 1000);
                if let Some(c) = sys.clock.as_mut() {
                    c.restarted(done / 1000);
                }
                println!(
                    "root-task: {}",
                    log::restarted(name, &cause, g as u32, done - start, log::How::InPlace)
                );
            }
            Err(e) => println!("root-task: restarting the monitor failed: {e}"),
        },
        Decision::Hold { reason } => println!("root-task: {}", log::holding(name, &reason)),
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
    // The monitor's PDs: parentless (a child is its parent's to manage), not the monitor.
    let user_pd = |pd: u64| {
        sys.plan
            .pds
            .get(pd as usize)
            .is_some_and(|p| p.parent.is_none())
            && sys.plan.monitor != Some(pd as u8)
    };
    match m.label() {
        root_service::RESTART => {
            let (pd, generation) = (m.mrs[0] as usize, m.mrs[1]);
            if !user_pd(pd as u64) {
                return refuse(root_service::BAD_PD);
            }
            let mut buf = [0u8; root_service::RECORD_BYTES];
            let Some(record) = record_of(m, &mut buf) else {
                return refuse(root_service::FAILED);
            };
            match sys.restart(pd, generation) {
                Ok((g, how)) => {
                    if !record.is_empty() {
                        sys.journal.keep(pd, record);
                    }
                    (MessageInfo::new(0, 0, 0, 2), [g, how.word(), 0, 0])
                }
                Err(e) => {
                    println!("root-task: restart of PD {pd} failed: {e}");
                    refuse(root_service::FAILED)
                }
            }
        }
        root_service::STOP => {
            let pd = m.mrs[0];
            if !user_pd(pd) {
                return refuse(root_service::BAD_PD);
            }
            match sys.pds[pd as usize].tcb.suspend() {
                Ok(()) => (ok, [0; 4]),
                Err(e) => {
                    println!("root-task: stopping PD {pd} failed: {e:?}");
                    refuse(root_service::FAILED)
                }
            }
        }
        root_service::SET_TIMER => {
            if let Some(c) = sys.clock.as_mut() {
                c.set_wake(m.mrs[0]);
                c.rearm();
            }
            (ok, [0; 4])
        }
        root_service::RECORD => {
            let pd = m.mrs[0];
            if !user_pd(pd) {
                return refuse(root_service::BAD_PD);
            }
            let mut buf = [0u8; root_service::RECORD_BYTES];
            let Some(record) = record_of(m, &mut buf) else {
                return refuse(root_service::FAILED);
            };
            sys.journal.keep(pd as usize, record);
            (ok, [0; 4])
        }
        root_service::RECALL => {
            let pd = m.mrs[0];
            if !user_pd(pd) {
                return refuse(root_service::BAD_PD);
            }
            let (Some(bytes), Some(generation)) =
                (sys.journal.get(pd as usize), sys.generation(pd as usize))
            else {
                return refuse(root_service::BAD_PD);
            };
            let words = root_service::words_for(bytes.len());
            let first = root_service::RECORD_LEN_MR + 1;
            for i in 4..words {
                set_mr(i, root_service::word_of(bytes, i - first));
            }
            (
                MessageInfo::new(0, 0, 0, words as u64),
                [
                    generation,
                    0,
                    bytes.len() as u64,
                    root_service::word_of(bytes, 0),
                ],
            )
        }
        _ => refuse(root_service::UNKNOWN),
    }
}

/// The record `m` carries (`root_service::RECORD_LEN_MR`), unpacked into `buf`; `None` if
/// its length is impossible.
fn record_of<'b>(
    m: &axolotl_sys::Msg,
    buf: &'b mut [u8; root_service::RECORD_BYTES],
) -> Option<&'b [u8]> {
    let len = m.mrs[root_service::RECORD_LEN_MR] as usize;
    if len > buf.len() || (m.info.length() as usize) < root_service::words_for(len) {
        return None;
    }
    let first = root_service::RECORD_LEN_MR + 1;
    root_service::unpack(&mut buf[..len], |i| {
        let k = first + i;
        if k < 4 { m.mrs[k] } else { get_mr(k) }
    });
    Some(&buf[..len])
}

/// Microseconds of the virtual counter (EL0 may read it).
pub fn now_us() -> u64 {
    axolotl_sys::time::now_ns() / 1000
}
