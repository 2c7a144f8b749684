//! Issue #15's network PDs (target only; docs/network.md): the virtio-net driver, the
//! network virtualiser and the native echo clients, thin around `axolotl_net`.

use core::ptr::NonNull;

use axolotl_net::link::{DATA_BYTES, RINGS_BYTES};
use axolotl_net::salvage::{RECORD_WORDS, Refusal, salvage_rx};
use axolotl_net::{
    Accusation, Accuser, Activity, Check, Contradiction, Dir, Direct, Echo, FrameBuf, FrameQueue,
    LinkRegions, MAX_FRAME, MIN_FRAME, NetClient, NetServer, Router, check,
};
use axolotl_pd::{Channel, Handler, SetVar, generation, now_us, peer_generation_word, println};
use axolotl_ring::{
    Authority, Corruption, Deadline, Generations, LinkState, Progress, SharedRegion,
};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, Transport};

use crate::dma::{DMA, NetHal};
use crate::nic::{Nic, QUEUE, RecordSlot};
use crate::{
    ECHO_PORT, NET_CLIENT_VIRT_CHANNEL, NET_CLIENTS, NET_DMA_BYTES, NET_DRIVER_IRQ_CHANNEL,
    NET_DRIVER_VIRT_CHANNEL, NET_MMIO_OFFSET, NET_MMIO_SIZE, VIRT_CLIENT_CHANNEL_BASE,
    VIRT_DRIVER_CHANNEL,
};

// The driver's maps and setvars (SDF contract, tests/systems/net-echo.system).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static net_mmio: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static dma_vaddr: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static dma_paddr: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static virt_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static virt_data: SetVar = SetVar::new();

// The virtualiser's.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static driver_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static driver_data: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client0_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client0_data: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client1_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client1_data: SetVar = SetVar::new();

// A native client's.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static net_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static net_data: SetVar = SetVar::new();

/// The link whose regions the SDF maps at the vaddrs patched into `rings` and `data`.
fn link(rings: &SetVar, data: &SetVar) -> Option<LinkRegions> {
    let r = NonNull::new(rings.get() as *mut u8)?;
    let d = NonNull::new(data.get() as *mut u8)?;
    // SAFETY: the SDF maps RINGS_BYTES and DATA_BYTES read-write at these vaddrs for the PD's
    // lifetime, shared with exactly one peer, reached only through lib/ring and lib/net.
    let (r, d) = unsafe {
        (
            SharedRegion::new(r, RINGS_BYTES),
            SharedRegion::new(d, DATA_BYTES),
        )
    };
    LinkRegions::split(r, d).ok()
}

/// This PD's generations on its link over channel `ch`: its own from `x0`, its peer's from
/// the root task's generation table.
fn generations(ch: Channel) -> Option<Generations> {
    let word = peer_generation_word(ch)?;
    Some(Generations {
        own: generation() as u32,
        // SAFETY: the generation table is mapped read-only for the PD's whole life and
        // written by the root task only, atomically.
        peer: unsafe { Authority::new(NonNull::from(word)) },
    })
}

/// Reports the peer of a link found corrupt to the monitor, which restarts it (its new
/// generation then resynchronises the link); and once more if the link is still corrupt
/// after that restart, which the monitor holds against this PD ([`Accuser`]).
fn accuse(
    who: &str,
    peer: &str,
    ch: Channel,
    accuser: &mut Accuser,
    fault: Option<(Dir, Corruption)>,
    awaiting: bool,
) {
    let Some((dir, c)) = fault else {
        if awaiting {
            // The peer restarted after sending damaged frames: its new incarnation's first
            // frame decides (`Accuser::check_link`). Rare: the clock read is fine.
            let generation = ch.peer_generation().unwrap_or(u32::MAX);
            accuser.check_link(false, true, generation, now_us());
        } else {
            // The hot path: a sound link costs no clock or table read.
            accuser.check(false, 0, 0);
        }
        return;
    };
    let generation = ch.peer_generation().unwrap_or(u32::MAX);
    match accuser.check_link(true, awaiting, generation, now_us()) {
        Some(Accusation::First { generation }) => {
            println!("{who}: {peer} is corrupt ({dir:?}: {c:?}); reporting it");
            ch.report_corruption(generation);
        }
        Some(Accusation::Again { generation }) => {
            println!(
                "{who}: {peer} is still corrupt after its restart ({dir:?}: {c:?}); reporting generation {generation} again"
            );
            let restarted = ch.report_corruption(generation);
            println!("{who}: reported {peer} again, acted on: {restarted}");
        }
        None => {}
    }
}

/// A link whose records lib/ring contradicts, or a frame this PD damaged in its own copy
/// (lib/net `check`): this PD's own state is corrupt ([`Contradiction`]), nobody else's. Fail-stop, so that the monitor restarts it from its
/// clean image, instead of drifting on with a link that stalls.
fn fail_stop_on(who: &str, c: Option<Contradiction>) {
    match c {
        Some(c @ Contradiction::Copy { .. }) => {
            panic!(
                "{who}: own copy of a frame failed its check, the source did not ({c:?}): fail-stop"
            )
        }
        Some(c) => panic!("{who}: own records contradicted by the ring ({c:?}): fail-stop"),
        None => {}
    }
}

/// Frames handed to the server of a link that stop coming back, or a link the server never
/// acknowledges: checked at the monitor's heartbeat pings (PDs with `heartbeat_ms` only).
/// `true`: report the server.
fn overdue(who: &str, peer: &str, deadline: &mut Deadline, link: &NetClient) -> bool {
    let state = link.link_state();
    let Progress::Overdue { stalled_us } = deadline.check_link(
        now_us(),
        state,
        link.tx_in_flight(),
        link.stats().tx_returned,
    ) else {
        return false;
    };
    if state != LinkState::Connected {
        println!(
            "{who}: {peer} has not acknowledged the link in {} ms; reporting it",
            stalled_us / 1000
        );
        return true;
    }
    println!(
        "{who}: no transmit completion from {peer} in {} ms with {} in flight; reporting it",
        stalled_us / 1000,
        link.tx_in_flight()
    );
    true
}

/// How long the virtualiser waits for the driver to give back a frame it handed over
/// while frames are in flight (the driver takes a frame as soon as the device has room;
/// QEMU's device takes them at once). Receive buffers are not watched: they stay with the
/// driver for as long as the network is quiet, and a quiet network is not a dead one.
const VIRT_DEADLINE_US: u64 = 1_000_000;
/// The same for a native client towards the virtualiser: longer, so that a stalled driver
/// (which stalls the virtualiser's transmit path too) is the virtualiser's to report, and
/// its restart clears the stall before the clients would accuse the innocent virtualiser.
const CLIENT_DEADLINE_US: u64 = 3_000_000;

/// A fault the test systems inject into the driver, per generation.
#[derive(Clone, Copy, Debug)]
pub enum Inject {
    /// Write to an unmapped address once this incarnation moved this many frames.
    Crash(u64),
    /// The same, but only at a moment the device has completed a received frame that this
    /// incarnation has not forwarded yet: the next one must salvage it.
    CrashRxPending(u64),
    /// Spin forever once this incarnation moved this many frames.
    Hang(u64),
    /// Once this incarnation moved this many frames, take its interrupts without looking at
    /// the device: a lost notification, running and answering heartbeats (the campaign's id
    /// 681, a flip in `memset`, stopped the receive path so).
    DeafRx(u64),
}

type Device = Nic<NetHal, MmioTransport<'static>>;

/// Frames on their way up that the virtualiser has no buffer for yet: the ones salvaged
/// from a dead incarnation's receive queue, and the ones a dead virtualiser never read.
/// In .bss: too large for the handler's stack.
static mut DRIVER_HOLD: FrameQueue<QUEUE> = FrameQueue::new();

fn driver_hold() -> &'static mut FrameQueue<QUEUE> {
    // SAFETY: this PD is single-threaded and every use of the reference ends before the
    // next call (handlers do not nest).
    unsafe { (&raw mut DRIVER_HOLD).as_mut().unwrap_unchecked() }
}

/// Resets the NIC and sets it up in the DMA region (from its start: whatever an earlier
/// incarnation allocated there died with the device's reset). Before the region is reused,
/// the frames the device completed into the last incarnation's receive buffers and that
/// it never forwarded are copied into `hold` (docs/network.md, "Restarts lose no frame
/// towards a client"). Frames that arrive meanwhile wait in QEMU's queue for the NIC: a
/// virtio-net device that is reset or has no receive buffer holds them and delivers them
/// once buffers are posted.
fn start_device(hold: &mut FrameQueue<QUEUE>) -> Result<Device, &'static str> {
    let base = net_mmio.get() as usize;
    let (vaddr, paddr) = (dma_vaddr.get() as usize, dma_paddr.get());
    if base == 0 || vaddr == 0 || paddr == 0 {
        return Err("net_mmio, dma_vaddr or dma_paddr not set");
    }
    let header = NonNull::new((base + NET_MMIO_OFFSET) as *mut VirtIOHeader).ok_or("null")?;
    // SAFETY: the SDF maps the virtio-mmio page uncached for this PD alone, for its life.
    let mut transport = unsafe { MmioTransport::new(header, NET_MMIO_SIZE) }
        .map_err(|_| "no virtio-mmio device at transport 30 (is the NIC missing?)")?;
    // Reset first: from here the device writes nothing into the old queues.
    transport.set_status(DeviceStatus::empty());
    let record_at = NonNull::new(vaddr as *mut u32).ok_or("null")?;
    // SAFETY: the record's place (the region's first page, see below), written only by
    // incarnations of this PD, the last of which is gone.
    let words: [u32; RECORD_WORDS] = unsafe { RecordSlot::read(record_at) };
    // SAFETY: the SDF maps NET_DMA_BYTES at `vaddr` for this PD alone; the device is
    // reset, so nothing writes the region while this view lives.
    let region = unsafe { core::slice::from_raw_parts(vaddr as *const u8, NET_DMA_BYTES) };
    match salvage_rx(&words, region, paddr, |f| {
        hold.push_back(f);
    }) {
        Ok(s) if s.frames + s.refused > 0 => println!(
            "net_driver: generation {}: salvaged {} frame(s) the device had completed for the last incarnation ({} refused)",
            generation(),
            s.frames,
            s.refused
        ),
        Ok(_) | Err(Refusal::NoRecord) => {}
        Err(e) => println!("net_driver: the last incarnation's receive queue refused: {e:?}"),
    }
    if !DMA.init(vaddr, paddr, NET_DMA_BYTES) {
        return Err("DMA region unaligned");
    }
    // The record's page, first, so that it is at the same place for the next incarnation.
    let (_, page) = DMA.alloc(1).ok_or("DMA region too small")?;
    // SAFETY: a page of the region that nothing else is allocated over and the device is
    // never given.
    let slot = unsafe { RecordSlot::new(NonNull::new(page as *mut u32).ok_or("null")?) };
    Nic::new(transport, Some(slot))
}

/// The virtio-net driver PD: the device on one side, the virtualiser's link on the other
/// (this PD is its server). Started and restarted alike: the device is reset and its queues
/// rebuilt, the link resynchronised by lib/ring.
pub struct NetDriver {
    dev: Option<Device>,
    server: Option<NetServer>,
    /// Frames moved (either way) by this incarnation.
    frames: u64,
    /// Per generation (index), the fault to inject; test systems only.
    inject: &'static [Option<Inject>],
    device_resets: u64,
    accuser: Accuser,
    /// Frames taken from the device by this incarnation.
    rx_frames: u64,
    /// [`Inject::DeafRx`] struck (test systems only).
    deaf: bool,
    /// Received frames that wait (in the device or held) while the virtualiser has buffers
    /// for them must keep moving: checked at the monitor's heartbeat pings.
    rx_watch: Deadline,
}

/// How long a received frame may wait with the virtualiser's buffers free before the
/// driver takes itself for stalled. Nothing of its own keeps it waiting: the driver takes
/// a frame as soon as it is notified of it and has a buffer. Two heartbeats and more of
/// the campaign systems' 250 ms: a frame that arrived just before a ping, its interrupt
/// still queued, has moved by the next one.
const RX_STALL_US: u64 = 500_000;

const IRQ: Channel = Channel::new(NET_DRIVER_IRQ_CHANNEL);
const VIRT: Channel = Channel::new(NET_DRIVER_VIRT_CHANNEL);

impl Default for NetDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl NetDriver {
    pub const fn new() -> Self {
        Self::injecting(&[])
    }

    /// A driver that injects `inject[g]` in generation `g`: for the restart tests only.
    pub const fn injecting(inject: &'static [Option<Inject>]) -> Self {
        NetDriver {
            dev: None,
            server: None,
            frames: 0,
            inject,
            device_resets: 0,
            accuser: Accuser::new(),
            rx_frames: 0,
            rx_watch: Deadline::new(RX_STALL_US),
            deaf: false,
        }
    }

    /// Whether this incarnation's injected fault ([`Inject::DeafRx`]) has made it deaf.
    fn deaf(&mut self) -> bool {
        let g = generation() as usize;
        if let Some(Inject::DeafRx(n)) = self.inject.get(g).copied().flatten()
            && self.frames >= n
            && !self.deaf
        {
            println!(
                "net_driver: fault injection: deaf to the device's interrupts after {} frames",
                self.frames
            );
            self.deaf = true;
        }
        self.deaf
    }

    fn maybe_inject(&self) {
        let g = generation() as usize;
        let rx_pending = self.dev.as_ref().is_some_and(|d| d.rx_pending());
        match self.inject.get(g).copied().flatten() {
            Some(Inject::Crash(n)) if self.frames >= n => {
                println!(
                    "net_driver: fault injection: wild write after {} frames",
                    self.frames
                );
                // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
            }
            Some(Inject::CrashRxPending(n)) if self.frames >= n && rx_pending => {
                println!(
                    "net_driver: fault injection: wild write after {} frames, a received frame not forwarded",
                    self.frames
                );
                // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
            }
            Some(Inject::Hang(n)) if self.frames >= n => {
                println!(
                    "net_driver: fault injection: hanging after {} frames",
                    self.frames
                );
                loop {
                    core::hint::spin_loop();
                }
            }
            _ => {}
        }
    }

    /// Moves everything that can move, in bounded rounds; the device is reset if it claims
    /// anything impossible.
    fn work(&mut self) {
        let (Some(dev), Some(server)) = (self.dev.as_mut(), self.server.as_mut()) else {
            return;
        };
        let hold = driver_hold();
        let mut notify = false;
        let mut result = Ok(());
        for _ in 0..64 {
            let act: Activity = server.poll_holding(hold);
            fail_stop_on("net_driver", act.contradiction);
            notify |= act.notify;
            accuse(
                "net_driver",
                "net_virt",
                VIRT,
                &mut self.accuser,
                server.fault(),
                server.awaiting_frame(),
            );
            let mut progress = act.notify || act.again;
            match dev.reap_tx() {
                Ok(p) => progress |= p,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            while dev.tx_room() {
                // Straight from the virtualiser's buffer into the DMA buffer: one copy,
                // verified in its own loop against the check the frame carries: a frame
                // goes to the device only if the copy matches (lib/net `check`). A copy
                // that does not, from a buffer that still does, is this PD's own fault
                // (`Contradiction::Copy`: fail-stop below, before anything else is sent);
                // a buffer that does not match either is dropped and the virtualiser
                // reported (`server.fault()`).
                let mut sent = Ok(());
                if server
                    .take_tx_verified(&mut notify, |len, fill| {
                        sent = dev.send_with(len, |b| fill(b));
                    })
                    .is_none()
                {
                    break;
                }
                fail_stop_on("net_driver", server.contradiction());
                if let Err(e) = sent {
                    result = Err(e);
                    break;
                }
                self.frames += 1;
                progress = true;
            }
            // Only what can go straight on: the rest waits with the device (and QEMU's
            // queue behind it), after anything held.
            while server.can_deliver(hold) {
                let (frames, rx_frames) = (&mut self.frames, &mut self.rx_frames);
                match dev.next_rx(|f| {
                    notify |= server.deliver_holding(f, hold);
                    *frames += 1;
                    *rx_frames += 1;
                }) {
                    Ok(true) => progress = true,
                    Ok(false) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_err() || !progress {
                break;
            }
        }
        fail_stop_on("net_driver", server.contradiction());
        if notify {
            VIRT.notify();
        }
        if let Err(e) = result {
            // The device broke virtio's rules: start it afresh (what a restart would do,
            // without losing the link).
            self.device_resets += 1;
            println!("net_driver: device error {e:?}; resetting the device");
            self.dev = None;
            match start_device(driver_hold()) {
                Ok(d) => self.dev = Some(d),
                Err(e) => println!("net_driver: ERROR: device reset failed: {e}"),
            }
        }
    }
}

impl Handler for NetDriver {
    fn init(&mut self) {
        let g = generation();
        let dev = match start_device(driver_hold()) {
            Ok(d) => d,
            Err(e) => {
                println!("net_driver: generation {g}: cannot start: {e}");
                return;
            }
        };
        let mac = dev.mac();
        let (Some(regions), Some(rx), Some(tx)) = (
            link(&virt_rings, &virt_data),
            generations(VIRT),
            generations(VIRT),
        ) else {
            println!("net_driver: generation {g}: cannot start: no link to the virtualiser");
            return;
        };
        match NetServer::new(regions, rx, tx) {
            Ok(s) => self.server = Some(s),
            Err(e) => {
                println!("net_driver: generation {g}: cannot start: {e:?}");
                return;
            }
        }
        println!(
            "net_driver: generation {g}: virtio-net {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} up, {QUEUE} buffers each way",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        );
        self.dev = Some(dev);
        // A previous incarnation may have died with the IRQ taken but not acknowledged.
        let _ = IRQ.irq_ack();
        self.work();
        // The virtualiser looks at the link now, whatever the handshake did.
        VIRT.notify();
    }

    fn notified(&mut self, ch: Channel) {
        self.maybe_inject();
        if ch == IRQ {
            if let Some(d) = self.dev.as_mut() {
                d.ack_interrupt();
            }
            if let Err(e) = IRQ.irq_ack() {
                println!("net_driver: IRQ ack failed: {e:?}");
            }
            if self.deaf() {
                return;
            }
        }
        self.work();
    }

    /// Received frames that stopped moving with the virtualiser's buffers free: this PD's
    /// own stall (nobody else can see it: the virtualiser does not watch receive buffers,
    /// as a quiet network is not a dead one, and the monitor's ping is answered). Checked
    /// before anything moves them, so that the stall is reported, not hidden by the
    /// heartbeat's own poll; fail-stop, so that the monitor restarts the driver from its
    /// clean image (which salvages the frames the device holds).
    fn heartbeat(&mut self) {
        let (Some(dev), Some(server)) = (self.dev.as_ref(), self.server.as_ref()) else {
            return;
        };
        let waiting = server.rx_ready() && (dev.rx_pending() || !driver_hold().is_empty());
        // Progress: a frame taken from the device, or one delivered (from the device or
        // the hold) into the virtualiser's buffers.
        let moved = self.rx_frames + server.stats().rx_delivered;
        if let Progress::Overdue { stalled_us } =
            self.rx_watch.check(now_us(), usize::from(waiting), moved)
        {
            panic!(
                "net_driver: receive stalled: frames waited {} ms for this driver with the virtualiser's buffers free: fail-stop",
                stalled_us / 1000
            );
        }
    }
}

/// The network virtualiser PD: client of the driver's link, server of one link per native
/// client; routing by `axolotl_net::Router`.
pub struct NetVirt {
    driver: Option<NetClient>,
    clients: [Option<NetServer>; 2],
    router: Option<Router<2>>,
    frame: FrameBuf,
    frames: u64,
    /// In generation 0, crash once this many frames were routed: restart tests only.
    crash_after: Option<u64>,
    /// In generation 0, once this many frames were routed, read the driver's link as
    /// corrupt for good, as a fault in this PD's own state would (the campaign's id 242):
    /// the repeated-accusation test only.
    misread_after: Option<u64>,
    /// In generation 0, never serve the clients' links: published, never acknowledged, as
    /// a virtualiser stuck in its handshakes (the campaign's id 541): the connect-deadline
    /// test only.
    deaf: bool,
    /// Accusations per link: the driver's, then each client's.
    driver_accuser: Accuser,
    client_accusers: [Accuser; 2],
    /// Frames handed to the driver must keep coming back.
    deadline: Deadline,
    /// The driver's generation and the time of the last poll round that received frames
    /// from it: the receive pause of a driver restart is logged from it (issue #15's
    /// "I/O pause", `cargo xtask bench --only net-restart`).
    last_rx: Option<(u32, u64)>,
}

const DRIVER: Channel = Channel::new(VIRT_DRIVER_CHANNEL);

/// Frames per client that wait for its buffers instead of being dropped (a client
/// re-attaching after this PD restarted, a client slow to re-post), and those a restarted
/// client never read. In .bss: too large for the handler's stack.
///
/// 128: more than a sender's window in flight. The clients (the VMM) run below this PD and
/// the driver, so a burst from the wire is routed before the client takes any of it: with
/// 16, a 34-frame window from QEMU's slirp overflowed the hold, and each dropped frame cost
/// slirp's 1.3–1.5 s retransmission timeout (two of them were 2.8 s of the gateway's 3.0 s
/// to receive 16 MiB; docs/benchmarks.md). slirp keeps at most 128 KiB unacknowledged (91
/// frames).
const HOLD: usize = 128;
static mut VIRT_HOLDS: [FrameQueue<HOLD>; 2] = [FrameQueue::new(), FrameQueue::new()];

fn virt_holds() -> &'static mut [FrameQueue<HOLD>; 2] {
    // SAFETY: this PD is single-threaded and every use of the reference ends before the
    // next call (handlers do not nest).
    unsafe { (&raw mut VIRT_HOLDS).as_mut().unwrap_unchecked() }
}

fn client_channel(i: usize) -> Channel {
    Channel::new(VIRT_CLIENT_CHANNEL_BASE + i as u8)
}

impl Default for NetVirt {
    fn default() -> Self {
        Self::new()
    }
}

impl NetVirt {
    pub const fn new() -> Self {
        NetVirt {
            driver: None,
            clients: [None, None],
            router: None,
            frame: FrameBuf::new(),
            frames: 0,
            crash_after: None,
            misread_after: None,
            deaf: false,
            driver_accuser: Accuser::new(),
            client_accusers: [Accuser::new(); 2],
            deadline: Deadline::new(VIRT_DEADLINE_US),
            last_rx: None,
        }
    }

    /// A virtualiser that, in generation 0, writes to an unmapped address once it routed
    /// `frames` frames: for the restart tests only.
    pub const fn crashing_after(frames: u64) -> Self {
        let mut v = Self::new();
        v.crash_after = Some(frames);
        v
    }

    /// A virtualiser that, in generation 0, reads its link to the driver as corrupt once
    /// it routed `frames` frames, and goes on doing so after the driver's restart: its own
    /// fault blamed on the driver. For the repeated-accusation test only.
    pub const fn misreading_after(frames: u64) -> Self {
        let mut v = Self::new();
        v.misread_after = Some(frames);
        v
    }

    /// A virtualiser that, in generation 0, never serves its clients' links after
    /// publishing itself on them, while it serves the driver and answers heartbeats: the
    /// clients' connect deadline must report it. For the connect-deadline test only.
    pub const fn deaf_to_clients() -> Self {
        let mut v = Self::new();
        v.deaf = true;
        v
    }

    /// Whether this incarnation misreads the driver's link (test systems only).
    fn misreads(&self) -> bool {
        self.misread_after
            .is_some_and(|n| generation() == 0 && self.frames >= n)
    }

    fn work(&mut self) {
        let misread = self.misreads();
        let deaf = self.deaf && generation() == 0;
        let NetVirt {
            driver: Some(driver),
            clients,
            router: Some(router),
            frame,
            frames,
            driver_accuser,
            client_accusers,
            last_rx,
            ..
        } = self
        else {
            return;
        };
        let holds = virt_holds();
        let mut received = false;
        let mut notify_driver = false;
        let mut notify_client = [false; 2];
        for _ in 0..64 {
            let mut progress = false;
            for (i, c) in clients.iter_mut().enumerate() {
                if let Some(c) = c
                    && !deaf
                {
                    let act = c.poll_holding(&mut holds[i]);
                    fail_stop_on("net_virt", act.contradiction);
                    notify_client[i] |= act.notify;
                    progress |= act.notify || act.again;
                    accuse(
                        "net_virt",
                        NET_CLIENTS[i].name,
                        client_channel(i),
                        &mut client_accusers[i],
                        c.fault(),
                        c.awaiting_frame(),
                    );
                }
            }
            if misread {
                // The injected fault: the link looks corrupt, nothing moves on it.
                let c = Corruption::GenerationUnconfirmed {
                    observed: 54,
                    confirmed: DRIVER.peer_generation().unwrap_or(0),
                };
                accuse(
                    "net_virt",
                    "net_driver",
                    DRIVER,
                    driver_accuser,
                    Some((Dir::Rx, c)),
                    false,
                );
                break;
            }
            // From the wire: by destination MAC. Each frame is copied once, from the
            // driver's link buffer straight into the client's (or into its hold), and the
            // buffer goes back to the driver at the next poll.
            let act = driver.poll_in_place();
            fail_stop_on("net_virt", act.contradiction);
            notify_driver |= act.notify;
            progress |= act.notify || act.again;
            while let Some((offset, len)) = driver.rx_peek() {
                let region = driver.rx_region();
                let mut header = [0u8; MIN_FRAME];
                let targets = if region.copy_out(offset, &mut header) {
                    router.rx_targets(&header)
                } else {
                    0
                };
                for (i, c) in clients.iter_mut().enumerate() {
                    if targets & (1 << i) != 0
                        && let Some(c) = c
                    {
                        notify_client[i] |=
                            c.deliver_holding_from(region, offset, len, &mut holds[i]);
                    }
                }
                driver.rx_consume();
                *frames += 1;
                progress = true;
                received = true;
            }
            accuse(
                "net_virt",
                "net_driver",
                DRIVER,
                driver_accuser,
                driver.fault(),
                driver.awaiting_frame(),
            );
            // To the wire (or another client): one frame per client in turn.
            loop {
                let ready = clients
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.as_ref().is_some_and(|c| c.tx_ready()))
                    .fold(0u32, |m, (i, _)| m | 1 << i);
                if driver.tx_free() == 0 {
                    break;
                }
                let Some(i) = router.next_tx(ready) else {
                    break;
                };
                let Some(c) = clients[i].as_mut() else {
                    break;
                };
                // A unicast frame for the wire (nearly all) is copied once, from the
                // client's buffer straight into the driver's, and the decision is taken
                // again on that copy, which the client cannot change: a frame it altered
                // meanwhile is not sent. Anything else (to another client, or a group) is
                // copied out first and decided on that copy. Either way the frame's check
                // goes along unchanged, for the driver or the receiving client to verify.
                let mut direct = false;
                let mut carried = Check::default();
                let Some(n) =
                    c.take_tx_with(&mut notify_client[i], |src, offset, len| {
                        match router.to_wire_direct(i, src, offset, len, driver) {
                            Direct::Sent => {
                                direct = true;
                                notify_driver = true;
                            }
                            Direct::Refused => direct = true,
                            Direct::Elsewhere => {
                                carried = check::read(src, offset).unwrap_or_default();
                                src.copy_out(offset, &mut frame.0[..len]);
                            }
                        }
                    })
                else {
                    continue;
                };
                *frames += 1;
                progress = true;
                if direct {
                    continue;
                }
                let f = &frame.0[..n];
                let t = router.tx_targets(i, f);
                if t.wire && driver.send_checked(f, carried).is_ok() {
                    notify_driver = true;
                }
                for (j, c) in clients.iter_mut().enumerate() {
                    if t.clients & (1 << j) != 0
                        && let Some(c) = c
                    {
                        notify_client[j] |= c.deliver_holding_checked(f, carried, &mut holds[j]);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        if received {
            let now = now_us();
            let g = DRIVER.peer_generation().unwrap_or(u32::MAX);
            if let Some((before, at)) = *last_rx
                && before != g
            {
                println!(
                    "net_virt: receive pause across net_driver's restart: {} us (generation {before} -> {g})",
                    now.saturating_sub(at)
                );
            }
            *last_rx = Some((g, now));
        }
        fail_stop_on("net_virt", driver.contradiction());
        for c in clients.iter().flatten() {
            fail_stop_on("net_virt", c.contradiction());
        }
        if notify_driver {
            DRIVER.notify();
        }
        for (i, n) in notify_client.iter().enumerate() {
            if *n {
                client_channel(i).notify();
            }
        }
    }
}

impl Handler for NetVirt {
    fn init(&mut self) {
        let g = generation();
        let (Some(regions), Some(rx), Some(tx)) = (
            link(&driver_rings, &driver_data),
            generations(DRIVER),
            generations(DRIVER),
        ) else {
            println!("net_virt: generation {g}: cannot start: no link to the driver");
            return;
        };
        self.driver = NetClient::new(regions, rx, tx).ok();
        let maps = [
            (&client0_rings, &client0_data),
            (&client1_rings, &client1_data),
        ];
        for (i, (r, d)) in maps.into_iter().enumerate() {
            let ch = client_channel(i);
            if let (Some(regions), Some(rx), Some(tx)) =
                (link(r, d), generations(ch), generations(ch))
            {
                self.clients[i] = NetServer::new(regions, rx, tx).ok();
            }
        }
        self.router = Router::new([NET_CLIENTS[0].mac, NET_CLIENTS[1].mac]);
        if self.driver.is_none() || self.router.is_none() {
            println!("net_virt: generation {g}: cannot start: bad link layout");
            return;
        }
        println!(
            "net_virt: generation {g}: routing for {} clients",
            self.clients.iter().filter(|c| c.is_some()).count()
        );
        self.work();
        DRIVER.notify();
        for i in 0..2 {
            client_channel(i).notify();
        }
    }

    fn notified(&mut self, _: Channel) {
        if let Some(n) = self.crash_after
            && generation() == 0
            && self.frames >= n
        {
            println!(
                "net_virt: fault injection: wild write after {} frames",
                self.frames
            );
            // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
            unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
        }
        self.work();
    }

    /// Frames handed to the driver that stop coming back (the driver runs and answers
    /// heartbeats but no longer serves the link): look once more, then report the driver.
    fn heartbeat(&mut self) {
        self.work();
        let Some(driver) = self.driver.as_ref() else {
            return;
        };
        if overdue("net_virt", "net_driver", &mut self.deadline, driver) {
            let accused = DRIVER.peer_generation().unwrap_or(u32::MAX);
            let restarted = DRIVER.report_corruption(accused);
            println!("net_virt: reported the driver, acted on: {restarted}");
            DRIVER.notify();
        }
    }
}

/// A native network client: answers ARP for its address and UDP echo on `ECHO_PORT`.
pub struct NetEcho {
    index: usize,
    link: Option<NetClient>,
    echo: Echo,
    out: [u8; MAX_FRAME],
    restarts_seen: u64,
    announced: bool,
    accuser: Accuser,
    /// Frames handed to the virtualiser must keep coming back.
    deadline: Deadline,
}

const VIRT_OF_CLIENT: Channel = Channel::new(NET_CLIENT_VIRT_CHANNEL);

impl NetEcho {
    /// Client `index` of `NET_CLIENTS`.
    pub const fn new(index: usize) -> Self {
        let id = NET_CLIENTS[index];
        NetEcho {
            index,
            link: None,
            echo: Echo::new(id.mac, id.ip, ECHO_PORT),
            out: [0; MAX_FRAME],
            restarts_seen: 0,
            announced: false,
            accuser: Accuser::new(),
            deadline: Deadline::new(CLIENT_DEADLINE_US),
        }
    }

    fn work(&mut self) {
        let name = NET_CLIENTS[self.index].name;
        let NetEcho {
            link: Some(link),
            echo,
            out,
            accuser,
            ..
        } = self
        else {
            return;
        };
        let mut notify = false;
        if !self.announced && link.is_connected() {
            let n = echo.announce(out);
            if link.send(&out[..n]).is_ok() {
                self.announced = true;
                notify = true;
            }
        }
        for _ in 0..256 {
            let mut reply = None;
            let act = link.poll_limited(1, |f| reply = echo.handle(f, out));
            fail_stop_on(name, act.contradiction);
            notify |= act.notify;
            accuse(
                name,
                "net_virt",
                VIRT_OF_CLIENT,
                accuser,
                link.fault(),
                link.awaiting_frame(),
            );
            if let Some(n) = reply {
                // No buffer: the reply is dropped (the sender retries), never queued.
                if link.send(&out[..n]).is_ok() {
                    notify = true;
                }
            }
            if !act.again && reply.is_none() {
                break;
            }
        }
        let s = link.stats();
        if s.server_restarts != self.restarts_seen {
            self.restarts_seen = s.server_restarts;
            println!(
                "{name}: virtualiser restarted ({} so far); {} echoed",
                s.server_restarts,
                echo.stats().echoed
            );
            self.announced = false;
        }
        fail_stop_on(name, link.contradiction());
        if notify {
            VIRT_OF_CLIENT.notify();
        }
    }
}

impl Handler for NetEcho {
    fn init(&mut self) {
        let id = NET_CLIENTS[self.index];
        let g = generation();
        let (Some(regions), Some(rx), Some(tx)) = (
            link(&net_rings, &net_data),
            generations(VIRT_OF_CLIENT),
            generations(VIRT_OF_CLIENT),
        ) else {
            println!(
                "{}: generation {g}: cannot start: no link to the virtualiser",
                id.name
            );
            return;
        };
        match NetClient::new(regions, rx, tx) {
            Ok(c) => self.link = Some(c),
            Err(e) => {
                println!("{}: generation {g}: cannot start: {e:?}", id.name);
                return;
            }
        }
        println!(
            "{}: generation {g}: {}.{}.{}.{} answering ARP and UDP echo on port {ECHO_PORT}",
            id.name, id.ip[0], id.ip[1], id.ip[2], id.ip[3]
        );
        self.work();
        VIRT_OF_CLIENT.notify();
    }

    fn notified(&mut self, _: Channel) {
        self.work();
    }

    /// Frames handed to the virtualiser that stop coming back: look once more, then
    /// report it (PDs with `heartbeat_ms` only).
    fn heartbeat(&mut self) {
        self.work();
        let name = NET_CLIENTS[self.index].name;
        let Some(link) = self.link.as_ref() else {
            return;
        };
        if overdue(name, "net_virt", &mut self.deadline, link) {
            let accused = VIRT_OF_CLIENT.peer_generation().unwrap_or(u32::MAX);
            let restarted = VIRT_OF_CLIENT.report_corruption(accused);
            println!("{name}: reported the virtualiser, acted on: {restarted}");
            VIRT_OF_CLIENT.notify();
        }
    }
}
