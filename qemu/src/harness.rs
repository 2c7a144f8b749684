//! Boots an image, captures the serial console, and checks expected lines in order.
//! Every failure carries the whole captured console, so a red test explains itself.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::machine::{Machine, QEMU_AARCH64};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the console printed, and whether it is over (QEMU closed it).
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    closed: bool,
}

impl Captured {
    /// The bytes a test may judge: up to the last complete line while QEMU may still be
    /// printing (the rest of a line may be on its way), everything once the console closed.
    fn settled(&self) -> &[u8] {
        if self.closed {
            return &self.bytes;
        }
        match self.bytes.iter().rposition(|&b| b == b'\n') {
            Some(nl) => &self.bytes[..=nl],
            None => &[],
        }
    }
}

/// A running QEMU whose console is being captured.
pub struct Boot {
    child: Child,
    console: Arc<Mutex<Captured>>,
    /// Byte offset up to which expectations have matched.
    cursor: usize,
    reader: Option<thread::JoinHandle<()>>,
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
        let mut cmd = Command::new(QEMU_AARCH64);
        cmd.args(machine.args(kernel, false));
        Boot::spawn(cmd)
    }

    /// Starts `cmd` and captures its standard output as the console (for QEMU command lines
    /// [`Boot::start`] does not make, e.g. a Linux guest booted directly).
    pub fn spawn(mut cmd: Command) -> Result<Boot, Failure> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure {
                what: format!("cannot start {:?}: {e}", cmd.get_program()),
                console: String::new(),
            })?;
        let console = Arc::new(Mutex::new(Captured::default()));
        let mut out = child.stdout.take().unwrap();
        let sink = console.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
            }
            sink.lock().unwrap().closed = true;
        });
        Ok(Boot {
            child,
            console,
            cursor: 0,
            reader: Some(reader),
        })
    }

    /// QEMU's process id (e.g. to read its CPU time from `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The console so far, up to its last complete line: a line still being printed is left
    /// out (until QEMU exits), so whatever a test reads from it is whole.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(self.console.lock().unwrap().settled()).replace('\r', "")
    }

    /// Every byte captured, a line still being printed included: for failure reports and
    /// for `refute`, where half a line is as forbidden as a whole one.
    fn raw_console(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap().bytes).replace('\r', "")
    }

    fn fail(&mut self, what: String) -> Failure {
        // Give QEMU's stderr a moment so it lands in the report too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
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
    }
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
