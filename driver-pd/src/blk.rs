//! The storage PDs (target only, issue #15, `docs/storage.md`): the virtio-blk driver and the
//! pattern client, thin over `axolotl_blk`.

use core::ptr::NonNull;

use axolotl_blk::SECTOR_SIZE;
use axolotl_blk::layout::{
    BOUNCE_SLOTS, CAPACITY, DATA_BYTES, DMA_BYTES, IDS, MAX_BYTES, MAX_SECTORS, RINGS_BYTES, SLOTS,
};
use axolotl_blk::pattern::{PatternClient, PatternEvent, Phase};
use axolotl_blk::virtio::{ClientData, VirtioBlkDevice};
use axolotl_blk::{Activity, BlkClient, BlkServer, BlockDevice, DATA_START};
use axolotl_pd::{Channel, Handler, SetVar, generation, now_us, peer_generation_word, println};
use axolotl_ring::{Authority, Deadline, Generations, Progress, SharedRegion};
use axolotl_virtio_hal::{DmaRegion, RegionHal, StaticDmaRegion};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};

use crate::{
    BLK_CLIENT_CHANNEL, BLK_DRIVER_CHANNEL, BLK_IRQ_CHANNEL, BLK_TEST_SECTORS, BLK_TEST_SEED,
    VIRTIO_BLK_OFFSET, VIRTIO_BLK_PAGE, VIRTIO_MMIO_SIZE,
};

// The driver's maps and setvars (SDF contract in docs/storage.md).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_regs: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_dma: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_dma_paddr: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_client_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_client_data: SetVar = SetVar::new();
/// The client data region's physical address (`<setvar region_paddr>`): given, the device
/// DMAs straight into and out of the client's buffers; 0 (not in the SDF, or a region not
/// physically contiguous), the driver copies through bounce buffers in its DMA region.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_client_data_paddr: SetVar = SetVar::new();

// The client's maps: its connection to the driver.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static blk_data: SetVar = SetVar::new();

/// The driver's DMA region: every byte the device may touch.
static DMA: DmaRegion = DmaRegion::new();

struct Dma;

impl StaticDmaRegion for Dma {
    fn region() -> &'static DmaRegion {
        &DMA
    }
}

type Device = VirtioBlkDevice<RegionHal<Dma>, MmioTransport<'static>>;

const PATTERN_SECTORS: u32 = crate::BLK_PATTERN_SECTORS;
const _: () = assert!(PATTERN_SECTORS <= MAX_SECTORS);

const IRQ: Channel = Channel::new(BLK_IRQ_CHANNEL);
const CLIENT: Channel = Channel::new(BLK_CLIENT_CHANNEL);
const DRIVER: Channel = Channel::new(BLK_DRIVER_CHANNEL);

fn region(var: &SetVar, len: usize) -> Option<SharedRegion> {
    let ptr = NonNull::new(var.get() as *mut u8)?;
    // SAFETY: the SDF maps `len` bytes at this vaddr for the PD's lifetime, shared with
    // exactly one peer, and they are reached only through lib/ring and lib/blk.
    Some(unsafe { SharedRegion::new(ptr, len) })
}

/// This PD's generations on its connection over `ch`: its own as the root task started it
/// (`x0`), its peer's from the root task's generation table.
fn generations(ch: Channel) -> Option<Generations> {
    let word = peer_generation_word(ch)?;
    Some(Generations {
        own: generation() as u32,
        // SAFETY: the generation table is mapped read-only for the PD's whole life and
        // written by the root task only, atomically.
        peer: unsafe { Authority::new(NonNull::from(word)) },
    })
}

/// The virtio-blk driver PD: one client connection.
pub struct BlkDriver {
    server: Option<BlkServer<Device, IDS>>,
    /// Fault injection (test systems only): in generations below `.1`, crash once the
    /// device completed `.0` bytes in this incarnation.
    crash: Option<(u64, u64)>,
    irqs: u64,
    /// Virtual-time stamps (µs) of this incarnation's start, for the restart pause's
    /// breakdown (docs/benchmarks.md): `init` entered, device and connection set up, the
    /// first poll (reclaim) done and the client notified, the first interrupt. Printed
    /// once traffic runs again ([`STAMPS_AT_IRQ`]), not inside the pause they measure.
    stamps: [u64; 4],
    stamped: bool,
}

/// The device completions after which an incarnation prints its start's stamps: late
/// enough that the client has long seen its first completion (the line is not part of the
/// pause it breaks down).
const STAMPS_AFTER: u64 = 32;

impl BlkDriver {
    pub const fn new() -> Self {
        Self {
            server: None,
            crash: None,
            irqs: 0,
            stamps: [0; 4],
            stamped: false,
        }
    }

    /// A driver that, in each of its first `generations` incarnations, writes to an unmapped
    /// address on the first notification after the device completed `bytes` of reads and
    /// writes (before looking at the device or the ring): for the storage restart tests
    /// only. Bytes, not requests, so that the crashes fall at the same places in a
    /// workload whatever size its requests are (the pattern client's 16 KiB, a guest's
    /// up to `MAX_BYTES`).
    pub const fn crashing_after(bytes: u64, generations: u64) -> Self {
        let mut d = Self::new();
        d.crash = Some((bytes, generations));
        d
    }

    fn start(&mut self) -> Result<BlkServer<Device, IDS>, &'static str> {
        let regs = NonNull::new(blk_regs.get() as *mut u8).ok_or("blk_regs not set")?;
        let dma = NonNull::new(blk_dma.get() as *mut u8).ok_or("blk_dma not set")?;
        let paddr = blk_dma_paddr.get();
        if paddr == 0 {
            return Err("blk_dma_paddr not set");
        }
        // SAFETY: the SDF maps the DMA region (DMA_BYTES, one physically contiguous large
        // page at `paddr`) read-write for this PD only, and only this region hands it out.
        unsafe { DMA.init(dma, paddr, DMA_BYTES) }.map_err(|_| "DMA region misaligned")?;
        // SAFETY: the SDF maps the virtio-mmio page uncached at `regs` for this PD only.
        unsafe { DMA.set_mmio(regs, VIRTIO_BLK_PAGE, 0x1000) };
        // virtio-drivers' flush is blocking, with its header and status on the stack.
        if !DMA.reserve_bounce_pool() {
            return Err("DMA region too small");
        }
        // SAFETY: the transport's registers are VIRTIO_MMIO_SIZE bytes at this offset of the
        // page mapped above, for the PD's whole life, and nothing else touches them.
        let transport = unsafe {
            MmioTransport::new(
                regs.add(VIRTIO_BLK_OFFSET).cast::<VirtIOHeader>(),
                VIRTIO_MMIO_SIZE,
            )
        }
        .map_err(|_| "no virtio device at transport 31 (is QEMU's -drive missing?)")?;
        let data_va =
            NonNull::new(blk_client_data.get() as *mut u8).ok_or("client data not set")?;
        let data_pa = blk_client_data_paddr.get();
        let dev = if data_pa != 0 {
            // Only the data area: the command page (records, storage info) is never a
            // buffer, so the HAL refuses it to the device as well.
            // SAFETY: the SDF maps DATA_BYTES of the client's data region at `data_va`
            // (2 MiB pages: contiguous at `data_pa`, which the root task checked), for the
            // PD's life; the client hands its buffers to us to be read and written.
            unsafe {
                DMA.set_client_window(
                    data_va.add(DATA_START),
                    data_pa + DATA_START as u64,
                    DATA_BYTES - DATA_START,
                )
            }
            .map_err(|_| "client data region misaligned")?;
            let client = ClientData {
                vaddr: data_va,
                len: DATA_BYTES,
            };
            Device::new_direct(transport, &DMA, SLOTS, MAX_BYTES, client)
        } else {
            Device::new(transport, &DMA, BOUNCE_SLOTS, MAX_BYTES)
        };
        let dev = dev.map_err(|e| match e {
            axolotl_blk::virtio::InitError::NotABlockDevice(_) => {
                "transport 31 is not a block device"
            }
            axolotl_blk::virtio::InitError::Device(_) => "the device would not initialise",
            axolotl_blk::virtio::InitError::NoDmaMemory => "DMA region too small",
            axolotl_blk::virtio::InitError::BadConfig => "bad slot configuration",
        })?;
        let rings = region(&blk_client_rings, RINGS_BYTES).ok_or("client rings not set")?;
        let data = region(&blk_client_data, DATA_BYTES).ok_or("client data not set")?;
        let g = generations(CLIENT).ok_or("no generation for the client's channel")?;
        BlkServer::new(dev, rings, data, CAPACITY, g).map_err(|_| "bad connection layout")
    }

    fn act(&mut self, act: Activity) {
        let Some(server) = self.server.as_ref() else {
            return;
        };
        if act.notify {
            CLIENT.notify();
        }
        if let Some(c) = act.fault {
            println!("blk_driver: the client is corrupt ({c:?}); reporting it");
            CLIENT.report_peer(axolotl_ring::pd_generation(server.client_generation()));
        }
        if let Some(why) = act.device_broken {
            // Nothing the device says can be believed: only a reset helps, and a restart
            // of this PD is one (its init resets the device; the client re-issues).
            panic!("blk_driver: {why}");
        }
    }
}

impl Default for BlkDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler for BlkDriver {
    fn init(&mut self) {
        let g = generation();
        self.stamps[0] = axolotl_pd::now_us();
        let started = self.start();
        self.stamps[1] = axolotl_pd::now_us();
        match started {
            Ok(mut server) => {
                println!(
                    "blk_driver: generation {g}: virtio-blk at {:#x}, {} sectors, serving blk_client (ring generation {})",
                    VIRTIO_BLK_PAGE + VIRTIO_BLK_OFFSET as u64,
                    server.device().capacity(),
                    server.generation(),
                );
                if !server.device().direct() {
                    // Worth a line: the system gave no paddr for the client's data region,
                    // so every byte is copied once more (docs/storage.md, "DMA").
                    println!(
                        "blk_driver: generation {g}: bounce buffers (no blk_client_data_paddr)"
                    );
                }
                self.server = Some(server);
            }
            Err(e) => {
                println!("blk_driver: generation {g}: cannot start: {e}");
                return;
            }
        }
        // A previous incarnation may have died with the IRQ taken but not acknowledged.
        let _ = IRQ.irq_ack();
        if let Some(s) = self.server.as_mut() {
            let act = s.poll();
            self.act(act);
        }
        // Whatever the handshake did: the client looks now.
        CLIENT.notify();
        self.stamps[2] = axolotl_pd::now_us();
    }

    fn notified(&mut self, ch: Channel) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let done = server.stats().device_bytes;
        if let Some((n, gens)) = self.crash
            && generation() < gens
            && done >= n
        {
            println!(
                "blk_driver: fault injection: wild write after {} device completions ({done} bytes), {} requests in the device, at {} us",
                server.stats().device_completed,
                server.in_device(),
                axolotl_pd::now_us()
            );
            // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
            unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
        }
        let act = if ch == IRQ {
            server.device().ack_interrupt();
            let act = server.poll();
            if let Err(e) = IRQ.irq_ack() {
                println!("blk_driver: IRQ ack failed: {e:?}");
            }
            self.irqs += 1;
            if self.irqs == 1 {
                self.stamps[3] = axolotl_pd::now_us();
            }
            if !self.stamped && server.stats().device_completed >= STAMPS_AFTER {
                self.stamped = true;
                let [init, started, polled, irq] = self.stamps;
                println!(
                    "blk_driver: generation {}: init at {init} us, device and connection set up +{} us, first poll and notify +{} us, first interrupt +{} us",
                    generation(),
                    started - init,
                    polled - started,
                    irq.saturating_sub(polled)
                );
            }
            act
        } else {
            server.poll()
        };
        self.act(act);
    }
}

/// A driver restart's I/O pause as the client sees it (issue #15's "last completion before
/// the fault to the first after it", virtual µs): from the last completion taken from the
/// ring before the client saw the driver's new generation to the first taken after it.
/// Printed when it closes, once: the line's own cost falls after the pause.
struct Pause {
    last_completion_us: u64,
    restarts: u64,
    /// A restart seen: (the last completion before it, when it was seen, when the
    /// re-issues were first notified to the driver).
    open: Option<(u64, u64, Option<u64>)>,
}

impl Pause {
    const fn new() -> Self {
        Pause {
            last_completion_us: 0,
            restarts: 0,
            open: None,
        }
    }

    fn restarted(&mut self, now: u64) {
        self.restarts += 1;
        self.open = Some((self.last_completion_us, now, None));
    }

    fn notified(&mut self, now: u64) {
        if let Some((_, _, n @ None)) = self.open.as_mut() {
            *n = Some(now);
        }
    }

    fn completed(&mut self, now: u64) {
        if let Some((from, seen, notified)) = self.open.take() {
            // No completion can come between the fault and the new driver's first one:
            // the old incarnation is dead, the new one answers nothing before its device
            // reset and our re-issue.
            println!(
                "blk_client: restart pause {} us (last completion before driver restart {} at {from} us, restart seen at {seen} us, re-issues notified at {} us, first completion after it at {now} us)",
                now.saturating_sub(from),
                self.restarts,
                notified.unwrap_or(0),
            );
        }
        self.last_completion_us = now;
    }
}

/// How long the pattern client waits for a completion while requests are in flight before
/// it reports the driver (checked at the monitor's pings: PDs with `heartbeat_ms` only). A
/// 16 KiB request takes QEMU's disk milliseconds; a second without any completion is a
/// driver that runs and answers heartbeats but no longer serves the connection (the blk
/// campaign's id 34: a lost completion after a stack flip in the driver, docs/resilience.md).
const CLIENT_DEADLINE_US: u64 = 1_000_000;

/// The storage test's client PD: writes the seeded pattern over the first
/// [`BLK_TEST_SECTORS`] sectors, flushes, reads them back, compares, and prints a verdict.
pub struct BlkPatternClient {
    p: Option<PatternClient<IDS>>,
    phase: Phase,
    restarts_seen: u64,
    errors: u32,
    done: bool,
    /// The I/O pause of each driver restart (issue #15).
    pause: Pause,
    /// Requests in flight that stop completing ([`CLIENT_DEADLINE_US`]).
    deadline: Deadline,
}

impl BlkPatternClient {
    pub const fn new() -> Self {
        Self {
            p: None,
            phase: Phase::Writing,
            restarts_seen: 0,
            errors: 0,
            done: false,
            pause: Pause::new(),
            deadline: Deadline::new(CLIENT_DEADLINE_US),
        }
    }

    fn step(&mut self) {
        let Some(p) = self.p.as_mut() else {
            return;
        };
        // Completions stamped when taken from the ring, before this client checks them
        // and makes the next requests' data: the pause is the storage path's, not the
        // workload's.
        let pause = &mut self.pause;
        match p.poll_with(|e| match e {
            PatternEvent::Completed => pause.completed(axolotl_pd::now_us()),
            PatternEvent::DriverRestarted => pause.restarted(axolotl_pd::now_us()),
            PatternEvent::Notify => {
                DRIVER.notify();
                pause.notified(axolotl_pd::now_us());
            }
        }) {
            Ok(_) => {}
            Err(e) => {
                self.errors += 1;
                if self.errors <= 3 {
                    println!("blk_client: ERROR: {e:?}");
                }
                // The driver broke the protocol: the monitor restarts it, and its new
                // generation makes us resynchronise and re-issue.
                report_driver(p.client().driver_generation());
                return;
            }
        }
        let cs = p.client().stats();
        if cs.driver_restarts != self.restarts_seen {
            self.restarts_seen = cs.driver_restarts;
            // A new incarnation gets a whole limit: the wait before it was the old one's.
            self.deadline.restart();
            println!(
                "blk_client: driver restarted ({} so far) in phase {:?} at sector {}; re-issuing what it held",
                cs.driver_restarts,
                p.phase(),
                p.position()
            );
        }
        if p.phase() != self.phase {
            self.phase = p.phase();
            println!("blk_client: phase {:?}", self.phase);
        }
        if p.phase() == Phase::Done && !self.done {
            self.done = true;
            let s = p.stats();
            let pass = s.failed == 0 && s.mismatched == 0 && self.errors == 0;
            println!(
                "blk_client: verdict: {}: {} KiB written, flushed and read back (writes {}, reads {}, flushes {}, failed {}, mismatched sectors {}, driver restarts {}, reissued {}, errors {})",
                if pass { "PASS" } else { "FAIL" },
                BLK_TEST_SECTORS / 2,
                s.writes,
                s.reads,
                s.flushes,
                s.failed,
                s.mismatched,
                cs.driver_restarts,
                cs.reissued,
                self.errors
            );
        }
    }
}

impl Default for BlkPatternClient {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler for BlkPatternClient {
    fn init(&mut self) {
        let (Some(r), Some(d)) = (
            region(&blk_rings, RINGS_BYTES),
            region(&blk_data, DATA_BYTES),
        ) else {
            println!("blk_client: regions not set");
            return;
        };
        let Some(g) = generations(DRIVER) else {
            println!("blk_client: cannot start: no generation for the driver's channel");
            return;
        };
        let p = BlkClient::new(r, d, CAPACITY, g)
            .ok()
            .and_then(|c| PatternClient::new(c, BLK_TEST_SEED, BLK_TEST_SECTORS, PATTERN_SECTORS));
        let Some(p) = p else {
            println!("blk_client: cannot start: bad connection layout");
            return;
        };
        println!(
            "blk_client: generation {}: writing the pattern {BLK_TEST_SEED:#x} over {} KiB, {IDS} requests of up to {} KiB in flight",
            generation(),
            BLK_TEST_SECTORS / 2,
            PATTERN_SECTORS as usize * SECTOR_SIZE / 1024
        );
        self.p = Some(p);
        self.step();
        DRIVER.notify();
    }

    fn notified(&mut self, _: Channel) {
        self.step();
    }

    /// Requests in flight that stop completing: look at the ring once more (a completion
    /// whose notification was lost counts), then report the driver, which the monitor
    /// restarts; the client re-issues what it held.
    fn heartbeat(&mut self) {
        self.step();
        let Some(p) = self.p.as_ref() else {
            return;
        };
        let c = p.client();
        let state = c.link_state();
        let Progress::Overdue { stalled_us } =
            self.deadline
                .check_link(now_us(), state, c.outstanding(), c.stats().completed)
        else {
            return;
        };
        if state == axolotl_ring::LinkState::Connected {
            println!(
                "blk_client: no completion from the driver in {} ms with {} in flight; reporting it",
                stalled_us / 1000,
                c.outstanding()
            );
        } else {
            println!(
                "blk_client: the driver has not acknowledged the connection in {} ms; reporting it",
                stalled_us / 1000
            );
        }
        report_driver(c.driver_generation());
    }
}

/// Reports the driver incarnation the client last saw (or the one its channel names) to
/// the monitor, and notifies the driver's channel: a restarted driver's first poll is what
/// resynchronises the connection.
fn report_driver(seen: Option<u32>) {
    let restarted = DRIVER.report_peer(seen);
    println!("blk_client: reported the driver, restarted: {restarted}");
    DRIVER.notify();
}
