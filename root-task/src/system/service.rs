//! After start-up the root task serves its endpoint: the monitor's requests (restarts — it
//! holds every original capability and the pristine images, the monitor only the right to
//! ask —, its timer, its journal), the monitor's faults and heartbeats, and the timer, with
//! which it restarts a monitor that failed or hung. Without a monitor it reports parentless
//! PDs' faults and leaves them stopped.

use axolotl_abi::{BADGE_FAULT, HEARTBEAT};
use axolotl_monitor_core::{Cause, Decision, Tracker, log};
use axolotl_root_service::journal::Staged;
use axolotl_root_service::{Reason, Received, Reply, Request, Sent};
use axolotl_sys::ipc::{get_mr, msg_words};
use axolotl_sys::println;
use axolotl_sys::time::now_us;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use axolotl_abi::Rights;
use axolotl_abi::bootinfo::init_cap;
use axolotl_sys::alloc::ROOT_DEPTH;
use axolotl_sys::{CNode, Frame, VSpace, vm_attr};

use super::System;
use super::build::{Error, REFRESHER_FAULT_BADGE, ROOT_SERVICE_BADGE, Step, pages};
use super::clock::ROOT_TIMER_BADGE;
use super::image::PAGE;
use super::vspace;

/// What a fault message says happened: its first words came in registers, the rest are in
/// our IPC buffer.
fn cause_of(m: &axolotl_sys::Msg) -> Cause {
    Cause::from_message(m.info, |i| {
        m.mrs.get(i).copied().unwrap_or_else(|| get_mr(i))
    })
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
    let mut reply: Option<Sent> = None;
    if let Some(c) = &sys.clock {
        c.rearm();
    }
    loop {
        let m = match reply.take() {
            Some(r) => axolotl_sys::reply_recv(sys.service.0, r.info, r.regs),
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
    let now_ms = now_us() / 1000;
    let hung = c.fired(now_ms, axolotl_sys::time::counter());
    let pd = c.monitor as usize;
    if let Some(heartbeat_ms) = hung {
        recover_monitor(sys, monitor, pd, Cause::Hang { heartbeat_ms });
    } else if let Some(at) = scrub_monitor(sys, pd, now_ms) {
        recover_monitor(sys, monitor, pd, Cause::CodeCorrupt { at });
    }
    if let Some(c) = &sys.clock {
        c.rearm();
    }
}

/// When the monitor's code is compared with its image next (ms; 0: at the first timer event).
static NEXT_MONITOR_SCRUB_MS: AtomicU64 = AtomicU64::new(0);
/// How often: the monitor scrubs the PDs' code (docs/monitor.md, "Code scrubbing"), and the
/// root task, which watches the monitor, scrubs the monitor's, at the pace of a round.
const MONITOR_SCRUB_MS: u64 = 2000;

/// Code scrubbing of the monitor, at most every `MONITOR_SCRUB_MS` (at the monitor's ping
/// timer events): the page of its running code that differs from its image, if one does.
fn scrub_monitor(sys: &System, pd: usize, now_ms: u64) -> Option<u64> {
    if now_ms < NEXT_MONITOR_SCRUB_MS.load(Ordering::Relaxed) {
        return None;
    }
    NEXT_MONITOR_SCRUB_MS.store(now_ms + MONITOR_SCRUB_MS, Ordering::Relaxed);
    let span = sys.page_spans.get(pd)?.clone();
    let r = sys.sources().and_then(|src| {
        src.first_corrupt_code(&sys.plan.pds[pd], pages().get(span).unwrap_or(&[]))
    });
    match r {
        Ok(at) => at,
        Err(e) => {
            println!("root-task: scrubbing the monitor failed: {e}");
            None
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
        Decision::RestartAt { generation, .. } => match sys.restart(pd, generation as u64, false) {
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

/// A request of the monitor, checked (a monitor gone wrong sends what it likes) and served:
/// the registers of our reply, whose other words are already in our IPC buffer.
fn request(sys: &mut System, m: &axolotl_sys::Msg) -> Sent {
    // SAFETY: our IPC buffer is mapped for our lifetime, and this view of it ends, once the
    // record is staged, before the invocations that serve the request.
    let ipc = unsafe { msg_words() };
    let req = match Request::decode(Received {
        info: m.info,
        regs: m.mrs,
        ipc,
    }) {
        // The record leaves the IPC buffer before those invocations overwrite it.
        Ok(req) => req.map_record(|r| sys.journal.stage(r)),
        Err(e) => return Sent::refused(e.reason()),
    };
    let reply = serve_request(sys, req);
    // SAFETY: as above; no system call until the reply is sent.
    reply
        .encode(unsafe { msg_words() })
        .unwrap_or(Sent::refused(Reason::Failed))
}

fn serve_request(sys: &mut System, r: Request<Option<Staged>>) -> Reply<&[u8]> {
    // The monitor's PDs: parentless (a child is its parent's to manage), not the monitor.
    let user_pd = |pd: u8| {
        sys.plan
            .pds
            .get(pd as usize)
            .is_some_and(|p| p.parent.is_none())
            && sys.plan.monitor != Some(pd)
    };
    match r {
        Request::Restart {
            pd,
            generation,
            fresh,
            record,
        } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            let Some(record) = record else {
                return Reply::Refused(Reason::Failed);
            };
            match sys.restart(pd as usize, generation, fresh) {
                Ok((generation, how)) => {
                    if !record.is_empty() {
                        sys.journal.commit(pd as usize, record);
                    }
                    Reply::Restarted { generation, how }
                }
                Err(e) => {
                    println!("root-task: restart of PD {pd} failed: {e}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::Stop { pd } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match sys.pds[pd as usize].tcb.suspend() {
                Ok(()) => Reply::Done,
                Err(e) => {
                    println!("root-task: stopping PD {pd} failed: {e:?}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::Crash { pd } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match crash(sys.pds[pd as usize].tcb) {
                Ok(()) => Reply::Done,
                Err(e) => {
                    println!("root-task: crashing PD {pd} failed: {e:?}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::StopVm { pd } => {
            let vm = sys.plan.pds.get(pd as usize).and_then(|p| p.vm);
            let (true, Some(vm)) = (user_pd(pd), vm) else {
                return Reply::Refused(Reason::BadPd);
            };
            match sys.stop_vm(pd as usize, vm) {
                Ok(()) => Reply::Done,
                Err(e) => {
                    println!("root-task: stopping the VM of PD {pd} failed: {e}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::FlipBit { pd, register, bit } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match flip_bit(sys.pds[pd as usize].tcb, register, bit) {
                Ok(()) => Reply::Done,
                Err(e) => {
                    println!("root-task: flipping a bit of PD {pd} failed: {e:?}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::WildWrite { pd, seed } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match wild_write(sys, pd as usize, seed) {
                Some((at, old, new)) => Reply::Wrote { at, old, new },
                None => {
                    println!("root-task: PD {pd} has no writable page for a wild write");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::Scrub { pd } => {
            let (Some(p), Some(span)) = (
                sys.plan.pds.get(pd as usize),
                sys.page_spans.get(pd as usize).cloned(),
            ) else {
                return Reply::Refused(Reason::BadPd);
            };
            match sys
                .sources()
                .and_then(|src| src.first_corrupt_code(p, pages().get(span).unwrap_or(&[])))
            {
                Ok(at) => Reply::Scrubbed {
                    corrupt_at: at.unwrap_or(0),
                },
                Err(e) => {
                    println!("root-task: scrubbing PD {pd} failed: {e}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::CpuTime { pd } => {
            // Any PD of the plan, the monitor and children too: a reading, no action.
            let (Some(p), Some(caps)) = (sys.plan.pds.get(pd as usize), sys.pds.get(pd as usize))
            else {
                return Reply::Refused(Reason::BadPd);
            };
            // A kernel without `cpu-time` refuses every reading: said by the refusal alone,
            // not on the console at every `ctl status`.
            let Ok(own) = caps.tcb.cpu_time() else {
                return Reply::Refused(Reason::Failed);
            };
            let guest = sys
                .vcpus
                .iter()
                .filter(|v| Some(v.vm) == p.vm)
                .filter_map(|v| v.tcb.cpu_time().ok())
                .map(|c| c.thread)
                .sum();
            Reply::CpuTime {
                pd_cycles: own.thread,
                guest_cycles: guest,
                now: own.now,
            }
        }
        Request::FlipCode { pd, seed } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match flip_code(sys, pd as usize, seed) {
                Some((at, old, new)) => Reply::Wrote { at, old, new },
                None => {
                    println!("root-task: PD {pd} has no code page for a code flip");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::CorruptRing { pd, region, offset } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match corrupt_ring(sys, pd as usize, region as usize, offset) {
                Ok((old, new)) => Reply::Wrote {
                    at: offset as u64,
                    old: old as u64,
                    new: new as u64,
                },
                Err(e) => {
                    println!("root-task: corrupting a ring of PD {pd} failed: {e}");
                    Reply::Refused(Reason::Failed)
                }
            }
        }
        Request::SetTimer { at } => {
            if let Some(c) = sys.clock.as_mut() {
                c.set_wake(at);
                c.rearm();
            }
            Reply::Done
        }
        Request::Record { pd, record } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            let Some(record) = record else {
                return Reply::Refused(Reason::Failed);
            };
            sys.journal.commit(pd as usize, record);
            Reply::Done
        }
        Request::Recall { pd } => {
            if !user_pd(pd) {
                return Reply::Refused(Reason::BadPd);
            }
            match (sys.journal.get(pd as usize), sys.generation(pd as usize)) {
                (Some(record), Some(generation)) => Reply::Recalled { generation, record },
                _ => Reply::Refused(Reason::BadPd),
            }
        }
    }
}

/// Where an injected crash sends a PD (`Request::Crash`): an address no PD maps (above every
/// plan's layout), so its next instruction fetch is a translation fault, reported to the
/// monitor like any other fault.
pub const CRASH_PC: u64 = 0x7_0000_0000;

/// Fault injection (issue #17): stops `tcb`, points it at [`CRASH_PC`] and lets it run.
fn crash(tcb: axolotl_sys::Tcb) -> Result<(), axolotl_sys::InvocationError> {
    let mut regs = tcb.read_registers(true, 0, axolotl_abi::USER_CONTEXT_WORDS)?;
    regs.pc = CRASH_PC;
    tcb.write_registers(true, 0, axolotl_abi::USER_CONTEXT_WORDS, &regs)
}

/// Fault injection (issue #17): flips bit `bit` of `tcb`'s saved register `register`
/// (TcbReadRegisters' order; the decoding checked both). Read and write stop the thread
/// between them (`suspend` true), so the flip lands on a register it is not changing; the
/// kernel sanitises a flipped SPSR as it does any written one (the PD stays at EL0).
fn flip_bit(
    tcb: axolotl_sys::Tcb,
    register: u8,
    bit: u8,
) -> Result<(), axolotl_sys::InvocationError> {
    let regs = tcb.read_registers(true, 0, axolotl_abi::USER_CONTEXT_WORDS)?;
    let mut w = regs.to_words();
    w[register as usize] ^= 1 << bit;
    tcb.write_registers(
        true,
        0,
        axolotl_abi::USER_CONTEXT_WORDS,
        &axolotl_sys::UserContext::from_words(&w),
    )
}

/// Fault injection (issue #17): a wild write into PD `pd`'s own memory. The word is picked
/// from `seed` among the data, bss and stack pages of its *running* incarnation
/// (`page_spans`, which a standby switch changes: the incarnation it left is the refresher's
/// to restore, and a write there would be lost, or race the refresher), and written through
/// the root task's alias of that page while the PD runs, as a stray store of its own would
/// land. Its IPC buffer is left alone: the kernel's, as much as the PD's. Returns the PD's
/// virtual address, the old and the new value.
fn wild_write(sys: &System, pd: usize, seed: u64) -> Option<(u64, u64, u64)> {
    let ipc_page = sys.plan.pds.get(pd)?.ipc_buffer & !(PAGE - 1);
    let span = sys.page_spans.get(pd)?.clone();
    let writable = pages().get(span)?.iter().filter(move |p| {
        p.rights == Rights::RW && p.attrs & vm_attr::EXECUTABLE == 0 && p.vaddr != ipc_page
    });
    let (i, off) =
        axolotl_root_service::wild_write_target(writable.clone().map(|p| (p.vaddr, p.size)), seed)?;
    let page = writable.clone().nth(i)?;
    let word = (page.alias + off) as *mut u64;
    // SAFETY: `off + 8 <= page.size`, 8-aligned: a word of a page of the PD's running
    // incarnation, mapped read-write at `alias` for the root task for its whole life. The PD
    // may be writing it too: the word is what a racing stray store would leave, which is the
    // point; volatile, so neither access is elided or split.
    let old = unsafe { word.read_volatile() };
    let mut new = axolotl_root_service::scramble(!seed);
    if new == old {
        new = !old;
    }
    // SAFETY: as above.
    unsafe { word.write_volatile(new) };
    Some((page.vaddr + off, old, new))
}

/// Fault injection (issue #17): one bit of one word of PD `pd`'s code, both picked from
/// `seed` among the executable pages of its running incarnation, flipped through the root
/// task's alias of the page: what a bit upset in RAM would do below the PD, which maps its
/// code read-only. The instruction cache may hold the old word until the line is evicted or
/// the page is remapped (a restart): the flip shows when it is fetched again, as a real
/// upset's would. Returns the PD's virtual address, the old and the new word.
fn flip_code(sys: &System, pd: usize, seed: u64) -> Option<(u64, u64, u64)> {
    let span = sys.page_spans.get(pd)?.clone();
    let code = pages()
        .get(span)?
        .iter()
        .filter(|p| !p.shared && p.attrs & vm_attr::EXECUTABLE != 0);
    let (i, off) =
        axolotl_root_service::wild_write_target(code.clone().map(|p| (p.vaddr, p.size)), seed)?;
    let page = code.clone().nth(i)?;
    let word = (page.alias + off) as *mut u64;
    // SAFETY: `off + 8 <= page.size`, 8-aligned: a word of a code page of the PD's running
    // incarnation, mapped read-write at `alias` for the root task for its whole life.
    let old = unsafe { word.read_volatile() };
    let new = old ^ 1 << (axolotl_root_service::scramble(!seed) % 64);
    // SAFETY: as above.
    unsafe { word.write_volatile(new) };
    Some((page.vaddr + off, old, new))
}

/// Where the root task maps one frame of a region for a ring corruption: the top of its
/// 39-bit VSpace, far above the alias window, only ever one page at a time.
const SCRATCH_VADDR: u64 = 0x7f_0000_0000;
/// The root slot the scratch mapping's frame cap is copied into (0: none yet), reused.
static SCRATCH_SLOT: AtomicU64 = AtomicU64::new(0);

/// Fault injection (issue #17): XORs `RING_SCRIBBLE` into the 32-bit ring index at byte
/// `offset` of region `r`, which PD `pd` must map writable (the monitor names the word: the
/// plan tells it the regions, lib/ring's layout where the indices are). The region's frame
/// is mapped for the moment of the write (regions have no alias: the root task never
/// writes them otherwise). Returns the old and the new value.
fn corrupt_ring(sys: &mut System, pd: usize, r: usize, offset: u32) -> Result<(u32, u32), Error> {
    let plan = sys.plan;
    let p = plan.pds.get(pd).ok_or(Error::Plan("PD index"))?;
    if !plan
        .mappings_of(p)
        .iter()
        .any(|m| m.region as usize == r && m.perms.write)
    {
        return Err(Error::Plan("the PD does not map that region writable"));
    }
    let region = plan.regions.get(r).ok_or(Error::Plan("region index"))?;
    let frames = *sys.regions.get(r).ok_or(Error::Plan("region index"))?;
    // Device memory is never written on a request's say-so.
    if region.phys_addr.is_some() {
        return Err(Error::Plan("a region at a fixed address"));
    }
    let offset = offset as u64;
    let k = offset / region.page_size;
    if !offset.is_multiple_of(4) || offset + 4 > region.size || k >= frames.count {
        return Err(Error::Plan("no ring word there"));
    }
    let slot = match SCRATCH_SLOT.load(Ordering::Relaxed) {
        0 => {
            let s = sys.alloc.slots.alloc().ok_or(Error::TooManySlots)?;
            SCRATCH_SLOT.store(s, Ordering::Relaxed);
            s
        }
        s => s,
    };
    let root = CNode(init_cap::CNODE);
    root.copy(
        slot,
        ROOT_DEPTH,
        root,
        frames.first + k,
        ROOT_DEPTH,
        Rights::ALL,
    )
    .step("scratch copy")?;
    let frame = Frame(slot);
    let at = SCRATCH_VADDR;
    let mapped = vspace::map(
        &mut sys.alloc,
        frame,
        VSpace(init_cap::VSPACE),
        at,
        Rights::RW,
        vm_attr::CACHEABLE,
    )
    .step("scratch map");
    let done = mapped.and_then(|()| {
        let addr = at + offset % region.page_size;
        // SAFETY: the frame was just mapped read-write at `at` for the root task alone, and
        // `addr` lies in it, 4-aligned. The PDs that map it access it only atomically (lib/
        // ring), as this does.
        let word = unsafe { &*(addr as *const AtomicU32) };
        let old = word.fetch_xor(axolotl_root_service::RING_SCRIBBLE, Ordering::AcqRel);
        // A peer may map the region uncached: the word must be in memory, not only here.
        VSpace(init_cap::VSPACE)
            .clean_data(addr & !63, (addr & !63) + 64)
            .step("scratch clean")?;
        Ok((old, old ^ axolotl_root_service::RING_SCRIBBLE))
    });
    let _ = frame.unmap();
    let _ = root.delete(slot, ROOT_DEPTH);
    done
}
