//! control-pd (issue #17, docs/control.md): the management plane's PD. The host CLI
//! (`cargo xtask ctl`) sends it framed requests (lib/control-proto) over a byte stream
//! served by a serial driver PD (a `TxStream` and an `RxClient` of lib/serial-core, so the
//! stream survives the driver's restarts); control-pd relays each well-formed request to
//! the monitor (a Call with label `CONTROL` on its fault endpoint) as the host's bytes, and
//! frames the monitor's sealed answer back as the monitor's bytes: the CRCs are end to end
//! (docs/control.md, "End to end"). A malformed frame is answered with its error without
//! bothering the monitor.
//!
//! control-pd holds no capability to any other PD and reads no other PD's memory: what it
//! may have done is what the monitor, checking the SDF's `control` grant, does for it. It
//! keeps nothing a restart could lose but the request in progress (the CLI retries), so its
//! restart policy can be anything.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use core::ptr::NonNull;
    #[cfg(feature = "fault-injection")]
    use core::sync::atomic::{AtomicBool, Ordering};

    use axolotl_abi::{CONTROL, MSG_MAX_LENGTH, MSG_REGISTERS_IN_CPU, MessageInfo};
    use axolotl_boot_plan::cspace::MONITOR_EP;
    use axolotl_control_proto::{
        Deframer, Error, FRAME_BUFFER, Frame, MAX_FRAME, Reply, Request, encode, frame_payload,
        ipc, open, payload_id, unframe,
    };
    use axolotl_pd::{Channel, Handler, SetVar, generation, now_us, peer_generation_word, println};
    use axolotl_ring::{Authority, Deadline, Generations, Progress, SharedRegion};
    use axolotl_serial_core::layout::{CAPACITY, IDS, REGION_BYTES};
    use axolotl_serial_core::{RxClient, TxStream};
    use axolotl_sys::ipc::msg_words;

    // The SDF maps the two connections to the serial driver here (`setvar_vaddr`).
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static tx_rings: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static tx_data: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static rx_rings: SetVar = SetVar::new();
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static rx_data: SetVar = SetVar::new();
    /// Test systems only: mapped (by tests/systems/control-deaf-gicv3.system), it makes
    /// the first incarnation stop taking input after its second frame, as control's own
    /// state broken under a running event loop would (the control campaign's id 683).
    #[cfg(feature = "fault-injection")]
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static inject_deaf: SetVar = SetVar::new();
    /// Test systems only: mapped (by tests/systems/control-garble-gicv3.system), it has the
    /// first incarnation damage one byte of the first reply it relays, as a fault in its
    /// relay would (the control campaign's id 463).
    #[cfg(feature = "fault-injection")]
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static inject_garble: SetVar = SetVar::new();
    /// Test systems only: mapped (by tests/systems/control-mute-gicv3.system), it has the
    /// first incarnation, once it served two frames, never signal the driver from its
    /// event loop, as a flipped flag would (the confirmation campaign's ids 165 and 215: a
    /// stack bit turned a `notify` flag false).
    #[cfg(feature = "fault-injection")]
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static inject_mute: SetVar = SetVar::new();

    /// Channel 0: the driver's end of the transmit connection; 1: of the receive one.
    const TX: Channel = Channel::new(0);
    const RX: Channel = Channel::new(1);

    /// How long input may wait for control with no reply owed to the driver before control
    /// takes itself for stalled: two heartbeats and more of the systems' 250 ms. Nothing
    /// keeps it waiting but control: it takes input whenever its reply is all queued.
    const INPUT_STALL_US: u64 = 500_000;

    /// Signals the driver on `ch` from the event loop (what a lost signal leaves undone the
    /// heartbeat's signals redo).
    fn signal(ch: Channel) {
        #[cfg(feature = "fault-injection")]
        if inject_mute.get() != 0 && generation() == 0 && MUTED.load(Ordering::Relaxed) {
            return;
        }
        ch.notify();
    }

    /// Test systems that map `inject_mute`: set once the first incarnation served two frames.
    #[cfg(feature = "fault-injection")]
    static MUTED: AtomicBool = AtomicBool::new(false);

    fn region(var: &SetVar) -> Option<SharedRegion> {
        let ptr = NonNull::new(var.get() as *mut u8)?;
        // SAFETY: the SDF maps `REGION_BYTES` at this vaddr for our lifetime, shared with the
        // driver only, and it is reached only through lib/ring and serial-core.
        Some(unsafe { SharedRegion::new(ptr, REGION_BYTES) })
    }

    fn generations(ch: Channel) -> Option<Generations> {
        let word = peer_generation_word(ch)?;
        Some(Generations {
            own: generation() as u32,
            // SAFETY: the generation table is mapped read-only for our whole life and
            // written by the root task only, atomically.
            peer: unsafe { Authority::new(NonNull::from(word)) },
        })
    }

    struct Control {
        tx: Option<TxStream<IDS>>,
        rx: Option<RxClient<IDS>>,
        deframer: Deframer<MAX_FRAME>,
        /// A whole frame taken from the input, waiting to be served.
        frame: [u8; MAX_FRAME],
        frame_len: Option<usize>,
        /// The reply being written out, and how much of it is queued.
        out: [u8; FRAME_BUFFER],
        out_len: usize,
        out_at: usize,
        served: u64,
        /// The driver incarnation last reported for a broken connection (`report_driver`).
        reported: Option<u32>,
        /// Input the driver delivered must keep moving into control: checked at the
        /// monitor's heartbeat pings (`heartbeat`).
        input_watch: Deadline,
    }

    impl Control {
        fn start(&mut self) -> Result<(), &'static str> {
            let (Some(tr), Some(td), Some(rr), Some(rd)) = (
                region(&tx_rings),
                region(&tx_data),
                region(&rx_rings),
                region(&rx_data),
            ) else {
                return Err("connection regions not set");
            };
            let (Some(tg), Some(rg)) = (generations(TX), generations(RX)) else {
                return Err("no generation for the driver's channels");
            };
            self.tx = Some(TxStream::new(tr, td, CAPACITY, tg).map_err(|_| "bad tx layout")?);
            self.rx = Some(RxClient::new(rr, rd, CAPACITY, rg).map_err(|_| "bad rx layout")?);
            Ok(())
        }

        /// Does all there is to do: writes out the reply in progress, takes input up to the
        /// next whole frame, serves it; until the reply waits for the driver or input runs
        /// dry.
        fn step(&mut self) {
            #[cfg(feature = "fault-injection")]
            if deaf(self.served) {
                return;
            }
            loop {
                let Some(tx) = self.tx.as_mut() else {
                    return;
                };
                if self.out_at < self.out_len {
                    self.out_at += tx.write(&self.out[self.out_at..self.out_len]);
                }
                match tx.poll() {
                    Ok(act) => {
                        if act.notify {
                            signal(TX);
                        }
                    }
                    Err(e) => {
                        println!("control: transmit connection: {e:?}");
                        let seen = tx.driver_generation();
                        self.report_driver(TX, seen);
                        signal(TX);
                        return;
                    }
                }
                if self.out_at < self.out_len {
                    // Wait for completions to make room.
                    return;
                }
                if let Some(n) = self.frame_len.take() {
                    self.serve(n);
                    continue;
                }
                // Deaf from the frame it served last, not only from the next step: a third
                // request that came in while this step still ran was served, and the fifth
                // then crashed control (`crash_on_fifth`) instead of the stall the test waits
                // for (control_that_stops_taking_input_restarts_itself_gicv3, seen once in a
                // full suite).
                #[cfg(feature = "fault-injection")]
                if deaf(self.served) {
                    return;
                }
                if !self.take_input() {
                    return;
                }
            }
        }

        /// Feeds input to the deframer until a frame is whole (kept in `frame`, the rest of
        /// the input left with the driver's buffer); whether one is.
        fn take_input(&mut self) -> bool {
            let Some(rx) = self.rx.as_mut() else {
                return false;
            };
            let Control {
                deframer,
                frame,
                frame_len,
                out,
                out_len,
                out_at,
                ..
            } = self;
            let r = rx.poll_with(|chunk| {
                if frame_len.is_some() || *out_at < *out_len {
                    // One request at a time: the rest waits in the driver's buffer.
                    return 0;
                }
                for (i, &b) in chunk.iter().enumerate() {
                    match deframer.push(b) {
                        None => {}
                        Some(Frame::Complete(f)) => {
                            frame[..f.len()].copy_from_slice(f);
                            *frame_len = Some(f.len());
                            return i + 1;
                        }
                        Some(Frame::Oversize) => {
                            // Answered at once: nothing of it is worth the monitor's time.
                            *out_len = encode(0, &Reply::Error(Error::Oversize), out).unwrap_or(0);
                            *out_at = 0;
                            return i + 1;
                        }
                    }
                }
                chunk.len()
            });
            match r {
                Ok(act) => {
                    if act.notify {
                        signal(RX);
                    }
                }
                Err(e) => {
                    println!("control: receive connection: {e:?}");
                    let seen = rx.driver_generation();
                    self.report_driver(RX, seen);
                    signal(RX);
                }
            }
            self.frame_len.is_some() || self.out_at < self.out_len
        }

        /// A connection to the driver broke its rules: the driver is reported, once per
        /// incarnation (its restart resets both connections). control is the driver's only
        /// client, so nobody else would: the control campaign's ten silent stalls (words the
        /// driver writes flipped, or control's own state) went unanswered for ever. If the
        /// fault was control's, the connection still reads broken after the driver's restart
        /// and the second report against the new incarnation has the monitor restart control
        /// instead (its false-report rule).
        fn report_driver(&mut self, ch: Channel, seen: Option<u32>) {
            let accused = seen.or_else(|| ch.peer_generation());
            if accused.is_some() && self.reported == accused {
                return;
            }
            self.reported = accused;
            let restarted = ch.report_peer(accused);
            println!("control: reported the serial driver, restarted: {restarted}");
        }

        /// Serves the frame of `n` bytes in `frame`: the reply goes to `out`. A frame that
        /// is no request is answered here; a request is relayed to the monitor as it came
        /// (the host's payload, CRC and all) and the monitor's sealed reply framed as it
        /// came: control decodes neither for the monitor nor for the host, so a fault here
        /// damages bytes that the far end's CRC finds (docs/control.md, "End to end").
        fn serve(&mut self, n: usize) {
            #[cfg(feature = "fault-injection")]
            crash_on_fifth(self.served);
            let relayed = match unframe(&mut self.frame[..n]) {
                Ok(payload) => match open::<Request>(payload) {
                    // Checked whole here so that the monitor's time goes to requests only.
                    Ok((id, _)) => ask_monitor(id, payload, &mut self.out).ok_or(id),
                    Err((id, e)) => answer(id, e, &mut self.out),
                },
                Err((id, e)) => answer(id, e, &mut self.out),
            };
            self.out_len = match relayed {
                Ok(len) => len,
                Err(id) => {
                    encode(id, &Reply::Error(Error::Unavailable), &mut self.out).unwrap_or(0)
                }
            };
            self.served += 1;
            self.out_at = 0;
            #[cfg(feature = "fault-injection")]
            MUTED.store(self.served >= 2, Ordering::Relaxed);
        }
    }

    /// Control's own answer to a frame that is no request, framed into `out` (`Err`: the id
    /// to answer `Unavailable` with, should it not fit).
    fn answer(id: u16, e: Error, out: &mut [u8]) -> Result<usize, u16> {
        encode(id, &Reply::Error(e), out).map_err(|_| id)
    }

    /// Test systems only: the first incarnation crashes on its fifth frame, before
    /// answering, so the request in progress is lost and the CLI must retry it.
    #[cfg(feature = "fault-injection")]
    fn crash_on_fifth(served: u64) {
        if generation() == 0 && served == 4 {
            println!("control: fault injection: crashing before answering request 5");
            // SAFETY: deliberately invalid; the fault goes to the monitor.
            unsafe { core::ptr::write_volatile(0x7_0000_0000 as *mut u64, 0) };
        }
    }

    /// Test systems that map `inject_deaf` only: whether this incarnation stopped taking
    /// input (the first, once it served two frames).
    #[cfg(feature = "fault-injection")]
    fn deaf(served: u64) -> bool {
        inject_deaf.get() != 0 && generation() == 0 && served >= 2
    }

    /// Test systems that map `inject_garble` only: damages the first reply the first
    /// incarnation relays, in the first byte of a status row's PD name (byte 7: version and
    /// id, then postcard's variant tag, `total`, `index` and the name's length).
    #[cfg(feature = "fault-injection")]
    fn garble(reply: &mut [u8]) {
        static DONE: AtomicBool = AtomicBool::new(false);
        if inject_garble.get() == 0 || generation() != 0 || DONE.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(b) = reply.get_mut(7) {
            *b ^= 1;
            println!("control: fault injection: damaged byte 7 of the monitor's reply");
        }
    }

    /// Relays the request `payload` (id `id`) to the monitor and frames its sealed reply into
    /// `out`: the frame's length, or `None` if the monitor gave no usable reply (none, or
    /// one whose CRC does not hold: damaged on its way here).
    fn ask_monitor(id: u16, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        // SAFETY: our IPC buffer is mapped for our lifetime; this view ends before the call.
        let words = unsafe { msg_words() };
        let len = ipc::encode_bytes(payload, words)?;
        let regs: [u64; MSG_REGISTERS_IN_CPU] = core::array::from_fn(|i| words[i]);
        let r = axolotl_sys::call(
            MONITOR_EP,
            MessageInfo::new(CONTROL, 0, 0, len as u64),
            regs,
        );
        if r.info.label() != 0 {
            return None;
        }
        // SAFETY: as above; the call is over and this view ends before the next one.
        let words = unsafe { msg_words() };
        words[..MSG_REGISTERS_IN_CPU].copy_from_slice(&r.mrs);
        let len = (r.info.length() as usize).min(MSG_MAX_LENGTH);
        let mut sealed = [0u8; ipc::MAX_BYTES];
        let n = ipc::decode_bytes(len, words, &mut sealed).ok()?;
        #[cfg(feature = "fault-injection")]
        garble(&mut sealed[..n]);
        // An id of 0 is the monitor's "your request came damaged": the host sends again.
        let got = payload_id(&sealed[..n])?;
        if got != id && got != 0 {
            return None;
        }
        frame_payload(&sealed[..n], out).ok()
    }

    impl Handler for Control {
        fn init(&mut self) {
            if let Err(e) = self.start() {
                println!("control: cannot start: {e}");
                return;
            }
            println!(
                "control: generation {}: serving the host through the serial driver",
                generation()
            );
            self.step();
            TX.notify();
            RX.notify();
        }

        fn notified(&mut self, _: Channel) {
            self.step();
        }

        /// Input waiting for control while its reply is all queued (nothing owed to the
        /// driver) that stopped moving: control's own stall, which no one else can see (the
        /// monitor's ping is answered; the driver did its part; the host only times out and
        /// retries into the same stall). The campaign's id 683: a stack pointer flipped by
        /// two, control answering pings and never the host again. Checked before anything
        /// moves the input, so that the stall is reported, not hidden by this check's own
        /// poll; fail-stop, so that the monitor restarts control from its clean image (the
        /// host's request in progress is retried by the CLI).
        fn heartbeat(&mut self) {
            let Some(rx) = self.rx.as_mut() else {
                return;
            };
            let owes = self.out_at < self.out_len || self.frame_len.is_some();
            let waiting = !owes && rx.input_waiting();
            // Progress: bytes taken from the driver's buffers, frames answered.
            let moved = rx.stats().bytes + self.served;
            if let Progress::Overdue { stalled_us } =
                self.input_watch
                    .check(now_us(), usize::from(waiting), moved)
            {
                panic!(
                    "control: input waited {} ms with no reply owed to the driver: stalled: fail-stop",
                    stalled_us / 1000
                );
            }
            // Then everything again, as if both connections had signalled, and the driver
            // signalled on both: a signal lost either way (a flag flipped before it was
            // sent, the confirmation campaign's ids 165 and 215, or a driver's lost) left
            // each side waiting for the other, pings answered, the host never. A signal
            // with nothing to do costs the driver one poll.
            self.step();
            TX.notify();
            RX.notify();
        }
    }

    axolotl_pd::protection_domain!(Control {
        tx: None,
        rx: None,
        deframer: Deframer::new(),
        frame: [0; MAX_FRAME],
        frame_len: None,
        out: [0; FRAME_BUFFER],
        out_len: 0,
        out_at: 0,
        served: 0,
        reported: None,
        input_watch: Deadline::new(INPUT_STALL_US),
    });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "control-pd is a protection domain: build it into a system with `cargo xtask build --system systems/control.system`"
    );
}
