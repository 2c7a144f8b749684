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

/// A running QEMU whose console is being captured.
pub struct Boot {
    child: Child,
    console: Arc<Mutex<Vec<u8>>>,
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
        if !kernel.exists() {
            return Err(Failure {
                what: format!(
                    "image {} does not exist (run through `cargo xtask test`)",
                    kernel.display()
                ),
                console: String::new(),
            });
        }
        let mut child = Command::new(QEMU_AARCH64)
            .args(machine.args(kernel, false))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure {
                what: format!("cannot start {QEMU_AARCH64}: {e}"),
                console: String::new(),
            })?;
        let console = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().unwrap();
        let sink = console.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Ok(Boot {
            child,
            console,
            cursor: 0,
            reader: Some(reader),
        })
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&self.console.lock().unwrap()).replace('\r', "")
    }

    fn fail(&mut self, what: String) -> Failure {
        // Give QEMU's stderr a moment so it lands in the report too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut console = self.console();
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
    /// that contains it.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let raw = self.console.lock().unwrap();
                let text = String::from_utf8_lossy(&raw[self.cursor.min(raw.len())..]).into_owned();
                if let Some(pos) = text.find(needle) {
                    // Only a finished line counts: the rest of it may still be on its way.
                    if let Some(nl) = text[pos..].find('\n') {
                        let end = pos + nl;
                        let start = text[..pos].rfind('\n').map_or(0, |p| p + 1);
                        let line = text[start..end].trim_end_matches('\r').to_string();
                        self.cursor += text[..end].len();
                        return Ok(line);
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Drain what is left before concluding.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                let raw = self.console.lock().unwrap().clone();
                if String::from_utf8_lossy(&raw[self.cursor.min(raw.len())..]).contains(needle) {
                    continue;
                }
                return Err(self.fail(format!("QEMU exited ({status}) before printing {needle:?}")));
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
            let found = {
                let raw = self.console.lock().unwrap();
                let text = String::from_utf8_lossy(&raw[self.cursor.min(raw.len())..]).into_owned();
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
                missing
            };
            let Some(missing) = found else {
                return Ok(());
            };
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                return Err(self.fail(format!(
                    "waiting for {missing:?} in the chain {needles:?} (timeout {timeout:?})"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails if `needle` appears anywhere in the console so far.
    pub fn refute(&mut self, needle: &str) -> Result<(), Failure> {
        if self.console().contains(needle) {
            return Err(self.fail(format!("console contains forbidden text {needle:?}")));
        }
        Ok(())
    }

    /// A failure with the console attached, for checks made by the caller.
    pub fn failure(&mut self, what: impl Into<String>) -> Failure {
        self.fail(what.into())
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
