//! Where the calling thread's IPC buffer is, and access to the message registers in it.
//!
//! Choice: the buffer's address is the thread's `TPIDR_EL0`, with 0 meaning the root task's
//! [`IPC_BUFFER_VADDR`]. TPIDR_EL0 is part of the saved user context (the 35th word of
//! Read/WriteRegisters), so it is per thread even when threads share a VSpace, and whoever
//! creates a thread sets it together with its pc and sp; a `static` would be shared by every
//! thread of the address space.

use axolotl_abi::IpcBuffer;
use axolotl_abi::bootinfo::IPC_BUFFER_VADDR;

/// The calling thread's IPC buffer address.
pub fn ipc_buffer_addr() -> u64 {
    match tpidr_el0() {
        0 => IPC_BUFFER_VADDR,
        a => a,
    }
}

/// Declares `addr` as the calling thread's IPC buffer (it must be mapped there and be the
/// buffer the kernel was given with TcbConfigure/TcbSetIpcBuffer).
pub fn set_ipc_buffer_addr(addr: u64) {
    set_tpidr_el0(addr);
}

/// The calling thread's IPC buffer.
///
/// # Safety
/// The buffer must be mapped at [`ipc_buffer_addr`], and the caller must not keep two live
/// references to it (the kernel also writes it during IPC).
pub unsafe fn ipc_buffer() -> &'static mut IpcBuffer {
    // SAFETY: forwarded to the caller.
    unsafe { &mut *(ipc_buffer_addr() as *mut IpcBuffer) }
}

/// The message words of the calling thread's IPC buffer: where a message just received has
/// its words from `MSG_REGISTERS_IN_CPU` on, and where those of the next send go. For
/// protocols that decode in place and encode straight into the buffer (the root service).
///
/// # Safety
/// As for [`ipc_buffer`]; and no system call may be made while the reference lives: the
/// kernel writes the buffer when this thread receives, and reads it when it sends or invokes.
pub unsafe fn msg_words() -> &'static mut [u64; axolotl_abi::MSG_MAX_LENGTH] {
    // SAFETY: forwarded to the caller.
    unsafe { &mut (*buf()).msg }
}

fn buf() -> *mut IpcBuffer {
    ipc_buffer_addr() as *mut IpcBuffer
}

/// Writes message register `i` (any index; MR0..3 also go in registers, the wrappers take
/// them as arguments, so this matters for `i >= 4`).
pub fn set_mr(i: usize, v: u64) {
    assert!(i < axolotl_abi::MSG_MAX_LENGTH);
    // SAFETY: the buffer is mapped (a thread without one cannot use long messages at all);
    // volatile because the kernel reads it behind the compiler's back.
    unsafe { core::ptr::write_volatile(&raw mut (*buf()).msg[i], v) }
}

/// Reads message register `i` from the IPC buffer (for `i >= 4` after a receive).
pub fn get_mr(i: usize) -> u64 {
    assert!(i < axolotl_abi::MSG_MAX_LENGTH);
    // SAFETY: as in `set_mr`.
    unsafe { core::ptr::read_volatile(&raw const (*buf()).msg[i]) }
}

/// Capability addresses of the extra caps of the next send/invocation.
pub fn set_cap(i: usize, cptr: u64) {
    assert!(i < axolotl_abi::MSG_MAX_EXTRA_CAPS);
    // SAFETY: as in `set_mr`.
    unsafe { core::ptr::write_volatile(&raw mut (*buf()).caps_or_badges[i], cptr) }
}

/// After a receive: the badge of unwrapped cap `i`.
pub fn get_badge(i: usize) -> u64 {
    assert!(i < axolotl_abi::MSG_MAX_EXTRA_CAPS);
    // SAFETY: as in `set_mr`.
    unsafe { core::ptr::read_volatile(&raw const (*buf()).caps_or_badges[i]) }
}

/// Where a capability received with the next message goes: CNode `cnode` (in the caller's
/// CSpace), slot `index` at `depth`. `cnode = 0` refuses caps.
pub fn set_receive_path(cnode: u64, index: u64, depth: u64) {
    // SAFETY: as in `set_mr`.
    unsafe {
        core::ptr::write_volatile(&raw mut (*buf()).receive_cnode, cnode);
        core::ptr::write_volatile(&raw mut (*buf()).receive_index, index);
        core::ptr::write_volatile(&raw mut (*buf()).receive_depth, depth);
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn tpidr_el0() -> u64 {
    let v;
    // SAFETY: reading our own thread register.
    unsafe { core::arch::asm!("mrs {}, tpidr_el0", out(reg) v, options(nomem, nostack)) };
    v
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn set_tpidr_el0(v: u64) {
    // SAFETY: TPIDR_EL0 is ours; nothing else in this crate's users relies on it.
    unsafe { core::arch::asm!("msr tpidr_el0, {}", in(reg) v, options(nomem, nostack)) };
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn tpidr_el0() -> u64 {
    0
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn set_tpidr_el0(_: u64) {
    unimplemented!("thread registers exist only on aarch64-unknown-none")
}

/// Writes the extra caps and the message words beyond MR3 of the next send or invocation,
/// finding the buffer once.
pub fn stage(caps: &[u64], words: &[u64]) {
    assert!(caps.len() <= axolotl_abi::MSG_MAX_EXTRA_CAPS);
    assert!(words.len() <= axolotl_abi::MSG_MAX_LENGTH);
    let b = buf();
    for (i, &c) in caps.iter().enumerate() {
        // SAFETY: as in `set_mr`; `i` is in range (asserted above).
        unsafe { core::ptr::write_volatile(&raw mut (*b).caps_or_badges[i], c) }
    }
    if let Some(rest) = words.get(axolotl_abi::MSG_REGISTERS_IN_CPU..) {
        // One copy rather than a volatile store per word: the `svc` that follows is an asm
        // block that may read any memory whose address escaped, the buffer's included, so
        // these stores cannot be dropped or moved past it.
        // SAFETY: `words.len() <= MSG_MAX_LENGTH` (asserted), so the range lies in `msg`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                rest.as_ptr(),
                (&raw mut (*b).msg)
                    .cast::<u64>()
                    .add(axolotl_abi::MSG_REGISTERS_IN_CPU),
                rest.len(),
            )
        }
    }
}
