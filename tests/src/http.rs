//! Host side of the guests' network and disk tests (tests/tests/guest_io.rs on bare QEMU,
//! tests/tests/gateway.rs under axolotl): the HTTP client and free loopback ports for QEMU's
//! forwards (`axolotl_qemu::http`, shared with xtask's campaigns) with the tests' timeout, the
//! scratch directory and the checksum the guest's disk check reports.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one request waits for its answer: the guest may be restarting a driver under
/// it, and the machine is loaded.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Scratch directory removed on drop, also when an assertion fails.
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    /// `<temp>/<name>-<pid>-<n>`, created: `n` counts the directories this process made, so
    /// two tests running at once in one test binary (a test per GIC) never share one — the
    /// first to finish would remove the other's disk image under its QEMU.
    pub fn new(name: &str) -> Self {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = TmpDir(std::env::temp_dir().join(format!("{name}-{}-{n}", std::process::id())));
        std::fs::create_dir_all(&d.0).expect("create the scratch directory");
        d
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A TCP port on 127.0.0.1 nothing listens on now (QEMU binds it right after).
pub fn free_port() -> u16 {
    axolotl_qemu::http::free_port().expect("bind a free port")
}

/// A UDP port on 127.0.0.1 nothing is bound to now.
pub fn free_udp_port() -> u16 {
    axolotl_qemu::http::free_udp_port().expect("bind a free UDP port")
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:`port` (`axolotl_qemu::http::http_get`), waiting
/// [`REQUEST_TIMEOUT`]; the status code and the body, checked against Content-Length.
pub fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>), String> {
    axolotl_qemu::http::http_get(port, path, REQUEST_TIMEOUT)
}

/// SHA-256 of `data` in hex, as the guest's disk check reports it (coreutils' sha256sum, so
/// the test needs no hashing crate).
pub fn sha256_hex(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    let mut stdin = c.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// An HTTP server on 127.0.0.1 (the guest reaches it as 10.0.2.2 through QEMU's user
/// network) answering every request, for as long as the test process lives, with `body`:
/// a download into the guest. Its port.
pub fn serve(body: Vec<u8>) -> u16 {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the server");
    let port = listener.local_addr().expect("its address").port();
    let body = std::sync::Arc::new(body);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
                let mut r = BufReader::new(&conn);
                let mut line = String::new();
                // The request's head, up to its blank line.
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim_end() != "" {
                    line.clear();
                }
                let mut w = &conn;
                let _ = write!(
                    w,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = w.write_all(&body);
            });
        }
    });
    port
}

#[cfg(test)]
mod tests {
    use super::TmpDir;

    #[test]
    fn scratch_directories_of_one_process_are_its_own() {
        let a = TmpDir::new("axolotl-tmpdir-test");
        let b = TmpDir::new("axolotl-tmpdir-test");
        assert_ne!(a.0, b.0);
        let kept = b.0.clone();
        drop(a);
        assert!(kept.is_dir(), "dropping one removed the other");
    }
}
