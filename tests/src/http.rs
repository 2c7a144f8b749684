//! Host side of the guests' network and disk tests (tests/tests/guest_io.rs on bare QEMU,
//! tests/tests/gateway.rs under axolotl): a small HTTP/1.0 client, free loopback ports for
//! QEMU's forwards, the scratch directory and the checksum the guest's disk check reports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one request waits for its answer: the guest may be restarting a driver under
/// it, and the machine is loaded.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Scratch directory removed on drop, also when an assertion fails.
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    /// `<temp>/<name>-<pid>-<n>`, created: `n` counts the directories of this process, as
    /// tests run in parallel threads of one process and each removes its own when done.
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A UDP port on 127.0.0.1 nothing is bound to now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a free UDP port")
        .port()
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:`port`; the status code and the body, checked
/// against Content-Length.
pub fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: gateway\r\n\r\n").map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .map_err(|e| format!("reading the answer to {path}: {e}"))?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {} bytes", all.len()))?;
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let body = all[head_end + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = length
        && n != body.len()
    {
        return Err(format!(
            "{path}: Content-Length {n}, body {} bytes",
            body.len()
        ));
    }
    Ok((status, body))
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
