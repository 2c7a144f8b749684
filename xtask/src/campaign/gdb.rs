//! A client of the GDB remote serial protocol, as much of it as a fault injector needs: stop,
//! read and write registers and memory, breakpoints, single steps, continue.
//!
//! QEMU is a peer that may die at any moment (a fault can take the machine down, a job can
//! be cancelled): every read has a timeout and a closed socket is an error, never a hang.
//! Timeouts are generous because the machine running the campaign is loaded.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long one answer may take. A `c` (continue) has no such bound: see [`Gdb::wait_stop`].
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The stub closed the connection (QEMU exited).
    Closed,
    /// No answer in time.
    Timeout(&'static str),
    /// The stub answered `E NN` or something this client cannot read.
    Stub(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "gdb: {e}"),
            Error::Closed => write!(f, "gdb: the stub closed the connection"),
            Error::Timeout(what) => write!(f, "gdb: no answer to {what} in time"),
            Error::Stub(s) => write!(f, "gdb: unexpected answer {s:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `$payload#cs` with the payload escaped (`#`, `$`, `}` and `*` as `}` + byte ^ 0x20).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 4);
    for &b in payload {
        if matches!(b, b'#' | b'$' | b'}' | b'*') {
            body.extend([b'}', b ^ 0x20]);
        } else {
            body.push(b);
        }
    }
    let sum = body.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend(body);
    out.extend(format!("#{sum:02x}").bytes());
    out
}

/// What [`Deframer::next`] found in the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A packet whose checksum matched, unescaped and run-length expanded.
    Packet(Vec<u8>),
    /// A packet whose checksum did not match (to be NAKed).
    Bad,
    Ack,
    Nak,
}

/// Splits the stub's byte stream into acks and packets.
#[derive(Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn next(&mut self) -> Option<Frame> {
        loop {
            let first = *self.buf.first()?;
            match first {
                b'+' => {
                    self.buf.remove(0);
                    return Some(Frame::Ack);
                }
                b'-' => {
                    self.buf.remove(0);
                    return Some(Frame::Nak);
                }
                b'$' | b'%' => break,
                // Noise between packets (a stray byte after a reconnect): skipped.
                _ => {
                    self.buf.remove(0);
                }
            }
        }
        let hash = self.buf.iter().position(|&b| b == b'#')?;
        if self.buf.len() < hash + 3 {
            return None;
        }
        let body = self.buf[1..hash].to_vec();
        let sum = std::str::from_utf8(&self.buf[hash + 1..hash + 3])
            .ok()
            .and_then(|s| u8::from_str_radix(s, 16).ok());
        let notification = self.buf[0] == b'%';
        self.buf.drain(..hash + 3);
        let computed = body.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        if sum != Some(computed) {
            return Some(Frame::Bad);
        }
        if notification {
            // Asynchronous notifications (non-stop mode) are never asked for: ignored.
            return self.next();
        }
        Some(Frame::Packet(unescape(&body)))
    }
}

/// Undoes `}` escapes and `*` run-length encoding.
fn unescape(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'}' if i + 1 < body.len() => {
                out.push(body[i + 1] ^ 0x20);
                i += 2;
            }
            b'*' if i + 1 < body.len() && !out.is_empty() => {
                let n = body[i + 1].saturating_sub(29) as usize;
                let last = *out.last().unwrap();
                out.extend(std::iter::repeat_n(last, n));
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &[u8]) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(Error::Stub(String::from_utf8_lossy(s).into()));
    }
    s.chunks(2)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|t| u8::from_str_radix(t, 16).ok())
                .ok_or_else(|| Error::Stub(String::from_utf8_lossy(s).into()))
        })
        .collect()
}

/// A little-endian register value of up to 8 bytes.
fn le_u64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .rev()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b))
}

/// Why the target stopped (`S`/`T` packets), or that it is gone (`W`/`X`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    Signal(u8),
    Exited(String),
}

pub fn parse_stop(p: &[u8]) -> Result<Stop> {
    match p.first() {
        Some(b'S' | b'T') if p.len() >= 3 => Ok(Stop::Signal(unhex(&p[1..3])?[0])),
        Some(b'W' | b'X') => Ok(Stop::Exited(String::from_utf8_lossy(p).into())),
        _ => Err(Error::Stub(String::from_utf8_lossy(p).into())),
    }
}

/// One connection to a stub, in all-stop mode with acknowledgements.
/// What one read of the stub's socket means: bytes (none after an interrupted read, which
/// is retried by the caller's loop: a signal in the campaign's process, such as a QEMU of
/// another job exiting, must not end an injection), the stub gone, or the deadline passed.
fn read_outcome(r: io::Result<usize>, what: &'static str) -> Result<usize> {
    match r {
        Ok(0) => Err(Error::Closed),
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(Error::Timeout(what))
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Err(Error::Closed),
        Err(e) => Err(Error::Io(e)),
    }
}

pub struct Gdb {
    sock: TcpStream,
    rx: Deframer,
}

impl Gdb {
    /// Connects to `127.0.0.1:port`, retrying for up to `patience` while QEMU starts.
    pub fn connect(port: u16, patience: Duration) -> Result<Gdb> {
        let deadline = Instant::now() + patience;
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(sock) => {
                    sock.set_nodelay(true)?;
                    return Ok(Gdb::over(sock));
                }
                Err(e) if Instant::now() >= deadline => return Err(Error::Io(e)),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn over(sock: TcpStream) -> Gdb {
        Gdb {
            sock,
            rx: Deframer::default(),
        }
    }

    fn fill(&mut self, deadline: Instant, what: &'static str) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout(what));
        }
        self.sock.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 4096];
        let n = read_outcome(self.sock.read(&mut buf), what)?;
        self.rx.push(&buf[..n]);
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        // std's write_all retries an interrupted write itself.
        self.sock.write_all(bytes).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Closed,
            _ => Error::Io(e),
        })
    }

    /// Sends a packet until it is acknowledged (a NAK resends it).
    pub fn send(&mut self, payload: &str) -> Result<()> {
        let framed = frame(payload.as_bytes());
        let deadline = Instant::now() + REPLY_TIMEOUT;
        for _ in 0..8 {
            self.write_all(&framed)?;
            loop {
                match self.rx.next() {
                    Some(Frame::Ack) => return Ok(()),
                    Some(Frame::Nak) => break,
                    // A packet before the ack (a stop reply racing an interrupt): the stub
                    // acked implicitly; keep it for the reader.
                    Some(Frame::Packet(p)) => {
                        let mut again = frame(&p);
                        again.extend(std::mem::take(&mut self.rx.buf));
                        self.rx.buf = again;
                        return Ok(());
                    }
                    Some(Frame::Bad) => self.write_all(b"-")?,
                    None => self.fill(deadline, "a packet's acknowledgement")?,
                }
            }
        }
        Err(Error::Stub(format!("{payload:?} was refused 8 times")))
    }

    /// Reads the next packet, acknowledging it, until `deadline`.
    pub fn recv_until(&mut self, deadline: Instant, what: &'static str) -> Result<Vec<u8>> {
        loop {
            match self.rx.next() {
                Some(Frame::Packet(p)) => {
                    self.write_all(b"+")?;
                    return Ok(p);
                }
                Some(Frame::Bad) => self.write_all(b"-")?,
                Some(Frame::Ack | Frame::Nak) => {}
                None => self.fill(deadline, what)?,
            }
        }
    }

    /// One request, one answer.
    pub fn request(&mut self, payload: &str) -> Result<Vec<u8>> {
        self.send(payload)?;
        self.recv_until(Instant::now() + REPLY_TIMEOUT, "a request")
    }

    fn ok(&mut self, payload: &str) -> Result<()> {
        let r = self.request(payload)?;
        if r == b"OK" {
            Ok(())
        } else {
            Err(Error::Stub(format!(
                "{payload:?} -> {:?}",
                String::from_utf8_lossy(&r)
            )))
        }
    }

    /// `qSupported`: what the stub offers (e.g. `qXfer:features:read+`).
    pub fn supported(&mut self) -> Result<String> {
        let r = self.request("qSupported:multiprocess-;swbreak+;xmlRegisters=aarch64")?;
        Ok(String::from_utf8_lossy(&r).into())
    }

    /// `?`: why the target is stopped.
    pub fn halt_reason(&mut self) -> Result<Stop> {
        parse_stop(&self.request("?")?)
    }

    /// A whole `qXfer:features:read` annex (e.g. `target.xml`).
    pub fn features(&mut self, annex: &str) -> Result<String> {
        let mut out = Vec::new();
        loop {
            let r = self.request(&format!(
                "qXfer:features:read:{annex}:{:x},{:x}",
                out.len(),
                0x3000
            ))?;
            match r.first() {
                Some(b'm') => out.extend_from_slice(&r[1..]),
                Some(b'l') => {
                    out.extend_from_slice(&r[1..]);
                    return Ok(String::from_utf8_lossy(&out).into());
                }
                _ => return Err(Error::Stub(String::from_utf8_lossy(&r).into())),
            }
        }
    }

    /// `g`: every general register, as the stub's raw bytes.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let r = self.request("g")?;
        if r.first() == Some(&b'E') {
            return Err(Error::Stub(String::from_utf8_lossy(&r).into()));
        }
        unhex(&r)
    }

    /// `G`: writes every general register back.
    pub fn write_all_regs(&mut self, raw: &[u8]) -> Result<()> {
        self.ok(&format!("G{}", hex(raw)))
    }

    /// `p`: register `n`, little-endian.
    pub fn read_reg(&mut self, n: u32) -> Result<u64> {
        let r = self.request(&format!("p{n:x}"))?;
        if r.is_empty() || r.first() == Some(&b'E') {
            return Err(Error::Stub(format!(
                "p{n:x} -> {:?}",
                String::from_utf8_lossy(&r)
            )));
        }
        Ok(le_u64(&unhex(&r)?))
    }

    /// `P`: register `n` of `bytes` bytes.
    pub fn write_reg(&mut self, n: u32, value: u64, bytes: usize) -> Result<()> {
        self.ok(&format!("P{n:x}={}", hex(&value.to_le_bytes()[..bytes])))
    }

    /// `m`: memory as the CPU sees it in its current translation regime.
    pub fn read_mem(&mut self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let r = self.request(&format!("m{addr:x},{len:x}"))?;
        if r.first() == Some(&b'E') || r.len() != 2 * len {
            return Err(Error::Stub(format!(
                "m{addr:x},{len:x} -> {:?}",
                String::from_utf8_lossy(&r)
            )));
        }
        unhex(&r)
    }

    /// `M`: writes memory (QEMU writes through read-only mappings and drops the translated
    /// code of the page, so code can be patched).
    pub fn write_mem(&mut self, addr: u64, bytes: &[u8]) -> Result<()> {
        self.ok(&format!("M{addr:x},{:x}:{}", bytes.len(), hex(bytes)))
    }

    /// `Z0`/`z0`: a software breakpoint on the 4-byte instruction at `addr`.
    pub fn breakpoint(&mut self, addr: u64, set: bool) -> Result<()> {
        let z = if set { 'Z' } else { 'z' };
        self.ok(&format!("{z}0,{addr:x},4"))
    }

    /// `s`: one instruction.
    pub fn step(&mut self) -> Result<Stop> {
        self.send("s")?;
        parse_stop(&self.recv_until(Instant::now() + REPLY_TIMEOUT, "a step")?)
    }

    /// `vCont;s`: one instruction, through the packet a multi-thread-aware debugger uses.
    pub fn vcont_step(&mut self) -> Result<Stop> {
        self.send("vCont;s")?;
        parse_stop(&self.recv_until(Instant::now() + REPLY_TIMEOUT, "a step")?)
    }

    /// `c`: resumes; [`Gdb::wait_stop`] or [`Gdb::interrupt`] follows.
    pub fn resume(&mut self) -> Result<()> {
        self.send("c")
    }

    /// Waits for the stop after [`Gdb::resume`] until `deadline`; `Ok(None)` when it did
    /// not stop in time (the target still runs).
    pub fn wait_stop(&mut self, deadline: Instant) -> Result<Option<Stop>> {
        match self.recv_until(deadline, "continue") {
            Ok(p) => parse_stop(&p).map(Some),
            Err(Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops a running target (the 0x03 byte) and reads the stop reply.
    pub fn interrupt(&mut self) -> Result<Stop> {
        self.write_all(&[0x03])?;
        parse_stop(&self.recv_until(Instant::now() + REPLY_TIMEOUT, "an interrupt")?)
    }

    /// Lets the target run on without a debugger (`D`): QEMU drops every breakpoint.
    pub fn detach(&mut self) -> Result<()> {
        self.ok("D")
    }
}

/// The number of the register called `name` in the stub's target description: `target.xml`
/// and the files it includes, numbered in order unless a `regnum` says otherwise.
pub fn regnum(xmls: &[String], name: &str) -> Option<u32> {
    let mut next = 0u32;
    for xml in xmls {
        for tag in xml.split("<reg ").skip(1) {
            let attr = |a: &str| {
                tag.split(&format!("{a}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
            };
            let n = attr("regnum").and_then(|r| r.parse().ok()).unwrap_or(next);
            if attr("name").is_some_and(|r| r.eq_ignore_ascii_case(name)) {
                return Some(n);
            }
            next = n + 1;
        }
    }
    None
}

/// The annexes `target.xml` includes.
pub fn includes(target_xml: &str) -> Vec<String> {
    target_xml
        .split("href=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short campaign lost an injection to "gdb: Interrupted system call (os error 4)":
    /// an interrupted read is no error, the read is tried again.
    #[test]
    fn an_interrupted_read_is_retried_not_an_error() {
        let eintr = io::Error::from(io::ErrorKind::Interrupted);
        assert!(matches!(read_outcome(Err(eintr), "x"), Ok(0)));
        assert!(matches!(read_outcome(Ok(0), "x"), Err(Error::Closed)));
        assert!(matches!(read_outcome(Ok(5), "x"), Ok(5)));
        let late = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(matches!(
            read_outcome(Err(late), "x"),
            Err(Error::Timeout("x"))
        ));
    }
    use std::collections::HashMap;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn frames_and_checksums() {
        // The checksum is the payload's byte sum mod 256, in two hex digits.
        assert_eq!(frame(b"?"), b"$?#3f");
        assert_eq!(frame(b"g"), b"$g#67");
        assert_eq!(frame(b"qSupported"), b"$qSupported#37");
        assert_eq!(frame(b"vCont;s"), b"$vCont;s#b8");
        // Escaped: `}` `#` `$` `*` in a payload.
        assert_eq!(frame(b"M0,1:}"), b"$M0,1:}]#ee");
    }

    #[test]
    fn deframes_acks_packets_bad_checksums_and_run_lengths() {
        let mut d = Deframer::default();
        d.push(b"+$T05thread:01;#07");
        assert_eq!(d.next(), Some(Frame::Ack));
        assert_eq!(d.next(), Some(Frame::Packet(b"T05thread:01;".to_vec())));
        assert_eq!(d.next(), None);
        // Half a packet waits for the rest.
        d.push(b"$O");
        assert_eq!(d.next(), None);
        d.push(b"K#9a-");
        assert_eq!(d.next(), Some(Frame::Packet(b"OK".to_vec())));
        assert_eq!(d.next(), Some(Frame::Nak));
        d.push(b"$OK#00");
        assert_eq!(d.next(), Some(Frame::Bad));
        // "0* " is '0' repeated 1 + (' ' - 29) = 4 times.
        let body = b"0* ";
        let sum = body.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        d.push(format!("$0* #{sum:02x}").as_bytes());
        assert_eq!(d.next(), Some(Frame::Packet(b"0000".to_vec())));
        // Escapes round-trip.
        d.push(&frame(b"a}#$*b"));
        assert_eq!(d.next(), Some(Frame::Packet(b"a}#$*b".to_vec())));
    }

    #[test]
    fn parses_stop_replies() {
        assert_eq!(parse_stop(b"T05thread:p01.01;").unwrap(), Stop::Signal(5));
        assert_eq!(parse_stop(b"S02").unwrap(), Stop::Signal(2));
        assert!(matches!(parse_stop(b"W00").unwrap(), Stop::Exited(_)));
        assert!(parse_stop(b"E01").is_err());
    }

    #[test]
    fn finds_registers_in_target_descriptions() {
        // As QEMU 10 describes an AArch64 CPU: the core registers numbered in order, the
        // system registers with explicit numbers.
        let core = r#"<feature name="org.gnu.gdb.aarch64.core"><reg name="x0" bitsize="64"/>
            <reg name="x1" bitsize="64"/><reg name="sp" bitsize="64" regnum="31"/>
            <reg name="pc" bitsize="64"/><reg name="cpsr" bitsize="32"/></feature>"#;
        let sys = r#"<feature name="org.qemu.gdb.arm.sys.regs"><reg name="ESR_EL2" bitsize="64" regnum="74" type="int" group="cp_regs"/><reg name="VTTBR_EL2" bitsize="64" regnum="221" type="int" group="cp_regs"/></feature>"#;
        let xmls = [core.to_string(), sys.to_string()];
        assert_eq!(regnum(&xmls, "x1"), Some(1));
        assert_eq!(regnum(&xmls, "pc"), Some(32));
        assert_eq!(regnum(&xmls, "cpsr"), Some(33));
        assert_eq!(regnum(&xmls, "vttbr_el2"), Some(221));
        assert_eq!(regnum(&xmls, "nope"), None);
        assert_eq!(
            includes(
                r#"<xi:include href="aarch64-core.xml"/><xi:include href="system-registers.xml"/>"#
            ),
            ["aarch64-core.xml", "system-registers.xml"]
        );
    }

    /// A fake stub: registers, memory, breakpoints and a program counter that a step moves
    /// by 4 and a continue moves to the next breakpoint. Talks the protocol byte by byte as
    /// QEMU does (acks, checksums); `die_after` closes the socket after that many packets.
    fn fake_stub(die_after: Option<usize>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut d = Deframer::default();
            let mut regs = [0u64; 33];
            regs[32] = 0x1000;
            let mut mem: HashMap<u64, u8> = HashMap::new();
            let mut bps: Vec<u64> = Vec::new();
            let mut seen = 0;
            let mut buf = [0u8; 4096];
            loop {
                let Some(f) = d.next() else {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            // The interrupt byte outside any packet.
                            if buf[..n].contains(&0x03) {
                                s.write_all(b"$T02#b6").unwrap();
                            }
                            d.push(&buf[..n]);
                        }
                    }
                    continue;
                };
                let Frame::Packet(p) = f else { continue };
                seen += 1;
                if die_after.is_some_and(|n| seen > n) {
                    return;
                }
                s.write_all(b"+").unwrap();
                let p = String::from_utf8(p).unwrap();
                let reply: Option<String> = if p == "?" {
                    Some("S05".into())
                } else if p == "g" {
                    Some(regs.iter().map(|r| hex(&r.to_le_bytes())).collect())
                } else if let Some(h) = p.strip_prefix('G') {
                    let raw = unhex(h.as_bytes()).unwrap();
                    for (i, c) in raw.chunks(8).enumerate() {
                        regs[i] = le_u64(c);
                    }
                    Some("OK".into())
                } else if let Some(n) = p.strip_prefix('p') {
                    let n = usize::from_str_radix(n, 16).unwrap();
                    Some(hex(&regs[n].to_le_bytes()))
                } else if let Some(rest) = p.strip_prefix('P') {
                    let (n, v) = rest.split_once('=').unwrap();
                    regs[usize::from_str_radix(n, 16).unwrap()] =
                        le_u64(&unhex(v.as_bytes()).unwrap());
                    Some("OK".into())
                } else if let Some(rest) = p.strip_prefix('m') {
                    let (a, l) = rest.split_once(',').unwrap();
                    let a = u64::from_str_radix(a, 16).unwrap();
                    let l = u64::from_str_radix(l, 16).unwrap();
                    Some(
                        (a..a + l)
                            .map(|x| format!("{:02x}", mem.get(&x).copied().unwrap_or(0)))
                            .collect(),
                    )
                } else if let Some(rest) = p.strip_prefix('M') {
                    let (head, data) = rest.split_once(':').unwrap();
                    let a = u64::from_str_radix(head.split(',').next().unwrap(), 16).unwrap();
                    for (i, b) in unhex(data.as_bytes()).unwrap().into_iter().enumerate() {
                        mem.insert(a + i as u64, b);
                    }
                    Some("OK".into())
                } else if let Some(rest) = p.strip_prefix("Z0,") {
                    bps.push(u64::from_str_radix(rest.split(',').next().unwrap(), 16).unwrap());
                    Some("OK".into())
                } else if let Some(rest) = p.strip_prefix("z0,") {
                    let a = u64::from_str_radix(rest.split(',').next().unwrap(), 16).unwrap();
                    bps.retain(|&b| b != a);
                    Some("OK".into())
                } else if p == "s" || p == "vCont;s" {
                    regs[32] += 4;
                    Some("T05".into())
                } else if p == "c" {
                    match bps.iter().filter(|&&b| b > regs[32]).min() {
                        Some(&b) => {
                            regs[32] = b;
                            Some("T05".into())
                        }
                        // No breakpoint ahead: runs until interrupted.
                        None => None,
                    }
                } else if p.starts_with("qSupported") {
                    Some("PacketSize=1000;qXfer:features:read+".into())
                } else if p == "D" {
                    Some("OK".into())
                } else {
                    Some(String::new())
                };
                if let Some(r) = reply {
                    s.write_all(&frame(r.as_bytes())).unwrap();
                }
            }
        });
        port
    }

    #[test]
    fn drives_a_fake_stub() {
        let port = fake_stub(None);
        let mut g = Gdb::connect(port, Duration::from_secs(10)).unwrap();
        assert!(g.supported().unwrap().contains("qXfer:features:read+"));
        assert_eq!(g.halt_reason().unwrap(), Stop::Signal(5));
        assert_eq!(g.read_reg(32).unwrap(), 0x1000);
        g.write_reg(3, 0xdead_beef, 8).unwrap();
        assert_eq!(g.read_reg(3).unwrap(), 0xdead_beef);
        let mut all = g.read_all().unwrap();
        assert_eq!(all.len(), 33 * 8);
        all[8] = 0x7f;
        g.write_all_regs(&all).unwrap();
        assert_eq!(g.read_reg(1).unwrap(), 0x7f);
        g.write_mem(0x2000, &[1, 2, b'#', b'}']).unwrap();
        assert_eq!(g.read_mem(0x2000, 4).unwrap(), [1, 2, b'#', b'}']);
        assert_eq!(g.step().unwrap(), Stop::Signal(5));
        assert_eq!(g.vcont_step().unwrap(), Stop::Signal(5));
        assert_eq!(g.read_reg(32).unwrap(), 0x1008);
        g.breakpoint(0x1100, true).unwrap();
        g.resume().unwrap();
        let stop = g
            .wait_stop(Instant::now() + Duration::from_secs(10))
            .unwrap();
        assert_eq!(stop, Some(Stop::Signal(5)));
        assert_eq!(g.read_reg(32).unwrap(), 0x1100);
        g.breakpoint(0x1100, false).unwrap();
        // Nothing ahead: it runs until interrupted.
        g.resume().unwrap();
        assert_eq!(
            g.wait_stop(Instant::now() + Duration::from_millis(200))
                .unwrap(),
            None
        );
        assert_eq!(g.interrupt().unwrap(), Stop::Signal(2));
        g.detach().unwrap();
    }

    /// Recorded from QEMU 10.0.2 (`-M virt,virtualization=on -icount shift=0 -gdb … -S`,
    /// the resilient-echo image, stopped at reset): what the client sent, what the stub
    /// answered, byte for byte.
    const RECORDED: [(&str, &str); 8] = [
        (
            "$qSupported:multiprocess-;swbreak+;xmlRegisters=aarch64#07",
            "+$PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+#92",
        ),
        ("$?#3f", "+$T05thread:01;#07"),
        ("$p20#d2", "+$0000204000000000#06"),
        ("$p21#d3", "+$c9030040#c3"),
        ("$m40000000,8#55", "+$d00dfeed00100000#3d"),
        ("$Z0,40000000,4#9a", "+$OK#9a"),
        ("$s#73", "+$T05thread:01;#07"),
        ("$p20#d2", "+$0400204000000000#0a"),
    ];

    #[test]
    fn replays_a_recorded_qemu_conversation() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stub = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            for (ask, answer) in RECORDED {
                // The client's ack of the previous answer comes first.
                while !got.ends_with(ask.as_bytes()) {
                    let n = s.read(&mut buf).unwrap();
                    assert!(
                        n > 0,
                        "the client hung up; got {:?}",
                        String::from_utf8_lossy(&got)
                    );
                    got.extend_from_slice(&buf[..n]);
                }
                got.clear();
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        let mut g = Gdb::connect(port, Duration::from_secs(10)).unwrap();
        assert!(g.supported().unwrap().contains("qXfer:features:read+"));
        assert_eq!(g.halt_reason().unwrap(), Stop::Signal(5));
        // The kernel's entry, at EL2h with DAIF masked.
        assert_eq!(g.read_reg(32).unwrap(), 0x4020_0000);
        assert_eq!(g.read_reg(33).unwrap(), 0x4000_03c9);
        assert_eq!(
            g.read_mem(0x4000_0000, 8).unwrap(),
            [0xd0, 0x0d, 0xfe, 0xed, 0, 0x10, 0, 0]
        );
        g.breakpoint(0x4000_0000, true).unwrap();
        assert_eq!(g.step().unwrap(), Stop::Signal(5));
        assert_eq!(g.read_reg(32).unwrap(), 0x4020_0004);
        stub.join().unwrap();
    }

    #[test]
    fn a_stub_that_dies_mid_conversation_is_an_error_not_a_hang() {
        let port = fake_stub(Some(2));
        let mut g = Gdb::connect(port, Duration::from_secs(10)).unwrap();
        g.halt_reason().unwrap();
        g.read_reg(0).unwrap();
        let t = Instant::now();
        let e = g.read_reg(1).unwrap_err();
        assert!(matches!(e, Error::Closed | Error::Io(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(30));
        // And every later request fails at once too.
        assert!(g.step().is_err());
    }

    #[test]
    fn a_silent_stub_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let keep = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            thread::sleep(Duration::from_secs(2));
            drop(s);
        });
        let mut g = Gdb::connect(port, Duration::from_secs(10)).unwrap();
        g.send_raw_for_test();
        let e = g
            .recv_until(Instant::now() + Duration::from_millis(300), "test")
            .unwrap_err();
        assert!(matches!(e, Error::Timeout("test")), "{e}");
        keep.join().unwrap();
    }

    impl Gdb {
        fn send_raw_for_test(&mut self) {
            self.write_all(&frame(b"?")).unwrap();
        }
    }
}
