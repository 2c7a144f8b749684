//! The kernel console: a PL011 UART, polled.

use core::fmt::{self, Write};
use core::ptr::NonNull;

use arm_pl011_uart::{PL011Registers, Uart};
use safe_mmio::UniqueMmioPointer;
use spin::mutex::SpinMutex;

static CONSOLE: SpinMutex<Option<Uart<'static>>> = SpinMutex::new(None);

/// # Safety
/// `base` must be the PL011 of this board, identity mapped as device memory, and used by
/// nothing else.
pub unsafe fn init(base: u64) {
    // SAFETY: forwarded to the caller.
    let regs =
        unsafe { UniqueMmioPointer::new(NonNull::new(base as *mut PL011Registers).unwrap()) };
    // QEMU and firmware leave the UART enabled; the kernel only writes to it.
    *CONSOLE.lock() = Some(Uart::new(regs));
}

struct Crlf<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Crlf<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.0.write_str("\r\n")?;
            }
            self.0.write_str(line)?;
        }
        Ok(())
    }
}

pub fn print(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = Crlf(uart).write_fmt(args);
    }
}

/// Raw bytes from a user thread: printed as they are, non-printing bytes escaped so a
/// thread cannot send control sequences through the kernel's console.
pub fn print_user_bytes(bytes: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        for &b in bytes {
            if (0x20..=0x7e).contains(&b) || b == b'\t' {
                // The FIFO may be full on real hardware (QEMU never fills it).
                while uart.is_tx_fifo_full() {}
                uart.write_word(b);
            } else if b == b'\n' {
                let _ = uart.write_str("\r\n");
            } else {
                let _ = write!(uart, "\\x{b:02x}");
            }
        }
    }
}

/// Used by the panic path: takes the console even if the panicking code held it.
pub fn force_unlock() {
    // SAFETY: called only on the panic path, after which nothing else runs.
    unsafe { CONSOLE.force_unlock() }
}

#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
