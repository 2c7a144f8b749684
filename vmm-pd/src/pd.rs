//! The target side: guest loading, the exit loop's glue to the kernel, the console.

use core::ptr::NonNull;

use axolotl_abi::USER_CONTEXT_WORDS;
use axolotl_abi::syndrome::{pstate, sctlr};
use axolotl_abi::vcpu::reg;
use axolotl_boot_plan::cspace::{vcpu_slot, vm_tcb_slot};
use axolotl_net::check::PieceSummer;
use axolotl_pd::{
    Channel, Child, Fault, Handler, MessageInfo, SetVar, generation, peer_generation_word, println,
};
use axolotl_ring::{Authority, DataRegion, Generations, SharedRegion};
use axolotl_serial_core::layout::{CAPACITY, IDS, REGION_BYTES};
use axolotl_serial_core::{RxClient, TxStream};
use axolotl_sys::{Tcb, UserContext, Vcpu};
use axolotl_sys::{debug_puts, mem};
use axolotl_vmm_core::MmioDevice;
use axolotl_vmm_core::guest::{GuestPlan, GuestSpec, plan_with_virtio, virtio_transport};
use axolotl_vmm_core::persist::Devices;
use axolotl_vmm_core::vgic::{GicVersion, Injection};
use axolotl_vmm_core::virtio;
use axolotl_vmm_core::virtio::VirtioStateError;
use axolotl_vmm_core::virtio::blk::ID_BYTES;
use axolotl_vmm_core::virtio::{
    BlkConfig, BlkRing, GuestMemory, MemError, NetConfig, NetRing, VirtioBlk, VirtioNet,
};
use axolotl_vmm_core::{Event, ExitRecord, Layout, Reply, StateError, StateRegion, TxSink, Vm};

// The guest, embedded at build time (build.rs; empty files when no artifacts were given).
core::arch::global_asm!(
    ".section .rodata.guest, \"a\"",
    // 2 MiB: the root task loads the aligned stretches of this blob in large frames.
    ".balign 0x200000",
    ".global vmm_guest_kernel_start",
    ".global vmm_guest_kernel_end",
    "vmm_guest_kernel_start:",
    concat!(".incbin \"", env!("AXOLOTL_GUEST_KERNEL_FILE"), "\""),
    "vmm_guest_kernel_end:",
    ".balign 4096",
    ".global vmm_guest_initrd_start",
    ".global vmm_guest_initrd_end",
    "vmm_guest_initrd_start:",
    concat!(".incbin \"", env!("AXOLOTL_GUEST_INITRD_FILE"), "\""),
    "vmm_guest_initrd_end:",
);

unsafe extern "C" {
    static vmm_guest_kernel_start: u8;
    static vmm_guest_kernel_end: u8;
    static vmm_guest_initrd_start: u8;
    static vmm_guest_initrd_end: u8;
}

fn blob(start: *const u8, end: *const u8) -> &'static [u8] {
    // SAFETY: both symbols delimit one incbin'd blob in our read-only image.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

/// The VMM's view of guest RAM (the SDF maps the region here with `setvar_vaddr`).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static guest_ram: SetVar = SetVar::new();

/// The receive connection to the serial driver (console input), if the SDF maps it: rings
/// read-write, data read-only (docs/serial.md).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static console_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static console_data: SetVar = SetVar::new();

/// The transmit connection to the serial driver (console output), if the SDF maps it: both
/// read-write (we write the bytes; docs/serial.md).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static console_tx_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static console_tx_data: SetVar = SetVar::new();

/// The device state region (docs/vmm.md, "Restart"), if the SDF maps one: an SDF memory
/// region a restart does not reset, read-write and ours alone.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static vmm_state: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static vmm_state_size: SetVar = SetVar::new();

/// The state region's words, if the SDF maps it.
fn state_words() -> Option<&'static mut [u64]> {
    let (base, size) = (vmm_state.get(), vmm_state_size.get());
    if base == 0 || size < 8 || base % 8 != 0 {
        return None;
    }
    // SAFETY: the SDF maps `size` bytes read-write at `base` (page-aligned) into this PD
    // alone for its whole life, a restart included; this is called once, in `init`.
    Some(unsafe { core::slice::from_raw_parts_mut(base as *mut u64, size as usize / 8) })
}

/// The guest's disk: one lib/blk connection to the blk driver (docs/storage.md), if the SDF
/// maps it: rings and data region read-write (the VMM writes command records and data).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_data: SetVar = SetVar::new();

/// The guest's NIC: one lib/net link to the network virtualiser (docs/network.md), if the
/// SDF maps it.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static net_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static net_data: SetVar = SetVar::new();

/// Our channel to the serial driver.
const DRIVER: Channel = Channel::new(0);
/// Our channel to the blk driver.
const BLK: Channel = Channel::new(1);
/// Our channel to the network virtualiser.
const NET: Channel = Channel::new(2);
/// Our channel to the serial driver's transmit connection (console output).
const CONSOLE_TX: Channel = Channel::new(3);

/// Where the guest finds its virtio devices: QEMU virt's transports 30 (NIC) and 31
/// (disk), the ones `axolotl_qemu::Machine` gives the physical devices, so the guest's view
/// matches a direct boot's (the same SPIs too: 46 and 47, INTIDs 78 and 79).
const NET_TRANSPORT: u32 = 30;
const BLK_TRANSPORT: u32 = 31;

/// The guest's MAC: the virtualiser's client 0 (driver-pd's `NET_CLIENTS[0]`), which the
/// virtualiser demultiplexes to us and checks our frames' source against.
const GUEST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x0f];

/// Received frames the VMM holds for a guest without free receive buffers.
const NET_FRAMES: usize = 16;
type BlkBackend = BlkRing<{ axolotl_blk::layout::IDS }, { axolotl_blk::layout::MAX_BYTES }>;
type NetBackend = NetRing<NET_FRAMES>;

/// Which of the guest's virtio devices an event concerns: a device is serviced (polled,
/// its line set) on an access to its own window and on its own peer's notification, and
/// its state is encoded into the commit only when it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Devs {
    blk: bool,
    net: bool,
}

impl Devs {
    const NONE: Devs = Devs {
        blk: false,
        net: false,
    };
    const ALL: Devs = Devs {
        blk: true,
        net: true,
    };
}

/// The guest's virtio devices and their backends (in .bss: the receive queue and frame
/// buffers are too large for the stack the handler lives on).
struct Io {
    blk: Option<(VirtioBlk, BlkBackend)>,
    net: Option<(VirtioNet, NetBackend)>,
    /// Driver and virtualiser faults seen, printed a few times at most.
    faults: u32,
    /// Which devices worked since the last commit: their state goes into it (and only
    /// theirs: encoding and comparing the other's state on every exit was a measurable
    /// part of the I/O path, docs/benchmarks.md).
    dirty: Devs,
    /// Where the exits and notifications went, printed at power-off (docs/benchmarks.md:
    /// how the I/O path was profiled).
    count: Counts,
}

/// Exits by kind and the I/O path's notifications, for profiling.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    /// Accesses to the NIC's and the disk's virtio-mmio windows.
    net_mmio: u64,
    blk_mmio: u64,
    /// Other stage-2 faults: the distributor, the redistributors, the rest (UART, ...).
    gicd_mmio: u64,
    gicr_mmio: u64,
    other_mmio: u64,
    /// vCPU faults: WFI/WFE (ESR class 1), the rest (HVC, system registers, ...).
    wfx: u64,
    vcpu_other: u64,
    maintenance: u64,
    vppi: u64,
    /// Notifications from the blk driver and the virtualiser, and to them.
    from_blk: u64,
    from_net: u64,
    to_blk: u64,
    to_net: u64,
    /// Received frames whose copy into guest RAM failed their check, damaged before the
    /// VMM: dropped, the virtualiser reported (docs/network.md, "The frame check").
    net_rx_check_failed: u64,
}

static mut IO: Io = Io {
    blk: None,
    net: None,
    faults: 0,
    dirty: Devs::NONE,
    count: Counts {
        net_mmio: 0,
        blk_mmio: 0,
        gicd_mmio: 0,
        gicr_mmio: 0,
        other_mmio: 0,
        wfx: 0,
        vcpu_other: 0,
        maintenance: 0,
        vppi: 0,
        from_blk: 0,
        from_net: 0,
        to_blk: 0,
        to_net: 0,
        net_rx_check_failed: 0,
    },
};

fn io() -> &'static mut Io {
    // SAFETY: this PD is single-threaded and every use of the reference ends before the
    // next call (handlers do not nest).
    unsafe { (&raw mut IO).as_mut().unwrap_unchecked() }
}

/// Guest RAM through the VMM's mapping of it, every access bounds-checked (lib/vmm-core's
/// `GuestMemory`). Raw copies, never a Rust reference over memory the guest writes.
struct RamWindow {
    va: usize,
}

impl RamWindow {
    fn at(&self, gpa: u64, len: usize) -> Result<usize, MemError> {
        let err = MemError {
            gpa,
            len: len as u64,
        };
        let off = gpa.checked_sub(RAM_BASE).ok_or(err)?;
        let end = off.checked_add(len as u64).ok_or(err)?;
        if end > RAM_SIZE {
            return Err(err);
        }
        Ok(self.va + off as usize)
    }
}

impl GuestMemory for RamWindow {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = self.at(gpa, buf.len())?;
        // SAFETY: inside the RAM_SIZE bytes the SDF maps at `guest_ram` (checked above);
        // `buf` is ours, so the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn read_u64_pair(&self, gpa: u64) -> Result<[u64; 2], MemError> {
        let src = self.at(gpa, 16)?;
        if !src.is_multiple_of(8) {
            // No honest driver's descriptor table (16-aligned); bytes, then.
            return axolotl_vmm_core::virtio::mem::read_u64_pair_bytewise(self, gpa);
        }
        let p = src as *const u64;
        // SAFETY: 16 bytes inside the RAM_SIZE bytes the SDF maps at `guest_ram` (checked
        // above), 8-aligned; volatile, as the guest may be writing them.
        Ok(unsafe { [p.read_volatile(), p.add(1).read_volatile()] }.map(u64::from_le))
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = self.at(gpa, data.len())?;
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|l| self.at(gpa, l).is_ok())
    }

    fn read_to_region(
        &self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
    ) -> Result<(), MemError> {
        let src = self.at(gpa, len)?;
        // SAFETY: inside the RAM_SIZE bytes the SDF maps at `guest_ram` (checked above),
        // which is no part of the data region; raw, as guest memory always is here.
        if unsafe { region.copy_in_raw(offset, src as *const u8, len) } {
            Ok(())
        } else {
            Err(MemError {
                gpa,
                len: len as u64,
            })
        }
    }

    fn read_to_region_summed(
        &self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        let src = self.at(gpa, len)?;
        // SAFETY: as in `read_to_region`.
        if unsafe { sum.copy_in_raw(region, offset, src as *const u8, len) } {
            Ok(())
        } else {
            Err(MemError {
                gpa,
                len: len as u64,
            })
        }
    }

    fn write_from_region(
        &mut self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
    ) -> Result<(), MemError> {
        let dst = self.at(gpa, len)?;
        // SAFETY: as in `read_to_region`.
        if unsafe { region.copy_out_raw(offset, dst as *mut u8, len) } {
            Ok(())
        } else {
            Err(MemError {
                gpa,
                len: len as u64,
            })
        }
    }

    fn write_from_region_summed(
        &mut self,
        gpa: u64,
        region: &DataRegion,
        offset: usize,
        len: usize,
        sum: &mut PieceSummer,
    ) -> Result<(), MemError> {
        let dst = self.at(gpa, len)?;
        // SAFETY: as in `read_to_region`.
        unsafe {
            axolotl_vmm_core::virtio::mem::copy_region_summed(
                sum,
                region,
                offset,
                dst as *mut u8,
                gpa,
                len,
            )
        }
    }

    fn barrier(&self) {
        // Another vCPU of an SMP guest may run on another core while we work its rings.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

fn ram() -> RamWindow {
    RamWindow {
        va: guest_ram.get() as usize,
    }
}

/// The VMM's own state is contradicted by the virtualiser's link: its copy of a received
/// frame into guest RAM failed the frame's check while the link buffer still matches it
/// (`Contradiction::Copy`), or its records of the link's buffers disagree with the ring.
/// Nobody else is to blame and going on is not safe: panic, which the monitor answers
/// with a restart (the guest kept, docs/vmm.md "Restart"), as the native clients do.
fn fail_stop(c: axolotl_net::Contradiction) -> ! {
    match c {
        axolotl_net::Contradiction::Copy { .. } => panic!(
            "vmm: own copy of a received frame into guest RAM failed its check, the virtualiser's buffer did not ({c:?}): fail-stop"
        ),
        c => panic!(
            "vmm: own records of the virtualiser's link contradicted by its ring ({c:?}): fail-stop"
        ),
    }
}

/// This PD's generations on the connection over `ch`: ours from the root task's start, the
/// peer's from the generation table (never from a region the peer can write).
fn generations(ch: Channel) -> Option<Generations> {
    let word = peer_generation_word(ch)?;
    Some(Generations {
        own: generation() as u32,
        // SAFETY: the table is mapped read-only for our whole life, written atomically by
        // the root task alone.
        peer: unsafe { Authority::new(NonNull::from(word)) },
    })
}

/// `bytes` the SDF maps at the vaddr patched into `var`; `None` if it was not patched.
fn mapped(var: &SetVar, bytes: usize) -> Option<SharedRegion> {
    let ptr = NonNull::new(var.get() as *mut u8)?;
    // SAFETY: the SDF maps `bytes` at this vaddr for the PD's lifetime (the system's
    // contract, docs/vmm.md), shared with one peer, reached only through lib/ring, lib/blk
    // and lib/net.
    Some(unsafe { SharedRegion::new(ptr, bytes) })
}

/// The disk over the blk driver's connection, if the SDF gives us one, and its size in MiB.
fn connect_blk() -> Option<(VirtioBlk, BlkBackend, u64)> {
    use axolotl_blk::layout::{CAPACITY, DATA_BYTES, MAX_BYTES, RINGS_BYTES};
    let rings = mapped(&blk_rings, RINGS_BYTES)?;
    let data = mapped(&blk_data, DATA_BYTES)?;
    let Some(g) = generations(BLK) else {
        println!("vmm: no disk: no generation for the blk driver's channel");
        return None;
    };
    let client = match axolotl_blk::BlkClient::new(rings, data, CAPACITY, g) {
        Ok(c) => c,
        Err(e) => {
            println!("vmm: no disk: {e:?}");
            return None;
        }
    };
    // The driver published its device's size when it started (it outranks us, so it has):
    // checked by lib/blk, the disk is as large as the driver says and no larger.
    let Some(info) = client.storage_info() else {
        println!("vmm: no disk: the blk driver published no capacity");
        return None;
    };
    let backend = BlkRing::new(client)?;
    let mut serial = [0u8; ID_BYTES];
    serial[..12].copy_from_slice(b"axolotl-data");
    let config = BlkConfig {
        capacity: info.capacity,
        blk_size: 512,
        // A request fits one of the connection's buffers: at most its size in pages, 256
        // (the device's queue of 512 lets a chain carry them with header and status).
        seg_max: (MAX_BYTES / 4096) as u32,
        size_max: Some(4096),
        serial,
    };
    Some((
        VirtioBlk::new(config, (RAM_BASE, RAM_SIZE)),
        backend,
        info.capacity / 2048,
    ))
}

/// The NIC's link, if the SDF gives us one.
fn connect_net() -> Option<(VirtioNet, NetBackend)> {
    use axolotl_net::link::{DATA_BYTES, RINGS_BYTES};
    let rings = mapped(&net_rings, RINGS_BYTES)?;
    let data = mapped(&net_data, DATA_BYTES)?;
    let link = axolotl_net::LinkRegions::split(rings, data).ok()?;
    let (Some(rx), Some(tx)) = (generations(NET), generations(NET)) else {
        println!("vmm: no NIC: no generation for the virtualiser's channel");
        return None;
    };
    let client = match axolotl_net::NetClient::new(link, rx, tx) {
        Ok(c) => c,
        Err(e) => {
            println!("vmm: no NIC: {e:?}");
            return None;
        }
    };
    let config = NetConfig {
        mac: GUEST_MAC,
        link_up: true,
    };
    Some((
        VirtioNet::new(config, (RAM_BASE, RAM_SIZE)),
        NetRing::new(client),
    ))
}

/// One page the SDF maps at the vaddr patched into `var`; `None` if it was not patched.
fn region(var: &SetVar) -> Option<SharedRegion> {
    let ptr = NonNull::new(var.get() as *mut u8)?;
    // SAFETY: the SDF maps `REGION_BYTES` at this vaddr for the PD's lifetime, shared with
    // the driver only, and it is reached only through lib/ring and serial-core.
    Some(unsafe { SharedRegion::new(ptr, REGION_BYTES) })
}

/// Guest-physical RAM, as the SDF maps it into the virtual machine (systems/linux-vm.system).
const RAM_BASE: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 0x1000_0000;
/// List registers of the GIC's virtual interface on the supported boards (GIC-400 and QEMU's
/// GICv2/GICv3 models have 4); the kernel refuses an index beyond the hardware's.
const NR_LRS: usize = 4;
/// The guest's virtual timer interrupt (the kernel's VPPI).
const VTIMER_PPI: u64 = 27;

/// The number of the last exit of `vcpu` we have handled, from the kernel's count
/// (`reg::EXIT`): an exit it is waiting in is still to come to us.
fn exits_handled(vcpu: u8) -> u64 {
    match Vcpu(vcpu_slot(vcpu)).read_reg(reg::EXIT) {
        Ok(e) if e & reg::EXIT_PENDING != 0 => (e & !reg::EXIT_PENDING).wrapping_sub(1),
        Ok(e) => e,
        Err(_) => 0,
    }
}

#[cfg(guest_gic_v2)]
const GIC: GicVersion = GicVersion::V2;
#[cfg(not(guest_gic_v2))]
const GIC: GicVersion = GicVersion::V3;

// The test types its commands into this shell (tests/tests/linux.rs), then `exit`.
#[cfg(feature = "test-guest")]
const CMDLINE: &str = "console=ttyAMA0 earlycon rdinit=/init \
    axolotl_cmd=\"uname -r; cat /proc/interrupts; echo AXOLOTL-GUEST-DONE; sh; poweroff -f\"";
#[cfg(not(feature = "test-guest"))]
const CMDLINE: &str = "console=ttyAMA0 earlycon rdinit=/init";

/// The I/O guest's (a guest with a disk: xtask gives it the I/O initramfs, docs/guest.md):
/// in test systems it checks its disk once it serves HTTP (tests/tests/gateway.rs compares
/// the image afterwards), then runs a shell.
#[cfg(feature = "test-guest")]
const IO_CMDLINE: &str = "console=ttyAMA0 earlycon rdinit=/init \
    axolotl_cmd=\"gateway-guest diskcheck 1515 16\"";
#[cfg(not(feature = "test-guest"))]
const IO_CMDLINE: &str = CMDLINE;

/// The guest's console output. With the serial driver's transmit connection (the SDF maps
/// `console_tx_*`) the guest's bytes go to UART1 unchanged, the guest's serial line a
/// terminal sees byte for byte; staged here and handed to the stream at a newline, when
/// the stage is full and when the guest idles (one notification of the driver per line, not
/// per byte). The stream's room and the stage are the vPL011's TX FIFO: when both are full
/// the guest reads TXFF and waits, no byte it wrote is lost. Without the connection (a
/// system with no serial driver) the bytes go to the kernel console a line at a time, which
/// ends lines itself and escapes control bytes, as debug prints must be.
struct Console {
    buf: [u8; 256],
    len: usize,
    tx: Option<TxStream<IDS>>,
    /// Driver errors seen (a corrupt ring), printed a few times at most.
    errors: u32,
}

impl Console {
    const fn new() -> Self {
        Console {
            buf: [0; 256],
            len: 0,
            tx: None,
            errors: 0,
        }
    }

    /// Hands what is staged on: to the stream as far as it has room (the rest waits for
    /// completions), or to the kernel console.
    fn flush(&mut self) {
        // Called at every guest idle: nothing staged, nothing to do (what the stream holds
        // moves on at the driver's completions).
        if self.len == 0 {
            return;
        }
        let Some(tx) = self.tx.as_mut() else {
            let _ = debug_puts(&self.buf[..self.len]);
            self.len = 0;
            return;
        };
        let n = tx.write(&self.buf[..self.len]);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
        self.poll();
    }

    /// Takes the driver's completions and submits what the stream holds, notifying the
    /// driver when the ring says so; a broken ring is reported (the monitor restarts the
    /// driver, whose new generation resynchronises the stream, which resubmits).
    fn poll(&mut self) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        match tx.poll() {
            Ok(act) => {
                if act.notify {
                    CONSOLE_TX.notify();
                }
            }
            Err(e) => {
                self.errors += 1;
                if self.errors <= 3 {
                    println!("vmm: console output: the serial driver broke the ring ({e:?})");
                }
                let _ = CONSOLE_TX.report_peer(tx.driver_generation());
                CONSOLE_TX.notify();
            }
        }
    }

    /// After the driver's notification (or while the guest waits on a full FIFO):
    /// completions taken, the stage moved on.
    fn service(&mut self) {
        self.poll();
        if self.len > 0 {
            self.flush();
        }
    }
}

impl TxSink for Console {
    fn put(&mut self, byte: u8) {
        if self.tx.is_none() && byte == b'\r' {
            // The kernel console ends lines itself.
            return;
        }
        if self.len == self.buf.len() {
            // Not reached through the vPL011, which asks `full` first; a byte beyond the
            // stage is dropped rather than written past it.
            return;
        }
        self.buf[self.len] = byte;
        self.len += 1;
        if byte == b'\n' {
            cpu_time_mark(&self.buf[..self.len]);
        }
        if byte == b'\n' || self.len == self.buf.len() {
            self.flush();
        }
    }

    fn full(&mut self) -> bool {
        if self.tx.is_none() || self.len < self.buf.len() {
            return false;
        }
        // The guest is waiting for room (polling FR, or about to write): make progress.
        self.service();
        self.len == self.buf.len()
    }
}

/// The guest's UART as the receiving end of console input (`VmmPd::feed_console`).
struct GuestLine<'a> {
    vm: &'a mut Vm<Console>,
    #[cfg(feature = "fault-injection")]
    trigger: &'a mut crate::inject::Trigger,
}

impl axolotl_serial_core::WholeSink for GuestLine<'_> {
    fn room(&self) -> usize {
        self.vm.console_room()
    }

    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            // Room was asked for first: every byte is taken.
            let _ = self.vm.console_input(b);
            #[cfg(feature = "fault-injection")]
            self.trigger.byte(b);
        }
    }
}

/// The transmit connection for the guest's console output, if the SDF connects one.
fn connect_console_tx() -> Option<TxStream<IDS>> {
    let (Some(r), Some(d)) = (region(&console_tx_rings), region(&console_tx_data)) else {
        println!(
            "vmm: console output to the kernel console (the SDF connects no serial driver for it)"
        );
        return None;
    };
    let Some(g) = generations(CONSOLE_TX) else {
        println!("vmm: console output to the kernel console: no generation for channel 3");
        return None;
    };
    match TxStream::new(r, d, CAPACITY, g) {
        Ok(t) => {
            println!("vmm: console output to the serial driver (UART1)");
            Some(t)
        }
        Err(e) => {
            println!("vmm: console output to the kernel console: {e:?}");
            None
        }
    }
}

struct VmmPd {
    vm: Option<Vm<Console>>,
    /// Console input: the client of the serial driver's receive connection.
    rx: Option<RxClient<IDS>>,
    /// Received bytes wait in `rx` for room in the guest's UART FIFO.
    rx_pending: bool,
    /// Driver errors seen (a corrupt ring), printed a few times at most.
    rx_errors: u32,
    nr_vcpus: u8,
    /// Guest exits handled, reported at power-off (`cargo xtask bench` reads it).
    exits: u64,
    /// Where the device state is committed after every exit; None without one (a restart
    /// then reboots the guest).
    state: Option<StateRegion<'static, [u64]>>,
    /// Per vCPU: exits handled, the number an exit's record carries.
    seq: [u64; axolotl_vmm_core::MAX_VCPUS],
    /// Per vCPU, after a recovery: its list registers are checked against the committed
    /// listing at its first exit (docs/vmm.md, "Restart").
    resync: [bool; axolotl_vmm_core::MAX_VCPUS],
    /// After a recovery, until the first reply lets a vCPU run again (logged with the time:
    /// the end of the restart `cargo xtask bench` measures).
    resuming: bool,
    /// The test build's failure points, armed through console input.
    #[cfg(feature = "fault-injection")]
    trigger: crate::inject::Trigger,
}

/// Where the machine's time went since boot, from the kernel's counts (`TcbGetCpuTime` on
/// our vCPUs' threads): what the guest ran, what the kernel did and idle; the rest is the
/// PDs' (this VMM, the drivers), whose TCBs the root task keeps. Counter cycles (16
/// instructions each under `-icount shift=0`).
fn cpu_time_line() {
    if let Some((guest, c)) = cpu_times() {
        println!(
            "vmm: cpu time (counter cycles): guest {guest}, kernel {}, idle {}, the rest (PDs, boot) {}, count {}",
            c.kernel,
            c.idle,
            c.now.saturating_sub(guest + c.kernel + c.idle),
            c.now
        );
    }
}

/// Our vCPUs' CPU time together, and the kernel's counts as the last one's answer gave them;
/// `None` without a `cpu-time` kernel.
fn cpu_times() -> Option<(u64, axolotl_sys::caps::CpuTime)> {
    let mut guest = 0;
    let mut last = None;
    for i in 0..axolotl_vmm_core::MAX_VCPUS as u8 {
        if let Ok(c) = Tcb(vm_tcb_slot(i)).cpu_time() {
            guest += c.thread;
            last = Some(c);
        }
    }
    last.map(|c| (guest, c))
}

/// A guest console line (the stage up to its newline) that says `cpu-time-mark NAME`: the
/// CPU-time counts now, printed with NAME, for a harness to take a stretch of the guest's work
/// apart (guest, kernel, idle, PDs: docs/benchmarks.md, "Where a transfer's time goes").
/// Nothing without a `cpu-time` kernel.
fn cpu_time_mark(line: &[u8]) {
    const MARK: &[u8] = b"cpu-time-mark ";
    let Some(at) = line.windows(MARK.len()).position(|w| w == MARK) else {
        return;
    };
    let rest = &line[at + MARK.len()..];
    let name = &rest[..rest
        .iter()
        .position(|b| !b.is_ascii_graphic())
        .unwrap_or(rest.len())
        .min(40)];
    if let (Some((guest, c)), Ok(name)) = (cpu_times(), core::str::from_utf8(name)) {
        println!(
            "vmm: cpu-time-mark {name}: guest {guest} kernel {} idle {} now {}",
            c.kernel, c.idle, c.now
        );
    }
}

/// vCPUs the root task gave us (the SDF's `vcpu` elements, ids from 0): their caps answer.
fn count_vcpus() -> u8 {
    (0..axolotl_vmm_core::MAX_VCPUS as u8)
        .take_while(|&i| Vcpu(vcpu_slot(i)).read_reg(reg::VMPIDR_EL2).is_ok())
        .count() as u8
}

/// Starts `vcpu` at `entry` as PSCI says (EL1h, DAIF masked, MMU off, x0 = `x0`).
fn start_vcpu(vcpu: u8, entry: u64, x0: u64) -> Result<(), axolotl_sys::InvocationError> {
    let v = Vcpu(vcpu_slot(vcpu));
    // Aff0 = the vCPU's index: what the device tree's cpu@N, PSCI and GICR_TYPER say.
    v.write_reg(reg::VMPIDR_EL2, u64::from(vcpu))?;
    v.write_reg(reg::SCTLR_EL1, SCTLR_EL1_RESET)?;
    let mut ctx = UserContext {
        pc: entry,
        spsr: SPSR_EL1H_MASKED,
        ..Default::default()
    };
    ctx.x[0] = x0;
    Tcb(vm_tcb_slot(vcpu)).write_registers(true, 0, USER_CONTEXT_WORDS, &ctx)
}

/// SCTLR_EL1 as after reset with the MMU and caches off (RES1 bits set).
const SCTLR_EL1_RESET: u64 = sctlr::EL1_RESET;
const SPSR_EL1H_MASKED: u64 = pstate::EL1H_DAIF_MASKED;

static mut DTB: [u8; 0x1_0000] = [0; 0x1_0000];

/// The virtio devices the SDF gave us, which the state region keeps.
fn devices() -> Devices {
    let io = io();
    Devices {
        net: io.net.is_some(),
        blk: io.blk.is_some(),
    }
}

/// Why a restarted VMM cannot go on with the running guest.
#[derive(Debug)]
enum Unrecoverable {
    /// The SDF maps no state region: the device state was our own memory, which the
    /// restart reloaded from the image.
    NoStateRegion,
    /// The guest's layout could not be planned again.
    Plan,
    /// The state region was refused (lib/vmm-core's checks).
    State(StateError),
    /// A virtio device's committed state was refused (lib/vmm-core's `restore` checks),
    /// or the region does not hold a device the guest has.
    Virtio(&'static str, Option<VirtioStateError>),
}

impl core::fmt::Display for Unrecoverable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Unrecoverable::NoStateRegion => f.write_str("no device state region"),
            Unrecoverable::Plan => f.write_str("no guest layout"),
            Unrecoverable::State(e) => write!(f, "device state refused: {e:?}"),
            Unrecoverable::Virtio(dev, e) => write!(f, "{dev} state refused: {e:?}"),
        }
    }
}

impl VmmPd {
    /// The guest's plan (layout, device tree in `DTB`, entry): a function of the embedded
    /// Image and the vCPU count alone, so a restarted VMM finds the layout it booted with.
    fn plan(&self) -> Result<GuestPlan, &'static str> {
        let kernel = blob(
            &raw const vmm_guest_kernel_start,
            &raw const vmm_guest_kernel_end,
        );
        let initrd = blob(
            &raw const vmm_guest_initrd_start,
            &raw const vmm_guest_initrd_end,
        );
        if kernel.is_empty() {
            return Err("built without a guest kernel (run `cargo xtask setup`, then rebuild)");
        }
        let io = io();
        let spec = GuestSpec {
            ram_base: RAM_BASE,
            ram_size: RAM_SIZE,
            image: kernel,
            initrd_size: (!initrd.is_empty()).then_some(initrd.len() as u64),
            cmdline: if io.blk.is_some() {
                IO_CMDLINE
            } else {
                CMDLINE
            },
            nr_vcpus: u32::from(self.nr_vcpus),
            gic: GIC,
        };
        // SAFETY: the DTB buffer is used by this single-threaded PD here and in `load` only.
        let dtb = unsafe { (&raw mut DTB).as_mut().unwrap_unchecked() };
        let mut transports = [virtio_transport(0); 2];
        let mut n = 0;
        for (present, t) in [
            (io.net.is_some(), NET_TRANSPORT),
            (io.blk.is_some(), BLK_TRANSPORT),
        ] {
            if present {
                transports[n] = virtio_transport(t);
                n += 1;
            }
        }
        plan_with_virtio(&spec, &transports[..n], dtb).map_err(|e| {
            println!("vmm: the guest does not fit: {e:?}");
            "no guest layout"
        })
    }

    fn layout(p: &GuestPlan) -> Layout {
        Layout {
            gic: p.gic,
            uart: p.uart,
            ram_base: RAM_BASE,
            ram_size: RAM_SIZE,
        }
    }

    /// Loads the guest into RAM and returns its machine and entry registers.
    fn load(&mut self) -> Result<UserContext, &'static str> {
        let kernel = blob(
            &raw const vmm_guest_kernel_start,
            &raw const vmm_guest_kernel_end,
        );
        let initrd = blob(
            &raw const vmm_guest_initrd_start,
            &raw const vmm_guest_initrd_end,
        );
        let p = self.plan()?;
        // SAFETY: as in `plan`, which wrote it.
        let dtb = unsafe { (&raw const DTB).as_ref().unwrap_unchecked() };
        let base = guest_ram.get();
        // SAFETY: the SDF maps RAM_SIZE bytes of guest RAM read-write at `guest_ram`; the
        // guest is not running yet.
        let ram = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, RAM_SIZE as usize) };
        let at = |addr: u64| (addr - RAM_BASE) as usize;
        let k = at(p.layout.kernel.addr);
        let file_len = p.header.file_len as usize;
        // lib/sys's copy moves 64 bytes a step: the Image is 32 MiB.
        mem::copy(&mut ram[k..k + file_len], &kernel[..file_len]);
        let d = at(p.layout.dtb.addr);
        ram[d..d + p.layout.dtb.size as usize].copy_from_slice(&dtb[..p.layout.dtb.size as usize]);
        if let Some(r) = p.layout.initrd {
            let i = at(r.addr);
            mem::copy(&mut ram[i..i + initrd.len()], initrd);
        }
        // The guest starts with its MMU and caches off and reads memory itself: what we
        // wrote through our cacheable mapping goes out to memory first, and the Image's
        // instructions past the instruction caches (a no-op under QEMU, needed on hardware).
        let written = [
            Some((k, file_len)),
            Some((d, p.layout.dtb.size as usize)),
            p.layout.initrd.map(|r| (at(r.addr), initrd.len())),
        ];
        for (off, len) in written.into_iter().flatten() {
            let start = base + off as u64;
            axolotl_pd::vspace_data_clean(start, start + len as u64).map_err(|e| {
                println!("vmm: cleaning the guest image to memory failed: {e}");
                "cache clean"
            })?;
        }
        let image = base + k as u64;
        axolotl_pd::vspace_unify_instruction(image, image + file_len as u64).map_err(|e| {
            println!("vmm: making the guest Image visible to instruction fetch failed: {e}");
            "cache unify"
        })?;
        println!(
            "vmm: Linux Image {} KiB at {:#x}, initramfs {} KiB, DTB {} bytes at {:#x}, GICv{}",
            file_len / 1024,
            p.layout.kernel.addr,
            initrd.len() / 1024,
            p.layout.dtb.size,
            p.layout.dtb.addr,
            if GIC == GicVersion::V2 { 2 } else { 3 },
        );
        let layout = Self::layout(&p);
        let console = Console::new();
        // Built in place: a `Vm` is some 33 KiB, and every copy on the way costs stack.
        self.vm = Some(
            Vm::new(layout, self.nr_vcpus.into(), NR_LRS, console).map_err(|_| "vGIC config")?,
        );
        // Whatever the region held is another guest's (or a failed recovery's): this one's
        // state starts here, the virtio devices' included.
        if let (Some(vm), Some(region)) = (self.vm.as_mut(), self.state.as_mut()) {
            let io = io();
            vm.set_devices(devices());
            vm.keep_virtio(
                io.net.as_ref().map(|(d, _)| d),
                io.blk.as_ref().map(|(d, _)| d),
            );
            io.dirty = Devs::NONE;
            vm.persist_format(region);
        }
        for v in 0..self.nr_vcpus {
            self.seq[v as usize] = exits_handled(v);
        }
        let mut ctx = UserContext {
            pc: p.entry.pc,
            spsr: p.entry.pstate,
            ..Default::default()
        };
        ctx.x[..4].copy_from_slice(&p.entry.x);
        Ok(ctx)
    }

    /// Loads the guest and starts its vCPU 0; false if there is no guest to run.
    #[inline(never)]
    fn boot(&mut self) -> bool {
        match self.load() {
            Ok(ctx) => match start_vcpu(0, ctx.pc, ctx.x[0]) {
                Ok(()) => println!(
                    "vmm: guest started at {:#x} (vCPUs: {}) {} ns after reset",
                    ctx.pc,
                    self.nr_vcpus,
                    axolotl_sys::time::now_ns()
                ),
                Err(e) => println!("vmm: cannot start vCPU 0: {e}"),
            },
            Err(why) => {
                println!("vmm: no guest: {why}");
                return false;
            }
        }
        true
    }

    /// After a restart (generation > 0; docs/vmm.md, "Restart"): the root task kept the
    /// guest's vCPUs, RAM and stage-2 space, and a vCPU that exited into our dead predecessor
    /// waits on our endpoint to take that exit again. We take up its machine from the device
    /// state; a state that cannot be trusted is a failed recovery, and the guest is rebooted,
    /// never run on it.
    #[inline(never)]
    fn take_over(&mut self) -> bool {
        let g = generation();
        match self.recover() {
            Ok(vm) => {
                self.resuming = true;
                // Before the relisting below, which works on the recovered model: without it
                // a vCPU not waiting in an exit got nothing written, and an interrupt the
                // dead VMM had committed as listed but not yet written never reached it.
                self.vm = Some(vm);
                for v in 0..self.nr_vcpus {
                    self.seq[v as usize] = exits_handled(v);
                    // A vCPU waiting in an exit relists at that exit, which may be the
                    // maintenance of one of its list registers; any other now.
                    let waiting = Vcpu(vcpu_slot(v))
                        .read_reg(reg::EXIT)
                        .is_ok_and(|e| e & reg::EXIT_PENDING != 0);
                    if waiting {
                        self.resync[v as usize] = true;
                    } else {
                        self.relist(v, None);
                    }
                }
                println!(
                    "vmm: generation {g}: took over the running guest ({} vCPUs)",
                    self.nr_vcpus
                );
                // The requests taken again go to the drivers (our new connections
                // handshake first), and the devices' interrupts are raised.
                if let Some(vm) = self.vm.as_mut() {
                    Self::service_io(vm, Devs::ALL);
                }
                BLK.notify();
                NET.notify();
                true
            }
            Err(why) => {
                println!("vmm: generation {g}: recovery failed ({why}): rebooting the guest");
                // Counted by the monitor as what it is, not as one more good restart.
                if !axolotl_pd::report_recovery_failed() {
                    println!("vmm: the monitor did not take the failed recovery");
                }
                self.stop_vcpus();
                self.boot()
            }
        }
    }

    /// The guest's machine as the state region says it is, checked (lib/vmm-core's
    /// `Vm::recover`): any refusal is a failed recovery.
    #[inline(never)]
    fn recover(&mut self) -> Result<Vm<Console>, Unrecoverable> {
        let p = self.plan().map_err(|_| Unrecoverable::Plan)?;
        let region = self.state.as_mut().ok_or(Unrecoverable::NoStateRegion)?;
        let console = Console::new();
        let vm = Vm::recover_with(
            region,
            Self::layout(&p),
            self.nr_vcpus.into(),
            NR_LRS,
            devices(),
            console,
        )
        .map_err(Unrecoverable::State)?;
        Self::recover_virtio(&vm)?;
        Ok(vm)
    }

    /// The virtio devices as the region says, checked against guest memory (lib/vmm-core's
    /// `restore`): completions the dead VMM wrote after its commit are taken as done, every
    /// other request it held is taken again and goes to the backend (a fresh client of the
    /// driver, which dropped the dead VMM's requests) at the next `service_io`.
    #[inline(never)]
    fn recover_virtio(vm: &Vm<Console>) -> Result<(), Unrecoverable> {
        let io = io();
        let mut mem = ram();
        if let Some((dev, _)) = io.net.as_mut() {
            let st = vm
                .kept_net()
                .ok_or(Unrecoverable::Virtio("virtio-net", None))?;
            let n = dev
                .restore(&mem, &st)
                .map_err(|e| Unrecoverable::Virtio("virtio-net", Some(e)))?;
            println!("vmm: virtio-net kept ({n} chains taken again)");
        }
        if let Some((dev, _)) = io.blk.as_mut() {
            let (t, st) = vm
                .kept_blk()
                .ok_or(Unrecoverable::Virtio("virtio-blk", None))?;
            let n = dev
                .restore(&mut mem, &t, &st)
                .map_err(|e| Unrecoverable::Virtio("virtio-blk", Some(e)))?;
            println!("vmm: virtio-blk kept ({n} requests in flight issued again)");
        }
        io.dirty = Devs::ALL;
        Ok(())
    }

    /// After a recovery, `vcpu`'s list registers as the committed state says them (lib/vmm-core
    /// `Vm::to_relist`): the kernel's may lag behind (the dead VMM committed an injection and
    /// died before its `VcpuInjectIrq`), never lead (the commit comes first). `maintenance`:
    /// the exit the vCPU waits in, if it is a VGICMaintenance, as `(seq, lr)`. A refusal
    /// with DeleteFirst means the list register was written already.
    fn relist(&mut self, vcpu: u8, maintenance: Option<(u64, usize)>) {
        let Some(vm) = self.vm.as_ref() else {
            return;
        };
        let v = Vcpu(vcpu_slot(vcpu));
        for (lr, inj) in vm.to_relist(vcpu.into(), maintenance) {
            match v.inject_irq(
                inj.intid.into(),
                inj.priority.into(),
                inj.group1.into(),
                lr as u64,
            ) {
                Ok(()) => println!("vmm: vCPU {vcpu}: {} listed again in LR {lr}", inj.intid),
                Err(e) if e.error == axolotl_abi::Error::DeleteFirst => {}
                Err(e) => println!("vmm: listing {} again in LR {lr}: {e}", inj.intid),
            }
        }
    }

    /// Makes the device state durable: after every exit's handling and console input,
    /// before the kernel calls that act on it (lib/vmm-core `Vm::commit`).
    fn commit(&mut self) {
        self.commit_exit(None)
    }

    /// [`Self::commit`] at the end of an exit's handling: `exit` (the vCPU and how its exit
    /// ends) is written with the state if the exit changed any, and not even encoded if
    /// not, which is most exits (lib/vmm-core `Vm::commit_exit`).
    #[inline(always)]
    fn commit_exit(&mut self, exit: Option<(u8, &dyn Fn() -> ExitRecord)>) {
        if let (Some(vm), Some(region)) = (self.vm.as_mut(), self.state.as_mut()) {
            let io = io();
            let dirty = core::mem::replace(&mut io.dirty, Devs::NONE);
            if dirty != Devs::NONE {
                vm.keep_virtio(
                    io.net.as_ref().map(|(d, _)| d).filter(|_| dirty.net),
                    io.blk.as_ref().map(|(d, _)| d).filter(|_| dirty.blk),
                );
            }
            match exit {
                Some((vcpu, record)) => vm.commit_exit_with(region, vcpu.into(), record),
                None => vm.commit(region),
            };
        }
    }

    /// Stops every vCPU (a vCPU waiting on an exit leaves our endpoint's queue) and clears
    /// what its virtual interface still holds from the old guest — interrupts listed for it,
    /// the virtual timer's PPI masked until an ack that no one will send — so the guest can
    /// be loaded afresh.
    fn stop_vcpus(&self) {
        for v in 0..self.nr_vcpus {
            if let Err(e) = Tcb(vm_tcb_slot(v)).suspend() {
                println!("vmm: stopping vCPU {v}: {e}");
            }
            let vcpu = Vcpu(vcpu_slot(v));
            let cleared = (0..NR_LRS as u64).try_for_each(|n| vcpu.write_reg(reg::LR0 + n, 0));
            if let Err(e) = cleared.and_then(|()| vcpu.ack_vppi(VTIMER_PPI)) {
                println!("vmm: resetting vCPU {v}'s virtual interface: {e}");
            }
        }
    }

    /// The exit the kernel re-sent after our restart, which our predecessor had handled and
    /// committed but not answered: answered from its record, not handled twice (a UART read
    /// would pop a second byte). The kernel calls it implied are made again where that is
    /// harmless; a PSCI CPU_ON only if the target never ran an exit (else it did start).
    fn answer_committed(&mut self, vcpu: u8, r: ExitRecord) -> Option<MessageInfo> {
        println!(
            "vmm: vCPU {vcpu}: exit {} was committed before the restart: answered from its record",
            r.seq
        );
        self.inject_all();
        if let Some(irq) = r.ack_vppi
            && let Err(e) = Vcpu(vcpu_slot(vcpu)).ack_vppi(irq.into())
        {
            println!("vmm: acknowledging vPPI {irq}: {e}");
        }
        match r.event {
            Some(Event::PowerOn { vcpu: target, .. })
                if Vcpu(vcpu_slot(target as u8))
                    .read_reg(reg::EXIT)
                    .is_ok_and(|e| e & !reg::EXIT_PENDING != 0) => {}
            Some(e @ (Event::PowerOn { .. } | Event::CpuOff)) => {
                let vm = self.vm.as_mut()?;
                Self::on_event(vm, vcpu, e, self.exits);
                self.commit();
            }
            _ => {}
        }
        r.reply.to_resume().map(axolotl_pd::resume)
    }

    /// Puts what the vGIC wants delivered into every vCPU's free list registers: picked and
    /// committed first, so that a VMM dying between the commit and the kernel call leaves a
    /// listing its successor writes again (`relist`), never one it does not know of.
    /// Returns how many it tried.
    fn inject_all(&mut self) -> usize {
        self.inject(false, None)
    }

    /// [`Self::inject_all`]; `notified`: for a notification, when no vCPU waits in an exit
    /// (the test build's `listed` failure point is there).
    /// `exit`: the exit being handled, whose record the commit writes (see
    /// [`Self::commit_exit`]).
    fn inject(&mut self, notified: bool, exit: Option<(u8, &dyn Fn() -> ExitRecord)>) -> usize {
        let Some(vm) = self.vm.as_mut() else {
            return 0;
        };
        // Most exits leave nothing to deliver, which the vGIC knows without a scan.
        if vm.nothing_to_inject() {
            self.commit_exit(exit);
            return 0;
        }
        self.inject_picked(notified, exit)
    }

    /// [`Self::inject`] when the vGIC may have something: out of line, so that the common
    /// case does not pay this part's stack frame (the picks' table) on every exit.
    #[inline(never)]
    fn inject_picked(
        &mut self,
        notified: bool,
        exit: Option<(u8, &dyn Fn() -> ExitRecord)>,
    ) -> usize {
        let Some(vm) = self.vm.as_mut() else {
            return 0;
        };
        // Only what was picked, not a slot per possible list register of every possible vCPU:
        // this runs after every exit, and zeroing and scanning that table was a fifth of an
        // exit's instructions in the VMM (docs/benchmarks.md).
        let mut picked: heapless::Vec<
            (u8, usize, Injection),
            { axolotl_vmm_core::MAX_VCPUS * NR_LRS },
        > = heapless::Vec::new();
        for v in 0..self.nr_vcpus {
            for pick in vm.injections(v.into()).take(NR_LRS) {
                // Room for NR_LRS per vCPU.
                let _ = picked.push((v, pick.0, pick.1));
            }
        }
        let tried = picked.len();
        self.commit_exit(exit);
        #[cfg(feature = "fault-injection")]
        if notified && tried > 0 {
            self.failpoint(crate::inject::Point::Listed);
        }
        #[cfg(not(feature = "fault-injection"))]
        let _ = notified;
        let mut refused = false;
        for &(v, lr, inj) in picked.iter() {
            let r = Vcpu(vcpu_slot(v)).inject_irq(
                inj.intid.into(),
                inj.priority.into(),
                inj.group1.into(),
                lr as u64,
            );
            if let Err(e) = r {
                println!("vmm: injecting {} into LR {lr}: {e}", inj.intid);
                if let Some(vm) = self.vm.as_mut() {
                    vm.injection_failed(v.into(), lr);
                }
                refused = true;
            }
        }
        if refused {
            self.commit();
        }
        tried
    }

    /// The test build's failure point `p`: fails here if a test armed it.
    #[cfg(feature = "fault-injection")]
    fn failpoint(&mut self, p: crate::inject::Point) {
        if let Some(a) = self.trigger.take(p) {
            if a == crate::inject::Action::Corrupt
                && let Some(region) = self.state.take()
            {
                // Damage as a stray write would: a header word (the layout size), which
                // recovery's header checksum must catch.
                let words = region.into_inner();
                words[2] ^= 0x5a5a;
            }
            crate::inject::fail(a, p);
        }
    }

    /// Moves received console input into the guest's UART, whole buffers at a time while
    /// its FIFO and the line behind it have room (the rest stays on the ring: the device
    /// state a restart keeps is the only place input lives once taken, lib/serial-core's
    /// `poll_whole`), and sets its interrupt line.
    fn feed_console(&mut self) {
        let (Some(vm), Some(rx)) = (self.vm.as_mut(), self.rx.as_mut()) else {
            return;
        };
        let mut sink = GuestLine {
            vm,
            #[cfg(feature = "fault-injection")]
            trigger: &mut self.trigger,
        };
        match rx.poll_whole(&mut sink) {
            Ok(act) => {
                self.rx_pending = act.pending;
                if act.notify {
                    DRIVER.notify();
                }
            }
            Err(e) => {
                self.rx_pending = false;
                self.rx_errors += 1;
                if self.rx_errors <= 3 {
                    println!("vmm: console input: the serial driver broke the ring ({e:?})");
                }
                // The monitor restarts the driver; its new generation resynchronises the ring.
                let _ = DRIVER.report_peer(rx.driver_generation());
                DRIVER.notify();
            }
        }
    }

    /// Moves the virtio devices' work along both ways (guest rings ↔ driver connections),
    /// notifies the peers that have news, reports a peer that broke its protocol (the
    /// monitor restarts it; the backends resynchronise with its successor) and sets the
    /// devices' interrupt lines.
    fn service_io(vm: &mut Vm<Console>, which: Devs) {
        let io = io();
        io.dirty.blk |= which.blk;
        io.dirty.net |= which.net;
        let mut mem = ram();
        if let Some((dev, be)) = io.blk.as_mut().filter(|_| which.blk) {
            let spi = virtio_transport(BLK_TRANSPORT).spi;
            let a = virtio::service(dev, |l| vm.set_spi_level(spi, l), |d| be.poll(d, &mut mem));
            if let Some(e) = a.fault {
                io.faults += 1;
                if io.faults <= 3 {
                    println!("vmm: the blk driver broke its protocol ({e:?}); reporting it");
                }
                let _ = BLK.report_peer(be.client().driver_generation());
            }
            if a.notify || a.fault.is_some() {
                io.count.to_blk += 1;
                BLK.notify();
            }
        }
        if let Some((dev, be)) = io.net.as_mut().filter(|_| which.net) {
            let spi = virtio_transport(NET_TRANSPORT).spi;
            let a = virtio::service(dev, |l| vm.set_spi_level(spi, l), |d| be.poll(d, &mut mem));
            io.count.net_rx_check_failed = dev.counters.rx_check_failed.into();
            if let Some(c) = a.contradiction {
                fail_stop(c);
            }
            if let Some((dir, c)) = a.fault {
                io.faults += 1;
                if io.faults <= 3 {
                    println!(
                        "vmm: the virtualiser broke its protocol ({dir:?}: {c:?}); reporting it"
                    );
                }
                let _ = NET.report_corruption(NET.peer_generation().unwrap_or(u32::MAX));
            }
            if a.notify || a.fault.is_some() {
                io.count.to_net += 1;
                NET.notify();
            }
        }
    }

    fn on_event(vm: &mut Vm<Console>, vcpu: u8, event: Event, exits: u64) {
        match event {
            Event::Idle => vm.uart.sink_mut().flush(),
            Event::SystemOff => {
                vm.uart.sink_mut().flush();
                println!(
                    "vmm: guest powered off (PSCI SYSTEM_OFF); vCPU {vcpu} stopped after {exits} exits"
                );
                println!("vmm: exits and notifications: {:?}", io().count);
                if let Some((dev, _)) = io().net.as_ref() {
                    println!("vmm: virtio-net: {:?}", dev.counters);
                }
                cpu_time_line();
            }
            Event::SystemReset => {
                vm.uart.sink_mut().flush();
                println!("vmm: guest asked for a reset (PSCI SYSTEM_RESET); vCPU {vcpu} stopped");
            }
            Event::CpuOff => {
                if let Err(e) = Tcb(vm_tcb_slot(vcpu)).suspend() {
                    println!("vmm: stopping vCPU {vcpu}: {e}");
                }
                println!("vmm: vCPU {vcpu} off (PSCI CPU_OFF)");
            }
            Event::PowerOn {
                vcpu: target,
                entry,
                context_id,
            } => match start_vcpu(target as u8, entry, context_id) {
                Ok(()) => println!("vmm: vCPU {target} on at {entry:#x} (PSCI CPU_ON)"),
                Err(e) => {
                    vm.psci.set_off(target);
                    println!("vmm: cannot start vCPU {target}: {e}");
                }
            },
            Event::BadAccess { ipa, write } => {
                let what = if write { "write to" } else { "read of" };
                println!("vmm: guest {what} unclaimed or misused {ipa:#x}: external abort");
            }
            Event::BadFetch { ipa } => {
                println!("vmm: guest fetched an instruction from {ipa:#x}: external abort")
            }
            Event::Undecodable { ipa, esr } => {
                println!("vmm: guest access to {ipa:#x} not emulable (esr {esr:#x}): abort")
            }
            Event::UnknownExit { esr, ip } => {
                vm.uart.sink_mut().flush();
                println!("vmm: unknown exit (esr {esr:#x}) at {ip:#x}: vCPU {vcpu} stopped");
            }
        }
    }
}

impl Handler for VmmPd {
    fn init(&mut self) {
        self.nr_vcpus = count_vcpus();
        if self.nr_vcpus == 0 {
            println!("vmm: no guest: the SDF gives this VMM no virtual machine");
            return;
        }
        self.state = state_words().and_then(|w| match StateRegion::new(w) {
            Ok(r) => Some(r),
            Err(e) => {
                println!(
                    "vmm: the device state region is unusable ({e:?}): a restart reboots the guest"
                );
                None
            }
        });
        let io = io();
        io.net = connect_net();
        let blk = connect_blk();
        if io.net.is_some() {
            println!("vmm: virtio-net at transport {NET_TRANSPORT} over the network virtualiser");
        }
        io.blk = blk.map(|(dev, backend, mib)| {
            println!(
                "vmm: virtio-blk at transport {BLK_TRANSPORT} over the blk driver ({mib} MiB)"
            );
            (dev, backend)
        });
        let started = if generation() == 0 {
            self.boot()
        } else if axolotl_pd::fresh_start() {
            // A VM start or reboot from the control plane: the guest begins again, whatever
            // the state region holds.
            println!(
                "vmm: generation {}: starting the guest afresh (asked for)",
                generation()
            );
            self.stop_vcpus();
            self.boot()
        } else {
            self.take_over()
        };
        if !started {
            return;
        }
        if let Some(vm) = self.vm.as_mut() {
            let console = vm.uart.sink_mut();
            console.tx = connect_console_tx();
            // A restarted VMM's stream resynchronises with the driver (lib/ring: what the
            // dead VMM had submitted is dropped by the driver).
            console.poll();
            // The dead VMM may have left the guest's TX FIFO full, TXRIS clear and the guest
            // waiting for its TX interrupt; our stage is empty: room again.
            if self.resuming {
                vm.console_tx_room();
            }
        }
        let (Some(r), Some(d)) = (region(&console_rings), region(&console_data)) else {
            println!("vmm: no console input (the SDF connects no serial driver)");
            return;
        };
        // Our generation as the root task started us, the driver's from its generation table:
        // never from the ring region the driver can write.
        let Some(word) = peer_generation_word(DRIVER) else {
            println!("vmm: no console input: no generation for the driver's channel");
            return;
        };
        let g = Generations {
            own: generation() as u32,
            // SAFETY: the table is mapped read-only for our whole life, written atomically
            // by the root task alone.
            peer: unsafe { Authority::new(NonNull::from(word)) },
        };
        match RxClient::new(r, d, CAPACITY, g) {
            // Each completion is taken whole into the line behind the guest's FIFO.
            Ok(c) if c.buffer_len() > axolotl_vmm_core::pl011::LINE_BYTES => println!(
                "vmm: no console input: the driver's buffers ({} bytes) are longer than the \
                 guest UART's line ({} bytes): map a smaller console_data",
                c.buffer_len(),
                axolotl_vmm_core::pl011::LINE_BYTES
            ),
            Ok(c) => {
                println!("vmm: console input from the serial driver");
                self.rx = Some(c);
                self.feed_console();
                // What it took lives in the device state alone: durable before anything else.
                self.commit();
                DRIVER.notify();
            }
            Err(e) => println!("vmm: no console input: {e:?}"),
        }
    }

    fn notified(&mut self, ch: Channel) {
        if ch == BLK {
            io().count.from_blk += 1;
        } else if ch == NET {
            io().count.from_net += 1;
        }
        if ch == BLK || ch == NET {
            if let Some(vm) = self.vm.as_mut() {
                let which = Devs {
                    blk: ch == BLK,
                    net: ch == NET,
                };
                Self::service_io(vm, which);
            }
        } else if ch == DRIVER {
            self.feed_console();
        } else if ch == CONSOLE_TX {
            // Completions: staged bytes move on, and a guest waiting for room in its UART's
            // TX FIFO gets its TX interrupt.
            let Some(vm) = self.vm.as_mut() else {
                return;
            };
            vm.uart.sink_mut().service();
            vm.console_tx_room();
        } else {
            return;
        }
        // The vCPUs are not running (uniprocessor, and we outrank them): whatever the UART's
        // line raised goes into their list registers now, which the kernel keeps for them
        // (VcpuInjectIrq on a vCPU that is not current writes its saved state).
        self.inject(true, None);
    }

    fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        let reply = self.exit(child, msg);
        if self.resuming && reply.is_some() {
            self.resuming = false;
            println!(
                "vmm: guest running again at {} ns",
                axolotl_sys::time::now_ns()
            );
        }
        reply
    }
}

impl VmmPd {
    /// One guest exit: the reply that resumes the vCPU, or None to leave it stopped.
    fn exit(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        let vcpu = child.id();
        self.exits += 1;
        let f = exit_fault(msg);
        #[cfg(feature = "fault-injection")]
        let point = crate::inject::point_of(match f {
            Some(Fault::VmFault { addr, stored, .. }) => Some((addr, stored.is_some())),
            _ => None,
        });
        #[cfg(feature = "fault-injection")]
        self.failpoint(point);
        let seq = self.seq.get(vcpu as usize).map(|s| s.wrapping_add(1));
        if let Some(seq) = seq {
            self.seq[vcpu as usize] = seq;
        }
        if let Some(seq) = seq
            && self.resync[vcpu as usize]
        {
            self.resync[vcpu as usize] = false;
            let maintenance = match f {
                Some(Fault::VgicMaintenance { lr }) => Some((seq, lr as usize)),
                _ => None,
            };
            self.relist(vcpu, maintenance);
        }
        if let Some(r) = seq.and_then(|n| self.vm.as_ref()?.committed_exit(vcpu.into(), n)) {
            return self.answer_committed(vcpu, r);
        }
        let vm = self.vm.as_mut()?;
        let resume = Reply::Resume {
            advance: false,
            write: None,
            wait: false,
        };
        let mut ack_vppi = None;
        let mut touched_io = Devs::NONE;
        let (reply, event) = match f {
            Some(Fault::VmFault {
                addr,
                prefetch,
                fsr,
                stored,
                ..
            }) => {
                let t_net = virtio_transport(NET_TRANSPORT).regs;
                let t_blk = virtio_transport(BLK_TRANSPORT).regs;
                touched_io = Devs {
                    blk: addr >= t_blk.base && addr - t_blk.base < t_blk.size,
                    net: addr >= t_net.base && addr - t_net.base < t_net.size,
                };
                let c = &mut io().count;
                if addr >= t_net.base && addr - t_net.base < t_net.size {
                    c.net_mmio += 1;
                } else if addr >= t_blk.base && addr - t_blk.base < t_blk.size {
                    c.blk_mmio += 1;
                } else if (0x0800_0000..0x0801_0000).contains(&addr) {
                    c.gicd_mmio += 1;
                } else if (0x080a_0000..0x0900_0000).contains(&addr) {
                    c.gicr_mmio += 1;
                } else {
                    c.other_mmio += 1;
                }
                let value = stored.unwrap_or(0);
                let v = vcpu as usize;
                let io = io();
                match (io.net.as_mut(), io.blk.as_mut()) {
                    (Some((n, _)), Some((b, _))) => vm.vm_fault_with(
                        v,
                        addr,
                        prefetch,
                        fsr,
                        value,
                        &mut [
                            (t_net, n as &mut dyn MmioDevice),
                            (t_blk, b as &mut dyn MmioDevice),
                        ],
                    ),
                    (Some((n, _)), None) => vm.vm_fault_with(
                        v,
                        addr,
                        prefetch,
                        fsr,
                        value,
                        &mut [(t_net, n as &mut dyn MmioDevice)],
                    ),
                    (None, Some((b, _))) => vm.vm_fault_with(
                        v,
                        addr,
                        prefetch,
                        fsr,
                        value,
                        &mut [(t_blk, b as &mut dyn MmioDevice)],
                    ),
                    (None, None) => vm.vm_fault(v, addr, prefetch, fsr, value),
                }
            }
            Some(Fault::VcpuFault {
                esr,
                ip,
                x,
                rt_value,
                ..
            }) => {
                if (esr >> 26) & 0x3f == 1 {
                    io().count.wfx += 1;
                } else {
                    io().count.vcpu_other += 1;
                }
                vm.vcpu_fault(vcpu as usize, esr, ip, x, rt_value)
            }
            Some(Fault::VgicMaintenance { lr }) => {
                io().count.maintenance += 1;
                ack_vppi = vm.maintenance(vcpu as usize, lr as usize);
                (resume, None)
            }
            Some(Fault::VppiEvent { irq }) => {
                io().count.vppi += 1;
                vm.vppi(vcpu as usize, irq as u32);
                (resume, None)
            }
            f => {
                println!(
                    "vmm: vCPU {vcpu} stopped by fault label {} (ip {:#x})",
                    msg.label(),
                    f.and_then(|f| f.ip()).unwrap_or(0)
                );
                return None;
            }
        };
        // Only a state region ever reads a record (after a restart): without one, making it
        // would be a price of recoverability paid for none. With one, it is made and
        // committed with the exit's state (`inject`) only if the exit changed any: built
        // here as a value on every exit, the record took two byte-wise `memcpy`s.
        let record = || ExitRecord {
            seq: seq.unwrap_or(0),
            reply,
            event,
            ack_vppi,
        };
        let exit = match seq {
            Some(_) if self.state.is_some() => Some((vcpu, &record as &dyn Fn() -> ExitRecord)),
            _ => None,
        };
        #[cfg(feature = "fault-injection")]
        if let Some(Event::PowerOn { .. }) = event {
            self.failpoint(crate::inject::Point::CpuOn);
        }
        // The guest may have read its UART's FIFO: input waiting for room goes in now.
        if self.rx_pending {
            self.feed_console();
        }
        // A virtio register access may have been a queue notification, a reset or an
        // interrupt acknowledgement: the devices do their work and set their lines now.
        if touched_io != Devs::NONE
            && let Some(vm) = self.vm.as_mut()
        {
            Self::service_io(vm, touched_io);
        }
        // An exit may have raised anyone's interrupt (an SGI, a shared line); no vCPU runs
        // while we do, so all of them get their list registers filled now. This commits the
        // exit's state before any kernel call acts on it.
        let injected = self.inject(false, exit);
        #[cfg(feature = "fault-injection")]
        if injected > 0 {
            self.failpoint(crate::inject::Point::Inject);
        }
        let _ = injected;
        #[cfg(feature = "fault-injection")]
        if point == crate::inject::Point::Notify {
            self.failpoint(crate::inject::Point::NotifyDone);
        }
        if let Some(irq) = ack_vppi
            && let Err(e) = Vcpu(vcpu_slot(vcpu)).ack_vppi(irq.into())
        {
            println!("vmm: acknowledging vPPI {irq}: {e}");
        }
        if let Some(e) = event {
            let vm = self.vm.as_mut()?;
            Self::on_event(vm, vcpu, e, self.exits);
            // A vCPU that could not be started is off again.
            if matches!(e, Event::PowerOn { .. }) {
                self.commit();
            }
        }
        reply.to_resume().map(axolotl_pd::resume)
    }
}

/// `fault_of` for the exit path: the message words read from the IPC buffer found once,
/// not once per word (`get_mr`), which was some 50 instructions of every exit.
#[inline]
fn exit_fault(msg: MessageInfo) -> Option<Fault> {
    // SAFETY: the event loop just received this message into our IPC buffer, which is
    // mapped; no system call is made while `words` lives (it ends with this function).
    let words = unsafe { axolotl_sys::ipc::msg_words() };
    // A volatile read per word: plain reads became a call to a byte-wise `memcpy` (the
    // target's, not knowing the buffer's alignment).
    Fault::from_message(msg, |i| {
        words
            .get(i)
            // SAFETY: a reference to a word of the mapped buffer.
            .map_or(0, |w| unsafe { core::ptr::read_volatile(w) })
    })
}

axolotl_pd::protection_domain!(VmmPd {
    vm: None,
    rx: None,
    rx_pending: false,
    rx_errors: 0,
    nr_vcpus: 0,
    exits: 0,
    state: None,
    seq: [0; axolotl_vmm_core::MAX_VCPUS],
    resync: [false; axolotl_vmm_core::MAX_VCPUS],
    resuming: false,
    #[cfg(feature = "fault-injection")]
    trigger: crate::inject::Trigger::new(),
});
