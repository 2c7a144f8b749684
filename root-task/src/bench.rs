//! Kernel microbenchmarks, printed for `cargo xtask bench`. Time is the virtual counter;
//! under QEMU `-icount shift=0` one nanosecond of virtual time is one instruction, so the
//! figures are instruction counts, deterministic from run to run.

use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{BootInfo, MessageInfo, ObjectType};
use axolotl_sys::alloc::ObjectAlloc;
use axolotl_sys::{Endpoint, Notification, Tcb, println};

use crate::spawn::{Stack, spawn, stack_top};

const N: u64 = 10_000;
const PARTNER_IPC_BUFFER: u64 = 0xe000_4000;

static mut PARTNER_STACK: Stack = Stack::new();
static mut PARTNER_CAP: u64 = 0;

fn counter() -> u64 {
    let c: u64;
    // SAFETY: EL0 may read the virtual counter (CNTKCTL_EL1.EL0VCTEN).
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) c) };
    c
}

fn frequency() -> u64 {
    let f: u64;
    // SAFETY: read-only register.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

/// Virtual nanoseconds (= instructions under icount shift=0) of `f` run `N` times.
fn measure(mut f: impl FnMut(u64)) -> u64 {
    let t0 = counter();
    for i in 0..N {
        f(i);
    }
    (counter() - t0) * 1_000_000_000 / frequency()
}

extern "C" fn echo_server() -> ! {
    // SAFETY: set before this thread was resumed.
    let ep = Endpoint(unsafe { PARTNER_CAP });
    let mut m = ep.recv();
    loop {
        m = ep.reply_recv(MessageInfo::new(0, 0, 0, 1), [m.mrs[0], 0, 0, 0]);
    }
}

extern "C" fn waiter() -> ! {
    // SAFETY: set before this thread was resumed.
    let n = Notification(unsafe { PARTNER_CAP });
    loop {
        n.wait();
    }
}

fn report(name: &str, ns: u64, baseline: u64) {
    let per_op = ns.saturating_sub(baseline) / N;
    println!("bench: {name} iterations={N} total_ns={ns} baseline_ns={baseline} per_op={per_op}");
}

pub fn run(bi: &BootInfo) -> Result<(), &'static str> {
    let mut a = ObjectAlloc::from_bootinfo(bi);
    println!("bench: start (counter {} Hz)", frequency());
    let baseline = measure(|i| {
        core::hint::black_box(i);
    });
    println!("bench: empty_loop iterations={N} total_ns={baseline}");

    // Null syscall: Yield with nothing else ready at our priority returns at once.
    report(
        "null_syscall",
        measure(|_| axolotl_sys::yield_now()),
        baseline,
    );

    // IPC round trip: Call + ReplyRecv with one word, server at the same priority.
    let ep = a
        .alloc(ObjectType::Endpoint, 0)
        .map_err(|_| "retype endpoint")?;
    // SAFETY: read by the partner after it is resumed.
    unsafe { PARTNER_CAP = ep };
    let server = spawn(
        &mut a,
        echo_server,
        stack_top(&raw mut PARTNER_STACK),
        PARTNER_IPC_BUFFER,
        255,
        0,
    )?;
    let ns = measure(|i| {
        let r = Endpoint(ep).call(MessageInfo::new(0, 0, 0, 1), [i, 0, 0, 0]);
        debug_assert_eq!(r.mrs[0], i);
    });
    report("ipc_call_replyrecv_round_trip", ns, baseline);
    server.suspend().map_err(|_| "suspend server")?;

    // An invocation that does almost nothing: TcbSuspend of a thread already suspended. Its
    // cost over the null syscall is the invocation path itself (encoding, cap lookup,
    // decoding, reply); a PD restart is a few of these.
    report(
        "invocation_tcb_suspend",
        measure(|_| {
            let _ = server.suspend();
        }),
        baseline,
    );
    // The restart's register write: all 35 words, through the IPC buffer.
    let ctx = axolotl_sys::UserContext::default();
    report(
        "invocation_tcb_write_registers_35",
        measure(|_| {
            let _ = server.write_registers(false, 0, axolotl_abi::USER_CONTEXT_WORDS, &ctx);
        }),
        baseline,
    );

    // Notification signal waking a higher-priority waiter, which waits again at once:
    // signal + switch + wait + switch back per iteration.
    let ntfn = a
        .alloc(ObjectType::Notification, 0)
        .map_err(|_| "retype notification")?;
    // SAFETY: as above.
    unsafe { PARTNER_CAP = ntfn };
    Tcb(init_cap::TCB)
        .set_priority(Tcb(init_cap::TCB), 100)
        .map_err(|_| "lower own priority")?;
    // The echo server is suspended for good: its stack and buffer page are free again.
    spawn(
        &mut a,
        waiter,
        stack_top(&raw mut PARTNER_STACK),
        PARTNER_IPC_BUFFER,
        200,
        0,
    )?;
    report(
        "signal_wake_higher_prio",
        measure(|_| Notification(ntfn).signal()),
        baseline,
    );
    println!("bench: done");
    Ok(())
}
