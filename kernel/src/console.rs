//! The kernel console: the board's UART (a PL011, or the ODROIDs' meson UART), polled.

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use arm_pl011_uart::{DataBits, LineConfig, PL011Registers, Parity, StopBits, Uart};
use axolotl_kernel_config::{ConsoleKind, ConsoleSetup};
use axolotl_meson_uart::{MesonUart, Mmio};
use safe_mmio::UniqueMmioPointer;
use spin::mutex::SpinMutex;

enum Console {
    Pl011(Uart<'static>),
    Meson(MesonUart<Mmio>),
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self {
            Console::Pl011(u) => u.write_str(s),
            Console::Meson(u) => u.write_str(s),
        }
    }
}

static CONSOLE: SpinMutex<Option<Console>> = SpinMutex::new(None);

/// The UART's base, for the loop that prints user bytes (taken under the `CONSOLE` lock).
static BASE: AtomicU64 = AtomicU64::new(0);

/// PL011 data and flag registers (byte offsets) and the flag "transmit FIFO full".
const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// # Safety
/// `board`'s console UART (and, for its set-up, GPIO block) must be identity mapped as
/// device memory and used by nothing else.
pub unsafe fn init(board: &axolotl_kernel_config::Board) {
    let base = board.uart_base;
    if board.console == ConsoleKind::MesonGx {
        // U-Boot's console: left at 115200 8N1 (ConsoleSetup::AsLeft), the transmitter on.
        // SAFETY: forwarded to the caller.
        let uart = MesonUart::new(unsafe { Mmio::new(base as usize) });
        *CONSOLE.lock() = Some(Console::Meson(uart));
        return;
    }
    // SAFETY: forwarded to the caller.
    let regs =
        unsafe { UniqueMmioPointer::new(NonNull::new(base as *mut PL011Registers).unwrap()) };
    let mut uart = Uart::new(regs);
    match board.console_setup {
        // QEMU virt leaves the UART enabled; the kernel only writes to it.
        ConsoleSetup::AsLeft => {}
        ConsoleSetup::Bcm2711Gpio14 {
            gpio_base,
            uart_clock_hz,
        } => {
            // SAFETY: the board's GPIO block, identity mapped as device memory.
            unsafe { bcm2711_uart0_pins(gpio_base) };
            let line = LineConfig {
                data_bits: DataBits::Bits8,
                parity: Parity::None,
                stop_bits: StopBits::One,
            };
            // 115200 from a 48 MHz clock is a valid divisor; a board whose clock gives none
            // keeps the UART as the firmware left it.
            let _ = uart.enable(line, 115_200, uart_clock_hz);
        }
    }
    *CONSOLE.lock() = Some(Console::Pl011(uart));
    BASE.store(base, Ordering::Relaxed);
}

/// Gives GPIO 14 and 15 to PL011 UART0 (function ALT0 = 0b100 in GPFSEL1's fields 4 and 5)
/// with no pull resistors, as Linux's `uart0_gpio14` pin group does.
///
/// # Safety
/// `gpio` must be the BCM2711 GPIO block, identity mapped as device memory.
unsafe fn bcm2711_uart0_pins(gpio: u64) {
    const GPFSEL1: u64 = 0x04;
    /// GPIO_PUP_PDN_CNTRL_REG0: two bits a pin, 0 = no resistor.
    const PUP_PDN0: u64 = 0xe4;
    let fsel = (gpio + GPFSEL1) as *mut u32;
    let pull = (gpio + PUP_PDN0) as *mut u32;
    // SAFETY: registers of the block the caller vouches for.
    unsafe {
        let v = fsel.read_volatile() & !((7 << 12) | (7 << 15));
        fsel.write_volatile(v | (4 << 12) | (4 << 15));
        let p = pull.read_volatile() & !((3 << 28) | (3 << 30));
        pull.write_volatile(p);
    }
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
    let Some(console) = guard.as_mut() else {
        return;
    };
    let base = BASE.load(Ordering::Relaxed) as usize;
    let (dr, fr) = ((base + UARTDR) as *mut u32, (base + UARTFR) as *const u32);
    for &b in bytes {
        if b.wrapping_sub(0x20) < 0x5f || b == b'\t' {
            match console {
                // Printable: straight to the data register (the monitor's recovery log line
                // is on the restart path, and the driver's accessors cost twice as much),
                // once the transmit FIFO has room (QEMU never fills it; hardware does).
                // SAFETY: the PL011 `init` was given, identity-mapped device memory, used
                // only under the CONSOLE lock, which we hold.
                Console::Pl011(_) => unsafe {
                    while fr.read_volatile() & FR_TXFF != 0 {}
                    dr.write_volatile(b as u32);
                },
                Console::Meson(u) => u.write_byte(b),
            }
        } else if b == b'\n' {
            let _ = console.write_str("\r\n");
        } else {
            let _ = write!(console, "\\x{b:02x}");
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
