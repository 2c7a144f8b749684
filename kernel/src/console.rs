//! The kernel console: a PL011 UART, polled.

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use arm_pl011_uart::{PL011Registers, Uart};
use safe_mmio::UniqueMmioPointer;
use spin::mutex::SpinMutex;

static CONSOLE: SpinMutex<Option<Uart<'static>>> = SpinMutex::new(None);

/// The UART's base, for the loop that prints user bytes (taken under the `CONSOLE` lock).
static BASE: AtomicU64 = AtomicU64::new(0);

/// PL011 data and flag registers (byte offsets) and the flag "transmit FIFO full".
const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// # Safety
/// `base` must be the PL011 of this board, identity mapped as device memory, and used by
/// nothing else.
pub unsafe fn init(base: u64) {
    // SAFETY: forwarded to the caller.
    let regs =
        unsafe { UniqueMmioPointer::new(NonNull::new(base as *mut PL011Registers).unwrap()) };
    // QEMU and firmware leave the UART enabled; the kernel only writes to it.
    *CONSOLE.lock() = Some(Uart::new(regs));
    BASE.store(base, Ordering::Relaxed);
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
    let mut guard = CONSOLE.lock();
    let Some(uart) = guard.as_mut() else { return };
    let base = BASE.load(Ordering::Relaxed) as usize;
    let (dr, fr) = ((base + UARTDR) as *mut u32, (base + UARTFR) as *const u32);
    for &b in bytes {
        if b.wrapping_sub(0x20) < 0x5f || b == b'\t' {
            // Printable: straight to the data register (the monitor's recovery log line is
            // on the restart path, and the driver's accessors cost twice as much), once the
            // transmit FIFO has room (QEMU never fills it; hardware does).
            // SAFETY: the PL011 `init` was given, identity-mapped device memory, used only
            // under the CONSOLE lock, which we hold.
            unsafe {
                while fr.read_volatile() & FR_TXFF != 0 {}
                dr.write_volatile(b as u32);
            }
        } else if b == b'\n' {
            let _ = uart.write_str("\r\n");
        } else {
            let _ = write!(uart, "\\x{b:02x}");
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
