//! Kernel panics and exceptions taken in the kernel itself: report and halt.
//! A user bug never gets here; only a kernel bug does.

use crate::arch::context::UserContext;
use crate::{console, fault, kprintln};
use axolotl_abi::syndrome::Esr;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::force_unlock();
    kprintln!("\nKERNEL PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        kprintln!("  at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    halt()
}

/// Frame saved by entry.S for an exception taken at EL2 (same layout as UserContext with SP
/// meaning the kernel's SP).
#[unsafe(no_mangle)]
extern "C" fn handle_kernel_exception(frame: *const UserContext, kind: u64) -> ! {
    console::force_unlock();
    // SAFETY: entry.S built the frame on the kernel stack.
    let f = unsafe { &*frame };
    let esr: u64;
    let far: u64;
    // SAFETY: reading syndrome registers.
    unsafe { core::arch::asm!("mrs {}, esr_el2", "mrs {}, far_el2", out(reg) esr, out(reg) far) };
    let kind = ["synchronous", "IRQ", "FIQ", "SError"]
        .get(kind as usize)
        .copied()
        .unwrap_or("?");
    kprintln!("\nKERNEL PANIC: {kind} exception at EL2");
    kprintln!("  ESR {:#010x}: {}", esr, Esr(esr));
    kprintln!(
        "  ELR {:#x}  FAR {:#x}  SP {:#x}  SPSR {:#x}",
        f.elr,
        far,
        f.sp,
        f.spsr
    );
    fault::dump_registers(f);
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: parks the core.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfi") };
    }
}
