//! The `svc` instruction and the system calls built on it (seL4's `seL4_Call` & co.).
//!
//! Every call passes all six argument registers in and out, so one asm block serves them all;
//! the kernel ignores what a call does not use. Message registers beyond MR3 travel in the IPC
//! buffer (see [`crate::ipc`]): callers write them there before, and read them there after.

use axolotl_abi::{CPtr, MSG_REGISTERS_IN_CPU, MessageInfo, Syscall};

/// Registers a receive returns: the sender's badge, its message info and MR0..MR3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Msg {
    pub badge: u64,
    pub info: MessageInfo,
    pub mrs: [u64; MSG_REGISTERS_IN_CPU],
}

impl Msg {
    pub const fn label(&self) -> u64 {
        self.info.label()
    }
}

#[inline(always)]
pub(crate) fn svc(nr: Syscall, x0: u64, info: u64, mrs: [u64; 4]) -> Msg {
    raw(nr as u64, x0, info, mrs)
}

/// Sends on `cap` and waits for the reply (endpoint), or invokes a kernel object.
pub fn call(cap: CPtr, info: MessageInfo, mrs: [u64; 4]) -> Msg {
    svc(Syscall::Call, cap, info.word(), mrs)
}

/// Blocking send on an endpoint (a signal on a notification).
pub fn send(cap: CPtr, info: MessageInfo, mrs: [u64; 4]) {
    svc(Syscall::Send, cap, info.word(), mrs);
}

/// Send that drops the message when no receiver is waiting.
pub fn nb_send(cap: CPtr, info: MessageInfo, mrs: [u64; 4]) {
    svc(Syscall::NBSend, cap, info.word(), mrs);
}

/// Blocks until a message (endpoint) or a signal (notification) arrives.
pub fn recv(cap: CPtr) -> Msg {
    svc(Syscall::Recv, cap, 0, [0; 4])
}

/// Receives only what is already there; on an empty endpoint the returned badge is 0 and the
/// info empty.
pub fn nb_recv(cap: CPtr) -> Msg {
    svc(Syscall::NBRecv, cap, 0, [0; 4])
}

/// Replies to the caller recorded by this thread's last receive.
pub fn reply(info: MessageInfo, mrs: [u64; 4]) {
    svc(Syscall::Reply, 0, info.word(), mrs);
}

/// Replies, then receives on `cap`, in one kernel entry.
pub fn reply_recv(cap: CPtr, info: MessageInfo, mrs: [u64; 4]) -> Msg {
    svc(Syscall::ReplyRecv, cap, info.word(), mrs)
}

/// ORs the notification cap's badge into the notification word.
pub fn signal(cap: CPtr) {
    svc(Syscall::Signal, cap, 0, [0; 4]);
}

/// Blocks until the notification word is non-zero; returns (and clears) it.
pub fn wait(cap: CPtr) -> u64 {
    svc(Syscall::Wait, cap, 0, [0; 4]).badge
}

/// Returns (and clears) the notification word without blocking; 0 when nothing was signalled.
pub fn poll(cap: CPtr) -> u64 {
    svc(Syscall::Poll, cap, 0, [0; 4]).badge
}

/// Gives the CPU to another thread of the same priority, if one is ready.
pub fn yield_now() {
    svc(Syscall::Yield, 0, 0, [0; 4]);
}

/// Stops the calling thread for good.
pub fn thread_exit() -> ! {
    svc(Syscall::ThreadExit, 0, 0, [0; 4]);
    unreachable!("the kernel never resumes an exited thread")
}

/// Timer ticks since boot, as the kernel counts them.
pub fn debug_ticks() -> u64 {
    svc(Syscall::DebugTicks, 0, 0, [0; 4]).badge
}

/// Issues a raw system call number (for tests of unknown syscalls).
pub fn raw_syscall(nr: u64, x0: u64, info: u64, mrs: [u64; 4]) -> Msg {
    raw(nr, x0, info, mrs)
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
fn raw(nr: u64, x0: u64, info: u64, mrs: [u64; 4]) -> Msg {
    let (r0, r1, m0, m1, m2, m3);
    // SAFETY: the kernel touches only these registers and memory it validates (IPC buffer,
    // DebugPuts string). No memory options: the compiler must assume the asm reads and
    // writes memory, which keeps IPC buffer stores ordered around it.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inlateout("x0") x0 => r0,
            inlateout("x1") info => r1,
            inlateout("x2") mrs[0] => m0,
            inlateout("x3") mrs[1] => m1,
            inlateout("x4") mrs[2] => m2,
            inlateout("x5") mrs[3] => m3,
            lateout("x6") _,
            inlateout("x7") nr => _,
            options(nostack),
        );
    }
    Msg {
        badge: r0,
        info: MessageInfo::from_word(r1),
        mrs: [m0, m1, m2, m3],
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn raw(_: u64, _: u64, _: u64, _: [u64; 4]) -> Msg {
    unimplemented!("axolotl system calls exist only on aarch64-unknown-none")
}
