//! System call wrappers: the only place user code executes `svc`.
//!
//! On targets other than aarch64 bare metal the wrappers do not exist, so host builds of
//! crates using this one fail loudly rather than pretend.

#![no_std]

use axolotl_abi::{Error, Syscall};
use core::fmt;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod raw {
    use core::arch::asm;

    /// # Safety
    /// The kernel reads only registers; memory arguments are validated by the kernel.
    #[inline(always)]
    pub unsafe fn syscall2(nr: u64, a0: u64, a1: u64) -> u64 {
        let r: u64;
        // SAFETY: forwarded to the caller. x0..x7 may be clobbered by the kernel's reply.
        unsafe {
            asm!(
                "svc #0",
                inlateout("x0") a0 => r,
                inlateout("x1") a1 => _,
                lateout("x2") _, lateout("x3") _, lateout("x4") _, lateout("x5") _, lateout("x6") _,
                inlateout("x7") nr => _,
                options(nostack),
            );
        }
        r
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn call(s: Syscall, a0: u64, a1: u64) -> u64 {
    // SAFETY: the ABI's registers only.
    unsafe { raw::syscall2(s as u64, a0, a1) }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn call(_: Syscall, _: u64, _: u64) -> u64 {
    unimplemented!("axolotl system calls exist only on aarch64-unknown-none")
}

/// Prints bytes on the kernel's debug console (at most 256 per call; longer input is split).
pub fn debug_puts(s: &[u8]) -> Result<(), Error> {
    for chunk in s.chunks(256) {
        let r = call(
            Syscall::DebugPuts,
            chunk.as_ptr() as u64,
            chunk.len() as u64,
        );
        Error::from_code(r).unwrap_or(Err(Error::InvalidArgument))?;
    }
    Ok(())
}

/// Timer ticks since boot, as the kernel counts them.
pub fn debug_ticks() -> u64 {
    call(Syscall::DebugTicks, 0, 0)
}

/// Gives the CPU to another thread of the same priority, if one is ready.
pub fn yield_now() {
    call(Syscall::Yield, 0, 0);
}

/// Stops the calling thread for good.
pub fn thread_exit() -> ! {
    call(Syscall::ThreadExit, 0, 0);
    unreachable!("the kernel never resumes an exited thread")
}

/// A `fmt::Write` that buffers a line and flushes it through `debug_puts`, so one
/// `println!` costs one or two syscalls rather than one per fragment.
pub struct DebugWriter {
    buf: [u8; 256],
    len: usize,
}

impl DebugWriter {
    pub const fn new() -> Self {
        DebugWriter {
            buf: [0; 256],
            len: 0,
        }
    }
    pub fn flush(&mut self) {
        let _ = debug_puts(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Default for DebugWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut w = $crate::DebugWriter::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!("{}\n", format_args!($($arg)*)));
        w.flush();
    }};
}
