//! The PDs themselves (target only): mapping, IRQ and notifications around
//! `axolotl_serial_core`.

use core::ptr::NonNull;

use axolotl_pd::{
    CNODE_DEPTH, Channel, Handler, OWN_CNODE, SetVar, generation, peer_generation_word, println,
};
use axolotl_ring::{Authority, Deadline, Generations, Progress, SharedRegion, ring_generation};
use axolotl_serial_core::layout::{CAPACITY, IDS, REGION_BYTES};
use axolotl_serial_core::{
    Activity, ConnId, Connection, Irqs, Pl011, QEMU_VIRT_UART1_BASE, QEMU_VIRT_UARTCLK, RxClient,
    SeqClient, SeqClientError, Server, Uart,
};

use crate::{
    CLIENT_DRIVER_CHANNEL, CLIENTS, DRIVER_CLIENT_CHANNEL_BASE, DRIVER_IRQ_CHANNEL,
    DRIVER_RX_CHANNEL, MESSAGES, PROGRESS_EVERY, WINDOW, progress_due,
};

// The driver's maps (`setvar_vaddr` in the SDF).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static uart_base: SetVar = SetVar::new();
/// The device page's physical address (`<setvar symbol="uart_paddr" region_paddr="…"/>`),
/// optional: only the log's name of the line comes from it.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static uart_paddr: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client_a_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client_a_data: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client_b_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static client_b_data: SetVar = SetVar::new();
// Optional: without these maps the driver has no receive connection.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static rx_rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static rx_data: SetVar = SetVar::new();

// A client's maps (echo clients and echo_rx): its connection to the driver.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static rings: SetVar = SetVar::new();
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static data: SetVar = SetVar::new();

const IRQ: Channel = Channel::new(DRIVER_IRQ_CHANNEL);
/// How long a client waits for its next completion while messages are in flight before it
/// reports the driver (checked at the monitor's heartbeat pings, so only for clients the SDF
/// gives `heartbeat_ms`). Far above a completion's time under a loaded QEMU, and above the
/// monitor's own hang detection (two heartbeat periods and a last chance), which should
/// catch a driver that stopped altogether first.
const CLIENT_DEADLINE_US: u64 = 1_000_000;
const DRIVER: Channel = Channel::new(CLIENT_DRIVER_CHANNEL);

/// One page the SDF maps at the vaddr patched into `var`; `None` if it was not patched.
fn region(var: &SetVar) -> Option<SharedRegion> {
    let ptr = NonNull::new(var.get() as *mut u8)?;
    // SAFETY: the SDF maps `REGION_BYTES` at this vaddr for the PD's lifetime, shared with
    // exactly one peer, and it is reached only through lib/ring and serial-core.
    Some(unsafe { SharedRegion::new(ptr, REGION_BYTES) })
}

/// Where the root task publishes the generation of the PD at the other end of `ch`: the only
/// source a ring endpoint believes a peer's restart from.
fn authority(ch: Channel) -> Option<Authority> {
    let word = peer_generation_word(ch)?;
    // SAFETY: the generation table is mapped read-only for the PD's whole life and written
    // by the root task only, atomically.
    Some(unsafe { Authority::new(NonNull::from(word)) })
}

/// This PD's generations on its connection over channel `ch`: its own as the root task
/// started it (`x0`), its peer's from the generation table.
fn generations(ch: Channel) -> Option<Generations> {
    Some(Generations {
        own: generation() as u32,
        peer: authority(ch)?,
    })
}

fn connection(r: &SetVar, d: &SetVar, ch: u8) -> Option<Connection> {
    Some(Connection {
        rings: region(r)?,
        data: region(d)?,
        capacity: CAPACITY,
        client: authority(Channel::new(ch))?,
    })
}

/// Fault injection (test systems only), in generation 0 once this many messages completed.
#[derive(Clone, Copy)]
enum Inject {
    /// Write to an unmapped address (before telling the clients).
    Crash(u64),
    /// Scribble over the shared tail index of client_a's response queue, as a driver gone
    /// wrong would: the client must detect it and report the driver.
    Scribble(u64),
    /// Spin forever (before telling the clients): only the monitor's heartbeat watchdog can
    /// notice.
    Hang(u64),
    /// Delete every capability in its CSpace (it needs `cnode_cap="true"`): its next wait
    /// on its input endpoint is a cap fault, and the restart must give them all back.
    DeleteCaps(u64),
    /// Write to an unmapped address once this many receive buffers were completed (before
    /// looking at the queues or the UART).
    CrashAfterRx(u64),
    /// Lie about generations in the ring regions, as a driver gone wrong could: claim a
    /// restart to client_a (the next generation a real restart would publish), the largest
    /// generation to client_b, and write client_b's own generation word too.
    Lie(u64),
    /// Flip bit 24 of client_a's request tail in the shared ring (a word the client writes,
    /// as the campaign's `ring` kind did) and from then on report no client it finds
    /// corrupt (the report lost): client_a's connection is dead while the driver runs,
    /// serves client_b and answers heartbeats. Only client_a's deadline can see it.
    Silent(u64),
}

/// Times an incarnation sets a device that broke its rules up afresh before it gives up on
/// it until the next restart.
const MAX_REOPENS: u32 = 8;

/// The device a serial driver PD serves its clients over: QEMU's second PL011, or a
/// virtio-console's port 0 (`crate::vcons`).
pub trait Line: Uart + Sized {
    /// For the log: "UART1", "virtio-console".
    const NAME: &'static str;
    /// The line's name in the log; [`Line::NAME`] unless the device can tell better.
    fn name() -> &'static str {
        Self::NAME
    }
    /// Finds the device where the SDF maps it and sets it up.
    fn open() -> Result<Self, &'static str>;
    /// Whether the device broke its rules and the driver gave up on it.
    fn given_up(&self) -> Option<&'static str> {
        None
    }

    /// Sets a device given up on up afresh, in place (the server keeps its connections).
    fn reopen(&mut self) -> Result<(), &'static str> {
        Err("it cannot be set up again in place")
    }
}

/// Where the SDF maps the driver's device page, if it does.
pub(crate) fn uart_base_vaddr() -> Option<usize> {
    Some(uart_base.get() as usize).filter(|&v| v != 0)
}

/// The device page's physical address as the SDF patched it (`uart_paddr`), if it did.
pub(crate) fn uart_paddr_given() -> Option<u64> {
    Some(uart_paddr.get()).filter(|&p| p != 0)
}

/// QEMU virt's PL011 a page at `paddr` is (0: not given).
fn pl011_name(paddr: u64) -> &'static str {
    match paddr {
        // The SDF contract's device when the SDF does not say (every system but the ones
        // that take UART0 from the kernel's console).
        0 => "UART1",
        0x0900_0000 => "UART0",
        p if p == QEMU_VIRT_UART1_BASE as u64 => "UART1",
        _ => "a PL011",
    }
}

impl Line for Pl011 {
    const NAME: &'static str = "UART1";

    fn name() -> &'static str {
        pl011_name(uart_paddr.get())
    }

    fn open() -> Result<Self, &'static str> {
        let base = NonNull::new(uart_base.get() as *mut u8).ok_or("uart_base not set")?;
        // SAFETY: the SDF maps UART1's register page uncached at `base` for this PD only.
        let mut uart = unsafe { Pl011::new(base) };
        if !uart.is_pl011() {
            return Err("no PL011 at uart_base (is QEMU's second -serial missing?)");
        }
        uart.init(115_200, QEMU_VIRT_UARTCLK)
            .map_err(|_| "bad baud rate")?;
        Ok(uart)
    }
}

/// The serial driver PD with `N` transmit clients (`client_a`, `client_b`: `N` ≤ 2) and the
/// receive connection if the SDF maps it, over the device `U`.
pub struct SerialDriver<const N: usize, U: Line = Pl011> {
    server: Option<Server<U, N, IDS>>,
    /// The device's giving up was said.
    said_given_up: bool,
    /// Times this incarnation set its device up afresh ([`Line::reopen`]).
    reopens: u32,
    inject: Option<Inject>,
    /// UART interrupts with a receive cause handled by this incarnation.
    rx_irqs: u64,
    /// Who the receive connection serves, for the log.
    rx_client: &'static str,
    /// `Inject::Silent` has struck: corrupt clients go unreported.
    silent: bool,
}

/// resilient-echo's driver: two transmit clients, echo_rx receiving.
pub type Driver = SerialDriver<CLIENTS>;

/// linux-vm's driver: the guest's serial line both ways, for the VMM. Its receive
/// connection is the guest's console input; its one transmit connection (mapped as
/// `client_a`'s, as control-pd's) the guest's console output, byte for byte (docs/vmm.md).
pub type ConsoleDriver = SerialDriver<1>;

impl<U: Line> SerialDriver<1, U> {
    pub const fn for_vmm() -> Self {
        Self::receiving_for("the VMM")
    }

    /// [`ConsoleDriver::for_vmm`] that, in generation 0, writes to an unmapped address on
    /// the first notification after `buffers` receive buffers were completed: for the
    /// console-input restart test only.
    pub const fn for_vmm_crashing_after_rx(buffers: u64) -> Self {
        let mut d = Self::for_vmm();
        d.inject = Some(Inject::CrashAfterRx(buffers));
        d
    }
}

/// The control system's driver (issue #17): one transmit client and the receive
/// connection, both control-pd's (its transmit connection is mapped as `client_a`'s).
pub type ControlDriver = SerialDriver<1>;

impl ControlDriver {
    pub const fn for_control() -> Self {
        Self::receiving_for("control")
    }
}

impl<const N: usize, U: Line> SerialDriver<N, U> {
    pub(crate) const fn receiving_for(rx_client: &'static str) -> Self {
        SerialDriver {
            server: None,
            said_given_up: false,
            reopens: 0,
            inject: None,
            rx_irqs: 0,
            rx_client,
            silent: false,
        }
    }
}

impl<const N: usize, U: Line> SerialDriver<N, U> {
    pub const fn new() -> Self {
        Self::receiving_for("echo_rx")
    }

    /// A driver that, in generation 0, writes to an unmapped address once it has completed
    /// `completed` messages (before telling the clients): for the restart tests only.
    pub const fn crashing_after(completed: u64) -> Self {
        let mut d = Self::new();
        d.inject = Some(Inject::Crash(completed));
        d
    }

    /// A driver that, in generation 0, busy-loops forever once it has completed `completed`
    /// messages (before telling the clients): for the hang-detection tests only.
    pub const fn hanging_after(completed: u64) -> Self {
        let mut d = Self::new();
        d.inject = Some(Inject::Hang(completed));
        d
    }

    /// A driver that, in generation 0, deletes all its capabilities once it has completed
    /// `completed` messages: for the CSpace-rebuild tests only.
    pub const fn deleting_caps_after(completed: u64) -> Self {
        let mut d = Self::new();
        d.inject = Some(Inject::DeleteCaps(completed));
        d
    }

    /// A driver that, in generation 0, corrupts client_a's response ring indices once it has
    /// completed `completed` messages, then goes on as if nothing happened: for the
    /// corruption tests only.
    pub const fn scribbling_after(completed: u64) -> Self {
        let mut d = Self::new();
        d.inject = Some(Inject::Scribble(completed));
        d
    }

    /// A driver that, in generation 0, lies about generations on both clients' connections
    /// once it has completed `completed` messages, then carries on serving: for the
    /// forged-generation tests only (issue #20).
    pub const fn lying_after(completed: u64) -> Self {
        let mut d = Self::new();
        d.inject = Some(Inject::Lie(completed));
        d
    }

    /// A driver that, in generation 0, kills client_a's connection once it has completed
    /// `completed` messages and reports nothing (`Inject::Silent`): for the client-deadline
    /// test only (issue #21, the campaign's silent failures).
    pub const fn silent_after(completed: u64) -> Self {
        let mut d = Self::new();
        d.inject = Some(Inject::Silent(completed));
        d
    }
}

impl<const N: usize, U: Line> SerialDriver<N, U> {
    fn start(&mut self) -> Result<Server<U, N, IDS>, &'static str> {
        let uart = U::open()?;
        let tx_maps: [(&SetVar, &SetVar, &str); 2] = [
            (
                &client_a_rings,
                &client_a_data,
                "client_a regions or generation not set",
            ),
            (
                &client_b_rings,
                &client_b_data,
                "client_b regions or generation not set",
            ),
        ];
        if N > tx_maps.len() {
            return Err("more transmit clients than the SDF contract names");
        }
        let tx_channel = |i: usize| DRIVER_CLIENT_CHANNEL_BASE + i as u8;
        if let Some((_, (_, _, missing))) = tx_maps[..N]
            .iter()
            .enumerate()
            .find(|(i, (r, d, _))| connection(r, d, tx_channel(*i)).is_none())
        {
            return Err(missing);
        }
        // Checked just above: every one of the first N pairs is mapped.
        let tx: [Connection; N] = core::array::from_fn(|i| {
            connection(tx_maps[i].0, tx_maps[i].1, tx_channel(i)).expect("checked")
        });
        let rx = connection(&rx_rings, &rx_data, DRIVER_RX_CHANNEL);
        if rx.is_none() && region(&rx_rings).is_some() {
            return Err("no generation for the receive connection's channel");
        }
        Server::new(uart, tx, rx, generation() as u32).map_err(|_| "bad connection layout")
    }

    /// Acts on what the server did until it has nothing left to do.
    fn act(&mut self, mut act: Activity) {
        loop {
            let Some(server) = self.server.as_mut() else {
                return;
            };
            if let Some(why) = server.uart().given_up()
                && !self.said_given_up
            {
                // What it had taken to send is lost (a reply the CLI asks again for). A
                // device that goes on lying is not reset forever.
                self.reopens += 1;
                let r = if self.reopens > MAX_REOPENS {
                    Err("reset too often")
                } else {
                    server.uart_mut().reopen()
                };
                match r {
                    Ok(()) => println!(
                        "serial_driver: ERROR: {} broke virtio's rules ({why}); reset it and set it up afresh",
                        U::name()
                    ),
                    Err(e) => {
                        self.said_given_up = true;
                        println!(
                            "serial_driver: ERROR: {} broke virtio's rules ({why}); gave up on it until this driver restarts ({e})",
                            U::name()
                        );
                    }
                }
                act.again = true;
            }
            for id in act.notify.iter() {
                match id {
                    ConnId::Tx(i) => Channel::new(DRIVER_CLIENT_CHANNEL_BASE + i as u8).notify(),
                    ConnId::Rx => Channel::new(DRIVER_RX_CHANNEL).notify(),
                }
            }
            if act.rx_carried > 0 {
                println!(
                    "serial_driver: the receiving client restarted; {} bytes it never read go to its successor",
                    act.rx_carried
                );
            }
            for id in act.faults.iter() {
                if self.silent {
                    println!(
                        "serial_driver: fault injection: client {id:?} is corrupt; not reporting it"
                    );
                    continue;
                }
                println!(
                    "serial_driver: client {id:?} is corrupt ({:?}); reporting it",
                    server.fault(id)
                );
                let ch = match id {
                    ConnId::Tx(i) => DRIVER_CLIENT_CHANNEL_BASE + i as u8,
                    ConnId::Rx => DRIVER_RX_CHANNEL,
                };
                // The monitor restarts the client; its new generation resynchronises the ring.
                // Accused: the client incarnation the fault was found against (another may
                // have attached since, and must not pay for it).
                Channel::new(ch).report_peer(server.fault_generation(id));
            }
            if !act.again {
                return;
            }
            act = server.poll();
        }
    }
}

impl<const N: usize, U: Line> Default for SerialDriver<N, U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, U: Line> Handler for SerialDriver<N, U> {
    fn init(&mut self) {
        let g = generation();
        match self.start() {
            Ok(server) => {
                let rx = connection(&rx_rings, &rx_data, DRIVER_RX_CHANNEL).is_some();
                println!(
                    "serial_driver: generation {g}: serving {N} clients on {} (ring generation {}){}{}",
                    U::name(),
                    server.generation(),
                    if rx { ", receiving for " } else { "" },
                    if rx { self.rx_client } else { "" },
                );
                self.server = Some(server);
            }
            Err(e) => {
                println!("serial_driver: generation {g}: cannot start: {e}");
                return;
            }
        }
        // A previous incarnation may have died with the IRQ taken but not acknowledged.
        let _ = IRQ.irq_ack();
        if let Some(s) = self.server.as_mut() {
            let act = s.poll();
            self.act(act);
        }
    }

    fn notified(&mut self, ch: Channel) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        // Before looking at the queues: whatever the clients submitted since the last poll
        // is in flight and not taken, and completions may be posted but unseen.
        let done = server.stats().tx_completed;
        match self.inject {
            Some(Inject::Crash(n)) if generation() == 0 && done >= n => {
                println!(
                    "serial_driver: fault injection: wild write after {done} completed messages"
                );
                // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
            }
            Some(Inject::CrashAfterRx(n))
                if generation() == 0 && server.stats().rx_completed >= n =>
            {
                println!(
                    "serial_driver: fault injection: wild write after {} completed receive buffers",
                    server.stats().rx_completed
                );
                // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
                unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
            }
            Some(Inject::Hang(n)) if generation() == 0 && done >= n => {
                println!("serial_driver: fault injection: hanging after {done} completed messages");
                loop {
                    core::hint::spin_loop();
                }
            }
            _ => {}
        }
        let act = if ch == IRQ {
            let act = server.on_irq();
            if let Err(e) = IRQ.irq_ack() {
                println!("serial_driver: IRQ ack failed: {e:?}");
            }
            // Receive causes only: a transmit interrupt comes first whenever the host reads
            // the wire slowly enough for the TX FIFO to fill, which says nothing about input.
            if act.irqs.intersects(Irqs::RX | Irqs::RX_TIMEOUT) {
                self.rx_irqs += 1;
                if self.rx_irqs == 1 {
                    println!(
                        "serial_driver: first receive interrupt (status {:#x})",
                        act.irqs.bits()
                    );
                }
            }
            act
        } else {
            server.poll()
        };
        self.act(act);
        // After the last completion is published, so the garbage is what the client reads.
        if let Some(Inject::Scribble(n)) = self.inject
            && generation() == 0
            && done >= n
        {
            self.inject = None;
            println!(
                "serial_driver: fault injection: scribbling client_a's response ring indices after {done} completed messages"
            );
            // lib/ring's connection layout: the response queue starts at 256 + 16 C, its
            // tail (the index the driver publishes) first.
            let tail = client_a_rings.get() + 256 + 16 * CAPACITY as u64;
            // SAFETY: inside the ring page the SDF maps read-write for us.
            unsafe { core::ptr::write_volatile(tail as *mut u32, 0x7fff_0000) };
        }
        if let Some(Inject::Silent(n)) = self.inject
            && generation() == 0
            && done >= n
        {
            self.inject = None;
            self.silent = true;
            println!(
                "serial_driver: fault injection: flipping bit 24 of client_a's request tail, reporting no client, after {done} completed messages"
            );
            // lib/ring's connection layout: the request queue at 128, its tail first.
            let tail = (client_a_rings.get() + 128) as *mut u32;
            // SAFETY: inside the ring page the SDF maps read-write for us.
            unsafe { tail.write_volatile(tail.read_volatile() ^ (1 << 24)) };
            // Look at once, as after the client's next notification.
            let act = self.server.as_mut().map(|s| s.poll()).unwrap_or_default();
            self.act(act);
        }
        if let Some(Inject::Lie(n)) = self.inject
            && generation() == 0
            && done >= n
        {
            self.inject = None;
            let next = ring_generation(generation() as u32 + 1);
            println!(
                "serial_driver: fault injection: claiming ring generation {next} to client_a and {} to client_b, and writing client_b's, after {done} completed messages",
                u32::MAX
            );
            // lib/ring's control block: the client's line at 0 (generation first), the
            // server's at 64.
            let (a, b) = (client_a_rings.get(), client_b_rings.get());
            // SAFETY: inside the ring pages the SDF maps read-write for us.
            unsafe {
                core::ptr::write_volatile((a + 64) as *mut u32, next);
                core::ptr::write_volatile((b + 64) as *mut u32, u32::MAX);
                core::ptr::write_volatile(b as *mut u32, u32::MAX);
            }
            // The clients look now, as after any notification from the driver.
            for i in 0..N {
                Channel::new(DRIVER_CLIENT_CHANNEL_BASE + i as u8).notify();
            }
        }
        if let Some(Inject::DeleteCaps(n)) = self.inject
            && generation() == 0
            && done >= n
        {
            self.inject = None;
            // Every slot but the CNode cap itself, which goes last.
            for slot in (0..1 << CNODE_DEPTH).filter(|&s| s != OWN_CNODE.0) {
                let _ = OWN_CNODE.delete(slot, CNODE_DEPTH);
            }
            let _ = OWN_CNODE.delete(OWN_CNODE.0, CNODE_DEPTH);
            println!(
                "serial_driver: fault injection: deleted every capability in its CSpace after {done} completed messages"
            );
        }
    }
}

/// An echo client PD: `SeqClient` named `name` on its connection to the driver.
pub struct EchoClient {
    name: &'static str,
    client: Option<SeqClient<IDS>>,
    restarts_seen: u64,
    errors: u32,
    done: bool,
    /// Fault injection (test systems only): in generation 0, crash once this many messages
    /// completed.
    crash_after: Option<u64>,
    /// Messages in flight must keep completing (checked at heartbeat pings).
    deadline: Deadline,
}

impl EchoClient {
    pub const fn new(name: &'static str) -> Self {
        EchoClient {
            name,
            client: None,
            restarts_seen: 0,
            errors: 0,
            done: false,
            crash_after: None,
            deadline: Deadline::new(CLIENT_DEADLINE_US),
        }
    }

    /// A client that, in generation 0, writes to an unmapped address once `completed` of its
    /// messages completed: for the client-restart test only.
    pub const fn crashing_after(name: &'static str, completed: u64) -> Self {
        let mut c = Self::new(name);
        c.crash_after = Some(completed);
        c
    }

    fn step(&mut self) {
        let name = self.name;
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let act = match c.poll() {
            Ok(act) => act,
            Err(e) => {
                // Printed a few times at most: a corrupt driver repeats until it restarts.
                self.errors += 1;
                if self.errors <= 3 {
                    match e {
                        SeqClientError::Seq(s) => println!(
                            "{name}: ERROR: sequence broken: expected {} got {}",
                            s.expected, s.got
                        ),
                        e => println!("{name}: ERROR: {e:?}"),
                    }
                }
                // The driver broke the ring's rules: the monitor restarts it (the call returns
                // once it has), and its new generation makes us resynchronise.
                // Accused: the driver incarnation we were connected to when we found it
                // (its restart may already have happened, on another client's word).
                let restarted = DRIVER.report_peer(c.driver_generation());
                println!("{name}: reported the driver, restarted: {restarted}");
                DRIVER.notify();
                return;
            }
        };
        if act.notify {
            DRIVER.notify();
        }
        let s = c.stats();
        if let Some(n) = self.crash_after
            && generation() == 0
            && s.completed >= n
        {
            println!(
                "{name}: fault injection: wild write after {} completed messages",
                s.completed
            );
            // SAFETY: deliberately invalid (nothing is mapped there): the fault is the test.
            unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 1) };
        }
        if s.driver_restarts != self.restarts_seen {
            self.restarts_seen = s.driver_restarts;
            // A new incarnation gets a whole limit: the wait before it was the old one's.
            self.deadline.restart();
            println!(
                "{name}: driver restarted ({} so far); {} completed, resubmitting the rest",
                s.driver_restarts, s.completed
            );
        }
        let from = act.first_completed;
        if let Some(mark) = progress_due(from, from + act.completed, PROGRESS_EVERY) {
            println!("{name}: {mark} completed in order");
        }
        if c.is_done() && !self.done {
            self.done = true;
            println!(
                "{name}: done: {} messages completed in order, exactly once (sent {}, resubmitted {}, driver restarts {}, errors {})",
                s.completed, s.sent, s.resubmitted, s.driver_restarts, self.errors
            );
        }
    }
}

impl Handler for EchoClient {
    fn init(&mut self) {
        let name = self.name;
        let (Some(r), Some(d)) = (region(&rings), region(&data)) else {
            println!("{name}: regions not set");
            return;
        };
        let Some(g) = generations(DRIVER) else {
            println!("{name}: cannot start: no generation for the driver's channel");
            return;
        };
        match SeqClient::new(name, r, d, CAPACITY, g, WINDOW, Some(MESSAGES)) {
            Ok(c) => {
                println!(
                    "{name}: generation {}: sending {MESSAGES} messages, {WINDOW} in flight",
                    generation()
                );
                self.client = Some(c);
            }
            Err(e) => {
                println!("{name}: cannot start: {e:?}");
                return;
            }
        }
        self.step();
        // Whatever the handshake did, tell the driver we are here.
        DRIVER.notify();
    }

    fn notified(&mut self, _: Channel) {
        self.step();
    }

    /// The end-to-end check (issue #21): a driver can run, answer heartbeats and keep to
    /// the ring's rules, yet no longer serve this connection (a lost notification, a
    /// connection it holds corrupt and whose report went nowhere, its own state flipped).
    /// Neither the ring nor the monitor sees that; the client does, by its completions.
    fn heartbeat(&mut self) {
        // A completion posted whose notification was lost counts: look first.
        self.step();
        let name = self.name;
        let Some(c) = self.client.as_ref() else {
            return;
        };
        let now = axolotl_pd::now_us();
        let state = c.link_state();
        if let Progress::Overdue { stalled_us } =
            self.deadline
                .check_link(now, state, c.in_flight(), c.stats().completed)
        {
            if state == axolotl_ring::LinkState::Connected {
                println!(
                    "{name}: no completion in {} ms with {} in flight; reporting the driver",
                    stalled_us / 1000,
                    c.in_flight()
                );
            } else {
                println!(
                    "{name}: the driver has not acknowledged the connection in {} ms; reporting it",
                    stalled_us / 1000
                );
            }
            let restarted = DRIVER.report_peer(c.driver_generation());
            println!("{name}: reported the driver, restarted: {restarted}");
            DRIVER.notify();
        }
    }
}

/// The receiving client PD: keeps buffers posted on the driver's receive connection and
/// prints each line that arrives (empty lines skipped, long ones cut).
pub struct EchoRx {
    rx: Option<RxClient<IDS>>,
    line: [u8; RX_LINE],
    len: usize,
    lines: u32,
}

const RX_LINE: usize = 64;

impl EchoRx {
    pub const fn new() -> Self {
        EchoRx {
            rx: None,
            line: [0; RX_LINE],
            len: 0,
            lines: 0,
        }
    }

    fn step(&mut self) {
        let EchoRx {
            rx,
            line,
            len,
            lines,
        } = self;
        let Some(c) = rx.as_mut() else {
            return;
        };
        let r = c.poll(|chunk| {
            for &b in chunk {
                if b == b'\n' || b == b'\r' {
                    if *len > 0 {
                        *lines += 1;
                        println!(
                            "echo_rx: received \"{}\"",
                            core::str::from_utf8(&line[..*len]).unwrap_or("<not UTF-8>")
                        );
                    }
                    *len = 0;
                } else if *len < RX_LINE {
                    line[*len] = b;
                    *len += 1;
                }
            }
        });
        match r {
            Ok(act) => {
                if act.notify {
                    DRIVER.notify();
                }
            }
            Err(e) => {
                println!("echo_rx: ERROR: {e:?}");
                DRIVER.notify();
            }
        }
    }
}

impl Default for EchoRx {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler for EchoRx {
    fn init(&mut self) {
        let (Some(r), Some(d)) = (region(&rings), region(&data)) else {
            println!("echo_rx: regions not set");
            return;
        };
        let Some(g) = generations(DRIVER) else {
            println!("echo_rx: cannot start: no generation for the driver's channel");
            return;
        };
        match RxClient::new(r, d, CAPACITY, g) {
            Ok(c) => {
                println!("echo_rx: generation {}: listening on UART1", generation());
                self.rx = Some(c);
            }
            Err(e) => {
                println!("echo_rx: cannot start: {e:?}");
                return;
            }
        }
        self.step();
        DRIVER.notify();
    }

    fn notified(&mut self, _: Channel) {
        self.step();
    }
}
