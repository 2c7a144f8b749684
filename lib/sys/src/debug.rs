//! The debug console: `debug_puts` and a line-buffered `println!`.

use crate::syscall::svc;
use axolotl_abi::{Error, Syscall};
use core::fmt;

/// Prints bytes on the kernel's debug console (at most 256 per call; longer input is split).
pub fn debug_puts(s: &[u8]) -> Result<(), Error> {
    for chunk in s.chunks(256) {
        let r = svc(
            Syscall::DebugPuts,
            chunk.as_ptr() as u64,
            chunk.len() as u64,
            [0; 4],
        )
        .badge;
        Error::from_code(r).unwrap_or(Err(Error::InvalidArgument))?;
    }
    Ok(())
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
        // By slices, not bytes: the monitor's recovery log line is on the restart path.
        let mut s = s.as_bytes();
        while !s.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = (self.buf.len() - self.len).min(s.len());
            self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
            self.len += n;
            s = &s[n..];
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
