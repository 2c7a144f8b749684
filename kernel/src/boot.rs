//! Kernel start-up: MMU, console, interrupt controller, timer, root task.

use crate::arch::{cpu, gic::Gic, mmu, timer};
use crate::boot_alloc::BootAlloc;
use crate::state::KERNEL;
use crate::{BOARD, bootcaps, kprintln, root_task, trap};

/// Page-aligned, so the root task's whole file pages can be mapped where they lie
/// (`root_task::load`) instead of copied: with a system packed in, this image holds every
/// PD's pristine image too, tens of MiB.
#[repr(C, align(4096))]
struct Aligned<T: ?Sized>(T);
static ROOT_TASK: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/root-task.elf")));
static ROOT_TASK_ELF: &[u8] = &ROOT_TASK.0;

#[unsafe(no_mangle)]
extern "C" fn kernel_main(vectors: u64, entry_el: u64) -> ! {
    let board = &BOARD;
    let config = axolotl_kernel_config::BuildConfig::DEFAULT;
    // SAFETY: first and only call, at boot; the console and GIC are this board's.
    unsafe {
        mmu::init(board);
        crate::console::init(board);
        cpu::init_el2();
    }
    let l = mmu::layout();
    // The kernel allocates the root task's objects in the RAM range it was loaded in; the
    // board's other ranges (the larger Pi 4s' above 1 GiB) are untyped memory whole.
    let (_, kernel_ram_end) = board.kernel_ram();
    kprintln!();
    kprintln!("axolotl kernel v{} (EL2)", env!("CARGO_PKG_VERSION"));
    if !crate::IMAGE.is_empty() {
        kprintln!("kernel: image {}", crate::IMAGE);
    }
    if entry_el == 3 {
        // entry.S did the firmware's part: CNTFRQ, the GIC's groups, SCR_EL3.
        kprintln!("boot: entered at EL3, dropped to EL2 non-secure");
    }
    kprintln!(
        "board: {}, GICv{}, vectors at {:#x}",
        board.name,
        board.gic.version().number(),
        vectors
    );
    if let Some(uart) = crate::board::CONSOLE {
        // Says why the log is not where it usually is (docs/sdf.md "The kernel's console").
        kprintln!(
            "console: {} at {:#x}, irq {}: the system takes the board's own UART",
            uart.name,
            uart.base,
            uart.irq
        );
    }
    let freq = timer::frequency();
    if freq != board.timer_hz {
        kprintln!(
            "kernel: warning: CNTFRQ says {freq} Hz, board config says {} Hz; using CNTFRQ",
            board.timer_hz
        );
    }
    kprintln!(
        "memory: RAM {} ({} MiB), kernel {:#x}-{:#x} ({} KiB)",
        RamRanges(board.ram),
        board.ram_bytes() >> 20,
        l.start,
        l.end,
        (l.end - l.start) >> 10
    );

    // SAFETY: sole user of the kernel state during boot.
    let k = unsafe { KERNEL.get() };
    k.boot_mem = BootAlloc::new(l.end, kernel_ram_end);
    // SAFETY: the board's GIC, identity mapped as device memory.
    let mut gic = unsafe { Gic::init(board.gic) };
    gic.enable(board.hyp_timer_irq, true);
    k.gic = Some(gic);
    crate::vcpu::init(k);
    k.tick_cycles = freq * config.tick_us / 1_000_000;
    k.next_tick = timer::now() + k.tick_cycles;
    timer::arm_at(k.next_tick);
    kprintln!(
        "timer: {} Hz, tick {} us, timeslice {} ticks",
        freq,
        config.tick_us,
        config.timeslice_ticks
    );

    if ROOT_TASK_ELF.is_empty() {
        panic!("no root task packed into this kernel image (build it with `cargo xtask build`)");
    }
    let loaded = match root_task::load(ROOT_TASK_ELF, &mut k.boot_mem, config.root_task_priority) {
        Ok(l) => l,
        Err(e) => panic!("cannot load the root task: {e}"),
    };
    // The device window but the console UART's page and the GIC's frames, which stay the
    // kernel's wherever they lie (inside the window on the ODROIDs); a GICv2 guest's CPU
    // interface is GICV, which its VMM maps, so it is handed out too; and the board's other
    // device memory (QEMU virt's PCIe windows, its GICv2m frame: `Board::more_devices`).
    const _: () = assert!(
        axolotl_abi::bootinfo::GICV_SIZE == axolotl_kernel_config::GICV2_GICV_BYTES,
        "the GICV frame user level maps is the one the kernel hands out"
    );
    let devices = board.user_device_ranges();
    let caps = bootcaps::create(
        &loaded,
        &mut k.boot_mem,
        &mut k.asids,
        config.root_cnode_bits,
        board.ram,
        devices.as_slice(),
    );
    kprintln!(
        "root task: entry {:#x}, {} pages; {} untyped caps ({} MiB), {} device untyped caps",
        loaded.entry,
        loaded.pages,
        caps.untyped,
        caps.untyped_bytes >> 20,
        caps.device_untyped
    );
    // SAFETY: a fully initialised TCB.
    unsafe { k.sched.enqueue(loaded.tcb) };
    // The CPU's time is counted from here (`state::CpuTime`): boot is nobody's.
    k.cpu.since = crate::arch::timer::now();
    trap::schedule_and_return(k, false)
}

/// RAM ranges as the banner shows them: `0x0-0x3b400000, 0x40000000-0x80000000`.
struct RamRanges(&'static [(u64, u64)]);

impl core::fmt::Display for RamRanges {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{lo:#x}-{hi:#x}")?;
        }
        Ok(())
    }
}
