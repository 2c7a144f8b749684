//! Two sequence clients and the driver under random schedules, with driver
//! restarts at arbitrary points (state dropped, rebuilt over the same shared
//! memory with generation + 1, as the monitor does after restoring the PD
//! from a clean image). Every client must see seqs `0..n` complete exactly
//! once, in order; the wire must carry every message at least once. Bytes
//! arriving on the line reach the receiving client in order, never
//! duplicated, and all of them when the driver never restarts.

mod common;

use axolotl_serial_core::{FakeUart, Irqs, MSG_SLOT, RxClient, SeqClient, WholeSink};
use common::*;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A client PD runs (woken or not).
    Client(usize),
    /// The driver runs on a notification.
    Driver,
    /// The driver runs on its interrupt (if the line is up).
    Irq,
    /// The line sends up to `n` bytes.
    Shift(u8),
    /// The driver dies and is restarted from a clean image.
    Restart,
    /// `n` bytes arrive on the line (those the RX FIFO has no room for are
    /// lost in the UART, as an overrun).
    Inject(u8),
    /// The receiving client runs, moving bytes into the receiver's bounded
    /// FIFO (a guest UART's): what does not fit must wait in the client.
    Rx,
    /// The receiver reads up to `n` bytes out of its FIFO.
    Read(u8),
    /// The receiving client dies and is restarted (its FIFO, a guest UART's, is kept as a
    /// VMM's state region keeps it; what it held in its own memory is gone).
    RxRestart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Client),
        3 => Just(Op::Driver),
        2 => Just(Op::Irq),
        3 => (1..12u8).prop_map(Op::Shift),
        1 => Just(Op::Restart),
        1 => Just(Op::RxRestart),
        1 => (1..20u8).prop_map(Op::Inject),
        2 => Just(Op::Rx),
        2 => (1..20u8).prop_map(Op::Read),
    ]
}

struct Rig {
    links: [Link; 2],
    clients: [SeqClient<IDS>; 2],
    rx_link: Link,
    rx: RxClient<IDS>,
    /// Bytes the UART accepted from the line, and bytes the receiver read.
    injected: Vec<u8>,
    received: Vec<u8>,
    /// The receiver's FIFO (`RxClient::poll_with`'s sink), `fifo_cap` deep.
    fifo: std::collections::VecDeque<u8>,
    fifo_cap: usize,
    /// The receiving client takes completions whole into the FIFO
    /// (`RxClient::poll_whole`, as a VMM does into its state region) instead of holding
    /// what does not fit (`poll_with`).
    whole: bool,
    next_byte: u8,
    driver: Option<Driver<2>>,
    generation: u32,
    wire: Vec<u8>,
    /// Per client, every seq completed, in completion order.
    completed: [Vec<u32>; 2],
    depth: usize,
}

const NAMES: [&str; 2] = ["left", "right"];

impl Rig {
    fn new(n: u32, windows: [usize; 2], depth: usize, fifo_cap: usize) -> Box<Self> {
        let links = [Link::new(), Link::new()];
        let clients = [0, 1].map(|i| links[i].seq_client(NAMES[i], windows[i], Some(n)));
        let rx_link = Link::new();
        let rx = rx_link.rx_client();
        let mut rig = Box::new(Rig {
            links,
            clients,
            rx_link,
            rx,
            injected: Vec::new(),
            received: Vec::new(),
            fifo: std::collections::VecDeque::new(),
            fifo_cap,
            whole: false,
            next_byte: 0,
            driver: None,
            generation: 1,
            wire: Vec::new(),
            completed: [Vec::new(), Vec::new()],
            depth,
        });
        rig.driver = Some(driver(
            FakeUart::new(depth),
            &rig.links,
            Some(&rig.rx_link),
            1,
        ));
        rig
    }

    fn driver(&mut self) -> &mut Driver<2> {
        self.driver.as_mut().unwrap()
    }

    fn check_driver(&mut self, act: axolotl_serial_core::Activity) {
        assert!(act.faults.is_empty(), "honest clients reported: {act:?}");
        let depth = self.depth;
        let d = self.driver();
        if d.irq_mask().contains(Irqs::TX) {
            assert_eq!(d.uart().tx_level(), depth, "TX irq enabled with FIFO room");
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Client(i) => {
                let act = self.clients[i]
                    .poll()
                    .unwrap_or_else(|e| panic!("{}: {e:?}", NAMES[i]));
                let got = act.first_completed..act.first_completed + act.completed;
                self.completed[i].extend(got);
            }
            Op::Driver => {
                let act = self.driver().poll();
                self.check_driver(act);
            }
            Op::Irq => {
                if self.driver().uart().line() {
                    let act = self.driver().on_irq();
                    self.check_driver(act);
                }
            }
            Op::Shift(n) => {
                for _ in 0..n {
                    match self.driver().uart_mut().shift_out() {
                        Some(b) => self.wire.push(b),
                        None => break,
                    }
                }
            }
            Op::Restart => {
                let uart = self.driver.take().unwrap().into_uart();
                self.generation += 1;
                self.driver = Some(driver(
                    uart,
                    &self.links,
                    Some(&self.rx_link),
                    self.generation,
                ));
            }
            Op::Inject(n) => {
                // At most 255 bytes, so each byte value is unique.
                for _ in 0..n.min(255 - self.injected.len().min(255) as u8) {
                    let b = self.next_byte;
                    if self.driver().uart_mut().inject_rx(b) {
                        self.injected.push(b);
                        self.next_byte = self.next_byte.wrapping_add(1);
                    }
                }
            }
            Op::Rx if self.whole => {
                let mut sink = Fifo(&mut self.fifo, self.fifo_cap);
                let act = self.rx.poll_whole(&mut sink).unwrap();
                assert!(self.fifo.len() <= self.fifo_cap);
                if act.pending {
                    assert!(self.fifo_cap - self.fifo.len() < self.rx.buffer_len());
                }
            }
            Op::Rx => {
                let (fifo, cap) = (&mut self.fifo, self.fifo_cap);
                let act = self
                    .rx
                    .poll_with(|bytes| {
                        let n = bytes.len().min(cap - fifo.len());
                        fifo.extend(&bytes[..n]);
                        n
                    })
                    .unwrap();
                assert!(act.bytes <= self.injected.len());
                assert!(self.fifo.len() <= cap);
                if act.pending {
                    assert_eq!(self.fifo.len(), cap, "bytes held with room in the sink");
                }
            }
            Op::RxRestart => self.rx = self.rx_link.rx_client(),
            Op::Read(n) => {
                for _ in 0..n {
                    match self.fifo.pop_front() {
                        Some(b) => self.received.push(b),
                        None => break,
                    }
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.clients.iter().all(|c| c.is_done())
    }
}

/// A receiver's FIFO as a whole-buffer sink, `.1` deep.
struct Fifo<'a>(&'a mut std::collections::VecDeque<u8>, usize);

impl WholeSink for Fifo<'_> {
    fn room(&self) -> usize {
        self.1 - self.0.len()
    }

    fn put(&mut self, bytes: &[u8]) {
        assert!(bytes.len() <= self.room(), "given more than the room said");
        self.0.extend(bytes);
    }
}

fn run(n: u32, windows: [usize; 2], depth: usize, fifo_cap: usize, ops: &[Op]) -> Box<Rig> {
    run_with(n, windows, depth, fifo_cap, false, ops)
}

fn run_with(
    n: u32,
    windows: [usize; 2],
    depth: usize,
    fifo_cap: usize,
    whole: bool,
    ops: &[Op],
) -> Box<Rig> {
    let mut rig = Rig::new(n, windows, depth, fifo_cap);
    rig.whole = whole;
    for &op in ops {
        rig.step(op);
    }
    // Then a fair schedule without failures until both are done.
    let fair = [
        Op::Client(0),
        Op::Client(1),
        Op::Rx,
        Op::Driver,
        Op::Shift(5),
        Op::Irq,
        Op::Read(16),
    ];
    for k in 0..20_000 {
        if rig.done() {
            break;
        }
        rig.step(fair[k % fair.len()]);
    }
    for k in 0..10 * fair.len() {
        rig.step(fair[k % fair.len()]);
    }
    // The receiver reads until all input is through (one byte a round when its FIFO is
    // one deep).
    for _ in 0..600 {
        for op in [Op::Rx, Op::Read(16), Op::Driver, Op::Irq] {
            rig.step(op);
        }
    }
    assert!(rig.fifo.is_empty());
    for _ in 0..1000 {
        rig.step(Op::Shift(64));
    }
    rig
}

/// Whether `sub` is `full` with some bytes left out (order kept).
fn is_subsequence(sub: &[u8], full: &[u8]) -> bool {
    let mut it = full.iter();
    sub.iter().all(|b| it.any(|c| c == b))
}

fn check(rig: &Rig, n: u32, restarts: usize, rx_restarts: usize) {
    if restarts + rx_restarts == 0 {
        assert_eq!(rig.received, rig.injected, "receive without failures");
    } else {
        // Injected bytes are distinct (a counter, at most 255 of them): a
        // subsequence means in order and never duplicated.
        assert!(is_subsequence(&rig.received, &rig.injected));
    }
    for (i, name) in NAMES.iter().enumerate() {
        let want: Vec<u32> = (0..n).collect();
        assert_eq!(rig.completed[i], want, "{name}: completions");
        let st = rig.clients[i].stats();
        assert_eq!(st.completed, n as u64);
        assert_eq!(st.sent, n as u64);
        assert!(st.driver_restarts as usize <= restarts);
        for seq in 0..n {
            assert!(
                contains(&rig.wire, &msg(name, seq)),
                "{name} {seq} missing from the wire: {}",
                String::from_utf8_lossy(&rig.wire)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn exactly_once_completions_at_least_once_wire(
        n in 1..24u32,
        w0 in 1..=IDS,
        w1 in 1..=IDS,
        depth in 1..=16usize,
        fifo_cap in prop_oneof![Just(1usize), Just(16), Just(4096)],
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        // A receiving client's restart loses what it held itself: both weaken the check.
        let restarts = ops.iter().filter(|o| matches!(o, Op::Restart)).count();
        let rx_restarts = ops.iter().filter(|o| matches!(o, Op::RxRestart)).count();
        let rig = run(n, [w0, w1], depth, fifo_cap, &ops);
        check(&rig, n, restarts, rx_restarts);
        if restarts == 0 {
            // Without failures the wire is exactly-once as well.
            let total: usize = (0..n)
                .map(|s| msg(NAMES[0], s).len() + msg(NAMES[1], s).len())
                .sum();
            prop_assert_eq!(rig.wire.len(), total);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A receiver that takes completions whole into state its restart keeps (a VMM's
    /// guest UART and its line) loses nothing when it dies between polls: what it had not
    /// taken is still the driver's, which hands it to the successor. With `poll_with`, the
    /// bytes a full FIFO left in the client died with it (a VMM restart lost typed input:
    /// tests/tests/vmm_restart.rs's distributor test).
    #[test]
    fn a_whole_buffer_receiver_loses_nothing_across_its_restarts(
        depth in 1..=16usize,
        room in prop_oneof![Just(0usize), Just(16), Just(4096)],
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let ops: Vec<Op> = ops.into_iter().filter(|o| !matches!(o, Op::Restart)).collect();
        let rig = run_with(1, [1, 1], depth, MSG_SLOT + room, true, &ops);
        check(&rig, 1, 0, 0);
    }
}

/// The receiving client (a VMM) dies after the driver handed it input it never read, and
/// its successor connects: the input reaches the successor, in order (the console line a
/// user typed while a VMM restarted was lost: tests/tests/vmm_virtio.rs timed out).
#[test]
fn input_the_dead_receiver_never_read_reaches_its_successor() {
    let mut rig = Rig::new(1, [1, 1], 16, 16);
    rig.step(Op::Rx); // handshake, buffers posted
    rig.step(Op::Driver);
    rig.step(Op::Rx);
    rig.step(Op::Inject(10));
    rig.step(Op::Driver); // the driver completes a buffer with the 10 bytes
    assert_eq!(rig.driver().stats().rx_completed, 1);
    rig.step(Op::RxRestart);
    rig.step(Op::Inject(5)); // more typed meanwhile
    for _ in 0..20 {
        for op in [Op::Rx, Op::Driver, Op::Irq, Op::Read(16)] {
            rig.step(op);
        }
    }
    assert_eq!(rig.received, rig.injected, "every byte, once, in order");
    assert_eq!(
        rig.driver().stats().rx_carried,
        10,
        "{:?}",
        rig.driver().stats()
    );
}

/// Receiving clients that keep dying unread, with buffers larger than the carry: what does not
/// fit is dropped and counted, and the driver keeps serving the next client.
#[test]
fn input_beyond_the_carry_is_dropped_and_counted() {
    use axolotl_serial_core::RX_CARRY;
    let links = [Link::new(), Link::new()];
    // Buffers of 16 KiB (the tests' rings have four ids): unread input can outgrow the carry.
    let rx_link = Link::with_data(4 * 16 * 1024);
    let mut rx = rx_link.rx_client();
    let mut d = driver(FakeUart::new(32), &links, Some(&rx_link), 1);
    let mut injected = 0u64;
    // Each generation adds about three FIFOs' worth to what is unread (the carry fills the
    // first buffer, each later one completes when the FIFO runs dry).
    for _ in 0..100 {
        // The client connects and posts its buffers, then never reads again.
        let _ = rx.poll_with(|_| 0).unwrap();
        let _ = d.poll();
        let _ = rx.poll_with(|_| 0).unwrap();
        for _ in 0..64 {
            while d.uart_mut().inject_rx(b'x') {
                injected += 1;
            }
            if d.uart().line() {
                let _ = d.on_irq();
            }
            let _ = d.poll();
        }
        rx = rx_link.rx_client();
    }
    let s = d.stats();
    assert!(s.rx_dropped > 0, "{s:?}");
    // Every byte taken off the UART was delivered to a buffer, carried or dropped; the carry
    // never held more than its size.
    assert!(s.rx_carried >= RX_CARRY as u64, "{s:?}");
    assert!(s.rx_bytes <= injected + s.rx_carried, "{s:?}");
    // Still serving: a client that reads gets the carried bytes, then new input.
    let mut got = 0usize;
    for _ in 0..64 {
        let _ = rx
            .poll_with(|b| {
                got += b.len();
                b.len()
            })
            .unwrap();
        let _ = d.poll();
    }
    assert!(got >= RX_CARRY, "the successor got {got} bytes");
}

/// A one-deep receiver (a guest PL011 with FEN=0): a whole buffer of input
/// waits in the client, across a driver restart, and arrives complete.
#[test]
fn back_pressure_holds_bytes_across_a_driver_restart() {
    let mut rig = Rig::new(1, [1, 1], 16, 1);
    rig.step(Op::Rx); // handshake, buffers posted
    rig.step(Op::Driver);
    rig.step(Op::Rx);
    rig.step(Op::Inject(10));
    assert_eq!(rig.injected.len(), 10);
    rig.step(Op::Driver); // the driver completes one buffer with the 10 bytes
    rig.step(Op::Rx);
    assert_eq!(rig.fifo.len(), 1, "one byte fits");
    assert_eq!(rig.rx.stats().bytes, 1);
    // The driver dies and comes back; the held bytes are not lost.
    rig.step(Op::Restart);
    rig.step(Op::Inject(3));
    for _ in 0..40 {
        for op in [Op::Read(1), Op::Rx, Op::Driver, Op::Irq] {
            rig.step(op);
        }
    }
    rig.step(Op::Read(1));
    assert_eq!(rig.received, rig.injected, "every byte, once, in order");
    assert_eq!(rig.rx.stats().driver_restarts, 1);
}

#[test]
fn restart_storm() {
    // A restart between every step of the first phase.
    let mut ops = Vec::new();
    for k in 0..200 {
        ops.push(
            [
                Op::Client(0),
                Op::Driver,
                Op::Client(1),
                Op::Shift(3),
                Op::Irq,
            ][k % 5],
        );
        ops.push(Op::Restart);
    }
    let rig = run(10, [4, 2], 3, 16, &ops);
    check(&rig, 10, 200, 0);
    assert!(rig.clients[0].stats().driver_restarts > 10);
}

/// The receiving client's request tail scribbled (control's `ring-corruption` of a VMM, an
/// in-system campaign's first injection): the driver reports the client, the monitor
/// restarts it, and the successor's input must flow again. Seen in QEMU: after such a VMM
/// restart the guest's console took no more input.
#[test]
fn a_receiver_restarted_after_a_scribbled_tail_is_served_again() {
    let mut rig = Rig::new(1, [1, 1], 16, 16);
    for op in [Op::Rx, Op::Driver, Op::Rx, Op::Inject(10), Op::Driver] {
        rig.step(op);
    }
    for _ in 0..5 {
        for op in [Op::Rx, Op::Driver, Op::Irq, Op::Read(16)] {
            rig.step(op);
        }
    }
    assert_eq!(
        rig.received, rig.injected,
        "input flows before the scribble"
    );
    // lib/ring's layout: the request queue's tail, the word the client writes, at 128.
    let tail = rig.rx_link.rings.read_u32(128);
    rig.rx_link.rings.write_u32(128, tail ^ 0x8000_0000);
    let act = rig.driver().poll();
    assert!(
        !act.faults.is_empty(),
        "the driver finds the scribble: {act:?}"
    );
    // Heartbeat polls before the monitor's restart lands, and the old client still running.
    rig.step(Op::Driver);
    let _ = rig.rx.poll_with(|b| b.len());
    rig.step(Op::Driver);
    // The monitor restarts the client (a VMM keeps its guest UART's FIFO).
    rig.step(Op::RxRestart);
    let before = rig.received.len();
    rig.step(Op::Inject(5));
    for _ in 0..20 {
        for op in [Op::Rx, Op::Driver, Op::Irq, Op::Read(16)] {
            rig.step(op);
        }
    }
    assert!(
        rig.received.len() > before,
        "the restarted receiver gets input again: {:?} of {:?}",
        rig.received,
        rig.injected
    );
}

/// [`a_receiver_restarted_after_a_scribbled_tail_is_served_again`] as the PDs run it: the
/// driver polls only when notified or interrupted, the client only when notified (or at its
/// start). The rig above polls everyone in turn, which hides a wake-up nobody sends.
#[test]
fn after_a_scribbled_tail_the_restarted_receiver_is_woken_and_served() {
    use axolotl_serial_core::ConnId;
    let mut rig = Rig::new(1, [1, 1], 16, 16);
    let mut to_driver = false;
    let mut to_client = true;
    let events = |rig: &mut Rig, to_driver: &mut bool, to_client: &mut bool| {
        for _ in 0..50 {
            let mut any = false;
            if std::mem::take(to_client) {
                any = true;
                let (fifo, cap) = (&mut rig.fifo, rig.fifo_cap);
                let act = rig
                    .rx
                    .poll_with(|b| {
                        let n = b.len().min(cap - fifo.len());
                        fifo.extend(&b[..n]);
                        n
                    })
                    .unwrap_or_default();
                *to_driver |= act.notify;
                rig.received.extend(rig.fifo.drain(..));
            }
            let irq = rig.driver().uart().line();
            if std::mem::take(to_driver) || irq {
                any = true;
                let act = if irq {
                    rig.driver().on_irq()
                } else {
                    rig.driver().poll()
                };
                *to_client |= act.notify.contains(ConnId::Rx);
            }
            if !any {
                return;
            }
        }
    };
    events(&mut rig, &mut to_driver, &mut to_client);
    rig.step(Op::Inject(10));
    events(&mut rig, &mut to_driver, &mut to_client);
    assert_eq!(
        rig.received, rig.injected,
        "input flows before the scribble"
    );
    let tail = rig.rx_link.rings.read_u32(128);
    rig.rx_link.rings.write_u32(128, tail ^ 0x8000_0000);
    // The driver finds it at its next wake-up (a line typed: the in-system campaign's check
    // command), reports the client.
    rig.step(Op::Inject(12));
    let act = rig.driver().on_irq();
    assert!(!act.faults.is_empty(), "{act:?}");
    // Its buffers cannot be answered: receive interrupts stay off until its successor.
    assert!(
        !rig.driver().irq_mask().contains(Irqs::RX),
        "{:?}",
        rig.driver().irq_mask()
    );
    // The monitor restarts the client, which starts up and notifies the driver.
    rig.step(Op::RxRestart);
    to_client = true;
    events(&mut rig, &mut to_driver, &mut to_client);
    let before = rig.received.len();
    rig.step(Op::Inject(5));
    events(&mut rig, &mut to_driver, &mut to_client);
    let stats = rig.driver().stats();
    assert!(
        rig.received.len() > before,
        "the restarted receiver gets input again: {:?} of {:?}; driver {stats:?}",
        rig.received,
        rig.injected,
    );
    // Nothing the UART accepted is lost: what arrived with the wake-up that found the
    // scribble reaches the successor too (it was lost, and with it the campaign's command).
    assert_eq!(rig.received, rig.injected, "driver {stats:?}");
}

/// `input_waiting` says whether received bytes wait for the client: on the ring before a poll,
/// held back by a sink that took less, and not once all were taken (control-pd's stall watch
/// takes it for the client's own business).
#[test]
fn input_waiting_tells_bytes_the_client_has_not_taken() {
    let links = [Link::new()];
    let rx_link = Link::new();
    let mut rx = rx_link.rx_client();
    let mut d = driver(FakeUart::new(16), &links, Some(&rx_link), 1);
    // Connected, buffers posted, nothing received.
    for _ in 0..4 {
        let _ = rx.poll_with(|b| b.len()).unwrap();
        let _ = d.poll();
    }
    assert!(!rx.input_waiting(), "nothing was received");
    for &b in b"hello" {
        assert!(d.uart_mut().inject_rx(b));
    }
    for _ in 0..4 {
        let _ = d.on_irq();
        let _ = d.poll();
    }
    assert!(rx.input_waiting(), "a completion waits on the ring");
    // A sink that takes two bytes: the rest is held.
    let mut got = Vec::new();
    let _ = rx
        .poll_with(|b| {
            let n = b.len().min(2).saturating_sub(got.len());
            got.extend_from_slice(&b[..n]);
            n
        })
        .unwrap();
    assert_eq!(got, b"he");
    assert!(rx.input_waiting(), "three bytes held back");
    let _ = rx
        .poll_with(|b| {
            got.extend_from_slice(b);
            b.len()
        })
        .unwrap();
    assert_eq!(got, b"hello");
    assert!(!rx.input_waiting(), "all taken");
}
