//! Boots an image, captures the serial console, and checks expected lines in order.
//! Every failure carries the whole captured console, so a red test explains itself.
//!
//! The console is two serial lines merged: UART0 (the kernel's system log, QEMU's stdout)
//! and, unless the machine names its own backend for it, UART1 (a Linux guest's serial line
//! where a VMM has one: docs/vmm.md), on a unix socket the harness listens on. Each stream's
//! bytes join the capture a whole line at a time, so a line from one is never cut by the
//! other; nothing is tagged, and tests match either's lines alike. UART1's raw bytes are
//! kept too ([`Boot::uart1_bytes`]), and [`Boot::send_uart1`] types into it.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::machine::{Machine, QEMU_AARCH64};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Stream numbers in [`Captured`].
const UART0: usize = 0;
const UART1: usize = 1;

/// What the console printed, and whether it is over (QEMU closed it).
struct Captured {
    /// Whole lines of both streams, in the order they were completed (a stream's last,
    /// unterminated line joins when the stream ends).
    bytes: Vec<u8>,
    /// Per stream: what came after its last newline.
    partial: [Vec<u8>; 2],
    /// UART1's bytes as they came, untouched.
    uart1: Vec<u8>,
    /// Streams not ended yet.
    open: usize,
    /// UART0 (QEMU's stdout) has ended: QEMU is gone.
    stdout_ended: bool,
    /// Every stream has ended.
    closed: bool,
}

impl Captured {
    fn new(streams: usize) -> Self {
        Captured {
            bytes: Vec::new(),
            partial: [Vec::new(), Vec::new()],
            uart1: Vec::new(),
            open: streams,
            stdout_ended: false,
            closed: false,
        }
    }

    fn take(&mut self, stream: usize, data: &[u8]) {
        if stream == UART1 {
            self.uart1.extend_from_slice(data);
        }
        let p = &mut self.partial[stream];
        p.extend_from_slice(data);
        if let Some(nl) = p.iter().rposition(|&b| b == b'\n') {
            self.bytes.extend(p.drain(..=nl));
        }
    }

    fn end(&mut self, stream: usize) {
        let rest = std::mem::take(&mut self.partial[stream]);
        self.bytes.extend(rest);
        if stream == UART0 {
            self.stdout_ended = true;
        }
        self.open = self.open.saturating_sub(1);
        self.closed = self.open == 0;
    }

    /// The bytes a test may judge: whole lines only while QEMU may still be printing (the
    /// rest of a line may be on its way), everything once the console closed.
    fn settled(&self) -> &[u8] {
        &self.bytes
    }

    /// Everything, the lines still being printed included.
    fn raw(&self) -> Vec<u8> {
        let mut v = self.bytes.clone();
        for p in &self.partial {
            v.extend_from_slice(p);
        }
        v
    }
}

/// UART1's socket, listened on before QEMU starts (QEMU connects to it as a client).
struct Uart1Socket {
    dir: PathBuf,
    listener: UnixListener,
}

impl Uart1Socket {
    fn bind() -> Result<Self, Failure> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Short: a socket's path must fit sun_path (108 bytes).
        let dir = std::env::temp_dir().join(format!(
            "axolotl-u1-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let err = |e: std::io::Error| Failure {
            what: format!("UART1's socket in {}: {e}", dir.display()),
            console: String::new(),
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        let listener = UnixListener::bind(dir.join("uart1")).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(Uart1Socket { dir, listener })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("uart1")
    }
}

/// A running QEMU whose console is being captured.
pub struct Boot {
    child: Child,
    console: Arc<Mutex<Captured>>,
    /// Byte offset up to which expectations have matched.
    cursor: usize,
    readers: Vec<thread::JoinHandle<()>>,
    /// UART1's socket once QEMU connected, when the harness owns UART1.
    uart1: Arc<Mutex<Option<UnixStream>>>,
    /// Where UART1's socket lives (removed when done).
    uart1_dir: Option<PathBuf>,
}

/// Why a check failed, with the console as captured.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub console: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.what)?;
        writeln!(f, "----- captured serial console -----")?;
        writeln!(f, "{}", self.console)?;
        write!(f, "----- end of console -----")
    }
}

impl std::error::Error for Failure {}

impl Boot {
    pub fn start(machine: &Machine, kernel: &Path) -> Result<Boot, Failure> {
        Boot::start_with(machine, kernel, &[])
    }

    /// [`Boot::start`] with `extra` QEMU arguments after the machine's.
    pub fn start_with(machine: &Machine, kernel: &Path, extra: &[String]) -> Result<Boot, Failure> {
        if let Some(list) = std::env::var_os(LIST_IMAGES_ENV) {
            return Err(list_image(Path::new(&list), kernel));
        }
        if !kernel.exists() {
            return Err(Failure {
                what: format!(
                    "image {} does not exist (run through `cargo xtask test`)",
                    kernel.display()
                ),
                console: String::new(),
            });
        }
        let mut machine = machine.clone();
        let socket = match machine.uart1 {
            Some(_) => None,
            None => {
                let s = Uart1Socket::bind()?;
                machine.uart1 = Some(format!("socket,path={}", s.path().display()));
                Some(s)
            }
        };
        let mut cmd = Command::new(QEMU_AARCH64);
        cmd.args(machine.args(kernel, false)).args(extra);
        Boot::spawn_with(cmd, socket)
    }

    /// Starts `cmd` and captures its standard output as the console (for QEMU command lines
    /// [`Boot::start`] does not make, e.g. a Linux guest booted directly).
    pub fn spawn(cmd: Command) -> Result<Boot, Failure> {
        Boot::spawn_with(cmd, None)
    }

    fn spawn_with(mut cmd: Command, socket: Option<Uart1Socket>) -> Result<Boot, Failure> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure {
                what: format!("cannot start {:?}: {e}", cmd.get_program()),
                console: String::new(),
            })?;
        let streams = if socket.is_some() { 2 } else { 1 };
        let console = Arc::new(Mutex::new(Captured::new(streams)));
        let out = child.stdout.take().unwrap();
        let sink = console.clone();
        let mut readers = vec![thread::spawn(move || capture(out, UART0, &sink))];
        let uart1 = Arc::new(Mutex::new(None));
        let uart1_dir = socket.as_ref().map(|s| s.dir.clone());
        if let Some(socket) = socket {
            let (sink, writer) = (console.clone(), uart1.clone());
            readers.push(thread::spawn(move || accept_uart1(socket, &sink, &writer)));
        }
        Ok(Boot {
            child,
            console,
            cursor: 0,
            readers,
            uart1,
            uart1_dir,
        })
    }

    /// Whether QEMU's console has ended (QEMU exited or closed it).
    pub fn exited(&self) -> bool {
        self.console.lock().unwrap().closed
    }

    /// QEMU's process id (e.g. to read its CPU time from `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes the console to `out` as it comes, whole lines of either UART (the rest once
    /// QEMU is done), until QEMU exits; then QEMU's standard error to ours. For `cargo xtask
    /// run` with its output redirected: both streams survive a file or a pipe, neither
    /// overwrites the other.
    pub fn relay(mut self, out: &mut dyn Write) -> std::io::Result<std::process::ExitStatus> {
        let mut written = 0;
        loop {
            let (chunk, closed) = {
                let c = self.console.lock().unwrap();
                (c.settled()[written..].to_vec(), c.closed)
            };
            out.write_all(&chunk)?;
            out.flush()?;
            written += chunk.len();
            if closed {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.wait()?;
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::copy(&mut e, &mut std::io::stderr());
        }
        Ok(status)
    }

    /// UART1's bytes as they came, control bytes and `\r` included (the harness's own UART1
    /// only: empty when the machine named a backend).
    pub fn uart1_bytes(&self) -> Vec<u8> {
        self.console.lock().unwrap().uart1.clone()
    }

    /// Types `bytes` into UART1 (the harness's own: [`Boot::start`] with no UART1 backend
    /// named), once QEMU has connected to it.
    pub fn send_uart1(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let written = {
                let mut w = self.uart1.lock().unwrap();
                w.as_mut()
                    .map(|s| s.write_all(bytes).and_then(|()| s.flush()))
            };
            match written {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(self.fail(format!("typing into UART1: {e}"))),
                None if self.uart1_dir.is_none() => {
                    return Err(self
                        .fail("UART1 is not the harness's (the machine names a backend)".into()));
                }
                None if Instant::now() >= deadline || self.console.lock().unwrap().stdout_ended => {
                    return Err(self.fail("QEMU never connected to UART1's socket".into()));
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The console so far, up to its last complete line: a line still being printed is left
    /// out (until QEMU exits), so whatever a test reads from it is whole.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(self.console.lock().unwrap().settled()).replace('\r', "")
    }

    /// Every byte captured, a line still being printed included: for failure reports and
    /// for `refute`, where half a line is as forbidden as a whole one.
    fn raw_console(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap().raw()).replace('\r', "")
    }

    fn fail(&mut self, what: String) -> Failure {
        // Give QEMU's stderr a moment so it lands in the report too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let mut console = self.raw_console();
        if let Some(mut e) = self.child.stderr.take() {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            if !s.is_empty() {
                console.push_str("\n----- QEMU stderr -----\n");
                console.push_str(&s);
            }
        }
        Failure { what, console }
    }

    /// Waits until `needle` appears after everything matched so far; returns the full line
    /// that contains it (complete: its newline has arrived, or QEMU has exited).
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let captured = self.console.lock().unwrap();
                let settled = captured.settled();
                let rest = &settled[self.cursor.min(settled.len())..];
                // Searched as bytes so the cursor stays a byte offset into the capture.
                if let Some(pos) = find(rest, needle.as_bytes()) {
                    let end = rest[pos..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |nl| pos + nl);
                    let start = rest[..pos]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |p| p + 1);
                    let line = String::from_utf8_lossy(&rest[start..end])
                        .trim_end_matches('\r')
                        .to_string();
                    self.cursor += end;
                    return Ok(line);
                }
                if captured.closed {
                    drop(captured);
                    let status = self.child.wait().ok();
                    let status = status.map_or("?".into(), |s| s.to_string());
                    return Err(
                        self.fail(format!("QEMU exited ({status}) before printing {needle:?}"))
                    );
                }
            }
            if Instant::now() >= deadline {
                return Err(self.fail(format!(
                    "timed out after {timeout:?} waiting for {needle:?}"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Expects each needle in order.
    pub fn expect_all(
        &mut self,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<Vec<String>, Failure> {
        needles.iter().map(|n| self.expect(n, timeout)).collect()
    }

    /// Waits until the needles appear in this order after everything matched so far, other
    /// lines in between; unlike [`Boot::expect_all`] it leaves the match position alone, so
    /// independent chains of events can each be checked in their own order.
    pub fn expect_chain(&mut self, needles: &[&str], timeout: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let (found, closed) = {
                let captured = self.console.lock().unwrap();
                let settled = captured.settled();
                let text = String::from_utf8_lossy(&settled[self.cursor.min(settled.len())..])
                    .into_owned();
                let mut at = 0;
                let mut missing = None;
                for n in needles {
                    match text[at..].find(n) {
                        Some(p) => at += p + n.len(),
                        None => {
                            missing = Some(*n);
                            break;
                        }
                    }
                }
                (missing, captured.closed)
            };
            let Some(missing) = found else {
                return Ok(());
            };
            if closed || Instant::now() >= deadline {
                return Err(self.fail(format!(
                    "waiting for {missing:?} in the chain {needles:?} (timeout {timeout:?})"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the kernel to name its image (`kernel: image <name>`, right after its
    /// banner) and fails unless it is `name`: a test boots the image it asked for, not another
    /// variant's written to the same file meanwhile (issue #19: a two-vCPU Linux test once
    /// booted the root task's fault self-test). Leaves the match position alone.
    pub fn verify_image(&mut self, name: &str, timeout: Duration) -> Result<(), Failure> {
        const SAID: &str = "kernel: image ";
        let deadline = Instant::now() + timeout;
        loop {
            let (said, closed) = {
                let c = self.console.lock().unwrap();
                let text = String::from_utf8_lossy(c.settled()).into_owned();
                let said = text
                    .lines()
                    .find_map(|l| l.trim_end_matches('\r').strip_prefix(SAID))
                    .map(str::to_string);
                (said, c.closed)
            };
            match said {
                Some(s) if s == name => return Ok(()),
                Some(s) => {
                    return Err(self.fail(format!("booted image {s:?}, not {name:?} as asked")));
                }
                None if closed || Instant::now() >= deadline => {
                    return Err(self.fail(format!(
                        "the kernel never named its image (`{SAID}{name}` expected; an image \
                         not built by `cargo xtask`?)"
                    )));
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Fails if `needle` appears anywhere in the console so far.
    pub fn refute(&mut self, needle: &str) -> Result<(), Failure> {
        if self.raw_console().contains(needle) {
            return Err(self.fail(format!("console contains forbidden text {needle:?}")));
        }
        Ok(())
    }

    /// A failure with the console attached, for checks made by the caller.
    pub fn failure(&mut self, what: impl Into<String>) -> Failure {
        self.fail(what.into())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Drop for Boot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.uart1_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Reads `from` into the capture as stream `stream` until it ends.
fn capture(mut from: impl Read, stream: usize, sink: &Mutex<Captured>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        sink.lock().unwrap().take(stream, &buf[..n]);
    }
    sink.lock().unwrap().end(stream);
}

/// Waits for QEMU to connect to UART1's socket (given up once QEMU's stdout has ended),
/// then captures it.
fn accept_uart1(socket: Uart1Socket, sink: &Mutex<Captured>, writer: &Mutex<Option<UnixStream>>) {
    let stream = loop {
        match socket.listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if sink.lock().unwrap().stdout_ended {
                    sink.lock().unwrap().end(UART1);
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(_) => {
                sink.lock().unwrap().end(UART1);
                return;
            }
        }
    };
    let _ = stream.set_nonblocking(false);
    *writer.lock().unwrap() = stream.try_clone().ok();
    capture(stream, UART1, sink);
}

/// Under this environment variable (a file path) [`Boot::start`] boots nothing: it appends the
/// image it was asked for to the file and fails, so `cargo xtask test NAME` learns which images
/// the selected tests boot (each test's first) and builds only those.
pub const LIST_IMAGES_ENV: &str = "AXOLOTL_LIST_IMAGES";

fn list_image(list: &Path, kernel: &Path) -> Failure {
    use std::io::Write;
    // One write of one line in append mode: lines from tests running at once do not mix.
    let line = format!("{}\n", kernel.display());
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    Failure {
        what: format!(
            "not booted: listing images ({LIST_IMAGES_ENV}){}",
            written
                .err()
                .map(|e| format!(", writing the list: {e}"))
                .unwrap_or_default()
        ),
        console: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A "console" printed by a shell in pieces, as a PD's line may reach the UART.
    fn shell(script: &str) -> Boot {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        Boot::spawn(cmd).expect("sh")
    }

    /// Runs `f` on its own thread so a harness that hangs fails the test instead.
    fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the harness hung")
    }

    #[test]
    fn expect_returns_the_whole_line_not_what_has_arrived() {
        let line = within(|| {
            let mut b = shell("printf 'client: done: 10'; sleep 1; printf '0 messages\\n'");
            b.expect("done: 10", Duration::from_secs(30))
                .map_err(|f| f.to_string())
        });
        assert_eq!(line.unwrap(), "client: done: 100 messages");
    }

    #[test]
    fn console_leaves_out_a_line_still_being_printed() {
        let (before, after) = within(|| {
            let mut b = shell("printf 'a\\nb: par'; sleep 2; printf 'tial\\n'; sleep 5");
            b.expect("a", Duration::from_secs(30)).unwrap();
            let before = b.console();
            b.expect("b: ", Duration::from_secs(30)).unwrap();
            (before, b.console())
        });
        assert_eq!(before, "a\n");
        assert_eq!(after, "a\nb: partial\n");
    }

    #[test]
    fn a_last_line_without_newline_counts_once_qemu_exits() {
        let r = within(|| {
            let mut b = shell("printf 'first\\nlast words'");
            b.expect("last", Duration::from_secs(30))
                .map_err(|f| f.to_string())
        });
        assert_eq!(r.unwrap(), "last words");
    }

    #[test]
    fn exit_without_the_needle_fails_at_once_with_the_console() {
        let r = within(|| {
            let mut b = shell("printf 'only this\\n'");
            b.expect("never", Duration::from_secs(600))
                .map_err(|f| f.to_string())
        });
        let e = r.unwrap_err();
        assert!(e.contains("exited") && e.contains("only this"), "{e}");
    }

    #[test]
    fn a_line_from_one_uart_is_never_cut_by_the_other() {
        let mut c = Captured::new(2);
        c.take(UART0, b"vmm: half");
        c.take(UART1, b"/ # echo \x1b[1mX");
        c.take(UART0, b" a line\nnext: ");
        c.take(UART1, b"\x1b[0m\r\n/ # ");
        assert_eq!(
            c.settled(),
            b"vmm: half a line\n/ # echo \x1b[1mX\x1b[0m\r\n".as_slice()
        );
        assert_eq!(c.uart1, b"/ # echo \x1b[1mX\x1b[0m\r\n/ # ");
        c.end(UART1);
        assert!(!c.closed, "UART0 still open");
        c.end(UART0);
        assert!(c.closed);
        assert!(c.settled().ends_with(b"/ # next: "));
    }

    /// QEMU's end of UART1 played by a thread: what it writes is merged a line at a time,
    /// what the test types reaches it.
    #[test]
    fn uart1_on_the_harness_socket_both_ways() {
        let r = within(|| {
            let socket = Uart1Socket::bind().unwrap();
            let path = socket.path();
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "printf 'log: one\\n'; sleep 3; printf 'log: two\\n'"]);
            let mut b = Boot::spawn_with(cmd, Some(socket)).unwrap();
            let qemu = thread::spawn(move || {
                let mut s = UnixStream::connect(path).unwrap();
                s.write_all(b"guest: \x1b[6n").unwrap();
                thread::sleep(Duration::from_millis(500));
                s.write_all(b"prompt\r\n").unwrap();
                let mut typed = [0u8; 3];
                s.read_exact(&mut typed).unwrap();
                typed
            });
            b.send_uart1(b"ls\n").unwrap();
            let line = b.expect("guest: ", Duration::from_secs(30)).unwrap();
            b.expect("log: two", Duration::from_secs(30)).unwrap();
            (line, qemu.join().unwrap(), b.uart1_bytes(), b.console())
        });
        let (line, typed, raw, console) = r;
        assert_eq!(line, "guest: \x1b[6nprompt");
        assert_eq!(&typed, b"ls\n");
        assert_eq!(raw, b"guest: \x1b[6nprompt\r\n");
        assert!(console.contains("log: one\n"), "{console:?}");
    }

    /// Issue #19: `cargo xtask run > log 2>&1` lost and overwrote output (QEMU's console
    /// chardev opened /dev/stdout as a file). With its output not a terminal, `run` relays the
    /// harness's capture: both UARTs' lines, whole and as the guest wrote them (control bytes,
    /// `\r`), none lost, into whatever the output is.
    #[test]
    fn relay_writes_both_uarts_whole_to_a_redirected_output() {
        let (ok, out) = within(|| {
            let socket = Uart1Socket::bind().unwrap();
            let path = socket.path();
            let mut cmd = Command::new("sh");
            cmd.args([
                "-c",
                "printf 'log: one\\n'; sleep 2; printf 'log: two\\nlast'",
            ]);
            let b = Boot::spawn_with(cmd, Some(socket)).unwrap();
            let guest = thread::spawn(move || {
                let mut s = UnixStream::connect(path).unwrap();
                s.write_all(b"guest: \x1b[6n").unwrap();
                thread::sleep(Duration::from_millis(300));
                s.write_all(b"prompt\r\n/ # ").unwrap();
            });
            let mut out = Vec::new();
            let status = b.relay(&mut out).unwrap();
            guest.join().unwrap();
            (status.success(), out)
        });
        assert!(ok);
        let text = String::from_utf8_lossy(&out);
        let whole = ["log: one\n", "guest: \x1b[6nprompt\r\n", "log: two\n"];
        for l in whole {
            assert_eq!(text.matches(l).count(), 1, "{l:?} in {text:?}");
        }
        // The two unterminated tails come out once their streams end; nothing else.
        let rest = whole
            .iter()
            .fold(text.to_string(), |t, l| t.replacen(l, "", 1));
        assert!(rest == "/ # last" || rest == "last/ # ", "{text:?}");
    }

    #[test]
    fn a_boot_is_of_the_image_asked_for() {
        let r = within(|| {
            let said = "printf 'axolotl kernel v0.1.0 (EL2)\\nkernel: image qemu-virt-aarch64-gic3-restart\\n'; sleep 1";
            let mut b = shell(said);
            let ok = b.verify_image("qemu-virt-aarch64-gic3-restart", Duration::from_secs(30));
            let ok = ok.map_err(|f| f.to_string());
            let mut b = shell(said);
            let wrong = b
                .verify_image(
                    "qemu-virt-aarch64-gic3-linux-smp-gicv3",
                    Duration::from_secs(30),
                )
                .map_err(|f| f.to_string());
            let mut b = shell("printf 'axolotl kernel v0.1.0 (EL2)\\n'");
            let unnamed = b
                .verify_image("x", Duration::from_secs(30))
                .map_err(|f| f.to_string());
            (ok, wrong, unnamed)
        });
        assert_eq!(r.0, Ok(()));
        let wrong = r.1.unwrap_err();
        assert!(
            wrong.contains(
                "booted image \"qemu-virt-aarch64-gic3-restart\", not \"qemu-virt-aarch64-gic3-linux-smp-gicv3\" as asked"
            ),
            "{wrong}"
        );
        assert!(r.2.unwrap_err().contains("never named its image"));
    }

    /// `cargo xtask test NAME` runs the selected tests once with `AXOLOTL_LIST_IMAGES` to
    /// learn which images they boot, then builds those alone: each start appends its image and
    /// fails without booting.
    #[test]
    fn listing_images_appends_each_and_boots_nothing() {
        let list = std::env::temp_dir().join(format!("axolotl-list-{}", std::process::id()));
        let _ = std::fs::remove_file(&list);
        for k in ["/i/a.elf", "/i/b.elf"] {
            let f = list_image(&list, Path::new(k));
            assert!(f.what.starts_with("not booted: listing images"), "{f}");
        }
        assert_eq!(
            std::fs::read_to_string(&list).unwrap(),
            "/i/a.elf\n/i/b.elf\n"
        );
        let _ = std::fs::remove_file(&list);
    }

    #[test]
    fn chains_match_whole_lines_only() {
        let r = within(|| {
            let mut b = shell("printf 'x: 1\\nx: 2'; sleep 2; printf '0\\n'");
            b.expect_chain(&["x: 1", "x: 2"], Duration::from_secs(30))
                .unwrap();
            b.console()
        });
        assert!(r.ends_with("x: 20\n"), "{r:?}");
    }
}
